"""Calling an Admin API politely: backoff on 429 and 5xx (honouring `retry-after`), a refused key
told apart from everything else, and nothing secret in an error message.

`with_backoff(call)` runs `call()` until it answers, a `KeyRefused` is raised (401/403: no retry,
the admins are told once, bot/providers/sync.py), or the attempts run out (`SourceUnavailable`).
`AnthropicAdmin` is the Anthropic Admin API over aiohttp (`x-api-key`, `anthropic-version`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import aiohttp

log = logging.getLogger(__name__)
ANTHROPIC_VERSION = "2023-06-01"
MAX_RETRY_AFTER = 120.0  # seconds: a longer retry-after ends this poll; the next one tries again


class KeyRefused(Exception):
    """The admin key was refused (revoked, wrong, or not an admin key)."""


class Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SourceUnavailable(Exception):
    """Still failing after the retries (or told to wait longer than a poll should)."""


def retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: use our own backoff


async def with_backoff(call: Callable[[], Awaitable[Any]], *, attempts: int = 5, base_seconds: float = 1.0,
                       sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, what: str = "request") -> Any:
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except Retryable as exc:
            if attempt == attempts:
                raise SourceUnavailable(f"{what}: {exc} (after {attempts} attempts)") from None
            wait = exc.retry_after if exc.retry_after is not None else base_seconds * 2 ** (attempt - 1)
            if wait > MAX_RETRY_AFTER:
                raise SourceUnavailable(f"{what}: {exc}; asked to wait {wait:.0f} s, trying at the next poll") from None
            wait += random.uniform(0, base_seconds / 4)  # several processes do not retry in step
            log.info("%s: %s; retrying in %.1f s (attempt %d of %d)", what, exc, wait, attempt, attempts)
            await sleep(wait)
    raise AssertionError("unreachable")


def loads_exact(body: bytes | str) -> Any:
    """JSON with every non-integer number as a Decimal (amounts stay exact)."""
    return json.loads(body, parse_float=Decimal)


def classify(status: int, body: str, retry_after: str | None, what: str) -> None:
    """Raise for a non-2xx answer: KeyRefused, Retryable, or SourceUnavailable (other 4xx)."""
    if 200 <= status < 300:
        return
    brief = " ".join(body.split())[:200]
    if status in (401, 403):
        raise KeyRefused(f"{what}: HTTP {status}: {brief}")
    if status == 429 or status >= 500:
        raise Retryable(f"HTTP {status}", retry_after_seconds(retry_after))
    raise SourceUnavailable(f"{what}: HTTP {status}: {brief}")


class AnthropicAdmin:
    """GET on the Anthropic Admin API, with backoff; answers parsed with exact decimals."""

    def __init__(self, base_url: str, key: str, *, session: aiohttp.ClientSession | None = None,
                 base_seconds: float = 1.0, sleep=asyncio.sleep, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self._session = session
        self._own = session is None
        self.base_seconds = base_seconds
        self.sleep = sleep
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def __aenter__(self) -> AnthropicAdmin:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self

    async def __aexit__(self, *exc) -> None:
        if self._own and self._session is not None:
            await self._session.close()
            self._session = None

    async def get(self, path: str, params: list[tuple[str, str]]) -> Any:
        assert self._session is not None, "use `async with AnthropicAdmin(...)`"
        headers = {"x-api-key": self.key, "anthropic-version": ANTHROPIC_VERSION,
                   "user-agent": "tokenbot (provider sources)"}

        async def once() -> Any:
            try:
                async with self._session.get(self.base_url + path, params=params, headers=headers) as resp:
                    body = await resp.text()
                    classify(resp.status, body, resp.headers.get("retry-after"), f"anthropic {path}")
                    return loads_exact(body)
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                raise Retryable(f"connection: {type(exc).__name__}") from None

        return await with_backoff(once, base_seconds=self.base_seconds, sleep=self.sleep, what=f"anthropic {path}")
