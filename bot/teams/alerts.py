"""Team budget alerts: threshold and forecast DMs to the team's lead after ingest.

Once per team, kind, threshold and month whatever the process: the claim is a row of
`alerts_sent` keyed ("team:<name>", kind, month, threshold), inserted with ON CONFLICT DO
NOTHING, so only the transaction that inserted it sends the DM. A team with no lead alerts
its approvers instead (`[approvals] team_approver`, else default approvers, else admins).
Teams checked after a batch: the primary teams of the people in it, and every team that
events can name by `aliases` (spend there does not follow a person). Checks are coalesced
like the personal ones: one running at a time, the teams touched meanwhile checked next.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

from slack_sdk.errors import SlackApiError

from bot.budget_alerts import threshold_key
from bot.clock import month_first_day, month_last_day
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


class TeamAlertChecker:
    def __init__(self, services: Services) -> None:
        self.services = services
        self._dirty: set[str] = set()
        self._running = False
        self.sent: list[TeamAlert] = []  # for tests and the demo

    async def after_ingest(self, result: IngestResult) -> None:
        services = self.services
        teams = services.teams
        if teams is None or not teams.enabled:
            return
        month = month_key(services.clock.today())
        touched = {teams.primary_team(user) for (user, m) in result.touched if m == month}
        touched |= {name for name, t in services.settings.teams.items() if t.aliases}
        self._dirty |= {t for t in touched if t and services.settings.teams[t].monthly_usd is not None}
        if self._running:
            return
        self._running = True
        try:
            while self._dirty:
                batch, self._dirty = sorted(self._dirty), set()
                self.sent += await check_teams(services, batch)
        finally:
            self._running = False


async def check_teams(services: Services, teams: list[str]) -> list[TeamAlert]:
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
