"""Ingest benchmark: signed batches and single events through HTTP into SQLite and PostgreSQL,
each beside honest floors measured in the same run.

    .venv/bin/python bench/bench_ingest.py [--backends sqlite,postgresql] [--preload 1000000]
        [--runs 5] [--batches 40] [--singles 4000]

Per backend, on a database that already holds `--preload` events (rollups built, people a mix of
Slack ids, linked emails and unlinked external ids):
- batched: `tokenbot serve` (a subprocess) takes signed Standard Webhooks batches of 500 from 4
  concurrent clients: events/s, and the server's CPU (user+system) per 1,000 events;
- rollup lag: from the last acknowledged batch until the rollups hold every event;
- storage floor: the same rows (the project's own driver tuples) into the real `usage_events`
  table with its real indexes, 500 per transaction, same durability, on a copy of the same
  preloaded database: SQLite `executemany`, PostgreSQL `COPY`;
- single-event requests (32 clients): requests/s, p50/p99, CPU per request, beside the HTTP
  floor: `GET /livez` (a static answer, no database) through the same client;
- the server's peak RSS (VmHWM).
Every figure is the median of `--runs` runs with min and max. PostgreSQL databases are
`tb_bench_w10*` on $BENCH_PG (default postgresql://postgres@127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import ledger_data  # noqa: E402

from storage.usage import EVENT_COLUMNS, RowEncoder  # noqa: E402

SECRET = "whsec_" + base64.b64encode(b"bench-secret-bench-secret-123456").decode()
CACHE = ROOT / "bench" / ".cache"
PG_BASE = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
PEOPLE = 2000


def make_events(prefix: str, count: int, subjects: list[str], rng: random.Random) -> list[dict]:
    now = datetime.now(UTC)
    events = []
    for i in range(count):
        input_tokens = rng.randint(100, 50_000)
        output_tokens = rng.randint(10, 4_000)
        model, provider = ledger_data.MODELS[rng.randrange(len(ledger_data.MODELS))]
        events.append({
            "id": f"{prefix}-{i}",
            "timestamp": (now - timedelta(seconds=rng.randint(0, 2 * 3600))).isoformat(),  # a live stream
            "user": rng.choice(subjects),
            "model": model,
            "input_tokens": input_tokens,
            "cached_input_tokens": input_tokens // rng.choice((1_000_000, 2, 3)),
            "output_tokens": output_tokens,
            "reasoning_tokens": output_tokens // 2 if rng.random() < 0.2 else 0,
            "team": rng.choice(("platform", "research", "growth")),
            **({"provider": provider} if provider else {}),
        })
    return events


def floor_tuples(events: list[dict], dialect: str) -> list[tuple]:
    """The rows the server would write, as the project's driver tuples (priced at a fixed cost)."""
    encoder = RowEncoder(dialect)
    now = datetime.now(UTC)
    received = encoder.time(now)
    out = []
    for e in events:
        at = datetime.fromisoformat(e["timestamp"])
        out.append(encoder.row(e["id"], at, at.astimezone(ledger_data.TZ).date(), received, "native", e["user"],
                               ledger_data.user_key(e["user"]), e["model"], e.get("provider"), e["team"], None,
                               e["input_tokens"], e["cached_input_tokens"], e["output_tokens"],
                               e["reasoning_tokens"], ledger_data.Decimal("0.012345678901"),
                               "genai-prices bench", False, None))
    return out


def sign(body: bytes, msg_id: str) -> dict[str, str]:
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    stamp = str(int(time.time()))
    digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {"webhook-id": msg_id, "webhook-timestamp": stamp,
            "webhook-signature": "v1," + base64.b64encode(digest).decode(), "Content-Type": "application/json"}


# -- databases ------------------------------------------------------------------------------------
def pg_url(name: str, driver: str = "postgresql+asyncpg") -> str:
    return PG_BASE.replace("postgresql://", f"{driver}://") + f"/{name}"


