"""Channel digests: content from the rollups, posting once, retries, admin reports, chart, CLI (issue 4)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.budgets import budget_status
from bot.charts import OTHERS
from bot.clock import SettableClock
from bot.config import DigestConfig
from bot.digests import delivery
from bot.digests.builder import ANOMALY_MIN_USD, build_chart, build_digest, find_anomalies
from bot.digests.cli import demo_digest_text, digest_command
from bot.digests.delivery import MAX_ATTEMPTS, deliver
from bot.digests.jobs import run_subscription, sweep
from bot.digests.periods import Subscription
from bot.people import remember_people
from bot.views.digest import details_blocks, digest_blocks, digest_text, fallback_text
from bot.wiring import build_services
from storage.models import Budget, BudgetRaise
from tests.fakes.blockkit import validate_blocks
from tests.support.digests import CHANNEL, TZ, ev, ingest, local, png_info, runs

NOW = local(2026, 11, 25, 9, 5)  # a Wednesday; the daily digest covers Tuesday 24 November
DAY = date(2026, 11, 24)
ADMINS = ("U0ADMIN", "U0BOSS")
DAILY = DigestConfig(channel=CHANNEL, time=time(9, 0))


async def start(make_bot, now: datetime = NOW, **overrides):
    clock = SettableClock(TZ, now.astimezone(UTC))
    overrides.setdefault("digests", (DAILY,))
    overrides.setdefault("admins", ADMINS)
    overrides.setdefault("default_monthly_usd", Decimal(10_000))  # no budget alerts unless a test wants them
    return await make_bot(clock=clock, **overrides), clock


def posts(fake, *channels: str) -> list:
    """chat.postMessage calls to the digest channel (or to `channels`), not replies in a thread:
    budget alerts DM people too, and each digest's details go in its thread."""
    wanted = channels or (CHANNEL,)
    return [c for c in fake.calls_to("chat.postMessage")
            if c.args.get("channel") in wanted and not c.args.get("thread_ts")]


def scenario() -> list[dict]:
    """Alice spikes on Tuesday, Carol is near her budget, Bob spends pennies, a CI key is unlinked."""
    events = []
    for back in range(1, 15):  # 10-23 November: Alice $2 a day, Carol $5 a day
        day = DAY - timedelta(days=back)
        events.append(ev(f"a{back}", local(day.year, day.month, day.day, 10), "U0ALICE", cost="2.00"))
        events.append(ev(f"c{back}", local(day.year, day.month, day.day, 11), "U0CAROL", cost="5.00"))
    events += [
        ev("b-mon", local(2026, 11, 23, 15), "U0BOB", model="claude-sonnet-4-5", cost="1.00"),
        ev("a-tue", local(2026, 11, 24, 23, 59), "U0ALICE", cost="30.00", input_tokens=90_000),
        ev("b-tue", local(2026, 11, 24, 0, 1), "U0BOB", model="claude-sonnet-4-5", cost="4.00"),
        ev("c-tue", local(2026, 11, 24, 9), "U0CAROL", cost="10.00"),
        ev("c-tue-unpriced", local(2026, 11, 24, 9, 30), "U0CAROL", model="acme-x", cost=None,
           input_tokens=700, output_tokens=300),
        ev("ci-tue", local(2026, 11, 24, 3), "ci-key", model="gpt-4o-mini", cost="2.50"),
        ev("a-wed", local(2026, 11, 25, 8), "U0ALICE", cost="100.00"),  # today: not in yesterday's digest
        ev("a-next-day", local(2026, 11, 25, 0, 0), "U0ALICE", cost="7.00"),  # local midnight belongs to the 25th
    ]
    return events


