"""Runaway breaker benchmark: what the breaker costs ingest, and how fast a burst becomes a DM.

    .venv/bin/python bench/bench_breaker.py [--runs 5] [--batches 40] [--bursts 100] [--database sqlite|URL]

1. Ingest rate, breaker off against on, in the same run: two processes' worth of Services on one
   fresh SQLite file each (or the PostgreSQL URL given), the same batches of 500 native events from
   2,000 people (ordinary spend: no trips) through `UsageIngestor.ingest`, the one path every source
   and the webhooks end in (no HTTP in front, so the breaker's share is not diluted by it). Runs
   alternate off/on; each figure is the median of `--runs` with min and max; CPU is the process's
   user+system time per 1,000 events.
2. Burst to DM: `--bursts` people each start an agent loop (one $3 call at a time, back to back,
   each call ingested on its own, as a gateway logs it) over steady background traffic; the time
   from the burst's first event, and from the event that crossed the threshold ($20), to the
   moment the trip's DM is handed to Slack (the breaker's `post_trip`), median and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.breaker import trips  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.enforce_config import BreakerSettings  # noqa: E402
from bot.wiring import build_services  # noqa: E402
from storage.db import upgrade_async  # noqa: E402

PEOPLE = 2000
BATCH = 500


def batch(prefix: str, n: int, rng: random.Random, now: datetime) -> list[dict]:
    return [{"id": f"{prefix}-{i}", "timestamp": (now - timedelta(seconds=rng.uniform(0, 600))).isoformat(),
             "user": f"U0P{rng.randrange(PEOPLE):05d}", "model": "gpt-4o", "input_tokens": rng.randrange(200, 8000),
             "output_tokens": rng.randrange(50, 2000), "metadata": {"agent_id": f"agent-{rng.randrange(50)}"}}
            for i in range(n)]


def settings_for(url: str, mode: str) -> Settings:
    return Settings(database_url=url, timezone=ZoneInfo("America/New_York"),
                    breaker=BreakerSettings(mode=mode, window_minutes=15, min_usd=Decimal(20), factor=Decimal(5)))


async def fresh_url(base: str | None, tag: str, tmp: Path) -> str:
    if base is None:
        url = f"sqlite+aiosqlite:///{tmp}/{tag}.db"
    else:
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(base)
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        await engine.dispose()
        url = base
    await upgrade_async(url)
    return url


HOOK_CPU = [0.0]  # CPU seconds spent inside the breaker's hook (the "on" runs)


async def ingest_run(url: str, mode: str, batches: list[list[dict]]) -> tuple[float, float]:
    services = build_services(settings_for(url, mode), with_slack=False)
    hooks = services.ingestor.after_ingest
    if mode != "off":
        inner = hooks[-1]

        async def timed(result) -> None:
            started = time.thread_time()  # this thread only: the database driver's thread works meanwhile
            await inner(result)
            HOOK_CPU[0] += time.thread_time() - started

        hooks[-1] = timed
    try:
        await services.ingestor.ingest(batches[0], source="native")  # warm: connections, prices, identities
        events = sum(len(b) for b in batches[1:])
        cpu, wall = time.process_time(), time.perf_counter()
        for b in batches[1:]:
            await services.ingestor.ingest(b, source="native")
        await services.background.drain()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return events / wall, cpu / events * 1_000_000  # ms per 1,000 events
    finally:
        await services.close()


async def bursts(url: str, count: int, rng: random.Random) -> tuple[list[float], list[float], int]:
    services = build_services(replace(settings_for(url, "alert")), with_slack=False)
    handed: dict[str, float] = {}
    original = trips.post_trip

    async def post_trip(svc, trip) -> None:  # the moment the DM goes to Slack
        handed[trip.subject] = time.perf_counter()
        await original(svc, trip)

    trips.post_trip = post_trip
    from_first, from_cross = [], []
    try:
        now = services.clock.now()
        await services.ingestor.ingest(batch("warm", BATCH, rng, now), source="native")
        for n in range(count):
            person = f"U0BURST{n:04d}"
            first = crossed = None
            spent = Decimal(0)
            background = batch(f"bg{n}", 50, rng, now)
            for call in range(40):
                await services.ingestor.ingest([{
                    "id": f"burst-{n}-{call}", "timestamp": services.clock.now().isoformat(), "user": person,
                    "model": "gpt-4o", "input_tokens": 100_000, "output_tokens": 5_000, "cost_usd": "3",
                    "metadata": {"agent_id": "runaway"}}], source="native")
                first = first or time.perf_counter()
                spent += 3
                if spent > 20 and crossed is None:
                    crossed = time.perf_counter()
                if call % 4 == 0:  # ordinary traffic between the agent's calls
                    await services.ingestor.ingest(background[call * 5:(call + 1) * 5] or background[:5],
                                                   source="native")
                await asyncio.sleep(0)
                if f"user:{person}" in handed:
                    break
            await services.background.drain()
            done = handed.get(f"user:{person}")
            if done is not None:
                from_first.append(done - first)
                from_cross.append(done - crossed)
        return from_first, from_cross, len(handed)
    finally:
        trips.post_trip = original
        await services.close()


def fmt(values: list[float], unit: str = "", scale: float = 1.0, digits: int = 0) -> str:
    med = statistics.median(values) * scale
    return f"{med:,.{digits}f}{unit} (min {min(values) * scale:,.{digits}f}, max {max(values) * scale:,.{digits}f})"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--bursts", type=int, default=100)
    parser.add_argument("--database", default="sqlite", help="sqlite, or a PostgreSQL URL to wipe and use")
    args = parser.parse_args()
    base = None if args.database == "sqlite" else args.database
    rng = random.Random(14)
    now = datetime.now(UTC)
    results: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            batches = [batch(f"r{run}b{i}", BATCH, rng, now) for i in range(args.batches + 1)]
            for mode in (("off", "alert") if run % 2 == 0 else ("alert", "off")):
                url = await fresh_url(base, f"{run}-{mode}", Path(tmp))
                results["on" if mode == "alert" else "off"].append(await ingest_run(url, mode, batches))
        url = await fresh_url(base, "bursts", Path(tmp))
        first, cross, tripped = await bursts(url, args.bursts, rng)
    rate_off = [r for r, _ in results["off"]]
    rate_on = [r for r, _ in results["on"]]
    cpu_off = [c for _, c in results["off"]]
    cpu_on = [c for _, c in results["on"]]
    slower = 1 - statistics.median(rate_on) / statistics.median(rate_off)
    hook_ms = HOOK_CPU[0] / (args.runs * (args.batches + 1) * BATCH) * 1_000_000
    print(f"database: {'SQLite' if base is None else 'PostgreSQL'}; {args.runs} runs of {args.batches} batches "
          f"of {BATCH} events from {PEOPLE:,} people")
    print(f"ingest, breaker off: {fmt(rate_off, ' events/s')}; CPU {fmt(cpu_off, ' ms', digits=1)} per 1k events")
    print(f"ingest, breaker on:  {fmt(rate_on, ' events/s')}; CPU {fmt(cpu_on, ' ms', digits=1)} per 1k events")
    print(f"breaker on is {slower:+.1%} slower (median against median); the hook itself: {hook_ms:.2f} ms CPU "
          f"per 1k events ({hook_ms / statistics.median(cpu_off):.1%} of the ingest path's CPU with it off)")
    print(f"bursts: {tripped}/{args.bursts} tripped; first event -> DM: median "
          f"{statistics.median(first) * 1000:.0f} ms, "
          f"p99 {pct(first, 0.99) * 1000:.0f} ms; threshold crossed -> DM: median "
          f"{statistics.median(cross) * 1000:.0f} ms, p99 {pct(cross, 0.99) * 1000:.0f} ms")


if __name__ == "__main__":
    asyncio.run(main())
