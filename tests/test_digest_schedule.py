"""When digests go out: local times, Mondays, daylight-saving changes, the jobs in the scheduler (issue 4)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.clock import SettableClock
from bot.config import DigestConfig
from bot.digests import jobs as digest_jobs
from bot.digests.builder import build_digest
from bot.digests.jobs import sweep
from bot.digests.periods import Subscription, covered_by_post, latest_complete, load_subscriptions, period_containing
from bot.scheduler import build_scheduler
from bot.wiring import build_services, scheduled_jobs
from storage.models import DigestSubscription
from tests.support.digests import CHANNEL, TZ, ev, ingest, local, runs


def test_periods():
    wednesday, monday = date(2026, 11, 25), date(2026, 11, 30)
    assert covered_by_post("day", wednesday) == (date(2026, 11, 24), date(2026, 11, 24))
    assert covered_by_post("day", date(2026, 12, 1)) == (date(2026, 11, 30), date(2026, 11, 30))
    assert covered_by_post("week", wednesday) is None
    assert covered_by_post("week", monday) == (date(2026, 11, 23), date(2026, 11, 29))
    assert period_containing("week", wednesday) == (date(2026, 11, 23), date(2026, 11, 29))
    assert period_containing("week", date(2026, 11, 29)) == (date(2026, 11, 23), date(2026, 11, 29))
    assert latest_complete("week", wednesday) == (date(2026, 11, 16), date(2026, 11, 22))
    assert latest_complete("week", monday) == (date(2026, 11, 23), date(2026, 11, 29))
    assert latest_complete("day", date(2026, 1, 1)) == (date(2025, 12, 31), date(2025, 12, 31))


def fire_times(trigger: CronTrigger, start: datetime, end: datetime) -> list[datetime]:
    """Every instant APScheduler's trigger would fire between start and end."""
    times, previous, now = [], None, start
    while True:
        moment = trigger.get_next_fire_time(previous, now)
        if moment is None or moment > end:
            return times
        times.append(moment.astimezone(UTC))
        previous, now = moment, moment


async def walk(services, clock: SettableClock, subs: list[Subscription], start: datetime, end: datetime) -> None:
    """Run the bot's jobs as the scheduler would between start and end: the sweep every 30 minutes and
    each subscription's cron job at the instants its real APScheduler trigger gives (fired ones twice)."""
    moments = []
    step = start.astimezone(UTC)
    while step <= end:
        moments.append((step, None))
        step += timedelta(minutes=30)
    for sub in subs:
        trigger = digest_jobs.cron_spec(sub, services.settings).trigger
        for moment in fire_times(trigger, start, end):
            moments += [(moment, sub), (moment, sub)]  # coalesced or not, a doubled fire changes nothing
    for moment, sub in sorted(moments, key=lambda m: (m[0], m[1] is None)):
        clock.set(moment)
        if sub is None:
            await sweep(services)
        else:
            await digest_jobs.run_subscription(services, sub.channel, sub.period)


