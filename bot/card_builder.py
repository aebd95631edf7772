"""Builds what `/tokens` shows: the personal card, the leaderboard and the budget answer, as the
view models of bot/views/card.py and bot/views/leaderboard.py.

Everything here reads the rollups (usage_daily, usage_daily_model, usage_monthly), never the
raw events, so an answer costs a handful of indexed reads whatever the size of the ledger.

Decisions:
- Periods are the organisation's local days (settings.timezone): "today", "last 7 days"
  (today and the 6 days before) and "month to date".
- Pace and projection come from bot.budgets.forecast (shared with the forecast alert): the
  trailing 7 local days' spend / 7, projected over the days left in the month; the run-out
  day is shown only when it falls within this month.
- Rank is the caller's position in the month leaderboard (cost, then tokens, then key),
  counted among the people with spend this month: unlinked ids (API keys, emails not yet
  linked) are spend, listed on the leaderboard without a rank, never counted as people. It is
  shown on the card whatever the leaderboard privacy setting.
- "Over budget" says whether calls are refused: they are where gateways check tokenbot's
  limits (the limits API is on, or `limit.changed` goes to LIMITS_WEBHOOK_URL).
- "week" in `/tokens top week` is the same 7-day window as the card, not the calendar week.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import date, timedelta
from decimal import Decimal

from bot.budgets import BudgetStatus, budget_status, forecast, trailing_spend
from bot.clock import month_first_day, month_key, month_last_day
from bot.config import Settings
from bot.identities import is_slack_user_id
from bot.people import display_names, fetch_person
from bot.providers.output import month_output, output_by_person, per_dollar
from bot.services import Services
from bot.views.card import BudgetFigures, BudgetView, CardView, ModelLine, PendingView, PeriodFigures, card_text
from bot.views.format import day, weekday
from bot.views.leaderboard import LeaderboardView, LeaderRow, leaderboard_text
from storage import queries
from storage.approvals_repo import pending_request
from storage.measures import Measures
from storage.models import BudgetRequest, Person

log = logging.getLogger(__name__)

TOP_MODELS = 3
LEADERBOARD_TOP = 10
PERIODS = ("today", "week", "month")


def _period(label: str, first: date, last: date, days: dict[date, Measures]) -> PeriodFigures:
    total = sum((t for d, t in days.items() if first <= d <= last), Measures())
    return PeriodFigures(label=label, first=first, last=last, **dataclasses.asdict(total))


def limits_enforced(settings: Settings) -> str:
    """Where going over a budget refuses calls, as the start of a sentence ("" when nowhere): the LiteLLM
    proxy when `[enforce.litellm]` keeps its budgets (SPEC 11), else gateways that ask the limits API or
    are told by limit.changed."""
    if settings.enforce.litellm is not None:
        return "The LiteLLM proxy refuses"
    return "Gateways that check tokenbot refuse" if settings.api_token or settings.limits_webhook_url else ""


def budget_figures(status: BudgetStatus, week_spend: Decimal, today: date, *,
                   enforced: bool | str = False) -> BudgetFigures:
    outlook = forecast(status, week_spend, today)
    return BudgetFigures(
        **dataclasses.asdict(status),
        burn_rate_usd=outlook.pace_per_day,
        projected_usd=outlook.projected_month_end,
        runs_out_on=outlook.runs_out_on,
        month_end=month_last_day(today),
        month_label=f"{today:%B}",
        enforced=enforced,
    )


async def _pending(services: Services, request: BudgetRequest | None) -> PendingView | None:
    if request is None:
        return None
    approvers = tuple(request.approvers or ())
    names = await display_names(services, approvers)
    return PendingView(
        id=request.id,
        amount_usd=request.amount_usd,
        scope=request.scope,
        reason=request.reason,
        created_at=request.created_at.astimezone(services.clock.tz),
        approvers=approvers,
        approver_names=tuple(names[a] for a in approvers),
    )


async def build_card(services: Services, user_id: str) -> CardView:
    """The caller's card; someone with no usage gets the first-run card (CardView.no_usage)."""
    clock = services.clock
    now = clock.local_now()
    today = now.date()
    first = month_first_day(today)
    week_first = today - timedelta(days=6)
    before_first = today - timedelta(days=13)
    month = month_key(today)
    async with services.db.session() as session:
        status = await budget_status(session, services.settings, clock, user_id, day=today)
        days = dict(await queries.person_days(session, user_id, min(first, before_first), today))
        models = await queries.models_days(session, first, today, user_key=user_id, limit=TOP_MODELS)
        rank, _, ranked = await queries.month_position(session, month, user_id)
        pending = await pending_request(session, user_id)
        person = await session.get(Person, user_id)
        linked = await queries.identities_of(session, user_id)
    week = _period("Last 7 days", week_first, today, days)
    linked += [k for k, v in services.settings.identities.items() if v == user_id]
    return CardView(
        user_id=user_id,
        name=person.display_name if person is not None else None,
        as_of=now,
        timezone=services.settings.timezone.key,
        today=_period("Today", today, today, days),
        week=week,
        month=_period("This month", first, today, days),
        budget=budget_figures(status, week.cost_usd, today, enforced=limits_enforced(services.settings)),
        rank=rank,
        ranked=ranked or 0,
        top_models=tuple(ModelLine(m, t.tokens, t.cost_usd) for m, t in models),
        previous_week_usd=sum((t.cost_usd for d, t in days.items() if before_first <= d < week_first), Decimal(0)),
        pending=await _pending(services, pending),
        linked_ids=tuple(sorted(set(linked))),
        output=await month_output(services, user_id),
    )


