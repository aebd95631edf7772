"""A digest's view model (bot/views/digest.py) and its 30-day chart, from the rollups only."""

from __future__ import annotations

import logging
import statistics
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

from bot.breaker.digest import trip_lines
from bot.budgets import budget_statuses
from bot.charts import OTHER_MODELS, OTHERS, ChartSeries, DailyChart
from bot.clock import month_key, month_last_day
from bot.digests.periods import Subscription
from bot.identities import is_slack_user_id
from bot.people import resolve_names
from bot.providers.output import output_by_person, per_dollar
from bot.services import Services
from bot.teams.section import teams_section
from bot.views.digest import (
    MOVERS_SHOWN,
    AnomalyRow,
    BudgetRow,
    DigestView,
    LeaderRow,
    ModelRow,
    MoverRow,
    UnlinkedRow,
    UnpricedRow,
)
from bot.views.format import day as day_text
from storage import queries

log = logging.getLogger(__name__)

ZERO = Decimal(0)
ANOMALY_FACTOR = Decimal(3)  # a day above 3x the person's trailing median...
ANOMALY_MIN_USD = Decimal(5)  # ...and at least $5, so pennies never alarm anyone
ANOMALY_HISTORY_DAYS = 14  # calendar days before the day; days without usage count as $0
BUDGET_WATCH_SHARE = Decimal("0.8")
MODELS_SHOWN = 5
CHART_DAYS = 30
CHART_WEEKS = 12
CHART_SERIES = 3  # people or models stacked by name; the rest is "everyone else" / "other models"
CHART_MIN_BARS = 4
NAME_LIMIT = 15  # per-person rows we look names up for, beyond the leaderboard
MOVER_MIN_USD = Decimal(1)  # a change smaller than this is no "mover"

