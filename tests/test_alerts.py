"""Budget alerts (SPEC 6): a DM the first time month-to-date spend crosses each threshold (the
approver hears at 100%), a forecast alert once a month, checked as usage arrives, once only
with several processes, without delaying the webhook's answer."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

from sqlalchemy import event as sa_event

from bot import budget_alerts as alerts
from bot.approvals import service
from bot.clock import SettableClock
from tests.support.approvals import TZ, buttons, dms, local, usage

ALICE, BOB, CAROL = "U0ALICE", "U0BOB", "U0CAROL"


async def start(make_bot, now=None, **overrides):
    clock = SettableClock(TZ, now or local(2026, 11, 20, 12))
    overrides.setdefault("approvers", {ALICE: BOB, CAROL: BOB})
    overrides.setdefault("default_monthly_usd", Decimal(100))
    return await make_bot(clock=clock, **overrides), clock


async def spend(bot, n, user: str, cost: str, when=None) -> None:
    status, body = await bot.post_usage([usage(n, user, cost, when or local(2026, 11, 2))])
    assert status == 200, body
    await bot.services.background.drain()


def alert_texts(fake, user: str) -> list[str]:
    return [m["text"] for m in dms(fake, user)]


async def claimed(bot) -> list[tuple]:
    return await bot.sql("SELECT user_key, kind, month, threshold FROM alerts_sent ORDER BY user_key, kind, threshold")


async def test_one_dm_per_threshold_per_month_and_the_approver_at_100(make_bot, fake_slack):
    bot, clock = await start(make_bot)
    await spend(bot, 1, ALICE, "55")  # early in the month: no pace, so no forecast in this test
    [first] = dms(fake_slack, ALICE)
    assert first["text"] == "You have used 55% of your $100 November budget: $45 left"
    assert buttons(first["blocks"])["request_budget"]["value"] == ALICE
    await spend(bot, 2, ALICE, "1")
    await spend(bot, 2, ALICE, "1")  # a duplicate event changes nothing either
    assert len(dms(fake_slack, ALICE)) == 1

    await spend(bot, 3, ALICE, "25")  # $81
    assert alert_texts(fake_slack, ALICE)[1] == "You have used 81% of your $100 November budget: $19 left"
    assert dms(fake_slack, BOB) == []
    await spend(bot, 4, ALICE, "20")  # $101
    assert alert_texts(fake_slack, ALICE)[2] == "You are $1 over your $100 November budget (101%)"
    [to_bob] = dms(fake_slack, BOB)
    assert to_bob["text"] == "<@U0ALICE> is $1 over their $100 November budget (101%)"
    assert "<@U0ALICE> is $1 over their $100 November budget (101%)" in str(to_bob["blocks"])
    await spend(bot, 5, ALICE, "50")
    assert len(dms(fake_slack, ALICE)) == 3 and len(dms(fake_slack, BOB)) == 1
    assert await claimed(bot) == [(ALICE, "threshold", "2026-11", t) for t in ("0.5", "0.8", "1")]

    # a new month starts over, in the organisation's time zone
    clock.set(local(2026, 12, 1, 0, 30))
    await spend(bot, 6, ALICE, "60", local(2026, 12, 1, 0, 10))
    assert alert_texts(fake_slack, ALICE)[3] == "You have used 60% of your $100 December budget: $40 left"


async def test_several_thresholds_at_once_send_one_dm(make_bot, fake_slack):
    bot, _ = await start(make_bot)
    created = await service.create_request(bot.services, ALICE, "20", None)  # a pending request: no button
    await spend(bot, 1, ALICE, "120")
    [dm] = dms(fake_slack, ALICE)
    assert dm["text"] == "You are $20 over your $100 November budget (120%)"  # where Alice is, not the 50% crossed
    assert created.outcome == "created"
    assert "request_budget" not in buttons(dm["blocks"]) and "request for more budget is waiting" in str(dm["blocks"])
    assert len(dms(fake_slack, BOB)) == 1
    assert [r[3] for r in await claimed(bot)] == ["0.5", "0.8", "1"]
    await spend(bot, 2, ALICE, "1")
    assert len(dms(fake_slack, ALICE)) == 1


async def test_claims_hold_across_processes(make_bot, fake_slack):
    bot, clock = await start(make_bot)
    other, _ = await start(make_bot, clock.now())
    bot.services.ingestor.after_ingest.clear()  # let the two processes race on the same crossing
    await bot.services.ingestor.ingest([usage(1, ALICE, "85", local(2026, 11, 2))], source="test")
    results = await asyncio.gather(alerts.check_users(bot.services, [ALICE]),
                                   alerts.check_users(other.services, [ALICE]),
                                   alerts.check_users(bot.services, [ALICE]))
    assert sorted(len(r) for r in results) == [0, 0, 1]
    [dm] = dms(fake_slack, ALICE)
    assert dm["text"].startswith("You have used 85%")


async def test_forecast_alert_names_the_day_the_budget_runs_out_once_a_month(make_bot, fake_slack):
    bot, clock = await start(make_bot, local(2026, 11, 10, 18))
    events = [usage(f"a{d}", ALICE, "6", local(2026, 11, d, 9)) for d in range(4, 11)]  # $42, $6 a day
    events += [usage(f"c{d}", CAROL, "1", local(2026, 11, d, 9)) for d in range(4, 11)]  # $7: fine all month
    status, _ = await bot.post_usage(events)
    assert status == 200
    await bot.services.background.drain()
    [dm] = dms(fake_slack, ALICE)  # $42 of $100, $58 left at $6 a day: out after 10 more days
    assert dm["text"] == "At this pace your $100 November budget runs out on Nov 20"
    assert "$6/day over the last 7 days" in str(dm["blocks"]) and "request_budget" in buttons(dm["blocks"])
    assert dms(fake_slack, CAROL) == []

    clock.set(local(2026, 11, 11, 18))
    await spend(bot, "a11", ALICE, "6", local(2026, 11, 11, 9))
    assert len(dms(fake_slack, ALICE)) == 1  # once a month
    assert [r[1] for r in await claimed(bot)] == ["forecast"]


async def test_only_this_months_spend_of_linked_people_alerts(make_bot, fake_slack):
    bot, _ = await start(make_bot)
    await spend(bot, 1, CAROL, "500", local(2026, 10, 20))  # a backfilled October
    await spend(bot, 2, "key_unlinked", "500")
    assert fake_slack.calls_to("chat.postMessage") == [] and await claimed(bot) == []


async def test_the_check_runs_after_the_answer_in_one_query_per_table(make_bot, fake_slack):
    bot, _ = await start(make_bot)
    fake_slack.fail_next("chat.postMessage", retry_after=1)  # Slack is slow: a 429 with Retry-After: 1
    started = time.monotonic()
    status, _ = await bot.post_usage([usage(1, ALICE, "60", local(2026, 11, 2))])
    answered = time.monotonic() - started
    assert status == 200 and answered < 0.8
    assert bot.services.background.tasks  # the check is still running, held by the process
    await bot.services.background.drain()
    assert len(dms(fake_slack, ALICE)) == 1 and time.monotonic() - started >= 1

    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    engine = bot.services.db.engine.sync_engine
    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        for people in (3, 60):
            statements.clear()
            await alerts.check_users(bot.services, [f"U0P{i:03d}" for i in range(people)])
            assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 6, people
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)


async def test_pace_is_checked_at_most_hourly_per_person_thresholds_every_time(make_bot, fake_slack):
    """Under heavy ingest the forecast query runs once an hour per person; thresholds never wait."""
    bot, clock = await start(make_bot, local(2026, 11, 10, 18))
    await spend(bot, "slow", CAROL, "1", local(2026, 11, 10, 9))  # a calm pace: checked, no forecast
    fast = [usage(f"c{d}", CAROL, "6", local(2026, 11, d, 9)) for d in range(4, 10)]
    status, _ = await bot.post_usage(fast)  # now $37 at $6 a day: would run out on the 21st
    assert status == 200
    await bot.services.background.drain()
    assert dms(fake_slack, CAROL) == []  # pace checked 0 minutes ago: not yet
    await spend(bot, "big", CAROL, "20", local(2026, 11, 10, 10))  # $57: the 50% threshold at once
    assert alert_texts(fake_slack, CAROL) == ["You have used 57% of your $100 November budget: $43 left"]

    clock.advance(minutes=61)
    await spend(bot, "later", CAROL, "0.01", local(2026, 11, 10, 11))
    assert alert_texts(fake_slack, CAROL)[1].startswith("At this pace your $100 November budget runs out on Nov")


async def test_a_limit_lowered_elsewhere_is_seen_within_a_minute(make_bot, fake_slack):
    """Between checks the hook trusts the last spend and limit for QUIET_SECONDS, then looks again."""
    bot, clock = await start(make_bot, local(2026, 11, 3, 12))
    await spend(bot, 1, CAROL, "10", local(2026, 11, 3, 9))  # 10% of $100: nothing
    async with bot.services.db.write() as session:
        from storage.models import Budget

        session.add(Budget(user_key=CAROL, monthly_usd=Decimal(20), set_by="U0OTHER", set_at=clock.now()))
    await spend(bot, 2, CAROL, "1", local(2026, 11, 3, 10))  # $11 of a now-$20 limit, but seen as $11 of $100
    assert dms(fake_slack, CAROL) == []
    clock.advance(seconds=alerts.QUIET_SECONDS + 1)
    await spend(bot, 3, CAROL, "0.5", local(2026, 11, 3, 11))
    assert alert_texts(fake_slack, CAROL) == ["You have used 58% of your $20 November budget: $8.50 left"]
