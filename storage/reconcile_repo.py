"""The ledger side of reconciliation (SPEC 10): what the ledger holds per provider, UTC day and project.

Providers bill by UTC day, the rollups are in the organisation's local days, so this reads the raw
events of the month (the `day` column bounds the scan, one day either side; on PostgreSQL that is
partition pruning) and groups them by the UTC date of `occurred_at`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from storage.fold import SqliteExec
from storage.types import money_from_db


async def ledger_by_day(session: AsyncSession, providers: list[str], first: date,
                        last: date) -> list[tuple[str, date, str, Decimal, int]]:
    """(provider, UTC day, project or "", cost, events) for events of `providers` in [first, last] (UTC days)."""
    start = datetime.combine(first, time(), UTC)
    end = datetime.combine(last + timedelta(days=1), time(), UTC)
    lo, hi = first - timedelta(days=1), last + timedelta(days=1)
    names = sorted({p.lower() for p in providers})
    if session.bind.dialect.name == "sqlite":
        marks = ",".join("?" * len(names))
        sql = ("SELECT lower(provider), substr(occurred_at, 1, 10), COALESCE(project, ''), wide_sum(cost_usd), "
               f"COUNT(*) FROM usage_events WHERE day >= ? AND day <= ? AND lower(provider) IN ({marks}) "
               "AND occurred_at >= ? AND occurred_at < ? GROUP BY 1, 2, 3")
        params = (lo.isoformat(), hi.isoformat(), *names, _naive(start), _naive(end))
        rows = await session.run_sync(lambda s: SqliteExec(s.connection(), driver=False).rows(sql, params))
        return [(r[0], date.fromisoformat(r[1]), r[2], money_from_db(r[3], "sqlite"), int(r[4])) for r in rows]
    query = text(
        "SELECT lower(provider), (occurred_at AT TIME ZONE 'UTC')::date, COALESCE(project, ''), SUM(cost_usd), "
        "COUNT(*) FROM usage_events WHERE day >= :lo AND day <= :hi AND lower(provider) = ANY(:names) "
        "AND occurred_at >= :start AND occurred_at < :end GROUP BY 1, 2, 3")
    rows = await session.execute(query, {"lo": lo, "hi": hi, "names": names, "start": start, "end": end})
    return [(r[0], r[1], r[2], Decimal(r[3]), int(r[4])) for r in rows]


def _naive(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
