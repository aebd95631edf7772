"""The demo's provider sources: a built-in fake Admin API on 127.0.0.1 (no network), filled with what
OpenAI and Anthropic would report for the demo's gateway calls, a bill that disagrees on a few days for
the usual reasons, and Claude Code days for some people; then a real pull, the reconciliation and the
Claude Code output, as text.

The demo organisation's calls already arrive through a gateway, so both sources run with
`count = "none"` (the bill side only), the setting the README recommends for that case.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from bot.providers import buckets as bk
from bot.providers.fake_admin import ANTHROPIC_KEY, OPENAI_KEY, FakeAdminAPIs, claude_code_row, hour
from bot.providers.output import output_by_person
from bot.providers.reconcile import reconcile_month, table_text
from bot.providers.settings import SourceConfig, SourcesConfig
from bot.providers.sync import SourceSync
from bot.services import Services
from storage import sources_repo

# the bill's known disagreements: (days back, provider, factor, why)
DRIFT = ((3, "openai", Decimal("1.045"), "priority tier"), (9, "anthropic", Decimal("1.07"), "cache writes"))


@dataclass(frozen=True)
class DemoCoder:
    actor: str  # the email Claude Code reports
    slack_id: str


async def start_fake() -> FakeAdminAPIs:
    return await FakeAdminAPIs(page_size=50).start()


def demo_sources(fake: FakeAdminAPIs) -> SourcesConfig:
    return SourcesConfig(
        openai=SourceConfig("openai", admin_key=OPENAI_KEY, base_url=fake.openai_url, count="none", backfill_days=31),
        anthropic=SourceConfig("anthropic", admin_key=ANTHROPIC_KEY, base_url=fake.url, count="none",
                               backfill_days=31),
        show_output=True,
    )


def fill_fake(services: Services, fake: FakeAdminAPIs, events: list[dict], coders: list[DemoCoder],
              rng: random.Random, now: datetime) -> None:
    """What the providers would say about the gateway's calls, priced as tokenbot prices them."""
    grouped: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0])
    for e in events:
        provider = e.get("provider")
        if provider not in ("openai", "anthropic"):
            continue
        start = hour(datetime.fromisoformat(e["timestamp"]))
        window = "200k-1M" if provider == "anthropic" and e["input_tokens"] > 200_000 else "0-200k"
        acc = grouped[(provider, start, e["user"], e["model"], window)]
        acc[0] += e["input_tokens"]
        acc[1] += e.get("cached_input_tokens", 0)
        acc[2] += e["output_tokens"]
    bill: dict[tuple[str, date], Decimal] = defaultdict(Decimal)
    for (provider, start, user, model, window), (inp, cached, out) in grouped.items():
        key = f"key_{user.split('@')[0]}"[:40]
        moment = datetime.fromtimestamp(start, UTC)
        if provider == "openai":
            row = {"object": "organization.usage.completions.result", "input_tokens": inp,
                   "input_cached_tokens": cached, "output_tokens": out, "num_model_requests": 1,
                   "project_id": "proj_gateway", "user_id": None, "api_key_id": key, "model": model, "batch": False}
            fake.openai_usage["completions"].setdefault(start, []).append(row)
            record = {"endpoint": "completions", "start": moment, "model": model, "input": inp, "cached": cached,
                      "output": out}
        else:
            row = {"api_key_id": key, "workspace_id": "wrkspc_gateway", "model": model, "service_tier": "standard",
                   "context_window": window, "uncached_input_tokens": inp - cached, "cache_read_input_tokens": cached,
                   "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
                   "output_tokens": out}
            fake.anthropic_usage.setdefault(start, []).append(row)
            record = {"endpoint": "messages", "start": moment, "model": model, "input": inp, "cached": cached,
                      "output": out, "context_window": window}
        cost, _, _ = bk.price_record(services.pricer, provider, record)
        bill[(provider, moment.date())] += cost
    today = now.astimezone(UTC).date()
    factors = {(p, today - timedelta(days=back)): f for back, p, f, _ in DRIFT}
    for (provider, day), amount in sorted(bill.items()):
        amount = (amount * factors.get((provider, day), Decimal(1))).quantize(Decimal("0.000001"))
        if provider == "openai":
            fake.openai_costs.setdefault(day, []).append(
                {"project_id": "proj_gateway", "line_item": "completions", "amount": amount})
        else:
            fake.anthropic_costs.setdefault(day, []).append(
                {"workspace_id": "wrkspc_gateway", "description": "Claude usage", "amount": str(amount * 100)})
    for back in range(30):
        day = today - timedelta(days=back)
        if day.weekday() >= 5:
            continue
        for coder in coders:
            prs = rng.choice((0, 0, 1, 1, 2))
            fake.claude_code.setdefault(day, []).append(claude_code_row(
                day, coder.actor, sessions=rng.randint(1, 6), added=rng.randint(50, 900), removed=rng.randint(10, 300),
                commits=rng.randint(0, 5) + prs, prs=prs, cost_cents=str(rng.randint(150, 1800))))


