"""Team budgets at the enforcers (SPEC 11 + 13), through the served bot against the fakes of LiteLLM's
management API and OpenAI's spend limits: an approved team raise, the team's 100% crossing and the
month rollover push `team:<name>` to the proxy's teams (its name and aliases the proxy knows) and the
team's limit to every OpenAI project mapped to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import aiohttp
import pytest

from bot.approvals import messaging, service
from bot.clock import SettableClock
from bot.enforce import push
from bot.enforce.status import enforcer_status_lines
from bot.enforce_config import EnforceSettings, LiteLLMEnforcer, OpenAIEnforcer
from bot.teams.config import TeamConfig
from bot.teams.requests import ask_for_team
from bot.teams.sync import sync_teams
from tests.fakes.litellm_api import FakeLiteLLM
from tests.fakes.openai_admin import FakeOpenAIAdmin
from tests.support.approvals import TZ, local, usage

ALICE, BOB, ADMIN = "U0ALICE", "U0BOB", "U0ADMIN"
MASTER, ADMIN_KEY = "sk-master-test", "sk-admin-test"
START = local(2026, 11, 20, 10)
TEAMS = {
    "platform": TeamConfig("platform", members=(ALICE,), lead=BOB, monthly_usd=Decimal(100),
                           aliases=("litellm-team-7", "proj_abc")),
    "ghost": TeamConfig("ghost", members=(BOB,), monthly_usd=Decimal(20), aliases=("nope",)),
    "free": TeamConfig("free", monthly_usd=None, aliases=("litellm-free",)),
}


@pytest.fixture(autouse=True)
def people(fake_slack) -> None:
    for user_id, name in ((ALICE, "alice"), (BOB, "bob"), (ADMIN, "admin")):
        fake_slack.add_user(user_id, name=name, email=f"{name}@acme.test")


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeLiteLLM, FakeOpenAIAdmin]]:
    async with FakeLiteLLM(MASTER) as proxy, FakeOpenAIAdmin(ADMIN_KEY) as openai_fake:
        proxy.add_user("alice@acme.test", spend="30", keys=("hash-alice-1",))
        proxy.add_team("litellm-team-7", spend="12", keys=("hash-team-1",), user_id="alice@acme.test")
        proxy.add_team("litellm-free", spend="5", keys=("hash-free-1",))
        yield proxy, openai_fake


async def start(make_bot, fakes, clock: SettableClock | None = None):
    proxy, openai_fake = fakes
    clock = clock or SettableClock(TZ, START)
    bot = await make_bot(
        clock=clock, admins=(ADMIN,), identities={"alice@acme.test": ALICE}, teams=TEAMS,
        enforce=EnforceSettings(litellm=LiteLLMEnforcer(url=proxy.url),
                                openai=OpenAIEnforcer(projects={"proj_abc": "platform", "proj_free": "free"},
                                                      amounts={"proj_free": Decimal(7)})),
        litellm_master_key=MASTER, openai_admin_key=ADMIN_KEY, openai_base_url=openai_fake.url)
    await sync_teams(bot.services)
    return bot, clock


async def spend(bot, n: int, cost: str, when, **fields) -> None:
    status, body = await bot.post_usage({"events": [usage(n, ALICE, cost, when, **fields)]})
    assert status == 200 and body["accepted"] == 1, body
    await bot.services.background.drain()


async def approve_team_raise(bot, amount: str) -> None:
    outcome, message = await ask_for_team(bot.services, BOB, "platform", amount, "launch week", via="command")
    assert outcome == "created", message
    [(request_id,)] = await bot.sql("SELECT id FROM budget_requests WHERE requester = 'team:platform' "
                                    "AND status = 'pending'")
    decided = await service.decide(bot.services, request_id, ADMIN, approve=True)
    assert decided.outcome == "approved"
    await messaging.after_decision(bot.services, request_id, decided=decided)  # what a click does next
    await bot.services.background.drain()


async def call(proxy: FakeLiteLLM, key: str, cost: str) -> int:
    async with aiohttp.ClientSession() as http, http.post(
            proxy.url + "/chat/completions", headers={"Authorization": f"Bearer {key}"},
            json={"model": "gpt-4o", "messages": [], "mock_cost": cost}) as response:
        return response.status


async def subjects(bot) -> dict[str, tuple[int, int, str | None]]:
    rows = await bot.sql("SELECT enforcer, subject, version, pushed_version, last_error FROM enforce_pushes")
    return {f"{e} {s}": (v, p, err) for e, s, v, p, err in rows}


async def test_an_approved_team_raise_moves_the_proxy_team_and_the_mapped_project(make_bot, fakes):
    proxy, openai_fake = fakes
    bot, _ = await start(make_bot, fakes)
    await spend(bot, 1, "70", START - timedelta(hours=1), team="litellm-team-7")  # platform: $70 of $100
    await approve_team_raise(bot, "50")  # $150 this month: $80 left

    team = proxy.teams["litellm-team-7"]
    assert team.max_budget == 92.0  # LiteLLM's own $12 + exactly the $80 tokenbot says is left
    assert openai_fake.limits == {"proj_abc": 15000}  # the team's limit with the raise, in cents
    # the team's name and its OpenAI alias are not proxy teams: asked, skipped, never updated
    assert ("GET", "/team/info", {"team_id": "platform"}) in proxy.calls
    assert ("GET", "/team/info", {"team_id": "proj_abc"}) in proxy.calls
    assert proxy.team_budget_calls("platform") == proxy.team_budget_calls("proj_abc") == []
    # the decision marked the team's subjects (not a "user:team:platform"), and each was pushed once
    assert await subjects(bot) == {"litellm team:platform": (1, 1, None), "openai project:proj_abc": (1, 1, None)}

    assert await call(proxy, "hash-team-1", "79.99") == 200  # the team key may spend what is left
    assert await call(proxy, "hash-team-1", "0.01") == 200  # 91.99 < 92: the call that reaches it
    assert await call(proxy, "hash-team-1", "0.01") == 200  # 92 is not over 92 (the proxy checks spend > budget)
    assert await call(proxy, "hash-team-1", "0.01") == 400  # and no more: the team is over its max_budget
    assert await call(proxy, "hash-alice-1", "0.01") == 200  # her own key is held to her own budget


async def test_a_team_over_its_budget_is_refused_by_the_proxy(make_bot, fakes):
    proxy, openai_fake = fakes
    bot, _ = await start(make_bot, fakes)
    assert await push.mark_everyone(bot.services) == 4  # two teams with budgets, two projects (no spender yet)
    await bot.services.background.drain()
    assert proxy.teams["litellm-team-7"].max_budget == 112.0  # $12 + $100
    assert proxy.team_budget_calls("litellm-free") == []  # team free has no monthly_usd
    assert openai_fake.limits == {"proj_abc": 10000, "proj_free": 700}
    assert await call(proxy, "hash-team-1", "3") == 200  # LiteLLM's count: $15

    await spend(bot, 2, "100.50", START - timedelta(minutes=5))  # alice's spend, her primary team's: over
    assert proxy.teams["litellm-team-7"].max_budget == 14.999999  # nothing left, refused at once
    assert await call(proxy, "hash-team-1", "0.01") == 400
    assert openai_fake.limits["proj_abc"] == 10000  # OpenAI enforces the project's own count of the limit
    [(version, pushed)] = await bot.sql("SELECT version, pushed_version FROM enforce_pushes "
                                        "WHERE subject = 'team:platform'")
    assert version == pushed == 2  # the 100% crossing marked and pushed it, once


async def test_the_month_rollover_pushes_teams_again(make_bot, fakes):
    proxy, openai_fake = fakes
    bot, clock = await start(make_bot, fakes, clock=SettableClock(TZ, local(2026, 11, 30, 20)))
    await spend(bot, 1, "60", clock.now() - timedelta(hours=1), team="litellm-team-7")
    await approve_team_raise(bot, "40")  # November: $140, $80 left
    assert proxy.teams["litellm-team-7"].max_budget == 92.0
    assert openai_fake.limits["proj_abc"] == 14000
    proxy.teams["litellm-team-7"].spend = Decimal("50")  # spent through the proxy meanwhile

    clock.set(local(2026, 12, 1, 0, 1))
    await push.rollover(bot.services)
    await bot.services.background.drain()
    assert proxy.teams["litellm-team-7"].max_budget == 150.0  # LiteLLM's $50 + December's $100 (no raise)
    assert openai_fake.limits["proj_abc"] == 10000


async def test_an_unknown_proxy_team_is_skipped_and_the_others_are_pushed(make_bot, fakes, fake_slack):
    proxy, openai_fake = fakes
    bot, _ = await start(make_bot, fakes)
    await spend(bot, 1, "10", START - timedelta(hours=1))  # alice's, and her primary team platform's
    assert await push.mark_everyone(bot.services) == 5
    await bot.services.background.drain()
    rows = await subjects(bot)
    assert all(pushed == version and error is None for version, pushed, error in rows.values()), rows
    assert "litellm team:ghost" in rows and "litellm team:free" not in rows  # no monthly_usd: nothing pushed
    assert proxy.team_budget_calls("ghost") == proxy.team_budget_calls("nope") == []
    assert proxy.users["alice@acme.test"].max_budget == 220.0  # $30 + (200 - 10)
    assert proxy.teams["litellm-team-7"].max_budget == 102.0  # $12 + (100 - 10)
    assert openai_fake.limits == {"proj_abc": 10000, "proj_free": 700}  # free: no team budget, its amount

    lines = "\n".join(await enforcer_status_lines(bot.services))
    assert "team budgets: platform, ghost" in lines
    assert "Team platform: max_budget $102.00 on litellm-team-7; not on the proxy: platform, proj_abc" in lines
    assert "Team ghost: not on the proxy (ghost, nope), nothing pushed" in lines
    assert "projects proj_abc (team platform), proj_free (team free)" in lines
    status, _ = await bot.command("admin status", user_id=ADMIN)
    assert status == 200
    calls = await fake_slack.wait_for("response_url", 1, where=lambda c: c.status == 200)
    assert "Team ghost: not on the proxy (ghost, nope)" in str(calls[-1].args)