async def build_digest(services: Services, sub: Subscription, first: date, last: date) -> DigestView:
    settings = services.settings
    privacy = sub.privacy(settings)
    span = (last - first).days + 1
    prev_first, prev_last = first - timedelta(days=span), first - timedelta(days=1)
    if sub.period == "week":
        baseline_days, baseline_label = 28, "4-week average"
    else:
        baseline_days, baseline_label = 7, "7-day average"
    month = month_key(last)
    month_last = month_last_day(last)

    async with services.db.session() as session:
        ranked = await queries.leaderboard_days(session, first, last)  # everyone, by cost, tokens, key
        # one pass over the daily rollup serves the previous period, the baseline and the month-end pace
        series = dict(await queries.daily_series(session, first - timedelta(days=baseline_days), last))
        top_rows = ranked[: sub.top] if privacy != "off" else []
        if sub.period == "week" and privacy == "names":  # everyone's week before, for the biggest movers
            before = await queries.costs_by_user(session, prev_first, prev_last)
        else:
            before = (
                await queries.costs_by_user(session, prev_first, prev_last, [r.key for r in top_rows])
                if top_rows else {}
            )
        models = await queries.models_days(session, first, last, limit=MODELS_SHOWN)
        unpriced = await queries.unpriced_models(session, first, last)
        month_spend = await queries.month_costs_through(session, month, last, month_last)
        limits = {
            key: status.limit_usd
            for key, status in (await budget_statuses(
                session, settings, [k for k in month_spend if is_slack_user_id(k)], last
            )).items()
        }  # unlinked ids have no budget
        candidates = await queries.daily_costs(session, first, last, min_cost=ANOMALY_MIN_USD)
        history = (
            await queries.daily_costs(
                session, first - timedelta(days=ANOMALY_HISTORY_DAYS), last - timedelta(days=1),
                user_keys={key for key, _, _ in candidates},
            )
            if candidates else []
        )

    # budgets: the people (Slack ids) who spent this month, their limits and who is past 80%
    over = sorted(
        (
            BudgetRow(key, None, month_spend[key], limit)
            for key, limit in limits.items()
            if month_spend[key] >= limit * BUDGET_WATCH_SHARE
        ),
        key=lambda r: (-r.share, -r.spent_usd, r.user_key),
    )
    anomalies = find_anomalies(candidates, history)
    if sub.period == "week":  # the worst day per person
        worst: dict[str, AnomalyRow] = {}
        for row in anomalies:
            worst.setdefault(row.user_key, row)
        anomalies = list(worst.values())

    movers = biggest_movers(ranked, before) if sub.period == "week" and privacy == "names" else []
    names: dict[str, str | None] = {}
    if privacy == "names":
        wanted = [r.key for r in top_rows] + [r.user_key for r in over[:NAME_LIMIT]]
        wanted += [a.user_key for a in anomalies[:NAME_LIMIT]] + [m.user_key for m in movers]
        names = await resolve_names(services, wanted)

    def cost_between(start: date, end: date) -> Decimal:
        return sum((t.cost_usd for d, t in series.items() if start <= d <= end), ZERO)

    month_to_date = sum(month_spend.values(), ZERO)
    days_left = (month_last - last).days
    projected = month_to_date + cost_between(last - timedelta(days=6), last) / 7 * days_left
    hide = privacy != "names"
    outputs = await output_by_person(services, first, last) if settings.sources.show_output and not hide else {}
    return DigestView(
        channel=sub.channel,
        period=sub.period,
        first=first,
        last=last,
        timezone=settings.timezone.key,
        as_of=services.clock.local_now(),
        privacy=privacy,
        top=sub.top,
        cost_usd=sum((r.totals.cost_usd for r in ranked), ZERO),
        tokens=sum(r.totals.tokens for r in ranked),
        events=sum(r.totals.events for r in ranked),
        people=len(ranked),
        previous_cost_usd=cost_between(prev_first, prev_last),
        baseline_cost_usd=cost_between(first - timedelta(days=baseline_days), prev_last) * span / baseline_days,
        baseline_label=baseline_label,
        leaderboard=tuple(
            LeaderRow(
                rank=rank,
                user_key=None if hide else r.key,
                name=None if hide else names.get(r.key),
                is_person=is_slack_user_id(r.key),
                cost_usd=r.totals.cost_usd,
                tokens=r.totals.tokens,
                previous_cost_usd=before.get(r.key, ZERO),
                output=None if hide else per_dollar(outputs.get(r.key), r.totals.cost_usd),
            )
            for rank, r in enumerate(top_rows, start=1)
        ),
        models=tuple(ModelRow(m, t.cost_usd, t.tokens, t.events) for m, t in models),
        month=month,
        month_to_date_usd=month_to_date,
        projected_usd=projected,
        budgets_usd=sum(limits.values(), ZERO),
        budget_people=len(limits),
        over_budget=tuple(replace(r, name=names.get(r.user_key)) for r in over),
        anomalies=tuple(replace(a, name=names.get(a.user_key)) for a in anomalies),
        unlinked=tuple(
            UnlinkedRow(r.key, r.totals.cost_usd, r.totals.tokens) for r in ranked if not is_slack_user_id(r.key)
        ),
        unpriced=tuple(UnpricedRow(m, events, count) for m, events, count in unpriced),
        movers=tuple(replace(m, name=names.get(m.user_key)) for m in movers),
        breaker_trips=await trip_lines(services, first, last, privacy),
        teams=await teams_section(services, first, last),
    )


def biggest_movers(ranked: list[queries.Ranked], before: dict[str, Decimal]) -> list[MoverRow]:
    """The people whose spend changed most against the period before (at least MOVER_MIN_USD), largest first."""
    now = {r.key: r.totals.cost_usd for r in ranked if is_slack_user_id(r.key)}
    keys = set(now) | {k for k in before if is_slack_user_id(k)}
    rows = [MoverRow(k, None, now.get(k, ZERO), before.get(k, ZERO)) for k in keys]
    rows = [r for r in rows if abs(r.delta) >= MOVER_MIN_USD]
    rows.sort(key=lambda r: (-abs(r.delta), r.user_key))
    return rows[:MOVERS_SHOWN]


