"""Ingest benchmark: signed batches through HTTP into SQLite, beside the storage floor.

    .venv/bin/python bench/bench_ingest.py [--runs 5] [--batches 40] [--singles 2000]

What it measures, in one process run so the machine's noise hits both sides alike:
- batched: `tokenbot serve` (a subprocess, SQLite in WAL mode, synchronous=FULL) takes
  signed Standard Webhooks batches of 500 events from 4 concurrent clients; events/s;
- floor: plain `sqlite3.executemany` of the same rows into one table with the same
  primary key, same pragmas, one commit per 500 rows, in this process; events/s;
- the ratio batched / floor;
- single-event requests: requests/s and p50/p99 latency with 32 concurrent clients;
- beside them, GET /healthz (one `SELECT 1`) through the same client: the HTTP floor;
- the server's peak RSS (VmHWM).
Medians over --runs runs. The figures go in the issue note, not in a timed test.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec_" + base64.b64encode(b"bench-secret-bench-secret-123456").decode()
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "o3", "gemini-2.5-pro", "acme-internal"]


def make_events(prefix: str, count: int, rng: random.Random) -> list[dict]:
    now = datetime.now(UTC)
    events = []
    for i in range(count):
        input_tokens = rng.randint(100, 50_000)
        output_tokens = rng.randint(10, 4_000)
        events.append({
            "id": f"{prefix}-{i}",
            # a live stream: calls from the last two hours, as a gateway sends them
            "timestamp": (now - timedelta(seconds=rng.randint(0, 2 * 3600))).isoformat(),
            "user": f"U{rng.randint(0, 1999):05d}",
            "model": rng.choice(MODELS),
            "input_tokens": input_tokens,
            "cached_input_tokens": input_tokens // rng.choice((1_000_000, 2, 3)),
            "output_tokens": output_tokens,
            "reasoning_tokens": output_tokens // 2 if rng.random() < 0.2 else 0,
            "team": rng.choice(("platform", "research", "growth")),
        })
    return events


def sign(body: bytes, msg_id: str) -> dict[str, str]:
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    stamp = str(int(time.time()))
    digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id, "webhook-timestamp": stamp,
        "webhook-signature": "v1," + base64.b64encode(digest).decode(), "Content-Type": "application/json",
    }


def start_server(db_path: Path, port: int) -> subprocess.Popen:
    # Budgets high enough that no alert DM fires: the after-ingest budget check still runs.
    config = db_path.with_name("tokenbot.toml")
    config.write_text("[budgets]\ndefault_monthly_usd = 100000000\n")
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{db_path}",
        "SLACK_BOT_TOKEN": "xoxb-bench", "SLACK_SIGNING_SECRET": "bench",
        "SLACK_API_URL": "http://127.0.0.1:9/api/",  # nothing listens: ingest never calls Slack
        "USAGE_WEBHOOK_SECRET": SECRET, "HOST": "127.0.0.1", "PORT": str(port),
        "TOKENBOT_CONFIG": str(config),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve"], cwd=db_path.parent, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


async def wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(url + "/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("server did not become healthy")


async def post_all(url: str, bodies: list[tuple[bytes, dict]], concurrency: int, *,
                   request_line: str = "POST /webhooks/usage") -> list[float]:
    """POST every body over `concurrency` keep-alive connections; per-request latencies.

    A minimal HTTP/1.1 client on asyncio streams with the requests built up front: an
    aiohttp client in Python saturates a core long before the server does, and on a
    2-core machine the load generator must not be what is measured.
    """
    host, port = url.removeprefix("http://").split(":")
    requests = []
    for body, headers in bodies:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        requests.append(
            f"{request_line} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode()
            + body
        )
    latencies: list[float] = []
    position = 0

    async def worker() -> None:
        nonlocal position
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
                latencies.append(time.perf_counter() - started)
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def floor_rate(rows_batches: list[list[tuple]], db_path: Path) -> float:
    """Plain sqlite3 executemany of the same rows, one indexed table, same durability."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS events (event_id TEXT PRIMARY KEY, occurred_at TEXT, day TEXT, user_key TEXT,"
        " model TEXT, team TEXT, input_tokens INTEGER, cached_input_tokens INTEGER, output_tokens INTEGER,"
        " reasoning_tokens INTEGER, cost_usd INTEGER)"
    )
    conn.execute("CREATE INDEX IF NOT EXISTS ix_events_user_day ON events (user_key, day)")
    started = time.perf_counter()
    count = 0
    for rows in rows_batches:
        conn.execute("BEGIN")
        conn.executemany("INSERT OR IGNORE INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
        conn.execute("COMMIT")
        count += len(rows)
    elapsed = time.perf_counter() - started
    conn.close()
    return count / elapsed


def as_rows(events: list[dict]) -> list[tuple]:
    return [
        (e["id"], e["timestamp"], e["timestamp"][:10], e["user"], e["model"], e["team"], e["input_tokens"],
         e["cached_input_tokens"], e["output_tokens"], e["reasoning_tokens"], 123456789)
        for e in events
    ]


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batches", type=int, default=40, help="batches of 500 per run")
    parser.add_argument("--singles", type=int, default=2000, help="single-event requests per run")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--single-concurrency", type=int, default=32)
    args = parser.parse_args()
    rng = random.Random(42)
    workdir = Path(tempfile.mkdtemp(prefix="tokenbot-bench-"))
    port = 38000 + os.getpid() % 1000
    url = f"http://127.0.0.1:{port}"
    server = start_server(workdir / "tokenbot.db", port)
    try:
        await wait_healthy(url)
        # warm-up: rate cards, connections, the first pages of the tables
        warm = make_events("warm", 2000, rng)
        await post_all(url, [(orjson.dumps(warm[i:i + 500]), sign(orjson.dumps(warm[i:i + 500]), f"w{i}"))
                             for i in range(0, 2000, 500)], 2)
        batched, floors, single_rates, p50s, p99s, health_rates = [], [], [], [], [], []
        for run in range(args.runs):
            events = make_events(f"r{run}", args.batches * 500, rng)
            batches = [events[i:i + 500] for i in range(0, len(events), 500)]
            bodies = []
            for n, batch in enumerate(batches):
                body = orjson.dumps(batch)
                bodies.append((body, sign(body, f"b{run}-{n}")))
            started = time.perf_counter()
            await post_all(url, bodies, args.concurrency)
            batched.append(len(events) / (time.perf_counter() - started))
            floors.append(floor_rate([as_rows(b) for b in batches], workdir / f"floor-{run}.db"))

            singles = make_events(f"s{run}", args.singles, rng)
            single_bodies = []
            for n, one in enumerate(singles):
                body = orjson.dumps(one)
                single_bodies.append((body, sign(body, f"s{run}-{n}")))
            started = time.perf_counter()
            latencies = await post_all(url, single_bodies, args.single_concurrency)
            single_rates.append(len(singles) / (time.perf_counter() - started))
            latencies.sort()
            p50s.append(latencies[len(latencies) // 2] * 1000)
            p99s.append(latencies[int(len(latencies) * 0.99)] * 1000)
            # the HTTP floor for single requests: GET /healthz (one SELECT 1) through the same client
            started = time.perf_counter()
            await post_all(url, [(b"", {})] * args.singles, args.single_concurrency, request_line="GET /healthz")
            health_rates.append(args.singles / (time.perf_counter() - started))
            print(f"run {run + 1}: batched {batched[-1]:,.0f} ev/s, floor {floors[-1]:,.0f} rows/s, "
                  f"ratio {batched[-1] / floors[-1]:.2f}; single {single_rates[-1]:,.0f} req/s "
                  f"p50 {p50s[-1]:.2f} ms p99 {p99s[-1]:.2f} ms; /healthz {health_rates[-1]:,.0f} req/s", flush=True)
        rss = peak_rss_mib(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)

    ratios = [b / f for b, f in zip(batched, floors, strict=True)]
    med = statistics.median
    print()
    print(f"machine: {os.cpu_count()} cores; SQLite {sqlite3.sqlite_version}; runs: {args.runs}")
    print(f"batched ingest (HTTP, signed, 500/batch, {args.concurrency} clients): median {med(batched):,.0f} events/s")
    print(f"storage floor (sqlite3 executemany, 1 indexed table):     median {med(floors):,.0f} rows/s")
    print(f"ratio to floor (per run, median):                          {med(ratios):.2f}")
    print(f"single-event requests ({args.single_concurrency} clients): median {med(single_rates):,.0f} req/s, "
          f"p50 {med(p50s):.2f} ms, p99 {med(p99s):.2f} ms")
    single_ratios = [a / b for a, b in zip(single_rates, health_rates, strict=True)]
    print(f"GET /healthz through the same client (HTTP floor): median {med(health_rates):,.0f} req/s; "
          f"single-event ingest / healthz (per run, median): {med(single_ratios):.2f}")
    print(f"server peak RSS: {rss:.0f} MiB")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    asyncio.run(main())
