"""`tokenbot digest` and the demo's digest: the same once-only path as the scheduler."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, time
from typing import Any

import orjson

from bot.config import ConfigError, Settings
from bot.digests.builder import build_digest
from bot.digests.delivery import deliver
from bot.digests.periods import Subscription, latest_complete, load_subscriptions, period_containing
from bot.services import Services
from bot.views.digest import digest_blocks, digest_text, fallback_text, period_title


async def digest_command(settings: Settings, *, services: Services, channel: str | None = None,
                         day: date | None = None, dry_run: bool = False, out: Callable[[str], Any] = print) -> int:
    """`tokenbot digest [--channel C] [--date D] [--dry-run]`: the same path as the scheduler.

    `--date` is the day covered (for a weekly digest: the Monday-Sunday week around it);
    without it, yesterday or the last complete week. Without `--channel`, every subscription;
    a `--channel` with no subscription gets a daily digest with the defaults. Posting goes
    through the once-only claim (an already posted digest is not posted again; a failed one
    is tried again); `--dry-run` prints the text and the Block Kit JSON and needs no Slack.
    The caller (bot/cli.py) builds `services` (without Slack for a dry run) and closes them.
    """
    if not dry_run and not settings.slack_bot_token:
        raise ConfigError("SLACK_BOT_TOKEN: required by `tokenbot digest` (or use --dry-run)")
    subs = await load_subscriptions(services)
    if channel is not None:
        subs = [s for s in subs if s.channel == channel] or [Subscription(channel, time(9), source="cli")]
    if not subs:
        if not dry_run:
            raise ConfigError("digests: none configured; add [[digests]] to the config, use "
                              "`/tokens admin digest`, or pass --channel C")
        subs = [Subscription("(preview)", time(9), source="cli")]
    failed = 0
    today = services.clock.today()
    for sub in subs:
        first, last = period_containing(sub.period, day) if day else latest_complete(sub.period, today)
        if dry_run:
            view = await build_digest(services, sub, first, last)
            payload = {"channel": sub.channel, "text": fallback_text(view), "blocks": digest_blocks(view)}
            out(digest_text(view))
            out(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
            continue
        result = await deliver(services, sub, first, last, retry_failed=True)
        out(result.describe())
        failed += result.status in ("failed", "retrying")
    return 1 if failed else 0


async def demo_digest_text(services: Services) -> str:
    """Yesterday's daily digest as text, for `tokenbot demo`."""
    first, last = latest_complete("day", services.clock.today())
    view = await build_digest(services, Subscription("C0DEMO", time(9), source="demo"), first, last)
    return f"--- the daily digest (#ai-spend, {period_title(view)}) ---\n{digest_text(view)}"
