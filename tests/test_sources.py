"""Provider sources (SPEC 10) against fake Admin APIs, through the served bot and the real database.

Each test fills the fake OpenAI / Anthropic Admin API (tests/fakes/provider_admin.py) with buckets
whose prices are known, pulls with `SourceSync` (what the scheduled job and `tokenbot sources sync`
run), and checks the ledger, its rollups (equal to the raw events), and the bill side.
"""

from __future__ import annotations

from decimal import Decimal

import pytest_asyncio

from bot.providers.sync import SourceSync
from tests.fakes.provider_admin import FakeAdminAPIs, completion, hour, message, sources_for, this_hour
from tests.test_rollups_property import assert_rollups_match_raw


@pytest_asyncio.fixture
async def fake_admin():
    async with FakeAdminAPIs(page_size=2) as fake:
        yield fake


async def no_sleep(_seconds: float) -> None:
    return None


def syncer(bot) -> SourceSync:
    return SourceSync(bot.services, base_seconds=0.001, sleep=no_sleep)


async def ledger(bot) -> dict[str, Decimal]:
    rows = await bot.sql("SELECT user_key, cost_usd FROM usage_events")
    out: dict[str, Decimal] = {}
    for key, cost in rows:
        out[key] = out.get(key, Decimal(0)) + _money(cost)
    return out


def _money(value) -> Decimal:
    from tests.conftest import IS_POSTGRES

    return Decimal(value) if IS_POSTGRES else Decimal(int(value)).scaleb(-12)


async def test_openai_buckets_priced_attributed_and_a_grown_bucket_moves_rollups_by_the_difference(
        make_bot, fake_admin):
    fake_admin.openai_users = [{"id": "user-alice", "email": "alice@acme.test", "name": "Alice"}]
    grown = hour(this_hour(3))  # read once: a test running across an hour boundary keeps its buckets
    fake_admin.openai_usage["completions"][grown] = [completion()]
    fake_admin.openai_usage["completions"][hour(this_hour(2))] = [completion(user=None, key="key_ci", cached=0)]
    bot = await make_bot(sources=sources_for(fake_admin), identities={"alice@acme.test": "U0ALICE"})

    [report] = await syncer(bot).run("openai")
    assert report.ok, report.errors
    assert (report.new, report.changed) == (2, 0)
    spend = await ledger(bot)
    assert spend["U0ALICE"] == Decimal("3.25")  # 0.8M x $2.50 + 0.2M cached x $1.25 + 0.1M x $10
    assert spend["key_ci"] == Decimal("3.5")  # no user: the key names the unlinked spend
    await assert_rollups_match_raw(bot.services.db)

    fake_admin.openai_usage["completions"][grown] = [completion(output=200_000)]  # it grew
    [again] = await syncer(bot).run("openai")
    assert (again.new, again.changed, again.unchanged) == (0, 1, 1)
    assert (await ledger(bot))["U0ALICE"] == Decimal("4.25")
    await assert_rollups_match_raw(bot.services.db)

    [third] = await syncer(bot).run("openai")
    assert (third.new, third.changed, third.ledger_rows) == (0, 0, 0)
    assert len(await bot.sql("SELECT event_id FROM usage_events")) == 3  # two buckets, one difference row


async def test_anthropic_cache_writes_cost_report_in_cents_and_claude_code_days(make_bot, fake_admin):
    from tests.fakes.provider_admin import claude_code_row

    today = this_hour(2).date()  # the bucket's UTC day: the bill of the same day
    fake_admin.anthropic_usage[hour(this_hour(2))] = [message()]
    fake_admin.anthropic_costs[today] = [{"workspace_id": "wrkspc_eng", "description": "Claude Sonnet 4.5 usage",
                                          "amount": "1555.0000"}]  # cents: $15.55, $1 over the usage
    fake_admin.claude_code[today] = [claude_code_row(today, "bob@acme.test", sessions=4, added=900, removed=120,
                                                     commits=6, prs=2, cost_cents="1455")]
    bot = await make_bot(sources=sources_for(fake_admin), identities={"apikey_bob": "U0BOB",
                                                                       "bob@acme.test": "U0BOB"})
    [report] = await syncer(bot).run("anthropic")
    assert report.ok, report.errors
    assert (await ledger(bot))["U0BOB"] == Decimal("14.55")
    assert report.claude_code == 1
    costs = await bot.sql("SELECT project, line_item, amount_usd FROM provider_costs WHERE source = 'anthropic'")
    assert [(p, item, _money(a)) for p, item, a in costs] == [("wrkspc_eng", "Claude Sonnet 4.5 usage",
                                                               Decimal("15.55"))]
    cc = await bot.sql("SELECT actor, user_key, sessions, commits, pull_requests, lines_added FROM claude_code_days")
    assert cc == [("bob@acme.test", "U0BOB", 4, 6, 2, 900)]
    # Claude Code's estimated cost is not spend: the same calls are in the messages usage
    assert len(await bot.sql("SELECT 1 FROM usage_events")) == 1

    from bot.providers.reconcile import reconcile_month
    rec = await reconcile_month(bot.services)
    [total] = rec.totals
    assert (total.ledger, total.bill, total.drift) == (Decimal("14.55"), Decimal("15.55"), Decimal("-1"))
    assert [r.project for r in rec.over] == ["wrkspc_eng"]  # 6.4% over the 1% tolerance


