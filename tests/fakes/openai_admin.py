"""A fake of OpenAI's project hard spend limit endpoints (`/v1/organization/projects/{id}/spend_limit`):
checks the admin key, validates the body as the API documents it (USD, month, whole cents >= 1),
records every call and fails on demand."""

from __future__ import annotations

from typing import Any

from aiohttp import web


class FakeOpenAIAdmin:
    def __init__(self, admin_key: str = "sk-admin-test") -> None:
        self.admin_key = admin_key
        self.limits: dict[str, int] = {}
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.failing = False
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> FakeOpenAIAdmin:
        app = web.Application()
        app.router.add_route("*", "/v1/organization/projects/{project}/spend_limit", self._spend_limit)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/v1"
        return self

    async def __aexit__(self, *exc) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _spend_limit(self, request: web.Request) -> web.Response:
        project = request.match_info["project"]
        body = await request.json() if request.can_read_body else {}
        self.calls.append((request.method, project, body))
        if request.headers.get("Authorization") != f"Bearer {self.admin_key}":
            return web.json_response({"error": {"message": "Invalid admin key", "type": "invalid_request_error"}},
                                     status=401)
        if self.failing:
            return web.json_response({"error": {"message": "unavailable", "type": "server_error"}}, status=503)
        if request.method == "POST":
            amount = body.get("threshold_amount")
            if (body.get("currency") != "USD" or body.get("interval") != "month" or not isinstance(amount, int)
                    or isinstance(amount, bool) or amount < 1):
                return web.json_response({"error": {"message": "invalid spend limit",
                                                    "type": "invalid_request_error"}}, status=400)
            self.limits[project] = amount
        elif request.method != "GET":
            return web.json_response({"error": {"message": "method"}}, status=405)
        return web.json_response({"object": "project.spend_limit", "currency": "USD", "interval": "month",
                                  "threshold_amount": self.limits.get(project, 0),
                                  "enforcement": {"status": "enforcing" if project in self.limits else "inactive"}})
