"""OpenAI projects' hard spend limits (`admin.organization.projects.spend_limit`, openai SDK).

A mapped project's monthly budget becomes its hard limit, in cents, interval "month" (OpenAI
counts the project's own spend per calendar month and answers 429 past it). A pause sets the
smallest limit the API takes, 1 cent (`threshold_amount` minimum 1): 0 is refused, and deleting
the limit would lift it instead.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import Any

from bot.enforce.litellm import EnforcerError

PAUSE_CENTS = 1


def cents(value: Decimal) -> int:
    return max(int((value * 100).to_integral_value(rounding=ROUND_DOWN)), PAUSE_CENTS)


async def push_project(client: Any, project: str, *, limit: Decimal | None, paused: bool) -> dict[str, Any]:
    """Set the project's hard limit; `client` is an `openai.AsyncOpenAI` with the admin key."""
    import openai

    if limit is None and not paused:
        return {"project": project, "skipped": "no budget for it (its team has no monthly_usd)"}
    amount = PAUSE_CENTS if paused else cents(limit)
    try:
        await client.admin.organization.projects.spend_limit.update(
            project, currency="USD", interval="month", threshold_amount=amount)
    except openai.APIError as exc:
        raise EnforcerError(f"OpenAI spend_limit {project}: {type(exc).__name__}: {exc}"[:300]) from exc
    return {"project": project, "threshold_amount": amount}


def openai_client(settings) -> Any:
    import openai

    return openai.AsyncOpenAI(api_key="unused", admin_api_key=settings.openai_admin_key,
                              base_url=settings.openai_base_url or None, max_retries=0, timeout=10)