async def seed_scenario(bot) -> None:
    services = bot.services
    await ingest(services, scenario())
    bot.fake_slack.add_user("U0ALICE", name="Alice Adams")
    await remember_people(services, [("U0CAROL", "Carol Chen")])
    async with services.db.write() as session:
        session.add(Budget(user_key="U0BOB", monthly_usd=Decimal(50), set_by="U0ADMIN", set_at=services.clock.now()))
        session.add(BudgetRaise(user_key="U0BOB", month="2026-11", amount_usd=Decimal(25),
                                created_at=services.clock.now()))
    await services.background.drain()  # budget alerts DM people after ingest; let them finish first


async def test_digest_view_model_from_rollups(make_bot):
    bot, _ = await start(make_bot, user_budgets={"U0CAROL": Decimal(100)},
                          default_monthly_usd=Decimal(200))
    await seed_scenario(bot)
    view = await build_digest(bot.services, Subscription(CHANNEL, time(9)), DAY, DAY)

    assert (view.first, view.last, view.period) == (DAY, DAY, "day")
    assert view.cost_usd == Decimal("46.50")
    assert view.events == 5 and view.people == 4
    assert view.previous_cost_usd == Decimal(8)
    assert view.baseline_cost_usd == Decimal(50) / 7  # 17-23 Nov: Alice 14 + Carol 35 + Bob 1
    assert [(r.rank, r.user_key, r.cost_usd, r.previous_cost_usd) for r in view.leaderboard] == [
        (1, "U0ALICE", Decimal(30), Decimal(2)),
        (2, "U0CAROL", Decimal(10), Decimal(5)),
        (3, "U0BOB", Decimal(4), Decimal(1)),
        (4, "ci-key", Decimal("2.5"), Decimal(0)),
    ]
    assert [r.name for r in view.leaderboard] == ["Alice Adams", "Carol Chen", None, None]
    assert view.leaderboard[0].tokens == 90_500
    assert [(m.model, m.cost_usd) for m in view.models] == [
        ("gpt-4o", Decimal(40)), ("claude-sonnet-4-5", Decimal(4)), ("gpt-4o-mini", Decimal("2.5")),
        ("acme-x", Decimal(0)),
    ]
    # month to date through Tuesday (Wednesday's $107 excluded), projected with the trailing 7-day pace
    assert view.month == "2026-11"
    assert view.month_to_date_usd == Decimal("145.5")
    assert view.projected_usd == Decimal("145.5") + Decimal("89.5") / 7 * 6
    assert view.budgets_usd == Decimal(375) and view.budget_people == 3  # 200 + 100 + (50 + 25)
    assert [(r.user_key, r.spent_usd, r.limit_usd) for r in view.over_budget] == [
        ("U0CAROL", Decimal(80), Decimal(100))
    ]
    # Alice's $30 is above 3x her $2 median; Bob's $4 is under the $5 floor; Carol's $10 is under 3x $5
    assert [(a.user_key, a.cost_usd, a.median_usd) for a in view.anomalies] == [("U0ALICE", Decimal(30), Decimal(2))]
    assert [(u.key, u.cost_usd) for u in view.unlinked] == [("ci-key", Decimal("2.5"))]
    assert [(u.model, u.events, u.tokens) for u in view.unpriced] == [("acme-x", 1, 1000)]

    text = digest_text(view)
    assert text.startswith("AI spend, Tue, Nov 24\n")
    assert "$46.50 on 96K tokens · up 481% on Monday · up 551% on the 7-day average" in text
    assert "Alice Adams" in text and "ci-key (unlinked)" in text and "acme-x" in text  # the operator's text
    blocks = digest_blocks(view)
    assert validate_blocks(blocks, surface="message") == []
    assert len(blocks) <= 6
    slack_text = json.dumps(blocks)
    assert "Carol Chen" in slack_text and "ci-key (unlinked)" in slack_text
    assert "U0BOB" in slack_text and "<@" not in slack_text  # names written out (or the id): nobody is pinged
    assert "acme-x" not in slack_text and "admin link" not in slack_text  # data to check: admins only


