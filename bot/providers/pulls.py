"""Reading the providers' Admin APIs into plain records, page by page.

OpenAI goes through the `openai` SDK's admin client (`client.admin.organization.usage.completions`,
`.embeddings`, `.costs`, `client.admin.organization.users.list`), asked for its raw answer
(`with_raw_response`) so amounts are read as exact decimals rather than the SDK's floats. The SDK's
own retries are off (`max_retries=0`): the backoff is ours (bot/providers/admin_http.py), the same
for both providers. Anthropic goes over aiohttp (`AnthropicAdmin`).

A usage record: {"endpoint", "start" (aware UTC), "project", "user", "api_key", "model", "batch",
"service_tier", "input" (all input tokens: uncached, cache reads and cache writes), "cached" (cache
reads), "cw5m", "cw1h" (cache writes, Anthropic), "output", "requests", "extra" (figures kept as
they came)}.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from bot.providers.admin_http import (
    AnthropicAdmin,
    KeyRefused,
    Retryable,
    SourceUnavailable,
    classify,
    loads_exact,
    with_backoff,
)

OPENAI_USAGE = ("completions", "embeddings")
OPENAI_GROUPS = {"completions": ["project_id", "user_id", "api_key_id", "model", "batch"],
                 "embeddings": ["project_id", "user_id", "api_key_id", "model"]}
ANTHROPIC_GROUPS = ["api_key_id", "workspace_id", "model", "service_tier", "context_window"]
HOURLY_LIMIT = 168  # buckets per page at bucket_width=1h (both providers' maximum)


def _utc(value: Any) -> datetime:
    if isinstance(value, int | float | Decimal):
        return datetime.fromtimestamp(int(value), UTC)
    text = str(value).replace("Z", "+00:00")
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _int(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise ValueError(f"not a token count: {value!r}")
    number = int(Decimal(value))
    if number < 0:
        raise ValueError(f"a negative token count: {value!r}")
    return number


# =========================================================================== OpenAI (the SDK)

def openai_client(base_url: str, key: str):
    import openai

    return openai.AsyncOpenAI(admin_api_key=key, api_key="unused-admin-only", base_url=base_url, max_retries=0,
                              timeout=60.0)


async def _openai_call(call, what: str, *, base_seconds: float, sleep) -> Any:
    import openai

    async def once():
        try:
            raw = await call()
        except openai.APIStatusError as exc:
            classify(exc.status_code, exc.message or "", exc.response.headers.get("retry-after"), what)
            raise
        except openai.APIConnectionError as exc:
            raise Retryable(f"connection: {type(exc).__name__}") from None
        return loads_exact(raw.content)

    return await with_backoff(once, base_seconds=base_seconds, sleep=sleep, what=what)


async def openai_users(client, *, base_seconds: float = 1.0, sleep=None) -> list[tuple[str, str | None, str | None]]:
    """(user id, email, name) of the organization's users (`users.list`, paged by the SDK)."""
    import openai

    out = []
    try:
        async for user in client.admin.organization.users.list(limit=100):
            out.append((user.id, getattr(user, "email", None), getattr(user, "name", None)))
    except openai.APIStatusError as exc:
        if exc.status_code in (401, 403):
            raise KeyRefused(f"openai users: HTTP {exc.status_code}") from None
        raise SourceUnavailable(f"openai users: HTTP {exc.status_code} (the next poll tries again)") from None
    except openai.APIConnectionError as exc:
        raise SourceUnavailable(f"openai users: connection: {type(exc).__name__}") from None
    return out


