"""Property: the card's figures are the sums of the stored events, to the picodollar.

Random event sets go through the real ingest path (validation, pricing, identity, rollups)
into the test database; the card is built from the rollups; the expectation is computed
here from the raw stored events, grouped by local day with zoneinfo (independently of the
stored `day` column). Events cluster around local midnights and DST changes, carry cached
and reasoning tokens, and are either priced by the source or by genai-prices.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest_asyncio
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from bot.card_builder import build_card
from bot.clock import SettableClock, month_first_day, month_last_day
from bot.views.card import card_text
from bot.views.format import money
from bot.wiring import build_services
from storage.models import Identity, UsageDaily, UsageDailyModel, UsageEvent, UsageMonthly

ZONES = ("America/New_York", "Europe/Berlin", "Asia/Kolkata", "Pacific/Auckland", "UTC")
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "o3")
ME = "U0ME"
OTHERS = ("U0OTHERA", "U0OTHERB", "U0OTHERC")


# days around which local dates shift: DST changes in 2026 (US, EU, NZ) and month ends
SHIFT_DAYS = tuple(date(2026, m, d) for m, d in (
    (3, 8), (3, 9), (3, 29), (3, 30), (4, 5), (4, 6), (9, 27), (9, 28), (10, 25), (10, 26), (11, 1), (11, 2),
    (12, 1), (12, 31), (2, 28), (3, 1), (3, 31), (7, 1),
))


@st.composite
def scenarios(draw):
    tz = ZoneInfo(draw(st.sampled_from(ZONES)))
    # "now": any time in 2026, or shortly after a local midnight near a DST change or a month end
    if draw(st.booleans()):
        base = draw(st.datetimes(min_value=datetime(2026, 1, 15), max_value=datetime(2026, 12, 31)))
    else:
        day = draw(st.sampled_from(SHIFT_DAYS)) + timedelta(days=draw(st.integers(0, 8)))
        base = datetime(day.year, day.month, day.day, 0, draw(st.integers(0, 5)), draw(st.integers(0, 59)))
    now = base.replace(tzinfo=tz).astimezone(UTC).replace(microsecond=0)
    local_today = now.astimezone(tz).date()
    # the edges of the card's windows, in days back from today
    edges = (0, 1, 6, 7, 13, 14, (local_today - local_today.replace(day=1)).days,
             (local_today - local_today.replace(day=1)).days + 1)

    def moment() -> datetime:
        kind = draw(st.integers(0, 2))
        if kind < 2:  # around a local midnight: a window's edge, or any day in the last 40
            back = draw(st.sampled_from(edges)) if kind == 0 else draw(st.integers(0, 40))
            day = local_today - timedelta(days=back)
            at = datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)
            at += timedelta(seconds=draw(st.integers(-120, 120)))
        else:
            at = now - timedelta(seconds=draw(st.integers(0, 40 * 86400)))
        return min(at, now)

    events = []
    count = draw(st.integers(0, 24))
    for i in range(count):
        input_tokens = draw(st.integers(0, 3_000_000))
        output_tokens = draw(st.integers(0, 500_000))
        event = {
            "id": f"p-{i}",
            "timestamp": moment().astimezone(draw(st.sampled_from((UTC, tz)))).isoformat(),
            "user": draw(st.sampled_from((ME, ME, ME, *OTHERS))),
            "model": draw(st.sampled_from(MODELS)),
            "input_tokens": input_tokens,
            "cached_input_tokens": draw(st.integers(0, input_tokens)),
            "output_tokens": output_tokens,
            "reasoning_tokens": draw(st.integers(0, output_tokens)),
        }
        if draw(st.booleans()):
            event["cost_usd"] = str(draw(st.decimals(min_value=0, max_value=500, places=6)))
        events.append(event)
    return tz, now, events


@pytest_asyncio.fixture
async def services_in(settings):
    """Services per time zone on the test database (one engine each, closed at the end)."""
    made = {}

    def get(tz: ZoneInfo, now: datetime):
        if tz.key not in made:
            made[tz.key] = build_services(replace(settings, timezone=tz), clock=SettableClock(tz, now),
                                          with_slack=False)
        made[tz.key].clock.set(now)
        return made[tz.key]

    yield get
    for services in made.values():
        await services.close()


@hsettings(max_examples=60, deadline=None, derandomize=True, database=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(scenario=scenarios())
async def test_card_figures_equal_the_sums_of_stored_events(services_in, scenario):
    tz, now, events = scenario
    services = services_in(tz, now)
    async with services.db.write() as session:
        for table in (UsageEvent, UsageDailyModel, UsageDaily, UsageMonthly, Identity):
            await session.execute(delete(table))
    result = await services.ingestor.ingest(events, source="test")
    assert result.accepted == len(events), result.rejected
    await services.ingestor.writer.settle()  # rollups trail events by up to a second

    card = await build_card(services, ME)

    async with services.db.session() as session:
        stored = (await session.scalars(select(UsageEvent))).all()
    today = now.astimezone(tz).date()
    first = month_first_day(today)

    def day_of(e: UsageEvent) -> date:
        return e.occurred_at.astimezone(tz).date()

    def expect(user: str, lo: date, hi: date):
        rows = [e for e in stored if e.user_key == user and lo <= day_of(e) <= hi]
        return (sum(e.input_tokens for e in rows), sum(e.cached_input_tokens for e in rows),
                sum(e.output_tokens for e in rows), sum(e.reasoning_tokens for e in rows),
                sum((e.cost_usd for e in rows), Decimal(0)), len(rows))

    def got(p):
        return (p.input_tokens, p.cached_input_tokens, p.output_tokens, p.reasoning_tokens, p.cost_usd, p.events)

    assert got(card.today) == expect(ME, today, today)
    assert got(card.week) == expect(ME, today - timedelta(days=6), today)
    assert got(card.month) == expect(ME, first, today)
    assert card.previous_week_usd == expect(ME, today - timedelta(days=13), today - timedelta(days=7))[4]
    month_cost = expect(ME, first, today)[4]
    assert card.budget.spent_usd == month_cost
    assert card.budget.limit_usd == Decimal(200)
    assert card.budget.remaining_usd == max(Decimal(200) - month_cost, Decimal(0))
    pace = expect(ME, today - timedelta(days=6), today)[4] / 7
    assert card.budget.burn_rate_usd == pace
    assert card.budget.projected_usd == month_cost + pace * (month_last_day(today) - today).days

    # rank: cost desc, tokens desc, key asc, among everyone with spend this month
    standings = []
    for user in {e.user_key for e in stored if first <= day_of(e) <= today}:
        i, _, o, _, cost, _ = expect(user, first, today)
        standings.append((-cost, -(i + o), user))
    standings.sort()
    mine = [s for s in standings if s[2] == ME]
    assert card.rank == (standings.index(mine[0]) + 1 if mine else None)
    if mine:  # "#rank of N" is shown only to someone with spend
        assert card.ranked == len(standings)

    by_model: dict[str, list[UsageEvent]] = {}
    for e in stored:
        if e.user_key == ME and first <= day_of(e) <= today:
            by_model.setdefault(e.model, []).append(e)
    models = sorted(
        ((m, sum(e.input_tokens + e.output_tokens for e in rows), sum((e.cost_usd for e in rows), Decimal(0)))
         for m, rows in by_model.items()),
        key=lambda t: (-t[2], t[0]),
    )[:3]
    assert [(m.model, m.tokens, m.cost_usd) for m in card.top_models] == models

    text = card_text(card)
    if card.no_usage:
        assert "No AI usage from you yet" in text
    else:
        assert f"This month   {money(month_cost)}" in text