def test_anomaly_rule_median_floor_and_unlinked_ids():
    day = DAY
    history = [("U0OLD", day - timedelta(days=b), Decimal(2)) for b in range(1, 8)]  # 7 of 14 days at $2
    history += [("U0STEADY", day - timedelta(days=b), Decimal(4)) for b in range(1, 15)]
    candidates = [
        ("U0OLD", day, Decimal("3.01")),     # median of 7x$2 and 7x$0 is $1: 3.01 > 3, but under the $5 floor
        ("U0STEADY", day, Decimal(12)),      # exactly 3x the median: not above it
        ("U0NEW", day, Decimal(5)),          # nothing before: $5 is enough
        ("key_ci", day, Decimal(50)),        # unlinked ids are watched too
    ]
    found = find_anomalies(candidates, history)
    assert [(a.user_key, a.median_usd, a.is_person) for a in found] == [
        ("key_ci", 0, False), ("U0NEW", 0, True)]
    assert find_anomalies([("U0OLD", day, Decimal(6))], history)[0].median_usd == 1
    assert ANOMALY_MIN_USD == 5


async def test_bulk_budget_limits_equal_budget_status(make_bot):
    bot, _ = await start(make_bot, user_budgets={"U0CAROL": Decimal(100)},
                          default_monthly_usd=Decimal(200))
    await seed_scenario(bot)
    view = await build_digest(bot.services, Subscription(CHANNEL, time(9)), DAY, DAY)
    spent = {r.user_key: r for r in view.over_budget}
    assert spent, "the scenario puts someone past 80% of their budget"
    async with bot.services.db.session() as session:
        for key, row in spent.items():
            status = await budget_status(session, bot.settings, bot.services.clock, key, day=DAY)
            assert row.limit_usd == status.limit_usd
    assert spent["U0CAROL"].limit_usd == Decimal(100)


async def test_daily_digest_posts_on_schedule_once_with_chart(make_bot, fake_slack):
    bot, clock = await start(make_bot, now=local(2026, 11, 25, 8, 59))
    await seed_scenario(bot)
    assert await sweep(bot.services) == []  # 08:59: not yet
    assert posts(fake_slack) == []

    clock.set(local(2026, 11, 25, 9, 0).astimezone(UTC))
    [outcome] = await sweep(bot.services)
    assert outcome.status == "posted"
    [post] = posts(fake_slack)
    assert post.ok and post.args["channel"] == CHANNEL
    assert post.args["text"] == "AI spend, Tue, Nov 24: $46.50 across 96K tokens (up 481% on Monday)"
    assert post.args["metadata"]["event_payload"] == {"channel": CHANNEL, "period": "day", "period_start": "2026-11-24"}
    # the details, one click away: a reply in the digest's thread, then the chart
    [details] = fake_slack.thread_of(CHANNEL, outcome.message_ts)
    assert "*Models*" in json.dumps(details["blocks"]) and "*Unusual days (1)*" in json.dumps(details["blocks"])
    assert not details.get("reply_broadcast")  # the channel shows the short message only
    [chart] = fake_slack.uploaded_files
    assert chart.channel == CHANNEL and chart.thread_ts == outcome.message_ts
    width, height, info = png_info(chart.content)
    assert (width, height) == (1280, 960)  # drawn big enough to read on a phone
    # 30 days back, from the first day with spend (10 Nov): 15 bars, Tuesday marked last
    assert info["tokenbot-days"] == "15" and info["tokenbot-last"] == "2026-11-24"
    assert info["tokenbot-period"] == "day"
    [asked] = fake_slack.calls_to("files.getUploadURLExternal")
    assert "Tue, Nov 24: $46.50, up 481% on the day before" in asked.args["alt_txt"]  # the takeaway, in words
    rows = await bot.sql("SELECT status, message_ts, attempts FROM digest_runs")
    assert rows == [("posted", outcome.message_ts, 1)]

    # later sweeps, the cron job, and a restarted process post nothing more
    clock.advance(minutes=5)
    assert [o.status for o in await sweep(bot.services)] == ["already-posted"]
    assert (await run_subscription(bot.services, CHANNEL, "day")).status == "already-posted"
    restarted = await make_bot(clock=clock, digests=(DAILY,))
    assert [o.status for o in await sweep(restarted.services)] == ["already-posted"]
    assert len(posts(fake_slack)) == 1


