"""Read queries over the rollups (never the raw events) for cards, leaderboards, digests.

Figures come back as `Measures` (storage/measures.py), the same class the ingest path sums into.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import and_, delete, func, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.chunks import chunked
from storage.measures import Measures
from storage.models import (
    ApproverAssignment,
    Budget,
    DigestSubscription,
    Identity,
    Person,
    SlackEventSeen,
    UsageDaily,
    UsageDailyModel,
    UsageMonthly,
)
from storage.usage import dialect_insert


def _totals(row) -> Measures:
    """A row of the seven MEASURES sums (NULL when no rows matched) -> Measures."""
    if row is None:
        return Measures()
    return Measures(*(v if v is not None else 0 for v in row[:4]), row[4] or Decimal(0), row[5] or 0, row[6] or 0)


def _sums(table):
    return (
        func.sum(table.input_tokens),
        func.sum(table.cached_input_tokens),
        func.sum(table.output_tokens),
        func.sum(table.reasoning_tokens),
        func.sum(table.cost_usd),
        func.sum(table.events),
        func.sum(table.unpriced_events),
    )


@dataclass(frozen=True)
class Ranked:
    key: str
    totals: Measures


# A Slack user id, as bot.config_values.SLACK_USER_ID says (storage cannot import bot/): rankings count
# people, while spend under unlinked ids (API keys, emails not yet linked) is listed but not ranked.
SLACK_USER_ID_PATTERN = r"^[UW][A-Z0-9]{2,}$"
SLACK_USER_ID = re.compile(SLACK_USER_ID_PATTERN)


def is_person(session: AsyncSession, key_col):
    """`key_col` is a Slack user id, matched by the database itself: SQLite's GLOB (case-sensitive, in
    C), PostgreSQL's regular expression; SQLAlchemy's generic regexp on SQLite calls Python per row."""
    if session.bind.dialect.name == "sqlite":
        glob = key_col.op("GLOB", is_comparison=True)
        return and_(glob("[UW][A-Z0-9][A-Z0-9]*"), not_(glob("*[^A-Z0-9]*")))
    return key_col.regexp_match(SLACK_USER_ID_PATTERN)


async def leaderboard_month(session: AsyncSession, month: str, limit: int | None = None) -> list[Ranked]:
    """Everyone with spend in `month`, by cost (ties by tokens, then key)."""
    m = UsageMonthly
    query = (
        select(m.user_key, m.input_tokens, m.cached_input_tokens, m.output_tokens, m.reasoning_tokens,
               m.cost_usd, m.events, m.unpriced_events)
        .where(m.month == month)
        .order_by(m.cost_usd.desc(), (m.input_tokens + m.output_tokens).desc(), m.user_key)
    )
    if limit:
        query = query.limit(limit)
    return [Ranked(r[0], _totals(r[1:])) for r in await session.execute(query)]


async def unlinked_month(session: AsyncSession, month: str) -> list[Ranked]:
    """The keys with spend in `month` that are not Slack ids (unlinked ids), by cost."""
    m = UsageMonthly
    query = (
        select(m.user_key, m.input_tokens, m.cached_input_tokens, m.output_tokens, m.reasoning_tokens,
               m.cost_usd, m.events, m.unpriced_events)
        .where(m.month == month, ~is_person(session, m.user_key))
        .order_by(m.cost_usd.desc(), m.user_key)
    )
    return [Ranked(r[0], _totals(r[1:])) for r in await session.execute(query)]


async def leaderboard_days(session: AsyncSession, first: date, last: date, limit: int | None = None) -> list[Ranked]:
    d = UsageDaily
    cost = func.sum(d.cost_usd)
    tokens = func.sum(d.input_tokens + d.output_tokens)
    query = (
        select(d.user_key, *_sums(d))
        .where(d.day >= first, d.day <= last)
        .group_by(d.user_key)
        .order_by(cost.desc(), tokens.desc(), d.user_key)
    )
    if limit:
        query = query.limit(limit)
    return [Ranked(r[0], _totals(r[1:])) for r in await session.execute(query)]


async def totals_days(session: AsyncSession, first: date, last: date, user_key: str | None = None) -> Measures:
    d = UsageDaily
    query = select(*_sums(d)).where(d.day >= first, d.day <= last)
    if user_key is not None:
        query = query.where(d.user_key == user_key)
    return _totals((await session.execute(query)).one())


async def models_days(
    session: AsyncSession, first: date, last: date, user_key: str | None = None, limit: int | None = None
) -> list[tuple[str, Measures]]:
    d = UsageDailyModel
    query = select(d.model, *_sums(d)).where(d.day >= first, d.day <= last)
    if user_key is not None:
        query = query.where(d.user_key == user_key)
    query = query.group_by(d.model).order_by(func.sum(d.cost_usd).desc(), d.model)
    if limit:
        query = query.limit(limit)
    return [(r[0], _totals(r[1:])) for r in await session.execute(query)]


async def unpriced_models(session: AsyncSession, first: date, last: date) -> list[tuple[str, int, int]]:
    """(model, events, tokens) of events stored without a price in the window."""
    d = UsageDailyModel
    query = (
        select(d.model, func.sum(d.unpriced_events), func.sum(d.input_tokens + d.output_tokens))
        .where(d.day >= first, d.day <= last, d.unpriced_events > 0)
        .group_by(d.model)
        .order_by(func.sum(d.unpriced_events).desc())
    )
    return [(r[0], int(r[1]), int(r[2])) for r in await session.execute(query)]


async def daily_series(session: AsyncSession, first: date, last: date, user_key: str | None = None):
    """[(day, Measures)] for days with usage in the window."""
    d = UsageDaily
    query = select(d.day, *_sums(d)).where(d.day >= first, d.day <= last)
    if user_key is not None:
        query = query.where(d.user_key == user_key)
    query = query.group_by(d.day).order_by(d.day)
    return [(r[0], _totals(r[1:])) for r in await session.execute(query)]


# -- digests (bot/digests/) ----------------------------------------------------------------------------

async def costs_by_user(session: AsyncSession, first: date, last: date, user_keys=None) -> dict[str, Decimal]:
    """user_key -> cost over [first, last] from usage_daily (only people with rows; optionally some keys)."""
    d = UsageDaily
    base = select(d.user_key, func.sum(d.cost_usd)).where(d.day >= first, d.day <= last).group_by(d.user_key)
    if user_keys is None:
        return {k: c or Decimal(0) for k, c in await session.execute(base)}
    out: dict[str, Decimal] = {}
    for chunk in chunked(user_keys):
        out.update({k: c or Decimal(0) for k, c in await session.execute(base.where(d.user_key.in_(chunk)))})
    return out


async def daily_costs(
    session: AsyncSession, first: date, last: date, *, user_keys=None, min_cost: Decimal | None = None
) -> list[tuple[str, date, Decimal]]:
    """(user_key, day, cost) rows of usage_daily in [first, last], optionally for some keys / at least min_cost."""
    d = UsageDaily
    base = select(d.user_key, d.day, d.cost_usd).where(d.day >= first, d.day <= last)
    if min_cost is not None:
        base = base.where(d.cost_usd >= min_cost)
    if user_keys is None:
        return [(k, day, c) for k, day, c in await session.execute(base)]
    rows: list[tuple[str, date, Decimal]] = []
    for chunk in chunked(user_keys):
        rows.extend((k, day, c) for k, day, c in await session.execute(base.where(d.user_key.in_(chunk))))
    return rows


async def month_costs_through(
    session: AsyncSession, month: str, last: date, month_last: date
) -> dict[str, Decimal]:
    """user_key -> spend in `month` up to and including `last`, for people with spend.

    Reads usage_monthly and takes off the (few) days of the month after `last`, so a digest
    for yesterday does not scan a month of daily rows.
    """
    m, d = UsageMonthly, UsageDaily
    spent = {k: c or Decimal(0) for k, c in await session.execute(
        select(m.user_key, m.cost_usd).where(m.month == month)
    )}
    if last < month_last:
        later = await session.execute(
            select(d.user_key, func.sum(d.cost_usd)).where(d.day > last, d.day <= month_last).group_by(d.user_key)
        )
        for key, cost in later:
            spent[key] = spent.get(key, Decimal(0)) - (cost or Decimal(0))
    return {k: v for k, v in spent.items() if v > 0}


async def daily_costs_by_model(session: AsyncSession, first: date, last: date) -> list[tuple[date, str, Decimal]]:
    """(day, model, cost) over [first, last] from usage_daily_model."""
    d = UsageDailyModel
    query = (
        select(d.day, d.model, func.sum(d.cost_usd))
        .where(d.day >= first, d.day <= last)
        .group_by(d.day, d.model)
    )
    return [(day, model, c or Decimal(0)) for day, model, c in await session.execute(query)]


# -- /tokens cards, leaderboards, admin commands and the App Home -------------------------------

async def person_days(session: AsyncSession, user_key: str, first: date, last: date) -> list[tuple[date, Measures]]:
    """One person's (day, Measures) rows with usage in the window (primary-key range on usage_daily)."""
    d = UsageDaily
    query = (
        select(d.day, d.input_tokens, d.cached_input_tokens, d.output_tokens, d.reasoning_tokens, d.cost_usd,
               d.events, d.unpriced_events)
        .where(d.user_key == user_key, d.day >= first, d.day <= last)
        .order_by(d.day)
    )
    return [(r[0], _totals(r[1:])) for r in await session.execute(query)]


