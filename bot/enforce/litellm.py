"""The LiteLLM proxy's management API, as tokenbot uses it (read from LiteLLM 1.110's source).

- `GET /user/info?user_id=` -> `user_info.spend` (LiteLLM's own count) and `keys[].token`;
  404 when the proxy has no such user.
- `POST /user/update {"user_id", "max_budget"}`: the proxy refuses a user's calls once its
  spend reaches `max_budget` (auth_checks `_user_max_budget_check`: spend >= max_budget).
- `POST /key/block` / `/key/unblock {"key"}`: a blocked key is refused at once, on the
  open-source proxy (user_api_key_auth: `valid_token.blocked is True`).
- `GET /team/info?team_id=` -> `team_info.spend` (404 when the proxy has no such team);
  `POST /team/update {"team_id", "max_budget"}`: a team's budget, which the proxy applies to
  the team's keys instead of their users' budgets. It refuses a team once its spend is *over*
  max_budget (auth_checks `_team_max_budget_check`: spend > max_budget, strictly), so a team
  with nothing left gets a micro-dollar under its spend, not its spend.

Not used, and why: the user `blocked` field is documented "[Not Implemented Yet]" and no check
reads it; `/customer/block` is for end-user ids sent as `user=` and `/customer/unblock` needs the
enterprise package; `budget_duration` resets on LiteLLM's own schedule (from when the budget was
set), not on the organisation's calendar month, so tokenbot re-pushes at its month rollover
instead. And a user's `max_budget` does not apply to team keys unless the proxy sets
`apply_user_budget_to_team_keys`, which is why a pause also blocks the person's keys.
"""

from __future__ import annotations

import json
from decimal import ROUND_DOWN, Decimal
from typing import Any

import aiohttp

TIMEOUT = aiohttp.ClientTimeout(total=10)


class EnforcerError(Exception):
    """A push the enforcer did not take (retried with backoff)."""


def usd(value: Decimal) -> float:
    """A budget as LiteLLM stores it (a float), rounded down to the micro-dollar."""
    return float(value.quantize(Decimal("0.000001"), rounding=ROUND_DOWN))


class LiteLLMClient:
    def __init__(self, base_url: str, master_key: str | None, http: aiohttp.ClientSession) -> None:
        self.base = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {master_key or ''}", "Content-Type": "application/json"}
        self.http = http

    async def _call(self, method: str, path: str, *, params: dict[str, str] | None = None,
                    body: dict[str, Any] | None = None, missing_ok: bool = False) -> dict[str, Any] | None:
        try:
            async with self.http.request(method, self.base + path, params=params, json=body,
                                         headers=self.headers, timeout=TIMEOUT) as response:
                if missing_ok and response.status == 404:
                    return None
                text = await response.text()
                if not 200 <= response.status < 300:
                    raise EnforcerError(f"LiteLLM {path}: HTTP {response.status}: {text[:200]}")
                try:
                    return json.loads(text) if text else {}
                except ValueError:
                    raise EnforcerError(f"LiteLLM {path}: not JSON: {text[:100]}") from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise EnforcerError(f"LiteLLM {path}: {type(exc).__name__}: {exc}"[:300]) from exc

    async def user_info(self, user_id: str) -> dict[str, Any] | None:
        return await self._call("GET", "/user/info", params={"user_id": user_id}, missing_ok=True)

    async def set_user_budget(self, user_id: str, max_budget: Decimal) -> None:
        await self._call("POST", "/user/update", body={"user_id": user_id, "max_budget": usd(max_budget)})

    async def block_key(self, key: str) -> None:
        await self._call("POST", "/key/block", body={"key": key})

    async def unblock_key(self, key: str) -> None:
        await self._call("POST", "/key/unblock", body={"key": key})

    async def team_info(self, team_id: str) -> dict[str, Any] | None:
        return await self._call("GET", "/team/info", params={"team_id": team_id}, missing_ok=True)

    async def set_team_budget(self, team_id: str, max_budget: Decimal) -> None:
        await self._call("POST", "/team/update", body={"team_id": team_id, "max_budget": usd(max_budget)})


async def push_user(client: LiteLLMClient, user_ids: list[str], *, remaining: Decimal, paused: bool,
                    previous: dict[str, Any]) -> dict[str, Any]:
    """Set each of the person's LiteLLM users' max_budget to LiteLLM's own spend plus what tokenbot
    says remains (nothing while paused), and block (paused) or unblock (the keys this push blocked
    before) their keys. Returns what was pushed, kept as the row's `detail` for the next push."""
    blocked_before: dict[str, list[str]] = previous.get("blocked") or {}
    pushed: dict[str, Any] = {"users": {}, "blocked": {}}
    for user_id in user_ids:
        info = await client.user_info(user_id)
        if info is None:
            continue  # the proxy has no such user: nothing to limit there
        spend = Decimal(str((info.get("user_info") or {}).get("spend") or 0))
        budget = spend if paused else spend + max(remaining, Decimal(0))
        await client.set_user_budget(user_id, budget)
        keys = [k.get("token") for k in info.get("keys") or [] if isinstance(k, dict) and k.get("token")]
        if paused:
            for key in keys:
                await client.block_key(key)
            pushed["blocked"][user_id] = keys
        else:
            for key in blocked_before.get(user_id, []):
                await client.unblock_key(key)
        pushed["users"][user_id] = {"spend": str(spend), "max_budget": str(usd(budget))}
    for user_id, keys in blocked_before.items():  # users gone from the list since the pause
        if not paused and user_id not in user_ids:
            for key in keys:
                await client.unblock_key(key)
    return pushed


async def push_key(client: LiteLLMClient, key: str, *, paused: bool) -> dict[str, Any]:
    """An unattributed key's trip: the key itself is blocked or unblocked."""
    await (client.block_key(key) if paused else client.unblock_key(key))
    return {"key": key, "blocked": paused}


MICRO = Decimal("0.000001")


async def push_team(client: LiteLLMClient, team_id: str, *, spend: Decimal, remaining: Decimal,
                    paused: bool = False) -> dict[str, Any]:
    """A team's budget on the proxy (SPEC 13 teams): max_budget = the team's LiteLLM spend (`spend`
    from `/team/info`) plus what tokenbot says the team has left. With nothing left (or paused) it
    is a micro-dollar under the spend: the proxy refuses a team only once spend > max_budget."""
    if paused or remaining <= 0:
        budget = max(spend - MICRO, Decimal(0))
    else:
        budget = spend + remaining
    await client.set_team_budget(team_id, budget)
    return {"spend": str(spend), "max_budget": str(usd(budget))}


async def push_teams(client: LiteLLMClient, team_ids: list[str], *, remaining: Decimal,
                     paused: bool = False) -> dict[str, Any]:
    """Each of a tokenbot team's proxy teams (its name and aliases) that the proxy knows gets the
    team's budget; ids it does not know (`/team/info` 404) are skipped, like unknown users."""
    pushed: dict[str, Any] = {"teams": {}, "unknown": []}
    for team_id in team_ids:
        info = await client.team_info(team_id)
        if info is None:
            pushed["unknown"].append(team_id)
            continue
        spend = Decimal(str((info.get("team_info") or {}).get("spend") or 0))
        pushed["teams"][team_id] = await push_team(client, team_id, spend=spend, remaining=remaining, paused=paused)
    return pushed
