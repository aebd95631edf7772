"""`tokenbot export --month 2026-11 --by team|person|model|project [--format csv|json]` (stdout)."""

from __future__ import annotations

import asyncio
import sys

import orjson

from bot.config import Settings
from bot.teams.export import ExportError, check, export_rows, to_csv
from storage.db import Database


def export_command(settings: Settings, month: str, by: str, fmt: str, migrate) -> int:
    try:
        month, by, fmt = check(month, by, fmt)
    except ExportError as exc:
        print(f"tokenbot export: {exc}", file=sys.stderr)
        return 2
    migrate(settings)
    rows = asyncio.run(_rows(settings, month, by))
    if fmt == "json":
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(to_csv(rows, by))
    return 0


async def _rows(settings: Settings, month: str, by: str):
    db = Database(settings.database_url)
    try:
        return await export_rows(db, month, by)
    finally:
        await db.dispose()
