"""Provider sources in the database (SPEC 10): pull state and leases, buckets and their ledger rows,
the bill side, provider users and Claude Code days.

A bucket is stored once per `bucket_id` with the figures last seen. `apply_buckets` turns a page of
buckets into ledger rows inside the caller's write transaction: a new bucket is one row under its
`bucket_id`; a bucket re-polled with other figures is one more row of the difference
(`<bucket_id>#r<revision>`), so the rollups move by exactly the change and a bucket seen again
unchanged writes nothing. The ledger ids are fixed by (bucket, revision), so a poll that dies and is
run again cannot count anything twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from storage.models import ClaudeCodeDay, ProviderBucket, ProviderCost, ProviderUser, SourceState
from storage.usage import dialect_insert, insert_events

LEASE_ENDPOINT = "*"
_CHUNK = 500


# =========================================================================== state, cursors, leases

async def ensure_state(conn: AsyncConnection | AsyncSession, source: str, endpoints: Sequence[str]) -> None:
    t = SourceState.__table__
    stmt = dialect_insert(conn, t).values([{"source": source, "endpoint": e, "errors": 0}
                                           for e in (LEASE_ENDPOINT, *endpoints)])
    await conn.execute(stmt.on_conflict_do_nothing(index_elements=["source", "endpoint"]))


async def take_lease(conn, source: str, owner: str, now: datetime, seconds: float) -> bool:
    """The source's lease for `owner` until now + seconds, unless another holder's lease is live."""
    t = SourceState.__table__
    result = await conn.execute(
        update(t).where(t.c.source == source, t.c.endpoint == LEASE_ENDPOINT,
                        or_(t.c.lease_until.is_(None), t.c.lease_until < now, t.c.lease_owner == owner))
        .values(lease_owner=owner, lease_until=now + timedelta(seconds=seconds)))
    return result.rowcount == 1


async def release_lease(conn, source: str, owner: str) -> None:
    t = SourceState.__table__
    await conn.execute(update(t).where(t.c.source == source, t.c.endpoint == LEASE_ENDPOINT,
                                       t.c.lease_owner == owner).values(lease_owner=None, lease_until=None))


async def cursor(conn, source: str, endpoint: str) -> datetime | None:
    t = SourceState.__table__
    return (await conn.execute(select(t.c.cursor).where(t.c.source == source, t.c.endpoint == endpoint))).scalar()


async def record_success(conn, source: str, endpoint: str, *, now: datetime, new_cursor: datetime | None,
                         notes: str | None = None) -> None:
    t = SourceState.__table__
    values: dict[str, Any] = {"last_poll_at": now, "last_success_at": now, "last_error": None, "errors": 0}
    if new_cursor is not None:
        values["cursor"] = new_cursor
    if notes is not None:
        values["notes"] = notes
    await conn.execute(update(t).where(t.c.source == source, t.c.endpoint == endpoint).values(**values))


async def record_error(conn, source: str, endpoint: str, *, now: datetime, error: str) -> None:
    t = SourceState.__table__
    await conn.execute(update(t).where(t.c.source == source, t.c.endpoint == endpoint)
                       .values(last_poll_at=now, last_error=error[:500], errors=t.c.errors + 1))


async def claim_key_alert(conn, source: str, now: datetime) -> bool:
    """True once per outage of the source's key (set here, cleared by `clear_key_alert`)."""
    t = SourceState.__table__
    result = await conn.execute(update(t).where(t.c.source == source, t.c.endpoint == LEASE_ENDPOINT,
                                                t.c.key_alerted_at.is_(None)).values(key_alerted_at=now))
    return result.rowcount == 1


async def clear_key_alert(conn, source: str) -> None:
    t = SourceState.__table__
    await conn.execute(update(t).where(t.c.source == source, t.c.endpoint == LEASE_ENDPOINT,
                                       t.c.key_alerted_at.is_not(None)).values(key_alerted_at=None))


async def states(session: AsyncSession) -> list[SourceState]:
    return list((await session.execute(select(SourceState).order_by(SourceState.source, SourceState.endpoint)))
                .scalars())


# =========================================================================== buckets -> ledger rows

@dataclass(slots=True)
class Bucket:
    """One usage bucket, priced and attributed, ready for the ledger."""

    bucket_id: str
    source: str
    occurred_at: datetime  # the bucket's start (UTC)
    day: date  # the organisation's local day of `occurred_at` (ledger rollups)
    utc_day: date
    subject: str
    user_key: str
    model: str
    project: str | None
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    price_source: str
    unpriced: bool
    counted: bool
    figures: dict[str, Any] = field(default_factory=dict)
    team: str | None = None
    charge_team: str = ""  # the team (SPEC 13) its spend is charged to: project/workspace alias, else the person's


@dataclass
class BucketOutcome:
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    ledger_rows: int = 0
    inserted: list[dict] = field(default_factory=list)


