"""GET /api/v1/export?month=2026-11&by=team|person|model|project&format=json|csv (bearer)."""

from __future__ import annotations

import hmac

from aiohttp import web

from bot.teams.export import ExportError, check, export_rows, to_csv
from handlers.http.common import error, header_text, refuse
from handlers.http.webhooks import SERVICES


async def export(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    token = services.settings.api_token
    if not token:
        return error(401, "the API is disabled: set TOKENBOT_API_TOKEN")
    scheme, _, given = (header_text(request, "Authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        return refuse(request, 401, "missing or wrong Authorization: Bearer <TOKENBOT_API_TOKEN>")
    query = request.query
    try:
        month, by, fmt = check(query.get("month"), query.get("by"), query.get("format") or "json")
    except ExportError as exc:
        return error(400, str(exc))
    rows = await export_rows(services.db, month, by)
    if fmt == "csv":
        return web.Response(text=to_csv(rows, by), content_type="text/csv")
    return web.json_response(rows)


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/export", export)
