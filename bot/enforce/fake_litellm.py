"""A small LiteLLM proxy on 127.0.0.1 that enforces like the real one (for the demo and tests).

It keeps, per user, LiteLLM's own `spend`, `max_budget` and keys, and per key whether it is
blocked; the management endpoints tokenbot uses check the master key like the proxy does
(`Authorization: Bearer <master key>`), record every call, and fail on demand. Its
`/chat/completions` refuses a blocked key (401) and a user whose spend has reached max_budget
(400 "ExceededBudget", as auth_checks does), else charges the call to the user.
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


class FakeLiteLLM:
    def __init__(self, master_key: str = "sk-master-test") -> None:
        self.master_key = master_key
        self.users: dict[str, FakeUser] = {}
        self.blocked: set[str] = set()
        self.key_owner: dict[str, str] = {}
        self.teams: dict[str, dict[str, Any]] = {}
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

    def allows(self, key: str) -> bool:
        owner = self.users.get(self.key_owner.get(key, ""))
        if key in self.blocked or owner is None:
            return False
        return owner.max_budget is None or owner.spend < Decimal(str(owner.max_budget))

    def budget_calls(self, user_id: str) -> list[float]:
        return [body["max_budget"] for method, path, body in self.calls
                if path == "/user/update" and body.get("user_id") == user_id]

    # -- server ----------------------------------------------------------------------------------
    async def __aenter__(self) -> FakeLiteLLM:
        app = web.Application()
        app.router.add_get("/user/info", self._user_info)
        app.router.add_post("/user/update", self._user_update)
        app.router.add_post("/key/block", self._key_block)
        app.router.add_post("/key/unblock", self._key_unblock)
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

    async def _team_update(self, request: web.Request) -> web.Response:
        body, refused = await self._body(request, "/team/update")
        if refused is not None:
            return refused
        team = self.teams.setdefault(body.get("team_id", ""), {"spend": 0.0})
        team["max_budget"] = body.get("max_budget")
        return web.json_response({"team_id": body.get("team_id"), **team})

    async def _chat(self, request: web.Request) -> web.Response:
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        body = await request.json()
        owner = self.users.get(self.key_owner.get(key, ""))
        if owner is None:
            return web.json_response({"error": {"message": "Invalid proxy server token passed"}}, status=401)
        if key in self.blocked:
            return web.json_response({"error": {"message": "Authentication Error - Key is blocked."}}, status=401)
        if owner.max_budget is not None and owner.spend >= Decimal(str(owner.max_budget)):
            return web.json_response({"error": {"message": (
                f"ExceededBudget: User={owner.user_id} over budget. Spend={float(owner.spend)}, "
                f"Budget={owner.max_budget}"), "type": "budget_exceeded"}}, status=400)
        cost = Decimal(str(body.get("mock_cost", "0.01")))
        owner.spend += cost
        if self.on_spend is not None:
            await self.on_spend(owner.user_id, key, cost, body.get("model", "gpt-4o"))
        return web.json_response({"id": "chatcmpl-fake", "object": "chat.completion", "model": body.get("model"),
                                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
                                  "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})
