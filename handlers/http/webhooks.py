"""POST /webhooks/usage and /webhooks/litellm: authenticate, read the body form, ingest.

Answers are always JSON (SPEC 5). The 200 is sent only after the batch is committed.
"""

from __future__ import annotations

import hmac
import logging

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from bot.services import Services
from bot.sources import BodyError
from bot.sources.litellm import parse_litellm_body
from bot.sources.native import MAX_BODY_BYTES, MAX_EVENTS, NDJSON_TYPES, TooManyEvents, parse_body

log = logging.getLogger(__name__)

SERVICES = web.AppKey("services", Services)


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class WebhookAuth:
    """Standard Webhooks signature or a static bearer token (for senders that cannot sign)."""

    def __init__(self, secret: str | None, token: str | None) -> None:
        self.webhook = Webhook(secret) if secret else None
        self.token = token

    @property
    def configured(self) -> bool:
        return self.webhook is not None or self.token is not None

    def check(self, request: web.Request, body: bytes) -> str | None:
        """None when authentic, else the reason for a 401."""
        authorization = request.headers.get("Authorization", "")
        if authorization:
            scheme, _, given = authorization.partition(" ")
            if scheme.lower() != "bearer" or not given:
                return "Authorization must be 'Bearer <token>'"
            if self.token is None:
                return "bearer tokens are not accepted here: USAGE_WEBHOOK_TOKEN is not set; sign the request"
            if hmac.compare_digest(given.strip().encode(), self.token.encode()):
                return None
            return "wrong bearer token"
        if "webhook-signature" not in request.headers:
            if self.webhook is None:
                return "missing Authorization: Bearer <USAGE_WEBHOOK_TOKEN>"
            return "missing webhook-id, webhook-timestamp and webhook-signature headers (Standard Webhooks)"
        if self.webhook is None:
            return "signed requests are not accepted here: USAGE_WEBHOOK_SECRET is not set; use the bearer token"
        headers = {k.lower(): v for k, v in request.headers.items() if k.lower().startswith("webhook-")}
        try:
            self.webhook.verify(body, headers, json_parse=False)
        except WebhookVerificationError as exc:
            return f"signature check failed: {exc}"
        except (ValueError, UnicodeDecodeError):
            return "signature check failed: malformed webhook-signature header or body"
        return None


def _too_large(message: str) -> web.Response:
    # The rest of the body is never read: close the connection instead of draining it.
    response = error(413, message)
    response.force_close()
    return response


async def _read_body(request: web.Request) -> bytes | web.Response:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return _too_large(f"body is {request.content_length} bytes; at most {MAX_BODY_BYTES} (5 MiB)")
    chunks, size = [], 0
    while chunk := await request.content.read(65536):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return _too_large(f"body is over {MAX_BODY_BYTES} bytes (5 MiB)")
        chunks.append(chunk)
    return b"".join(chunks)


def _make_handler(kind: str):
    async def handle(request: web.Request) -> web.Response:
        services = request.app[SERVICES]
        auth: WebhookAuth = request.app[AUTH]
        if not auth.configured:
            return error(
                503,
                "usage webhooks are not configured: set USAGE_WEBHOOK_SECRET (Standard Webhooks, whsec_...) "
                "or USAGE_WEBHOOK_TOKEN (bearer token)",
            )
        body = await _read_body(request)
        if isinstance(body, web.Response):
            return body
        reason = auth.check(request, body)
        if reason is not None:
            return error(401, reason)

        content_type = request.content_type.lower()
        ndjson = content_type in NDJSON_TYPES
        if content_type != "application/json" and not ndjson:
            accepted = "application/json or application/x-ndjson" if kind == "usage" else "application/json"
            return error(415, f"Content-Type {content_type or '(none)'} is not accepted; send {accepted}")
        try:
            if kind == "litellm":
                raw_events = parse_litellm_body(body)
                if len(raw_events) > MAX_EVENTS:
                    raise TooManyEvents(f"{len(raw_events)} events in one request; at most {MAX_EVENTS}")
            else:
                raw_events = parse_body(body, ndjson=ndjson)
        except TooManyEvents as exc:
            return error(413, str(exc))
        except BodyError as exc:
            return error(400, str(exc))

        result = await services.ingestor.ingest(raw_events, source=kind if kind == "litellm" else "native")
        status = 200 if result.accepted or result.duplicates else 422
        if result.rejected:
            log.info("%s webhook: %d accepted, %d rejected", kind, result.accepted, len(result.rejected))
        return web.json_response(result.as_dict(), status=status)

    return handle


AUTH = web.AppKey("webhook_auth", WebhookAuth)


def setup(app: web.Application, services: Services) -> None:
    app[AUTH] = WebhookAuth(services.settings.usage_webhook_secret, services.settings.usage_webhook_token)
    app.router.add_post("/webhooks/usage", _make_handler("usage"))
    app.router.add_post("/webhooks/litellm", _make_handler("litellm"))
