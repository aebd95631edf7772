"""What a subject should be allowed now: read when a push is delivered, never when it was queued,
so a push always carries the newest decision (an older one cannot win)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.budgets import budget_status
from bot.services import Services
from storage import breaker_repo
from storage.models import Identity

ZERO = Decimal(0)
MAX_IDS = 20


def user_subject(user_key: str) -> str:
    return f"user:{user_key}"


def key_subject(key_id: str) -> str:
    return f"key:{key_id}"


def project_subject(project: str) -> str:
    return f"project:{project}"


@dataclass(frozen=True)
class SubjectState:
    subject: str
    kind: str  # "user" | "key" | "project"
    name: str
    limit_usd: Decimal | None
    remaining_usd: Decimal
    paused: bool
    reason: str | None = None


async def state_of(services: Services, session: AsyncSession, subject: str) -> SubjectState:
    kind, _, name = subject.partition(":")
    settings = services.settings
    if kind == "user":
        status = await budget_status(session, settings, services.clock, name)
        trip = await breaker_repo.paused_trip(session, name)
        return SubjectState(subject, kind, name, status.limit_usd, status.remaining_usd, trip is not None,
                            "breaker" if trip is not None else None)
    if kind == "key":
        trip = await breaker_repo.paused_subject(session, subject)
        return SubjectState(subject, kind, name, None, ZERO, trip is not None, "breaker" if trip else None)
    if kind == "project":
        limit = project_budget(settings, name)
        trip = await breaker_repo.paused_subject(session, subject)
        return SubjectState(subject, kind, name, limit, limit or ZERO, trip is not None,
                            "breaker" if trip else None)
    raise ValueError(f"unknown subject {subject!r}")


def project_budget(settings, project: str) -> Decimal | None:
    """A mapped OpenAI project's monthly budget: its team's `monthly_usd` ([teams], SPEC 13), else a
    fixed `[enforce.openai] amounts` entry."""
    openai = settings.enforce.openai
    if openai is None:
        return None
    team = openai.projects.get(project)
    if team is not None:
        teams = getattr(settings, "teams", {}) or {}
        entry = teams.get(team)
        amount = getattr(entry, "monthly_usd", None) if entry is not None else None
        if amount is None and isinstance(entry, dict):
            amount = entry.get("monthly_usd")
        if amount is not None:
            return Decimal(str(amount))
    return openai.amounts.get(project)


async def known_ids(services: Services, session: AsyncSession, user_key: str) -> list[str]:
    """Every id a person is known by: the Slack id itself, and every external id linked to it (config
    `[identities]`, admin links, emails seen in usage). Their ids on the LiteLLM proxy are among
    these (those the proxy does not know are skipped at push time: `/user/info` answers 404), and
    so are the sender ids of their events (the breaker's check reads the events by them)."""
    ids = [user_key]
    ids += [k for k, v in services.settings.identities.items() if v == user_key]
    ids += list(await session.scalars(select(Identity.external_id).where(Identity.slack_user_id == user_key)
                                      .order_by(Identity.external_id).limit(MAX_IDS)))
    return list(dict.fromkeys(ids))[:MAX_IDS]
