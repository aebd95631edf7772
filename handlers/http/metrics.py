"""GET /metrics: the Prometheus text format (bot/metrics.py); bearer-protected by METRICS_TOKEN."""

from __future__ import annotations

import hmac

from aiohttp import web

from handlers.http.webhooks import SERVICES


async def metrics(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    token = services.settings.metrics_token
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            return web.json_response({"error": "Authorization: Bearer <METRICS_TOKEN> required"}, status=401)
    body, content_type = await services.metrics.render(services)
    return web.Response(body=body, headers={"Content-Type": content_type})


def setup(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