async def pull_and_show(services: Services, coders: list[DemoCoder], names: dict[str, str]) -> str:
    """Pull from the fake, then the lines a finance admin would read."""
    reports = await SourceSync(services, base_seconds=0.01).run()
    lines = ["Provider sources: pulled from a built-in fake Admin API on 127.0.0.1 (no network)"]
    lines += [f"  {r.line()}" for r in reports]
    async with services.db.session() as session:
        counts = await sources_repo.bucket_counts(session)
    for source, (n, _, latest) in sorted(counts.items()):
        lines.append(f"  {source}: {n:,} hourly buckets stored (latest {latest}), bill side only: "
                     "count = \"none\", the gateway already counts these calls")
    rec = await reconcile_month(services)
    lines.append("")
    lines.append(table_text(rec).splitlines()[0])
    for t in rec.totals:
        pct = f"{t.pct:+.1f}%" if t.pct is not None else "-"
        lines.append(f"  {t.provider:<10} ledger ${t.ledger:,.2f}  bill ${t.bill:,.2f}  drift ${t.drift:+,.2f} ({pct})")
    for r in rec.over[:4]:
        lines.append(f"  over {rec.tolerance_pct}%: {r.provider} {r.day} {r.project}: ledger ${r.ledger:,.2f}, "
                     f"bill ${r.bill:,.2f} ({r.pct:+.1f}%)")
    lines.append("  (known causes in this demo: " + "; ".join(f"{p} {back} days ago, {why}"
                                                            for back, p, _, why in DRIFT) + ")")
    today = services.clock.today()
    output = await output_by_person(services, today.replace(day=1), today)
    lines.append("")
    lines.append("Claude Code output this month (Anthropic's estimate, beside spend, never added to it):")
    for key, figures in sorted(output.items(), key=lambda kv: -kv[1].pull_requests)[:6]:
        lines.append(f"  {names.get(key, key):<18} {figures.line()}")
    return "\n".join(lines)


async def provider_shots(services: Services, shots) -> None:
    """`tokenbot demo --shots`: the card with Claude Code output, the reconcile answer, the leaderboard
    with output per dollar (bot/shots.py calls this)."""
    from bot import card_builder
    from bot.providers.commands import reconcile_view
    from bot.views.help import Message
    from bot.views.reconcile import reconcile_blocks, reconcile_fallback

    today = services.clock.today()
    output = await output_by_person(services, today.replace(day=1), today)
    coders = sorted((k for k in output if k.startswith(("U", "W"))), key=lambda k: -output[k].pull_requests)
    if coders:
        shots.ephemeral("card-claude-code", await card_builder.build_card(services, coders[0]))
        shots.ephemeral("leaderboard-output", await card_builder.build_leaderboard(services, coders[0]))
    view = reconcile_view(await reconcile_month(services))
    shots.ephemeral("admin-reconcile", Message(reconcile_fallback(view), reconcile_blocks(view)))