async def test_two_schedulers_in_one_database_post_once(make_bot, fake_slack):
    bot, clock = await start(make_bot)
    other = await make_bot(clock=clock, digests=(DAILY,), admins=ADMINS)
    await seed_scenario(bot)
    results = await asyncio.gather(*(sweep(b.services) for b in (bot, other, bot, other)))
    statuses = sorted(o.status for outcomes in results for o in outcomes)
    assert statuses.count("posted") == 1 and set(statuses) <= {"posted", "busy", "already-posted"}
    assert len(posts(fake_slack)) == 1


async def test_missed_digest_posted_when_back_same_day_only(make_bot, fake_slack):
    # down for all of Wednesday 25th; back on Thursday 26th at 07:00
    bot, clock = await start(make_bot, now=local(2026, 11, 26, 7, 0))
    await seed_scenario(bot)
    assert await sweep(bot.services) == []  # Tuesday's digest (due Wednesday) is not posted a day late
    clock.set(local(2026, 11, 26, 14, 30).astimezone(UTC))  # the bot was down at 09:00, back at 14:30
    [outcome] = await sweep(bot.services)
    assert (outcome.status, outcome.period_start) == ("posted", date(2026, 11, 25))
    assert [r.period_start for r in await runs(bot.services)] == [date(2026, 11, 25)]
    assert len(posts(fake_slack)) == 1


async def test_restart_between_claim_and_post(make_bot, fake_slack):
    bot, clock = await start(make_bot)
    await seed_scenario(bot)
    # a process claims the run and dies before posting
    token, attempt = await delivery.claim(bot.services, CHANNEL, "day", DAY)
    assert attempt == 1
    restarted = await make_bot(clock=clock, digests=(DAILY,))
    assert [o.status for o in await sweep(restarted.services)] == ["busy"]  # its lease still holds
    clock.advance(minutes=9)
    assert [o.status for o in await sweep(restarted.services)] == ["busy"]
    assert posts(fake_slack) == []
    clock.advance(minutes=2)  # the lease ran out: taken over and posted, once
    [outcome] = await sweep(restarted.services)
    assert outcome.status == "posted"
    assert await bot.sql("SELECT status, attempts FROM digest_runs") == [("posted", 2)]
    # the dead holder's token can no longer change the run
    assert not await delivery.update_mine(bot.services, CHANNEL, "day", DAY, token, status="failed")
    await sweep(bot.services)
    assert len(posts(fake_slack)) == 1


async def test_slack_down_is_retried_with_backoff(make_bot, fake_slack):
    bot, clock = await start(make_bot)
    await seed_scenario(bot)
    fake_slack.fail_next("chat.postMessage", error="internal_error")
    [outcome] = await sweep(bot.services)
    assert (outcome.status, outcome.detail) == ("retrying", "internal_error")
    [run] = await runs(bot.services)
    assert (run.status, run.attempts, run.last_error) == ("claimed", 1, "internal_error")
    assert run.lease_until == bot.services.clock.now() + timedelta(minutes=2)
    clock.advance(minutes=1)  # inside the 2-minute backoff
    assert [o.status for o in await sweep(bot.services)] == ["busy"]
    # 429 beyond the client's own three retries (Retry-After: 0)
    fake_slack.fail_next("chat.postMessage", status=429, retry_after=0, times=4)
    clock.advance(minutes=2)
    [outcome] = await sweep(bot.services)
    assert (outcome.status, outcome.detail) == ("retrying", "ratelimited")
    clock.advance(minutes=3)
    assert [o.status for o in await sweep(bot.services)] == ["busy"]  # backoff after attempt 2 is 4 minutes
    clock.advance(minutes=2)
    [outcome] = await sweep(bot.services)
    assert outcome.status == "posted"
    assert await bot.sql("SELECT status, attempts, last_error FROM digest_runs") == [("posted", 3, None)]
    delivered = [c for c in posts(fake_slack) if c.ok]
    assert len(delivered) == 1 and delivered[0].args["channel"] == CHANNEL
    assert not posts(fake_slack, *ADMINS)


