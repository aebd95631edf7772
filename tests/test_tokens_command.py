"""/tokens end to end: signed slash commands into the served bot, answers read from the fake Slack.

The clock is fixed at Wed 18 Nov 2026, 12:00 in New York (the organisation's zone): 12 days
are left in the month after today.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from sqlalchemy import select

from bot.amounts import AmountError, parse_amount
from bot.clock import SettableClock
from bot.commands import Invocation, parse, parse_channel, parse_user
from bot.views.help import Notice
from storage.models import ApproverAssignment, AuditRecord, Budget, DigestSubscription, Identity

TZ = ZoneInfo("America/New_York")
NOW = datetime(2026, 11, 18, 17, 0, tzinfo=UTC)  # Wed 18 Nov, 12:00 local


def local(day: int, hour: int = 12, minute: int = 0, month: int = 11) -> str:
    return datetime(2026, month, day, hour, minute, tzinfo=TZ).isoformat()


def usage(n, user, when, cost, *, model="gpt-4o", input_tokens=1000, output_tokens=100, **extra) -> dict:
    return {"id": f"e-{n}", "timestamp": when, "user": user, "model": model, "input_tokens": input_tokens,
            "output_tokens": output_tokens, "cost_usd": str(cost), **extra}


def flat(payload: dict) -> str:
    """Every text of a message's blocks, joined (what a person reads)."""
    out: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "text" and isinstance(value, str):
                    out.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(payload.get("blocks", []))
    return "\n".join(out)


def buttons(payload: dict) -> list[dict]:
    return [e for b in payload.get("blocks", []) if b["type"] == "actions" for e in b["elements"]]


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(TZ, NOW)


@pytest_asyncio.fixture
async def tbot(make_bot, fake_slack, clock):
    for user_id, name in [("U0ADA", "ada"), ("U0BEN", "ben"), ("U0CAT", "cat"), ("U0BOSS", "boss"),
                          ("U0ADMIN", "admin"), ("U0NEW", "newbie")]:
        fake_slack.add_user(user_id, name=name, email=f"{name}@acme.example")
    fake_slack.add_user("U0WSADMIN", name="owner", is_admin=True)
    return await make_bot(clock=clock, admins=("U0ADMIN",), approvers={"U0ADA": "U0BOSS"})


async def ask(bot, text: str, user: str = "U0ADA") -> dict:
    """Send `/tokens text` as `user`; return the ephemeral answer posted to the response_url."""
    name = f"cmd-{user}"
    before = len([c for c in bot.fake_slack.responses_to(name) if c.status == 200])
    status, body = await bot.command(text, user_id=user)
    assert status == 200, body
    calls = await bot.fake_slack.wait_for(
        "response_url", before + 1, where=lambda c: c.path == f"/response/{name}" and c.status == 200
    )
    answer = calls[-1].args
    assert answer["response_type"] == "ephemeral"
    assert answer["text"]
    return answer


async def ingest(bot, events: list[dict]) -> None:
    status, body = await bot.post_usage(events)
    assert status == 200, body
    assert body["accepted"] == len(events), body


# -- the card ----------------------------------------------------------------------------------------

