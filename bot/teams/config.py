"""`[teams.<name>]` in the config file (SPEC 13), validated once.

```toml
[teams.platform]
members = ["U0ALICE", "U0BOB"]   # and/or
usergroup = "S0PLATFORM"         # a Slack user group, kept in sync (usergroups.users.list)
lead = "U0BOB"                   # gets the team's alerts, asks for team raises, approves members
channel = "C0PLATFORM"           # the team's own daily digest
monthly_usd = 5000               # the team's budget
aliases = ["team-4f1c", "proj_abc", "wrkspc_01"]  # an event's `team` field naming this team
```

An event's `team` field (LiteLLM team id or alias, OpenAI project, Anthropic workspace) names
a team when it equals one of its `aliases` or its name. Team names are lower case letters,
digits, `-` and `_`; an alias belongs to one team only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bot.config_values import ConfigError, _money, _table, _user_id, _user_ids

TEAM_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,25}$")  # "team:<name>" fits a requester id (32)
USERGROUP_ID = re.compile(r"^S[A-Z0-9]{2,}$")
CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{2,}$")
KEYS = ("members", "usergroup", "lead", "channel", "monthly_usd", "aliases")


@dataclass(frozen=True)
class TeamConfig:
    name: str
    members: tuple[str, ...] = ()
    usergroup: str | None = None
    lead: str | None = None
    channel: str | None = None
    monthly_usd: Decimal | None = None
    aliases: tuple[str, ...] = ()


def parse_teams(raw: Any) -> dict[str, TeamConfig]:
    """The `[teams]` table -> name -> TeamConfig, in file order (the first listing a person is theirs)."""
    table = _table("teams", raw)
    teams: dict[str, TeamConfig] = {}
    owner: dict[str, str] = {}
    for name, entry in table.items():
        key = f"teams.{name}"
        if not TEAM_NAME.match(name):
            raise ConfigError(f"{key}: a team name is 1-26 lower case letters, digits, - or _ (like platform)")
        entry = _table(key, entry)
        for field_name in entry:
            if field_name not in KEYS:
                raise ConfigError(f"{key}.{field_name}: unknown setting (known: {', '.join(KEYS)})")
        members = tuple(dict.fromkeys(_user_ids(f"{key}.members", entry.get("members", []))))
        usergroup = entry.get("usergroup")
        if usergroup is not None and (not isinstance(usergroup, str) or not USERGROUP_ID.match(usergroup)):
            raise ConfigError(f"{key}.usergroup: must be a Slack user group id like S0PLATFORM")
        lead = _user_id(f"{key}.lead", entry["lead"]) if "lead" in entry else None
        channel = entry.get("channel")
        if channel is not None and (not isinstance(channel, str) or not CHANNEL_ID.match(channel)):
            raise ConfigError(f"{key}.channel: must be a Slack channel id like C0PLATFORM")
        budget = _money(f"{key}.monthly_usd", entry["monthly_usd"]) if "monthly_usd" in entry else None
        aliases_raw = entry.get("aliases", [])
        if not isinstance(aliases_raw, list) or not all(isinstance(a, str) and 0 < len(a) <= 200
                                                        for a in aliases_raw):
            raise ConfigError(f"{key}.aliases: must be a list of the `team` values events carry, like "
                              "[\"litellm-team-id\", \"proj_abc\"]")
        aliases = tuple(dict.fromkeys(aliases_raw))
        for alias in (name, *aliases):
            if alias in owner and owner[alias] != name:
                raise ConfigError(f"{key}.aliases: {alias!r} already names team {owner[alias]}")
            owner[alias] = name
        teams[name] = TeamConfig(name, members, usergroup, lead, channel, budget, aliases)
    return teams


def team_approvers(raw: Any) -> tuple[str, ...]:
    """`[approvals] team_approver`: one user id or a list of them."""
    if isinstance(raw, str):
        return (_user_id("approvals.team_approver", raw),)
    return tuple(_user_ids("approvals.team_approver", raw))
