"""Builds the one aiohttp application: Bolt at /slack/events, webhooks, API, health.

This is the composition root, the one module in bot/ that imports handlers/: it wires
the doors to the rules. We build the aiohttp Application ourselves rather than use
`AsyncApp.start()` (routes added to Bolt's own web app can 404, bolt-python #801).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from sqlalchemy.exc import DBAPIError, OperationalError

from bot.services import Services
from handlers.http import api, metrics, webhooks
from handlers.http.webhooks import SERVICES

log = logging.getLogger(__name__)

BOLT = web.AppKey("bolt", AsyncApp)
Hook = Callable[[Services], Awaitable[None]]


def build_bolt_app(services: Services) -> AsyncApp:
    settings = services.settings
    bolt = AsyncApp(
        client=services.slack,
        signing_secret=settings.slack_signing_secret or "unset",
        process_before_response=False,
    )
    from handlers.slack import register

    register(bolt, services)
    return bolt


@web.middleware
async def json_errors(request: web.Request, handler):
    """Bad input and failures answer JSON; the process keeps running."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json" or exc.status < 400:
            raise
        return web.json_response({"error": exc.reason}, status=exc.status)
    except (TimeoutError, OperationalError, DBAPIError, sqlite3.Error, ConnectionError, OSError):
        log.exception("database or network failure on %s %s", request.method, request.path)
        return web.json_response({"error": "storage unavailable; nothing was stored, retry later"}, status=503)
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return web.json_response({"error": "internal error; nothing was stored, retry later"}, status=500)


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

        async def slack_events(request: web.Request) -> web.Response:
            bolt_request = await to_bolt_request(request)
            return await to_aiohttp_response(await bolt.async_dispatch(bolt_request))

        app.router.add_post("/slack/events", slack_events)
    webhooks.setup(app, services)
    api.setup(app)
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
