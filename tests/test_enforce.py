"""Enforcers (SPEC 11) against local fakes of LiteLLM's management API and OpenAI's spend limits,
through the served bot: decisions take effect where calls are made, in order, newest wins."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import aiohttp
import pytest

from bot.approvals import service
from bot.clock import SettableClock
from bot.enforce import openai_limits, push
from bot.enforce.litellm import EnforcerError, LiteLLMClient, push_team
from bot.enforce_config import EnforceSettings, LiteLLMEnforcer, OpenAIEnforcer
from tests.fakes.litellm_api import FakeLiteLLM
from tests.fakes.openai_admin import FakeOpenAIAdmin
from tests.support.approvals import TZ, local, usage

ALICE, BOB, ADMIN = "U0ALICE", "U0BOB", "U0ADMIN"
MASTER = "sk-master-test"
START = local(2026, 11, 20, 10)


@pytest.fixture(autouse=True)
def people(fake_slack) -> None:
    for user_id, name in ((ALICE, "alice"), (BOB, "bob"), (ADMIN, "admin")):
        fake_slack.add_user(user_id, name=name, email=f"{name}@acme.test")


@pytest.fixture
async def proxy() -> AsyncIterator[FakeLiteLLM]:
    async with FakeLiteLLM(MASTER) as fake:
        fake.add_user("alice@acme.test", spend="30", keys=("hash-alice-1", "hash-alice-2"))
        yield fake


async def start(make_bot, proxy: FakeLiteLLM, clock: SettableClock | None = None, **overrides):
    clock = clock or SettableClock(TZ, START)
    values = dict(clock=clock, approvers={ALICE: BOB}, admins=(ADMIN,), identities={"alice@acme.test": ALICE},
                  enforce=EnforceSettings(litellm=LiteLLMEnforcer(url=proxy.url)), litellm_master_key=MASTER)
    values.update(overrides)
    bot = await make_bot(**values)
    return bot, clock


async def spend(bot, n: int, cost: str, when) -> None:
    status, _ = await bot.post_usage({"events": [usage(n, ALICE, cost, when)]})
    assert status == 200


async def approve(bot, amount: str, scope: str = "month") -> None:
    created = await service.create_request(bot.services, ALICE, amount, "evals", scope)
    assert (await service.decide(bot.services, created.request_id, BOB, approve=True)).outcome == "approved"


async def ask(bot, text: str, user: str = ADMIN) -> dict:
    """`/tokens text` as `user`; the ephemeral answer (after the background work it started)."""
    name = f"cmd-{user}"
    before = len([c for c in bot.fake_slack.responses_to(name) if c.status == 200])
    status, body = await bot.command(text, user_id=user)
    assert status == 200, body
    calls = await bot.fake_slack.wait_for(
        "response_url", before + 1, where=lambda c: c.path == f"/response/{name}" and c.status == 200)
    await bot.services.background.drain()
    return calls[-1].args


async def call(proxy: FakeLiteLLM, key: str, cost: str) -> int:
    async with aiohttp.ClientSession() as http, http.post(
            proxy.url + "/chat/completions", headers={"Authorization": f"Bearer {key}"},
            json={"model": "gpt-4o", "messages": [], "mock_cost": cost}) as response:
        return response.status


async def test_an_approval_makes_the_proxy_allow_exactly_the_new_limit(make_bot, proxy):
    bot, _clock = await start(make_bot, proxy)
    await spend(bot, 1, "80", START - timedelta(hours=1))  # tokenbot saw $80 (LiteLLM's own count: $30)
    await approve(bot, "50")  # limit 200 -> 250: $170 left
    assert await push.deliver_due(bot.services) == 1

    user = proxy.users["alice@acme.test"]
    assert user.max_budget == 200.0  # LiteLLM's $30 + tokenbot's $170 left
    assert await call(proxy, "hash-alice-1", "169.99") == 200
    assert await call(proxy, "hash-alice-1", "0.01") == 200  # spend 199.99 < 200: the call that reaches it
    assert await call(proxy, "hash-alice-2", "0.01") == 400  # and nothing more, on any of her keys
    # every management call carried the master key; the Slack id itself is not a proxy user
    assert ("GET", "/user/info", {"user_id": ALICE}) in proxy.calls
    [(version, pushed, error)] = await bot.sql("SELECT version, pushed_version, last_error FROM enforce_pushes")
    assert (version, pushed, error) == (1, 1, None)
    assert await push.deliver_due(bot.services) == 0  # pushed means done


async def test_set_budget_pushes_and_kicks_at_once(make_bot, proxy):
    bot, _ = await start(make_bot, proxy)
    await ask(bot, "admin set-budget <@U0ALICE> 500")
    assert proxy.users["alice@acme.test"].max_budget == 530.0


async def test_enforcer_down_for_an_hour_then_back_newest_wins_in_order(make_bot, proxy):
    bot, clock = await start(make_bot, proxy)
    proxy.failing = True
    await approve(bot, "50")   # 250
    assert await push.deliver_due(bot.services) == 0
    clock.advance(minutes=20)
    await approve(bot, "100", scope="standing")  # 350
    await push.deliver_due(bot.services)
    clock.advance(minutes=20)
    await ask(bot, "admin set-budget <@U0ALICE> 120")  # lowered: 120 + 50 = 170
    [(version, pushed, attempts, error)] = await bot.sql(
        "SELECT version, pushed_version, attempts, last_error FROM enforce_pushes")
    assert (version, pushed) == (3, 0) and attempts >= 1 and "503" in error
    assert proxy.users["alice@acme.test"].max_budget is None  # nothing took effect on the proxy

    clock.advance(minutes=25)  # an hour down
    proxy.failing = False
    assert await push.deliver_due(bot.services) == 1
    # the newest decision, once: never the older 250 or 350 after it
    assert proxy.budget_calls("alice@acme.test") == [200.0]  # $30 + (170 - 0 spent)
    assert await push.deliver_due(bot.services) == 0
    [(version, pushed)] = await bot.sql("SELECT version, pushed_version FROM enforce_pushes")
    assert version == pushed == 3


async def test_admin_status_shows_failures_and_admins_hear_once(make_bot, proxy, fake_slack):
    bot, clock = await start(make_bot, proxy)
    proxy.failing = True
    for minutes in (0, 10, 20, 40):
        clock.set(START + timedelta(minutes=minutes))
        async with bot.services.db.write() as session:
            await push.mark_person(bot.services, session, ALICE)
        await push.deliver_due(bot.services)
    told = [m for m in fake_slack.messages_in("D" + ADMIN) if "LiteLLM" in (m.get("text") or "")]
    assert len(told) == 1  # once per failing spell, however many failures
    text = str(await ask(bot, "admin status"))
    assert "LiteLLM proxy failing" in text and "LiteLLM proxy*: failing since" in text and "1 push waiting" in text
    assert "HTTP 503" in text

    proxy.failing = False
    clock.set(START + timedelta(hours=2))
    assert await push.deliver_due(bot.services) == 1
    _status, body = await bot.get("/metrics")
    assert 'tokenbot_enforcer_push_failures_total{enforcer="litellm"} 4.0' in body
    assert 'tokenbot_enforcer_pushes_total{enforcer="litellm"} 1.0' in body


async def test_master_key_is_checked(make_bot, proxy):
    bot, _ = await start(make_bot, proxy, litellm_master_key="sk-wrong")
    await approve(bot, "50")
    assert await push.deliver_due(bot.services) == 0
    [(error,)] = await bot.sql("SELECT last_error FROM enforce_pushes")
    assert "401" in error and proxy.users["alice@acme.test"].max_budget is None


async def test_team_push_sets_the_team_budget(proxy):
    proxy.add_team("platform", spend="120")
    async with aiohttp.ClientSession() as http:
        client = LiteLLMClient(proxy.url, MASTER, http)
        await push_team(client, "platform", spend=Decimal("120"), remaining=Decimal("880"))
        assert proxy.teams["platform"].max_budget == 1000.0
        assert proxy.calls[-1] == ("POST", "/team/update", {"team_id": "platform", "max_budget": 1000.0})
        # nothing left: a micro-dollar under the spend (the proxy refuses a team only past max_budget)
        await push_team(client, "platform", spend=Decimal("120"), remaining=Decimal("-5"))
        assert proxy.teams["platform"].max_budget == 119.999999
        with pytest.raises(EnforcerError, match="HTTP 404"):  # /team/update of a team the proxy lacks
            await push_team(client, "ghost", spend=Decimal(0), remaining=Decimal(1))


async def test_openai_project_gets_the_budget_in_cents_and_a_pause_gets_one_cent(make_bot, proxy):
    async with FakeOpenAIAdmin("sk-admin-test") as openai_fake:
        bot, _ = await start(make_bot, proxy, openai_admin_key="sk-admin-test", openai_base_url=openai_fake.url,
                             enforce=EnforceSettings(openai=OpenAIEnforcer(projects={"proj_abc": "platform"},
                                                                           amounts={"proj_abc": Decimal("1234.567")})))
        assert await push.mark_everyone(bot.services) == 1
        await bot.services.background.drain()
        assert openai_fake.limits == {"proj_abc": 123456}
        assert openai_fake.calls[-1] == ("POST", "proj_abc", {"currency": "USD", "interval": "month",
                                                               "threshold_amount": 123456})
        client = openai_limits.openai_client(bot.settings)
        try:
            assert await openai_limits.push_project(client, "proj_abc", limit=Decimal(50), paused=True) == {
                "project": "proj_abc", "threshold_amount": 1}
            assert openai_fake.limits == {"proj_abc": 1}  # the smallest limit the API takes
            openai_fake.failing = True
            with pytest.raises(EnforcerError, match="OpenAI spend_limit proj_abc"):
                await openai_limits.push_project(client, "proj_abc", limit=Decimal(50), paused=False)
        finally:
            await client.close()
        openai_fake.admin_key = "sk-other"
        openai_fake.failing = False
        async with bot.services.db.write() as session:
            await push.mark_subject(bot.services, session, "project:proj_abc")
        await push.deliver_due(bot.services)
        [(error,)] = await bot.sql("SELECT last_error FROM enforce_pushes")
        assert "AuthenticationError" in error  # the admin key is checked


async def test_admin_status_is_for_admins(make_bot, proxy):
    bot, _ = await start(make_bot, proxy)
    answer = await ask(bot, "admin status", user=ALICE)
    assert "Only tokenbot admins can see the enforcers' status" in str(answer)



async def test_the_100_percent_crossing_leaves_the_proxy_nothing(make_bot, proxy):
    bot, _clock = await start(make_bot, proxy)
    await approve(bot, "0.01")  # first push: $30 + ($200.01 - 0)
    await push.deliver_due(bot.services)
    assert proxy.users["alice@acme.test"].max_budget == 230.01
    await spend(bot, 2, "205", START - timedelta(minutes=5))  # spent elsewhere: tokenbot says nothing is left
    await bot.services.background.drain()
    assert proxy.users["alice@acme.test"].max_budget == 30.0  # the proxy refuses her next call
    assert await call(proxy, "hash-alice-1", "0.01") == 400


async def test_month_rollover_pushes_the_new_months_limit(make_bot, proxy):
    clock = SettableClock(TZ, local(2026, 11, 30, 20))
    bot, clock = await start(make_bot, proxy, clock=clock)
    await spend(bot, 1, "150", clock.now() - timedelta(hours=1))
    await approve(bot, "100")  # November: 300 - 150 = 150 left
    await push.deliver_due(bot.services)
    assert proxy.users["alice@acme.test"].max_budget == 180.0
    proxy.users["alice@acme.test"].spend = Decimal("170")  # she spent $140 more through the proxy
    clock.set(local(2026, 12, 1, 0, 1))
    await push.rollover(bot.services)
    await bot.services.background.drain()
    assert proxy.users["alice@acme.test"].max_budget == 370.0  # LiteLLM's $170 + December's $200


async def test_rollover_also_pushes_people_never_pushed_before(make_bot, proxy):
    bot, _ = await start(make_bot, proxy)
    await spend(bot, 1, "40", START - timedelta(hours=1))
    assert await push.mark_everyone(bot.services) == 1
    await bot.services.background.drain()
    assert proxy.users["alice@acme.test"].max_budget == 190.0  # $30 + (200 - 40)


async def test_a_clock_that_jumps_back_does_not_hold_pushes_for_hours(make_bot, proxy):
    bot, clock = await start(make_bot, proxy)
    proxy.failing = True
    await approve(bot, "50")
    for _ in range(8):  # backoff grows to 10 minutes
        clock.advance(minutes=11)
        await push.deliver_due(bot.services)
    proxy.failing = False
    clock.advance(hours=-6)  # NTP fixes a clock that ran ahead
    assert await push.deliver_due(bot.services) == 1  # not 6 hours later
    assert proxy.users["alice@acme.test"].max_budget == 280.0  # $30 + $250 left