async def test_spring_forward_neither_skips_nor_doubles(make_bot, fake_slack):
    # 2026-03-08 02:00 EST -> 03:00 EDT: "02:30" does not exist that day
    gap = DigestConfig(channel="C0GAP", time=time(2, 30))
    nine = DigestConfig(channel="C0NINE", time=time(9, 0))
    clock = SettableClock(TZ, local(2026, 3, 7, 0).astimezone(UTC))
    bot = await make_bot(clock=clock, digests=(gap, nine))
    subs = [Subscription.from_config(gap), Subscription.from_config(nine)]
    await walk(bot.services, clock, subs, local(2026, 3, 7, 0), local(2026, 3, 10, 12))

    done = await runs(bot.services)
    assert all(r.status == "posted" for r in done)
    days = [date(2026, 3, d) for d in (6, 7, 8, 9)]  # one a day, posted 7 to 10 March
    assert [r.period_start for r in done if r.channel == "C0GAP"] == days
    assert [r.period_start for r in done if r.channel == "C0NINE"] == days
    posted = {(r.channel, r.period_start): r.posted_at for r in done}
    # 02:30 on the 8th does not exist: posted at 03:30 EDT (07:30 UTC); the next day 02:30 EDT is 06:30 UTC
    assert posted[("C0GAP", date(2026, 3, 6))] == datetime(2026, 3, 7, 7, 30, tzinfo=UTC)  # 02:30 EST
    assert posted[("C0GAP", date(2026, 3, 7))] == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    assert posted[("C0GAP", date(2026, 3, 8))] == datetime(2026, 3, 9, 6, 30, tzinfo=UTC)
    assert posted[("C0NINE", date(2026, 3, 6))] == datetime(2026, 3, 7, 14, 0, tzinfo=UTC)  # 09:00 EST
    assert posted[("C0NINE", date(2026, 3, 7))] == datetime(2026, 3, 8, 13, 0, tzinfo=UTC)  # 09:00 EDT
    posted_to = [c.args["channel"] for c in fake_slack.calls_to("chat.postMessage")]
    channels = Counter(c for c in posted_to if c.startswith("C"))
    assert channels == {"C0GAP": 4, "C0NINE": 4}


async def test_fall_back_does_not_double(make_bot, fake_slack):
    # 2026-11-01 02:00 EDT -> 01:00 EST: "01:30" happens twice, and APScheduler fires at both
    ambiguous = DigestConfig(channel="C0TWICE", time=time(1, 30))
    sub = Subscription.from_config(ambiguous)
    clock = SettableClock(TZ, local(2026, 10, 31, 0).astimezone(UTC))
    bot = await make_bot(clock=clock, digests=(ambiguous,))
    trigger = digest_jobs.cron_spec(sub, bot.settings).trigger
    fires = fire_times(trigger, local(2026, 11, 1, 0), local(2026, 11, 1, 3))
    assert len(fires) == 2  # the doubled fire is real; the database key is what stops a second post
    await walk(bot.services, clock, [sub], local(2026, 10, 31, 0), local(2026, 11, 2, 12))
    done = await runs(bot.services)
    assert [r.period_start for r in done] == [date(2026, 10, 30), date(2026, 10, 31), date(2026, 11, 1)]
    assert {r.status for r in done} == {"posted"}
    posted = {r.period_start: r.posted_at for r in done}
    assert posted[date(2026, 10, 31)] == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT, the first of two
    assert posted[date(2026, 11, 1)] == datetime(2026, 11, 2, 6, 30, tzinfo=UTC)  # 01:30 EST
    assert len([c for c in fake_slack.calls_to("chat.postMessage") if c.args["channel"] == "C0TWICE"]) == 3


async def test_day_boundaries_follow_the_local_calendar_across_dst(make_bot):
    """Local midnights on both sides of the spring-forward change, in daily and weekly digests."""
    clock = SettableClock(TZ, local(2026, 3, 10, 9).astimezone(UTC))
    bot = await make_bot(clock=clock)
    edges = [
        ("sat-late", local(2026, 3, 7, 23, 59), "1.00"),   # Saturday, EST
        ("sun-early", local(2026, 3, 8, 0, 0), "2.00"),    # Sunday 00:00 EST = 05:00 UTC
        ("sun-gap", datetime(2026, 3, 8, 7, 30, tzinfo=UTC), "4.00"),  # 03:30 EDT, just after the jump
        ("sun-late", local(2026, 3, 8, 23, 59), "8.00"),   # Sunday 23:59 EDT = Monday 03:59 UTC
        ("mon-early", local(2026, 3, 9, 0, 0), "16.00"),   # Monday 00:00 EDT = 04:00 UTC
        ("prev-sun", local(2026, 3, 1, 23, 59), "32.00"),  # the Sunday before the week
        ("week-mon", local(2026, 3, 2, 0, 0), "64.00"),    # the week's first minute
    ]
    await ingest(bot.services, [ev(name, when, cost=cost) for name, when, cost in edges])
    sub = Subscription(CHANNEL, time(9))
    sunday = await build_digest(bot.services, sub, date(2026, 3, 8), date(2026, 3, 8))  # a 23-hour day
    assert sunday.cost_usd == Decimal(14) and sunday.events == 3
    assert sunday.previous_cost_usd == Decimal(1)  # Saturday
    monday = await build_digest(bot.services, sub, date(2026, 3, 9), date(2026, 3, 9))
    assert monday.cost_usd == Decimal(16) and monday.previous_cost_usd == Decimal(14)
    weekly = Subscription(CHANNEL, time(9), period="week")
    week = await build_digest(bot.services, weekly, *covered_by_post("week", date(2026, 3, 9)))
    assert (week.first, week.last) == (date(2026, 3, 2), date(2026, 3, 8))
    assert week.cost_usd == Decimal(64 + 1 + 2 + 4 + 8)
    assert week.previous_cost_usd == Decimal(32)