async def test_429_and_500_are_retried_honouring_retry_after(make_bot, fake_admin):
    fake_admin.anthropic_usage[hour(this_hour(1))] = [message()]
    fake_admin.failures = [(429, "0.01"), (500, None), (503, None)]
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    bot = await make_bot(sources=sources_for(fake_admin))
    [report] = await SourceSync(bot.services, base_seconds=0.001, sleep=record).run("anthropic")
    assert report.ok, report.errors
    assert report.new == 1
    assert len(waits) == 3 and 0.01 <= waits[0] < 0.02  # the retry-after, then our own backoff


async def test_a_refused_key_tells_the_admins_once_and_stays_in_the_status(make_bot, fake_admin, fake_slack, caplog):
    from bot.providers.commands import status_text

    fake_slack.add_user("U0ADMIN", name="admin", is_admin=True)
    bot = await make_bot(sources=sources_for(fake_admin, openai_key="sk-admin-revoked"), admins=("U0ADMIN",))
    for _ in range(3):
        [report] = await syncer(bot).run("openai")
        assert not report.ok
    dms = [c for c in fake_slack.calls_to("chat.postMessage") if c.args.get("channel") == "U0ADMIN"]
    assert len(dms) == 1 and "OPENAI_ADMIN_KEY" in dms[0].args["text"]
    assert sum("admin key was refused" in r.getMessage() for r in caplog.records) == 1  # no log flood
    assert "ADMIN KEY REFUSED" in await status_text(bot.services)

    # a good key again: the next outage is told again
    fixed = await make_bot(sources=sources_for(fake_admin), admins=("U0ADMIN",))
    [ok] = await syncer(fixed).run("openai")
    assert ok.ok, ok.errors
    assert "ADMIN KEY REFUSED" not in await status_text(fixed.services)


async def test_a_poll_that_dies_halfway_resumes_and_counts_nothing_twice(make_bot, fake_admin):
    for h in range(1, 7):  # six hours, two a page: three pages
        fake_admin.openai_usage["completions"][hour(this_hour(h))] = [completion(output=100_000 * h)]
    fake_admin.failures = [None, None, *([(500, None)] * 5)]  # users, page 1, then page 2 fails for good
    bot = await make_bot(sources=sources_for(fake_admin))
    [first] = await syncer(bot).run("openai")
    assert not first.ok and first.new == 2
    cursor = await bot.sql("SELECT cursor FROM source_state WHERE source = 'openai' AND endpoint = 'completions'")
    assert cursor == [(None,)]  # the window is not done: the cursor stays

    [second] = await syncer(bot).run("openai")
    assert second.ok, second.errors
    assert (second.new, second.unchanged) == (4, 2)
    expected = sum(Decimal("2.25") + Decimal("1") * h for h in range(1, 7))  # input $2.25 + output $1 per 100K
    assert sum((await ledger(bot)).values()) == expected
    await assert_rollups_match_raw(bot.services.db)


async def test_the_lease_keeps_a_second_process_off_the_same_window(make_bot, fake_admin):
    from storage import sources_repo

    fake_admin.openai_usage["completions"][hour(this_hour(1))] = [completion()]
    bot = await make_bot(sources=sources_for(fake_admin))
    async with bot.services.db.write_connection() as conn:
        await sources_repo.ensure_state(conn, "openai", ["completions"])
        assert await sources_repo.take_lease(conn, "openai", "other-process", bot.services.clock.now(), 600)
    [report] = await syncer(bot).run("openai")
    assert report.busy and report.new == 0
    assert fake_admin.requests == []


