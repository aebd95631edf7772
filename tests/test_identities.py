"""Who spent it, through the served bot: Slack ids, [identities], emails Slack knows, admin links.

Every test posts signed usage to the real webhook, lets the bot talk to the fake Slack Web API
over HTTP, and checks the real database: the raw events' `user_key` and the three rollup
tables (which must keep equal to the raw sums when spend moves from one key to another).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from bot.clock import SettableClock
from tests.conftest import event
from tests.test_rollups_property import assert_rollups_match_raw

NOW = datetime.now(UTC).replace(microsecond=0)


def at(days_ago: int, hour: int = 12) -> str:
    return (NOW - timedelta(days=days_ago)).replace(hour=hour).isoformat()


def spread(prefix: str, user: str, n: int = 6) -> list[dict]:
    """n events for `user` over several days and two models, with sent and computed costs."""
    return [
        event(
            f"{prefix}-{i}",
            user=user,
            timestamp=at(i % 3 + 1, hour=3 + 7 * (i % 3)),
            model=("gpt-4o", "gpt-4o-mini")[i % 2],
            input_tokens=1000 + i,
            cached_input_tokens=i * 10,
            output_tokens=200 + i,
            cost_usd="0.25" if i % 3 == 0 else None,
        )
        for i in range(n)
    ]


async def user_keys(bot) -> dict[str, str]:
    return dict(await bot.sql("SELECT event_id, user_key FROM usage_events"))


async def rollup_user_keys(bot) -> set[str]:
    keys = set()
    for table in ("usage_daily_model", "usage_daily", "usage_monthly"):
        keys |= {r[0] for r in await bot.sql(f"SELECT DISTINCT user_key FROM {table}")}
    return keys


async def identity_rows(bot) -> list[tuple]:
    return await bot.sql("SELECT external_id, slack_user_id, source, set_by FROM identities ORDER BY external_id")


async def post_ok(bot, batch) -> dict:
    status, body = await bot.post_usage(batch)
    assert status == 200, body
    assert not body["rejected"], body
    return body


# --------------------------------------------------------------------------- direct resolution


async def test_slack_user_id_is_itself_and_never_looked_up(bot, fake_slack):
    await post_ok(bot, [event(1, user="U0ALICE"), event(2, user="W0ENTERPRISE")])
    await bot.services.identities.drain()
    assert await user_keys(bot) == {"evt-1": "U0ALICE", "evt-2": "W0ENTERPRISE"}
    assert fake_slack.calls_to("users.lookupByEmail") == []
    assert await identity_rows(bot) == []
    await assert_rollups_match_raw(bot.services.db)


async def test_config_identities_map_external_ids(make_bot, fake_slack):
    bot = await make_bot(identities={"key_live_abc": "U0ALICE", "bob@acme.test": "U0BOB"})
    await post_ok(bot, [event(1, user="key_live_abc"), event(2, user="bob@acme.test"), event(3, user="key_other")])
    await bot.services.identities.drain()
    assert await user_keys(bot) == {"evt-1": "U0ALICE", "evt-2": "U0BOB", "evt-3": "key_other"}
    subjects = dict(await bot.sql("SELECT event_id, subject FROM usage_events"))
    assert subjects == {"evt-1": "key_live_abc", "evt-2": "bob@acme.test", "evt-3": "key_other"}
    # a configured email needs no Slack lookup
    assert fake_slack.calls_to("users.lookupByEmail") == []
    assert await rollup_user_keys(bot) == {"U0ALICE", "U0BOB", "key_other"}
    await assert_rollups_match_raw(bot.services.db)


# --------------------------------------------------------------------------- emails Slack knows


async def test_known_email_is_linked_in_the_background_and_past_spend_moves(bot, fake_slack):
    fake_slack.add_user("U0BOB", name="bob", email="Bob@Acme.test")
    own = spread("own", "U0BOB", 3)  # spend Bob already had under his Slack id
    await post_ok(bot, own)
    # Slack answers the first lookup with 429 (Retry-After: 1): ingest must not wait on it, so
    # the spend sent meanwhile is stored under the email first...
    fake_slack.fail_next("users.lookupByEmail")
    batches = [spread("mail-a", "bob@acme.test", 6), spread("mail-b", "bob@acme.test", 4)]
    for batch in batches:
        await post_ok(bot, batch)
    before = await user_keys(bot)
    assert {before[e["id"]] for batch in batches for e in batch} == {"bob@acme.test"}
    assert "bob@acme.test" in await rollup_user_keys(bot)
    await assert_rollups_match_raw(bot.services.db)

    # ...then the lookup is retried, links the email, and every earlier event moves to Bob
    await bot.services.identities.drain()
    lookups = fake_slack.calls_to("users.lookupByEmail")
    assert [c.status for c in lookups] == [429, 200]
    assert {c.args.get("email") for c in lookups} == {"bob@acme.test"}
    assert set((await user_keys(bot)).values()) == {"U0BOB"}
    assert await rollup_user_keys(bot) == {"U0BOB"}
    tables = await assert_rollups_match_raw(bot.services.db)
    raw = await bot.sql("SELECT SUM(input_tokens), COUNT(*) FROM usage_events")
    [(month_events, month_input)] = [(v[5], v[0]) for v in tables["usage_monthly"].values()]
    assert (month_input, month_events) == tuple(int(x) for x in raw[0]) == (
        sum(e["input_tokens"] for e in own + batches[0] + batches[1]), 13)
    assert await identity_rows(bot) == [("bob@acme.test", "U0BOB", "email", None)]

    # later spend goes straight to Bob
    await post_ok(bot, [event("after", user="bob@acme.test")])
    assert (await user_keys(bot))["evt-after"] == "U0BOB"
    await bot.services.identities.drain()
    assert len(fake_slack.calls_to("users.lookupByEmail")) == 2
    await assert_rollups_match_raw(bot.services.db)


async def test_known_email_batches_in_quick_succession_all_end_with_the_person(bot, fake_slack):
    fake_slack.add_user("U0CARA", name="cara", email="cara@acme.test")
    for n in range(5):
        await post_ok(bot, spread(f"b{n}", "cara@acme.test", 5))
    await bot.services.identities.drain()
    keys = await user_keys(bot)
    assert len(keys) == 25
    assert set(keys.values()) == {"U0CARA"}, {k: v for k, v in keys.items() if v != "U0CARA"}
    assert await rollup_user_keys(bot) == {"U0CARA"}
    assert len(fake_slack.calls_to("users.lookupByEmail")) == 1
    await assert_rollups_match_raw(bot.services.db)


# --------------------------------------------------------------------------- emails Slack does not know


async def test_unknown_email_stays_unlinked_and_is_not_asked_again(make_bot, fake_slack):
    bot = await make_bot()
    await post_ok(bot, spread("first", "dora@acme.test", 3))
    await bot.services.identities.drain()
    assert len(fake_slack.calls_to("users.lookupByEmail")) == 1
    assert await identity_rows(bot) == [("dora@acme.test", None, "email", None)]

    await post_ok(bot, spread("second", "dora@acme.test", 3))
    await bot.services.identities.drain()
    # another process (or this one after a restart) knows it was asked too
    other = await make_bot()
    await post_ok(other, spread("third", "dora@acme.test", 3))
    await other.services.identities.drain()
    assert len(fake_slack.calls_to("users.lookupByEmail")) == 1
    assert set((await user_keys(bot)).values()) == {"dora@acme.test"}
    assert await rollup_user_keys(bot) == {"dora@acme.test"}
    await assert_rollups_match_raw(bot.services.db)


async def test_unknown_email_is_asked_again_after_a_day(make_bot, fake_slack):
    bot = await make_bot()
    await post_ok(bot, [event(1, user="erin@acme.test")])
    await bot.services.identities.drain()
    assert len(fake_slack.calls_to("users.lookupByEmail")) == 1
    fake_slack.add_user("U0ERIN", name="erin", email="erin@acme.test")  # joined the workspace since

    tz = ZoneInfo("America/New_York")
    later = await make_bot(clock=SettableClock(tz, datetime.now(UTC) + timedelta(hours=25)))
    await post_ok(later, [event(2, user="erin@acme.test")])
    await later.services.identities.drain()
    assert len(fake_slack.calls_to("users.lookupByEmail")) == 2
    assert await user_keys(bot) == {"evt-1": "U0ERIN", "evt-2": "U0ERIN"}
    await assert_rollups_match_raw(bot.services.db)


async def test_lookup_failure_keeps_the_spend_and_does_not_link(bot, fake_slack):
    fake_slack.add_user("U0FAY", name="fay", email="fay@acme.test")
    fake_slack.fail_next("users.lookupByEmail", error="invalid_auth")
    await post_ok(bot, [event(1, user="fay@acme.test")])
    await bot.services.identities.drain()
    assert await user_keys(bot) == {"evt-1": "fay@acme.test"}
    # a failed lookup is not a "Slack does not know this email" answer
    assert [r[1] for r in await identity_rows(bot)] in ([], [None])
    await assert_rollups_match_raw(bot.services.db)


# --------------------------------------------------------------------------- admin links


async def test_admin_link_reattributes_past_spend_and_future_events(bot, fake_slack):
    await post_ok(bot, spread("key", "key_live_xyz", 6))
    await post_ok(bot, spread("dan", "U0DAN", 3))  # Dan's own spend, which must not be disturbed
    await post_ok(bot, spread("other", "key_other", 2))
    before = await assert_rollups_match_raw(bot.services.db)
    key_cost = sum(v[4] for k, v in before["usage_monthly"].items() if k[0] == "key_live_xyz")
    dan_cost = sum(v[4] for k, v in before["usage_monthly"].items() if k[0] == "U0DAN")
    assert key_cost > 0 and dan_cost > 0

    touched = await bot.services.identities.link("key_live_xyz", "U0DAN", source="admin", set_by="U0ADMIN")
    assert touched == {"key_live_xyz", "U0DAN"}
    keys = await user_keys(bot)
    assert {keys[f"evt-key-{i}"] for i in range(6)} == {"U0DAN"}
    assert {keys[f"evt-other-{i}"] for i in range(2)} == {"key_other"}
    assert await rollup_user_keys(bot) == {"U0DAN", "key_other"}
    after = await assert_rollups_match_raw(bot.services.db)
    assert sum(v[4] for k, v in after["usage_monthly"].items() if k[0] == "U0DAN") == key_cost + dan_cost
    assert sum(v[5] for k, v in after["usage_monthly"].items() if k[0] == "U0DAN") == 9
    assert await identity_rows(bot) == [("key_live_xyz", "U0DAN", "admin", "U0ADMIN")]

    await post_ok(bot, [event("new", user="key_live_xyz", cost_usd="1.5")])
    assert (await user_keys(bot))["evt-new"] == "U0DAN"
    final = await assert_rollups_match_raw(bot.services.db)
    assert sum(v[4] for k, v in final["usage_monthly"].items() if k[0] == "U0DAN") == key_cost + dan_cost + Decimal(
        "1.5")
    assert fake_slack.calls_to("users.lookupByEmail") == []


async def test_relinking_moves_only_the_linked_ids_spend(bot):
    await post_ok(bot, spread("key", "key_shared", 4) + spread("dan", "U0DAN", 2) + spread("eve", "U0EVE", 2))
    await bot.services.identities.link("key_shared", "U0DAN", source="admin", set_by="U0ADMIN")
    await bot.services.identities.link("key_shared", "U0EVE", source="admin", set_by="U0ADMIN")
    keys = await user_keys(bot)
    assert {keys[f"evt-key-{i}"] for i in range(4)} == {"U0EVE"}
    assert {keys[f"evt-dan-{i}"] for i in range(2)} == {"U0DAN"}
    tables = await assert_rollups_match_raw(bot.services.db)
    assert sum(v[5] for k, v in tables["usage_monthly"].items() if k[0] == "U0EVE") == 6
    assert sum(v[5] for k, v in tables["usage_monthly"].items() if k[0] == "U0DAN") == 2


async def test_admin_link_of_an_email_wins_over_an_earlier_unknown_answer(bot, fake_slack):
    await post_ok(bot, [event(1, user="gus@partner.test")])
    await bot.services.identities.drain()
    assert len(fake_slack.calls_to("users.lookupByEmail")) == 1
    await bot.services.identities.link("gus@partner.test", "U0GUS", source="admin", set_by="U0ADMIN")
    await post_ok(bot, [event(2, user="gus@partner.test")])
    await bot.services.identities.drain()
    assert await user_keys(bot) == {"evt-1": "U0GUS", "evt-2": "U0GUS"}
    assert await identity_rows(bot) == [("gus@partner.test", "U0GUS", "admin", "U0ADMIN")]
    assert len(fake_slack.calls_to("users.lookupByEmail")) == 1
    await assert_rollups_match_raw(bot.services.db)


async def test_link_made_by_another_process_applies_to_spend_this_process_stores(make_bot):
    """Two `serve` processes on one database: a link made through one holds for events the other
    stores afterwards, even though the other had already seen the id as unlinked."""
    first, second = await make_bot(), await make_bot()
    await post_ok(second, [event(1, user="key_multi")])  # `second` now knows key_multi as unlinked
    await first.services.identities.link("key_multi", "U0HAL", source="admin", set_by="U0ADMIN")
    await post_ok(second, [event(2, user="key_multi")])
    assert await user_keys(first) == {"evt-1": "U0HAL", "evt-2": "U0HAL"}
    await assert_rollups_match_raw(first.services.db)


# --------------------------------------------------------------------------- Slack rate limits


async def test_rate_limited_lookup_is_retried_and_the_link_still_happens(bot, fake_slack):
    fake_slack.add_user("U0IDA", name="ida", email="ida@acme.test")
    fake_slack.fail_next("users.lookupByEmail", retry_after=0, times=2)
    await post_ok(bot, [event(1, user="ida@acme.test"), event(2, user="ida@acme.test", model="gpt-4o-mini")])
    await bot.services.identities.drain()
    lookups = fake_slack.calls_to("users.lookupByEmail")
    assert [c.status for c in lookups] == [429, 429, 200]
    assert await user_keys(bot) == {"evt-1": "U0IDA", "evt-2": "U0IDA"}
    assert await identity_rows(bot) == [("ida@acme.test", "U0IDA", "email", None)]
    await assert_rollups_match_raw(bot.services.db)
