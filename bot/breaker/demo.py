"""The demo's walk through the enforcers and the runaway breaker, against a LiteLLM proxy of its own
(bot/enforce/fake_litellm.py on 127.0.0.1): an approval raises the proxy's budget; an agent loop
runs away; the breaker DMs; Pause, and the proxy refuses; Resume, and it answers again."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC
from decimal import Decimal

import aiohttp

from bot.approvals import service
from bot.breaker import flows
from bot.breaker.messages import recipients, view_of
from bot.enforce import push
from bot.enforce.fake_litellm import FakeLiteLLM
from bot.enforce_config import BreakerSettings, EnforceSettings, LiteLLMEnforcer
from bot.limits import limits_for
from bot.people import display_names
from bot.services import Services
from bot.views.breaker import trip_text
from storage import breaker_repo

MASTER = "sk-demo-master"
AGENT_KEY = "sk-demo-agent-7"
CALL_USD = "2.40"


def _indent(text: str, prefix: str = "   ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


async def breaker_walkthrough(base: Services) -> str:
    from bot.wiring import build_services

    settings = base.settings
    reserved = {*settings.default_approvers, *settings.admins, *settings.approvers.values()}
    person_id, litellm_user = next(((v, k) for k, v in sorted(settings.identities.items())
                                    if "@" in k and v not in reserved), (None, None))
    if person_id is None:
        return "Enforcer walkthrough: nobody sends through the proxy."
    out = ["Enforcers and the runaway breaker, start to finish (a LiteLLM proxy of the demo's own)", ""]
    async with FakeLiteLLM(MASTER) as proxy:
        services = build_services(replace(
            settings, litellm_master_key=MASTER, enforce=EnforceSettings(litellm=LiteLLMEnforcer(url=proxy.url)),
            breaker=BreakerSettings(mode="alert", window_minutes=15, min_usd=Decimal(20), factor=Decimal(5))),
            with_slack=False)
        try:
            return "\n".join(out + await _walk(services, proxy, person_id, litellm_user))
        finally:
            await services.close()


async def _walk(services: Services, proxy: FakeLiteLLM, person: str, litellm_user: str) -> list[str]:
    out: list[str] = []
    names = await display_names(services, [person, *services.settings.default_approvers])
    who = names.get(person, person)
    proxy.add_user(litellm_user, spend="12.50", keys=(AGENT_KEY,))
    sent = 0

    async def logged(user_id: str, key: str, cost: Decimal, model: str) -> None:  # the proxy's spend logger
        nonlocal sent
        sent += 1
        event = {"id": f"demo-agent-{time.time_ns()}-{sent}", "timestamp": services.clock.now().astimezone(UTC)
                 .isoformat(), "user": user_id, "model": model, "input_tokens": 90_000, "output_tokens": 8_000,
                 "cost_usd": str(cost), "metadata": {"agent_id": "nightly-evals-agent"}}
        await services.ingestor.ingest([event], source="native")

    proxy.on_spend = logged

    # 1. an approval raises the proxy's budget
    created = await service.create_request(services, person, "100", "evals for the launch", "month", via="demo")
    approver = services.settings.default_approvers[0]
    decided = await service.decide(services, created.request_id, approver, approve=True)
    if decided.outcome != "approved":
        return [f"   (the request was not approved: {created.outcome}, {decided.outcome})"]
    await services.background.drain()
    await push.deliver_due(services)
    limits = await limits_for(services, person)
    user = proxy.users[litellm_user]
    out += [f"1. {names.get(approver, approver)} approves {who}'s request for $100 more. tokenbot pushes it to "
            f"the proxy: POST /user/update max_budget = LiteLLM's own spend ${user.spend} + what tokenbot says "
            f"remains ${Decimal(limits['remaining_usd']):.2f} = ${user.max_budget:.2f}."]

    # 2. an agent loop runs away
    async with aiohttp.ClientSession() as http:
        async def call() -> tuple[int, str]:
            async with http.post(proxy.url + "/chat/completions", headers={"Authorization": f"Bearer {AGENT_KEY}"},
                                 json={"model": "gpt-4o", "messages": [], "mock_cost": CALL_USD}) as response:
                body = await response.json()
                return response.status, (body.get("error") or {}).get("message", "ok")

        calls = 0
        while calls < 40:
            status, _ = await call()
            calls += 1
            await services.background.drain()
            async with services.db.session() as session:
                trip = await breaker_repo.last_trip(session, f"user:{person}")
            if trip is not None:
                break
        out += ["", f"2. An agent loop starts calling through the proxy with key {AGENT_KEY}: ${CALL_USD} a call. "
                f"After {calls} calls (${Decimal(CALL_USD) * calls}) the breaker trips."]
        if trip is None:
            return [*out, "   (no trip)"]
        to = [names.get(u, u) for u in await recipients(services, trip)]
        out += ["", f"3. DM to {' and '.join(to)}:", _indent(trip_text(view_of(services, trip), names))]

        await flows.press(services, trip.id, approver, "pause")
        await services.background.drain()  # the press's own delivery (push.kick) holds the lease until done
        await push.deliver_due(services)
        status, message = await call()
        limits = await limits_for(services, person)
        async with services.db.session() as session:
            trip = await breaker_repo.get(session, trip.id)
        out += ["", f"4. {names.get(approver, approver)} presses Pause. The DM, updated in place for both:",
                _indent(trip_text(view_of(services, trip), names)),
                f"   The agent's next call: HTTP {status} {message}",
                f"   GET /api/v1/limits/{person}: allowed {str(limits['allowed']).lower()}, reason "
                f"\"{limits['reason']}\""]

        await flows.press(services, trip.id, approver, "resume")
        await services.background.drain()  # the press's own delivery (push.kick) holds the lease until done
        await push.deliver_due(services)
        status, message = await call()
        async with services.db.session() as session:
            trip = await breaker_repo.get(session, trip.id)
        out += ["", f"5. {names.get(approver, approver)} presses Resume:",
                _indent(trip_text(view_of(services, trip), names)),
                f"   The agent's next call: HTTP {status} ({message}). The proxy's max_budget is LiteLLM's spend "
                f"${proxy.users[litellm_user].spend} + what remains in tokenbot = "
                f"${proxy.users[litellm_user].max_budget:.2f}."]
    calls_made = [f"{m} {p}" for m, p, _ in proxy.calls]
    out += ["", f"6. The proxy's management calls, in order: {', '.join(dict.fromkeys(calls_made))}"]
    return out