async def test_me_card_matches_the_ledger(tbot):
    await ingest(tbot, [
        usage(1, "U0ADA", local(18, 9), "1.25", input_tokens=10_000, cached_input_tokens=4_000, output_tokens=2_000),
        usage(2, "U0ADA", local(18, 11), "2.50", model="claude-sonnet-4-5", input_tokens=20_000,
              output_tokens=3_000, reasoning_tokens=1_000),
        usage(3, "U0ADA", local(14), "10", input_tokens=1_000_000, output_tokens=730_000),
        usage(4, "U0ADA", local(2), "20"),
        usage(5, "U0ADA", local(1, 0, 30), "0.50"),  # 04:30 UTC on 1 Nov: November locally
        usage(6, "U0ADA", local(31, 23, 30, month=10), "100"),  # 03:30 UTC on 1 Nov: still October locally
        usage(7, "U0BEN", local(10), "50"),
        usage(8, "U0CAT", local(10), "10"),
    ])
    answer = await ask(tbot, "me")
    text = flat(answer)
    # the answer first: spent, left, share; then pace and the reset day
    assert text.startswith("Your AI spend in November\n*$34.25 spent, $165.75 left of your $200 budget (17%)*\n")
    # pace: 13.75 / 7 = 1.9642857.../day; 34.25 + 12 days of it = 57.82
    assert "On pace for about $57.82 by Nov 30 · resets Dec 1" in text
    assert "*Today*\n$3.75 · 35K tokens" in text
    assert "*Last 7 days*\n$13.75 · 1.77M tokens" in text
    # the month's breakdown in small print: 1,033,000 input (4,000 cached), 735,200 output (1,000 reasoning)
    assert "1.77M tokens this month: 1.03M input (4K cached), 735K output (1K reasoning)" in text
    assert "#2 of 3 people" in text
    assert "*Top model*\ngpt-4o · $31.75" in text and "then claude-sonnet-4-5 $2.50" in text
    [button] = buttons(answer)
    assert (button["action_id"], button["value"]) == ("request_budget", "U0ADA")
    assert answer["text"] == "$34.25 spent, $165.75 left of your $200 November budget (17%)"


async def test_someone_without_usage_gets_a_zero_card(tbot):
    answer = await ask(tbot, "", user="U0NEW")
    text = flat(answer)
    # one line on how usage gets here, the budget; no rows of zeros, no button
    assert "No AI usage from you yet. Your calls show up here once they go through a gateway" in text
    assert "Your budget: $200 a month" in text
    assert "$0" not in text and "*Today*" not in text
    assert buttons(answer) == []
    assert answer["text"] == "No AI usage from you yet this month; your budget is $200."


async def test_run_out_day_is_shown_when_it_falls_this_month(tbot):
    await ingest(tbot, [usage(1, "U0CAT", local(2), "26")] + [
        usage(10 + d, "U0CAT", local(d), "2") for d in range(12, 19)
    ])
    async with tbot.services.db.write() as session:
        session.add(Budget(user_key="U0CAT", monthly_usd=Decimal(50), set_by="U0ADMIN", set_at=NOW))
    text = flat(await ask(tbot, "me", user="U0CAT"))
    # $40 spent, $2/day: $50 is reached at the end of the 5th day after today
    assert "*$40 spent, $10 left of your $50 budget (80%)*" in text
    assert "At $2/day it runs out on Nov 23 · resets Dec 1" in text


async def test_user_known_only_by_email_gets_their_own_numbers(tbot, fake_slack):
    await ingest(tbot, [usage(1, "ed@acme.example", local(17), "7.25"), usage(2, "ed@acme.example", local(3), "1")])
    await tbot.services.identities.drain()  # Slack did not know the email yet: stored unlinked
    fake_slack.add_user("U0ED", name="ed", email="ed@acme.example")  # Ed joins Slack later
    text = flat(await ask(tbot, "me", user="U0ED"))
    assert "*$8.25 spent" in text
    assert "`ed@acme.example`" in text  # the card says where the spend came from
    async with tbot.services.db.session() as session:
        assert (await session.get(Identity, "ed@acme.example")).slack_user_id == "U0ED"
    rows = await tbot.sql("SELECT DISTINCT user_key FROM usage_events")
    assert rows == [("U0ED",)]


async def test_rate_limited_slack_is_retried_and_the_answer_arrives(tbot, fake_slack):
    await ingest(tbot, [usage(1, "U0ADA", local(18, 9), "4.20")])
    fake_slack.fail_next("users.info", retry_after=0)
    fake_slack.fail_next("response_url", retry_after=0)
    answer = await ask(tbot, "me")
    assert "*Today*\n$4.20" in flat(answer)
    assert [c.status for c in fake_slack.calls_to("users.info")][:2] == [429, 200]
    assert [c.status for c in fake_slack.responses_to("cmd-U0ADA")] == [429, 200]


