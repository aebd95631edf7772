"""`tokenbot demo`: a synthetic organisation, sent through the real ingest path, shown as text.

No Slack and no network: the demo serves the real aiohttp application on a loopback
port of its own and POSTs signed Standard Webhooks batches to it, exactly as a gateway
would, then reads the numbers back the way the bot does.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import secrets
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import orjson
from aiohttp import web

from bot.app import build_web_app
from bot.approvals.demo import demo_walkthrough
from bot.breaker.demo import breaker_walkthrough
from bot.card_builder import render_demo_cards
from bot.config import ModelPrice, Settings
from bot.digests.cli import demo_digest_text
from bot.people import remember_people
from bot.providers import demo as provider_demo
from bot.report import render_summary
from bot.teams.demo import demo_team_walkthrough, demo_teams
from bot.wiring import build_services
from storage.db import upgrade_async

TEAMS = ("platform", "research", "growth", "support", "data")
FIRST = (
    "Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jon", "Kemi", "Luca", "Maya",
    "Nils", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tariq", "Uma", "Vik", "Wen", "Xavi", "Yara", "Zoe",
)
LAST = ("Lovelace", "Okafor", "Martin", "Patel", "Rossi", "Haddad", "Hopper", "Tanaka", "Silva", "Berg")
# (model, provider, relative popularity, typical input tokens, output share)
MODELS = (
    ("gpt-4o", "openai", 30, 6000, 0.25),
    ("gpt-4o-mini", "openai", 30, 3000, 0.3),
    ("claude-sonnet-4-5", "anthropic", 25, 12000, 0.15),
    ("o3", "openai", 6, 8000, 0.6),
    ("gemini-2.5-pro", "google", 8, 20000, 0.1),
    ("acme-finetune-1", None, 4, 2000, 0.3),      # priced by a [pricing.models] override
    ("acme-internal-7b", None, 2, 1500, 0.3),     # no price anywhere: stored as unpriced
)


@dataclass(frozen=True)
class DemoPerson:
    slack_id: str
    name: str
    team: str
    intensity: float  # average calls per working day
    sends_as: str  # what the gateway calls them: Slack id, email or API key


def synthetic_people(count: int, rng: random.Random) -> list[DemoPerson]:
    people = []
    for i in range(count):
        first = FIRST[i % len(FIRST)]
        name = f"{first} {LAST[(i * 7) % len(LAST)]}"
        slack_id = f"U0DEMO{i:03d}"
        # a few heavy users, a long tail: a leaderboard worth reading
        intensity = rng.lognormvariate(3.2, 0.9)
        style = i % 3
        sends_as = (
            slack_id if style == 0 else f"{first.lower()}@acme.example" if style == 1 else f"key_{first.lower()}_{i}"
        )
        people.append(DemoPerson(slack_id, name, TEAMS[i % len(TEAMS)], intensity, sends_as))
    return people


def demo_settings(database: Path, people: list[DemoPerson]) -> Settings:
    identities = {p.sends_as: p.slack_id for p in people if not p.sends_as.startswith("U0")}
    heavy = sorted(people, key=lambda p: -p.intensity)
    return Settings(
        database_url=f"sqlite+aiosqlite:///{database}",
        usage_webhook_secret="whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
        timezone=ZoneInfo("America/New_York"),
        admins=(people[0].slack_id,),
        default_monthly_usd=Decimal(150),
        user_budgets={heavy[0].slack_id: Decimal(600), heavy[1].slack_id: Decimal(50)},
        identities=identities,
        default_approvers=(people[1].slack_id,),
        model_prices={"acme-finetune-1": ModelPrice(Decimal(3), Decimal(12), Decimal("0.3"))},
        teams=demo_teams([(p.slack_id, p.team) for p in people]),  # SPEC 13 (bot/teams/demo.py)
    )


def synthetic_events(people: list[DemoPerson], now: datetime, rng: random.Random, days: int = 30) -> list[dict]:
    events = []
    weights = [m[2] for m in MODELS]
    tz = ZoneInfo("America/New_York")
    local_now = now.astimezone(tz)
    for person in people:
        favourite = rng.choices(MODELS, weights=weights, k=3)
        for back in range(days, -1, -1):
            day = (local_now - timedelta(days=back)).date()
            weekend = day.weekday() >= 5
            calls = int(rng.expovariate(1 / (person.intensity * (0.15 if weekend else 1.0))))
            for n in range(calls):
                model, provider, _, typical_in, out_share = rng.choice(favourite) if rng.random() < 0.8 else (
                    rng.choices(MODELS, weights=weights)[0]
                )
                moment = datetime(day.year, day.month, day.day, 8, 0, tzinfo=tz) + timedelta(
                    minutes=rng.uniform(0, 11 * 60)
                )
                if moment > now:
                    continue
                input_tokens = max(1, int(rng.lognormvariate(0, 0.8) * typical_in))
                output_tokens = max(1, int(input_tokens * out_share * rng.uniform(0.3, 1.5)))
                event = {
                    "id": f"demo-{person.slack_id}-{day.isoformat()}-{n}",
                    "timestamp": moment.isoformat(),
                    "user": person.sends_as,
                    "model": model,
                    "input_tokens": input_tokens,
                    "cached_input_tokens": int(input_tokens * rng.choice((0, 0, 0.3, 0.6))),
                    "output_tokens": output_tokens,
                    "reasoning_tokens": int(output_tokens * 0.7) if model == "o3" else 0,
                    "team": person.team,
                }
                if provider:
                    event["provider"] = provider
                events.append(event)
    # a CI job that calls through an unlinked key: shows up as unlinked spend
    for back in range(days):
        moment = now - timedelta(days=back, hours=3)
        events.append({
            "id": f"demo-ci-{back}", "timestamp": moment.isoformat(), "user": "ci-nightly-key",
            "model": "gpt-4o-mini", "provider": "openai", "input_tokens": 250_000, "output_tokens": 40_000,
        })
    return events


def _sign(secret: str, msg_id: str, body: bytes) -> dict[str, str]:
    import hashlib
    import hmac

    key = base64.b64decode(secret.removeprefix("whsec_"))
    stamp = str(int(time.time()))
    digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
        "Content-Type": "application/json",
    }


async def _send_through_http(settings: Settings, services, events: list[dict]) -> dict[str, int]:
    app = build_web_app(services, close_services=False)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    totals = {"accepted": 0, "duplicates": 0, "rejected": 0}
    try:
        async with aiohttp.ClientSession() as http:
            for start in range(0, len(events), 500):
                body = orjson.dumps(events[start : start + 500])
                headers = _sign(settings.usage_webhook_secret, f"demo-batch-{start}", body)
                async with http.post(f"http://127.0.0.1:{port}/webhooks/usage", data=body, headers=headers) as resp:
                    answer = await resp.json()
                    if resp.status != 200:
                        raise RuntimeError(f"demo batch refused: {resp.status} {answer}")
                totals["accepted"] += answer["accepted"]
                totals["duplicates"] += answer["duplicates"]
                totals["rejected"] += len(answer["rejected"])
    finally:
        await runner.cleanup()
    return totals


async def _demo(database: Path, people_count: int, seed: int, shots: Path | None = None) -> None:
    rng = random.Random(seed)
    people = synthetic_people(people_count, rng)
    settings = demo_settings(database, people)
    fake = await provider_demo.start_fake()  # the provider sources' Admin APIs, on 127.0.0.1 (bot/providers/demo.py)
    settings = replace(settings, sources=provider_demo.demo_sources(fake))
    for suffix in ("", "-wal", "-shm"):
        await asyncio.to_thread(Path(f"{database}{suffix}").unlink, missing_ok=True)
    await upgrade_async(settings.database_url)
    services = build_services(replace(settings), with_slack=False)
    try:
        await remember_people(services, [(p.slack_id, p.name) for p in people])
        now = datetime.now(UTC)
        events = synthetic_events(people, now, rng)
        started = time.perf_counter()
        totals = await _send_through_http(settings, services, events)
        await services.ingestor.writer.settle()  # rollups trail the events by up to a second
        elapsed = time.perf_counter() - started
        print(f"tokenbot demo: {len(people)} people in {len(TEAMS)} teams, {len(events):,} usage events over "
              f"31 days, sent as {-(-len(events) // 500)} signed webhook batches in {elapsed:.1f}s "
              f"({totals['accepted']:,} stored, {totals['duplicates']} duplicates, {totals['rejected']} rejected)")
        print(f"database: {database}\n")
        print(await render_summary(services))
        print("\n" + await render_demo_cards(services))
        print("\n" + await demo_digest_text(services))
        print("\n" + await demo_walkthrough(services))
        coders = [provider_demo.DemoCoder(p.sends_as, p.slack_id) for p in people if "@" in p.sends_as][:6]
        provider_demo.fill_fake(services, fake, events, coders, rng, now)
        print("\n" + await provider_demo.pull_and_show(services, coders, {p.slack_id: p.name for p in people}))
        print("\n" + await breaker_walkthrough(services))
        print("\n" + await demo_team_walkthrough(services))
        if shots is not None:
            from bot.shots import write_shots

            written = await write_shots(services, shots, [(p.slack_id, p.name) for p in people])
            print(f"\n{len(written.texts)} Slack surfaces written to {shots}/ (see texts.txt; render them with "
                  "slack_preview.py)")
    finally:
        await services.close()
        await fake.stop()


def run_demo(*, database: str, people: int, seed: int, shots: Path | None = None) -> int:
    os.environ.setdefault("TZ", "UTC")
    asyncio.run(_demo(Path(database).resolve(), max(people, 3), seed, shots))
    return 0