async def test_slack_unreachable_is_a_transient_failure(make_bot):
    bot, clock = await start(make_bot)
    await seed_scenario(bot)
    services = build_services(bot.settings, clock=clock)
    # nothing listens on port 9; no retry handlers, so the refusal surfaces at once
    services.slack = AsyncWebClient(token=bot.settings.slack_bot_token, base_url="http://127.0.0.1:9/api/",
                                    retry_handlers=[])
    try:
        [outcome] = await sweep(services)
    finally:
        await services.close()
    assert outcome.status == "retrying" and "Connect" in outcome.detail
    clock.advance(minutes=3)
    assert [o.status for o in await sweep(bot.services)] == ["posted"]  # Slack is back
    assert [(r.status, r.attempts) for r in await runs(bot.services)] == [("posted", 2)]


async def test_gives_up_after_max_attempts_and_tells_admins_once(make_bot, fake_slack):
    bot, clock = await start(make_bot)
    await seed_scenario(bot)
    fake_slack.fail_next("chat.postMessage", error="fatal_error", times=MAX_ATTEMPTS)
    statuses = []
    for _ in range(MAX_ATTEMPTS + 2):
        statuses += [o.status for o in await sweep(bot.services)]
        clock.advance(minutes=31)
    assert statuses == ["retrying"] * (MAX_ATTEMPTS - 1) + ["failed"] * 3
    assert await bot.sql("SELECT status, attempts FROM digest_runs") == [("failed", MAX_ATTEMPTS)]
    dms = posts(fake_slack, *ADMINS)
    assert sorted(c.args["channel"] for c in dms) == sorted(ADMINS)
    assert "fatal_error" in dms[0].args["text"]


@pytest.mark.parametrize("problem", ["not_in_channel", "channel_not_found", "is_archived"])
async def test_permanent_error_fails_and_reports_to_admins_once(make_bot, fake_slack, problem):
    bot, clock = await start(make_bot)
    other = await make_bot(clock=clock, digests=(DAILY,), admins=ADMINS)
    await seed_scenario(bot)
    {"not_in_channel": fake_slack.not_in_channels, "channel_not_found": fake_slack.missing_channels,
     "is_archived": fake_slack.archived_channels}[problem].add(CHANNEL)
    [outcome] = await sweep(bot.services)
    assert (outcome.status, outcome.detail) == ("failed", problem)
    for _ in range(3):
        clock.advance(minutes=20)
        for b in (bot, other):
            assert [o.status for o in await sweep(b.services)] == ["failed"]
    assert await bot.sql("SELECT status, attempts, last_error FROM digest_runs") == [("failed", 1, problem)]
    dms = posts(fake_slack, *ADMINS)
    assert sorted(c.args["channel"] for c in dms) == sorted(ADMINS)
    assert problem in dms[0].args["text"] and f"<#{CHANNEL}>" in dms[0].args["text"]
    assert len(posts(fake_slack)) == 1


async def test_chart_failure_still_posts_the_text(make_bot, fake_slack):
    bot, _ = await start(make_bot)
    await seed_scenario(bot)
    fake_slack.fail_next("files.getUploadURLExternal", error="internal_error")
    [outcome] = await sweep(bot.services)
    assert outcome.status == "posted"
    assert fake_slack.messages_in(CHANNEL) and fake_slack.uploaded_files == []
    assert await bot.sql("SELECT status FROM digest_runs") == [("posted",)]


