"""Fake OpenAI and Anthropic Admin APIs for the tests (an aiohttp server on a real port).

The server is bot/providers/fake_admin.py (the demo uses it too); these helpers fill it with
buckets whose prices are known, so a test can say what the ledger and the bill must hold.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from bot.providers.fake_admin import ANTHROPIC_KEY, OPENAI_KEY, FakeAdminAPIs, claude_code_row, hour
from bot.providers.settings import SourceConfig, SourcesConfig

__all__ = [
    "ANTHROPIC_KEY",
    "OPENAI_KEY",
    "FakeAdminAPIs",
    "claude_code_row",
    "completion",
    "hour",
    "message",
    "sources_for",
    "this_hour",
]


def this_hour(hours_ago: int = 0) -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours_ago)


def completion(*, user: str | None = "user-alice", key: str = "key_alice", project: str = "proj_app",
               model: str = "gpt-4o-2024-08-06", input_tokens: int = 1_000_000, cached: int = 200_000,
               output: int = 100_000, batch: bool = False) -> dict:
    """gpt-4o: $2.50 input, $1.25 cached, $10 output per million: the defaults cost $3.25."""
    return {"object": "organization.usage.completions.result", "input_tokens": input_tokens,
            "input_cached_tokens": cached, "output_tokens": output, "num_model_requests": 10,
            "project_id": project, "user_id": user, "api_key_id": key, "model": model, "batch": batch}


def message(*, key: str = "apikey_bob", workspace: str | None = "wrkspc_eng", model: str = "claude-sonnet-4-5",
            uncached: int = 1_000_000, read: int = 1_000_000, cw5m: int = 1_000_000, cw1h: int = 1_000_000,
            output: int = 100_000) -> dict:
    """claude-sonnet-4-5 ($3 input, $0.30 cache read, $15 output): the defaults cost
    3 + 0.30 + 3.75 (5m writes, 1.25x) + 6 (1h writes, 2x) + 1.5 = $14.55."""
    return {"api_key_id": key, "workspace_id": workspace, "model": model, "service_tier": "standard",
            "context_window": "0-200k", "uncached_input_tokens": uncached, "cache_read_input_tokens": read,
            "cache_creation": {"ephemeral_5m_input_tokens": cw5m, "ephemeral_1h_input_tokens": cw1h},
            "output_tokens": output, "server_tool_use": {"web_search_requests": 0}}


def sources_for(fake: FakeAdminAPIs, *, openai_count: str = "all", anthropic_count: str = "all",
                openai_key: str | None = OPENAI_KEY, anthropic_key: str | None = ANTHROPIC_KEY,
                tolerance: str = "1", show_output: bool = False, backfill_days: int = 2) -> SourcesConfig:
    return SourcesConfig(
        openai=SourceConfig("openai", admin_key=openai_key, base_url=fake.openai_url, count=openai_count,
                            backfill_days=backfill_days),
        anthropic=SourceConfig("anthropic", admin_key=anthropic_key, base_url=fake.url, count=anthropic_count,
                               backfill_days=backfill_days),
        tolerance_pct=Decimal(tolerance), show_output=show_output)


def utc_today() -> date:
    return datetime.now(UTC).date()
