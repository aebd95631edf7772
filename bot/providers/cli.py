"""`tokenbot sources status|sync [--source S] [--since D]` and `tokenbot reconcile [--month M]`.

`bot/cli.py` adds these parsers and hands the parsed arguments here; the heavy modules load only
when a command runs."""

from __future__ import annotations

import argparse
from datetime import date


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date like 2026-11-01: {value!r}") from None


def _month(value: str) -> str:
    try:
        date.fromisoformat(value + "-01")
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a month like 2026-11: {value!r}") from None
    return value


def add_parsers(sub) -> None:
    sources = sub.add_parser("sources", help="provider pulls (OpenAI, Anthropic Admin APIs): status, sync now")
    verbs = sources.add_subparsers(dest="sources_command", required=True)
    verbs.add_parser("status", help="each source: last poll, cursor, lag, errors; overlap and enforcer lines")
    sync = verbs.add_parser("sync", help="pull now")
    sync.add_argument("--source", choices=("openai", "anthropic"), help="only this source")
    sync.add_argument("--since", type=_day, help="read again from this UTC day (YYYY-MM-DD)")
    rec = sub.add_parser("reconcile", help="the ledger against the providers' bills, per provider, day and project")
    rec.add_argument("--month", type=_month, help="YYYY-MM (default: this month, UTC)")


async def run(settings, args) -> int:
    from bot.providers.commands import reconcile_cli, status_text, sync_cli
    from bot.wiring import build_services

    services = build_services(settings)
    try:
        if args.command == "reconcile":
            print(await reconcile_cli(services, args.month))
            return 0
        if args.sources_command == "status":
            print(await status_text(services))
            return 0
        code, report = await sync_cli(services, args.source, args.since)
        print(report)
        return code
    finally:
        await services.close()