async def test_privacy_anonymous_and_off(make_bot, fake_slack):
    anonymous = replace(DAILY, leaderboard="anonymous")
    off = DigestConfig(channel="C0OFF", time=time(9, 0), leaderboard="off")
    bot, _ = await start(make_bot, digests=(anonymous, off), user_budgets={"U0CAROL": Decimal(100)},
                          default_monthly_usd=Decimal(200))
    await seed_scenario(bot)
    outcomes = await sweep(bot.services)
    assert sorted(o.status for o in outcomes) == ["posted", "posted"]

    [anon] = fake_slack.channel_messages(CHANNEL)
    [anon_thread] = fake_slack.thread_of(CHANNEL, anon["ts"])
    anon_text = json.dumps([anon["blocks"], anon_thread["blocks"]], ensure_ascii=False)
    assert '"1. someone"' in anon_text and '"$30"' in anon_text and "names hidden" in anon_text
    for secret in ("U0ALICE", "Alice", "Carol", "U0BOB", "ci-key"):
        assert secret not in anon_text
    assert "1 person past 80% of budget" in anon_text and "1 person is past 80%" in anon_text
    assert "unlinked" not in anon_text  # data to check is for admins, not the channel

    [hidden] = fake_slack.channel_messages("C0OFF")
    off_text = json.dumps(hidden["blocks"], ensure_ascii=False)
    assert '"table"' not in off_text and "$30" not in off_text
    assert "$46.50" in off_text and "gpt-4o" in off_text  # totals and models stay
    for secret in ("U0ALICE", "Alice", "Carol", "U0BOB"):
        assert secret not in off_text
    # charts follow the privacy: stacked by model, never by person
    assert len(fake_slack.uploaded_files) == 2
    for upload in fake_slack.uploaded_files:
        series = png_info(upload.content)[2]["tokenbot-series"].split(",")
        assert series[0] == "gpt-4o" and "Alice Adams" not in series


async def test_chart_stacks_by_people_or_models_whichever_names_more(make_bot):
    bot, _ = await start(make_bot)
    await seed_scenario(bot)
    await ingest(bot.services, [ev(f"x{i}", local(2026, 11, 20), f"U0X{i:02d}", cost="0.50") for i in range(6)])
    chart = await build_chart(bot.services, Subscription(CHANNEL, time(9)), DAY)
    # 30 days back from Tuesday, starting at the first day with spend: 10 to 24 November
    assert chart.days[0] == date(2026, 11, 10) and chart.days[-1] == DAY and len(chart.days) == 15
    # three models carry everything (acme-x is unpriced): stacked by model, nothing left to a grey band
    assert [s.label for s in chart.series] == ["gpt-4o", "claude-sonnet-4-5", "gpt-4o-mini"]
    assert chart.total == Decimal("145.5") + Decimal(3)  # the month to Tuesday plus the six newcomers
    assert sum(s.values[-1] for s in chart.series) == Decimal("46.50")

    # Alice and Carol spread $100 over ten models: now three people name more of it than three models
    await ingest(bot.services, [ev(f"m{i}{who}", local(2026, 11, 21), who, model=f"model-{i}", cost="5.00")
                                for i in range(10) for who in ("U0ALICE", "U0CAROL")])
    chart = await build_chart(bot.services, Subscription(CHANNEL, time(9)), DAY)
    assert [s.label for s in chart.series] == ["Carol Chen", "Alice Adams", "U0BOB", OTHERS]
    assert sum(chart.series[-1].values) == Decimal("5.5")  # ci-key and the six newcomers
    assert "Carol Chen has the largest share" in chart.alt_text()

    # privacy "anonymous": never by person, whatever would name more
    anonymous = await build_chart(bot.services, Subscription(CHANNEL, time(9), leaderboard="anonymous"), DAY)
    assert "Carol Chen" not in [s.label for s in anonymous.series] and anonymous.series[-1].label == "other models"


