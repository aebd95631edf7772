"""LiteLLM body parsing alone, in one process: the record reader (msgspec, what the webhook uses)
against the event reader (ijson events through Python: the reader before the record reader, kept
as the reference and for what the record reader hands over), on the same bytes in the same run.

    .venv/bin/python bench/bench_litellm_parse.py [--runs 7]

Bodies: the real LiteLLM 1.110 proxy batch (tests/data/litellm/litellm-1.110-proxy-batch.json,
40 calls of ~15 KB) repeated to ~7.7 MB, as a JSON array and as JSON Lines; a batch shaped like
bench_litellm.py's (512 calls of 15-100 KB, ~14 MB); the real legacy v1 records repeated. Each is
fed in 256 KiB chunks, as the webhook reads it. For scale, the same bytes through
ijson.basic_parse (the floor of any reader built on ijson events) and json.loads (which builds
everything). Printed: median (min, max) seconds over --runs, MB/s, microseconds per call, and
the event reader / record reader ratio per run.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

import ijson
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_litellm import make_calls  # noqa: E402

from bot.sources.litellm import LiteLLMStream  # noqa: E402

DATA = ROOT / "tests" / "data" / "litellm"
CHUNK = 256 * 1024


def read(body: bytes, *, record_reader: bool) -> int:
    stream = LiteLLMStream(record_reader=record_reader)
    for start in range(0, len(body), CHUNK):
        stream.feed(body[start : start + CHUNK])
    records = stream.close()
    if record_reader and (stream.handed_over or stream.reread):
        raise RuntimeError("the record reader did not take this body itself")
    return len(records)


def basic_parse(body: bytes) -> int:
    count = 0
    for _ in ijson.basic_parse(body, use_float=False, multiple_values=True):
        count += 1
    return count


def loads(body: bytes) -> object:
    if body.startswith(b"["):
        return json.loads(body)
    return [json.loads(line) for line in body.splitlines()]


def timed(fn, body: bytes, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(body)
        times.append(time.perf_counter() - start)
    return times


def summary(values: list[float], fmt: str) -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    proxy = json.loads((DATA / "litellm-1.110-proxy-batch.json").read_text())
    legacy = json.loads((DATA / "litellm-1.110-legacy-v1.json").read_text())
    bodies = {
        "proxy sample x13, JSON array": (json.dumps(proxy * 13).encode(), len(proxy) * 13),
        "proxy sample x13, JSON Lines": ("\n".join(json.dumps(r) for r in proxy * 13).encode(), len(proxy) * 13),
        "512 calls of 15-100 KB (bench)": (orjson.dumps(make_calls("p", 512, random.Random(7), proxy)), 512),
        "legacy v1 sample x500": (json.dumps(legacy * 500).encode(), len(legacy) * 500),
    }
    for name, (body, calls) in bodies.items():
        assert read(body, record_reader=True) == read(body, record_reader=False) == calls
        records = timed(lambda b: read(b, record_reader=True), body, args.runs)
        events = timed(lambda b: read(b, record_reader=False), body, args.runs)
        floor = timed(basic_parse, body, args.runs)
        built = timed(loads, body, args.runs)
        mb = len(body) / 1e6
        print(f"{name}: {mb:.1f} MB, {calls} calls")
        for label, times in (("record reader", records), ("event reader", events),
                             ("ijson.basic_parse", floor), ("json.loads", built)):
            print(f"  {label:18s} s {summary(times, '{:.3f}')}   MB/s {summary([mb / t for t in times], '{:.0f}')}"
                  f"   us/call {summary([t / calls * 1e6 for t in times], '{:.0f}')}")
        ratios = [e / r for e, r in zip(events, records, strict=True)]
        print(f"  event/record ratio per run: {summary(ratios, '{:.1f}')}")


if __name__ == "__main__":
    main()
