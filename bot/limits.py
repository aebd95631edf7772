"""GET /api/v1/limits/{user}: what a gateway needs to enforce a person's budget."""

from __future__ import annotations

import time
import weakref
from typing import Any

from sqlalchemy import exists, or_, select

from bot.budgets import budget_status
from bot.config import SLACK_USER_ID
from bot.identities import looks_like_email
from bot.services import Services
from bot.teams.limits import team_answer
from bot.views.format import json_money, json_scope
from storage import breaker_repo
from storage.approvals_repo import pending_request
from storage.models import Budget, BudgetRequest, Identity, Person, UsageMonthly

# An email Slack did not know is asked about again after this long (a new hire's account
# appears within minutes of being created); per process, per identity resolver.
UNKNOWN_EMAIL_SECONDS = 600.0
_unknown_emails: weakref.WeakKeyDictionary[Any, dict[str, float]] = weakref.WeakKeyDictionary()


class SlackUnavailable(Exception):
    """Slack could not be asked (down, rate limited): the answer is neither yes nor no."""


async def find_person(services: Services, user: str) -> str | None:
    """A Slack id, email or external id -> the user_key it is known under, or None.

    A gateway asks before a person's first call (SPEC 4), so an email never seen in usage is
    looked up in Slack (users.lookupByEmail): a match is linked like any email seen in usage,
    so the person's later spend is theirs; a miss is remembered for a few minutes.
    """
    known = await _find_known(services, user)
    if known is not None or not looks_like_email(user):
        return known
    return await _lookup_email(services, user)


async def _lookup_email(services: Services, email: str) -> str | None:
    identities = services.identities
    if identities.lookup_email is None:
        return None
    misses = _unknown_emails.setdefault(identities, {})
    now = time.monotonic()
    if misses.get(email, 0.0) > now:
        return None
    try:
        slack_user_id = await identities.lookup_email(email)
    except Exception as exc:
        raise SlackUnavailable(str(exc)) from exc
    if not slack_user_id:
        if len(misses) > 10_000:
            misses.clear()
        misses[email] = now + UNKNOWN_EMAIL_SECONDS
        return None
    await identities.link(email, slack_user_id, source="email", set_by=None)
    return slack_user_id


async def _find_known(services: Services, user: str) -> str | None:
    settings = services.settings
    if user in settings.identities:
        return settings.identities[user]
    async with services.db.session() as session:
        identity = await session.get(Identity, user)
        if identity is not None and identity.slack_user_id:
            return identity.slack_user_id
        if "@" in user:
            person = await session.scalar(select(Person.slack_user_id).where(Person.email == user).limit(1))
            if person:
                return person
        if SLACK_USER_ID.match(user) and (
            user in settings.user_budgets
            or user in settings.admins
            or user in settings.approvers
            or user in settings.approvers.values()
            or user in settings.default_approvers
        ):
            return user
        known = await session.scalar(
            select(
                or_(
                    exists().where(UsageMonthly.user_key == user),
                    exists().where(Budget.user_key == user),
                    exists().where(Person.slack_user_id == user),
                    exists().where(BudgetRequest.requester == user),
                )
            )
        )
        return user if known else None


def request_summary(request: BudgetRequest) -> dict[str, Any]:
    return {
        "id": request.id,
        "amount_usd": json_money(request.amount_usd),
        "scope": json_scope(request.scope),
        "reason": request.reason,
        "approvers": request.approvers,
        "created_at": request.created_at.isoformat(),
        "expires_at": request.expires_at.isoformat(),
    }


async def limits_for(services: Services, user: str) -> dict[str, Any] | None:
    user_key = await find_person(services, user)
    if user_key is None:
        return None
    async with services.db.session() as session:
        status = await budget_status(session, services.settings, services.clock, user_key)
        pending = await pending_request(session, user_key)
        paused = await breaker_repo.paused_trip(session, user_key)
    # `reason` is a code a gateway can branch on: "paused" (the runaway breaker), "budget" (the
    # person's own month), "team_budget" (their team's, added by team_answer)
    answer = {
        "user": user,
        "slack_user_id": user_key if SLACK_USER_ID.match(user_key) else None,
        "period": status.period,
        "limit_usd": json_money(status.limit_usd),
        "spent_usd": json_money(status.spent_usd),
        "remaining_usd": json_money(status.remaining_usd),
        "allowed": status.allowed and paused is None,
        "reason": "paused" if paused is not None else None if status.allowed else "budget",
        "pending_request": request_summary(pending) if pending else None,
    }
    return await team_answer(services, user_key, answer)  # `team`; `allowed` false when the team is over
