"""Exactly once across real processes on one PostgreSQL (SPEC 9, issue 4).

Two `python` processes (tests/support/digest_worker.py), each with its own Services and engine, sweep the
same subscriptions at the same instant against the fake Slack served by this test; a third
claims a run and is killed (SIGKILL) before posting, and a fresh process takes over once
the lease has run out. SQLite is single-process by SPEC 9, so this file runs only on
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from bot.clock import SettableClock
from bot.config import Settings
from bot.digests import delivery
from bot.wiring import build_services
from tests.conftest import BOT_TOKEN, IS_POSTGRES
from tests.support.digests import TZ, ev, ingest, local, runs

pytestmark = pytest.mark.skipif(not IS_POSTGRES, reason="SQLite is single-process by SPEC 9: the race needs PostgreSQL")

ROOT = Path(__file__).resolve().parent.parent
NOW = local(2026, 11, 25, 9, 1)
DAY = date(2026, 11, 24)
CHANNELS = [f"C0RACE{i}" for i in range(6)]


async def spawn(settings: Settings, fake_slack, mode: str, channels: list[str], times: list[datetime]):
    args = {"mode": mode, "api": fake_slack.api_url, "db": settings.database_url, "token": BOT_TOKEN,
            "tz": TZ.key, "channels": channels, "day": DAY.isoformat(),
            "times": [t.astimezone(UTC).isoformat() for t in times]}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.digest_worker", json.dumps(args),
        cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


async def seed(settings: Settings) -> None:
    services = build_services(settings, clock=SettableClock(TZ, NOW.astimezone(UTC)), with_slack=False)
    try:
        # spend earlier in the month: the digests say so, and (quiet days) skip the chart, which keeps
        # matplotlib out of these processes; charts and threads are covered in test_digests.py
        await ingest(services, [ev(f"r{i}", local(2026, 11, 20, 10 + i), f"U0P{i}", cost=f"{i + 1}.00")
                                for i in range(5)])
    finally:
        await services.close()


async def read_line(proc) -> bytes:
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    if not line:
        raise AssertionError((await proc.stderr.read()).decode()[-3000:])
    return line


async def test_two_processes_racing_post_each_digest_once(settings, fake_slack):
    await seed(settings)
    # half the runs are fresh; the other half were claimed by a process that died an hour ago
    past = SettableClock(TZ, (NOW - timedelta(hours=1)).astimezone(UTC))
    dead = build_services(settings, clock=past, with_slack=False)
    try:
        for channel in CHANNELS[3:]:
            assert await delivery.claim(dead, channel, "day", DAY) is not None
    finally:
        await dead.close()

    procs = [await spawn(settings, fake_slack, "race", CHANNELS, [NOW, NOW, NOW]) for _ in range(2)]
    try:
        for proc in procs:
            assert await read_line(proc) == b"ready\n"
        for proc in procs:  # release both at once
            proc.stdin.write(b"go\n")
        await asyncio.gather(*(proc.stdin.drain() for proc in procs))
        results = [json.loads(await read_line(proc)) for proc in procs]
        assert [await asyncio.wait_for(proc.wait(), 30) for proc in procs] == [0, 0]
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    posted = Counter(channel for result in results for channel, status in result if status == "posted")
    assert posted == dict.fromkeys(CHANNELS, 1)
    assert {status for result in results for _, status in result} <= {"posted", "busy", "already-posted"}
    messages = Counter(c.args["channel"] for c in fake_slack.calls_to("chat.postMessage") if c.ok)
    assert messages == dict.fromkeys(CHANNELS, 1)
    assert all("November so far $15," in json.dumps(c.args["blocks"]) for c in fake_slack.calls_to("chat.postMessage")
               if c.ok)
    services = build_services(settings, with_slack=False)
    try:
        done = await runs(services)
    finally:
        await services.close()
    assert [(r.channel, r.status) for r in done] == [(c, "posted") for c in CHANNELS]
    assert {r.channel: r.attempts for r in done} == {c: 1 if c in CHANNELS[:3] else 2 for c in CHANNELS}


async def test_process_killed_between_claim_and_post(settings, fake_slack):
    await seed(settings)
    channel = CHANNELS[0]
    holder = await spawn(settings, fake_slack, "claim-and-hang", [channel], [NOW])
    try:
        assert json.loads(await read_line(holder)) == {"claimed": True}
    finally:
        holder.send_signal(signal.SIGKILL)
        await holder.wait()
    assert holder.returncode == -signal.SIGKILL

    # the restarted process sweeps at 09:06 (the dead holder's lease holds), 09:12 (it ran out) and 09:31
    times = [NOW + timedelta(minutes=m) for m in (5, 11, 30)]
    proc = await spawn(settings, fake_slack, "race", [channel], times)
    assert await read_line(proc) == b"ready\n"
    proc.stdin.write(b"go\n")
    assert json.loads(await read_line(proc)) == [[channel, "busy"], [channel, "posted"], [channel, "already-posted"]]
    assert await asyncio.wait_for(proc.wait(), 30) == 0
    assert [c.args["channel"] for c in fake_slack.calls_to("chat.postMessage") if c.ok] == [channel]
