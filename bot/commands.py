"""`/tokens <text>`: parsing, the rules of each command, and who may do what.

The Slack handler passes the caller's id and the command text; `run_command` answers with
a view model (CardView, LeaderboardView, BudgetView, HelpView, Notice) or a ready Message,
which the handler renders with bot/views and sends.

The words of other features ("request", "admin audit") are `Services.tokens_words`, listed
by the composition root (bot/wiring.py): the key is one word, or "admin <word>"; the
function gets an `Invocation` and returns any answer above.

Decisions:
- Words are case-insensitive; anything not understood gets the help, naming the word.
- Mentions arrive escaped (`should_escape: true` in manifest.yml): `<@U123|name>` or
  `<@U123>`; bare Slack user ids are accepted too. A typed `@name` is refused with a hint.
  A mentioned id Slack does not know (users.info) is refused politely.
- Amounts are US dollars as bot/amounts.py reads them, from 0 to 1,000,000.
- `admin digest #channel HH:MM` stores a daily digest (period "day", top 10) in
  digest_subscriptions; one per channel and period, so a second command moves its time.
- Admin changes are written to the audit log (actor, action, subject, details).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from slack_sdk.errors import SlackApiError

from bot import card_builder, outbox
from bot.amounts import AmountError, parse_amount
from bot.budgets import budget_status, standing_budget
from bot.config import SLACK_CHANNEL_ID, SLACK_USER_ID, ConfigError, parse_hhmm
from bot.enforce import push as enforce_push
from bot.identities import is_slack_user_id
from bot.people import fetch_person, is_admin
from bot.services import Services
from bot.views.blocks import escape, mention
from bot.views.format import money
from bot.views.help import HelpView, Notice
from storage import audit_repo, queries

log = logging.getLogger(__name__)

_USER_MENTION = re.compile(r"^<@(?P<id>[UW][A-Z0-9]{2,})(?:\|[^>]*)?>$")
_CHANNEL_MENTION = re.compile(r"^<#(?P<id>[CG][A-Z0-9]{2,})(?:\|[^>]*)?>$")
_LINK = re.compile(r"^<(?P<target>[^|>]+)(?:\|(?P<label>[^>]*))?>$")
PERIOD_WORDS = {"today": "today", "day": "today", "week": "week", "7d": "week", "month": "month", "mtd": "month"}
ADMIN_WORDS = ("set-budget", "link", "approver", "digest")
TOP_USAGE = "Usage: `/tokens top [today|week|month]` (default: this month)."
ADMIN_HINT = "Admin commands: `set-budget`, `link`, `approver`, `digest`, `audit` (see below)."


class Refusal(Exception):
    """A clear, polite answer instead of doing something; the message is mrkdwn."""


# -- parsing --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Command:
    name: str  # me | top | budget | help | admin <word> | extra | unknown
    args: tuple[str, ...] = ()
    rest: str = ""  # the raw text after the command words (reasons keep their spaces)
    word: str | None = None  # the word not understood
    extra: str | None = None  # the key in Services.tokens_words
    hint: str | None = None  # a usage line shown above the help


@dataclass(frozen=True)
class Invocation:
    """What an extra command handler receives."""

    services: Services
    user_id: str
    text: str  # the text after the command words
    channel_id: str | None = None
    trigger_id: str | None = None


Answer = Any  # a view model of bot/views or a bot.views.help.Message
Word = Callable[[Invocation], Awaitable[Answer]]


def _split(text: str, count: int) -> tuple[list[str], str]:
    """The first `count` words, and the rest of the text as typed."""
    parts = text.strip().split(None, count)
    if len(parts) > count:
        return parts[:count], parts[count]
    return parts, ""


def parse(text: str, words: Collection[str] = ()) -> Command:
    """The command in `text`; `words` are the feature words (Services.tokens_words) besides the built-in ones."""
    text = (text or "").strip()
    typed = text.split()
    if not typed:
        return Command("me")
    first = typed[0].lower()
    two = " ".join(w.lower() for w in typed[:2])
    if len(typed) >= 2 and two in words:
        _, rest = _split(text, 2)
        return Command("extra", tuple(rest.split()), rest, extra=two)
    if first in words:
        _, rest = _split(text, 1)
        return Command("extra", tuple(rest.split()), rest, extra=first)
    _, rest = _split(text, 1)
    args = tuple(typed[1:])
    if first == "me":
        return Command("me") if not args else Command("unknown", args, rest, word=args[0])
    if first in ("help", "?"):
        return Command("help")
    if first in ("top", "leaderboard"):
        if not args:
            return Command("top", ("month",))
        if len(args) == 1 and args[0].lower() in PERIOD_WORDS:
            return Command("top", (PERIOD_WORDS[args[0].lower()],))
        odd = next((a for a in args if a.lower() not in PERIOD_WORDS), args[-1])
        return Command("unknown", args, rest, word=odd, hint=TOP_USAGE)
    if first == "budget":
        return Command("budget", args, rest)
    if first == "admin":
        if not args:
            return Command("help", hint=ADMIN_HINT)
        sub = args[0].lower()
        if sub in ADMIN_WORDS:
            _, sub_rest = _split(text, 2)
            return Command(f"admin {sub}", args[1:], sub_rest)
        return Command("unknown", args, rest, word=f"admin {args[0]}", hint=ADMIN_HINT)
    return Command("unknown", args, rest, word=typed[0])


def parse_user(token: str) -> str | None:
    """`<@U123|name>`, `<@U123>` or a bare `U123` -> "U123"; anything else None."""
    match = _USER_MENTION.match(token.strip())
    if match:
        return match["id"]
    if SLACK_USER_ID.match(token.strip()):
        return token.strip()
    return None


def parse_channel(token: str) -> str | None:
    """`<#C123|name>`, `<#C123>` or a bare `C123` -> "C123"; anything else None."""
    match = _CHANNEL_MENTION.match(token.strip())
    if match:
        return match["id"]
    token = token.strip()
    if SLACK_CHANNEL_ID.match(token) and token[0] in "CG":
        return token
    return None


def parse_external_id(token: str) -> str:
    """An external id as typed; Slack's auto-links (`<mailto:a@b.c|a@b.c>`) are unwrapped."""
    token = token.strip()
    match = _LINK.match(token)
    if match and not token.startswith(("<@", "<#", "<!")):
        target = match["target"]
        return target.removeprefix("mailto:") if target.startswith("mailto:") else (match["label"] or target)
    return token


