"""Team budget alerts: threshold and forecast DMs to the team's lead after ingest.

Once per team, kind, threshold and month whatever the process: the claim is a row of
`alerts_sent` keyed ("team:<name>", kind, month, threshold), inserted with ON CONFLICT DO
NOTHING, so only the transaction that inserted it sends the DM. A team with no lead alerts
its approvers instead (`[approvals] team_approver`, else default approvers, else admins).
Teams checked after a batch: those it charged spend to. Checks run in the background and are
coalesced like the personal ones (bot/budget_alerts.py): one round at a time, the teams touched
meanwhile checked next, and for QUIET_SECONDS after a check a team is not read again while its
spend plus what this process has charged to it since stays below its next bar (the next
threshold, or the spend at which the month-end pace passes the budget). The 100% claim's
transaction also marks the team's enforcer pushes (its LiteLLM team, its OpenAI projects).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from decimal import Decimal

from slack_sdk.errors import SlackApiError

from bot.budget_alerts import threshold_key
from bot.clock import month_first_day, month_last_day
from bot.enforce import push as enforce_push
from bot.services import Services
from bot.teams.builder import month_key, projected, team_key, team_limit
from bot.usage import IngestResult
from bot.views.format import money, percent
from storage import alerts_repo, teams_repo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TeamAlert:
    team: str
    kind: str  # threshold | forecast
    threshold: Decimal | None
    to: tuple[str, ...]
    text: str


def alert_recipients(services: Services, team: str) -> tuple[str, ...]:
    lead = services.settings.teams[team].lead
    if lead:
        return (lead,)
    s = services.settings
    return tuple(dict.fromkeys(s.team_approvers or s.default_approvers or s.admins))


QUIET_SECONDS = 60.0
INFINITY = Decimal("Infinity")


class TeamAlertChecker:
    def __init__(self, services: Services) -> None:
        self.services = services
        self._dirty: set[str] = set()
        self._running = False
        # team -> (month, spend at the last check + spend charged here since, next bar in USD, checked at)
        self._quiet: dict[str, tuple[str, Decimal, Decimal, float]] = {}
        self.sent: list[TeamAlert] = []  # for tests and the demo

    async def after_ingest(self, result: IngestResult) -> None:
        services = self.services
        if not services.settings.teams:
            return
        month = month_key(services.clock.today())
        now = time.monotonic()
        for (team, m), added in result.team_touched.items():
            config = services.settings.teams.get(team)
            if m != month or config is None or config.monthly_usd is None:
                continue
            known = self._quiet.get(team)
            if known is not None and known[0] == month and now - known[3] < QUIET_SECONDS:
                self._quiet[team] = (month, known[1] + added, known[2], known[3])
                if known[1] + added < known[2]:
                    continue
            self._dirty.add(team)
        if self._dirty and not self._running:
            self._running = True
            services.background.spawn(self._rounds(), name="team-alerts")

    async def _rounds(self) -> None:
        try:
            while self._dirty:
                batch, self._dirty = sorted(self._dirty), set()
                bars: dict[str, tuple[str, Decimal, Decimal]] = {}
                self.sent += await check_teams(self.services, batch, bars_out=bars)
                now = time.monotonic()
                for team, (month, spent, bar) in bars.items():
                    self._quiet[team] = (month, spent, bar, now)
        finally:
            self._running = False


async def check_teams(services: Services, teams: list[str], *,
                      bars_out: dict[str, tuple[str, Decimal, Decimal]] | None = None) -> list[TeamAlert]:
    """Claim and send what is due for these teams; `bars_out` gets each team's (month, spend, next bar)."""
    settings, clock = services.settings, services.clock
    today = clock.today()
    month = month_key(today)
    async with services.db.session() as session:
        spent = await teams_repo.team_month_spend(session, month, month_first_day(today), month_last_day(today),
                                                  teams)
        limits = {t: await team_limit(session, settings, t, month) for t in teams}
        sent = await alerts_repo.sent_in_month(session, month, [team_key(t) for t in teams])
    claims, pending = [], []
    now = clock.now()
    for team in teams:
        limit, used = limits[team], spent.get(team, Decimal(0))
        if not limit:
            continue
        if bars_out is not None:
            above = [t * limit for t in settings.alert_thresholds if t * limit > used]
            if (team_key(team), "forecast", "") not in sent and used < limit:
                above.append(limit * today.day / month_last_day(today).day)  # where the pace passes the budget
            bars_out[team] = (month, used, min([b for b in above if b > used], default=INFINITY))
        share = used / limit
        crossed = [t for t in settings.alert_thresholds
                   if share >= t and (team_key(team), "threshold", threshold_key(t)) not in sent]
        if crossed:
            top = max(crossed)
            claims += [{"user_key": team_key(team), "kind": "threshold", "month": month, "threshold": threshold_key(t),
                        "sent_at": now} for t in crossed]
            pending.append((team, "threshold", top, crossed, used, limit))
        outlook = projected(used, today)
        if used < limit < outlook and (team_key(team), "forecast", "") not in sent:
            claims.append({"user_key": team_key(team), "kind": "forecast", "month": month, "threshold": "",
                           "sent_at": now})
            pending.append((team, "forecast", None, [], used, limit))
    if not claims:
        return []
    async with services.db.write() as session:
        won = await alerts_repo.claim(session, claims)
        full = sorted({c["user_key"].removeprefix("team:") for c in claims if c["kind"] == "threshold"
                       and Decimal(c["threshold"]) >= 1 and (c["user_key"], "threshold", c["threshold"]) in won})
        marked = False
        for team in full:  # SPEC 11: at 100% the enforcers hear at once that the team has nothing left
            marked = await enforce_push.mark_team(services, session, team) or marked
    if marked:
        enforce_push.kick(services)
    out = []
    for team, kind, top, crossed, used, limit in pending:
        key = team_key(team)
        if kind == "threshold" and not any((key, "threshold", threshold_key(t)) in won for t in crossed):
            continue
        if kind == "forecast" and (key, "forecast", "") not in won:
            continue
        text = alert_text(team, kind, top, used, limit, projected(used, today))
        to = alert_recipients(services, team)
        for user in to:
            await _dm(services, user, text)
        out.append(TeamAlert(team, kind, top, to, text))
    return out


def alert_text(team: str, kind: str, threshold: Decimal | None, used: Decimal, limit: Decimal,
               outlook: Decimal) -> str:
    if kind == "forecast":
        return (f":crystal_ball: Team *{team}* is on pace for about {money(outlook)} this month, over its "
                f"{money(limit)} budget ({money(used)} spent so far). `/tokens team {team}` shows who and what; "
                f"`/tokens request team {team} &lt;amount&gt;` asks for more.")
    if used >= limit:
        return (f":rotating_light: Team *{team}* has spent {money(used)}: its whole {money(limit)} budget "
                f"({percent(used / limit)}). The limits API now answers `allowed: false` for its members. "
                f"`/tokens request team {team} &lt;amount&gt;` asks for more.")
    return (f":warning: Team *{team}* has used {percent(threshold)} of its {money(limit)} budget "
            f"({money(used)} spent). `/tokens team {team}` shows who and what.")


async def _dm(services: Services, user: str, text: str) -> None:
    if services.slack is None:
        return
    try:
        await services.slack.chat_postMessage(channel=user, text=text)
    except SlackApiError as exc:
        log.warning("team alert DM to %s failed: %s", user, exc.response.get("error"))