def _ahead(cost_col, tokens_col, key_col, mine_cost: Decimal, mine_tokens: int, key: str):
    """Rows before (cost, tokens, key) in leaderboard order: cost desc, tokens desc, key asc."""
    return or_(
        cost_col > mine_cost,
        and_(cost_col == mine_cost, tokens_col > mine_tokens),
        and_(cost_col == mine_cost, tokens_col == mine_tokens, key_col < key),
    )


async def month_position(
    session: AsyncSession, month: str, user_key: str
) -> tuple[int | None, Measures | None, int | None]:
    """A person's rank among the people (Slack ids) in `leaderboard_month` order, their month Measures
    and how many people have spend this month, in one statement; (None, None, None) without spend."""
    m = UsageMonthly
    other = aliased(UsageMonthly)
    ahead = (
        select(func.count())
        .where(
            other.month == m.month,
            is_person(session, other.user_key),
            _ahead(other.cost_usd, other.input_tokens + other.output_tokens, other.user_key, m.cost_usd,
                   m.input_tokens + m.output_tokens, m.user_key),
        )
        .scalar_subquery()
    )
    people = select(func.count()).where(other.month == m.month, is_person(session, other.user_key)).scalar_subquery()
    row = (await session.execute(
        select(m.input_tokens, m.cached_input_tokens, m.output_tokens, m.reasoning_tokens, m.cost_usd, m.events,
               m.unpriced_events, ahead, people)
        .where(m.user_key == user_key, m.month == month)
    )).first()
    if row is None:
        return None, None, None
    return int(row[7]) + 1, _totals(row[:7]), int(row[8])


