"""Who is in which team now, and the team an event is charged to (decided once, when stored).

An event's team: its `team` field when that names a team (a team's name or one of its
`aliases`), else the person's primary team: the first `[teams.*]` in file order whose
`members` list them, else the first whose synced user group has them. A person in several
teams is charged to their primary team, whole: no fractional split, so every event is in
exactly one team (or none) and team totals add up to the organisation's to the cent.

The team is stored on the event (`usage_events.charge_team`) and summed into the team
rollup in the fold, so a member who leaves keeps past spend with the team it was spent for.
Synced user group members are read from `team_memberships` at most every `REFRESH_SECONDS`
(and at once after a sync in this process).
"""

from __future__ import annotations

import time

from bot.config import Settings
from storage import teams_repo
from storage.db import Database

REFRESH_SECONDS = 30.0


class TeamDirectory:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.teams = settings.teams
        self.db = db
        self.alias = {}
        for name, team in self.teams.items():
            for alias in (name, *team.aliases):
                self.alias.setdefault(alias, name)
        self._group: dict[str, list[str]] = {}  # team -> synced user group members (current)
        self._primary: dict[str, str] = {}
        self._read_at = float("-inf")
        self._rebuild()

    @property
    def enabled(self) -> bool:
        return bool(self.teams)

    async def refresh(self, *, force: bool = False) -> None:
        if not self.teams or not any(t.usergroup for t in self.teams.values()):
            return
        if not force and time.monotonic() - self._read_at < REFRESH_SECONDS:
            return
        async with self.db.session() as session:
            rows = await teams_repo.current_members(session)
        group: dict[str, list[str]] = {}
        for team, user, source in rows:
            if source == "usergroup" and team in self.teams:
                group.setdefault(team, []).append(user)
        self._group = group
        self._read_at = time.monotonic()
        self._rebuild()

    def _rebuild(self) -> None:
        primary: dict[str, str] = {}
        for name, team in self.teams.items():  # config members first, in file order
            for user in team.members:
                primary.setdefault(user, name)
        for name in self.teams:  # then synced user groups, in file order
            for user in self._group.get(name, ()):
                primary.setdefault(user, name)
        self._primary = primary

    def primary_team(self, user_key: str) -> str | None:
        return self._primary.get(user_key)

    def charge_team(self, raw_team: str | None, user_key: str) -> str:
        if raw_team is not None:
            named = self.alias.get(raw_team)
            if named is not None:
                return named
        return self._primary.get(user_key, "")

    def charge_bucket(self, project: str | None, user_key: str) -> str:
        """A provider bucket's team: its project or workspace named in a team's aliases, else the person's."""
        return self.charge_team(project, user_key) if self.enabled else ""

    def members(self, team: str) -> list[str]:
        """Current members: listed in config, then synced from the user group (no repeats)."""
        config = self.teams[team]
        return list(dict.fromkeys([*config.members, *self._group.get(team, ())]))

    def teams_of(self, user_key: str) -> list[str]:
        return [name for name in self.teams if user_key in self.members(name)]

    def led_by(self, user_id: str) -> list[str]:
        return [name for name, t in self.teams.items() if t.lead == user_id]