def _mention_hint(token: str, what: str = "a person") -> str:
    return (f"`{escape(token[:40])}` is not a mention of {what}: pick them from Slack's @ autocomplete, "
            "like `/tokens budget @ada`.")


async def known_user(services: Services, token: str) -> str:
    """A mention that Slack knows -> the user id; else a polite Refusal."""
    user_id = parse_user(token)
    if user_id is None:
        raise Refusal(_mention_hint(token))
    person = await fetch_person(services, user_id)
    if person is None:
        raise Refusal(f"I can't find {mention(user_id)} in this workspace. Mention someone who is a member.")
    return user_id


# -- running --------------------------------------------------------------------------------------

async def run_command(services: Services, user_id: str, text: str, *, channel_id: str | None = None,
                      trigger_id: str | None = None) -> Answer:
    command = parse(text, services.tokens_words)
    try:
        if command.name == "me":
            await card_builder.link_caller_email(services, user_id)
            return await card_builder.build_card(services, user_id)
        if command.name == "top":
            return await card_builder.build_leaderboard(services, user_id, command.args[0])
        if command.name == "budget":
            return await budget_command(services, user_id, command.args)
        if command.name == "help":
            return HelpView(hint=command.hint)
        if command.name == "extra":
            handler = services.tokens_words[command.extra]
            return await handler(Invocation(services, user_id, command.rest, channel_id, trigger_id))
        if command.name.startswith("admin "):
            return await admin_command(services, user_id, command)
        return HelpView(unknown=command.word, hint=command.hint)
    except Refusal as refusal:
        return Notice(str(refusal), ok=False)


