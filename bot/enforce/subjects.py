"""What a subject should be allowed now: read when a push is delivered, never when it was queued,
so a push always carries the newest decision (an older one cannot win).

Subjects: `user:<slack id>`, `key:<key>` (a breaker trip of an unattributed key), `project:<id>`
(an `[enforce.openai]` project) and `team:<name>` (a `[teams.<name>]` budget on the LiteLLM
proxy). A team's limit is `team_limit` (monthly_usd plus this month's approved team raises);
an OpenAI project mapped to a team gets that same limit."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.budgets import budget_status
from bot.clock import month_first_day, month_last_day
from bot.services import Services
from bot.teams.builder import month_key, team_limit
from storage import breaker_repo, teams_repo
from storage.models import Identity

ZERO = Decimal(0)
MAX_IDS = 20


def user_subject(user_key: str) -> str:
    return f"user:{user_key}"


def key_subject(key_id: str) -> str:
    return f"key:{key_id}"


def project_subject(project: str) -> str:
    return f"project:{project}"


def team_subject(team: str) -> str:
    return f"team:{team}"


def team_subjects(settings, team: str) -> list[str]:
    """What a decision on a team's budget moves: the team on the LiteLLM proxy and every
    `[enforce.openai]` project mapped to it. None for a team with no monthly_usd (nothing to push)."""
    config = settings.teams.get(team)
    if config is None or config.monthly_usd is None:
        return []
    out = [team_subject(team)]
    openai = settings.enforce.openai
    if openai is not None:
        out += [project_subject(p) for p, t in sorted(openai.projects.items()) if t == team]
    return out


def team_proxy_ids(settings, team: str) -> list[str]:
    """The ids a team may have on the LiteLLM proxy: its name and its `aliases` (those the proxy does
    not know, like an OpenAI project id among the aliases, are skipped at push time: 404)."""
    config = settings.teams.get(team)
    return list(dict.fromkeys([team, *(config.aliases if config is not None else ())]))


@dataclass(frozen=True)
class SubjectState:
    subject: str
    kind: str  # "user" | "key" | "project" | "team"
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
        limit = await project_budget(services, session, name)
        trip = await breaker_repo.paused_subject(session, subject)
        return SubjectState(subject, kind, name, limit, limit or ZERO, trip is not None,
                            "breaker" if trip else None)
    if kind == "team":
        limit, spent = await team_budget(services, session, name)
        remaining = max(limit - spent, ZERO) if limit is not None else ZERO
        return SubjectState(subject, kind, name, limit, remaining, False)
    raise ValueError(f"unknown subject {subject!r}")


async def team_budget(services: Services, session: AsyncSession, team: str) -> tuple[Decimal | None, Decimal]:
    """A team's limit this month (None: no monthly_usd, or no longer configured) and its spend so far,
    exact to the last committed event."""
    settings = services.settings
    if team not in settings.teams:
        return None, ZERO
    today = services.clock.today()
    month = month_key(today)
    limit = await team_limit(session, settings, team, month)
    if limit is None:
        return None, ZERO
    spent = await teams_repo.team_month_spend(session, month, month_first_day(today), month_last_day(today), [team])
    return limit, spent.get(team, ZERO)


async def project_budget(services: Services, session: AsyncSession, project: str) -> Decimal | None:
    """A mapped OpenAI project's monthly budget: its team's limit this month ([teams] monthly_usd plus
    the month's approved team raises, SPEC 13), else a fixed `[enforce.openai] amounts` entry."""
    settings = services.settings
    openai = settings.enforce.openai
    if openai is None:
        return None
    team = openai.projects.get(project)
    if team is not None and team in settings.teams:
        limit = await team_limit(session, settings, team, month_key(services.clock.today()))
        if limit is not None:
            return limit
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