async def build_budget(services: Services, user_id: str, *, viewer: str) -> BudgetView:
    today = services.clock.today()
    async with services.db.session() as session:
        status = await budget_status(session, services.settings, services.clock, user_id, day=today)
        week = await trailing_spend(session, user_id, today)
        pending = await pending_request(session, user_id)
        person = await session.get(Person, user_id)
    approvers = tuple((await services.approvers.resolve(user_id)).users)
    names = await display_names(services, approvers)
    return BudgetView(
        user_id=user_id,
        name=person.display_name if person is not None else None,
        is_self=user_id == viewer,
        budget=budget_figures(status, week, today, enforced=limits_enforced(services.settings)),
        pending=await _pending(services, pending),
        approvers=approvers,
        approver_names=tuple(names[a] for a in approvers),
    )


def _window(period: str, today: date) -> tuple[date, date, str]:
    if period == "today":
        return today, today, f"Top spenders today, {weekday(today)}"
    if period == "week":
        first = today - timedelta(days=6)
        return first, today, f"Top spenders, last 7 days ({day(first)} – {day(today)})"
    return month_first_day(today), today, f"Top spenders, {today:%B} so far"


async def build_leaderboard(
    services: Services, caller: str, period: str = "month", *, top: int = LEADERBOARD_TOP,
    privacy: str | None = None,
) -> LeaderboardView:
    """Top `top` by cost for the period, plus the caller's own row when they are further down.

    With privacy "anonymous" only the caller's row carries a name; with "off" nothing is read.
    """
    if period not in PERIODS:
        raise ValueError(f"unknown period {period!r}")
    privacy = privacy or services.settings.leaderboard
    today = services.clock.today()
    first, last, title = _window(period, today)
    if privacy == "off":
        return LeaderboardView(period, title, "off", (), None, 0, Decimal(0), 0)
    async with services.db.session() as session:
        if period == "month":
            board = await queries.standings(session, caller, top, month=month_key(today))
        else:
            board = await queries.standings(session, caller, top, first=first, last=last)
        keys = {caller} if privacy == "anonymous" else {r.key for _, r in board.rows}
        names = await queries.names_of(session, (k for k in keys if is_slack_user_id(k)))
    outputs = await output_by_person(services, first, last) if services.settings.sources.show_output else {}

    def row(rank: int | None, key: str, totals: Measures) -> LeaderRow:
        visible = key in keys
        return LeaderRow(
            rank=rank,
            user_key=key if visible else None,
            name=names.get(key) if visible else None,
            is_person=is_slack_user_id(key),
            is_caller=key == caller,
            tokens=totals.tokens,
            cost_usd=totals.cost_usd,
            output=per_dollar(outputs.get(key), totals.cost_usd) if visible else None,
        )

    rows = tuple(row(rank, r.key, r.totals) for rank, r in board.rows)
    caller_row = row(board.caller[0], caller, board.caller[1].totals) if board.caller is not None else None
    return LeaderboardView(period, title, privacy, rows, caller_row, board.people, board.total_cost,
                           board.total_tokens, unlinked=board.unlinked)


async def link_caller_email(services: Services, user_id: str) -> list[str]:
    """Give someone known only by email their own numbers.

    Slack tells us the caller's email (users.info, cached); if spend is stored under that
    email as an unlinked key, it is linked to the caller and its past events re-attributed
    (the same link the background email lookup makes). Returns the keys linked.
    """
    try:
        person = await fetch_person(services, user_id)
    except Exception:  # Slack trouble must not cost the caller their card
        log.warning("users.info failed for %s; card without email linking", user_id, exc_info=True)
        return []
    if person is None or not person.email:
        return []
    candidates = sorted({person.email, person.email.lower()})
    async with services.db.session() as session:
        keys = await queries.keys_with_usage(session, candidates)
    for key in keys:
        await services.identities.link(key, user_id, source="email", set_by=None)
        log.info("linked %s to %s on /tokens", key, user_id)
    return keys


async def render_demo_cards(services: Services) -> str:
    """The demo's `/tokens me` card of the heaviest spender and the month leaderboard, as text."""
    month = month_key(services.clock.today())
    async with services.db.session() as session:
        ranked = await queries.leaderboard_month(session, month, limit=20)
    person = next((r.key for r in ranked if is_slack_user_id(r.key)), None)
    if person is None:
        return "(no spend this month: no card to show)"
    card = await build_card(services, person)
    board = await build_leaderboard(services, person, "month")
    name = card.name or person
    return (f"/tokens me, as {name} would see it\n{card_text(card)}\n\n"
            f"/tokens top, as {name} would see it\n{leaderboard_text(board)}")