async def may_see_budget(services: Services, viewer: str, target: str) -> bool:
    """Anyone sees their own; approvers their requesters' (bot/approvers.py: config, admin
    assignment, the Manager profile field, default approvers); admins anyone's."""
    if viewer == target:
        return True
    if await is_admin(services, viewer):
        return True
    return viewer in (await services.approvers.resolve(target)).users


async def budget_command(services: Services, viewer: str, args: tuple[str, ...]) -> Answer:
    if len(args) > 1:
        raise Refusal("Use `/tokens budget` for yours, or `/tokens budget @person` for one person.")
    target = viewer if not args or args[0].lower() == "me" else await known_user(services, args[0])
    if not await may_see_budget(services, viewer, target):
        raise Refusal(f"You can see your own budget, and the budgets of people you approve for; "
                      f"not {mention(target)}'s.")
    if target == viewer:
        await card_builder.link_caller_email(services, viewer)
    return await card_builder.build_budget(services, target, viewer=viewer)


# -- admin ------------------------------------------------------------------------------------------

ADMIN_USAGE = {
    "admin set-budget": "`/tokens admin set-budget @person &lt;amount&gt;`, e.g. `/tokens admin set-budget @ada 500`",
    "admin link": "`/tokens admin link &lt;external-id&gt; @person`, e.g. `/tokens admin link key_live_abc @ada`",
    "admin approver": "`/tokens admin approver @person @approver`",
    "admin digest": "`/tokens admin digest #channel HH:MM`, e.g. `/tokens admin digest #ai-spend 09:00`",
}


async def admin_command(services: Services, actor: str, command: Command) -> Answer:
    if not await is_admin(services, actor):
        raise Refusal("Only tokenbot admins can do that. Admins are listed in the config (`admins`) "
                      "or are Slack workspace admins.")
    args = command.args
    usage = "Usage: " + ADMIN_USAGE[command.name]
    if command.name == "admin set-budget":
        if len(args) != 2:
            raise Refusal(usage)
        user_id = await known_user(services, args[0])
        try:
            amount = parse_amount(args[1])
        except AmountError as exc:
            raise Refusal(f"{exc} {usage}") from None
        return await set_budget(services, actor, user_id, amount)
    if command.name == "admin link":
        if len(args) != 2:
            raise Refusal(usage)
        external_id = parse_external_id(args[0])
        user_id = await known_user(services, args[1])
        return await link_identity(services, actor, external_id, user_id)
    if command.name == "admin approver":
        if len(args) != 2:
            raise Refusal(usage)
        requester = await known_user(services, args[0])
        approver = await known_user(services, args[1])
        return await set_approver(services, actor, requester, approver)
    if command.name == "admin digest":
        if len(args) != 2:
            raise Refusal(usage)
        channel = parse_channel(args[0])
        if channel is None:
            raise Refusal(f"`{escape(args[0][:40])}` is not a channel: pick it from Slack's # autocomplete. {usage}")
        try:
            at = parse_hhmm(args[1], key="time")
        except ConfigError:
            raise Refusal(f"`{escape(args[1][:20])}` is not a time: use 24-hour HH:MM like `09:00`. {usage}") from None
        return await set_digest(services, actor, channel, f"{at:%H:%M}")
    raise Refusal(usage)  # pragma: no cover - parse() only yields the words above


async def set_budget(services: Services, actor: str, user_id: str, amount: Decimal) -> Notice:
    """A new standing budget, audited, and pushed to limit enforcers like an approval is."""
    now = services.clock.now()
    async with services.db.write() as session:
        before = await standing_budget(session, services.settings, user_id)
        limit_before = await budget_status(session, services.settings, services.clock, user_id)
        await queries.upsert_budget(session, user_id, amount, actor, now)
        await session.flush()
        limit_after = await budget_status(session, services.settings, services.clock, user_id)
        audit = audit_repo.add_audit(session, at=now, actor=actor, action="set_budget", subject=user_id,
                                         monthly_usd=str(amount), previous_usd=str(before))
        await session.flush()
        await enforce_push.mark_person(services, session, user_id)  # SPEC 11: enforcers follow
        if services.settings.limits_webhook_url:
            outbox.enqueue(session, msg_id=f"limit-changed-audit-{audit.id}", kind="limit.changed", now=now,
                           payload=outbox.limit_changed_payload(
                               user=user_id, period=limit_after.period, limit=limit_after.limit_usd,
                               previous=limit_before.limit_usd, scope="standing", request_id=None,
                               decided_by=actor, now=now))
    if services.settings.limits_webhook_url:
        outbox.kick(services)
    enforce_push.kick(services)
    return Notice(f"{mention(user_id)}'s monthly budget is now *{money(amount)}* (was {money(before)}). "
                  "This month's approved raises still apply on top.")


