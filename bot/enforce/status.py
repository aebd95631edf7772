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
from storage.models import BreakerTrip, OutboxMessage


def _targets(services: Services) -> dict[str, str]:
    enforce = services.settings.enforce
    out = {}
    if enforce.litellm is not None:
        out["litellm"] = enforce.litellm.url
    if enforce.openai is not None:
        projects = sorted({*enforce.openai.projects, *enforce.openai.amounts})
        out["openai"] = "projects " + ", ".join(projects) if projects else "no projects mapped"
    return out


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
            lines.append(EnforcerLine(
                name, target, waiting,
                last_success=local(h.last_success_at) if h else None,
                last_failure=local(h.last_failure_at) if h else None,
                last_error=h.last_error if h else None,
                failing_since=local(h.failing_since) if h else None))
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
