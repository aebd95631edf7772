"""limit.changed through the durable outbox (SPEC 7.4): signed with Standard Webhooks, delivered
once per decision to a real local receiver, retried with backoff, across restarts, one process
at a time."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from bot import outbox
from bot.approvals import flows, service
from bot.clock import SettableClock
from bot.scheduler import build_scheduler
from bot.wiring import scheduled_jobs
from tests.support.approvals import TZ, Receiver, approval_messages, buttons, click, local, serve_receiver
from tests.support.signing import standard_webhook_signature

SECRET = "whsec_" + base64.b64encode(b"limits-webhook-secret-for-tests!").decode()
ALICE, BOB = "U0ALICE", "U0BOB"
START = local(2026, 11, 20, 10)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with serve_receiver() as rec:
        yield rec


async def start(make_bot, receiver: Receiver, clock: SettableClock | None = None):
    clock = clock or SettableClock(TZ, START)
    bot = await make_bot(clock=clock, approvers={ALICE: BOB}, limits_webhook_url=receiver.url,
                         limits_webhook_secret=SECRET)
    return bot, clock


async def approved(bot, amount: str = "50", scope: str = "month") -> int:
    created = await service.create_request(bot.services, ALICE, amount, "evals", scope)
    assert created.outcome == "created"
    assert (await service.decide(bot.services, created.request_id, BOB, approve=True)).outcome == "approved"
    return created.request_id


def check_signature(headers: dict[str, str], body: bytes) -> None:
    """Both an independent HMAC and the standardwebhooks package accept the delivery."""
    expected = standard_webhook_signature(body, SECRET, headers["webhook-id"], int(headers["webhook-timestamp"]))
    assert expected in headers["webhook-signature"].split(" ")
    Webhook(SECRET).verify(body, headers)


async def outbox_rows(bot) -> list[tuple]:
    return await bot.sql("SELECT msg_id, attempts, delivered_at IS NOT NULL, last_error FROM outbox ORDER BY id")


async def test_a_decision_delivers_one_signed_limit_changed_event(make_bot, fake_slack, receiver):
    bot, _ = await start(make_bot, receiver)
    await flows.submit_request(bot.services, ALICE, "50", "evals", "month")
    message = approval_messages(fake_slack, BOB)[-1]
    await click(bot, BOB, buttons(message["blocks"])["approve_request"], channel="DU0BOB", message=message)
    await bot.services.background.drain()  # the decision kicked delivery at once

    [(headers, body, status)] = receiver.received
    assert status == 204
    check_signature(headers, body)
    [(request_id,)] = await bot.sql("SELECT id FROM budget_requests")
    assert headers["webhook-id"] == f"limit-changed-{request_id}"
    event = json.loads(body)
    assert event["type"] == "limit.changed"
    assert datetime.fromisoformat(event["timestamp"]) == START
    assert event["data"] == {"user": ALICE, "period": "2026-11", "limit_usd": "250", "previous_limit_usd": "200",
                             "scope": "this_month", "request_id": request_id, "decided_by": BOB}
    assert await outbox_rows(bot) == [(f"limit-changed-{request_id}", 1, True, None)]

    assert await outbox.deliver_due(bot.services) == 0  # delivered means done
    assert len(receiver.received) == 1

    # a deny changes no limit and sends nothing; the next approval is its own event
    denied = await service.create_request(bot.services, ALICE, "10", None, "month")
    await service.decide(bot.services, denied.request_id, BOB, approve=False, note="no")
    second = await approved(bot, "30", "standing")
    await outbox.deliver_due(bot.services)
    assert [e["data"]["request_id"] for e in receiver.accepted] == [request_id, second]
    assert receiver.accepted[1]["data"] | {"request_id": 0} == {
        "user": ALICE, "period": "2026-11", "limit_usd": "280", "previous_limit_usd": "250", "scope": "from_now_on",
        "request_id": 0, "decided_by": BOB}
    assert len({h["webhook-id"] for h, _, _ in receiver.received}) == 2


async def test_retried_with_backoff_until_accepted_also_after_a_restart(make_bot, receiver):
    receiver.fail = 3
    bot, clock = await start(make_bot, receiver)
    request_id = await approved(bot)
    assert await outbox.deliver_due(bot.services) == 0  # 1st attempt: 503
    [(msg_id, attempts, delivered, error)] = await outbox_rows(bot)
    assert (attempts, delivered, error) == (1, False, "HTTP 503: ")
    [(next_at,)] = await bot.sql("SELECT next_attempt_at FROM outbox")
    assert str(next_at).startswith("2026-11-20 15:00:15")  # 10:00 EST + 15 s, stored in UTC
    assert await outbox.deliver_due(bot.services) == 0 and len(receiver.received) == 1  # not before the backoff

    for attempt, wait in ((2, 15), (3, 30)):
        clock.advance(seconds=wait - 1)
        await outbox.deliver_due(bot.services)
        assert len(receiver.received) == attempt - 1  # still backing off
        clock.advance(seconds=1)
        await outbox.deliver_due(bot.services)
        assert len(receiver.received) == attempt

    # the process restarts: a new one (its own engine, same database) picks the row up
    restarted = await make_bot(clock=clock, approvers={ALICE: BOB}, limits_webhook_url=receiver.url,
                               limits_webhook_secret=SECRET)
    await bot.services.db.dispose()
    clock.advance(seconds=59)
    assert await outbox.deliver_due(restarted.services) == 0
    clock.advance(seconds=1)  # 15 s, 30 s, 60 s: doubling
    assert await outbox.deliver_due(restarted.services) == 1

    assert [status for _, _, status in receiver.received] == [503, 503, 503, 204]
    assert {h["webhook-id"] for h, _, _ in receiver.received} == {msg_id}  # stable: receivers can de-duplicate
    assert len({body for _, body, _ in receiver.received}) == 1
    for headers, body, _ in receiver.received:
        check_signature(headers, body)
    assert [e["data"]["request_id"] for e in receiver.accepted] == [request_id]
    assert await outbox_rows(restarted) == [(msg_id, 4, True, None)]
    assert outbox.backoff(1) == timedelta(seconds=15) and outbox.backoff(20) == timedelta(hours=1)


async def test_a_refused_connection_is_retried_too(make_bot, receiver):
    bot, clock = await start(make_bot, receiver)
    dead_url = receiver.url.rsplit(":", 1)[0] + ":9/limits"  # nothing listens on the discard port
    dead = await make_bot(clock=clock, approvers={ALICE: BOB}, limits_webhook_url=dead_url,
                          limits_webhook_secret=SECRET)
    await approved(dead)
    assert await outbox.deliver_due(dead.services) == 0
    [(_, attempts, delivered, error)] = await outbox_rows(bot)
    assert (attempts, delivered) == (1, False) and error
    clock.advance(seconds=15)
    assert await outbox.deliver_due(bot.services) == 1 and len(receiver.accepted) == 1


async def test_two_processes_never_deliver_the_same_row_twice(make_bot, receiver):
    receiver.delay = 0.3
    bot, clock = await start(make_bot, receiver)
    other, _ = await start(make_bot, receiver, clock)
    await approved(bot)
    delivered = await asyncio.gather(outbox.deliver_due(bot.services), outbox.deliver_due(other.services),
                                     outbox.deliver_due(bot.services))
    assert sorted(delivered) == [0, 0, 1]
    assert len(receiver.received) == 1


async def test_a_lease_held_by_a_dead_process_expires(make_bot, receiver):
    bot, clock = await start(make_bot, receiver)
    await approved(bot)
    async with bot.services.db.write() as session:  # a process took the row and died
        from sqlalchemy import update

        from storage.models import OutboxMessage

        await session.execute(update(OutboxMessage).values(locked_until=clock.now() + outbox.LEASE))
    assert await outbox.deliver_due(bot.services) == 0 and receiver.received == []
    clock.advance(seconds=outbox.LEASE.total_seconds() + 1)
    assert await outbox.deliver_due(bot.services) == 1


async def test_jobs_are_scheduled_and_nothing_is_queued_without_a_url(make_bot, receiver):
    bot, _ = await start(make_bot, receiver)
    jobs = {job.id for job in build_scheduler(bot.services, scheduled_jobs(bot.services)).get_jobs()}
    assert {"outbox-deliver", "approvals-sweep"} <= jobs
    quiet = await make_bot(approvers={ALICE: BOB}, clock=SettableClock(TZ, datetime(2026, 11, 20, tzinfo=UTC)))
    await approved(quiet)
    assert await outbox_rows(quiet) == []
    quiet_jobs = build_scheduler(quiet.services, scheduled_jobs(quiet.services)).get_jobs()
    assert "outbox-deliver" not in {job.id for job in quiet_jobs}


async def test_an_admin_set_budget_is_pushed_like_an_approval(make_bot, fake_slack, receiver):
    """`/tokens admin set-budget` changes a limit too: the gateways hear of it the same way."""
    bot = await make_bot(clock=SettableClock(TZ, START), admins=("U0ADMIN",), limits_webhook_url=receiver.url,
                         limits_webhook_secret=SECRET)
    fake_slack.add_user("U0BEN", name="ben")
    status, _ = await bot.command("admin set-budget <@U0BEN> 500", user_id="U0ADMIN")
    assert status == 200
    [answer] = await fake_slack.wait_for("response_url")
    assert "monthly budget is now" in str(answer.args), answer.args
    await bot.services.background.drain()
    [(headers, body, _status)] = receiver.received
    check_signature(headers, body)
    event = json.loads(body)
    assert event["data"] == {"user": "U0BEN", "period": "2026-11", "limit_usd": "500", "previous_limit_usd": "200",
                             "scope": "from_now_on", "request_id": None, "decided_by": "U0ADMIN"}
    [(audit_id,)] = await bot.sql("SELECT id FROM audit_log WHERE action = 'set_budget'")
    assert headers["webhook-id"] == f"limit-changed-audit-{audit_id}"
