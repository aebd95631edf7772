"""A plain-text overview of the month so far (the demo's first page)."""

from __future__ import annotations

from decimal import Decimal

from bot.budgets import budget_status
from bot.clock import month_first_day, month_key
from bot.identities import is_slack_user_id
from bot.people import display_names
from bot.services import Services
from bot.views.format import money, percent, plural, tokens
from storage import queries


async def render_summary(services: Services, top: int = 10) -> str:
    today = services.clock.today()
    month = month_key(today)
    first = month_first_day(today)
    async with services.db.session() as session:
        ranked = await queries.leaderboard_month(session, month)
        models = await queries.models_days(session, first, today, limit=6)
        unpriced = await queries.unpriced_models(session, first, today)
        statuses = [
            await budget_status(session, services.settings, services.clock, r.key)
            for r in ranked if is_slack_user_id(r.key)
        ]
    names = await display_names(services, [r.key for r in ranked])
    total_cost = sum((r.totals.cost_usd for r in ranked), Decimal(0))
    total_tokens = sum(r.totals.tokens for r in ranked)
    people = sum(1 for r in ranked if is_slack_user_id(r.key))
    lines = [f"{today:%B} so far: {money(total_cost)} on {tokens(total_tokens)} tokens, by "
             f"{plural(people, 'person', 'people')} and {plural(len(ranked) - people, 'unlinked id')}", ""]
    lines.append(f"Top {min(top, len(ranked))} by cost")
    for rank, row in enumerate(ranked[:top], start=1):
        lines.append(f"  {rank:>2}. {names[row.key]:<22} {money(row.totals.cost_usd):>10}  "
                     f"{tokens(row.totals.tokens):>7} tokens")
    lines += ["", "Top models"]
    for model, totals in models:
        lines.append(f"  {model:<22} {money(totals.cost_usd):>10}  {tokens(totals.tokens):>7} tokens")
    over = [s for s in statuses if s.used_share >= Decimal("0.8")]
    if over:
        lines += ["", "Past 80% of budget"]
        for status in sorted(over, key=lambda s: -s.used_share):
            lines.append(f"  {names[status.user_key]:<22} {money(status.spent_usd):>10} of "
                         f"{money(status.limit_usd)} ({percent(status.used_share)})")
    unlinked = [r for r in ranked if not is_slack_user_id(r.key)]
    if unlinked:
        lines += ["", "Unlinked spend (link with /tokens admin link <id> @person)"]
        for row in unlinked:
            lines.append(f"  {row.key:<22} {money(row.totals.cost_usd):>10}")
    if unpriced:
        lines += ["", "Models without a price (add [pricing.models] and run tokenbot reprice)"]
        for model, events, count in unpriced:
            lines.append(f"  {model:<22} {events} events, {tokens(count)} tokens")
    return "\n".join(lines)