async def pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_BASE + "/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def prepared(backend: str, preload: int, workdir: Path) -> tuple[str, str]:
    """(server URL, floor URL): two copies of one preloaded database (built once, cached)."""
    from storage.db import upgrade_async

    rng = random.Random(7)
    subjects = ledger_data.people(PEOPLE)
    now = datetime.now(UTC)
    if backend == "sqlite":
        CACHE.mkdir(parents=True, exist_ok=True)
        cached = CACHE / f"ingest-{preload}.db"
        if not cached.exists():
            building = cached.with_suffix(".building")
            building.unlink(missing_ok=True)
            url = f"sqlite+aiosqlite:///{building}"
            await upgrade_async(url)
            print(f"  preloading {preload:,} events into SQLite ...", flush=True)
            ledger_data.load_sqlite(building, ledger_data.event_values(preload, subjects, now, rng))
            await ledger_data.add_identities(url, ledger_data.identities(subjects))
            await ledger_data.rebuild(url)
            conn = sqlite3.connect(building)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()
            building.rename(cached)
        server, floor = workdir / "server.db", workdir / "floor.db"
        shutil.copyfile(cached, server)
        shutil.copyfile(cached, floor)
        return f"sqlite+aiosqlite:///{server}", str(floor)
    template = f"tb_bench_w10_pre{preload}"
    import asyncpg

    admin = await asyncpg.connect(PG_BASE + "/postgres")
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", template)
    finally:
        await admin.close()
    if not exists:
        await pg_admin(f'CREATE DATABASE "{template}"')
        url = pg_url(template)
        await upgrade_async(url)
        print(f"  preloading {preload:,} events into PostgreSQL ...", flush=True)
        await ledger_data.load_postgres(pg_url(template, "postgresql"),
                                        ledger_data.event_values(preload, subjects, now, rng))
        await ledger_data.add_identities(url, ledger_data.identities(subjects))
        await ledger_data.rebuild(url)
    for name in ("tb_bench_w10_server", "tb_bench_w10_floor"):
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return pg_url("tb_bench_w10_server"), pg_url("tb_bench_w10_floor", "postgresql")


def floor_sqlite(path: str, batches: list[list[tuple]]) -> float:
    from storage.db import connect_sqlite

    conn = connect_sqlite(path)  # WAL, synchronous=FULL: the server's settings
    sql = (f"INSERT INTO usage_events (seq, {', '.join(EVENT_COLUMNS)}) "
           f"VALUES ({', '.join('?' for _ in range(len(EVENT_COLUMNS) + 1))})")
    seq = conn.execute("SELECT MAX(seq) FROM usage_events").fetchone()[0]
    rows = []
    for batch in batches:
        chunk = []
        for row in batch:
            seq += 1
            chunk.append((seq, *row))
        rows.append(chunk)
    started = time.perf_counter()
    for chunk in rows:
        conn.execute("BEGIN")
        conn.executemany(sql, chunk)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return sum(len(b) for b in batches) / elapsed


async def floor_postgres(dsn: str, batches: list[list[tuple]]) -> float:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        for batch in batches:
            async with conn.transaction():
                await conn.copy_records_to_table("usage_events", records=batch, columns=EVENT_COLUMNS)
        elapsed = time.perf_counter() - started
    finally:
        await conn.close()
    return sum(len(b) for b in batches) / elapsed


async def caught_up(url: str) -> bool:
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.split(":///", 1)[1])
        try:
            done, top = conn.execute("SELECT (SELECT folded_seq FROM rollup_fold_state), MAX(seq) "
                                     "FROM usage_events").fetchone()
        finally:
            conn.close()
        return done >= top
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM usage_fold_queue)")
    finally:
        await conn.close()


