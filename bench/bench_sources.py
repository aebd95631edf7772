"""Provider sources benchmark (issue 13): one month of OpenAI hourly usage buckets pulled from the fake
Admin API into the ledger, beside the same rows posted as native batches, in one run.

    .venv/bin/python bench/bench_sources.py [--runs 3] [--users 2000] [--keys 20] [--models 6]
        [--active-hours 4] [--days 30] [--database-url URL]

The organisation: `--users` people, `--keys` API keys (a user uses the keys i, i+1 mod keys), `--models`
models; each user is active `--active-hours` hours a day and each active hour is one bucket (project,
user, key, model): users x active-hours x days buckets in the month (240,000 by default).
The fake (bot/providers/fake_admin.py) runs in a subprocess of its own, so the CPU measured is the
puller's; each phase runs in a fresh subprocess on a fresh database, so peak RSS is the phase's own:
- pull: `SourceSync` (what `tokenbot sources sync` runs), count = "all": every bucket priced,
  attributed (2,000 emails from the users list) and written with its ledger row; rollups folded;
- repoll: the same window again, nothing changed (the open-bucket re-read every poll pays);
- repoll-1%: the same window with 1% of the buckets grown (difference rows);
- reconcile: the month's reconciliation (ledger by UTC day against the bill);
- baseline: the same rows as native events through the one ingest path (`UsageIngestor.ingest`,
  batches of 10,000): what the ledger costs without the provider API, paging and bucket table.
Figures: median (min-max) of `--runs`; CPU = the phase process's user+system time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS = ("gpt-4o-2024-08-06", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "o3", "o4-mini", "gpt-5", "gpt-5-mini")
MONTH_START = datetime(2026, 10, 1, tzinfo=UTC)


def buckets(args, grown: bool = False):
    """(hour epoch, result) for the month, deterministic; `grown`: every 100th bucket has more output."""
    n = 0
    for day in range(args.days):
        for u in range(args.users):
            for a in range(args.active_hours):
                hour = (u * 7 + a * 3 + day) % 24
                start = int((MONTH_START + timedelta(days=day, hours=hour)).timestamp())
                key = f"key_{(u + a) % args.keys:02d}"
                model = MODELS[(u + day + a) % args.models]
                inp = 20_000 + (u * 37 + day * 11 + a) % 50_000
                out = inp // 5 + (100 if grown and n % 100 == 0 else 0)
                n += 1
                yield start, {"object": "organization.usage.completions.result", "input_tokens": inp,
                              "input_cached_tokens": inp // 4, "output_tokens": out, "num_model_requests": 3,
                              "project_id": f"proj_{u % 10}", "user_id": f"user-{u:05d}", "api_key_id": key,
                              "model": model, "batch": False}


def serve_fake(args) -> None:
    from bot.providers.fake_admin import FakeAdminAPIs

    async def main() -> None:
        fake = FakeAdminAPIs(page_size=24)
        for start, row in buckets(args, grown=args.grown):
            fake.openai_usage["completions"].setdefault(start, []).append(row)
        fake.openai_users = [{"id": f"user-{u:05d}", "email": f"person{u}@bench.test", "name": f"P{u}"}
                             for u in range(args.users)]
        days = {}
        for start, row in buckets(args):
            d = datetime.fromtimestamp(start, UTC).date()
            days[d] = days.get(d, 0) + row["input_tokens"]
        fake.openai_costs = {d: [{"project_id": "proj_0", "line_item": "completions", "amount": Decimal(t) / 10**6}]
                             for d, t in days.items()}
        fake.page_size = 24
        await fake.start()
        print(fake.url, flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def settings_for(database_url: str, fake_url: str | None):
    from bot.config import Settings
    from bot.providers.settings import SourceConfig, SourcesConfig

    sources = SourcesConfig()
    if fake_url:
        sources = SourcesConfig(openai=SourceConfig("openai", admin_key="sk-admin-fake-openai",
                                                    base_url=fake_url + "/v1", count="all", backfill_days=0))
    return Settings(database_url=database_url, sources=sources)


async def phase(args) -> dict:
    from bot.providers.reconcile import reconcile_month
    from bot.providers.sync import SourceSync
    from bot.wiring import build_services
    from storage.db import upgrade_async

    if args.phase in ("pull", "baseline"):
        await upgrade_async(args.database_url)
    services = build_services(settings_for(args.database_url, args.fake_url), with_slack=False)
    out: dict = {}
    from bot.providers.pulls import openai_client  # the SDK's admin types load lazily (~0.6 s): not timed

    openai_client("http://127.0.0.1:9", "warm-up").admin.organization.usage  # noqa: B018
    try:
        cpu0, t0 = time.process_time(), time.perf_counter()
        if args.phase == "baseline":
            batch = []
            for n, (start, row) in enumerate(buckets(args)):
                batch.append({"id": f"b-{n}", "timestamp": start,
                              "user": f"person{int(row['user_id'][5:])}@bench.test", "model": row["model"],
                              "provider": "openai", "input_tokens": row["input_tokens"],
                              "cached_input_tokens": row["input_cached_tokens"], "output_tokens": row["output_tokens"],
                              "project": row["project_id"]})
                if len(batch) == 10_000:
                    result = await services.ingestor.ingest(batch, source="bench")
                    out["rows"] = out.get("rows", 0) + result.accepted
                    batch = []
            if batch:
                result = await services.ingestor.ingest(batch, source="bench")
                out["rows"] = out.get("rows", 0) + result.accepted
            await services.ingestor.writer.settle()
        elif args.phase == "reconcile":
            rec = await reconcile_month(services, "2026-10")
            out["rows"] = len(rec.rows)
        else:
            since = MONTH_START.date()
            [report] = await SourceSync(services, base_seconds=0.01).run("openai", since)
            assert report.ok, report.errors
            out.update(rows=report.new + report.changed + report.unchanged, new=report.new,
                       changed=report.changed, ledger_rows=report.ledger_rows)
        out["seconds"] = time.perf_counter() - t0
        out["cpu"] = time.process_time() - cpu0
    finally:
        await services.close()
    out["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_phase(args, name: str, database_url: str, fake_url: str | None) -> dict:
    cmd = [sys.executable, __file__, "--phase", name, "--database-url", database_url, "--users", str(args.users),
           "--keys", str(args.keys), "--models", str(args.models), "--active-hours", str(args.active_hours),
           "--days", str(args.days)]
    if fake_url:
        cmd += ["--fake-url", fake_url]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"phase {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def start_fake(args, grown: bool) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, __file__, "--serve-fake", "--users", str(args.users), "--keys", str(args.keys),
           "--models", str(args.models), "--active-hours", str(args.active_hours), "--days", str(args.days)]
    if grown:
        cmd.append("--grown")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def med(values: list[float], fmt: str = "{:,.1f}") -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--keys", type=int, default=20)
    parser.add_argument("--models", type=int, default=6)
    parser.add_argument("--active-hours", type=int, default=4)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (default: a fresh SQLite file a run)")
    parser.add_argument("--phase")
    parser.add_argument("--fake-url")
    parser.add_argument("--serve-fake", action="store_true")
    parser.add_argument("--grown", action="store_true")
    args = parser.parse_args()
    if args.serve_fake:
        serve_fake(args)
        return
    if args.phase:
        print(json.dumps(asyncio.run(phase(args))))
        return
    total = args.users * args.active_hours * args.days
    print(f"{total:,} buckets: {args.users:,} users x {args.keys} keys x {args.models} models, "
          f"{args.active_hours} active hours a day, {args.days} days; {args.runs} runs", flush=True)
    fake, url = start_fake(args, grown=False)
    grown, grown_url = start_fake(args, grown=True)
    results: dict[str, list[dict]] = {k: [] for k in ("pull", "repoll", "repoll-1%", "reconcile", "baseline")}
    try:
        for run in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                if args.database_url:
                    reset_pg(args.database_url)
                    db = args.database_url
                else:
                    db = f"sqlite+aiosqlite:///{tmp}/pull.db"
                results["pull"].append(run_phase(args, "pull", db, url))
                results["repoll"].append(run_phase(args, "repoll", db, url))
                results["repoll-1%"].append(run_phase(args, "repoll", db, grown_url))
                results["reconcile"].append(run_phase(args, "reconcile", db, None))
                if args.database_url:
                    reset_pg(args.database_url)
                    base = args.database_url
                else:
                    base = f"sqlite+aiosqlite:///{tmp}/baseline.db"
                results["baseline"].append(run_phase(args, "baseline", base, None))
            print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]['seconds']:.1f}s" for k, v in results.items()),
                  flush=True)
    finally:
        fake.terminate()
        grown.terminate()
    print("\n| phase | wall s | rows/s | CPU s | CPU per 1,000 rows | peak RSS MiB |\n|---|---|---|---|---|---|")
    for name, runs in results.items():
        rows = runs[0]["rows"] or 1
        print(f"| {name} ({rows:,} rows) | {med([r['seconds'] for r in runs])} | "
              f"{med([r['rows'] / r['seconds'] for r in runs], '{:,.0f}')} | {med([r['cpu'] for r in runs])} | "
              f"{med([r['cpu'] * 1000 / rows * 1000 for r in runs], '{:,.0f}')} ms | "
              f"{med([r['rss_mib'] for r in runs], '{:,.0f}')} |")
    ratio = [p["seconds"] / b["seconds"] for p, b in zip(results["pull"], results["baseline"], strict=True)]
    print(f"\npull / native-batch baseline, same rows, per run: {med(ratio, '{:.2f}')}x")


def reset_pg(url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    async def go() -> None:
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        await engine.dispose()

    asyncio.run(go())


if __name__ == "__main__":
    os.environ.setdefault("TZ", "UTC")
    main()


__all__ = ["date"]
