"""GET /api/v1/limits/{user}: what a gateway needs to enforce a person's budget."""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, or_, select

from bot.budgets import budget_status
from bot.config import SLACK_USER_ID
from bot.services import Services
from bot.views.format import json_money, json_scope
from storage.approvals_repo import pending_request
from storage.models import Budget, BudgetRequest, Identity, Person, UsageMonthly


async def find_person(services: Services, user: str) -> str | None:
    """A Slack id, email or external id -> the user_key it is known under, or None."""
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
    return {
        "user": user,
        "slack_user_id": user_key if SLACK_USER_ID.match(user_key) else None,
        "period": status.period,
        "limit_usd": json_money(status.limit_usd),
        "spent_usd": json_money(status.spent_usd),
        "remaining_usd": json_money(status.remaining_usd),
        "allowed": status.allowed,
        "pending_request": request_summary(pending) if pending else None,
    }