# -- the server and the load -------------------------------------------------------------------------
def start_server(url: str, port: int, workdir: Path) -> subprocess.Popen:
    config = workdir / "tokenbot.toml"
    # Budgets high enough that no alert DM fires: the after-ingest budget check still runs.
    config.write_text("timezone = \"America/New_York\"\n[budgets]\ndefault_monthly_usd = 100000000\n")
    env = {**os.environ, "DATABASE_URL": url, "SLACK_BOT_TOKEN": "xoxb-bench", "SLACK_SIGNING_SECRET": "bench",
           "SLACK_API_URL": "http://127.0.0.1:9/api/", "USAGE_WEBHOOK_SECRET": SECRET, "HOST": "127.0.0.1",
           "PORT": str(port), "TOKENBOT_CONFIG": str(config)}
    return subprocess.Popen([sys.executable, "-m", "bot.cli", "serve"], cwd=workdir, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(workdir / "server.log", "wb"))


async def wait_live(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited"
        try:
            await post_all(url, [(b"", {})], 1, request_line="GET /livez")
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError("server did not start")


async def post_all(url: str, bodies: list[tuple[bytes, dict]], concurrency: int, *,
                   request_line: str = "POST /webhooks/usage") -> tuple[list[float], float]:
    """Send every request over `concurrency` keep-alive connections; (latencies, time of the last answer).

    A minimal HTTP/1.1 client on asyncio streams with requests built up front: an aiohttp client
    saturates a core long before the server does on a 2-core machine.
    """
    host, port = url.removeprefix("http://").split(":")
    requests = []
    for body, headers in bodies:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        requests.append(f"{request_line} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n{head}\r\n"
                        .encode() + body)
    latencies: list[float] = []
    position = 0
    last = 0.0

    async def worker() -> None:
        nonlocal position, last
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while position < len(requests):
                request = requests[position]
                position += 1
                started = time.perf_counter()
                writer.write(request)
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length)
                if b" 200 " not in status_line:
                    raise RuntimeError(f"{status_line!r}: {body[:300]!r}")
                last = time.perf_counter()
                latencies.append(last - started)
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, last


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def spread(values: list[float], fmt: str = ",.0f") -> str:
    return f"{format(statistics.median(values), fmt)} ({format(min(values), fmt)}-{format(max(values), fmt)})"


