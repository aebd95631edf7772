"""LiteLLM ingest benchmark: real-sized generic API logger batches on /webhooks/litellm, beside
the native /webhooks/usage endpoint taking the same calls, in the same run.

    .venv/bin/python bench/bench_litellm.py [--runs 3] [--batches 8] [--server-python PATH]

Records are LiteLLM 1.110 StandardLoggingPayloads (tests/data/litellm/litellm-1.110-proxy-batch.json,
~15 KB each: messages, response, a 9 KB model map), a third of them grown to 30-100 KB by a longer
conversation, posted 512 per request (LiteLLM's default batch) by 2 concurrent clients with the
bearer header LiteLLM sends. The native side gets the same calls (same users, models, tokens,
costs, times) as native events, 512 per request, signed. Then one body just under 64 MiB (LiteLLM's
worst case here) is posted to a fresh server, to read its peak RSS against the same server before.

Printed, each a median with min and max over --runs runs (a fresh `tokenbot serve` subprocess on
SQLite per run): events/s; server CPU seconds per 1,000 events (utime+stime of the server process
over the phase); MB/s of request body; the 64 MiB body's time and the server's peak RSS (VmHWM)
before and after it. The figures go in bench/README.md, not in a timed test.

`--server-python` serves with another interpreter, e.g. a venv with an older commit installed
(`pip install <exported tree>`), to measure a before and an after on the same machine (alternate
single runs of each: the load of a shared machine drifts within minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import hashlib
import hmac
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "data" / "litellm" / "litellm-1.110-proxy-batch.json"
TOKEN = "bench-litellm-token"
SECRET = "whsec_" + base64.b64encode(b"bench-secret-bench-secret-123456").decode()
BATCH = 512
CLIENTS = 2
MODELS = [("gpt-4o", "openai"), ("gpt-4o-mini", "openai"), ("claude-sonnet-4-5", "anthropic")]
WORDS = "the quarterly report shows spend by team and model with a forecast for next month".split()


def make_calls(prefix: str, count: int, rng: random.Random, template: list[dict]) -> list[dict]:
    """`count` LiteLLM records: unique ids, 200 people, live timestamps, 15-100 KB each."""
    now = time.time()
    calls = []
    for i in range(count):
        rec = copy.deepcopy(template[i % len(template)])
        model, provider = rng.choice(MODELS)
        rec["litellm_call_id"] = f"{prefix}-{i}"
        rec["id"] = f"chatcmpl-{prefix}-{i}"
        rec["startTime"] = now - rng.uniform(0, 7200)
        rec["endTime"] = rec["startTime"] + 1.5
        rec["model"], rec["model_group"], rec["custom_llm_provider"] = f"{provider}/{model}", model, provider
        rec["prompt_tokens"] = rng.randint(100, 50_000)
        rec["completion_tokens"] = rng.randint(10, 4_000)
        rec["response_cost"] = round(rng.uniform(0.0001, 0.5), 9)
        rec["metadata"]["user_api_key_user_id"] = f"U{rng.randint(0, 199):05d}"
        if i % 3 == 0:  # a longer conversation: 30-100 KB in all
            words = rng.randint(2_500, 12_000)
            rec["messages"] = [{"role": "user" if n % 2 else "assistant",
                                "content": " ".join(rng.choice(WORDS) for _ in range(words // 8))} for n in range(8)]
        calls.append(rec)
    return calls


def as_native(rec: dict) -> dict:
    """The same call as a native event (SPEC 5)."""
    return {
        "id": rec["litellm_call_id"], "timestamp": rec["startTime"], "user": rec["metadata"]["user_api_key_user_id"],
        "model": rec["model_group"], "provider": rec["custom_llm_provider"], "input_tokens": rec["prompt_tokens"],
        "output_tokens": rec["completion_tokens"], "cost_usd": rec["response_cost"],
    }


def sign(body: bytes, msg_id: str) -> dict[str, str]:
    stamp = str(int(time.time()))
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {"webhook-id": msg_id, "webhook-timestamp": stamp, "Content-Type": "application/json",
            "webhook-signature": "v1," + base64.b64encode(mac).decode()}


SERVER_PYTHON = sys.executable


def start_server(workdir: Path, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
        "PORT": str(port), "HOST": "127.0.0.1",
        "SLACK_BOT_TOKEN": "xoxb-bench", "SLACK_SIGNING_SECRET": "bench", "SLACK_API_URL": "http://127.0.0.1:9/",
        "USAGE_WEBHOOK_TOKEN": TOKEN, "USAGE_WEBHOOK_SECRET": SECRET,
    }
    return subprocess.Popen([SERVER_PYTHON, "-m", "bot.cli", "serve"], cwd=workdir, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def wait_healthy(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            try:
                async with http.get(url + "/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("server did not start")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def post_all(url: str, requests: list[tuple[bytes, dict]]) -> None:
    queue = list(reversed(requests))
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        async def worker() -> None:
            while queue:
                body, headers = queue.pop()
                async with http.post(url, data=body, headers=headers) as resp:
                    answer = await resp.json()
                    if resp.status != 200 or answer["rejected"]:
                        raise RuntimeError(f"{resp.status}: {str(answer)[:300]}")
        await asyncio.gather(*(worker() for _ in range(CLIENTS)))


async def phase(proc: subprocess.Popen, url: str, requests: list[tuple[bytes, dict]], events: int) -> dict:
    cpu, start = cpu_seconds(proc.pid), time.perf_counter()
    await post_all(url, requests)
    elapsed, used = time.perf_counter() - start, cpu_seconds(proc.pid) - cpu
    size = sum(len(body) for body, _ in requests)
    return {"events_s": events / elapsed, "cpu_per_1000": used / events * 1000, "mb_s": size / elapsed / 1e6,
            "mb": size / 1e6}


async def one_run(run: int, batches: int, template: list[dict]) -> dict:
    rng = random.Random(run)
    calls = make_calls(f"r{run}", batches * BATCH, rng, template)
    lite_headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    lite = [(orjson.dumps(calls[i : i + BATCH]), lite_headers) for i in range(0, len(calls), BATCH)]
    native_bodies = [orjson.dumps([dict(as_native(c), id="n-" + c["litellm_call_id"]) for c in calls[i : i + BATCH]])
                     for i in range(0, len(calls), BATCH)]
    native = [(body, sign(body, f"msg-{run}-{n}")) for n, body in enumerate(native_bodies)]
    big_calls, size = [], 2  # one body just under 64 MiB
    for rec in make_calls(f"big{run}", 20_000, rng, template):
        encoded = len(orjson.dumps(rec)) + 1
        if size + encoded > 64 * 1024 * 1024 - 1024 or len(big_calls) >= 10_000:
            break
        big_calls.append(rec)
        size += encoded
    big = orjson.dumps(big_calls)

    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        port = 38500 + run
        proc = start_server(Path(tmp), port)
        url = f"http://127.0.0.1:{port}"
        try:
            await wait_healthy(url)
            # alternate which endpoint goes first, so neither always meets a warmer database
            order = ("litellm", "native") if run % 2 == 0 else ("native", "litellm")
            for name in order:
                if name == "litellm":
                    out["litellm"] = await phase(proc, url + "/webhooks/litellm", lite, len(calls))
                else:
                    out["native"] = await phase(proc, url + "/webhooks/usage", native, len(calls))
            out["rss_after_batches"] = peak_rss_mib(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    with tempfile.TemporaryDirectory() as tmp:
        port = 38600 + run
        proc = start_server(Path(tmp), port)
        url = f"http://127.0.0.1:{port}"
        try:
            await wait_healthy(url)
            await post_all(url + "/webhooks/litellm", [(orjson.dumps(make_calls(f"warm{run}", 8, rng, template)),
                                                        lite_headers)])
            out["rss_before_64"] = peak_rss_mib(proc.pid)
            start = time.perf_counter()
            await post_all(url + "/webhooks/litellm", [(big, lite_headers)])
            out["big_seconds"] = time.perf_counter() - start
            out["big_events"] = len(big_calls)
            out["big_mib"] = len(big) / (1024 * 1024)
            out["rss_after_64"] = peak_rss_mib(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    return out


def summary(values: list[float], fmt: str = "{:,.0f}") -> str:
    return f"{fmt.format(statistics.median(values))} (min {fmt.format(min(values))}, max {fmt.format(max(values))})"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batches", type=int, default=8, help="requests of 512 calls per endpoint per run")
    parser.add_argument("--server-python", default=sys.executable, help="the interpreter `tokenbot serve` runs on")
    args = parser.parse_args()
    global SERVER_PYTHON
    SERVER_PYTHON = args.server_python
    template = json.loads(SAMPLE.read_text())
    results = []
    for run in range(args.runs):
        result = await one_run(run, args.batches, template)
        results.append(result)
        print(f"run {run + 1}: litellm {result['litellm']['events_s']:,.0f} ev/s, native "
              f"{result['native']['events_s']:,.0f} ev/s; 64 MiB body {result['big_seconds']:.1f} s, "
              f"RSS {result['rss_before_64']:.0f} -> {result['rss_after_64']:.0f} MiB", flush=True)
    lite = [r["litellm"] for r in results]
    native = [r["native"] for r in results]
    print()
    print(f"{args.runs} runs, {args.batches} requests x {BATCH} calls per endpoint per run, {CLIENTS} clients; "
          f"litellm bodies {lite[0]['mb'] / args.batches:.1f} MB a request on average")
    print(f"/webhooks/litellm  events/s     {summary([x['events_s'] for x in lite])}")
    print(f"/webhooks/usage    events/s     {summary([x['events_s'] for x in native])}")
    ratios = [a["events_s"] / b["events_s"] for a, b in zip(lite, native, strict=True)]
    print(f"ratio litellm/native (per run)  {summary(ratios, '{:.2f}')}")
    print(f"/webhooks/litellm  body MB/s    {summary([x['mb_s'] for x in lite], '{:.1f}')}")
    print(f"/webhooks/litellm  CPU s/1000   {summary([x['cpu_per_1000'] for x in lite], '{:.3f}')}")
    print(f"/webhooks/usage    CPU s/1000   {summary([x['cpu_per_1000'] for x in native], '{:.3f}')}")
    print(f"peak RSS after both phases      {summary([r['rss_after_batches'] for r in results])} MiB")
    print(f"64 MiB body: {results[0]['big_events']:,} calls, {results[0]['big_mib']:.1f} MiB; "
          f"seconds {summary([r['big_seconds'] for r in results], '{:.1f}')}")
    print(f"  peak RSS before {summary([r['rss_before_64'] for r in results])} MiB, "
          f"after {summary([r['rss_after_64'] for r in results])} MiB")


if __name__ == "__main__":
    asyncio.run(main())
