"""GET /healthz and GET /api/v1/limits/{user}."""

from __future__ import annotations

from aiohttp import web

from bot.limits import SlackUnavailable, limits_for
from handlers.http.common import api_refusal, error
from handlers.http.webhooks import SERVICES


async def healthz(request: web.Request) -> web.Response:
    if await request.app[SERVICES].db.ping():
        return web.json_response({"status": "ok"})
    return web.json_response({"status": "unavailable", "error": "database does not answer"}, status=503)


async def limits(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    if (refusal := api_refusal(request, services.settings.api_token)) is not None:
        return refusal
    user = request.match_info["user"]
    if len(user) > 320 or not user.isprintable():
        return error(400, "{user} must be a Slack user id, an email or an external id")
    try:
        answer = await limits_for(services, user)
    except SlackUnavailable:
        return error(503, f"{user} is not known yet and Slack could not be asked; try again shortly",
                     headers={"Retry-After": "30"})
    if answer is None:
        return error(404, f"unknown user: {user}")
    return web.json_response(answer)


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/v1/limits/{user}", limits)
