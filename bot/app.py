"""Builds the one aiohttp application: Bolt at /slack/events, webhooks, API, health.

This is the composition root, the one module in bot/ that imports handlers/: it wires
the doors to the rules. What exists (jobs, `/tokens` words, Home sections, ingest hooks)
is listed in bot/wiring.py; `build_services` there builds the Services handed in here.
We build the aiohttp Application ourselves rather than use `AsyncApp.start()` (routes
added to Bolt's own web app can 404, bolt-python #801).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

import asyncpg
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from bot.services import Services
from handlers import slack
from handlers.http import api, export, metrics, webhooks
from handlers.http.common import BodyIncomplete, BodyTimeout, BodyTooLarge, header_text, read_body, refuse
from handlers.http.webhooks import SERVICES

log = logging.getLogger(__name__)


def _not_token_unused(record: logging.LogRecord) -> bool:
    return "will be unused" not in record.getMessage()

BOLT = web.AppKey("bolt", AsyncApp)
Hook = Callable[[Services], Awaitable[None]]


def build_bolt_app(services: Services) -> AsyncApp:
    settings = services.settings
    # Bolt reads SLACK_BOT_TOKEN itself and warns at every start that our client makes it unused
    logging.getLogger("slack_bolt.AsyncApp").addFilter(_not_token_unused)
    bolt = AsyncApp(
        client=services.slack,
        signing_secret=settings.slack_signing_secret or "unset",
        process_before_response=False,
    )
    slack.register(bolt, services)
    return bolt


SLACK_MAX_BODY_BYTES = 4 * 1024 * 1024  # Slack's largest payloads (view submissions) are far below this
IDENTITY_ENCODINGS = ("", "identity")


@web.middleware
async def json_errors(request: web.Request, handler):
    """Bad input and failures answer JSON; the process keeps running."""
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in IDENTITY_ENCODINGS and request.can_read_body:
        # Before authentication and before a byte of the body is read: a compressed body can
        # inflate a thousandfold (a 4 MB gzip bomb is 4 GiB), and no sender of ours compresses.
        return refuse(request, 415, f"Content-Encoding {encoding[:40]!r} is not accepted; send the body uncompressed",
                      close=True)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json" or exc.status < 400:
            raise
        return web.json_response({"error": exc.reason}, status=exc.status)
    except (TimeoutError, PoolTimeout, OperationalError, DBAPIError, sqlite3.Error, ConnectionError, OSError,
            asyncpg.PostgresError, asyncpg.InterfaceError):  # the ingest writer speaks asyncpg directly
        log.exception("database or network failure on %s %s", request.method, request.path)
        return web.json_response({"error": "storage unavailable; nothing was stored, retry later"}, status=503)
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return web.json_response({"error": "internal error; nothing was stored, retry later"}, status=500)


def _slack_events(bolt: AsyncApp, services: Services):
    """POST /slack/events: the signature is checked on the raw bytes before Bolt parses anything,
    so an unsigned, malformed body is a quiet 401 (Bolt would parse it first and fail with 500)."""
    verifier = SignatureVerifier(services.settings.slack_signing_secret or "unset")

    async def slack_events(request: web.Request) -> web.Response:
        idle = services.settings.body_timeout_seconds
        try:
            body = await read_body(request, limit=SLACK_MAX_BODY_BYTES, idle=idle, total=idle * 10)
        except BodyTooLarge as exc:
            return refuse(request, 413, f"body is over {SLACK_MAX_BODY_BYTES} bytes", size=exc.size, close=True)
        except BodyTimeout:
            return refuse(request, 503, "the body did not arrive in time", close=True)
        except BodyIncomplete:
            return refuse(request, 400, "the body was cut off", close=True)
        try:
            signed = verifier.is_valid(
                body=body,
                timestamp=header_text(request, "X-Slack-Request-Timestamp") or "",
                signature=header_text(request, "X-Slack-Signature") or "",
            )
        except (ValueError, TypeError, OverflowError):  # a timestamp that is not a number
            signed = False
        if not signed and not _ssl_check(body):
            return refuse(request, 401, "invalid request: bad or missing Slack signature", size=len(body))
        try:
            bolt_request = AsyncBoltRequest(
                body=body.decode("utf-8"), query=request.query_string, headers=request.headers  # type: ignore[arg-type]
            )
        except (UnicodeDecodeError, ValueError, TypeError) as exc:
            return refuse(request, 400, f"the body is not a Slack payload: {type(exc).__name__}", size=len(body))
        return await to_aiohttp_response(await bolt.async_dispatch(bolt_request))

    return slack_events


def _ssl_check(body: bytes) -> bool:
    """Slack's SSL check (form field ssl_check=1) is sent unsigned; Bolt answers it without acting."""
    if b"ssl_check" not in body or body.lstrip().startswith(b"{"):
        return False
    return dict(parse_qsl(body.decode("utf-8", "replace"))).get("ssl_check") == "1"


@web.middleware
async def request_metrics(request: web.Request, handler):
    """Latency per route (the route's pattern, never the raw path: bounded label values)."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        request.app[SERVICES].metrics.request_seconds.labels(request.method, route, str(status)).observe(
            time.perf_counter() - started)


def build_web_app(services: Services, *, bolt: AsyncApp | None = None, on_start: list[Hook] | None = None,
                  on_stop: list[Hook] | None = None, close_services: bool = True) -> web.Application:
    # Room above the 5 MiB webhook limit so our own check answers 413 with a JSON reason.
    app = web.Application(middlewares=[request_metrics, json_errors], client_max_size=6 * 1024 * 1024)
    app[SERVICES] = services
    if services.slack is not None:
        bolt = bolt or build_bolt_app(services)
    if bolt is not None:
        app[BOLT] = bolt

        app.router.add_post("/slack/events", _slack_events(bolt, services))
    webhooks.setup(app, services)
    api.setup(app)
    export.setup(app)
    metrics.setup(app)

    async def startup(_app: web.Application) -> None:
        for hook in on_start or ():
            await hook(services)

    async def cleanup(_app: web.Application) -> None:
        for hook in on_stop or ():
            try:
                await hook(services)
            except Exception:
                log.exception("shutdown hook failed")
        if close_services:
            await services.close()

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    return app
