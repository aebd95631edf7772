"""Who approves a person's budget requests (SPEC 7), and the Slack profile lookup behind it.

Order: `[approvals.approver]`, `/tokens admin approver`, the custom profile field of type
user labelled `approvals.manager_field`, `default_approvers`, then admins; never the
requester. The id of the profile field is looked up once an hour (team.profile.get) and
kept on the finder, which the process's Services holds.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import SLACK_USER_ID, Settings
from storage import approvals_repo
from storage.db import Database

log = logging.getLogger(__name__)

FIELD_CACHE_SECONDS = 3600.0
FIELD_RETRY_SECONDS = 300.0  # after team.profile.get failed


@dataclass(frozen=True)
class Approvers:
    users: tuple[str, ...]
    source: str  # config | admin | profile | default | admins | none


class ApproverFinder:
    def __init__(self, settings: Settings, db: Database, slack: AsyncWebClient | None) -> None:
        self.settings = settings
        self.db = db
        self.slack = slack
        self.field_id: str | None = None  # the manager field's id, as last looked up
        self.field_id_until = 0.0  # time.monotonic() until which `field_id` stands
        self.teams = None  # bot.teams.assign.TeamDirectory (bot/wiring.py): team leads approve their members

    async def resolve(self, requester: str) -> Approvers:
        """The approvers of `requester`'s requests, and where they came from."""
        settings = self.settings
        if requester.startswith("team:"):  # a team raise: [approvals] team_approver, else the defaults
            return self._team_approvers(requester[5:])
        configured = settings.approvers.get(requester)
        if configured and configured != requester:
            return Approvers((configured,), "config")
        async with self.db.session() as session:
            assigned = await approvals_repo.assigned_approver(session, requester)
        if assigned is not None and assigned != requester:
            return Approvers((assigned,), "admin")
        manager = await self.manager_from_profile(requester)
        if manager:
            return Approvers((manager,), "profile")
        team = self.teams.primary_team(requester) if self.teams is not None else None
        lead = settings.teams[team].lead if team else None
        if lead and lead != requester:
            return Approvers((lead,), "team lead")
        defaults = tuple(dict.fromkeys(u for u in settings.default_approvers if u != requester))
        if defaults:
            return Approvers(defaults, "default")
        admins = tuple(dict.fromkeys(u for u in settings.admins if u != requester))
        if admins:
            return Approvers(admins, "admins")
        return Approvers((), "none")

    def _team_approvers(self, team: str) -> Approvers:
        """Never the team's own lead (who asks)."""
        config = self.settings.teams.get(team)
        lead = config.lead if config is not None else None
        for users, source in ((self.settings.team_approvers, "team approver"),
                              (self.settings.default_approvers, "default"), (self.settings.admins, "admins")):
            chosen = tuple(dict.fromkeys(u for u in users if u != lead))
            if chosen:
                return Approvers(chosen, source)
        return Approvers((), "none")

    async def manager_from_profile(self, user: str) -> str | None:
        if not self.settings.manager_field or self.slack is None or not SLACK_USER_ID.match(user):
            return None
        field_id = await self._manager_field_id()
        if not field_id:
            return None
        try:
            response = await self.slack.users_profile_get(user=user)
        except SlackApiError as exc:
            log.warning("users.profile.get %s failed: %s", user, exc.response.get("error"))
            return None
        value = (((response.get("profile") or {}).get("fields") or {}).get(field_id) or {}).get("value") or ""
        for candidate in re.split(r"[,\s]+", str(value)):
            if SLACK_USER_ID.match(candidate) and candidate != user:
                return candidate
        return None

    async def _manager_field_id(self) -> str | None:
        """The id of the custom profile field labelled `approvals.manager_field` (team.profile.get, cached)."""
        if self.field_id_until > time.monotonic():
            return self.field_id
        label = (self.settings.manager_field or "").casefold()
        try:
            response = await self.slack.team_profile_get()
        except SlackApiError as exc:
            log.warning("team.profile.get failed (%s): no manager field", exc.response.get("error"))
            self.field_id, self.field_id_until = None, time.monotonic() + FIELD_RETRY_SECONDS
            return None
        found: str | None = None
        for profile_field in (response.get("profile") or {}).get("fields") or []:
            if str(profile_field.get("label", "")).strip().casefold() == label and profile_field.get("type") == "user":
                found = profile_field.get("id")
                break
        self.field_id, self.field_id_until = found, time.monotonic() + FIELD_CACHE_SECONDS
        return found