async def test_acknowledged_within_3_seconds_with_a_large_database(tbot):
    start = NOW - timedelta(days=17)
    events = [
        usage(i, f"U0P{i % 400:04d}", (start + timedelta(minutes=i % 24_000)).isoformat(), Decimal(i % 97) / 100,
              model=("gpt-4o", "o3", "gpt-4o-mini")[i % 3])
        for i in range(20_000)
    ]
    for first in range(0, len(events), 10_000):
        result = await tbot.services.ingestor.ingest(events[first:first + 10_000], source="test")
        assert result.accepted == 10_000
    await tbot.services.ingestor.writer.settle()  # rollups trail events by up to a second
    for text in ("me", "top", "top week", "budget"):
        began = time.perf_counter()
        status, _ = await tbot.command(text, user_id="U0P0007")
        assert status == 200
        assert time.perf_counter() - began < 3.0
    calls = await tbot.fake_slack.wait_for("response_url", 4, where=lambda c: c.status == 200)
    assert all(c.args["blocks"] for c in calls)


# -- the leaderboard --------------------------------------------------------------------------------------

async def spenders(bot, count: int) -> None:
    await bot.post_usage([usage(i, f"U0S{i:03d}", local(16), 100 + i) for i in range(count)])


async def test_top_names_the_leaders_and_adds_the_callers_own_row(tbot):
    await spenders(tbot, 14)
    await ingest(tbot, [usage("ada", "U0ADA", local(16), "1"), usage("key", "key_ci", local(16), "500")])
    answer = await ask(tbot, "top")
    text = flat(answer)
    assert "Top spenders, November so far" in text
    # unlinked spend is listed, named as such, and not ranked: ranks count people
    assert "· key_ci _(unlinked id)_\n$500 · 1.1K" in text
    assert "1. <@U0S013>\n$113 · 1.1K" in text
    assert "<@U0S005>" in text and "<@U0S004>" not in text  # top 10 rows only
    assert "`ada` " not in text
    assert "*You: #15* of 15 people · $1 · 1.1K tokens" in text
    assert "15 people and 1 unlinked id · $1,992 · 17.6K tokens in total" in text
    assert answer["text"] == "Top spenders, November so far: $1,992 by 15 people; you are #15 with $1"


async def test_top_anonymous_hides_everyone_but_the_caller(tbot, make_bot, clock):
    anon = await make_bot(clock=clock, leaderboard="anonymous")
    await spenders(anon, 5)
    await ingest(anon, [usage("ada", "U0ADA", local(16), "102.5")])
    text = flat(await ask(anon, "top month"))
    assert "<@U0S" not in text
    assert "1. someone\n$104 · 1.1K" in text
    assert "3. *<@U0ADA> (you)*\n$102.50 · 1.1K" in text
    assert "names hidden" in text


async def test_top_off_says_so(make_bot, clock):
    off = await make_bot(clock=clock, leaderboard="off")
    await spenders(off, 3)
    answer = await ask(off, "top")
    assert "turned off" in flat(answer)
    assert "$10" not in flat(answer)


async def test_top_today_and_week_windows(tbot):
    await ingest(tbot, [
        usage(1, "U0ADA", local(18, 8), "5"), usage(2, "U0BEN", local(17), "9"),
        usage(3, "U0CAT", local(5), "50"), usage(4, "U0BEN", local(18, 1), "1"),
    ])
    today = flat(await ask(tbot, "top today"))
    assert "Top spenders today, Wed, Nov 18" in today
    assert today.index("<@U0ADA>") < today.index("<@U0BEN>") and "<@U0CAT>" not in today
    week = flat(await ask(tbot, "top week"))
    assert "last 7 days (Nov 12 – Nov 18)" in week
    assert "1. <@U0BEN>\n$10 · 2.2K" in week and "<@U0CAT>" not in week
    month = flat(await ask(tbot, "top"))
    assert "1. <@U0CAT>\n$50 · 1.1K" in month


async def test_a_long_leaderboard_stays_within_block_kit_limits(tbot):
    await spenders(tbot, 60)
    answer = await ask(tbot, "top", user="U0S000")  # last of 60: its own row is appended
    assert len(answer["blocks"]) <= 50
    assert "*You: #60* of 60 people" in flat(answer)


async def test_top_with_an_unknown_period_names_it(tbot):
    answer = await ask(tbot, "top yesterday")
    assert "I don't know `yesterday`" in flat(answer)
    assert "/tokens top [today|week|month]" in flat(answer)


