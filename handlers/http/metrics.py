"""GET /metrics: the Prometheus text format (bot/metrics.py); bearer-protected by METRICS_TOKEN.
GET /livez: the process answers, without touching the database (a liveness probe; /healthz is
readiness). It is also the benchmarks' HTTP floor: the cheapest request the server can answer."""

from __future__ import annotations

from aiohttp import web

from handlers.http.common import bearer_matches
from handlers.http.webhooks import SERVICES


async def metrics(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    token = services.settings.metrics_token
    if token:
        if not bearer_matches(request, token):
            return web.json_response({"error": "Authorization: Bearer <METRICS_TOKEN> required"}, status=401)
    body, content_type = await services.metrics.render(services)
    return web.Response(body=body, headers={"Content-Type": content_type})


_LIVE = b'{"status":"ok"}'


async def livez(_request: web.Request) -> web.Response:
    return web.Response(body=_LIVE, content_type="application/json")


def setup(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/livez", livez)