async def bench_backend(backend: str, args, rng: random.Random) -> dict[str, list[float]]:
    workdir = Path(tempfile.mkdtemp(prefix=f"tokenbot-bench-{backend}-"))
    url, floor = await prepared(backend, args.preload, workdir)
    port = 38000 + os.getpid() % 1000 + (0 if backend == "sqlite" else 1)
    http = f"http://127.0.0.1:{port}"
    server = start_server(url, port, workdir)
    subjects = ledger_data.people(PEOPLE)
    out: dict[str, list[float]] = {k: [] for k in (
        "batched", "cpu_batched", "lag", "floor", "ratio", "single", "p50", "p99", "cpu_single", "livez",
        "livez_p99")}
    try:
        await wait_live(http, server)
        # warm-up: rate cards, connections, pages, and every person seen once (a server that has been
        # up a while knows its senders; the identity cache keeps each for a minute)
        warm = make_events(f"warm-{backend}", 4000, subjects, rng)
        for n, subject in enumerate(subjects):
            warm[n]["user"] = subject
        await post_all(http, [(orjson.dumps(warm[i:i + 500]), sign(orjson.dumps(warm[i:i + 500]), f"w{i}"))
                              for i in range(0, len(warm), 500)], 2)
        for run in range(args.runs):
            events = make_events(f"r{backend}{run}", args.batches * 500, subjects, rng)
            batches = [events[i:i + 500] for i in range(0, len(events), 500)]
            bodies = [(body, sign(body, f"b{run}-{n}")) for n, body in enumerate(orjson.dumps(b) for b in batches)]
            cpu = cpu_seconds(server.pid)
            started = time.perf_counter()
            _, last = await post_all(http, bodies, args.concurrency)
            elapsed = last - started
            used = cpu_seconds(server.pid) - cpu
            while not await caught_up(url):  # noqa: ASYNC110 - polling another process's database
                await asyncio.sleep(0.01)
            out["lag"].append((time.perf_counter() - last) * 1000)
            out["batched"].append(len(events) / elapsed)
            out["cpu_batched"].append(used / len(events) * 1e6)  # ms per 1,000 events

            tuples = floor_tuples(events, backend)
            chunks = [tuples[i:i + 500] for i in range(0, len(tuples), 500)]
            rate = floor_sqlite(floor, chunks) if backend == "sqlite" else await floor_postgres(floor, chunks)
            out["floor"].append(rate)
            out["ratio"].append(out["batched"][-1] / rate)

            singles = make_events(f"s{backend}{run}", args.singles, subjects, rng)
            single_bodies = [(body, sign(body, f"s{run}-{n}")) for n, body in enumerate(orjson.dumps(e)
                                                                                        for e in singles)]
            cpu = cpu_seconds(server.pid)
            started = time.perf_counter()
            latencies, last = await post_all(http, single_bodies, args.single_concurrency)
            out["single"].append(len(singles) / (last - started))
            out["cpu_single"].append((cpu_seconds(server.pid) - cpu) / len(singles) * 1e6)
            latencies.sort()
            out["p50"].append(latencies[len(latencies) // 2] * 1000)
            out["p99"].append(latencies[int(len(latencies) * 0.99)] * 1000)
            started = time.perf_counter()
            latencies, last = await post_all(http, [(b"", {})] * args.singles, args.single_concurrency,
                                             request_line="GET /livez")
            out["livez"].append(args.singles / (last - started))
            latencies.sort()
            out["livez_p99"].append(latencies[int(len(latencies) * 0.99)] * 1000)
            print(f"  {backend} run {run + 1}: batched {out['batched'][-1]:,.0f} ev/s "
                  f"({out['cpu_batched'][-1]:.1f} ms CPU/1k, lag {out['lag'][-1]:.0f} ms), floor {rate:,.0f} rows/s "
                  f"(ratio {out['ratio'][-1]:.2f}); single {out['single'][-1]:,.0f} req/s p50 {out['p50'][-1]:.1f} "
                  f"p99 {out['p99'][-1]:.1f} ms; /livez {out['livez'][-1]:,.0f} req/s", flush=True)
        out["rss"] = [peak_rss_mib(server.pid)]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--preload", type=int, default=1_000_000, help="events already stored")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batches", type=int, default=40, help="batches of 500 per run")
    parser.add_argument("--singles", type=int, default=4000, help="single-event requests per run")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--single-concurrency", type=int, default=32)
    args = parser.parse_args()
    rng = random.Random(42)
    results = {}
    for backend in args.backends.split(","):
        print(f"{backend}: {args.preload:,} events stored before the runs", flush=True)
        results[backend] = await bench_backend(backend, args, rng)
    print()
    print(f"machine: {os.cpu_count()} cores; SQLite {sqlite3.sqlite_version}; preload {args.preload:,} events; "
          f"runs {args.runs}; median (min-max)")
    for backend, r in results.items():
        print(f"\n[{backend}]")
        print(f"batched ingest, 500/batch, {args.concurrency} clients: {spread(r['batched'])} events/s; "
              f"server CPU {spread(r['cpu_batched'], '.1f')} ms per 1,000 events")
        print(f"rollups current after the last ack: {spread(r['lag'])} ms")
        print(f"storage floor (same rows, real table and indexes, 500/txn): {spread(r['floor'])} rows/s; "
              f"ratio {spread(r['ratio'], '.2f')}")
        print(f"single-event requests, {args.single_concurrency} clients: {spread(r['single'])} req/s, "
              f"p50 {spread(r['p50'], '.1f')} ms, p99 {spread(r['p99'], '.1f')} ms, "
              f"CPU {spread(r['cpu_single'], '.0f')} us per request")
        print(f"HTTP floor GET /livez, same client: {spread(r['livez'])} req/s, p99 {spread(r['livez_p99'], '.1f')} ms")
        print(f"server peak RSS: {r['rss'][0]:.0f} MiB")


if __name__ == "__main__":
    asyncio.run(main())