async def identities_of(session: AsyncSession, slack_user_id: str) -> list[str]:
    """External ids linked to a person in the database (config links are the caller's to add)."""
    rows = await session.scalars(select(Identity.external_id).where(Identity.slack_user_id == slack_user_id))
    return sorted(rows)


async def linked_to(session: AsyncSession, external_id: str) -> str | None:
    """The person an external id is linked to in the database, if any."""
    identity = await session.get(Identity, external_id)
    return identity.slack_user_id if identity is not None else None


async def names_of(session: AsyncSession, slack_user_ids) -> dict[str, str]:
    """Slack id -> display name, for those `people` knows by name."""
    keys = sorted(set(slack_user_ids))
    if not keys:
        return {}
    rows = await session.execute(
        select(Person.slack_user_id, Person.display_name).where(Person.slack_user_id.in_(keys))
    )
    return {k: v for k, v in rows if v}


async def keys_with_usage(session: AsyncSession, user_keys: list[str]) -> list[str]:
    """Those of `user_keys` that have spend stored under them (any month)."""
    if not user_keys:
        return []
    m = UsageMonthly
    rows = await session.scalars(select(m.user_key).where(m.user_key.in_(user_keys)).distinct())
    return sorted(rows)


async def months_of(session: AsyncSession, user_key: str) -> list[tuple[str, Measures]]:
    """(month, Measures) stored under one key, e.g. an unlinked id before it is linked."""
    m = UsageMonthly
    query = (
        select(m.month, m.input_tokens, m.cached_input_tokens, m.output_tokens, m.reasoning_tokens, m.cost_usd,
               m.events, m.unpriced_events)
        .where(m.user_key == user_key)
        .order_by(m.month)
    )
    return [(r[0], _totals(r[1:])) for r in await session.execute(query)]


async def claim_slack_event(session: AsyncSession, event_id: str, now: datetime) -> bool:
    """Record an Events API event_id; False when it was seen before (a retry or another process)."""
    table = SlackEventSeen.__table__
    stmt = (
        dialect_insert(session, table)
        .values(event_id=event_id, seen_at=now)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(table.c.event_id)
    )
    return (await session.execute(stmt)).first() is not None


async def release_slack_event(session: AsyncSession, event_id: str) -> None:
    """Forget a claim whose work failed, so Slack's retry can do it."""
    await session.execute(delete(SlackEventSeen).where(SlackEventSeen.event_id == event_id))


async def forget_slack_events(session: AsyncSession, before: datetime) -> None:
    await session.execute(delete(SlackEventSeen).where(SlackEventSeen.seen_at < before))


async def _upsert(session: AsyncSession, table, key: str, values: dict) -> None:
    """Insert a row keyed by `key`, or overwrite its other columns."""
    stmt = dialect_insert(session, table).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[key], set_={name: stmt.excluded[name] for name in values if name != key}
    )
    await session.execute(stmt)


async def upsert_budget(session: AsyncSession, user_key: str, monthly_usd: Decimal, set_by: str,
                        at: datetime) -> None:
    """The standing monthly budget (admin-set, or a "from now on" approval)."""
    await _upsert(session, Budget.__table__, "user_key",
                  {"user_key": user_key, "monthly_usd": monthly_usd, "set_by": set_by, "set_at": at})


