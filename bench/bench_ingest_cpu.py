"""Server CPU per 1,000 events of the native ingest path, old code beside new in the same run.

    .venv/bin/python bench/bench_ingest_cpu.py [--base /tmp/p10-base] [--runs 5] [--preload 100000]
        [--batches 40] [--micro-only]

`--base` is a checkout of the old code (e.g. `git worktree add /tmp/p10-base 4e3679f`), `--new`
one of the new (default: this checkout); both are served with this venv's interpreter and the
checkout first on PYTHONPATH.

- micro (one process): the old and the new functions of each stage on the same 20,000 events:
  `parse_body` + `validate_event` (+ the local day and range checks ingest does), pricing, and
  the driver tuple. Median (min-max) of 7 timings, in microseconds per event.
- HTTP (SQLite): alternating runs of old and new `tokenbot serve` (order flipped every run), each
  on a fresh copy of one preloaded database (`--preload` events, people mixed as in
  bench_ingest.py), warmed up, then `--batches` signed batches of 500 from 4 clients:
  events/s and the server's CPU (user+system) per 1,000 events. The machine is shared: CPU per
  event is the figure to trust.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import bench_ingest as bi  # noqa: E402  (puts ROOT on sys.path)
import ledger_data  # noqa: E402


def spread(values: list[float], fmt: str = ".1f") -> str:
    return f"{format(statistics.median(values), fmt)} ({format(min(values), fmt)}-{format(max(values), fmt)})"


# -- micro: old and new functions in one process ------------------------------------------------------
def load_code(root: Path) -> dict:
    """Import bot/ and storage/ from `root`, hand back the modules, and forget them again."""
    for name in list(sys.modules):
        if name.split(".")[0] in ("bot", "storage", "handlers"):
            del sys.modules[name]
    sys.path.insert(0, str(root))
    try:
        mods = {name: importlib.import_module(name) for name in
                ("bot.sources.native", "bot.pricing", "bot.usage", "storage.usage")}
        assert mods["bot.usage"].__file__.startswith(str(root)), mods["bot.usage"].__file__
    finally:
        sys.path.remove(str(root))
        for name in list(sys.modules):
            if name.split(".")[0] in ("bot", "storage", "handlers"):
                del sys.modules[name]
    return mods


def stages(mods: dict, events: list[dict], now: datetime):
    native, pricing, usage, storage_usage = (mods[k] for k in (
        "bot.sources.native", "bot.pricing", "bot.usage", "storage.usage"))
    bodies = [orjson.dumps(events[i:i + 500]) for i in range(0, len(events), 500)]
    tz = ledger_data.TZ
    pricer = pricing.Pricer()
    encoder = storage_usage.RowEncoder("sqlite")
    check = usage._check_ranges

    def parse():
        out = []
        for body in bodies:
            for raw in native.parse_body(body, ndjson=False):
                record = native.validate_event(raw, now)
                day = record.occurred_at.astimezone(tz).date()
                check(record, day, None)
                out.append((record, day))
        return out

    records = parse()
    if hasattr(pricer, "quote"):  # the new ingest loop's call
        quote = pricer.quote

        def price_all():
            return [quote(r.model, r.provider, r.occurred_at, r.input_tokens, r.cached_input_tokens,
                          r.output_tokens, r.cost_usd) for r, _ in records]
    else:  # the old one's
        price = pricer.price

        def price_all():
            return [price(model=r.model, provider=r.provider, occurred_at=r.occurred_at, input_tokens=r.input_tokens,
                          cached_input_tokens=r.cached_input_tokens, output_tokens=r.output_tokens,
                          cost_usd=r.cost_usd) for r, _ in records]

    prices = [p if isinstance(p, tuple) else (p.cost_usd, p.source, p.unpriced, None) for p in price_all()]
    received = encoder.time(now)
    row = encoder.row

    def encode_all():  # the new loop hands the picodollars over (p[3]); old tuples carry None there
        return [row(r.event_id, r.occurred_at, day, received, "native", r.subject, r.subject, r.model, r.provider,
                    r.team, r.project, r.input_tokens, r.cached_input_tokens, r.output_tokens, r.reasoning_tokens,
                    p[0], p[1], p[2], r.metadata, r.cache_hit, "", *((p[3],) if p[3] is not None else ()))
                for (r, day), p in zip(records, prices, strict=True)]

    return {"parse + validate": parse, "price": price_all, "driver tuple": encode_all}, (records, prices,
                                                                                        encode_all())


def micro(base: Path, new: Path, count: int = 20_000) -> None:
    rng = random.Random(3)
    events = bi.make_events("m", count, ledger_data.people(bi.PEOPLE), rng)
    for n, e in enumerate(events):
        if n % 10 == 0:
            e["cost_usd"] = 0.00123 * (n % 7)  # a sender's own cost on some events
    results: dict[str, dict[str, list[float]]] = {}
    outputs = {}
    now = datetime.now(UTC)
    for label, root in (("old", base), ("new", new)):
        fns, outputs[label] = stages(load_code(root), events, now)
        results[label] = {}
        for name, fn in fns.items():
            fn()
            times = []
            for _ in range(7):
                gc.collect()
                started = time.perf_counter()
                fn()
                times.append((time.perf_counter() - started) / count * 1e6)
            results[label][name] = times
    old_rows, new_rows = outputs["old"][2], outputs["new"][2]
    assert old_rows == new_rows, "old and new driver tuples differ"
    assert [tuple(map(str, p[:3])) for p in outputs["old"][1]] == [tuple(map(str, p[:3])) for p in outputs["new"][1]]
    print(f"micro, {count:,} events, us per event, median (min-max) of 7; old and new tuples identical")
    print(f"{'stage':<18} {'old':>22} {'new':>22}")
    for name in results["old"]:
        print(f"{name:<18} {spread(results['old'][name], '.2f'):>22} {spread(results['new'][name], '.2f'):>22}")
    total = {k: sum(statistics.median(v) for v in results[k].values()) for k in results}
    print(f"{'sum of medians':<18} {total['old']:>22.2f} {total['new']:>22.2f}")


# -- HTTP: old and new servers, alternating ------------------------------------------------------------
def start(code: Path, url: str, port: int, workdir: Path) -> subprocess.Popen:
    config = workdir / "tokenbot.toml"
    config.write_text("timezone = \"America/New_York\"\n[budgets]\ndefault_monthly_usd = 100000000\n")
    env = {**os.environ, "DATABASE_URL": url, "SLACK_BOT_TOKEN": "xoxb-bench", "SLACK_SIGNING_SECRET": "bench",
           "SLACK_API_URL": "http://127.0.0.1:9/api/", "USAGE_WEBHOOK_SECRET": bi.SECRET, "HOST": "127.0.0.1",
           "PORT": str(port), "TOKENBOT_CONFIG": str(config), "PYTHONPATH": str(code)}
    return subprocess.Popen([sys.executable, "-m", "bot.cli", "serve"], cwd=workdir, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(workdir / "server.log", "wb"))


async def one_run(code: Path, label: str, run: int, args, rng: random.Random) -> tuple[float, float]:
    workdir = Path(tempfile.mkdtemp(prefix=f"tokenbot-cpu-{label}-"))
    url, _ = await bi.prepared("sqlite", args.preload, workdir)
    port = 39000 + os.getpid() % 500
    http = f"http://127.0.0.1:{port}"
    server = start(code, url, port, workdir)
    subjects = ledger_data.people(bi.PEOPLE)
    try:
        await bi.wait_live(http, server)
        check = subprocess.run(  # noqa: ASYNC221 - once, before the measured part
            [sys.executable, "-c", "import bot; print(bot.__file__)"], cwd=workdir,
                               env={**os.environ, "PYTHONPATH": str(code)}, capture_output=True, text=True)
        assert check.stdout.startswith(str(code)), check.stdout
        warm = bi.make_events(f"warm-{label}{run}", 4000, subjects, rng)
        for n, subject in enumerate(subjects):
            warm[n]["user"] = subject
        await bi.post_all(http, [(orjson.dumps(warm[i:i + 500]), bi.sign(orjson.dumps(warm[i:i + 500]), f"w{i}"))
                                 for i in range(0, len(warm), 500)], 2)
        while not await bi.caught_up(url):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        events = bi.make_events(f"r{label}{run}", args.batches * 500, subjects, rng)
        bodies = [(body, bi.sign(body, f"b{run}-{n}")) for n, body in
                  enumerate(orjson.dumps(events[i:i + 500]) for i in range(0, len(events), 500))]
        cpu = bi.cpu_seconds(server.pid)
        started = time.perf_counter()
        _, last = await bi.post_all(http, bodies, args.concurrency)
        while not await bi.caught_up(url):  # noqa: ASYNC110 - the fold's CPU counts too
            await asyncio.sleep(0.01)
        used = bi.cpu_seconds(server.pid) - cpu
        return len(events) / (last - started), used / len(events) * 1e6
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)


async def http(args) -> None:
    rng = random.Random(11)
    codes = {"old": Path(args.base), "new": Path(args.new)}
    out = {k: {"rate": [], "cpu": []} for k in codes}
    for run in range(args.runs):
        order = ("old", "new") if run % 2 == 0 else ("new", "old")
        for label in order:
            rate, cpu = await one_run(codes[label], label, run, args, rng)
            out[label]["rate"].append(rate)
            out[label]["cpu"].append(cpu)
            print(f"  run {run + 1} {label}: {rate:,.0f} events/s, {cpu:.1f} ms CPU per 1,000 events "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
    print(f"\nSQLite, {args.preload:,} events preloaded, {args.batches} batches of 500 from {args.concurrency} "
          f"clients, {args.runs} runs each, median (min-max)")
    for label in codes:
        print(f"{label}: {spread(out[label]['rate'], ',.0f')} events/s; "
              f"server CPU {spread(out[label]['cpu'])} ms per 1,000 events")
    pairs = [n / o for n, o in zip(out["new"]["cpu"], out["old"]["cpu"], strict=True)]
    print(f"new / old CPU per event, run by run: {spread(pairs, '.2f')}; new lower in "
          f"{sum(p < 1 for p in pairs)} of {len(pairs)} runs")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default="/tmp/p10-base", help="checkout of the old code")
    parser.add_argument("--new", default=str(ROOT), help="checkout of the new code (default: this one)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--preload", type=int, default=100_000)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--micro-only", action="store_true")
    args = parser.parse_args()
    micro(Path(args.base), Path(args.new))
    if not args.micro_only:
        asyncio.run(http(args))


if __name__ == "__main__":
    main()