async def apply_buckets(conn: AsyncConnection, buckets: Sequence[Bucket], *, now: datetime,
                        resolve_subject=None) -> BucketOutcome:
    """Store a page of buckets and their ledger rows in the caller's write transaction.

    `resolve_subject(subject) -> user_key` attributes the difference rows of a changed bucket to
    whoever its first row's subject belongs to now (a link made since moves them together)."""
    out = BucketOutcome()
    if not buckets:
        return out
    t = ProviderBucket.__table__
    if conn.dialect.name == "postgresql":
        # the lookups below are prepared statements: a generic plan made while the table was small
        # (a seq scan) would be kept as it grows during a backfill; plan each with its real size
        await conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")
    seen: dict[str, Any] = {}
    ids = sorted({b.bucket_id for b in buckets})
    for i in range(0, len(ids), _CHUNK):
        rows = await conn.execute(select(t.c.bucket_id, t.c.input_tokens, t.c.cached_input_tokens, t.c.output_tokens,
                                         t.c.cost_usd, t.c.unpriced, t.c.counted, t.c.revision, t.c.figures)
                                  .where(t.c.bucket_id.in_(ids[i:i + _CHUNK])))
        for r in rows:
            seen[r[0]] = r
    inserts, updates, events = [], [], []
    for b in buckets:
        figures = {**b.figures, "_subject": b.subject, "_cost": str(b.cost_usd)}
        old = seen.get(b.bucket_id)
        if old is None:
            out.new += 1
            inserts.append(_bucket_values(b, figures, 0, now))
            seen[b.bucket_id] = (b.bucket_id, b.input_tokens, b.cached_input_tokens, b.output_tokens, b.cost_usd,
                                 b.unpriced, b.counted, 0, figures)
            if b.counted:
                events.append(_event(b, b.bucket_id, b.input_tokens, b.cached_input_tokens, b.output_tokens,
                                     b.cost_usd, now))
            continue
        old_figures = old[8] or {}
        if old_figures == figures and bool(old[6]) == b.counted:
            out.unchanged += 1
            continue
        out.changed += 1
        revision = int(old[7]) + 1
        updates.append(_bucket_values(b, figures, revision, now))
        seen[b.bucket_id] = (b.bucket_id, b.input_tokens, b.cached_input_tokens, b.output_tokens, b.cost_usd,
                             b.unpriced, b.counted, revision, figures)
        sign_old = 1 if old[6] else 0
        sign_new = 1 if b.counted else 0
        delta = (sign_new * b.input_tokens - sign_old * int(old[1]), sign_new * b.cached_input_tokens
                 - sign_old * int(old[2]), sign_new * b.output_tokens - sign_old * int(old[3]),
                 sign_new * b.cost_usd - sign_old * Decimal(old[4]))
        if any(delta):
            subject = old_figures.get("_subject", b.subject)
            user_key = resolve_subject(subject) if resolve_subject else b.user_key
            row = _event(b, f"{b.bucket_id}#r{revision}", *delta, now)
            row["subject"], row["user_key"] = subject, user_key
            events.append(row)
    if inserts:
        stmt = dialect_insert(conn, t)
        await conn.execute(stmt.on_conflict_do_nothing(index_elements=["bucket_id"]), inserts)
    if updates:
        keep = [k for k in updates[0] if k != "bucket_id"]
        stmt = update(t).where(t.c.bucket_id == bindparam("b_id")).values({k: bindparam(k) for k in keep})
        await conn.execute(stmt, [{"b_id": v["bucket_id"], **{k: v[k] for k in keep}} for v in updates])
    if events:
        out.inserted = await insert_events(conn, events)
        out.ledger_rows = len(out.inserted)
    return out


def _bucket_values(b: Bucket, figures: dict, revision: int, now: datetime) -> dict[str, Any]:
    return {"bucket_id": b.bucket_id, "source": b.source, "day": b.utc_day, "project": b.project, "model": b.model,
            "input_tokens": b.input_tokens, "cached_input_tokens": b.cached_input_tokens,
            "output_tokens": b.output_tokens, "cost_usd": b.cost_usd, "unpriced": b.unpriced, "counted": b.counted,
            "revision": revision, "figures": figures, "updated_at": now}


def _event(b: Bucket, event_id: str, input_tokens: int, cached: int, output: int, cost: Decimal,
           now: datetime) -> dict[str, Any]:
    return {"event_id": event_id, "occurred_at": b.occurred_at, "day": b.day, "received_at": now,
            "source": b.source, "subject": b.subject, "user_key": b.user_key, "model": b.model,
            "provider": b.source, "team": b.team, "project": b.project, "input_tokens": input_tokens,
            "cached_input_tokens": cached, "output_tokens": output, "reasoning_tokens": 0, "cost_usd": cost,
            "price_source": b.price_source, "unpriced": b.unpriced,
            "metadata": {"bucket": b.bucket_id}, "charge_team": b.charge_team}  # its figures are in provider_buckets


# =========================================================================== the bill side, users, Claude Code