def find_anomalies(
    candidates: list[tuple[str, date, Decimal]], history: list[tuple[str, date, Decimal]]
) -> list[AnomalyRow]:
    """Days at or above ANOMALY_MIN_USD and above ANOMALY_FACTOR x the person's median of the
    ANOMALY_HISTORY_DAYS calendar days before (days without usage count as $0), largest first."""
    by_person: dict[str, dict[date, Decimal]] = {}
    for key, day, cost in history:
        by_person.setdefault(key, {})[day] = cost
    for key, day, cost in candidates:  # a week's earlier days are history for its later days
        by_person.setdefault(key, {})[day] = cost
    found = []
    for key, day, cost in candidates:
        if cost < ANOMALY_MIN_USD:
            continue
        days = by_person.get(key, {})
        window = [days.get(day - timedelta(days=back), ZERO) for back in range(1, ANOMALY_HISTORY_DAYS + 1)]
        median = statistics.median(window)
        if cost > ANOMALY_FACTOR * median:
            found.append(AnomalyRow(key, None, day, cost, median, is_slack_user_id(key)))
    found.sort(key=lambda a: (-a.cost_usd, a.user_key, a.day))
    return found


async def build_chart(services: Services, sub: Subscription, last: date) -> DailyChart:
    """The digest's chart: cost per day for the CHART_DAYS days ending `last` (daily digests) or per
    week for the CHART_WEEKS weeks ending with the week that ends `last` (weekly digests), the last
    bar being the one the digest covers. Stacked by the top CHART_SERIES people (privacy "names"
    only, so a chart never shows what the text hides) or models, whichever leaves less to the grey
    "everyone else" band."""
    weekly = sub.period == "week"
    bars = CHART_WEEKS if weekly else CHART_DAYS
    width = 7 if weekly else 1
    first = last - timedelta(days=bars * width - 1)

    def bar_of(day: date) -> int:
        return (day - first).days // width

    totals = [ZERO] * bars
    per_model: dict[str, list[Decimal]] = {}
    per_person: dict[str, list[Decimal]] = {}
    async with services.db.session() as session:
        for day, model, cost in await queries.daily_costs_by_model(session, first, last):
            per_model.setdefault(model, [ZERO] * bars)[bar_of(day)] += cost
            totals[bar_of(day)] += cost
        if sub.privacy(services.settings) == "names":
            top = await queries.leaderboard_days(session, first, last, limit=CHART_SERIES)
            per_person = {r.key: [ZERO] * bars for r in top}
            for key, day, cost in await queries.daily_costs(session, first, last, user_keys=list(per_person)):
                per_person[key][bar_of(day)] += cost
    models = sorted(per_model, key=lambda m: (-sum(per_model[m], ZERO), m))[:CHART_SERIES]
    people = sorted(per_person, key=lambda k: (-sum(per_person[k], ZERO), k))

    def covered(keys, table) -> Decimal:
        return sum((sum(table[k], ZERO) for k in keys), ZERO)

    by_person = bool(people) and covered(people, per_person) >= covered(models, per_model)
    order, named = (people, per_person) if by_person else (models, per_model)
    labels = await resolve_names(services, order) if by_person else {}
    series = [ChartSeries(labels.get(k) or k, tuple(named[k])) for k in order]
    rest = tuple(t - sum((named[k][i] for k in order), ZERO) for i, t in enumerate(totals))
    if any(v > 0 for v in rest):
        series.append(ChartSeries(OTHERS if by_person else OTHER_MODELS, rest))
    starts = tuple(first + timedelta(days=i * width) for i in range(bars))
    # bars before the first spend say nothing: start there, keeping at least CHART_MIN_BARS
    skip = min(next((i for i, t in enumerate(totals) if t > 0), bars), bars - CHART_MIN_BARS)
    if skip > 0:
        starts = starts[skip:]
        series = [ChartSeries(s.label, s.values[skip:]) for s in series]
    unit = "week" if weekly else "day"
    title = f"AI cost per {unit} by {'person' if by_person else 'model'}, {day_text(starts[0])} – {day_text(last)}"
    return DailyChart(title, starts, tuple(series), period=unit)
