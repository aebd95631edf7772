"""Fake OpenAI and Anthropic Admin APIs: an in-process aiohttp server on 127.0.0.1.

The demo pulls from it (no network) and the tests drive it: it pages (`page_size` buckets a page,
`next_page` tokens), checks the admin key (401 otherwise), answers the statuses queued in
`failures` first (429 with `retry-after`, 500, ...), and serves whatever the caller put in its
tables, which the caller may change between polls (a bucket that grows). Costs are separate tables,
so the bill can disagree with the usage by a known amount.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

OPENAI_KEY = "sk-admin-fake-openai"
ANTHROPIC_KEY = "sk-ant-admin-fake-anthropic"


@dataclass
class FakeAdminAPIs:
    openai_key: str = OPENAI_KEY
    anthropic_key: str = ANTHROPIC_KEY
    page_size: int = 3
    # endpoint ("completions", "embeddings") -> hour start (epoch seconds) -> results
    openai_usage: dict[str, dict[int, list[dict]]] = field(default_factory=lambda: defaultdict(dict))
    openai_users: list[dict] = field(default_factory=list)
    openai_costs: dict[date, list[dict]] = field(default_factory=dict)  # day -> [{project_id, line_item, amount}]
    anthropic_usage: dict[int, list[dict]] = field(default_factory=dict)
    anthropic_costs: dict[date, list[dict]] = field(default_factory=dict)  # amounts: cents as decimal strings
    claude_code: dict[date, list[dict]] = field(default_factory=dict)
    # answered first, one per request: (status, retry-after), or None for "answer normally this time"
    failures: list[tuple[int, str | None] | None] = field(default_factory=list)
    requests: list[tuple[str, dict]] = field(default_factory=list)
    refused: int = 0
    clock_ahead: bool = False  # answer buckets past the `end_time` asked for (a provider whose clock runs ahead)
    url: str = ""
    _runner: web.AppRunner | None = None

    # -- serving ---------------------------------------------------------------------------------
    async def start(self) -> FakeAdminAPIs:
        app = web.Application()
        app.router.add_get("/v1/organization/usage/{endpoint}", self._openai_usage)
        app.router.add_get("/v1/organization/costs", self._openai_costs)
        app.router.add_get("/v1/organization/users", self._openai_users)
        app.router.add_get("/v1/organizations/usage_report/messages", self._anthropic_usage)
        app.router.add_get("/v1/organizations/cost_report", self._anthropic_costs)
        app.router.add_get("/v1/organizations/usage_report/claude_code", self._claude_code)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeAdminAPIs:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    @property
    def openai_url(self) -> str:
        return self.url + "/v1"

    def _gate(self, request: web.Request, openai: bool) -> web.Response | None:
        self.requests.append((request.path, dict(request.query)))
        if openai:
            ok = request.headers.get("Authorization") == f"Bearer {self.openai_key}"
        else:
            ok = (request.headers.get("x-api-key") == self.anthropic_key
                  and request.headers.get("anthropic-version") == "2023-06-01")
        if not ok:
            self.refused += 1
            return _json({"error": {"type": "authentication_error", "message": "invalid admin key"}}, 401)
        if self.failures and self.failures[0] is None:
            self.failures.pop(0)
        elif self.failures:
            status, retry_after = self.failures.pop(0)
            headers = {"retry-after": retry_after} if retry_after is not None else {}
            return _json({"error": {"message": f"fake {status}"}}, status, headers)
        return None

    # -- OpenAI --------------------------------------------------------------------------------
    async def _openai_usage(self, request: web.Request) -> web.Response:
        if (refused := self._gate(request, True)) is not None:
            return refused
        q = request.query
        table = self.openai_usage.get(request.match_info["endpoint"], {})
        end = 2**40 if self.clock_ahead else int(q.get("end_time", 2**40))
        hours = [h for h in sorted(table) if int(q["start_time"]) <= h < end]
        return self._paged(hours, q.get("page"), lambda h: {
            "object": "bucket", "start_time": h, "end_time": h + 3600, "results": table[h]})

    async def _openai_costs(self, request: web.Request) -> web.Response:
        if (refused := self._gate(request, True)) is not None:
            return refused
        q = request.query
        start, end = int(q["start_time"]), int(q.get("end_time", 2**40))
        days = [d for d in sorted(self.openai_costs) if start <= _day_epoch(d) < end]

        def bucket(d: date) -> dict:
            epoch = _day_epoch(d)
            return {"object": "bucket", "start_time": epoch, "end_time": epoch + 86400, "results": [
                {"object": "organization.costs.result", "amount": {"value": r["amount"], "currency": "usd"},
                 "line_item": r.get("line_item"), "project_id": r.get("project_id")} for r in self.openai_costs[d]]}

        return self._paged(days, q.get("page"), bucket)

    async def _openai_users(self, request: web.Request) -> web.Response:
        if (refused := self._gate(request, True)) is not None:
            return refused
        after = request.query.get("after")
        limit = int(request.query.get("limit", 20))
        users = self.openai_users
        start = 0 if after is None else next((i + 1 for i, u in enumerate(users) if u["id"] == after), len(users))
        chunk = users[start:start + min(limit, self.page_size)]
        return _json({"object": "list", "data": [{"object": "organization.user", "role": "reader", "added_at": 0,
                                                 **u} for u in chunk],
                      "first_id": chunk[0]["id"] if chunk else None, "last_id": chunk[-1]["id"] if chunk else None,
                      "has_more": start + len(chunk) < len(users)})

    # -- Anthropic -----------------------------------------------------------------------------
    async def _anthropic_usage(self, request: web.Request) -> web.Response:
        if (refused := self._gate(request, False)) is not None:
            return refused
        q = request.query
        start, end = _epoch(q["starting_at"]), _epoch(q["ending_at"]) if "ending_at" in q else 2**40
        hours = [h for h in sorted(self.anthropic_usage) if start <= h < end]
        return self._paged(hours, q.get("page"), lambda h: {
            "starting_at": _iso(h), "ending_at": _iso(h + 3600), "results": self.anthropic_usage[h]})

    async def _anthropic_costs(self, request: web.Request) -> web.Response:
        if (refused := self._gate(request, False)) is not None:
            return refused
        q = request.query
        start = _epoch(q["starting_at"])
        end = _epoch(q["ending_at"]) if "ending_at" in q else 2**40
        days = [d for d in sorted(self.anthropic_costs) if start <= _day_epoch(d) < end]

        def bucket(d: date) -> dict:
            epoch = int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())
            return {"starting_at": _iso(epoch), "ending_at": _iso(epoch + 86400), "results": [
                {"currency": "USD", "cost_type": "tokens", **r} for r in self.anthropic_costs[d]]}

        return self._paged(days, q.get("page"), bucket)

    async def _claude_code(self, request: web.Request) -> web.Response:
        if (refused := self._gate(request, False)) is not None:
            return refused
        day = date.fromisoformat(request.query["starting_at"][:10])
        return self._paged(list(self.claude_code.get(day, [])), request.query.get("page"), lambda r: r)

    # -- paging --------------------------------------------------------------------------------
    def _paged(self, items: list, page: str | None, render) -> web.Response:
        offset = int(page[1:]) if page else 0
        chunk = items[offset:offset + self.page_size]
        more = offset + len(chunk) < len(items)
        return _json({"object": "page", "data": [render(i) for i in chunk], "has_more": more,
                      "next_page": f"p{offset + len(chunk)}" if more else None})


def _json(body: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body, default=_default), status=status, content_type="application/json",
                        headers=headers)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError


def _epoch(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def _day_epoch(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def hour(moment: datetime) -> int:
    return int(moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0).timestamp())


def claude_code_row(day: date, email: str, *, sessions: int, added: int, removed: int, commits: int, prs: int,
                    model: str = "claude-sonnet-4-5", tokens: int = 400_000, cost_cents: str = "350") -> dict:
    return {"date": f"{day.isoformat()}T00:00:00Z", "actor": {"type": "user_actor", "email_address": email},
            "organization_id": "org-fake", "customer_type": "api", "terminal_type": "vscode",
            "core_metrics": {"num_sessions": sessions, "lines_of_code": {"added": added, "removed": removed},
                             "commits_by_claude_code": commits, "pull_requests_by_claude_code": prs},
            "tool_actions": {"edit_tool": {"accepted": 10, "rejected": 1}},
            "model_breakdown": [{"model": model, "tokens": {"input": tokens // 2, "output": tokens // 4,
                                                            "cache_read": tokens // 8, "cache_creation": tokens // 8},
                                 "estimated_cost": {"currency": "USD", "amount": cost_cents}}]}


def days_back(today: date, count: int) -> list[date]:
    return [today - timedelta(days=i) for i in range(count)]
