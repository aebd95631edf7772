"""`tokenbot` command line: serve | demo | db upgrade | import | reprice | digest | enforce.

Each command builds its process with `bot.wiring.build_services`; the heavier modules are
imported by the command that needs them, so `tokenbot --help` and `db upgrade` start fast.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from bot.config import ConfigError, Settings, load_settings
from bot.logs import configure_logging


class CommandError(Exception):
    """A failure to report as one line on stderr."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tokenbot", description="AI spend awareness and approvals in Slack")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the bot: HTTP endpoints, Slack, the scheduler")
    demo = sub.add_parser("demo", help="fill a demo database with a synthetic organisation and show it as text")
    demo.add_argument("--database", default="tokenbot-demo.db", help="SQLite file for the demo (recreated)")
    demo.add_argument("--people", type=int, default=24)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--shots", type=Path, metavar="DIR",
                      help="also write every Slack surface as Block Kit JSON (and the charts as PNG) into DIR")
    db = sub.add_parser("db", help="database commands")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply migrations to $DATABASE_URL")
    imp = sub.add_parser("import", help="backfill usage events from a JSON Lines file (native format)")
    imp.add_argument("file", type=Path)
    dig = sub.add_parser("digest", help="build a digest now and post it (or print it with --dry-run)")
    dig.add_argument("--channel", help="only this channel's digest (a daily one with defaults if none is set up)")
    dig.add_argument("--date", type=_local_date, help="the day covered, YYYY-MM-DD (default: yesterday)")
    dig.add_argument("--dry-run", action="store_true", help="print the text and Block Kit JSON instead of posting")
    rep = sub.add_parser("reprice", help="price stored events again (unpriced ones, or --all)")
    rep.add_argument("--all", action="store_true", help="also re-price events already priced (not source-priced)")
    from bot.providers.cli import add_parsers as add_source_parsers

    add_source_parsers(sub)  # sources status|sync, reconcile (bot/providers/cli.py)
    enf = sub.add_parser("enforce", help="enforcers: status, or push what waits now")
    enf.add_argument("action", choices=("status", "push"))
    enf.add_argument("--all", dest="everyone", action="store_true", help="push: queue everyone first")
    exp = sub.add_parser("export", help="the chargeback export of a month: spend, tokens, calls per row")
    exp.add_argument("--month", required=True, help="the local month, YYYY-MM")
    exp.add_argument("--by", required=True, help="team | person | model | project")
    exp.add_argument("--format", default="csv", help="csv (default) | json")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)

    try:
        configure_logging(
            level=logging.DEBUG if args.verbose else logging.WARNING if args.command == "demo" else logging.INFO,
            log_format=os.environ.get("LOG_FORMAT"), verbose=args.verbose)
    except ValueError as exc:
        print(f"tokenbot: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command == "demo":
            from bot.demo import run_demo

            return run_demo(database=args.database, people=args.people, seed=args.seed, shots=args.shots)
        settings = load_settings()
        if args.command == "serve":
            return serve(settings)
        if args.command == "db":
            migrate(settings)
            print(f"database is up to date: {safe_url(settings.database_url)}")
            return 0
        if args.command == "import":
            if not args.file.is_file():
                raise CommandError(f"import: no such file: {args.file}")
            migrate(settings)
            return asyncio.run(import_file(settings, args.file))
        if args.command == "digest":
            migrate(settings)
            return asyncio.run(digest(settings, channel=args.channel, day=args.date, dry_run=args.dry_run))
        if args.command == "reprice":
            migrate(settings)
            return asyncio.run(reprice(settings, include_priced=args.all))
        if args.command in ("sources", "reconcile"):
            from bot.providers.cli import run as run_sources

            migrate(settings)
            return asyncio.run(run_sources(settings, args))
        if args.command == "enforce":
            from bot.enforce.cli import enforce_command

            migrate(settings)
            return asyncio.run(enforce_command(settings, args.action, everyone=args.everyone))
        if args.command == "export":
            from bot.teams.export_cli import export_command

            return export_command(settings, args.month, args.by, args.format, migrate)
    except (ConfigError, CommandError) as exc:
        print(f"tokenbot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.command}")
    return 2


def _local_date(value: str):
    from datetime import date

    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date like 2026-11-24: {value!r}") from None


def safe_url(url: str) -> str:
    """The database URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def migrate(settings: Settings) -> None:
    from storage.db import upgrade

    try:
        upgrade(settings.database_url)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CommandError(f"DATABASE_URL: cannot migrate {safe_url(settings.database_url)}: {reason}") from None


def serve(settings: Settings) -> int:
    from aiohttp import web

    from bot.app import build_web_app
    from bot.maintenance import ensure_rollup_timezone, start_ledger
    from bot.wiring import build_services, start_background, stop_background

    settings.require_slack(http_mode=not settings.slack_app_token)
    migrate(settings)
    services = build_services(settings)
    hooks_start = [ensure_rollup_timezone, start_ledger, start_background]
    hooks_stop = [stop_background]
    if settings.slack_app_token:
        hooks_start.append(_start_socket_mode)
    app = build_web_app(services, on_start=hooks_start, on_stop=hooks_stop)
    logging.getLogger("tokenbot").info("serving on %s:%s", settings.host, settings.port)
    # No per-request access log by default: at thousands of webhook calls a second it costs more
    # than the ingest itself. `tokenbot -v serve` turns it on.
    access_log = logging.getLogger("aiohttp.access") if logging.getLogger().isEnabledFor(logging.DEBUG) else None
    # auto_decompress=False: compressed bodies are refused (bot.app), never inflated by aiohttp
    web.run_app(app, host=settings.host, port=settings.port, shutdown_timeout=10, print=None, access_log=access_log,
                auto_decompress=False)
    return 0


async def _start_socket_mode(services) -> None:
    """Socket Mode: Slack over a websocket; the HTTP endpoints are still served."""
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    from bot.app import build_bolt_app

    handler = AsyncSocketModeHandler(build_bolt_app(services), services.settings.slack_app_token)
    await handler.connect_async()


async def digest(settings: Settings, **options) -> int:
    """`tokenbot digest`: bot/digests/cli.py with this process's Services (no Slack for a dry run)."""
    from bot.digests.cli import digest_command
    from bot.wiring import build_services

    services = build_services(settings, with_slack=not options.get("dry_run"))
    try:
        return await digest_command(settings, services=services, **options)
    finally:
        await services.close()


async def import_file(settings: Settings, path: Path) -> int:
    import orjson

    from bot.wiring import build_services

    services = build_services(settings)
    totals = {"accepted": 0, "duplicates": 0, "rejected": 0}
    chunk: list = []
    line_numbers: list[int] = []

    async def flush() -> None:
        nonlocal chunk, line_numbers
        if not chunk:
            return
        result = await services.ingestor.ingest(chunk, source="import")
        totals["accepted"] += result.accepted
        totals["duplicates"] += result.duplicates
        totals["rejected"] += len(result.rejected)
        for rejection in result.rejected:
            print(f"{path}:{line_numbers[rejection.index]}: {rejection.error}", file=sys.stderr)
        chunk, line_numbers = [], []

    try:
        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    chunk.append(orjson.loads(line))
                except orjson.JSONDecodeError as exc:
                    chunk.append({"_invalid": f"not valid JSON: {exc}"})
                line_numbers.append(number)
                if len(chunk) >= 5000:
                    await flush()
            await flush()
    finally:
        await services.close()
    print(
        f"imported {totals['accepted']} events, {totals['duplicates']} duplicates skipped, "
        f"{totals['rejected']} rejected"
    )
    return 1 if totals["rejected"] and not totals["accepted"] and not totals["duplicates"] else 0


async def reprice(settings: Settings, *, include_priced: bool) -> int:
    from bot.maintenance import reprice as run_reprice
    from bot.wiring import build_services

    services = build_services(settings)
    try:
        result = await run_reprice(services, include_priced=include_priced)
    finally:
        await services.close()
    print(
        f"examined {result.examined} events, changed {result.changed}, "
        f"{result.still_unpriced} still without a price"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