async def openai_usage(client, endpoint: str, start: datetime, end: datetime, *, base_seconds: float = 1.0,
                       sleep=None) -> AsyncIterator[list[dict]]:
    """Hourly usage records of one endpoint over [start, end), a page at a time."""
    usage = client.admin.organization.usage.with_raw_response
    method = getattr(usage, endpoint)
    page = None
    while True:
        kwargs: dict[str, Any] = {"start_time": int(start.timestamp()), "end_time": int(end.timestamp()),
                                  "bucket_width": "1h", "group_by": OPENAI_GROUPS[endpoint], "limit": HOURLY_LIMIT}
        if page:
            kwargs["page"] = page
        answer = await _openai_call(lambda kw=kwargs: method(**kw), f"openai usage/{endpoint}",
                                    base_seconds=base_seconds, sleep=sleep or _sleep())
        records = []
        for bucket in answer.get("data") or []:
            started = _utc(bucket["start_time"])
            for r in bucket.get("results") or []:
                records.append(_openai_record(endpoint, started, r))
        yield records
        page = answer.get("next_page")
        if not answer.get("has_more") or not page:
            return


def _openai_record(endpoint: str, started: datetime, r: dict) -> dict:
    total = _int(r.get("input_tokens"))
    cached = min(_int(r.get("input_cached_tokens")), total)
    extra = {k: v for k, v in r.items() if k != "object" and v is not None and not isinstance(v, dict | list)}
    return {"endpoint": endpoint, "start": started, "project": r.get("project_id"), "user": r.get("user_id"),
            "api_key": r.get("api_key_id"), "model": r.get("model") or f"openai-{endpoint}",
            "batch": bool(r.get("batch")), "service_tier": r.get("service_tier"), "input": total, "cached": cached,
            "cw5m": 0, "cw1h": 0, "output": _int(r.get("output_tokens")), "requests": _int(r.get("num_model_requests")),
            "extra": _plain(extra)}


async def openai_costs(client, start: datetime, end: datetime, *, base_seconds: float = 1.0,
                       sleep=None) -> list[tuple[date, str, str, Decimal]]:
    """(UTC day, project, line item, USD) from `/organization/costs`, daily buckets."""
    usage = client.admin.organization.usage.with_raw_response
    out, page = [], None
    while True:
        kwargs: dict[str, Any] = {"start_time": int(start.timestamp()), "end_time": int(end.timestamp()),
                                  "bucket_width": "1d", "group_by": ["project_id", "line_item"], "limit": 180}
        if page:
            kwargs["page"] = page
        answer = await _openai_call(lambda kw=kwargs: usage.costs(**kw), "openai costs", base_seconds=base_seconds,
                                    sleep=sleep or _sleep())
        for bucket in answer.get("data") or []:
            day = _utc(bucket["start_time"]).date()
            for r in bucket.get("results") or []:
                amount = (r.get("amount") or {}).get("value")
                if amount is None:
                    continue
                out.append((day, r.get("project_id") or "", r.get("line_item") or "", Decimal(str(amount))))
        page = answer.get("next_page")
        if not answer.get("has_more") or not page:
            return out


# =========================================================================== Anthropic (aiohttp)

async def anthropic_usage(api: AnthropicAdmin, start: datetime, end: datetime) -> AsyncIterator[list[dict]]:
    page = None
    while True:
        params = [("starting_at", _rfc3339(start)), ("ending_at", _rfc3339(end)), ("bucket_width", "1h"),
                  ("limit", str(HOURLY_LIMIT)), *(("group_by[]", g) for g in ANTHROPIC_GROUPS)]
        if page:
            params.append(("page", page))
        answer = await api.get("/v1/organizations/usage_report/messages", params)
        records = []
        for bucket in answer.get("data") or []:
            started = _utc(bucket["starting_at"])
            for r in bucket.get("results") or []:
                records.append(_anthropic_record(started, r))
        yield records
        page = answer.get("next_page")
        if not answer.get("has_more") or not page:
            return


