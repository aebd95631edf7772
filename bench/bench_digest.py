"""Benchmark: building one daily digest from the rollups vs aggregating the raw events (issue 4).

    .venv/bin/python bench/bench_digest.py [--people 5000] [--events 10000000] [--days 60] [--runs 7]

The first run generates a SQLite database in bench/.cache/ (migrated with the project's
migrations; events written with plain sqlite3 executemany, picodollar costs as the `Money`
type stores them on SQLite; rollups built by storage.rewrites.rebuild_rollups, the project's own
SQL). Later runs reuse it. Then, for yesterday (the organisation's zone, America/New_York):

- digest: bot.digests.builder.build_digest + Block Kit rendering, the code the scheduler runs
  (without posting), median of --runs;
- raw: the same figures (per-person totals for the day and the day before, the 7-day
  baseline, top models, month to date per person, the 14-day anomaly history, unlinked
  ids) computed by aggregating usage_events directly, median of 3 runs; the two are
  checked to agree;
- chart: the 30-day chart's data from the rollups and its PNG rendering, median of 3.

Prints a table; nothing is written but the cache file.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bot.charts import render_png  # noqa: E402
from bot.clock import SettableClock  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.digests.builder import build_chart, build_digest  # noqa: E402
from bot.digests.periods import Subscription  # noqa: E402
from bot.identities import is_slack_user_id  # noqa: E402
from bot.views.digest import digest_blocks, fallback_text  # noqa: E402
from bot.wiring import build_services  # noqa: E402
from storage.db import upgrade  # noqa: E402
from storage.rewrites import rebuild_rollups  # noqa: E402
from storage.types import MONEY_SCALE  # noqa: E402

TZ = ZoneInfo("America/New_York")
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=TZ)  # the digest covers Tuesday 24 November 2026
# (model, $ per million input tokens, $ per million output tokens, popularity); one model is unpriced
MODELS = (
    ("gpt-4o", 2.5, 10, 25), ("gpt-4o-mini", 0.15, 0.6, 25), ("claude-sonnet-4-5", 3, 15, 20),
    ("claude-haiku-4-5", 1, 5, 8), ("o3", 2, 8, 5), ("o4-mini", 1.1, 4.4, 4), ("gemini-2.5-pro", 1.25, 10, 6),
    ("gemini-2.5-flash", 0.3, 2.5, 3), ("gpt-4.1", 2, 8, 2), ("mistral-large", 2, 6, 1), ("llama-3.3-70b", 0.6, 0.6, 1),
    ("acme-internal-7b", 0, 0, 1),
)
UNLINKED_SHARE = 0.02  # of the "people" are unlinked ids (API keys)
CHUNK = 250_000


def user_keys(people: int) -> list[str]:
    unlinked = max(1, int(people * UNLINKED_SHARE))
    return [f"U0B{i:05d}" for i in range(people - unlinked)] + [f"key_live_{i:04d}" for i in range(unlinked)]


def generate(path: Path, people: int, events: int, days: int, seed: int = 4) -> None:
    """A fresh migrated SQLite file with `events` raw events over `days` local days up to today's 09:00."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    url = f"sqlite+aiosqlite:///{path}"
    upgrade(url)
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    keys = np.array(user_keys(people), dtype=object)
    weights = rng.lognormal(0, 1.3, people)
    user_p = weights / weights.sum()
    model_names = np.array([m[0] for m in MODELS], dtype=object)
    model_p = np.array([m[3] for m in MODELS], dtype=float)
    model_p /= model_p.sum()
    pico_in = np.array([int(m[1] * 10 ** (MONEY_SCALE - 6)) for m in MODELS], dtype=np.int64)  # per token
    pico_out = np.array([int(m[2] * 10 ** (MONEY_SCALE - 6)) for m in MODELS], dtype=np.int64)
    unpriced_model = len(MODELS) - 1
    today = NOW.date()
    first_day = today - timedelta(days=days - 1)
    day_list = [first_day + timedelta(days=i) for i in range(days)]
    starts = [datetime.combine(d, datetime.min.time(), TZ).timestamp() for d in day_list]
    ends = [datetime.combine(d + timedelta(days=1), datetime.min.time(), TZ).timestamp() for d in day_list]
    ends[-1] = min(ends[-1], NOW.timestamp())  # today only up to "now"
    start_arr, length_arr = np.array(starts), np.array(ends) - np.array(starts)
    day_strings = np.array([d.isoformat() for d in day_list], dtype=object)

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA cache_size=-1000000")
    indexes = [r[0] for r in conn.execute(
        "SELECT sql FROM sqlite_master WHERE type='index' AND tbl_name='usage_events' AND sql IS NOT NULL")]
    for name in [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='usage_events' AND sql IS NOT NULL")]:
        conn.execute(f"DROP INDEX {name}")
    sql = ("INSERT INTO usage_events (event_id, occurred_at, day, received_at, source, subject, user_key, model, "
           "input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, cost_usd, price_source, unpriced) "
           "VALUES (?, ?, ?, ?, 'bench', ?, ?, ?, ?, 0, ?, 0, ?, ?, ?)")
    # a day's share of events: weekdays busier, today partial
    day_w = np.array([(0.25 if d.weekday() >= 5 else 1.0) * (length_arr[i] / 86400) for i, d in enumerate(day_list)])
    day_p = day_w / day_w.sum()
    done = 0
    conn.execute("BEGIN")
    while done < events:
        n = min(CHUNK, events - done)
        users = rng.choice(len(keys), size=n, p=user_p)
        day_idx = rng.choice(days, size=n, p=day_p)
        epoch = (start_arr[day_idx] + rng.random(n) * length_arr[day_idx]).astype(np.int64)
        stamps = np.datetime_as_string(epoch.astype("datetime64[s]"), unit="s")
        models = rng.choice(len(MODELS), size=n, p=model_p)
        inp = np.maximum(1, rng.lognormal(7.6, 1.1, n)).astype(np.int64)
        out = np.maximum(1, inp * rng.uniform(0.05, 0.6, n)).astype(np.int64)
        cost = inp * pico_in[models] + out * pico_out[models]
        unpriced = models == unpriced_model
        rows = zip(
            (f"b{done + i:09d}" for i in range(n)),
            (s.replace("T", " ") + ".000000" for s in stamps.tolist()),
            day_strings[day_idx].tolist(),
            (s.replace("T", " ") + ".000000" for s in stamps.tolist()),
            keys[users].tolist(), keys[users].tolist(), model_names[models].tolist(),
            inp.tolist(), out.tolist(), cost.tolist(),
            np.where(unpriced, "unpriced", "genai-prices bench").tolist(), unpriced.astype(int).tolist(),
            strict=True,
        )
        conn.executemany(sql, rows)
        done += n
        print(f"\r  generated {done:,} / {events:,} events ({time.perf_counter() - started:.0f}s)", end="",
              file=sys.stderr, flush=True)
    # a few people with an unusual yesterday, so the anomaly section has something to say
    yesterday = len(day_list) - 2
    spikes = []
    for k, user in enumerate(rng.choice(len(keys) - 100, size=25, replace=False)):
        for j in range(30):
            moment = int(start_arr[yesterday] + 3600 * (9 + j % 8))
            stamp = str(np.datetime64(moment, "s")).replace("T", " ") + ".000000"
            spikes.append((f"s{k:03d}{j:03d}", stamp, day_strings[yesterday], stamp, keys[user], keys[user], "gpt-4o",
                           200_000, 20_000, int(200_000 * pico_in[0] + 20_000 * pico_out[0]), "genai-prices bench", 0))
    conn.executemany(sql, spikes)
    conn.execute("COMMIT")
    print(file=sys.stderr)
    for statement in indexes:
        conn.execute(statement)
    conn.execute("INSERT INTO settings (key, value) VALUES ('rollup_timezone', ?)", (TZ.key,))
    # the rollups are rebuilt from every event below: nothing is left to fold
    conn.execute("UPDATE rollup_fold_state SET folded_seq = (SELECT MAX(seq) FROM usage_events)")
    conn.close()
    print(f"  indexes rebuilt ({time.perf_counter() - started:.0f}s); building rollups...", file=sys.stderr)

    async def rollups() -> None:
        services = build_services(bench_settings(path), with_slack=False)
        try:
            async with services.db.write() as session:
                await rebuild_rollups(session)
        finally:
            await services.close()

    asyncio.run(rollups())
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO settings (key, value) VALUES ('bench', ?)", (f"{people}:{events}:{days}:{seed}",))
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()
    print(f"  done in {time.perf_counter() - started:.0f}s: {path} ({path.stat().st_size / 1e9:.1f} GB)",
          file=sys.stderr)


def bench_settings(path: Path) -> Settings:
    return Settings(database_url=f"sqlite+aiosqlite:///{path}", timezone=TZ)


def cached(path: Path, people: int, events: int, days: int) -> bool:
    if not path.is_file():
        return False
    try:
        conn = sqlite3.connect(path)
        row = conn.execute("SELECT value FROM settings WHERE key = 'bench'").fetchone()
        conn.close()
    except sqlite3.Error:
        return False
    return bool(row and row[0].startswith(f"{people}:{events}:{days}:"))


# -- the same figures from the raw events -----------------------------------------------------------------
def pico(value) -> Decimal:
    return Decimal(int(value or 0)).scaleb(-MONEY_SCALE)


def raw_figures(path: Path, day: date, top: int) -> dict:
    """Everything the digest's numbers need, by aggregating usage_events (read-only sqlite3)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        window_first = day - timedelta(days=14)
        per_user_day: dict[tuple[str, str], tuple[Decimal, int, int]] = {}
        for key, d, cost, tokens, count in conn.execute(
            "SELECT user_key, day, SUM(cost_usd), SUM(input_tokens + output_tokens), COUNT(*) FROM usage_events "
            "WHERE day BETWEEN ? AND ? GROUP BY user_key, day", (window_first.isoformat(), day.isoformat())
        ):
            per_user_day[(key, d)] = (pico(cost), tokens, count)
        models = [(m, pico(c)) for m, c in conn.execute(
            "SELECT model, SUM(cost_usd) FROM usage_events WHERE day = ? GROUP BY model ORDER BY SUM(cost_usd) DESC, "
            "model LIMIT 5", (day.isoformat(),))]
        month = {k: pico(c) for k, c in conn.execute(
            "SELECT user_key, SUM(cost_usd) FROM usage_events WHERE day BETWEEN ? AND ? GROUP BY user_key",
            (day.replace(day=1).isoformat(), day.isoformat()))}
        unpriced = conn.execute("SELECT model, COUNT(*) FROM usage_events WHERE day = ? AND unpriced GROUP BY model",
                                (day.isoformat(),)).fetchall()
    finally:
        conn.close()
    today = {k: v for (k, d), v in per_user_day.items() if d == day.isoformat()}
    ranking = sorted(today, key=lambda k: (-today[k][0], -today[k][1], k))

    def total(first: date, last: date) -> Decimal:
        return sum((v[0] for (k, d), v in per_user_day.items() if first.isoformat() <= d <= last.isoformat()),
                   Decimal(0))

    anomalies = 0
    for key, (cost, _, _) in today.items():
        if cost < 5:
            continue
        history = [per_user_day.get((key, (day - timedelta(days=b)).isoformat()), (Decimal(0),))[0]
                   for b in range(1, 15)]
        anomalies += cost > 3 * statistics.median(history)
    return {
        "cost": sum((v[0] for v in today.values()), Decimal(0)),
        "events": sum(v[2] for v in today.values()),
        "top": ranking[:top],
        "previous": total(day - timedelta(days=1), day - timedelta(days=1)),
        "baseline": total(day - timedelta(days=7), day - timedelta(days=1)) / 7,
        "models": models,
        "month_to_date": sum(month.values(), Decimal(0)),
        "unlinked": [k for k in ranking if not is_slack_user_id(k)],
        "anomalies": anomalies,
        "unpriced": sorted(m for m, _ in unpriced),
    }


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:,.0f} ms"


async def measure(path: Path, runs: int) -> None:
    clock = SettableClock(TZ, NOW.astimezone(UTC))
    services = build_services(bench_settings(path), clock=clock, with_slack=False)
    sub = Subscription("C0BENCH", NOW.time(), top=10)
    day = NOW.date() - timedelta(days=1)
    try:
        digest_times, view = [], None
        await build_digest(services, sub, day, day)  # warm-up: connections, statement cache, OS file cache
        for _ in range(runs):
            started = time.perf_counter()
            view = await build_digest(services, sub, day, day)
            blocks = digest_blocks(view)
            fallback_text(view)
            digest_times.append(time.perf_counter() - started)
        raw_times, raw = [], None
        for _ in range(3):
            started = time.perf_counter()
            raw = await asyncio.to_thread(raw_figures, path, day, sub.top)
            raw_times.append(time.perf_counter() - started)
        chart_data, chart_png = [], []
        for _ in range(3):
            started = time.perf_counter()
            chart = await build_chart(services, sub, day)
            chart_data.append(time.perf_counter() - started)
            started = time.perf_counter()
            png = render_png(chart)
            chart_png.append(time.perf_counter() - started)
        async with services.db.session() as session:
            from sqlalchemy import text

            counts = {t: (await session.execute(text(f"SELECT COUNT(*) FROM {t}"))).scalar_one()
                      for t in ("usage_events", "usage_daily_model", "usage_daily", "usage_monthly")}
    finally:
        await services.close()

    agree = (
        view.cost_usd == raw["cost"] and view.events == raw["events"]
        and [r.user_key for r in view.leaderboard] == raw["top"]
        and view.previous_cost_usd == raw["previous"] and view.baseline_cost_usd == raw["baseline"]
        and [(m.model, m.cost_usd) for m in view.models] == raw["models"]
        and view.month_to_date_usd == raw["month_to_date"]
        and [u.key for u in view.unlinked] == raw["unlinked"]
        and len(view.anomalies) == raw["anomalies"]
        and sorted(u.model for u in view.unpriced) == raw["unpriced"]
    )
    digest_median = statistics.median(digest_times)
    raw_median = statistics.median(raw_times)
    print(f"\nDaily digest for {day} ({TZ.key}), SQLite, {path.name}")
    print("  rows: " + ", ".join(f"{name} {count:,}" for name, count in counts.items()))
    print(f"  digest: {view.people:,} people and ids, {view.events:,} events, {len(blocks)} blocks, "
          f"{len(view.anomalies)} anomalies, {len(view.over_budget)} past 80%, {len(view.unlinked)} unlinked ids")
    print()
    print(f"  {'what':<58} {'median':>10}  runs")
    print(f"  {'digest view model + Block Kit, from the rollups':<58} {median_ms(digest_times):>10}  {runs}")
    print(f"  {'the same figures by aggregating raw usage_events':<58} {median_ms(raw_times):>10}  3")
    print(f"  {'ratio raw / rollups':<58} {raw_median / digest_median:>9.0f}×")
    print(f"  {'chart data (30 days, top 5 people + others), rollups':<58} {median_ms(chart_data):>10}  3")
    print(f"  {'chart PNG rendering (matplotlib Agg), ' + f'{len(png) // 1024} KiB':<58} {median_ms(chart_png):>10}  3")
    print(f"\n  figures agree (totals, top 10 order, baseline, models, month to date, unlinked, anomalies): "
          f"{'yes' if agree else 'NO'}")
    print(f"  target under 1 s for the digest: {'met' if digest_median < 1 else 'MISSED'}")
    if not agree:
        raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=5000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--rebuild", action="store_true", help="generate the database again")
    args = parser.parse_args()
    path = ROOT / "bench" / ".cache" / f"digest-{args.people}p-{args.events}e-{args.days}d.db"
    if args.rebuild or not cached(path, args.people, args.events, args.days):
        print(f"generating {args.events:,} events for {args.people:,} people over {args.days} days...",
              file=sys.stderr)
        generate(path, args.people, args.events, args.days)
    asyncio.run(measure(path, args.runs))


if __name__ == "__main__":
    main()
