"""A real `tokenbot serve` killed while usage streams in: a 200 must mean stored, exactly once.

These tests run the console command in a subprocess on the test database (SQLite file or
PostgreSQL), with the fake Slack Web API as SLACK_API_URL, and send Standard Webhooks-signed
batches over HTTP from several concurrent clients, the way gateways do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import orjson
import pytest
from sqlalchemy import text

from storage.db import Database
from tests.conftest import WEBHOOK_SECRET
from tests.support.signing import standard_webhook_headers
from tests.test_rollups_property import assert_rollups_match_raw

NO_SKIPS = {"skipped": 0, "served_from_cache": 0}  # nothing skipped, nothing served from a cache

TOKENBOT = Path(sys.executable).with_name("tokenbot")
BATCHES = 36
BATCH_SIZE = 200
CLIENTS = 6
USERS = ("U0ALICE", "U0BOB", "U0CAROL", "key_live_abc", "gateway-user-7")
MODELS = ("gpt-4o", "gpt-4o-mini", "acme-unknown-9000")


async def poll_until(condition, within: float, what: str, *, fail: bool = True, every: float = 0.01) -> bool:
    """Poll `condition()` until it holds or `within` seconds pass (no fixed sleeps)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        if condition():
            return True
        if asyncio.get_running_loop().time() > deadline:
            assert not fail, f"timed out waiting for {what}"
            return False
        await asyncio.sleep(every)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """One `tokenbot serve` process; its output goes to a log file shown when a check fails."""

    def __init__(self, database_url: str, slack_api_url: str, workdir: Path, name: str,
                 toml: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TOKENBOT_", "USAGE_", "SLACK_"))}
        env.update(
            DATABASE_URL=database_url,
            SLACK_BOT_TOKEN="xoxb-test",
            SLACK_SIGNING_SECRET="x",
            SLACK_API_URL=slack_api_url,
            USAGE_WEBHOOK_SECRET=WEBHOOK_SECRET,
            HOST="127.0.0.1",
            PORT=str(self.port),
            PYTHONUNBUFFERED="1",
        )
        if toml is not None:
            config = workdir / f"{name}.toml"
            config.write_text(toml)
            env["TOKENBOT_CONFIG"] = str(config)
        command = [str(TOKENBOT), "serve"] if TOKENBOT.exists() else [sys.executable, "-m", "bot.cli", "serve"]
        self._log = self.log_path.open("wb")
        # cwd: an empty directory, so no tokenbot.toml or .env of the checkout is read
        self.proc = subprocess.Popen(command, cwd=workdir, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def log_tail(self, lines: int = 40) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    async def wait_healthy(self, within: float = 20.0) -> None:
        deadline = asyncio.get_running_loop().time() + within
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while True:
                assert self.proc.poll() is None, f"server exited with {self.proc.returncode}:\n{self.log_tail()}"
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    async with http.get(self.url + "/healthz") as resp:
                        if resp.status == 200:
                            return
                assert asyncio.get_running_loop().time() < deadline, f"no /healthz 200:\n{self.log_tail()}"
                await asyncio.sleep(0.05)

    async def wait_exit(self, within: float) -> int | None:
        await poll_until(lambda: self.proc.poll() is not None, within, "the server to exit", fail=False)
        return self.proc.poll()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


@pytest.fixture
async def servers(database_url, fake_slack, tmp_path) -> AsyncIterator:
    started: list[Server] = []

    def start(name: str, toml: str | None = None) -> Server:
        server = Server(database_url, fake_slack.api_url, tmp_path, name, toml)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture
async def db(database_url) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


def make_batches(count: int = BATCHES, size: int = BATCH_SIZE, prefix: str = "b") -> list[list[dict]]:
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=30)
    return [
        [
            {
                "id": f"{prefix}{b}-{i}",
                "timestamp": (base + timedelta(seconds=29 * i + b)).isoformat(),
                "user": USERS[(b + i) % len(USERS)],
                "model": MODELS[i % len(MODELS)],
                "input_tokens": 1000 + i,
                "cached_input_tokens": i,
                "output_tokens": 100 + b,
                "reasoning_tokens": i % 7,
                **({"cost_usd": f"0.{b:03d}{i:03d}"} if i % 4 == 0 else {}),
            }
            for i in range(size)
        ]
        for b in range(count)
    ]


async def post_batch(http: aiohttp.ClientSession, url: str, batch: list[dict]) -> tuple[int, dict]:
    body = orjson.dumps(batch)
    headers = standard_webhook_headers(body, WEBHOOK_SECRET)
    async with http.post(url + "/webhooks/usage", data=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def stored_per_batch(db: Database, batches: list[list[dict]]) -> list[int]:
    async with db.session() as session:
        ids = {r[0] for r in await session.execute(text("SELECT event_id FROM usage_events"))}
    return [sum(1 for e in batch if e["id"] in ids) for batch in batches]


async def event_totals(db: Database) -> tuple[int, int, int]:
    """(raw rows, distinct ids, events counted in usage_monthly)."""
    async with db.session() as session:
        raw, distinct = (await session.execute(
            text("SELECT COUNT(*), COUNT(DISTINCT event_id) FROM usage_events"))).one()
        monthly = (await session.execute(text("SELECT COALESCE(SUM(events), 0) FROM usage_monthly"))).scalar()
    return int(raw), int(distinct), int(monthly)


async def rollups_caught_up(db: Database, events: int, within: float = 3.0) -> None:
    """Rollups trail acknowledged events by at most about a second (the background fold)."""
    deadline = asyncio.get_running_loop().time() + within
    while (totals := await event_totals(db)) != (events, events, events):
        assert asyncio.get_running_loop().time() < deadline, f"rollups not caught up: {totals}"
        await asyncio.sleep(0.05)


async def test_kill_9_mid_stream_loses_no_acknowledged_event_and_counts_each_once(servers, db):
    batches = make_batches()
    first = servers("first")
    await first.wait_healthy()

    acked: dict[int, dict] = {}
    failed: set[int] = set()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(batches)):
        queue.put_nowait(index)
    enough_acked = asyncio.Event()
    killed = asyncio.Event()

    async def client(http: aiohttp.ClientSession) -> None:
        while not killed.is_set() and not queue.empty():
            index = queue.get_nowait()
            try:
                status, body = await post_batch(http, first.url, batches[index])
            except (TimeoutError, aiohttp.ClientError, OSError):
                failed.add(index)
                continue
            assert status == 200, (status, body)
            acked[index] = body
            if len(acked) >= 8:
                enough_acked.set()

    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=CLIENTS)) as http:
        clients = [asyncio.create_task(client(http)) for _ in range(CLIENTS)]
        waiter = asyncio.create_task(enough_acked.wait())
        await asyncio.wait([waiter, *clients], timeout=20, return_when=asyncio.FIRST_COMPLETED)
        for task in clients:
            if task.done() and task.exception() is not None:
                raise task.exception()
        assert enough_acked.is_set(), f"no batches acknowledged:\n{first.log_tail()}"
        first.kill()  # SIGKILL while the other clients' batches are in flight
        killed.set()
        await asyncio.gather(*clients)
        waiter.cancel()

    assert first.proc.returncode == -signal.SIGKILL
    unsent = len(batches) - len(acked) - len(failed)
    assert failed and unsent, f"no request in flight at the kill ({len(failed)} failed, {unsent} unsent)"
    for body in acked.values():
        assert body == {"accepted": BATCH_SIZE, "duplicates": 0, **NO_SKIPS, "rejected": []}

    second = servers("second")
    await second.wait_healthy()  # restarts on the same database (recovery, migrations, rollup checks)

    per_batch = await stored_per_batch(db, batches)
    for index in acked:
        assert per_batch[index] == BATCH_SIZE, f"batch {index} was acknowledged but only {per_batch[index]} stored"
    partial = {i: n for i, n in enumerate(per_batch) if n not in (0, BATCH_SIZE)}
    assert not partial, f"partially stored batches: {partial}"
    raw, distinct, counted = await event_totals(db)
    assert raw == distinct == counted == sum(per_batch)
    await assert_rollups_match_raw(db)

    # the senders retry everything they are unsure of (and more): each event ends up stored once
    already = sum(per_batch)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        answers = await asyncio.gather(*(post_batch(http, second.url, batch) for batch in batches))
    assert all(status == 200 for status, _ in answers), answers
    assert sum(body["accepted"] for _, body in answers) == len(batches) * BATCH_SIZE - already
    assert all(body["accepted"] + body["duplicates"] == BATCH_SIZE for _, body in answers)
    for index in acked:
        assert answers[index][1] == {"accepted": 0, "duplicates": BATCH_SIZE, **NO_SKIPS, "rejected": []}
    assert await stored_per_batch(db, batches) == [BATCH_SIZE] * len(batches)
    await rollups_caught_up(db, len(batches) * BATCH_SIZE)
    tables = await assert_rollups_match_raw(db)
    assert sum(v[0] for v in tables["usage_monthly"].values()) == sum(
        e["input_tokens"] for batch in batches for e in batch)


