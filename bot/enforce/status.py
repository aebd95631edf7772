"""What admins see of the enforcers: `/tokens admin status`, `tokenbot enforce status`, and the
lines the lead joins into `tokenbot sources status`."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from bot.commands import Invocation
from bot.people import is_admin
from bot.services import Services
from bot.views.enforce_status import EnforcerLine, StatusView, status_blocks, status_fallback, status_lines
from bot.views.help import Message, Notice
from storage import breaker_repo, enforce_repo
from storage.models import BreakerTrip, EnforcePush, OutboxMessage


def _targets(services: Services) -> dict[str, str]:
    enforce = services.settings.enforce
    out = {}
    teams = [name for name, config in services.settings.teams.items() if config.monthly_usd is not None]
    if enforce.litellm is not None:
        out["litellm"] = enforce.litellm.url + (f"; team budgets: {', '.join(teams)}" if teams else "")
    if enforce.openai is not None:
        mapped = enforce.openai.projects
        projects = [p + (f" (team {mapped[p]})" if p in mapped else "")
                    for p in sorted({*mapped, *enforce.openai.amounts})]
        out["openai"] = "projects " + ", ".join(projects) if projects else "no projects mapped"
    return out


def team_note(row: EnforcePush) -> str:
    """A team subject's line: what the proxy's teams were given, which ids it does not know, or why not."""
    team = row.subject.removeprefix("team:")
    detail = row.detail or {}
    if row.version > row.pushed_version:
        return f"Team {team}: push waiting" + (f" ({row.last_error[:80]})" if row.last_error else "")
    if detail.get("skipped"):
        return f"Team {team}: {detail['skipped']}"
    given = ", ".join(f"${float(v['max_budget']):,.2f} on {tid}"
                      for tid, v in sorted((detail.get("teams") or {}).items()))
    unknown = ", ".join(detail.get("unknown") or [])
    if not given:
        return f"Team {team}: not on the proxy ({unknown or 'no ids'}), nothing pushed"
    return f"Team {team}: max_budget {given}" + (f"; not on the proxy: {unknown}" if unknown else "")


async def build_status(services: Services) -> StatusView:
    tz = services.clock.tz
    local = (lambda m: m.astimezone(tz) if m is not None else None)  # noqa: E731
    now = services.clock.now()
    async with services.db.session() as session:
        health = await enforce_repo.health(session)
        lines = []
        for name, target in _targets(services).items():
            waiting, _ = await enforce_repo.backlog(session, name)
            h = health.get(name)
            notes = tuple(team_note(r) for r in await session.scalars(
                select(EnforcePush).where(EnforcePush.enforcer == name, EnforcePush.subject.like("team:%"))
                .order_by(EnforcePush.subject))) if name == "litellm" else ()
            lines.append(EnforcerLine(
                name, target, waiting,
                last_success=local(h.last_success_at) if h else None,
                last_failure=local(h.last_failure_at) if h else None,
                last_error=h.last_error if h else None,
                failing_since=local(h.failing_since) if h else None, notes=notes))
        outbox_waiting = await session.scalar(select(func.count()).where(OutboxMessage.delivered_at.is_(None)))
        paused = len(await breaker_repo.paused(session))
        trips = await session.scalar(select(func.count()).where(BreakerTrip.tripped_at >= now - timedelta(days=1)))
    return StatusView(lines, int(outbox_waiting or 0), services.settings.breaker.mode, paused, int(trips or 0))


async def status_command(invocation: Invocation):
    """`/tokens admin status` (admins only)."""
    services = invocation.services
    if not await is_admin(services, invocation.user_id):
        return Notice("Only tokenbot admins can see the enforcers' status. Admins are listed in the config "
                      "(`admins`) or are Slack workspace admins.", ok=False)
    view = await build_status(services)
    return Message(status_fallback(view), status_blocks(view))


async def enforcer_status_lines(services: Services) -> list[str]:
    """For `tokenbot sources status` (and `tokenbot enforce status`): one paragraph per enforcer."""
    return status_lines(await build_status(services))