async def test_job_factory_and_sync_of_stored_subscriptions(make_bot):
    weekly = DigestConfig(channel="C0WEEK", time=time(8, 15), period="week")
    clock = SettableClock(TZ, local(2026, 11, 25, 7).astimezone(UTC))
    bot = await make_bot(clock=clock, digests=(DigestConfig(channel=CHANNEL, time=time(9, 0)), weekly))
    services = build_services(bot.settings, clock=clock)
    scheduler = build_scheduler(services, scheduled_jobs(services))
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert {"digests:sweep", "digests:startup-sweep", f"digest:{CHANNEL}:day", "digest:C0WEEK:week"} <= set(jobs)
    assert isinstance(jobs["digests:sweep"].trigger, IntervalTrigger)
    assert jobs["digests:sweep"].trigger.interval == timedelta(minutes=5)
    assert isinstance(jobs["digests:startup-sweep"].trigger, DateTrigger)
    daily_trigger = jobs[f"digest:{CHANNEL}:day"].trigger
    assert str(daily_trigger.timezone) == "America/New_York"
    assert {f.name: str(f) for f in daily_trigger.fields if f.name in ("hour", "minute", "day_of_week")} == {
        "hour": "9", "minute": "0", "day_of_week": "*"}
    assert str(next(f for f in jobs["digest:C0WEEK:week"].trigger.fields if f.name == "day_of_week")) == "mon"

    # `/tokens admin digest` rows are picked up by the sweep, without a restart
    scheduler.start(paused=True)
    services.scheduler = scheduler
    try:
        async with services.db.write() as session:
            session.add(DigestSubscription(channel="C0ADMIN", local_time="10:45", period="day", top=5,
                                           created_by="U0ADMIN", created_at=clock.now()))
            # a stored row for a configured channel replaces the config entry (time moves to 07:30)
            session.add(DigestSubscription(channel=CHANNEL, local_time="07:30", period="day", top=3,
                                           created_by="U0ADMIN", created_at=clock.now()))
        await sweep(services)
        job = scheduler.get_job("digest:C0ADMIN:day")
        assert job is not None and job.name == "digest:C0ADMIN:day@10:45"
        assert scheduler.get_job(f"digest:{CHANNEL}:day").name == f"digest:{CHANNEL}:day@07:30"
        subs = {(s.channel, s.period): s for s in await load_subscriptions(services)}
        assert subs[(CHANNEL, "day")].top == 3 and subs[(CHANNEL, "day")].source == "admin"
        # the stored 07:30 digest is due at 07:30 today, and the sweep posts it
        clock.set(local(2026, 11, 25, 7, 30).astimezone(UTC))
        assert [o.channel for o in await sweep(services)] == [CHANNEL]
        async with services.db.write() as session:
            for row in (await session.execute(DigestSubscription.__table__.select())).all():
                if row.channel == "C0ADMIN":
                    await session.delete(await session.get(DigestSubscription, row.id))
        await sweep(services)
        assert scheduler.get_job("digest:C0ADMIN:day") is None
    finally:
        scheduler.shutdown(wait=False)
        await services.close()
