"""/tokens benchmark: the server-side time of `/tokens me` and `/tokens top` on a large ledger.

    .venv/bin/python bench/bench_tokens.py [--events 1000000] [--people 2000] [--calls 200] [--raw-calls 20]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench_cards]

What it does, in one process so the machine's noise hits both sides alike:
- fills a fresh database directly (bulk inserts of --events usage events over --people people
  and the 30 local days up to "now", then storage.rewrites.rebuild_rollups), not through HTTP;
- times the bot-side work of each answer, --calls times for random people: `/tokens me` =
  bot.card_builder.build_card + its Block Kit and fallback text; `/tokens top` = build_leaderboard
  (this month) + Block Kit. Median and p99;
- times the same answers computed by a plain aggregate over the raw usage_events table
  (what the rollups save us), --raw-calls times; median and p99. Since 0002_ledger the events
  table has no (user_key, day) index (no read path needs one), so the raw figures are scans;
- prints a table with the ratio raw / rollups.
SQLite by default (a temporary file); pass --database-url for PostgreSQL (the database is emptied).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import ledger_data  # noqa: E402
from sqlalchemy import Date, bindparam, text  # noqa: E402

from bot.card_builder import build_card, build_leaderboard  # noqa: E402
from bot.clock import Clock, month_first_day  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.views.card import card_blocks, card_fallback  # noqa: E402
from bot.views.leaderboard import leaderboard_blocks, leaderboard_fallback  # noqa: E402
from bot.wiring import build_services  # noqa: E402
from storage.db import upgrade  # noqa: E402
from storage.rewrites import rebuild_rollups  # noqa: E402
from storage.types import money_from_db  # noqa: E402

TZ = ZoneInfo("America/New_York")


def people(count: int) -> list[str]:
    return [f"U0B{i:05d}" for i in range(count)]


async def reset_postgres(url: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


async def timed(calls: int, fn: Callable[[str], Awaitable[object]], users: list[str],
                rng: random.Random) -> list[float]:
    samples = []
    for _ in range(calls):
        user = rng.choice(users)
        began = time.perf_counter()
        await fn(user)
        samples.append((time.perf_counter() - began) * 1000)
    return samples


RAW_PERSON = text(
    "SELECT day, model, SUM(input_tokens), SUM(cached_input_tokens), SUM(output_tokens), SUM(reasoning_tokens), "
    "SUM(cost_usd), COUNT(*) FROM usage_events WHERE user_key = :user AND day >= :first AND day <= :last "
    "GROUP BY day, model"
).bindparams(bindparam("first", type_=Date), bindparam("last", type_=Date))
RAW_EVERYONE = text(
    "SELECT user_key, SUM(cost_usd), SUM(input_tokens + output_tokens) FROM usage_events "
    "WHERE day >= :first AND day <= :last GROUP BY user_key"
).bindparams(bindparam("first", type_=Date), bindparam("last", type_=Date))


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--raw-calls", type=int, default=20)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    now = datetime.now(UTC).replace(microsecond=0)
    users = people(args.people)
    workdir = Path(tempfile.mkdtemp(prefix="bench-tokens-"))
    url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    is_sqlite = url.startswith("sqlite")

    began = time.perf_counter()
    if not is_sqlite:
        await reset_postgres(url)
    await asyncio.to_thread(upgrade, url)
    rows = ledger_data.event_values(args.events, users, now, rng)
    if is_sqlite:
        await asyncio.to_thread(ledger_data.load_sqlite, workdir / "bench.db", rows)
    else:
        await ledger_data.load_postgres(url.replace("postgresql+asyncpg://", "postgresql://"), rows)
    loaded = time.perf_counter()
    settings = Settings(database_url=url, timezone=TZ)
    services = build_services(settings, clock=Clock(TZ, lambda: now), with_slack=False)
    try:
        async with services.db.write() as session:
            await rebuild_rollups(session)
        if not is_sqlite:
            async with services.db.engine.connect() as conn:
                await conn.execute(text("ANALYZE"))
        rolled = time.perf_counter()
        print(f"database: {'SQLite' if is_sqlite else 'PostgreSQL'}; {args.events:,} events over {args.people:,} "
              f"people; loaded in {loaded - began:.1f}s, rollups rebuilt in {rolled - loaded:.1f}s")

        async def me(user: str):
            card = await build_card(services, user)
            return card_fallback(card), card_blocks(card)

        async def top(user: str):
            board = await build_leaderboard(services, user, "month", privacy="names")
            return leaderboard_fallback(board), leaderboard_blocks(board)

        today = now.astimezone(TZ).date()
        first = month_first_day(today)
        window_first = min(first, today - timedelta(days=13))
        dialect = services.db.dialect

        async def everyone(session, lo: date, hi: date) -> list[tuple[str, Decimal, int]]:
            rows = await session.execute(RAW_EVERYONE, {"first": lo, "last": hi})
            ranked = [(r[0], money_from_db(r[1], dialect), int(r[2])) for r in rows]
            ranked.sort(key=lambda r: (-r[1], -r[2], r[0]))
            return ranked

        async def raw_me(user: str):
            # the card's figures from the raw events: the person's days and models, everyone for the rank
            async with services.db.session() as session:
                mine = (await session.execute(RAW_PERSON, {"user": user, "first": window_first, "last": today})).all()
                ranked = await everyone(session, first, today)
            keys = [r[0] for r in ranked]
            return len(mine), keys.index(user) + 1 if user in keys else None

        async def raw_top(user: str):
            async with services.db.session() as session:
                ranked = await everyone(session, first, today)
            return ranked[:10], sum((r[1] for r in ranked), Decimal(0))

        # the answers agree before anything is timed
        sample = users[0]
        card = await build_card(services, sample)
        assert card.rank == (await raw_me(sample))[1], "rank differs between rollups and raw events"
        board = await build_leaderboard(services, sample, "month", privacy="names")
        raw_rows, raw_total = await raw_top(sample)
        assert [(r.user_key, r.cost_usd) for r in board.rows] == [(k, c) for k, c, _ in raw_rows]
        assert board.total_cost == raw_total

        for fn in (me, top):  # warm caches and connections
            await timed(5, fn, users, rng)
        results = []
        for name, fast, slow in (("/tokens me", me, raw_me), ("/tokens top", top, raw_top)):
            ours = await timed(args.calls, fast, users, rng)
            raw = await timed(args.raw_calls, slow, users, rng)
            results.append((name, ours, raw))
        print()
        print(f"{'answer':<13}{'rollups median':>16}{'p99':>10}{'raw median':>14}{'p99':>10}{'ratio (median)':>16}"
              f"{'ratio (p99)':>13}")
        for name, ours, raw in results:
            print(f"{name:<13}{statistics.median(ours):>13.2f} ms{p99(ours):>7.2f} ms"
                  f"{statistics.median(raw):>11.1f} ms{p99(raw):>7.1f} ms"
                  f"{statistics.median(raw) / statistics.median(ours):>15.0f}x{p99(raw) / p99(ours):>12.0f}x")
        print(f"\n({args.calls} calls each on the rollups, {args.raw_calls} on the raw events; "
              f"total run {time.perf_counter() - began:.0f}s)")
    finally:
        await services.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
