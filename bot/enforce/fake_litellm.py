"""A small LiteLLM proxy on 127.0.0.1 that enforces like the real one (for the demo and tests).

It keeps, per user, LiteLLM's own `spend`, `max_budget` and keys, and per key whether it is
blocked; the management endpoints tokenbot uses check the master key like the proxy does
(`Authorization: Bearer <master key>`), record every call, and fail on demand. Its
`/chat/completions` refuses a blocked key (401) and a user whose spend has reached max_budget
(400 "ExceededBudget", as auth_checks does), else charges the call to the user.

Teams: `/team/info` (404 for a team it does not have) and `/team/update`; a key of a team is held
to the team's budget, not its user's (LiteLLM applies the team budget to team keys), and refused
once the team's spend is *over* max_budget (`_team_max_budget_check`: spend > max_budget, strictly,
where a user is refused at spend >= max_budget); its calls are charged to the team (and its user).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web


@dataclass
class FakeUser:
    user_id: str
    spend: Decimal = Decimal(0)
    max_budget: float | None = None
    keys: list[str] = field(default_factory=list)


@dataclass
class FakeTeam:
    team_id: str
    spend: Decimal = Decimal(0)
    max_budget: float | None = None
    keys: list[str] = field(default_factory=list)

    def over(self) -> bool:
        return self.max_budget is not None and self.spend > Decimal(str(self.max_budget))


class FakeLiteLLM:
    def __init__(self, master_key: str = "sk-master-test") -> None:
        self.master_key = master_key
        self.users: dict[str, FakeUser] = {}
        self.blocked: set[str] = set()
        self.key_owner: dict[str, str] = {}
        self.teams: dict[str, FakeTeam] = {}
        self.key_team: dict[str, str] = {}
        self.calls: list[tuple[str, str, dict[str, Any]]] = []  # (method, path, body or query)
        self.failing = False  # every management call answers 503 while set
        self.on_spend = None  # async (user_id, key, cost) -> None: where the proxy logs spend
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- state -----------------------------------------------------------------------------------
    def add_user(self, user_id: str, *, spend: str | Decimal = "0", keys: tuple[str, ...] = ()) -> FakeUser:
        user = FakeUser(user_id, Decimal(str(spend)), keys=list(keys))
        self.users[user_id] = user
        for key in keys:
            self.key_owner[key] = user_id
        return user

    def add_team(self, team_id: str, *, spend: str | Decimal = "0", keys: tuple[str, ...] = (),
                 user_id: str | None = None) -> FakeTeam:
        """A team and its keys (each also `user_id`'s when given)."""
        team = FakeTeam(team_id, Decimal(str(spend)), keys=list(keys))
        self.teams[team_id] = team
        for key in keys:
            self.key_team[key] = team_id
            if user_id is not None:
                self.key_owner[key] = user_id
                self.users[user_id].keys.append(key)
        return team

    def allows(self, key: str) -> bool:
        return self._refusal(key) is None

    def _refusal(self, key: str) -> tuple[int, str] | None:
        owner = self.users.get(self.key_owner.get(key, ""))
        team = self.teams.get(self.key_team.get(key, ""))
        if owner is None and team is None:
            return 401, "Invalid proxy server token passed"
        if key in self.blocked:
            return 401, "Authentication Error - Key is blocked."
        if team is not None:  # a team key: the team's budget applies, not the user's
            if team.over():
                return 400, (f"Budget has been exceeded! Team={team.team_id} Current cost: {float(team.spend)}, "
                             f"Max budget: {team.max_budget}")
            return None
        if owner.max_budget is not None and owner.spend >= Decimal(str(owner.max_budget)):
            return 400, (f"ExceededBudget: User={owner.user_id} over budget. Spend={float(owner.spend)}, "
                         f"Budget={owner.max_budget}")
        return None

    def budget_calls(self, user_id: str) -> list[float]:
        return [body["max_budget"] for method, path, body in self.calls
                if path == "/user/update" and body.get("user_id") == user_id]

    def team_budget_calls(self, team_id: str) -> list[float]:
        return [body["max_budget"] for method, path, body in self.calls
                if path == "/team/update" and body.get("team_id") == team_id]

    # -- server ----------------------------------------------------------------------------------
    async def __aenter__(self) -> FakeLiteLLM:
        app = web.Application()
        app.router.add_get("/user/info", self._user_info)
        app.router.add_post("/user/update", self._user_update)
        app.router.add_post("/key/block", self._key_block)
        app.router.add_post("/key/unblock", self._key_unblock)
        app.router.add_get("/team/info", self._team_info)
        app.router.add_post("/team/update", self._team_update)
        app.router.add_post("/chat/completions", self._chat)
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _admin(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.master_key}":
            return web.json_response({"error": {"message": "Authentication Error, invalid master key"}}, status=401)
        if self.failing:
            return web.json_response({"error": {"message": "proxy restarting"}}, status=503)
        return None

    async def _body(self, request: web.Request, path: str) -> tuple[dict[str, Any], web.Response | None]:
        try:
            body = await request.json()
        except (ValueError, json.JSONDecodeError):
            body = {}
        self.calls.append((request.method, path, body))
        return body, self._admin(request)

    async def _user_info(self, request: web.Request) -> web.Response:
        user_id = request.query.get("user_id", "")
        self.calls.append(("GET", "/user/info", {"user_id": user_id}))
        refused = self._admin(request)
        if refused is not None:
            return refused
        user = self.users.get(user_id)
        if user is None:
            return web.json_response({"detail": f"User {user_id} not found"}, status=404)
        return web.json_response({
            "user_id": user_id,
            "user_info": {"user_id": user_id, "spend": float(user.spend), "max_budget": user.max_budget},
            "keys": [{"token": k, "user_id": user_id, "blocked": k in self.blocked} for k in user.keys],
            "teams": [],
        })

    async def _user_update(self, request: web.Request) -> web.Response:
        body, refused = await self._body(request, "/user/update")
        if refused is not None:
            return refused
        user = self.users.get(body.get("user_id", ""))
        if user is None:
            return web.json_response({"detail": "user not found"}, status=404)
        if "max_budget" in body:
            user.max_budget = body["max_budget"]
        return web.json_response({"user_id": user.user_id, "max_budget": user.max_budget})

    async def _key(self, request: web.Request, path: str, blocked: bool) -> web.Response:
        body, refused = await self._body(request, path)
        if refused is not None:
            return refused
        key = body.get("key", "")
        if key not in self.key_owner:
            return web.json_response({"detail": "key not found"}, status=404)
        (self.blocked.add if blocked else self.blocked.discard)(key)
        return web.json_response({"token": key, "blocked": blocked})

    async def _key_block(self, request: web.Request) -> web.Response:
        return await self._key(request, "/key/block", True)

    async def _key_unblock(self, request: web.Request) -> web.Response:
        return await self._key(request, "/key/unblock", False)

    @staticmethod
    def _no_team(team_id: str) -> web.Response:
        return web.json_response({"error": {"message": f"{{'message': 'Team not found, passed team id: {team_id}.'}}",
                                            "type": "auth_error", "param": "None", "code": "404"}}, status=404)

    def _team_row(self, team: FakeTeam) -> dict[str, Any]:
        return {"team_id": team.team_id, "spend": float(team.spend), "max_budget": team.max_budget}

    async def _team_info(self, request: web.Request) -> web.Response:
        team_id = request.query.get("team_id", "")
        self.calls.append(("GET", "/team/info", {"team_id": team_id}))
        refused = self._admin(request)
        if refused is not None:
            return refused
        team = self.teams.get(team_id)
        if team is None:
            return self._no_team(team_id)
        return web.json_response({"team_id": team_id, "team_info": self._team_row(team),
                                  "keys": [{"team_id": team_id, "key_alias": k} for k in team.keys],
                                  "team_memberships": []})

    async def _team_update(self, request: web.Request) -> web.Response:
        body, refused = await self._body(request, "/team/update")
        if refused is not None:
            return refused
        team = self.teams.get(body.get("team_id", ""))
        if team is None:
            return self._no_team(body.get("team_id", ""))
        if "max_budget" in body:
            team.max_budget = body["max_budget"]
        return web.json_response({"data": self._team_row(team)})

    async def _chat(self, request: web.Request) -> web.Response:
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        body = await request.json()
        refusal = self._refusal(key)
        if refusal is not None:
            status, message = refusal
            kind = {"type": "budget_exceeded"} if status == 400 else {}
            return web.json_response({"error": {"message": message, **kind}}, status=status)
        owner = self.users.get(self.key_owner.get(key, ""))
        team = self.teams.get(self.key_team.get(key, ""))
        cost = Decimal(str(body.get("mock_cost", "0.01")))
        if team is not None:
            team.spend += cost
        if owner is not None:
            owner.spend += cost
        if self.on_spend is not None and owner is not None:
            await self.on_spend(owner.user_id, key, cost, body.get("model", "gpt-4o"))
        return web.json_response({"id": "chatcmpl-fake", "object": "chat.completion", "model": body.get("model"),
                                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
                                  "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})