async def link_identity(services: Services, actor: str, external_id: str, user_id: str) -> Notice:
    if not external_id or len(external_id) > 320:
        raise Refusal("The external id must be 1 to 320 characters, like `key_live_abc` or `ada@acme.com`.")
    if is_slack_user_id(external_id):
        raise Refusal(f"`{escape(external_id)}` is a Slack user id; spend sent under it already belongs to them.")
    if external_id in services.settings.identities:
        raise Refusal(f"`{escape(external_id)}` is linked in the config file (`[identities]`); change it there.")
    async with services.db.session() as session:
        previous_owner = await queries.linked_to(session, external_id)
        unlinked = await queries.months_of(session, external_id)
    await services.identities.link(external_id, user_id, source="admin", set_by=actor)
    moved_cost = sum((t.cost_usd for _, t in unlinked), Decimal(0))
    moved_events = sum(t.events for _, t in unlinked)
    async with services.db.write() as session:
        audit_repo.add_audit(session, at=services.clock.now(), actor=actor, action="link_identity",
                                 subject=user_id, external_id=external_id, previous=previous_owner,
                                 moved_usd=str(moved_cost), moved_events=moved_events)
    text = f"`{escape(external_id)}` now belongs to {mention(user_id)}: its past and future spend count as theirs."
    if previous_owner and previous_owner != user_id:
        text += f" It was linked to {mention(previous_owner)}, whose totals no longer include it."
    if moved_events:
        text += f" Moved {money(moved_cost)} of unlinked spend ({moved_events:,} events)."
    return Notice(text)


async def set_approver(services: Services, actor: str, requester: str, approver: str) -> Notice:
    if requester == approver:
        raise Refusal("Nobody approves their own requests: pick someone else as the approver.")
    now = services.clock.now()
    async with services.db.write() as session:
        await queries.upsert_approver(session, requester, approver, actor, now)
        audit_repo.add_audit(session, at=now, actor=actor, action="set_approver", subject=requester,
                                 approver=approver)
    text = f"{mention(approver)} now approves {mention(requester)}'s budget requests."
    if requester in services.settings.approvers:
        text += (f" Note: the config file names {mention(services.settings.approvers[requester])} "
                 "(`[approvals.approver]`), which comes first.")
    return Notice(text)


async def set_digest(services: Services, actor: str, channel: str, local_time: str) -> Notice:
    if services.slack is not None:
        try:
            await services.slack.conversations_info(channel=channel)
        except SlackApiError as exc:
            if exc.response.get("error") == "channel_not_found":
                raise Refusal(f"I can't see <#{channel}>: invite me to it (`/invite @tokenbot`) "
                              "or pick another channel.") from None
            log.warning("conversations.info failed for %s: %s; storing the digest anyway", channel, exc)
    now = services.clock.now()
    async with services.db.write() as session:
        await queries.upsert_digest_subscription(
            session, channel=channel, local_time=local_time, period="day", top=10, created_by=actor, at=now
        )
        audit_repo.add_audit(session, at=now, actor=actor, action="set_digest", subject=None, channel=channel,
                                 local_time=local_time, period="day")
    zone = services.settings.timezone.key
    place = f"{zone.rsplit('/', 1)[-1].replace('_', ' ')} time" if "/" in zone else zone
    return Notice(f"A daily digest will be posted in <#{channel}> at {local_time} {place}, covering the day before.")
