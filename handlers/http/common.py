"""What every HTTP door shares: JSON errors, refusals logged once, headers read safely, and
request bodies read with size and time limits.

A body is read chunk by chunk with an idle timeout (no byte for `idle` seconds) and an overall
deadline, so a sender stuck mid-body cannot hold a request open forever, and with a size limit
checked as bytes arrive, so nothing larger than the limit is ever buffered.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator

from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

log = logging.getLogger("handlers.http")

READ_CHUNK = 256 * 1024


def error(status: int, message: str, *, close: bool = False, headers: dict[str, str] | None = None) -> web.Response:
    response = web.json_response({"error": message}, status=status, headers=headers)
    if close:
        # The rest of the body is never read: close the connection instead of draining it.
        response.force_close()
    return response


def refuse(request: web.Request, status: int, message: str, *, size: int | None = None,
           close: bool = False, headers: dict[str, str] | None = None) -> web.Response:
    """A refusal: logged at WARNING with the reason, the sender's address and the sizes (SPEC 5)."""
    declared = request.content_length
    log.warning(
        "%s %s refused %d: %s (from %s; Content-Length %s; %s bytes read)",
        request.method, request.path, status, message, request.remote or "?",
        "none" if declared is None else declared, "none" if size is None else size,
    )
    return error(status, message, close=close, headers=headers)


def bearer_matches(request: web.Request, token: str) -> bool:
    """`Authorization: Bearer <token>`, compared in constant time."""
    scheme, _, given = (header_text(request, "Authorization") or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def api_refusal(request: web.Request, token: str | None) -> web.Response | None:
    """The /api/v1 door (TOKENBOT_API_TOKEN): a 401 answer, or None when the caller may pass."""
    if not token:
        return error(401, "the API is disabled: set TOKENBOT_API_TOKEN")
    if not bearer_matches(request, token):
        return refuse(request, 401, "missing or wrong Authorization: Bearer <TOKENBOT_API_TOKEN>")
    return None


def header_text(request: web.Request, name: str) -> str | None:
    """A header's value, or None when it is absent or not text (aiohttp keeps undecodable bytes
    as lone surrogates, which no comparison or encoding survives)."""
    value = request.headers.get(name)
    if value is None:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value


def has_header(request: web.Request, name: str) -> bool:
    return name in request.headers


class BodyTooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


class BodyTimeout(Exception):
    pass


class BodyIncomplete(Exception):
    """The sender went away or broke the framing mid-body: nobody is left to answer."""


async def body_chunks(request: web.Request, *, limit: int, idle: float, total: float) -> AsyncIterator[bytes]:
    """The request body, chunk by chunk, within `limit` bytes and the time limits."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + total
    size = 0
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise BodyTimeout
        try:
            async with asyncio.timeout(min(idle, remaining)):
                chunk = await request.content.read(READ_CHUNK)
        except TimeoutError:
            raise BodyTimeout from None
        except (ConnectionError, HttpProcessingError, ClientPayloadError, RequestPayloadError,
                asyncio.IncompleteReadError) as exc:
            raise BodyIncomplete(str(exc)) from None
        if not chunk:
            return
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(size)
        yield chunk


async def read_body(request: web.Request, *, limit: int, idle: float, total: float) -> bytes:
    chunks = [chunk async for chunk in body_chunks(request, limit=limit, idle=idle, total=total)]
    return b"".join(chunks)
