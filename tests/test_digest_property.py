"""Property: a digest's totals and order equal a direct computation from the stored events (issue 4).

Hypothesis draws batches of events around the spring-forward change (America/New_York,
8 March 2026) and a covered day; the digest is built from the rollups, the expectation is
computed here from the raw `usage_events` rows, with each event's local day worked out
again from its UTC instant, so rollups, day boundaries and the digest's queries are all
checked against the plain definition.
"""

from __future__ import annotations

import asyncio
import statistics
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from bot.clock import SettableClock
from bot.digests.builder import ANOMALY_FACTOR, ANOMALY_MIN_USD, MODELS_SHOWN, build_digest
from bot.digests.periods import Subscription
from bot.identities import is_slack_user_id
from bot.wiring import build_services
from storage.models import UsageDaily, UsageDailyModel, UsageEvent, UsageMonthly
from tests.support.digests import TZ, ingest

START = datetime(2026, 3, 5, 0, 0, tzinfo=TZ)  # Thursday before the change
SPAN_MINUTES = 5 * 24 * 60
# Keys and models whose order is the same under C and locale collations (PostgreSQL's ORDER BY)
USERS = ("U0ANN", "U0BEN", "U0CAT", "U0DAN", "KEYA1", "KEYB2")
MODELS = ("claude-sonnet-4-5", "gpt-4o", "m-unpriced")

events_strategy = st.lists(
    st.tuples(
        st.integers(0, SPAN_MINUTES),
        st.sampled_from(USERS),
        st.sampled_from(MODELS),
        st.one_of(st.none(), st.decimals(min_value=0, max_value=40, places=4, allow_nan=False)),
        st.integers(0, 200_000),
        st.integers(0, 50_000),
    ),
    min_size=1,
    max_size=60,
)


def raw_event(n: int, spec) -> dict:
    minutes, user, model, cost, input_tokens, output_tokens = spec
    event = {"id": f"p-{n}", "timestamp": (START + timedelta(minutes=minutes)).astimezone(UTC).isoformat(),
             "user": user, "model": model, "input_tokens": input_tokens, "output_tokens": output_tokens}
    if cost is not None:  # else priced by the bot (genai-prices), or unpriced for m-unpriced
        event["cost_usd"] = str(cost)
    return event


def test_digest_equals_direct_computation(settings):
    loop = asyncio.new_event_loop()
    clock = SettableClock(TZ, datetime(2026, 3, 11, 9, 0, tzinfo=TZ).astimezone(UTC))
    services = build_services(settings, clock=clock, with_slack=False)

    @hsettings(max_examples=30, deadline=None, derandomize=True, database=None,
               suppress_health_check=[HealthCheck.too_slow])
    @given(specs=events_strategy, top=st.integers(1, 6),
           day=st.sampled_from([date(2026, 3, d) for d in (7, 8, 9)]))
    def digest_matches(specs, top, day):
        loop.run_until_complete(check(services, [raw_event(n, s) for n, s in enumerate(specs)], top, day))

    try:
        digest_matches()
    finally:
        loop.run_until_complete(services.close())
        loop.close()


async def check(services, events: list[dict], top: int, day: date) -> None:
    async with services.db.write() as session:
        for table in (UsageEvent, UsageDaily, UsageDailyModel, UsageMonthly):
            await session.execute(delete(table))
    await ingest(services, events)
    async with services.db.session() as session:
        stored = list(await session.scalars(select(UsageEvent)))
    # the plain definition, from the raw rows
    by_day_user: dict[tuple[date, str], list[Decimal | int]] = defaultdict(lambda: [Decimal(0), 0, 0])
    by_day_model: dict[tuple[date, str], Decimal] = defaultdict(Decimal)
    for e in stored:
        local_day = e.occurred_at.astimezone(TZ).date()
        assert local_day == e.day
        acc = by_day_user[(local_day, e.user_key)]
        acc[0] += e.cost_usd
        acc[1] += e.input_tokens + e.output_tokens
        acc[2] += 1
        by_day_model[(local_day, e.model)] += e.cost_usd

    def users_between(first: date, last: date) -> dict[str, list]:
        out: dict[str, list] = defaultdict(lambda: [Decimal(0), 0, 0])
        for (d, key), (cost, tokens, count) in by_day_user.items():
            if first <= d <= last:
                out[key][0] += cost
                out[key][1] += tokens
                out[key][2] += count
        return out

    def cost_between(first: date, last: date) -> Decimal:
        return sum((v[0] for v in users_between(first, last).values()), Decimal(0))

    view = await build_digest(services, Subscription("C0PROP", time(9), top=top), day, day)
    users = users_between(day, day)
    ranking = sorted(users, key=lambda k: (-users[k][0], -users[k][1], k))
    assert view.cost_usd == cost_between(day, day)
    assert view.tokens == sum(v[1] for v in users.values())
    assert view.events == sum(v[2] for v in users.values())
    assert view.people == len(users)
    assert [r.user_key for r in view.leaderboard] == ranking[:top]
    before = users_between(day - timedelta(days=1), day - timedelta(days=1))
    for row in view.leaderboard:
        assert (row.cost_usd, row.tokens) == (users[row.user_key][0], users[row.user_key][1])
        assert row.previous_cost_usd == (before[row.user_key][0] if row.user_key in before else 0)
    assert view.previous_cost_usd == cost_between(day - timedelta(days=1), day - timedelta(days=1))
    assert view.baseline_cost_usd == cost_between(day - timedelta(days=7), day - timedelta(days=1)) / 7
    models = {m: c for (d, m), c in by_day_model.items() if d == day}
    assert [(m.model, m.cost_usd) for m in view.models] == sorted(
        models.items(), key=lambda kv: (-kv[1], kv[0]))[:MODELS_SHOWN]
    assert [(u.key, u.cost_usd) for u in view.unlinked] == [
        (k, users[k][0]) for k in ranking if not is_slack_user_id(k)]
    assert view.month_to_date_usd == cost_between(day.replace(day=1), day)
    expected_anomalies = []
    for key in ranking:
        cost = users[key][0]
        history = [by_day_user.get((day - timedelta(days=b), key), [Decimal(0)])[0] for b in range(1, 15)]
        median = statistics.median(history)
        if cost >= ANOMALY_MIN_USD and cost > ANOMALY_FACTOR * median:
            expected_anomalies.append((key, cost, median))
    assert sorted((a.user_key, a.cost_usd, a.median_usd) for a in view.anomalies) == sorted(expected_anomalies)

    # the weekly digest of the DST week (Mon 2 - Sun 8 March) adds up the same way
    week = await build_digest(services, Subscription("C0PROP", time(9), period="week", top=top),
                              date(2026, 3, 2), date(2026, 3, 8))
    week_users = users_between(date(2026, 3, 2), date(2026, 3, 8))
    assert week.cost_usd == cost_between(date(2026, 3, 2), date(2026, 3, 8))
    assert [r.user_key for r in week.leaderboard] == sorted(
        week_users, key=lambda k: (-week_users[k][0], -week_users[k][1], k))[:top]
