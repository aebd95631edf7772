"""GET /healthz and GET /api/v1/limits/{user}."""

from __future__ import annotations

import hmac

from aiohttp import web

from bot.limits import SlackUnavailable, limits_for
from handlers.http.common import error, header_text, refuse
from handlers.http.webhooks import SERVICES


async def healthz(request: web.Request) -> web.Response:
    if await request.app[SERVICES].db.ping():
        return web.json_response({"status": "ok"})
    return web.json_response({"status": "unavailable", "error": "database does not answer"}, status=503)


async def limits(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    token = services.settings.api_token
    if not token:
        return error(401, "the API is disabled: set TOKENBOT_API_TOKEN")
    scheme, _, given = (header_text(request, "Authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        return refuse(request, 401, "missing or wrong Authorization: Bearer <TOKENBOT_API_TOKEN>")
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
