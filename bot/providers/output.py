"""Output beside spend (SPEC 10): Claude Code sessions, commits, pull requests and lines per person.

The actors (emails, API key names) are resolved to people when read, so a link made after the pull
(`/tokens admin link`, `[identities]`, an email Slack knows) counts at once. Claude Code's estimated
cost is shown here only: the same calls are in the messages usage and on the invoice.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from bot.clock import month_first_day
from bot.services import Services
from bot.views.card import OutputFigures
from storage import sources_repo


def _add(a: OutputFigures | None, o: sources_repo.Output) -> OutputFigures:
    a = a or OutputFigures()
    return OutputFigures(a.sessions + o.sessions, a.lines_added + o.lines_added, a.lines_removed + o.lines_removed,
                         a.commits + o.commits, a.pull_requests + o.pull_requests,
                         a.estimated_cost_usd + o.estimated_cost_usd)


async def output_by_person(services: Services, first: date, last: date) -> dict[str, OutputFigures]:
    async with services.db.session() as session:
        rows = await sources_repo.output_by_actor(session, first, last)
    if not rows:
        return {}
    resolved = await services.identities.resolve_many({actor for actor, _, _ in rows})
    out: dict[str, OutputFigures] = {}
    for actor, stored, figures in rows:
        key = resolved.get(actor, stored)
        if key == actor and stored != actor:
            key = stored
        out[key] = _add(out.get(key), figures)
    return out


async def month_output(services: Services, user_id: str) -> OutputFigures | None:
    today = services.clock.today()
    return (await output_by_person(services, month_first_day(today), today)).get(user_id)


def per_dollar(figures: OutputFigures | None, spend: Decimal) -> str | None:
    """"3 PRs · 41 commits · $12/PR" beside a leaderboard row, when there is output."""
    if figures is None or not (figures.pull_requests or figures.commits):
        return None
    parts = [f"{figures.pull_requests} PR{'s' if figures.pull_requests != 1 else ''}",
             f"{figures.commits} commit{'s' if figures.commits != 1 else ''}"]
    if figures.pull_requests and spend > 0:
        parts.append(f"${(spend / figures.pull_requests).quantize(Decimal(1)):,}/PR")
    return " · ".join(parts)