async def test_quiet_day_gets_a_short_friendly_digest(make_bot, fake_slack):
    bot, _ = await start(make_bot)
    await ingest(bot.services, [ev("old", local(2026, 11, 20), "U0ALICE", cost="3.00")])
    [outcome] = await sweep(bot.services)
    assert outcome.status == "posted"
    [message] = fake_slack.messages_in(CHANNEL)  # no details, no chart
    assert len(message["blocks"]) == 3 and "quiet" in message["text"]
    assert "no AI usage was recorded on Tuesday" in json.dumps(message["blocks"])
    assert "November so far $3" in json.dumps(message["blocks"])  # month to date is still there
    assert fake_slack.uploaded_files == []


async def test_block_kit_valid_for_200_people_and_50_models(make_bot, fake_slack):
    top50 = replace(DAILY, top=50)
    bot, _ = await start(make_bot, digests=(top50,))
    events, names = [], []
    for p in range(200):
        user = f"U0P{p:04d}"
        names.append((user, f"Person <{p}> & a very long display name that goes on and on {p:03d}"[:80]))
        events.append(ev(f"p{p}", local(2026, 11, 24, 10), user, model=f"model-{p % 50:02d}-with-a-long-name",
                         cost=f"{10 + p}.25"))
        events.append(ev(f"q{p}", local(2026, 11, 24, 11), user, model=f"unpriced-{p % 50:02d}", cost=None))
        events.append(ev(f"h{p}", local(2026, 11, 20, 11), user, cost="0.10"))
    events += [ev(f"k{k}", local(2026, 11, 24, 12), f"key-{k:03d}-{'x' * 60}", cost="1.00") for k in range(60)]
    await ingest(bot.services, events)
    await remember_people(bot.services, names)
    async with bot.services.db.write() as session:  # $1 budgets, set after ingest: no 200 budget-alert DMs
        session.add_all(Budget(user_key=user, monthly_usd=Decimal(1), set_by="U0ADMIN", set_at=NOW)
                        for user, _ in names)
    view = await build_digest(bot.services, Subscription(CHANNEL, time(9), top=50), DAY, DAY)
    assert len(view.leaderboard) == 50 and len(view.over_budget) == 200 and len(view.anomalies) == 200
    assert len(view.unpriced) == 50 and len(view.unlinked) == 60
    blocks = digest_blocks(view)
    assert validate_blocks(blocks, surface="message") == []
    assert len(blocks) <= 6
    table = next(b for b in blocks if b["type"] == "table")
    assert len(table["rows"]) == 6  # a header and the top 5; the rest of the top 50 is in the thread
    assert table["rows"][1][0]["text"].startswith("1. Person <199> & a very long")  # raw text: nothing parsed
    details = details_blocks(view)
    assert validate_blocks(details, surface="message") == []
    assert "Person &lt;198&gt; &amp; a very long" in json.dumps(details)  # mrkdwn lists are escaped
    [outcome] = await sweep(bot.services)  # and Slack (the strict fake) takes it
    assert outcome.status == "posted"
    assert len(fallback_text(view)) < 300


async def test_weekly_digest_on_mondays_covers_last_week(make_bot, fake_slack):
    weekly = DigestConfig(channel="C0WEEKLY", time=time(8, 30), period="week")
    bot, clock = await start(make_bot, now=local(2026, 11, 30, 8, 29), digests=(weekly,))  # Monday, a minute early
    await seed_scenario(bot)
    assert await sweep(bot.services) == []
    clock.set(local(2026, 12, 1, 9, 0).astimezone(UTC))  # never on a Tuesday
    assert await sweep(bot.services) == []
    clock.set(local(2026, 11, 30, 8, 30).astimezone(UTC))
    [outcome] = await sweep(bot.services)
    assert (outcome.status, outcome.period_start) == ("posted", date(2026, 11, 23))
    [message] = fake_slack.channel_messages("C0WEEKLY")
    assert message["text"].startswith("AI spend, week of Nov 23 – 29: $161.50")
    blocks = json.dumps(message["blocks"])
    assert "on the week before" in blocks and "on the 4-week average" in blocks  # week over week
    assert "November so far" in blocks  # the month so far
    assert "*Biggest movers*: Alice Adams up" in blocks  # who moved most on the week before
    [chart] = fake_slack.uploaded_files
    info = png_info(chart.content)[2]
    assert info["tokenbot-period"] == "week" and info["tokenbot-last"] == "2026-11-23"  # the week's Monday


