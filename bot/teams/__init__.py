"""Teams (SPEC 13): config, who is in which team, the team an event is charged to, team cards,
team budgets and alerts, team digests, the chargeback export.

- `config`: `[teams.<name>]` tables -> `TeamConfig`s (Settings.teams, in file order).
- `assign`: the team an event is charged to, decided once when it is stored.
- `sync`: config members and Slack user groups -> `team_memberships` (since/until).
- `builder`: the team card's view model; `commands`: `/tokens team`, `/tokens admin team`.
- `export`: the chargeback export (CLI and API); `limits`: the team part of the limits API.
- `requests`: team raise requests (the command, the card's button and form).
- `alerts`: team budget alerts to the lead; `section`: the org digest's teams section;
  `digest`: each team channel's daily digest. `demo`, `shots`: the demo's teams.
"""
