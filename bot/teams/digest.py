"""Each team with a `channel` gets its own daily digest of its members, posted exactly once.

It covers the local day before, at TEAM_DIGEST_AT local time (a cron job and a sweep every
5 minutes, like the organisation's digests), and reuses their once-only claim: a
`digest_runs` row keyed (channel, "team", day) taken by INSERT, posted, then marked posted
(bot/digests/delivery.py), so several processes post it once. A permanent Slack error
(not_in_channel, channel_not_found, is_archived) marks it failed and tells the admins once.
"""

from __future__ import annotations

import logging
from datetime import time, timedelta

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from slack_sdk.errors import SlackApiError

from bot.clock import month_label
from bot.digests import delivery
from bot.digests.periods import Subscription
from bot.people import display_names
from bot.scheduler import JobSpec
from bot.services import Services
from bot.teams.builder import month_key, projected, team_limit
from bot.views.team_card import MemberLine
from bot.views.team_digest import TeamDigestView, team_digest_blocks, team_digest_fallback
from storage import teams_repo
from storage.queries import SLACK_USER_ID

log = logging.getLogger(__name__)
PERIOD = "team"  # digest_runs.period of team digests
TEAM_DIGEST_AT = time(9, 0)


async def build_team_digest(services: Services, team: str, day) -> TeamDigestView:
    settings = services.settings
    month = month_key(day)
    async with services.db.session() as session:
        today = (await teams_repo.team_costs_days(session, day, day)).get(team)
        before = (await teams_repo.team_costs_days(session, day - timedelta(days=1), day - timedelta(days=1))).get(team)
        mtd = (await teams_repo.team_costs_days(session, day.replace(day=1), day)).get(team)
        people = await teams_repo.team_breakdown(session, month, team, "person")
        limit = await team_limit(session, settings, team, month)
    privacy = settings.leaderboard
    ranked = [p for p in people if SLACK_USER_ID.match(p.key)]
    names = await display_names(services, [p.key for p in ranked]) if privacy == "names" else {}
    members = tuple(
        MemberLine(i, names.get(p.key) if names.get(p.key) not in (None, p.key) else None,
                   p.key if privacy == "names" else None, False, p.totals.cost_usd, p.totals.tokens)
        for i, p in enumerate(ranked, start=1))
    zero = teams_repo.Measures()
    mtd_cost = (mtd or zero).cost_usd
    return TeamDigestView(team=team, day=day, cost_usd=(today or zero).cost_usd,
                          previous_usd=(before or zero).cost_usd, calls=(today or zero).events,
                          month_label=month_label(month), month_usd=mtd_cost, budget_usd=limit,
                          projected_usd=projected(mtd_cost, day), members=members,
                          members_hidden=privacy == "off")


async def deliver_team(services: Services, team: str, day) -> delivery.Outcome:
    """Claim (channel, "team", day), build, post, mark posted: once, whatever the processes."""
    channel = services.settings.teams[team].channel
    sub = Subscription(channel, TEAM_DIGEST_AT, PERIOD, source="team")
    key = (channel, PERIOD, day)

    def outcome(status: str, detail: str = "", ts: str | None = None) -> delivery.Outcome:
        return delivery.Outcome(channel, PERIOD, day, status, detail, ts)

    if services.slack is None:
        return outcome("failed", "SLACK_BOT_TOKEN is not set")
    existing = await delivery.run_state(services, *key)
    if existing is not None and existing.status in ("posted", "failed"):
        return outcome("already-posted" if existing.status == "posted" else "failed", existing.last_error or "",
                       existing.message_ts)
    claimed = await delivery.claim(services, *key)
    if claimed is None:
        return outcome("busy")
    token, attempt = claimed
    try:
        view = await build_team_digest(services, team, day)
        response = await services.slack.chat_postMessage(
            channel=channel, text=team_digest_fallback(view), blocks=team_digest_blocks(view), unfurl_links=False,
            metadata={"event_type": "tokenbot_digest", "event_payload": {
                "channel": channel, "period": PERIOD, "period_start": day.isoformat(), "team": team}})
    except SlackApiError as exc:
        error = str(exc.response.get("error") or "slack_error")
        if error in delivery.PERMANENT_ERRORS:
            await delivery._give_up(services, sub, day, token, error, report=True)
            return outcome("failed", error)
        return await delivery._transient(services, sub, day, token, attempt, error, outcome)
    except Exception as exc:
        log.exception("team digest %s for %s failed", team, day)
        return await delivery._transient(services, sub, day, token, attempt, f"{type(exc).__name__}: {exc}"[:500],
                                         outcome)
    await delivery._mark_posted(services, key, token, response.get("ts"))
    return outcome("posted", ts=response.get("ts"))


async def team_digest_sweep(services: Services) -> list[delivery.Outcome]:
    """Post yesterday's team digests that are due (past TEAM_DIGEST_AT today) and not posted yet."""
    clock = services.clock
    today = clock.today()
    if clock.now() < clock.at_local(today, TEAM_DIGEST_AT):
        return []
    out = []
    for name, team in services.settings.teams.items():
        if team.channel:
            out.append(await deliver_team(services, name, today - timedelta(days=1)))
    return out


def team_digest_jobs(services: Services) -> list[JobSpec]:
    if not any(t.channel for t in services.settings.teams.values()):
        return []
    tz = services.settings.timezone
    return [
        JobSpec("teams:digests", team_digest_sweep, CronTrigger(hour=TEAM_DIGEST_AT.hour,
                                                                 minute=TEAM_DIGEST_AT.minute, timezone=tz)),
        JobSpec("teams:digests-sweep", team_digest_sweep, IntervalTrigger(minutes=5, timezone=tz)),
    ]