async def test_cli_digest_posts_through_the_claim_path(make_bot, fake_slack):
    bot, _ = await start(make_bot)
    await seed_scenario(bot)
    lines: list[str] = []
    assert await digest_command(bot.settings, services=bot.services, out=lines.append) == 0
    assert await digest_command(bot.settings, services=bot.services, out=lines.append,
                                channel=CHANNEL, day=DAY) == 0
    assert lines[0].startswith(f"posted the day digest for {CHANNEL} (2026-11-24)")
    assert lines[1] == f"the day digest for {CHANNEL} (2026-11-24) was already posted"
    assert len(posts(fake_slack)) == 1
    # a failed run is tried again from the command line (the channel was fixed)
    fake_slack.not_in_channels.add("C0OTHER")
    assert await digest_command(bot.settings, services=bot.services, out=lines.append, channel="C0OTHER") == 1
    fake_slack.not_in_channels.clear()
    assert await digest_command(bot.settings, services=bot.services, out=lines.append, channel="C0OTHER") == 0
    assert await bot.sql("SELECT channel, status, attempts FROM digest_runs ORDER BY channel") == [
        ("C0AISPEND", "posted", 1), ("C0OTHER", "posted", 2),
    ]


def test_cli_dry_run_prints_text_and_block_kit(settings, monkeypatch, capsys, tmp_path):
    from bot.cli import main

    config = tmp_path / "tokenbot.toml"
    config.write_text('timezone = "America/New_York"\n[[digests]]\nchannel = "C0AISPEND"\ntime = "09:00"\n')
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("TOKENBOT_CONFIG", str(config))
    monkeypatch.chdir(tmp_path)

    async def seed() -> None:
        services = build_services(settings, with_slack=False)
        try:
            await ingest(services, scenario())
        finally:
            await services.close()

    asyncio.run(seed())
    assert main(["digest", "--dry-run", "--date", "2026-11-24"]) == 0
    out = capsys.readouterr().out
    text, _, blocks_json = out.partition("\n{")
    assert "AI spend, Tue, Nov 24" in text and "$46.50" in text
    payload = json.loads("{" + blocks_json)
    assert payload["channel"] == CHANNEL and payload["text"].startswith("AI spend, Tue, Nov 24")
    assert validate_blocks(payload["blocks"], surface="message") == []
    # posting needs the bot token; the error is one line
    assert main(["digest", "--date", "2026-11-24"]) == 2
    assert capsys.readouterr().err.strip() == (
        "tokenbot: SLACK_BOT_TOKEN: required by `tokenbot digest` (or use --dry-run)"
    )


async def test_demo_prints_yesterdays_digest(make_bot):
    bot, _ = await start(make_bot)
    await seed_scenario(bot)
    text = await demo_digest_text(bot.services)
    assert "AI spend, Tue, Nov 24" in text and "Top 4 by cost" in text


async def test_a_process_without_slack_claims_nothing(settings):
    services = build_services(replace(settings, slack_bot_token=None), clock=SettableClock(TZ, NOW))
    try:
        outcome = await deliver(services, Subscription(CHANNEL, time(9)), DAY, DAY)
        assert (outcome.status, outcome.detail) == ("failed", "SLACK_BOT_TOKEN is not set")
        assert await runs(services) == []  # a real bot can still post it
    finally:
        await services.close()