# -- budgets and who may see them ----------------------------------------------------------------------------

async def test_budget_of_your_own(tbot):
    await ingest(tbot, [usage(1, "U0ADA", local(10), "60")])
    text = flat(await ask(tbot, "budget"))
    assert text.startswith("Your budget\n*$60 spent, $140 left of your $200 November budget (30%)*")
    assert "<@U0BOSS>" in text  # the approver is named
    assert "$140 left" in flat(await ask(tbot, "budget me"))


async def test_a_stranger_cannot_read_another_persons_budget(tbot):
    await ingest(tbot, [usage(1, "U0ADA", local(10), "60")])
    answer = await ask(tbot, "budget <@U0ADA|ada>", user="U0BEN")
    text = flat(answer)
    assert "You can see your own budget" in text and "<@U0ADA>" in text
    assert "$60" not in text and "$140" not in text and "$60" not in answer["text"]


@pytest.mark.parametrize("viewer", ["U0BOSS", "U0ADMIN", "U0WSADMIN"])
async def test_approvers_and_admins_can_read_a_budget(tbot, viewer):
    await ingest(tbot, [usage(1, "U0ADA", local(10), "60")])
    answer = await ask(tbot, "budget <@U0ADA|ada>", user=viewer)
    assert "<@U0ADA>: *$60 spent, $140 left of their $200 November budget (30%)*" in flat(answer)
    assert buttons(answer) == []  # only the person themselves asks for more


async def test_mentions_of_unknown_users_are_refused_politely(tbot):
    text = flat(await ask(tbot, "budget <@U0GHOST|ghost>"))
    assert "I can't find <@U0GHOST> in this workspace" in text
    text = flat(await ask(tbot, "budget @ben"))
    assert "`@ben` is not a mention of a person" in text
    text = flat(await ask(tbot, "admin set-budget <@U0GHOST> 50", user="U0ADMIN"))
    assert "I can't find <@U0GHOST>" in text
    async with tbot.services.db.session() as session:
        assert await session.get(Budget, "U0GHOST") is None


# -- help ---------------------------------------------------------------------------------------------------

async def test_help_lists_the_commands(tbot):
    text = flat(await ask(tbot, "help"))
    for command in ("/tokens top [today|week|month]", "/tokens budget [@person]", "/tokens request &lt;amount&gt;",
                    "/tokens admin set-budget @person &lt;amount&gt;", "/tokens admin digest #channel HH:MM"):
        assert command in text
    assert "<amount>" not in text and "<external-id>" not in text  # Slack would read those as links


async def test_unknown_words_get_help_naming_the_word(tbot):
    answer = await ask(tbot, "frobnicate now")
    assert "I don't know `frobnicate`" in flat(answer)
    assert "/tokens top" in flat(answer)
    assert "frobnicate" in answer["text"]
    assert "I don't know `admin frob`" in flat(await ask(tbot, "admin frob", user="U0ADMIN"))
    assert "I don't know `&lt;b&gt;`" in flat(await ask(tbot, "<b>"))


# -- admin commands -------------------------------------------------------------------------------------------

async def test_non_admins_are_refused(tbot):
    for text in ("admin set-budget <@U0BEN> 500", "admin link key_x <@U0BEN>", "admin approver <@U0BEN> <@U0CAT>",
                 "admin digest <#C0SPEND|ai-spend> 09:00"):
        assert "Only tokenbot admins can do that" in flat(await ask(tbot, text, user="U0BEN"))
    async with tbot.services.db.session() as session:
        assert await session.get(Budget, "U0BEN") is None
        assert (await session.scalars(select(DigestSubscription))).all() == []