async def test_unknown_model_clock_ahead_and_a_closed_month(make_bot, fake_admin):
    from datetime import timedelta

    from bot.clock import month_first_day, month_key

    last_month = this_hour(0).replace(day=1, hour=10) - timedelta(days=3)
    fake_admin.openai_usage["completions"][hour(this_hour(1))] = [completion(model="acme-secret-9")]
    fake_admin.openai_usage["completions"][hour(this_hour(-2))] = [completion()]  # two hours ahead of us
    fake_admin.openai_usage["completions"][hour(last_month)] = [completion()]
    fake_admin.clock_ahead = True
    bot = await make_bot(sources=sources_for(fake_admin, backfill_days=40))
    [report] = await syncer(bot).run("openai")
    assert report.ok, report.errors
    assert report.ahead == 1 and report.new == 2
    assert month_key(bot.services.clock.local_day(last_month)) in report.late_months
    unpriced = await bot.sql("SELECT model FROM usage_events WHERE unpriced")
    assert unpriced == [("acme-secret-9",)]

    from storage import queries
    today = bot.services.clock.today()
    async with bot.services.db.session() as session:
        named = await queries.unpriced_models(session, month_first_day(today), today)
    assert [m for m, *_ in named] == ["acme-secret-9"]
    await assert_rollups_match_raw(bot.services.db)


async def test_count_none_keeps_the_bill_side_only_and_overlap_is_warned(make_bot, fake_admin):
    from datetime import UTC, datetime

    from bot.providers.commands import status_text
    from tests.conftest import event

    fake_admin.openai_usage["completions"][hour(this_hour(2))] = [completion()]
    fake_admin.openai_costs[datetime.now(UTC).date()] = [{"project_id": "proj_app", "line_item": "gpt-4o, input",
                                                          "amount": Decimal("3.25")}]
    bot = await make_bot(sources=sources_for(fake_admin, openai_count="none"))
    [report] = await syncer(bot).run("openai")
    assert report.ok and report.new == 1 and report.ledger_rows == 0
    assert await bot.sql("SELECT COUNT(*) FROM usage_events") == [(0,)]
    assert len(await bot.sql("SELECT 1 FROM provider_costs")) == 1

    status, _ = await bot.post_usage([event("gw-1", provider="openai")])
    assert status == 200
    assert "counted twice" not in await status_text(bot.services)  # count = "none": nothing doubled
    counting = await make_bot(sources=sources_for(fake_admin))
    assert "counted twice" in await status_text(counting.services)


async def test_status_has_a_place_for_enforcer_lines_and_says_when_a_source_is_off(make_bot):
    from bot.providers.commands import status_text
    from bot.providers.settings import SourcesConfig

    bot = await make_bot(sources=SourcesConfig())

    async def enforcer_lines(services) -> list[str]:
        return ["enforcer litellm: 3 limits pushed, 0 failures"]

    bot.services.status_lines.append(enforcer_lines)  # what bot/wiring.py status_lines() lists
    text = await status_text(bot.services)
    assert "openai: off (OPENAI_ADMIN_KEY not set)" in text
    assert text.endswith("enforcer litellm: 3 limits pushed, 0 failures")
    [report] = await syncer(bot).run("anthropic")
    assert not report.ok and "ANTHROPIC_ADMIN_KEY is not set" in report.errors[0]


async def test_two_processes_polling_at_once_never_count_a_bucket_twice(make_bot, fake_admin):
    import asyncio

    for h in range(1, 9):
        fake_admin.openai_usage["completions"][hour(this_hour(h))] = [completion(output=100_000 * h)]
    bot = await make_bot(sources=sources_for(fake_admin))
    other = await make_bot(sources=sources_for(fake_admin))
    a = SourceSync(bot.services, base_seconds=0.001, sleep=no_sleep, owner="process-a")
    b = SourceSync(other.services, base_seconds=0.001, sleep=no_sleep, owner="process-b")
    reports = await asyncio.gather(a.run("openai"), b.run("openai"))
    assert sorted(r.busy for [r] in reports) == [False, True]  # one polls, the other leaves it
    assert sum(r.new for [r] in reports) == 8
    [again] = await b.run("openai")  # the lease is free again: the next poll finds nothing new
    assert (again.new, again.unchanged) == (0, 8)
    assert sum((await ledger(bot)).values()) == sum(Decimal("2.25") + h for h in range(1, 9))
    await assert_rollups_match_raw(bot.services.db)


async def test_a_wrong_anthropic_key_is_refused_without_retries(make_bot, fake_admin, fake_slack):
    fake_slack.add_user("U0ADMIN", name="admin", is_admin=True)
    bot = await make_bot(sources=sources_for(fake_admin, anthropic_key="sk-ant-admin-wrong"), admins=("U0ADMIN",))
    [report] = await syncer(bot).run("anthropic")
    assert not report.ok and "admin key refused" in report.errors[0]
    assert fake_admin.refused == 1  # 401 is not retried, and the other endpoints are not tried
    assert len([c for c in fake_slack.calls_to("chat.postMessage") if c.args.get("channel") == "U0ADMIN"]) == 1