async def upsert_costs(conn, source: str, rows: Sequence[tuple[date, str, str, Decimal]], now: datetime) -> int:
    """(UTC day, project, line item, amount): each replaces what was stored for its key."""
    if not rows:
        return 0
    merged: dict[tuple[date, str, str], Decimal] = {}
    for day, project, item, amount in rows:
        merged[(day, project, item)] = merged.get((day, project, item), Decimal(0)) + amount
    t = ProviderCost.__table__
    values = [{"source": source, "day": k[0], "project": k[1], "line_item": k[2], "amount_usd": v, "updated_at": now}
              for k, v in merged.items()]
    stmt = dialect_insert(conn, t)
    stmt = stmt.on_conflict_do_update(index_elements=["source", "day", "project", "line_item"],
                                      set_={"amount_usd": stmt.excluded.amount_usd,
                                            "updated_at": stmt.excluded.updated_at})
    await conn.execute(stmt, values)
    return len(values)


async def upsert_users(conn, source: str, users: Sequence[tuple[str, str | None, str | None]]) -> None:
    if not users:
        return
    t = ProviderUser.__table__
    stmt = dialect_insert(conn, t)
    stmt = stmt.on_conflict_do_update(index_elements=["source", "user_id"],
                                      set_={"email": stmt.excluded.email, "name": stmt.excluded.name})
    await conn.execute(stmt, [{"source": source, "user_id": u, "email": e, "name": n} for u, e, n in users])


async def user_emails(conn, source: str) -> dict[str, str]:
    t = ProviderUser.__table__
    rows = await conn.execute(select(t.c.user_id, t.c.email).where(t.c.source == source, t.c.email.is_not(None)))
    return {r[0]: r[1] for r in rows}


async def upsert_claude_code(conn, rows: Sequence[dict[str, Any]]) -> int:
    if not rows:
        return 0
    t = ClaudeCodeDay.__table__
    stmt = dialect_insert(conn, t)
    keep = ("user_key", "sessions", "lines_added", "lines_removed", "commits", "pull_requests", "tokens",
            "estimated_cost_usd", "models", "updated_at")
    stmt = stmt.on_conflict_do_update(index_elements=["day", "actor"], set_={k: stmt.excluded[k] for k in keep})
    await conn.execute(stmt, list(rows))
    return len(rows)


@dataclass(frozen=True)
class Output:
    sessions: int = 0
    lines_added: int = 0
    lines_removed: int = 0
    commits: int = 0
    pull_requests: int = 0
    estimated_cost_usd: Decimal = Decimal(0)
    days: int = 0


async def output_by_actor(session: AsyncSession, first: date, last: date) -> list[tuple[str, str, Output]]:
    """(actor, user_key stored at pull time, Claude Code output) over [first, last] (UTC days)."""
    t = ClaudeCodeDay.__table__
    query = (select(t.c.actor, t.c.user_key, func.sum(t.c.sessions), func.sum(t.c.lines_added),
                    func.sum(t.c.lines_removed), func.sum(t.c.commits), func.sum(t.c.pull_requests),
                    func.sum(t.c.estimated_cost_usd), func.count())
             .where(t.c.day >= first, t.c.day <= last).group_by(t.c.actor, t.c.user_key))
    return [(r[0], r[1], Output(*(int(v or 0) for v in r[2:7]), Decimal(r[7] or 0), int(r[8])))
            for r in await session.execute(query)]


async def bucket_counts(session: AsyncSession) -> dict[str, tuple[int, int, date | None]]:
    """source -> (buckets, revised buckets, latest UTC day)."""
    t = ProviderBucket.__table__
    rows = await session.execute(select(t.c.source, func.count(), func.count().filter(t.c.revision > 0),
                                        func.max(t.c.day)).group_by(t.c.source))
    return {r[0]: (int(r[1]), int(r[2]), r[3]) for r in rows}


async def costs_between(session: AsyncSession, first: date, last: date) -> list[tuple[str, date, str, Decimal]]:
    """(source, UTC day, project, amount) of the bill side, line items summed."""
    t = ProviderCost.__table__
    rows = await session.execute(select(t.c.source, t.c.day, t.c.project, func.sum(t.c.amount_usd))
                                 .where(and_(t.c.day >= first, t.c.day <= last))
                                 .group_by(t.c.source, t.c.day, t.c.project))
    return [(r[0], r[1], r[2], Decimal(r[3] or 0)) for r in rows]


async def unpriced_bill_side_models(session: AsyncSession, first: date, last: date) -> list[tuple[str, int, int]]:
    """(model, buckets, tokens) of buckets kept on the bill side only (count = "none") without a price:
    not in the ledger, so not among its unpriced models, but still a price to add."""
    t = ProviderBucket.__table__
    rows = await session.execute(
        select(t.c.model, func.count(), func.sum(t.c.input_tokens + t.c.output_tokens))
        .where(t.c.day >= first, t.c.day <= last, t.c.unpriced, ~t.c.counted).group_by(t.c.model))
    return [(r[0], int(r[1]), int(r[2] or 0)) for r in rows]