@pytest.mark.parametrize(("typed", "amount"), [("50", "50"), ("$50", "50"), ("50.5", "50.5"), ("1,000", "1000")])
async def test_admin_set_budget_accepts_amount_forms(tbot, typed, amount):
    answer = await ask(tbot, f"admin set-budget <@U0BEN|ben> {typed}", user="U0ADMIN")
    assert "monthly budget is now" in flat(answer)
    async with tbot.services.db.session() as session:
        stored = await session.get(Budget, "U0BEN")
        audit = (await session.scalars(select(AuditRecord))).one()
    assert stored.monthly_usd == Decimal(amount) and stored.set_by == "U0ADMIN"
    assert (audit.action, audit.subject_user, audit.actor) == ("set_budget", "U0BEN", "U0ADMIN")
    card = flat(await ask(tbot, "me", user="U0BEN"))
    assert f"Your budget: {'$1,000' if amount == '1000' else '$50' if amount == '50' else '$50.50'} a month" in card


@pytest.mark.parametrize("typed", ["abc", "1,00", "-5", "5e3", "50.555", "$", "1.000,50", "2000000"])
async def test_admin_set_budget_refuses_other_amounts_with_an_example(tbot, typed):
    text = flat(await ask(tbot, f"admin set-budget <@U0BEN> {typed}", user="U0ADMIN"))
    assert ("`50`, `$50`, `50.5` or `1,000`" in text) or ("more than tokenbot accepts" in text)
    async with tbot.services.db.session() as session:
        assert await session.get(Budget, "U0BEN") is None


async def test_workspace_admins_are_admins(tbot):
    answer = await ask(tbot, "admin set-budget <@U0BEN> 75", user="U0WSADMIN")
    assert "monthly budget is now *$75* (was $200)" in flat(answer)


async def test_admin_link_moves_past_and_future_spend(tbot):
    await ingest(tbot, [usage(1, "key_live_abc", local(12), "12.5"), usage(2, "key_live_abc", local(13), "0.5")])
    answer = await ask(tbot, "admin link key_live_abc <@U0BEN|ben>", user="U0ADMIN")
    assert "Moved $13 of unlinked spend (2 events)" in flat(answer)
    await ingest(tbot, [usage(3, "key_live_abc", local(18, 10), "1")])
    text = flat(await ask(tbot, "me", user="U0BEN"))
    assert "*$14 spent" in text and "*Today*\n$1 · 1.1K tokens" in text
    assert await tbot.sql("SELECT DISTINCT user_key FROM usage_events") == [("U0BEN",)]
    # re-linking to someone else moves it again
    await ask(tbot, "admin link key_live_abc <@U0CAT>", user="U0ADMIN")
    assert "No AI usage from you yet" in flat(await ask(tbot, "me", user="U0BEN"))
    assert "*$14 spent" in flat(await ask(tbot, "me", user="U0CAT"))


async def test_admin_link_unwraps_slack_autolinked_emails(tbot):
    await ingest(tbot, [usage(1, "zed@partner.example", local(12), "3")])
    await ask(tbot, "admin link <mailto:zed@partner.example|zed@partner.example> <@U0CAT>", user="U0ADMIN")
    assert "*$3 spent" in flat(await ask(tbot, "me", user="U0CAT"))


async def test_admin_approver_lets_the_approver_read_the_budget(tbot):
    assert "You can see your own budget" in flat(await ask(tbot, "budget <@U0CAT>", user="U0BEN"))
    answer = await ask(tbot, "admin approver <@U0CAT|cat> <@U0BEN|ben>", user="U0ADMIN")
    assert "<@U0BEN> now approves <@U0CAT>" in flat(answer)
    async with tbot.services.db.session() as session:
        assert (await session.get(ApproverAssignment, "U0CAT")).approver == "U0BEN"
    assert "$200 left" in flat(await ask(tbot, "budget <@U0CAT>", user="U0BEN"))
    assert "Nobody approves their own" in flat(await ask(tbot, "admin approver <@U0CAT> <@U0CAT>", user="U0ADMIN"))