def _anthropic_record(started: datetime, r: dict) -> dict:
    creation = r.get("cache_creation") or {}
    cw5m = _int(creation.get("ephemeral_5m_input_tokens", r.get("cache_creation_5m_input_tokens")))
    cw1h = _int(creation.get("ephemeral_1h_input_tokens", r.get("cache_creation_1h_input_tokens")))
    uncached, read = _int(r.get("uncached_input_tokens")), _int(r.get("cache_read_input_tokens"))
    extra = {"uncached_input_tokens": uncached, "cache_read_input_tokens": read, "cache_creation_5m": cw5m,
             "cache_creation_1h": cw1h, "output_tokens": _int(r.get("output_tokens"))}
    for key in ("service_tier", "context_window", "workspace_id", "api_key_id"):
        if r.get(key) is not None:
            extra[key] = r[key]
    tools = r.get("server_tool_use") or {}
    if tools.get("web_search_requests"):
        extra["web_search_requests"] = _int(tools["web_search_requests"])
    return {"endpoint": "messages", "start": started, "project": r.get("workspace_id"), "user": None,
            "api_key": r.get("api_key_id"), "model": r.get("model") or "claude-unknown",
            "batch": r.get("service_tier") == "batch", "service_tier": r.get("service_tier"),
            "context_window": r.get("context_window"), "input": uncached + read + cw5m + cw1h, "cached": read,
            "cw5m": cw5m, "cw1h": cw1h,
            "output": _int(r.get("output_tokens")), "requests": 0, "extra": _plain(extra)}


async def anthropic_costs(api: AnthropicAdmin, start: datetime, end: datetime) -> list[tuple[date, str, str, Decimal]]:
    """(UTC day, workspace, line item, USD): `cost_report` amounts are decimal strings in cents."""
    out, page = [], None
    while True:
        params = [("starting_at", _rfc3339(start)), ("ending_at", _rfc3339(end)), ("bucket_width", "1d"),
                  ("group_by[]", "workspace_id"), ("group_by[]", "description")]
        if page:
            params.append(("page", page))
        answer = await api.get("/v1/organizations/cost_report", params)
        for bucket in answer.get("data") or []:
            day = _utc(bucket["starting_at"]).date()
            for r in bucket.get("results") or []:
                cents = Decimal(str(r.get("amount") or "0"))
                item = r.get("description") or r.get("cost_type") or r.get("model") or ""
                out.append((day, r.get("workspace_id") or "", item, cents / 100))
        page = answer.get("next_page")
        if not answer.get("has_more") or not page:
            return out


async def anthropic_claude_code(api: AnthropicAdmin, day: date) -> list[dict]:
    """One UTC day of the Claude Code report: one record per actor."""
    out, page = [], None
    while True:
        params = [("starting_at", day.isoformat()), ("limit", "1000")]
        if page:
            params.append(("page", page))
        answer = await api.get("/v1/organizations/usage_report/claude_code", params)
        for r in answer.get("data") or []:
            out.append(claude_code_record(day, r))
        page = answer.get("next_page")
        if not answer.get("has_more") or not page:
            return out


def claude_code_record(day: date, r: dict) -> dict:
    actor = r.get("actor") or {}
    name = actor.get("email_address") or actor.get("api_key_name") or "unknown-actor"
    core = r.get("core_metrics") or {}
    lines = core.get("lines_of_code") or {}
    tokens, cost, models = 0, Decimal(0), {}
    for m in r.get("model_breakdown") or []:
        t = m.get("tokens") or {}
        count = sum(_int(t.get(k)) for k in ("input", "output", "cache_read", "cache_creation"))
        cents = Decimal(str((m.get("estimated_cost") or {}).get("amount") or 0))
        tokens += count
        cost += cents / 100
        models[m.get("model") or "?"] = {"tokens": count, "estimated_cost_usd": str(cents / 100)}
    return {"day": day, "actor": name, "actor_type": actor.get("type"), "sessions": _int(core.get("num_sessions")),
            "lines_added": _int(lines.get("added")), "lines_removed": _int(lines.get("removed")),
            "commits": _int(core.get("commits_by_claude_code")),
            "pull_requests": _int(core.get("pull_requests_by_claude_code")), "tokens": tokens,
            "estimated_cost_usd": cost, "models": models}


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _plain(values: dict) -> dict:
    """JSON-safe figures (Decimals as strings)."""
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in values.items()}


def _sleep():
    import asyncio

    return asyncio.sleep


__all__ = ["KeyRefused", "SourceUnavailable", "openai_client"]
