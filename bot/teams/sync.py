"""Team memberships: config `members` and Slack user groups -> `team_memberships` (since/until).

A sync reads each team's user group (`usergroups.users.list`), closes the memberships of
people no longer in it (until = now) and opens those of new members (since = now); config
members are reconciled the same way (source "config"). Past rows are never rewritten, and
spend already stored keeps the team it was charged to (bot/teams/assign.py).

A user group that no longer exists or cannot be read (`no_such_subteam`, `missing_scope`, ...)
leaves the team's synced members as they were, is stored as the team's sync error (shown by
`/tokens admin team`) and is named to the admins once by DM, until a sync succeeds again.
Runs at start-up, every `SYNC_MINUTES`, and on demand (`/tokens admin team sync`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.interval import IntervalTrigger
from slack_sdk.errors import SlackApiError

from bot.people import tell_admins
from bot.scheduler import JobSpec
from bot.services import Services
from storage import teams_repo

log = logging.getLogger(__name__)
SYNC_MINUTES = 30


@dataclass(frozen=True)
class SyncOutcome:
    team: str
    usergroup: str
    members: int | None = None
    added: int = 0
    removed: int = 0
    error: str | None = None


async def reconcile_config(services: Services) -> None:
    now = services.clock.now()
    async with services.db.write() as session:
        for name, team in services.settings.teams.items():
            await teams_repo.reconcile_members(session, name, "config", set(team.members), now)


async def sync_teams(services: Services, only: str | None = None) -> list[SyncOutcome]:
    """Sync config members and user groups (all teams, or one); never raises for Slack's answers."""
    await reconcile_config(services)
    out = []
    for name, team in services.settings.teams.items():
        if team.usergroup is None or (only is not None and name != only):
            continue
        out.append(await _sync_one(services, name, team.usergroup))
    teams = getattr(services, "teams", None)
    if teams is not None:
        await teams.refresh(force=True)
    return out


async def _sync_one(services: Services, name: str, usergroup: str) -> SyncOutcome:
    now = services.clock.now()
    error, users = None, None
    if services.slack is None:
        error = "no Slack connection"
    else:
        try:
            response = await services.slack.usergroups_users_list(usergroup=usergroup)
            users = {u for u in response.get("users") or [] if isinstance(u, str)}
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "slack_error")
        except Exception as exc:  # a network failure: try again at the next sync
            log.warning("usergroups.users.list %s for team %s failed: %s", usergroup, name, exc)
            error = f"unreachable: {type(exc).__name__}"
    async with services.db.write() as session:
        added = removed = set()
        if users is not None:
            added, removed = await teams_repo.reconcile_members(session, name, "usergroup", users, now)
        fresh = await teams_repo.record_sync(session, name, usergroup, at=now,
                                             members=len(users) if users is not None else None, error=error)
    if error is not None and fresh:
        await _tell_admins(services, name, usergroup, error)
    return SyncOutcome(name, usergroup, len(users) if users is not None else None, len(added), len(removed), error)


def sync_error_text(team: str, usergroup: str, error: str) -> str:
    advice = {
        "no_such_subteam": f"the user group no longer exists: fix `usergroup` in `[teams.{team}]` or remove it",
        "missing_scope": "the app lacks the `usergroups:read` scope: reinstall it from manifest.yml",
    }.get(error, "the next sync tries again; `/tokens admin team sync` tries now")
    return (f":warning: Team *{team}*: its Slack user group `{usergroup}` could not be read (`{error}`): "
            f"{advice}. Its members stay as last synced; spend already stored keeps its team.")


async def _tell_admins(services: Services, team: str, usergroup: str, error: str) -> None:
    await tell_admins(services, sync_error_text(team, usergroup, error), about=f"team {team}'s user group")


async def _job(services: Services) -> None:
    await sync_teams(services)


def team_jobs(services: Services) -> list[JobSpec]:
    if not services.settings.teams:
        return []
    start = datetime.now(UTC) + timedelta(seconds=5)  # at start-up, then every SYNC_MINUTES
    return [JobSpec("teams-sync", _job, IntervalTrigger(minutes=SYNC_MINUTES, start_date=start))]