def tcp_sockets() -> list[tuple[int, int, str, int, int]]:
    """(local port, remote port, state, tx queue, rx queue) of every IPv4 TCP socket (/proc/net/tcp)."""
    out = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, queues = fields[1], fields[2], fields[3], fields[4]
        tx, rx = (int(q, 16) for q in queues.split(":"))
        out.append((int(local.split(":")[1], 16), int(remote.split(":")[1], 16), state, tx, rx))
    return out


ESTABLISHED, LISTEN = "01", "0A"


class WriteLock:
    """Holds the database's write lock from outside the server, so its ingest must wait."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self._sqlite = None
        self._pg = None

    async def __aenter__(self) -> WriteLock:
        if self.url.startswith("sqlite"):
            import sqlite3

            self._sqlite = sqlite3.connect(self.url.split(":///", 1)[1], isolation_level=None, timeout=10)
            self._sqlite.execute("BEGIN IMMEDIATE")
        else:
            import asyncpg

            self._pg = await asyncpg.connect(self.url.replace("postgresql+asyncpg://", "postgresql://"))
            self._tx = self._pg.transaction()
            await self._tx.start()
            await self._pg.execute("LOCK TABLE usage_events IN SHARE MODE")  # blocks every INSERT
        return self

    async def release(self) -> None:
        if self._sqlite is not None:
            self._sqlite.execute("ROLLBACK")
            self._sqlite.close()
            self._sqlite = None
        if self._pg is not None:
            await self._tx.rollback()
            await self._pg.close()
            self._pg = None

    async def __aexit__(self, *exc) -> None:
        await self.release()


async def test_sigterm_answers_the_batch_in_flight_and_exits_cleanly(servers, db, database_url):
    server = servers("graceful")
    await server.wait_healthy()
    [batch] = make_batches(count=1, size=1500, prefix="g")
    body = orjson.dumps(batch)
    headers = standard_webhook_headers(body, WEBHOOK_SECRET)
    body_handed_over = asyncio.Event()

    async def chunks():
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]
        body_handed_over.set()

    async def send() -> tuple[int, dict] | Exception:
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
                async with http.post(server.url + "/webhooks/usage", data=chunks(), headers=headers) as resp:
                    return resp.status, await resp.json(content_type=None)
        except (aiohttp.ClientError, OSError) as exc:
            return exc

    stable = 0

    def body_read_by_server() -> bool:
        # every byte we sent has left our socket and been read by the server (not queued in its kernel buffer)
        nonlocal stable
        sockets = tcp_sockets()
        ours = [s for s in sockets if s[1] == server.port and s[2] == ESTABLISHED]
        theirs = [s for s in sockets if s[0] == server.port and s[2] == ESTABLISHED]
        done = (body_handed_over.is_set() and len(ours) == 1 and len(theirs) == 1
                and ours[0][3] == 0 and theirs[0][4] == 0)
        stable = stable + 1 if done else 0
        return stable >= 5

    async with WriteLock(database_url) as lock:
        request = asyncio.create_task(send())
        # the request is in flight: its body is read, its ingest waits on the lock we hold
        await poll_until(body_read_by_server, 10, "the server to read the request body", every=0.02)
        server.proc.send_signal(signal.SIGTERM)
        # shutdown has begun: the server stopped listening
        await poll_until(lambda: not any(s[0] == server.port and s[2] == LISTEN for s in tcp_sockets()), 5,
                         "the server to stop listening")
        assert not request.done(), "the request was answered before its batch could be stored"
        await lock.release()
        outcome = await asyncio.wait_for(request, 15)
        code = await server.wait_exit(within=5)

    expected = (200, {"accepted": 1500, "duplicates": 0, **NO_SKIPS, "rejected": []})
    assert outcome == expected, (outcome, server.log_tail())
    assert code == 0, f"exit code {code} after SIGTERM:\n{server.log_tail()}"
    assert (await stored_per_batch(db, [batch])) == [1500]
    assert await event_totals(db) == (1500, 1500, 1500)
    await assert_rollups_match_raw(db)


async def test_kill_9_between_the_insert_and_its_fold_leaves_rollups_exact_after_restart(servers, db):
    # the first process folds only once a minute: its acknowledged events are stored, not yet folded
    first = servers("unfolded", toml="[ledger]\nfold_interval_seconds = 60\n")
    await first.wait_healthy()
    batches = make_batches(count=4, size=250, prefix="k")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        answers = await asyncio.gather(*(post_batch(http, first.url, batch) for batch in batches))
    assert all(status == 200 and body["accepted"] == 250 for status, body in answers), answers
    raw, _, counted = await event_totals(db)
    assert (raw, counted) == (1000, 0), "the events should be committed and not yet folded"
    first.kill()
    assert first.proc.returncode == -signal.SIGKILL

    second = servers("after-kill")
    await second.wait_healthy()  # start-up folds what the killed process left, before serving
    assert await event_totals(db) == (1000, 1000, 1000)
    await assert_rollups_match_raw(db)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:  # resends count once
        answers = await asyncio.gather(*(post_batch(http, second.url, batch) for batch in batches))
    assert all(body == {"accepted": 0, "duplicates": 250, **NO_SKIPS, "rejected": []} for _, body in answers), answers
    await rollups_caught_up(db, 1000)
    await assert_rollups_match_raw(db)