async def upsert_approver(session: AsyncSession, requester: str, approver: str, set_by: str,
                          at: datetime) -> None:
    await _upsert(session, ApproverAssignment.__table__, "requester",
                  {"requester": requester, "approver": approver, "set_by": set_by, "set_at": at})


async def upsert_digest_subscription(
    session: AsyncSession, *, channel: str, local_time: str, period: str, top: int, created_by: str, at: datetime
) -> None:
    """One subscription per (channel, period): a second `/tokens admin digest` moves its time."""
    stmt = dialect_insert(session, DigestSubscription.__table__).values(
        channel=channel, local_time=local_time, period=period, top=top, created_by=created_by, created_at=at
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["channel", "period"],
        set_={"local_time": stmt.excluded.local_time, "top": stmt.excluded.top,
              "created_by": stmt.excluded.created_by, "created_at": stmt.excluded.created_at},
    )
    await session.execute(stmt)


@dataclass(frozen=True)
class Standings:
    """The top rows of a leaderboard, the caller's row when it is further down, and everyone's totals.

    Ranks count people only: an unlinked id's row has rank None (it is spend, not a competitor)."""

    rows: list[tuple[int | None, Ranked]]  # the first `top` rows, leaderboard order
    caller: tuple[int, Ranked] | None  # the caller's row when not among `rows`
    people: int  # people (Slack ids) with spend in the period
    unlinked: int  # other keys with spend in the period
    total_cost: Decimal
    total_tokens: int


async def standings(
    session: AsyncSession, caller: str, top: int, *, month: str | None = None,
    first: date | None = None, last: date | None = None,
) -> Standings:
    """`leaderboard_month` (with `month`) or `leaderboard_days` (with `first`..`last`) order:
    the first `top` rows, the caller's row wherever it is, and everyone's totals.

    Three small statements (top-N, totals, the caller's position when outside the top); on
    SQLite they cost a few milliseconds together, where one window-function query costs more.
    """
    if month is not None:
        m = UsageMonthly
        leaders = await leaderboard_month(session, month, limit=top)
        key, where = m.user_key, (m.month == month,)
        cost, tokens = m.cost_usd, m.input_tokens + m.output_tokens
    else:
        d = UsageDaily
        leaders = await leaderboard_days(session, first, last, limit=top)
        key, where = d.user_key, (d.day >= first, d.day <= last)
        cost, tokens = d.cost_usd, d.input_tokens + d.output_tokens
    everyone = (await session.execute(
        select(func.count(func.distinct(key)), func.count(func.distinct(key)).filter(is_person(session, key)),
               func.sum(cost), func.sum(tokens))
        .where(*where)
    )).one()
    rows: list[tuple[int | None, Ranked]] = []
    rank = 0
    for row in leaders:
        if SLACK_USER_ID.match(row.key):
            rank += 1
            rows.append((rank, row))
        else:
            rows.append((None, row))
    mine = None
    if leaders and caller not in {r.key for r in leaders}:
        if month is not None:
            position, totals, _ = await month_position(session, month, caller)
        else:
            position, totals = await days_position(session, first, last, caller)
        if position is not None and totals is not None:
            mine = (position, Ranked(caller, totals))
    people = int(everyone[1] or 0)
    return Standings(
        rows=rows,
        caller=mine,
        people=people,
        unlinked=int(everyone[0] or 0) - people,
        total_cost=everyone[2] if everyone[2] is not None else Decimal(0),
        total_tokens=int(everyone[3] or 0),
    )


async def days_position(
    session: AsyncSession, first: date, last: date, user_key: str
) -> tuple[int | None, Measures | None]:
    """A person's rank among the people in `leaderboard_days` order for the window, and their Measures there."""
    d = UsageDaily
    mine = (await session.execute(
        select(func.count(), *_sums(d)).where(d.user_key == user_key, d.day >= first, d.day <= last)
    )).one()
    if not mine[0]:
        return None, None
    totals = _totals(mine[1:])
    per_person = (
        select(
            d.user_key.label("user_key"),
            func.sum(d.cost_usd).label("cost_usd"),
            func.sum(d.input_tokens + d.output_tokens).label("tokens"),
        )
        .where(d.day >= first, d.day <= last)
        .group_by(d.user_key)
        .subquery()
    )
    ahead = await session.scalar(
        select(func.count()).select_from(per_person).where(
            is_person(session, per_person.c.user_key),
            _ahead(per_person.c.cost_usd, per_person.c.tokens, per_person.c.user_key, totals.cost_usd,
                   totals.tokens, user_key)
        )
    )
    return int(ahead or 0) + 1, totals