async def test_buckets_that_keep_changing_leave_the_ledger_equal_to_their_latest_figures(make_bot, fake_admin):
    """Random growth, shrinkage and count = "all" / "none" switches over many polls: the ledger always
    holds exactly the latest figures of the counted buckets, and the rollups equal the raw events."""
    import random

    rng = random.Random(13)
    hours = [hour(this_hour(h)) for h in range(1, 6)]
    users = ["user-a", "user-b", None]
    bots = {mode: await make_bot(sources=sources_for(fake_admin, openai_count=mode)) for mode in ("all", "none")}
    for poll in range(8):
        expected = Decimal(0)
        for h in hours:
            rows = [completion(user=u, key=f"key_{i}", input_tokens=rng.randrange(0, 4) * 100_000,
                               cached=0, output=rng.randrange(0, 4) * 10_000) for i, u in enumerate(users)]
            fake_admin.openai_usage["completions"][h] = rows
            expected += sum(Decimal(r["input_tokens"]) * Decimal("2.5") / 10**6
                            + Decimal(r["output_tokens"]) * 10 / 10**6 for r in rows)
        mode = "none" if poll in (3, 4) else "all"
        [report] = await syncer(bots[mode]).run("openai")
        assert report.ok, report.errors
        total = sum((await ledger(bots["all"])).values(), Decimal(0))
        assert total == (expected if mode == "all" else 0), poll
        await assert_rollups_match_raw(bots["all"].services.db)


async def test_an_unknown_model_on_the_bill_side_only_is_still_named(make_bot, fake_admin, fake_slack):
    from bot.data_check import data_check_section

    fake_slack.add_user("U0ADMIN", name="admin", is_admin=True)
    fake_admin.openai_usage["completions"][hour(this_hour(1))] = [completion(model="acme-secret-9")]
    bot = await make_bot(sources=sources_for(fake_admin, openai_count="none"), admins=("U0ADMIN",))
    [report] = await syncer(bot).run("openai")
    assert report.ok and report.ledger_rows == 0
    blocks = await data_check_section(bot.services, "U0ADMIN")
    assert "acme-secret-9" in str(blocks)


async def test_since_reads_older_days_again_and_pulled_spend_reaches_budget_alerts(make_bot, fake_admin, fake_slack):
    fake_slack.add_user("U0ALICE", name="alice", email="alice@acme.test")
    old = hour(this_hour(24 * 5))
    fake_admin.openai_usage["completions"][old] = [completion(input_tokens=40_000_000, cached=0, output=0)]  # $100
    bot = await make_bot(sources=sources_for(fake_admin), identities={"key_alice": "U0ALICE"})
    [first] = await syncer(bot).run("openai")  # backfill_days = 2: five days ago is not read
    assert first.new == 0
    since = (this_hour(24 * 6)).date()
    [again] = await syncer(bot).run("openai", since=since)
    assert again.new == 1
    assert (await ledger(bot)) == {"U0ALICE": Decimal(100)}
    await bot.services.background.drain()
    dms = [c for c in fake_slack.calls_to("chat.postMessage") if c.args.get("channel") == "U0ALICE"]
    clock = bot.services.clock
    if clock.local_day(this_hour(24 * 5)).month == clock.today().month:  # (early in a month it is last month's)
        assert len(dms) == 1 and "50%" in str(dms[0].args)  # the default $200 budget: half of it


async def test_a_page_that_fails_to_commit_leaves_neither_its_buckets_nor_their_ledger_rows(
        make_bot, fake_admin, monkeypatch):
    from storage import sources_repo

    for h in range(1, 5):
        fake_admin.openai_usage["completions"][hour(this_hour(h))] = [completion(output=100_000 * h)]
    bot = await make_bot(sources=sources_for(fake_admin))
    real = sources_repo.insert_events
    calls = {"n": 0}

    async def dies_on_the_second_page(conn, rows):
        calls["n"] += 1
        if calls["n"] == 2:
            raise ValueError("the process died here")
        return await real(conn, rows)

    monkeypatch.setattr(sources_repo, "insert_events", dies_on_the_second_page)
    [first] = await syncer(bot).run("openai")
    assert not first.ok and first.new == 2  # page one is in; page two rolled back whole
    assert len(await bot.sql("SELECT 1 FROM provider_buckets")) == 2
    monkeypatch.setattr(sources_repo, "insert_events", real)
    [second] = await syncer(bot).run("openai")
    assert second.ok and (second.new, second.unchanged) == (2, 2)
    assert sum((await ledger(bot)).values()) == sum(Decimal("2.25") + h for h in range(1, 5))
    await assert_rollups_match_raw(bot.services.db)


async def test_each_enabled_source_polls_at_start_and_every_interval(make_bot, fake_admin):
    from bot.wiring import scheduled_jobs

    bot = await make_bot(sources=sources_for(fake_admin, anthropic_key=None))
    ids = {spec.id for spec in scheduled_jobs(bot.services)}
    assert {"source-openai:startup", "source-openai"} <= ids
    assert not any(i.startswith("source-anthropic") for i in ids)
