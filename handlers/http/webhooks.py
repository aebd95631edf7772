"""POST /webhooks/usage and /webhooks/litellm: authenticate, read the body form, ingest.

Answers are always JSON (SPEC 5). The 200 is sent only after the batch is committed.

Everything that can be refused without the body is refused before it is read: a declared size
over the limit, a bearer token that is wrong, a stale signature timestamp, a content type. The
body is then read in chunks under a size limit and time limits; on /webhooks/litellm each chunk
goes straight into the streaming parser, so a 64 MiB batch is never held whole. A Standard
Webhooks signature is checked incrementally over the same chunks, and nothing is stored before
it matches.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import math
import time
from typing import Any

from aiohttp import web

from bot.services import Services
from bot.sources import BodyError
from bot.sources.litellm import LITELLM_MAX_BODY_BYTES, LiteLLMStream
from bot.sources.native import MAX_BODY_BYTES, NDJSON_TYPES, TooManyEvents, parse_body
from handlers.http.common import (
    BodyIncomplete,
    BodyTimeout,
    BodyTooLarge,
    body_chunks,
    error,
    has_header,
    header_text,
    refuse,
)

log = logging.getLogger(__name__)

SERVICES = web.AppKey("services", Services)
SIGNATURE_TOLERANCE_SECONDS = 5 * 60
RETRY_AFTER = {"Retry-After": "30"}

__all__ = ["SERVICES", "WebhookAuth", "error", "setup"]


class SignatureCheck:
    """Standard Webhooks verification, fed the body as it arrives: HMAC-SHA256 over
    `id.timestamp.body` with the key after `whsec_`; any of several `v1,` signatures may match."""

    def __init__(self, key: bytes, msg_id: str, timestamp: int, signatures: list[bytes]) -> None:
        self._mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode(), hashlib.sha256)
        self._signatures = signatures

    def update(self, chunk: bytes) -> None:
        self._mac.update(chunk)

    def verify(self) -> str | None:
        expected = self._mac.digest()
        if any(hmac.compare_digest(expected, given) for given in self._signatures):
            return None
        return "signature check failed: no matching signature"


class WebhookAuth:
    """Standard Webhooks signature or a static bearer token (for senders that cannot sign)."""

    def __init__(self, secret: str | None, token: str | None) -> None:
        self.key = base64.b64decode(secret.removeprefix("whsec_") + "==") if secret else None
        self.token = token

    @property
    def configured(self) -> bool:
        return self.key is not None or self.token is not None

    def start(self, request: web.Request) -> tuple[str | None, SignatureCheck | None]:
        """Check what the headers alone can tell: (the reason for a 401, or None) and, for a
        signed request, the check to feed the body through."""
        if has_header(request, "Authorization"):
            authorization = header_text(request, "Authorization")
            if authorization is None:
                return "the Authorization header is not valid text", None
            scheme, _, given = authorization.partition(" ")
            if scheme.lower() != "bearer" or not given.strip():
                return "Authorization must be 'Bearer <token>'", None
            if self.token is None:
                return "bearer tokens are not accepted here: USAGE_WEBHOOK_TOKEN is not set; sign the request", None
            if hmac.compare_digest(given.strip().encode(), self.token.encode()):
                return None, None
            return "wrong bearer token", None
        if not has_header(request, "webhook-signature"):
            if self.key is None:
                return "missing Authorization: Bearer <USAGE_WEBHOOK_TOKEN>", None
            return "missing webhook-id, webhook-timestamp and webhook-signature headers (Standard Webhooks)", None
        if self.key is None:
            return "signed requests are not accepted here: USAGE_WEBHOOK_SECRET is not set; use the bearer token", None
        msg_id = header_text(request, "webhook-id")
        stamp = header_text(request, "webhook-timestamp")
        signature = header_text(request, "webhook-signature")
        if not (msg_id and stamp and signature):
            return "signature check failed: webhook-id, webhook-timestamp and webhook-signature are all required", None
        try:
            seconds = float(stamp)
        except ValueError:
            seconds = math.nan
        if not math.isfinite(seconds):
            return "signature check failed: webhook-timestamp is not Unix seconds", None
        age = time.time() - seconds
        if age > SIGNATURE_TOLERANCE_SECONDS:
            return "signature check failed: message timestamp too old (over 5 minutes)", None
        if age < -SIGNATURE_TOLERANCE_SECONDS:
            return "signature check failed: message timestamp too new (over 5 minutes ahead)", None
        signatures = []
        for versioned in signature.split():
            version, _, encoded = versioned.partition(",")
            if version != "v1":
                continue
            try:
                signatures.append(base64.b64decode(encoded, validate=True))
            except (binascii.Error, ValueError):
                continue
        if not signatures:
            return "signature check failed: no v1 signature in webhook-signature", None
        return None, SignatureCheck(self.key, msg_id, math.floor(seconds), signatures)


AUTH = web.AppKey("webhook_auth", WebhookAuth)


class _NativeBody:
    """/webhooks/usage: up to 5 MiB, parsed once whole (orjson)."""

    limit = MAX_BODY_BYTES

    def __init__(self, ndjson: bool) -> None:
        self.ndjson = ndjson
        self.chunks: list[bytes] = []

    def feed(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    def finish(self) -> list[Any]:
        return parse_body(b"".join(self.chunks), ndjson=self.ndjson)


class _LiteLLMBody:
    """/webhooks/litellm: up to 64 MiB, streamed through the parser as it arrives."""

    limit = LITELLM_MAX_BODY_BYTES

    def __init__(self, services: Services) -> None:
        self.stream = LiteLLMStream(legacy_timezone=services.settings.litellm_legacy_timezone)

    def feed(self, chunk: bytes) -> None:
        self.stream.feed(chunk)

    def finish(self) -> list[Any]:
        return self.stream.close()


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):g} MiB"


def _make_handler(kind: str):
    async def handle(request: web.Request) -> web.Response:
        services: Services = request.app[SERVICES]
        settings = services.settings
        auth: WebhookAuth = request.app[AUTH]
        if not auth.configured:
            return error(
                503,
                "usage webhooks are not configured: set USAGE_WEBHOOK_SECRET (Standard Webhooks, whsec_...) "
                "or USAGE_WEBHOOK_TOKEN (bearer token)",
            )
        content_type = request.content_type.lower()
        ndjson = content_type in NDJSON_TYPES
        body = _LiteLLMBody(services) if kind == "litellm" else _NativeBody(ndjson)
        declared = request.content_length
        if declared is not None and declared > body.limit:
            return refuse(request, 413, f"body is {declared} bytes; at most {body.limit} ({_mib(body.limit)})",
                          close=True)
        reason, signature = auth.start(request)
        if reason is not None:
            return refuse(request, 401, reason, close=True)
        if content_type != "application/json" and not ndjson:
            accepted = "application/json or application/x-ndjson" if kind == "usage" else "application/json"
            return refuse(request, 415, f"Content-Type {content_type or '(none)'} is not accepted; send {accepted}",
                          close=True)

        size = 0
        body_error: BodyError | None = None
        idle = settings.body_timeout_seconds
        try:
            async for chunk in body_chunks(request, limit=body.limit, idle=idle, total=idle * 10):
                size += len(chunk)
                if signature is not None:
                    signature.update(chunk)
                if body_error is None:
                    try:
                        body.feed(chunk)
                    except TooManyEvents as exc:
                        return refuse(request, 413, str(exc), size=size, close=True)
                    except BodyError as exc:
                        if signature is None:
                            return refuse(request, 400, str(exc), size=size, close=True)
                        body_error = exc  # read on: an unsigned sender is told 401, not how its body broke
        except BodyTooLarge as exc:
            return refuse(request, 413, f"body is over {body.limit} bytes ({_mib(body.limit)})", size=exc.size,
                          close=True)
        except BodyTimeout:
            return refuse(request, 503, f"the body did not arrive in time (no data for {idle:g} s, or over "
                          f"{idle * 10:g} s in all); nothing was stored, send it again", size=size, close=True,
                          headers=RETRY_AFTER)
        except BodyIncomplete as exc:
            return refuse(request, 400, f"the body was cut off: {exc or 'connection lost'}", size=size, close=True)

        raw_events: list[Any] = []
        if body_error is None:
            try:
                raw_events = body.finish()
            except TooManyEvents as exc:
                body_error = exc
            except BodyError as exc:
                body_error = exc
        if signature is not None and (reason := signature.verify()) is not None:
            return refuse(request, 401, reason, size=size)
        if isinstance(body_error, TooManyEvents):
            return refuse(request, 413, str(body_error), size=size)
        if body_error is not None:
            return refuse(request, 400, str(body_error), size=size)

        try:
            async with asyncio.timeout(settings.ingest_timeout_seconds):
                result = await services.ingestor.ingest(raw_events, source="litellm" if kind == "litellm" else "native")
        except TimeoutError:
            log.error("%s webhook: storing %d events took over %g s; answered 503", kind, len(raw_events),
                      settings.ingest_timeout_seconds)
            return error(503, f"storage did not answer within {settings.ingest_timeout_seconds:g} s; send the batch "
                         "again (events already stored are counted once)", headers=RETRY_AFTER)
        status = 200 if result.accepted or result.duplicates or result.skipped else 422
        if result.rejected:
            first = result.rejected[0]
            log.warning("%s webhook from %s: %d accepted, %d rejected (%d bytes, %d events); first: #%d %s",
                        kind, request.remote or "?", result.accepted, len(result.rejected), size, len(raw_events),
                        first.index, first.error[:200])
        return web.json_response(result.as_dict(), status=status)

    return handle


def setup(app: web.Application, services: Services) -> None:
    app[AUTH] = WebhookAuth(services.settings.usage_webhook_secret, services.settings.usage_webhook_token)
    app.router.add_post("/webhooks/usage", _make_handler("usage"))
    app.router.add_post("/webhooks/litellm", _make_handler("litellm"))
