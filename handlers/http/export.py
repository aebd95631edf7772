"""GET /api/v1/export?month=2026-11&by=team|person|model|project&format=json|csv (bearer)."""

from __future__ import annotations

from aiohttp import web

from bot.teams.export import ExportError, check, export_rows, to_csv
from handlers.http.common import api_refusal, error
from handlers.http.webhooks import SERVICES


async def export(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    if (refusal := api_refusal(request, services.settings.api_token)) is not None:
        return refusal
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
