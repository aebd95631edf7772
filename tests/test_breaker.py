"""The runaway breaker (SPEC 12) through the served bot: a burst trips once, the person and their
approver get a DM, Pause / Resume / Ignore act once whoever presses and however often, every copy
updates in place, the fake LiteLLM proxy enforces the pause, and the limits API says why."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import aiohttp
import pytest

from bot.breaker import flows, trips
from bot.clock import SettableClock
from bot.enforce_config import BreakerSettings, EnforceSettings, LiteLLMEnforcer
from tests.conftest import API_TOKEN
from tests.fakes.litellm_api import FakeLiteLLM
from tests.support.approvals import TZ, buttons, click, dms, local, usage

ALICE, BOB, ADMIN, EVE = "U0ALICE", "U0BOB", "U0ADMIN", "U0EVE"
MASTER = "sk-master-test"
START = local(2026, 11, 20, 10)


@pytest.fixture(autouse=True)
def people(fake_slack) -> None:
    for user_id, name in ((ALICE, "alice"), (BOB, "bob"), (ADMIN, "admin"), (EVE, "eve")):
        fake_slack.add_user(user_id, name=name, email=f"{name}@acme.test")


@pytest.fixture
async def proxy() -> AsyncIterator[FakeLiteLLM]:
    async with FakeLiteLLM(MASTER) as fake:
        fake.add_user("alice@acme.test", spend="30", keys=("hash-alice-1",))
        yield fake


async def start(make_bot, proxy, *, mode: str = "alert", clock: SettableClock | None = None, **breaker):
    clock = clock or SettableClock(TZ, START)
    bot = await make_bot(clock=clock, approvers={ALICE: BOB}, admins=(ADMIN,),
                         identities={"alice@acme.test": ALICE}, litellm_master_key=MASTER,
                         enforce=EnforceSettings(litellm=LiteLLMEnforcer(url=proxy.url)),
                         breaker=BreakerSettings(mode=mode, window_minutes=15, min_usd=Decimal(20), factor=Decimal(5),
                                                 **breaker))
    return bot, clock


async def burst(bot, clock, n: int = 6, cost: str = "5", user: str = ALICE, prefix: str = "b", **fields) -> None:
    events = [usage(f"{prefix}{i}", user, cost, clock.now() - timedelta(seconds=30 * (n - i)),
                    metadata={"agent_id": "nightly-evals"}, **fields) for i in range(n)]
    status, body = await bot.post_usage({"events": events})  # one agent loop's calls, logged as one batch
    assert status == 200, body
    await bot.services.background.drain()


def trip_dms(fake, user: str) -> list[dict]:
    return [m for m in dms(fake, user) if "Runaway spend" in str(m.get("blocks"))]


async def press(bot, fake, user: str, action: str, owner: str = BOB) -> None:
    message = trip_dms(fake, owner)[-1]
    button = buttons(message["blocks"])[f"breaker_{action}"]
    status, _ = await click(bot, user, button, channel=f"D{owner}", message=message,
                            response_url=fake.response_url(f"click-{user}"))
    assert status == 200
    await bot.services.background.drain()


async def limits(bot) -> dict:
    _, body = await bot.get(f"/api/v1/limits/{ALICE}", headers={"Authorization": f"Bearer {API_TOKEN}"})
    return body


async def chat(proxy: FakeLiteLLM, key: str = "hash-alice-1") -> int:
    async with aiohttp.ClientSession() as http, http.post(
            proxy.url + "/chat/completions", headers={"Authorization": f"Bearer {key}"},
            json={"model": "gpt-4o", "messages": [], "mock_cost": "0.01"}) as response:
        return response.status


async def test_a_burst_trips_once_and_dms_the_person_and_their_approver(make_bot, fake_slack, proxy):
    bot, clock = await start(make_bot, proxy)
    await burst(bot, clock)  # $30 in 3 minutes, no usual spend: over min_usd $20
    for user in (ALICE, BOB):
        [dm] = trip_dms(fake_slack, user)
        text = str(dm["blocks"])
        assert "spent $30 in the last 15 minutes" in text and "$120 an hour" in text
        assert "nightly-evals" in text and "gpt-4o" in text
        assert set(buttons(dm["blocks"])) == {"breaker_pause", "breaker_ignore"}
    await burst(bot, clock, prefix="c")  # the same episode: no second trip
    assert len(trip_dms(fake_slack, BOB)) == 1
    [(status, subject)] = await bot.sql("SELECT status, subject FROM breaker_trips")
    assert (status, subject) == ("alert", f"user:{ALICE}")
    assert (await limits(bot))["allowed"] is True  # alert mode blocks nothing
    _, metrics = await bot.get("/metrics")
    assert "tokenbot_breaker_trips_total 1.0" in metrics


async def test_usual_spend_raises_the_bar(make_bot, fake_slack, proxy):
    bot, clock = await start(make_bot, proxy)
    history = [usage(f"h{d}", ALICE, "2000", clock.now() - timedelta(days=d)) for d in range(1, 15)]
    assert (await bot.post_usage({"events": history}))[0] == 200
    await burst(bot, clock)  # $30 < 5 x $20.83 usual per 15 min
    assert trip_dms(fake_slack, BOB) == []
    await burst(bot, clock, n=6, cost="20", prefix="big")  # $150 > $104
    assert len(trip_dms(fake_slack, BOB)) == 1


async def test_pause_blocks_everywhere_and_resume_restores(make_bot, fake_slack, proxy):
    bot, clock = await start(make_bot, proxy)
    await burst(bot, clock)
    await press(bot, fake_slack, EVE, "pause")  # not their approver: refused privately
    assert "Only <@U0ALICE>'s approver or an admin" in str(fake_slack.responses_to(f"click-{EVE}")[-1].args)
    await press(bot, fake_slack, ALICE, "pause", owner=ALICE)  # the person, without self_resume
    [(status,)] = await bot.sql("SELECT status FROM breaker_trips")
    assert status == "alert"

    await press(bot, fake_slack, BOB, "pause")
    await bot.services.background.drain()
    body = await limits(bot)
    assert body["allowed"] is False and body["reason"] == "paused"
    assert await chat(proxy) == 401  # the proxy refuses at once: her key is blocked
    for user in (ALICE, BOB):  # every copy updated in place
        [dm] = trip_dms(fake_slack, user)
        assert "Paused* by <@U0BOB>" in str(dm["blocks"])
        assert set(buttons(dm["blocks"])) == {"breaker_resume", "breaker_ignore"}

    await press(bot, fake_slack, BOB, "resume")
    await bot.services.background.drain()
    assert (await limits(bot))["allowed"] is True
    assert await chat(proxy) == 200
    assert proxy.users["alice@acme.test"].max_budget == pytest.approx(30 + 200 - 30 + 0.01, abs=0.02)
    [dm] = trip_dms(fake_slack, ALICE)
    assert "Resumed* by <@U0BOB>" in str(dm["blocks"]) and buttons(dm["blocks"]) == {}
    actions = [a for (a,) in await bot.sql("SELECT action FROM audit_log ORDER BY id") if a.startswith("breaker")]
    assert actions == ["breaker.tripped", "breaker.pause", "breaker.resume"]


async def test_pause_mode_blocks_at_once_and_auto_resumes(make_bot, fake_slack, proxy):
    bot, clock = await start(make_bot, proxy, mode="pause", auto_resume_minutes=30)
    await burst(bot, clock)
    await bot.services.background.drain()
    assert (await limits(bot))["allowed"] is False
    assert await chat(proxy) == 401
    [dm] = trip_dms(fake_slack, BOB)
    assert set(buttons(dm["blocks"])) == {"breaker_resume", "breaker_ignore"} and "Resumes by itself" in str(dm)
    clock.advance(minutes=31)
    assert await flows.auto_resume(bot.services) == 1
    await bot.services.background.drain()
    assert (await limits(bot))["allowed"] is True and await chat(proxy) == 200


async def test_resume_after_the_month_rolled_over_restores_the_new_months_limit(make_bot, fake_slack, proxy):
    clock = SettableClock(TZ, local(2026, 11, 30, 23, 50))
    bot, clock = await start(make_bot, proxy, mode="pause", clock=clock)
    await burst(bot, clock, n=6, cost="40")  # $240: November over its $200 too
    await bot.services.background.drain()
    clock.set(local(2026, 12, 1, 9))
    await press(bot, fake_slack, BOB, "resume")
    await bot.services.background.drain()
    body = await limits(bot)
    assert body["period"] == "2026-12" and body["allowed"] is True
    # LiteLLM's own $30 + December's whole $200
    assert proxy.users["alice@acme.test"].max_budget == 230.0


async def test_ignore_silences_for_24_hours(make_bot, fake_slack, proxy):
    bot, clock = await start(make_bot, proxy)
    await burst(bot, clock)
    await press(bot, fake_slack, BOB, "ignore")
    [dm] = trip_dms(fake_slack, ALICE)
    assert "marked this as expected" in str(dm["blocks"]) and buttons(dm["blocks"]) == {}
    clock.advance(hours=2)
    await burst(bot, clock, prefix="later")
    assert len(trip_dms(fake_slack, BOB)) == 1  # still ignored
    clock.advance(hours=23)
    await burst(bot, clock, prefix="next-day")
    assert len(trip_dms(fake_slack, BOB)) == 2  # a new episode


async def test_an_unattributed_key_goes_to_admins(make_bot, fake_slack, proxy):
    bot, clock = await start(make_bot, proxy)
    await burst(bot, clock, user="svc-batch-key")
    [dm] = trip_dms(fake_slack, ADMIN)
    assert "svc-batch-key" in str(dm["blocks"]) and "admins decide" in str(dm["blocks"])
    assert trip_dms(fake_slack, BOB) == []
    await press(bot, fake_slack, BOB, "pause", owner=ADMIN)  # an approver of someone else: refused
    await press(bot, fake_slack, ADMIN, "pause", owner=ADMIN)
    [(status, subject)] = await bot.sql("SELECT status, subject FROM breaker_trips")
    assert (status, subject) == ("paused", "key:svc-batch-key")


async def test_double_clicks_and_two_processes_make_one_change(make_bot, fake_slack, proxy):
    bot, clock = await start(make_bot, proxy)
    other, _ = await start(make_bot, proxy, clock=clock)  # a second process on the same database
    await burst(bot, clock)
    [(trip_id,)] = await bot.sql("SELECT id FROM breaker_trips")
    results = await asyncio.gather(
        flows.press(bot.services, trip_id, BOB, "pause"), flows.press(other.services, trip_id, ADMIN, "pause"),
        flows.press(bot.services, trip_id, BOB, "pause"), flows.press(other.services, trip_id, BOB, "pause"))
    assert sorted(r.outcome for r in results) == ["already", "already", "already", "done"]
    rows = await bot.sql("SELECT action FROM audit_log WHERE action = 'breaker.pause'")
    assert len(rows) == 1


async def test_two_processes_trip_one_episode(make_bot, fake_slack, proxy):
    bot, clock = await start(make_bot, proxy)
    other, _ = await start(make_bot, proxy, clock=clock)
    events = [usage(f"p{i}", ALICE, "5", clock.now() - timedelta(seconds=10 * i)) for i in range(6)]
    await asyncio.gather(bot.post_usage({"events": events[:3]}), other.post_usage({"events": events[3:]}))
    detectors = [s.ingestor.after_ingest[-1].__self__ for s in (bot.services, other.services)]
    await asyncio.gather(*(trips.confirm_and_trip(d.services, d, f"user:{ALICE}", clock.now()) for d in detectors))
    await bot.services.background.drain()
    await other.services.background.drain()
    assert len(await bot.sql("SELECT id FROM breaker_trips")) == 1
    assert len(trip_dms(fake_slack, BOB)) == 1


async def test_clocks_that_jump(make_bot, fake_slack, proxy):
    bot, clock = await start(make_bot, proxy)
    detector = bot.services.ingestor.after_ingest[-1].__self__
    await burst(bot, clock, n=2, cost="5")
    clock.advance(hours=-3)  # the clock jumps back: the window never goes negative
    assert detector.windows.total(f"user:{ALICE}", int(clock.now().timestamp() // 60)) == 0
    clock.advance(hours=6)  # and forward: old buckets fall out
    await burst(bot, clock, n=2, cost="5", prefix="fwd")
    assert detector.windows.total(f"user:{ALICE}", int(clock.now().timestamp() // 60)) == Decimal(10)
    assert trip_dms(fake_slack, BOB) == []


async def test_admin_breaker_lists_paused_and_recent_trips(make_bot, fake_slack, proxy):
    bot, clock = await start(make_bot, proxy, mode="pause")
    await burst(bot, clock)
    status, _ = await bot.command("admin breaker", user_id=ADMIN)
    assert status == 200
    calls = await fake_slack.wait_for("response_url", 1, where=lambda c: c.path == f"/response/cmd-{ADMIN}")
    text = str(calls[-1].args)
    assert "Paused now" in text and "<@U0ALICE>" in text and "$30 in 15 min" in text


async def test_two_app_instances_pressing_pause_at_once_through_slack(make_bot, fake_slack, proxy):
    bot, clock = await start(make_bot, proxy)
    other, _ = await start(make_bot, proxy, clock=clock)  # a second process on the same database
    await burst(bot, clock)
    message = trip_dms(fake_slack, BOB)[-1]
    button = buttons(message["blocks"])["breaker_pause"]
    answers = await asyncio.gather(
        click(bot, BOB, button, channel=f"D{BOB}", message=message, response_url=fake_slack.response_url("p-bob")),
        click(other, ADMIN, button, channel=f"D{BOB}", message=message,
              response_url=fake_slack.response_url("p-admin")))
    assert [status for status, _ in answers] == [200, 200]
    for instance in (bot, other):
        await instance.services.background.drain()
    assert len(await bot.sql("SELECT id FROM audit_log WHERE action = 'breaker.pause'")) == 1
    [(status, decided_by)] = await bot.sql("SELECT status, decided_by FROM breaker_trips")
    assert status == "paused"
    loser = "p-admin" if decided_by == BOB else "p-bob"
    assert "already paused" in str(fake_slack.responses_to(loser)[-1].args)
    for user in (ALICE, BOB):
        assert f"Paused* by <@{decided_by}>" in str(trip_dms(fake_slack, user)[-1]["blocks"])
    await bot.services.background.drain()
    assert await chat(proxy) == 401


async def test_the_next_digest_names_yesterdays_trips(make_bot, fake_slack, proxy):
    from datetime import time

    from bot.digests.builder import build_digest
    from bot.digests.periods import Subscription
    from bot.views.digest import digest_blocks, digest_text

    bot, clock = await start(make_bot, proxy)
    await burst(bot, clock)
    clock.advance(days=1)
    view = await build_digest(bot.services, Subscription("C0SPEND", time(9)), START.astimezone(TZ).date(),
                              START.astimezone(TZ).date())
    assert len(view.breaker_trips) == 1 and "<@U0ALICE>: $30 in 15 min on gpt-4o" in view.breaker_trips[0]
    assert "Runaway breaker" in str(digest_blocks(view)) and "Runaway breaker" in digest_text(view)
    hidden = await build_digest(bot.services, Subscription("C0SPEND", time(9), leaderboard="anonymous"),
                                START.astimezone(TZ).date(), START.astimezone(TZ).date())
    assert hidden.breaker_trips == ("The runaway breaker tripped 1 time.",)


async def test_the_audit_history_tells_breaker_steps(make_bot, fake_slack, proxy):
    from bot.approvals.builder import audit_history
    from bot.views.audit import audit_text

    bot, clock = await start(make_bot, proxy)
    await burst(bot, clock)
    await press(bot, fake_slack, BOB, "pause")
    await press(bot, fake_slack, BOB, "resume")
    text = audit_text(ALICE, await audit_history(bot.services, ALICE), {ALICE: "Alice", BOB: "Bob"})
    for line in ("the runaway breaker tripped for Alice: $30 in the window", "Bob paused Alice (runaway breaker)",
                 "Bob resumed Alice (runaway breaker)"):
        assert line in text


async def test_a_burst_split_over_two_processes_trips_once(make_bot, fake_slack, proxy):
    bot, clock = await start(make_bot, proxy)
    other, _ = await start(make_bot, proxy, clock=clock)
    events = [usage(f"s{i}", ALICE, "5", clock.now() - timedelta(seconds=20 * i)) for i in range(6)]
    # each process sees $15 of the $30: neither alone is over $20, both past half of it
    await asyncio.gather(bot.post_usage({"events": events[0::2]}), other.post_usage({"events": events[1::2]}))
    for instance in (bot, other):
        await instance.services.background.drain()
    from sqlalchemy import select

    from storage.models import BreakerTrip

    async with bot.services.db.session() as session:
        assert list(await session.scalars(select(BreakerTrip.window_usd))) == [Decimal(30)]
    assert len(trip_dms(fake_slack, BOB)) == 1


def test_the_jobs_exist_when_configured(settings):
    from bot.wiring import build_services, scheduled_jobs

    plain = {spec.id for spec in scheduled_jobs(build_services(settings, with_slack=False))}
    assert not plain & {"enforce-deliver", "enforce-rollover", "breaker-auto-resume"}
    from dataclasses import replace

    configured = replace(settings, enforce=EnforceSettings(litellm=LiteLLMEnforcer(url="http://x:4000")),
                         breaker=BreakerSettings(mode="pause"))
    ids = {spec.id for spec in scheduled_jobs(build_services(configured, with_slack=False))}
    assert {"enforce-deliver", "enforce-rollover", "breaker-auto-resume"} <= ids
