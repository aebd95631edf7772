"""Rows worked on under a lease: taken by one conditional UPDATE, retried with backoff.

The outbox (bot/outbox.py) and digest runs (bot/digests/delivery.py) both hand one row
to one process at a time, whatever the number of processes: a row is *taken* by an
UPDATE whose WHERE says it is free (no lease, or a lease that ran out), which only one
transaction can win; the taker holds it until `lease_until`, so a process that dies
mid-work leaves a row the next taker gets once the lease has run out. A failed attempt
sets the next try `backoff(attempt)` later: `first_retry` doubling, capped at `max_retry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, or_, update
from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True)
class LeasedRows:
    table: Table
    lease_column: str  # when the holder's lease ends; NULL or past means free
    first_retry: timedelta
    max_retry: timedelta
    attempts_column: str = "attempts"

    @property
    def lease_until(self):
        return self.table.c[self.lease_column]

    @property
    def attempts(self):
        return self.table.c[self.attempts_column]

    def free(self, now: datetime) -> ColumnElement[bool]:
        """Rows nobody holds at `now`."""
        return or_(self.lease_until.is_(None), self.lease_until < now)

    def backoff(self, attempt: int) -> timedelta:
        """The wait after failed attempt number `attempt` (1, 2, ...): first_retry doubling, capped."""
        return min(self.first_retry * (2 ** max(attempt - 1, 0)), self.max_retry)

    async def take(self, session: AsyncSession, where: ColumnElement[bool], *, now: datetime, lease: timedelta,
                   count_attempt: bool = False, **values: Any) -> int | None:
        """Lease the row matching `where` (which must include the caller's notion of free, e.g. `free(now)`)
        until `now + lease`; the row's attempt count after the take, or None when another process has it."""
        values[self.lease_column] = now + lease
        if count_attempt:
            values[self.attempts_column] = self.attempts + 1
        row = (await session.execute(
            update(self.table).where(where).values(**values).returning(self.attempts)
            .execution_options(synchronize_session=False)
        )).first()
        return None if row is None else int(row[0])

    async def settle(self, session: AsyncSession, where: ColumnElement[bool], **values: Any) -> bool:
        """Write what came of an attempt on a row the caller holds; False when `where` no longer matches
        (the lease ran out and another process took the row)."""
        result = await session.execute(
            update(self.table).where(where).values(**values).execution_options(synchronize_session=False))
        return result.rowcount == 1