async def test_admin_digest_is_stored(tbot, fake_slack):
    answer = await ask(tbot, "admin digest <#C0SPEND|ai-spend> 9:30", user="U0ADMIN")
    assert "daily digest will be posted in <#C0SPEND> at 09:30 New York time" in flat(answer)
    await ask(tbot, "admin digest <#C0SPEND> 08:00", user="U0ADMIN")  # moves it
    async with tbot.services.db.session() as session:
        [row] = (await session.scalars(select(DigestSubscription))).all()
    assert (row.channel, row.local_time, row.period, row.top, row.created_by) == ("C0SPEND", "08:00", "day", 10,
                                                                                  "U0ADMIN")
    assert "is not a time" in flat(await ask(tbot, "admin digest <#C0SPEND> 25:00", user="U0ADMIN"))
    assert "is not a channel" in flat(await ask(tbot, "admin digest #general 09:00", user="U0ADMIN"))
    fake_slack.missing_channels.add("C0GONE")
    assert "I can't see <#C0GONE>" in flat(await ask(tbot, "admin digest <#C0GONE> 09:00", user="U0ADMIN"))


# -- extra commands and parsing ---------------------------------------------------------------------------------

async def test_extra_commands_are_dispatched(tbot, monkeypatch):
    seen: list[Invocation] = []

    async def zap(invocation: Invocation):
        seen.append(invocation)
        return Notice(f"zapped {invocation.text}")

    monkeypatch.setitem(tbot.services.tokens_words, "zap", zap)
    monkeypatch.setitem(tbot.services.tokens_words, "admin zap", zap)
    assert "zapped 50 eval run" in flat(await ask(tbot, "zap 50 eval run"))
    assert "zapped <@U0BEN>" in flat(await ask(tbot, "ADMIN zap <@U0BEN>"))
    assert [(i.user_id, i.text) for i in seen] == [("U0ADA", "50 eval run"), ("U0ADA", "<@U0BEN>")]
    assert seen[0].trigger_id and seen[0].channel_id == "C0GENERAL"


def test_parse():
    assert parse("").name == "me" and parse("  ME ").name == "me"
    assert parse("top").args == ("month",) and parse("top Week").args == ("week",)
    assert parse("top week month").word == "month"
    assert parse("budget <@U0ADA|ada>").args == ("<@U0ADA|ada>",)
    assert parse("admin set-budget <@U0ADA> 50").name == "admin set-budget"
    assert parse("bogus").word == "bogus"


def test_parse_amount():
    assert parse_amount("$1,234") == Decimal(1234) and parse_amount("$999,999.99") == Decimal("999999.99")
    assert parse_amount("0") == 0 and parse_amount("0.05") == Decimal("0.05")
    for bad in ("", "$12,345,678", "1,2345", "12,34", ".5", "5.", "1e3", "NaN", "$-5", "5 USD"):
        with pytest.raises(AmountError):
            parse_amount(bad)


def test_parse_mentions():
    assert parse_user("<@U0ADA|ada>") == "U0ADA" and parse_user("<@W0ADA>") == "W0ADA"
    assert parse_user("U0ADA") == "U0ADA"
    assert parse_user("@ada") is None and parse_user("<#C0X|x>") is None
    assert parse_channel("<#C0SPEND|ai-spend>") == "C0SPEND" and parse_channel("<#G0PRIV>") == "G0PRIV"
    assert parse_channel("#general") is None and parse_channel("<@U0ADA>") is None


async def test_a_tiny_pace_shows_no_run_out_day(tbot):
    await ingest(tbot, [usage(1, "U0BEN", local(18, 8), "0.00001", input_tokens=0, output_tokens=1)])
    text = flat(await ask(tbot, "me", user="U0BEN"))
    assert "On pace for about <$0.01 by Nov 30" in text and "runs out" not in text


async def test_the_database_tells_people_from_unlinked_ids_as_python_does(tbot):
    """Rankings count people in SQL (SQLite GLOB, PostgreSQL regex): the same answer as SLACK_USER_ID."""
    from sqlalchemy import literal

    from bot.config import SLACK_USER_ID
    from storage.queries import is_person

    keys = ["U0ADA", "W0XY", "U1", "u0ada", "U0AD-A", "key_live", "U0ADA@x", "ada@acme.com", "UAB", "U0Ab", "XU0ADA"]
    async with tbot.services.db.session() as session:
        for key in keys:
            matched = (await session.execute(select(is_person(session, literal(key))))).scalar()
            unmatched = (await session.execute(select(~is_person(session, literal(key))))).scalar()
            assert bool(matched) == bool(SLACK_USER_ID.match(key)) != bool(unmatched), key
