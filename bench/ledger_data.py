"""Shared by the benchmarks: a synthetic organisation and a ledger preloaded fast.

People are a mix, as gateways send them: Slack user ids (60%), emails linked to Slack ids in
`identities` (25%, as after their first sighting) and external ids nobody linked (15%).
Preloading writes driver tuples straight into the real tables (the project's `RowEncoder`,
SQLite `seq`s, PostgreSQL partitions and ids), then rebuilds the rollups with the project's
own `rebuild_rollups`, so the database is what months of ingest would have left.
"""

from __future__ import annotations

import random
import sqlite3
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from storage.usage import EVENT_COLUMNS, RowEncoder  # noqa: E402

TZ = ZoneInfo("America/New_York")
MODELS = [("gpt-4o", "openai"), ("gpt-4o-mini", "openai"), ("claude-sonnet-4-5", "anthropic"), ("o3", "openai"),
          ("gemini-2.5-pro", "google"), ("acme-internal", None)]


def people(count: int) -> list[str]:
    """Subjects as senders name them: Slack ids, emails, external ids."""
    out = []
    for i in range(count):
        kind = i % 20
        if kind < 12:
            out.append(f"U0B{i:05d}")
        elif kind < 17:
            out.append(f"user{i:05d}@acme.test")
        else:
            out.append(f"key_live_{i:05d}")
    return out


def user_key(subject: str) -> str:
    """The person the preloaded ledger files a subject under (emails are linked)."""
    if "@" in subject:
        return "U0E" + subject[4:9]
    return subject


def identities(subjects: Iterable[str]) -> list[tuple[str, str]]:
    return [(s, user_key(s)) for s in subjects if "@" in s]


def event_values(count: int, subjects: list[str], now: datetime, rng: random.Random, *, days: int = 30,
                 prefix: str = "pre") -> Iterator[tuple]:
    """Values in `RowEncoder.row` order: a long tail of heavy and light users over `days` days."""
    weights = [rng.lognormvariate(0, 1.2) for _ in subjects]
    chosen = rng.choices(subjects, weights=weights, k=count)
    span = days * 86400
    for i, subject in enumerate(chosen):
        at = now - timedelta(seconds=rng.randrange(span))
        model, provider = MODELS[i % len(MODELS)]
        input_tokens = rng.randrange(50, 40_000)
        output_tokens = rng.randrange(10, 4_000)
        cost = Decimal(rng.randrange(1, 50_000_000)) / Decimal(10**9)
        yield (f"{prefix}-{i}", at, at.astimezone(TZ).date(), now, "native", subject, user_key(subject), model,
               provider, "team", None, input_tokens, input_tokens // 4, output_tokens,
               output_tokens // 5 if model == "o3" else 0, cost, "source", False, None)


def load_sqlite(path: Path, values: Iterable[tuple]) -> int:
    from storage.db import connect_sqlite

    encoder = RowEncoder("sqlite")
    conn = connect_sqlite(str(path))
    conn.execute("PRAGMA synchronous=OFF")
    top = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM usage_events").fetchone()[0]
    sql = (f"INSERT INTO usage_events (seq, {', '.join(EVENT_COLUMNS)}) "
           f"VALUES ({', '.join('?' for _ in range(len(EVENT_COLUMNS) + 1))})")
    batch: list = []
    count = 0
    conn.execute("BEGIN")
    for v in values:
        count += 1
        batch.append((top + count, *encoder.row(*v[:3], encoder.time(v[3]), *v[4:])))
        if len(batch) == 50_000:
            conn.executemany(sql, batch)
            batch.clear()
    if batch:
        conn.executemany(sql, batch)
    conn.execute("UPDATE rollup_fold_state SET folded_seq = ?", (top + count,))  # rebuilt below, not folded
    conn.execute("COMMIT")
    conn.close()
    return count


async def load_postgres(dsn: str, values: Iterable[tuple]) -> int:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    months: set[date] = set()
    count = 0
    try:
        batch: list = []

        async def flush() -> None:
            for first in sorted({v[2].replace(day=1) for v in batch} - months):
                upto = (first + timedelta(days=32)).replace(day=1)
                await conn.execute(f"CREATE TABLE IF NOT EXISTS usage_events_{first:%Y_%m} PARTITION OF usage_events "
                                   f"FOR VALUES FROM ('{first}') TO ('{upto}')")
                months.add(first)
            await conn.copy_records_to_table("usage_events", records=batch, columns=EVENT_COLUMNS)
            await conn.copy_records_to_table("usage_event_ids", records=[(v[0],) for v in batch], columns=["event_id"])
            batch.clear()

        for v in values:
            count += 1
            batch.append((*v[:15], v[15].quantize(Decimal("1e-12")), *v[16:]))
            if len(batch) == 100_000:
                await flush()
        if batch:
            await flush()
        await conn.execute("ANALYZE usage_events")
    finally:
        await conn.close()
    return count


async def rebuild(url: str) -> None:
    from storage.db import Database
    from storage.rewrites import rebuild_rollups

    db = Database(url)
    try:
        async with db.write() as session:
            await rebuild_rollups(session)
    finally:
        await db.dispose()


async def add_identities(url: str, pairs: list[tuple[str, str]]) -> None:
    from storage.db import Database
    from storage.models import Identity

    db = Database(url)
    try:
        async with db.write() as session:
            now = datetime.now(UTC)
            session.add_all(Identity(external_id=e, slack_user_id=s, source="email", checked_at=now) for e, s in pairs)
    finally:
        await db.dispose()


def sqlite_size(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT COUNT(*) FROM usage_events").fetchone()[0]
    finally:
        conn.close()
