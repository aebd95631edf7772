"""Teams in the database: memberships over time, user group sync state, and reads of the
chargeback rollup (`usage_team_monthly`, kept by storage/fold.py).

Team figures read the rollup only (a primary-key range on (month, team)); the budget checks
that must be exact to the last event add the unfolded tail (`team_month_spend`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import String, bindparam, func, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from storage import fold
from storage.measures import Measures
from storage.models import TeamMembership, TeamSyncState, UsageTeamDaily, UsageTeamMonthly
from storage.queries import _sums, _totals
from storage.types import money_from_db

T = UsageTeamMonthly
EXPORT_KEYS = {"team": T.team, "person": T.user_key, "model": T.model, "project": T.project}


# -- memberships --------------------------------------------------------------------------------------

async def current_members(session: AsyncSession) -> list[tuple[str, str, str]]:
    """(team, user_id, source) of every open membership."""
    rows = await session.execute(select(TeamMembership.team, TeamMembership.user_id, TeamMembership.source)
                                 .where(TeamMembership.until.is_(None))
                                 .order_by(TeamMembership.team, TeamMembership.user_id))
    return [tuple(r) for r in rows]


async def reconcile_members(session: AsyncSession, team: str, source: str, users: set[str],
                            now: datetime) -> tuple[set[str], set[str]]:
    """Make the open (team, source) memberships exactly `users`: close those gone (until=now), open
    the new ones (since=now). Returns (added, removed). Past rows are never rewritten."""
    rows = await session.execute(select(TeamMembership.user_id).where(
        TeamMembership.team == team, TeamMembership.source == source, TeamMembership.until.is_(None)))
    current = {r[0] for r in rows}
    added, removed = users - current, current - users
    if removed:
        await session.execute(update(TeamMembership).where(
            TeamMembership.team == team, TeamMembership.source == source, TeamMembership.until.is_(None),
            TeamMembership.user_id.in_(sorted(removed))).values(until=now))
    for user in sorted(added):
        session.add(TeamMembership(team=team, user_id=user, source=source, since=now))
    await session.flush()
    return added, removed


async def membership_history(session: AsyncSession, team: str) -> list[TeamMembership]:
    rows = await session.scalars(select(TeamMembership).where(TeamMembership.team == team)
                                 .order_by(TeamMembership.since, TeamMembership.id))
    return list(rows)


# -- user group sync state ----------------------------------------------------------------------------

async def sync_states(session: AsyncSession) -> dict[str, TeamSyncState]:
    return {s.team: s for s in await session.scalars(select(TeamSyncState))}


async def record_sync(session: AsyncSession, team: str, usergroup: str, *, at: datetime, members: int | None,
                      error: str | None) -> bool:
    """Store a sync's outcome. Returns True when this error is new (not yet named to admins): the
    caller tells them once; a success clears it, so a later failure is named again."""
    row = await session.get(TeamSyncState, team, with_for_update=True)
    if row is None:
        row = TeamSyncState(team=team, usergroup=usergroup, members=0, error_reported=False)
        session.add(row)
    row.usergroup = usergroup
    if error is None:
        row.synced_at, row.members, row.error, row.error_reported = at, members or 0, None, False
        await session.flush()
        return False
    fresh = not row.error_reported or row.error != error
    row.error, row.error_reported = error, True
    await session.flush()
    return fresh


# -- the chargeback rollup ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    key: str
    totals: Measures


async def team_totals(session: AsyncSession, month: str, team: str | None = None) -> dict[str, Measures]:
    """team ("" none) -> the month's sums (all teams, or one: a primary-key range)."""
    query = select(T.team, *_sums(T)).where(T.month == month)
    if team is not None:
        query = query.where(T.team == team)
    rows = await session.execute(query.group_by(T.team))
    return {r[0]: _totals(r[1:]) for r in rows}


async def team_breakdown(session: AsyncSession, month: str, team: str, by: str) -> list[Row]:
    """One team's month by person or model, by cost (ties by key)."""
    col = EXPORT_KEYS[by]
    rows = await session.execute(select(col, *_sums(T)).where(T.month == month, T.team == team).group_by(col))
    out = [Row(r[0], _totals(r[1:])) for r in rows]
    out.sort(key=lambda x: (-x.totals.cost_usd, x.key))
    return out


async def team_months(session: AsyncSession, team: str, months: list[str]) -> dict[str, Decimal]:
    rows = await session.execute(select(T.month, func.sum(T.cost_usd)).where(T.team == team, T.month.in_(months))
                                 .group_by(T.month))
    return {r[0]: r[1] or Decimal(0) for r in rows}


async def export_rows(session: AsyncSession, month: str, by: str) -> list[Row]:
    """The month grouped by team | person | model | project ("" = none), by cost then key."""
    col = EXPORT_KEYS[by]
    rows = await session.execute(select(col, *_sums(T)).where(T.month == month).group_by(col))
    out = [Row(r[0], _totals(r[1:])) for r in rows]
    out.sort(key=lambda x: (-x.totals.cost_usd, x.key))
    return out


async def team_month_spend(session: AsyncSession, month: str, first: date, last: date,
                           teams: list[str]) -> dict[str, Decimal]:
    """Each team's month spend exact to the last committed event: the rollup plus the unfolded tail."""
    teams = sorted(set(teams))
    if not teams:
        return {}
    if session.bind.dialect.name == "sqlite":
        marks = ",".join("?" * len(teams))
        sql = (f"SELECT team, wide_sum(cost_usd) FROM (SELECT team, cost_usd FROM usage_team_monthly "
               f"WHERE month = ? AND team IN ({marks}) UNION ALL SELECT charge_team, cost_usd FROM usage_events "
               "WHERE seq > (SELECT COALESCE(MAX(folded_seq), 0) FROM rollup_fold_state) AND day >= ? AND day <= ? "
               f"AND charge_team IN ({marks})) GROUP BY team")
        params = (month, *teams, first.isoformat(), last.isoformat(), *teams)
        rows = await session.run_sync(lambda s: fold.SqliteExec(s.connection(), driver=False).rows(sql, params))
        return {r[0]: money_from_db(r[1], "sqlite") for r in rows}
    query = text(
        "SELECT team, SUM(cost_usd) FROM (SELECT team, cost_usd FROM usage_team_monthly WHERE month = :month "
        "AND team = ANY(:teams) UNION ALL SELECT u.team, u.cost_usd FROM team_fold_queue q, "
        f"{fold.TEAM_UNNEST} WHERE u.team = ANY(:teams) AND u.day >= :first AND u.day <= :last) s GROUP BY team"
    ).bindparams(bindparam("teams", type_=postgresql.ARRAY(String)))
    rows = await session.execute(query, {"month": month, "teams": teams, "first": first, "last": last})
    return {r[0]: Decimal(r[1]) for r in rows}



async def team_costs_days(session: AsyncSession, first: date, last: date) -> dict[str, Measures]:
    """team ("" none) -> sums over local days [first, last] (usage_team_daily)."""
    d = UsageTeamDaily
    rows = await session.execute(select(d.team, *_sums(d)).where(d.day >= first, d.day <= last).group_by(d.team))
    return {r[0]: _totals(r[1:]) for r in rows}


async def team_days(session: AsyncSession, team: str, first: date, last: date) -> list[tuple[date, Measures]]:
    """One team's (day, Measures) rows with usage in [first, last] (primary-key range on usage_team_daily)."""
    d = UsageTeamDaily
    rows = await session.execute(select(d.day, *_sums(d)).where(d.team == team, d.day >= first, d.day <= last)
                                 .group_by(d.day))
    return [(r[0], _totals(r[1:])) for r in rows]
