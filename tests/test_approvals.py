"""The approval flow end to end (SPEC 7): signed block actions and view submissions into the
served bot, the strict fake Slack behind it, the real database."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest

from bot.approvals import jobs, service
from bot.approvers import Approvers
from bot.clock import SettableClock
from tests.conftest import API_TOKEN, BotUnderTest
from tests.fakes.slack_api import FakeSlack
from tests.support.approvals import (
    TZ,
    approval_messages,
    block_text,
    buttons,
    click,
    dms,
    local,
    submit,
    usage,
)

ALICE, BOB, FIN, ADMIN, STRANGER, MANAGER = "U0ALICE", "U0BOB", "U0FIN", "U0ADMIN", "U0STRANGER", "U0MANAGER"
START = local(2026, 11, 20, 10)


@dataclass
class Flow:
    bot: BotUnderTest
    clock: SettableClock
    fake: FakeSlack

    async def settle(self) -> None:
        await self.bot.services.background.drain()

    async def limit(self, user: str = ALICE) -> dict:
        status, body = await self.bot.get(f"/api/v1/limits/{user}", headers={"Authorization": f"Bearer {API_TOKEN}"})
        assert status == 200, body
        return body

    async def open_request_form(self, user: str = ALICE) -> dict:
        opened = len(self.fake.calls_to("views.open"))
        status, _ = await click(self.bot, user, {"action_id": "request_budget", "value": user}, channel="D" + user)
        assert status == 200
        await self.settle()
        call = self.fake.calls_to("views.open")[opened]
        assert call.ok, call.response
        return self.fake.views[call.response["view"]["id"]]

    async def ask(self, amount: str = "50", reason: str | None = "eval run", scope: str = "month",
                  user: str = ALICE) -> tuple[int, object]:
        form = await self.open_request_form(user)
        answer = await submit(self.bot, user, form, {"amount": amount, "reason": reason, "scope": scope})
        await self.settle()
        return answer

    def approval_message(self, approver: str = BOB) -> dict:
        [message] = approval_messages(self.fake, approver)[-1:]
        return message

    async def press(self, user: str, action: str, *, approver: str = BOB, **kwargs) -> tuple[int, object]:
        message = self.approval_message(approver)
        answer = await click(self.bot, user, buttons(message["blocks"])[action], channel="D" + approver,
                             message=message, **kwargs)
        await self.settle()
        return answer

    async def command(self, text: str, user: str = ALICE) -> dict:
        """/tokens <text>; the ephemeral answer (posted to the response_url)."""
        before = len(self.fake.responses)
        status, _ = await self.bot.command(text, user_id=user)
        assert status == 200
        await self.fake.wait_for("response_url", before + 1)
        await self.settle()
        return self.fake.responses[before].args

    async def press_stale(self, user: str, action: str, name: str, *, approver: str = BOB) -> str:
        """Click a button of the approval DM as first posted (what a slow client may still show);
        returns what the clicker was told."""
        posted = next(c for c in self.fake.calls_to("chat.postMessage")
                      if c.args["channel"] == approver and "'decide_" in str(c.args.get("blocks")))
        await click(self.bot, user, buttons(posted.args["blocks"])[action], channel="D" + approver,
                    response_url=self.fake.response_url(name))
        await self.settle()
        [told] = self.fake.responses_to(name)
        return told.args["text"]

    async def requests(self) -> list[tuple]:
        return await self.bot.sql(
            "SELECT id, requester, status, granted_usd IS NOT NULL, decided_by, automatic FROM budget_requests "
            "ORDER BY id")

    async def audit(self) -> list[tuple]:
        return await self.bot.sql("SELECT actor, action, subject_user, request_id FROM audit_log ORDER BY id")


@pytest.fixture
async def flow(make_bot, fake_slack) -> Flow:
    clock = SettableClock(TZ, START)
    bot = await make_bot(clock=clock, approvers={ALICE: BOB}, default_approvers=(FIN,), admins=(ADMIN,),
                         default_monthly_usd=Decimal(200))
    for user, name in ((ALICE, "Alice Adams"), (BOB, "Bob Brown"), (FIN, "Fin Ance"), (ADMIN, "Ada Admin"),
                       (MANAGER, "Max Manager")):
        fake_slack.add_user(user, name=name)
    await bot.services.ingestor.ingest([usage(1, ALICE, "40", START - timedelta(days=1))], source="test")
    await bot.services.ingestor.writer.settle()  # rollups trail events by up to a second
    await bot.services.background.drain()
    return Flow(bot, clock, fake_slack)


async def test_request_modal_to_approval_end_to_end(flow):
    form = await flow.open_request_form()
    assert form["callback_id"] == "budget_request_modal"
    assert {b.get("block_id") for b in form["blocks"]} >= {"amount", "reason", "scope"}

    status, body = await submit(flow.bot, ALICE, form, {"amount": "$50", "reason": "eval run", "scope": "month"})
    assert status == 200 and body in ("", {}), body  # an empty ack closes the modal
    await flow.settle()

    # the approver's DM: who asks for how much (the header), why, spend, limits, pace, trend, three buttons
    message = flow.approval_message()
    text = block_text(message)
    assert message["blocks"][0]["text"]["text"] == "Alice Adams asks for $50 more"
    assert message["text"].startswith("Alice Adams asks for $50 more (this month only); spent $40 of $200 (20%)")
    for expected in ("<@U0ALICE>", "eval run", "$40 of $200 (20%)", "limit $250", "Last 7 days", "Pace"):
        assert expected in text, expected
    assert set(buttons(message["blocks"])) == {"approve_request", "deny_request", "approve_other_amount"}
    approve, other, deny = (buttons(message["blocks"])[a] for a in ("approve_request", "approve_other_amount",
                                                                     "deny_request"))
    assert "confirm" in approve and approve["style"] == "primary"
    assert "style" not in deny  # denying is an answer, not a destructive act: no red button
    assert other["text"]["text"] == "Other amount" and "another amount" in other["accessibility_label"]
    # the requester is told where it went
    assert any("went to <@U0BOB>" in block_text(m) for m in dms(flow.fake, ALICE))
    [(request_id, requester, state, granted, decided_by, automatic)] = await flow.requests()
    assert (requester, state, granted, decided_by, automatic) == (ALICE, "pending", False, None, False)
    limits = await flow.limit()
    assert limits["limit_usd"] == "200" and limits["pending_request"]["id"] == request_id
    assert limits["pending_request"]["amount_usd"] == "50"

    status, _ = await flow.press(BOB, "approve_request")
    assert status == 200
    updated = flow.approval_message()
    assert "approve_request" not in buttons(updated["blocks"])  # buttons gone, outcome shown in place
    outcome = updated["blocks"][1]  # right under the header: the outcome first
    assert outcome["block_id"].startswith("outcome_")
    assert "*Approved* by <@U0BOB>" in outcome["text"]["text"]
    assert "limit $200 → $250 for November only" in outcome["text"]["text"]
    assert updated["text"] == "Approved: Alice Adams gets $50 more (limit $250)"
    [update] = flow.fake.calls_to("chat.update")
    assert (update.args["channel"], update.args["ts"]) == ("DU0BOB", message["ts"])
    # the requester hears in the thread of "your request went to …", with what is left now
    [submitted, told] = dms(flow.fake, ALICE)
    assert "went to <@U0BOB>" in block_text(submitted)
    assert told["thread_ts"] == submitted["ts"] and told["reply_broadcast"] is True
    assert "*Approved: $50 more* by <@U0BOB>" in block_text(told)
    assert "Your limit is now $250: $210 left this month." in block_text(told)
    assert "#" not in told["text"]  # no internal request numbers

    limits = await flow.limit()
    assert limits["limit_usd"] == "250" and limits["pending_request"] is None
    assert await flow.bot.sql("SELECT user_key, month, amount_usd FROM budget_raises") == [
        (ALICE, "2026-11", await _stored_money(flow, Decimal(50)))]
    assert await flow.audit() == [(ALICE, "request.created", ALICE, request_id),
                                  (BOB, "request.approved", ALICE, request_id)]
    [(details,)] = await flow.bot.sql("SELECT details FROM audit_log WHERE action = 'request.approved'")
    details = json.loads(details) if isinstance(details, str) else details
    assert {k: details[k] for k in ("requested_usd", "granted_usd", "limit_before_usd", "limit_after_usd")} == {
        "requested_usd": "50", "granted_usd": "50", "limit_before_usd": "200", "limit_after_usd": "250"}
    assert details["automatic"] is False


async def _stored_money(flow: Flow, value: Decimal):
    """Money as the driver returns it in raw SQL (picodollars on SQLite, NUMERIC on PostgreSQL)."""
    from storage.types import money_to_db

    return money_to_db(value, flow.bot.services.db.dialect)


async def test_an_approve_click_reads_the_request_once_and_the_budget_once(flow):
    """One path per click: the handler calls one flow, which reads the request before deciding and
    otherwise only re-reads it locked, to mark its messages updated; the budget is computed once."""
    from sqlalchemy import event

    await flow.ask()
    statements: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append(" ".join(statement.split()).lower())

    engine = flow.bot.services.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        status, _ = await flow.press(BOB, "approve_request")
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert status == 200 and [r[2] for r in await flow.requests()] == ["approved"]
    selects = [s for s in statements if s.startswith("select")]
    assert len([s for s in selects if " from budget_requests" in s]) == 2, selects
    assert len([s for s in selects if " from budgets " in s or s.endswith(" from budgets")]) == 1, selects
    assert "Approved" in json.dumps(flow.approval_message()["blocks"])  # the DM was updated in place


@pytest.mark.parametrize(("amount", "error"), [
    ("abc", "Enter an amount"), ("0", "more than $0"), ("-5", "more than $0"), ("12.345", "two decimals"),
    ("20000", "At most $10,000"),
])
async def test_invalid_amounts_are_answered_inside_the_modal(flow, amount, error):
    form = await flow.open_request_form()
    status, body = await submit(flow.bot, ALICE, form, {"amount": amount, "reason": "x", "scope": "month"})
    assert status == 200
    assert body["response_action"] == "errors" and error in body["errors"]["amount"], body
    await flow.settle()
    assert await flow.requests() == []
    assert approval_messages(flow.fake, BOB) == []


async def test_one_pending_request_per_person(flow):
    await flow.ask("50")
    [(first_id, *_)] = await flow.requests()

    # the slash command: refused with a link to the first
    answer = await flow.command("request 20 more evals")
    assert "already have a request waiting" in answer["text"]
    assert "archives/DU0ALICE/p" in json.dumps(answer["blocks"])  # permalink of the first request's DM
    # the button: the form turns into a notice about the first
    await flow.open_request_form()
    [update] = flow.fake.calls_to("views.update")
    assert "your request" in json.dumps(update.args["view"]) and "$50 more" in json.dumps(update.args["view"])
    # a form opened earlier and submitted now: answered inside the modal
    form = next(v for v in flow.fake.views.values() if v.get("callback_id") == "budget_request_modal")
    _, body = await submit(flow.bot, ALICE, form, {"amount": "10"})
    assert body["response_action"] == "errors" and "already have a request waiting" in body["errors"]["amount"]
    assert first_id == (await flow.requests())[0][0]
    assert len(await flow.requests()) == 1


async def test_strangers_and_the_requester_cannot_decide(flow):
    await flow.ask("50")
    for user, words in ((STRANGER, "Only <@U0BOB> or an admin"), (ALICE, "can't decide your own request")):
        status, _ = await flow.press(user, "approve_request", response_url=flow.fake.response_url(user))
        assert status == 200
        [told] = flow.fake.responses_to(user)
        assert words in told.args["text"]
        assert told.args["response_type"] == "ephemeral" and told.args["replace_original"] is False
    # a stranger's Deny: the modal opens (the trigger can't wait) and turns into the refusal
    await flow.press(STRANGER, "deny_request")
    [update] = flow.fake.calls_to("views.update")
    assert "Only <@U0BOB> or an admin" in json.dumps(update.args["view"])
    assert [r[2] for r in await flow.requests()] == ["pending"]
    assert flow.fake.calls_to("chat.update") == []
    assert await flow.bot.sql("SELECT COUNT(*) FROM budget_raises") == [(0,)]
    assert (await flow.limit())["limit_usd"] == "200"
    assert [a[1] for a in await flow.audit()] == ["request.created"]


async def test_an_admin_may_decide_and_later_clicks_are_told_who_decided(flow):
    await flow.ask("50")
    await flow.press(ADMIN, "approve_request")
    assert [r[4] for r in await flow.requests()] == [ADMIN]
    # Bob's message as Slack may still show it to him (before the update arrived)
    told = await flow.press_stale(BOB, "approve_request", "late")
    assert "already approved by <@U0ADMIN>" in told and "Nothing was changed" in told
    assert (await flow.limit())["limit_usd"] == "250"


async def test_deny_keeps_the_limit_and_the_requester_sees_the_reason(flow):
    await flow.ask("50")
    await flow.press(BOB, "deny_request")
    [opened] = flow.fake.calls_to("views.open")[-1:]
    modal = flow.fake.views[opened.response["view"]["id"]]
    assert modal["callback_id"] == "deny_request_modal"
    status, body = await submit(flow.bot, BOB, modal, {"reason": "Let's <review> the eval plan first"})
    assert status == 200 and body in ("", {})
    await flow.settle()

    updated = flow.approval_message()
    assert "Denied" in block_text(updated) and "deny_request" not in buttons(updated["blocks"])
    assert "Limit after" not in block_text(updated) and "The limit stays $200." in block_text(updated)
    told = [m for m in dms(flow.fake, ALICE) if "Denied" in block_text(m)]
    assert len(told) == 1 and "Let's &lt;review&gt; the eval plan first" in block_text(told[0])
    assert "Your limit stays $200: $160 left this month." in block_text(told[0])
    assert [r[2] for r in await flow.requests()] == ["denied"]
    assert (await flow.limit())["limit_usd"] == "200"
    assert await flow.bot.sql("SELECT COUNT(*) FROM budget_raises") == [(0,)]
    assert await flow.bot.sql("SELECT COUNT(*) FROM budgets") == [(0,)]
    assert [a[1] for a in await flow.audit()] == ["request.created", "request.denied"]


async def test_approve_another_amount_keeps_requested_and_granted(flow):
    await flow.ask("50", scope="standing")
    await flow.press(BOB, "approve_other_amount")
    [opened] = flow.fake.calls_to("views.open")[-1:]
    modal = flow.fake.views[opened.response["view"]["id"]]
    amount_input = next(b for b in modal["blocks"] if b.get("block_id") == "amount")
    assert amount_input["element"]["initial_value"] == "50"  # filled in with what was asked
    _, body = await submit(flow.bot, BOB, modal, {"amount": "0"})
    assert body["response_action"] == "errors" and "amount" in body["errors"]
    _, body = await submit(flow.bot, BOB, modal, {"amount": "30", "note": "start with this"})
    assert body in ("", {})
    await flow.settle()

    assert (await flow.limit())["limit_usd"] == "230"
    # "from now on": the standing budget changed, decided by Bob, and it stays next month
    assert await flow.bot.sql("SELECT user_key, set_by FROM budgets") == [(ALICE, BOB)]
    flow.clock.set(local(2026, 12, 2))
    assert (await flow.limit())["limit_usd"] == "230"
    [(details,)] = await flow.bot.sql("SELECT details FROM audit_log WHERE action = 'request.approved'")
    details = json.loads(details) if isinstance(details, str) else details
    assert (details["requested_usd"], details["granted_usd"], details["scope"]) == ("50", "30", "standing")
    assert "*Approved $30 of $50*" in block_text(flow.approval_message())
    assert any("Approved $30 of the $50 you asked" in block_text(m) for m in dms(flow.fake, ALICE))


async def test_this_month_only_raise_ends_with_the_month_in_the_org_time_zone(flow):
    flow.clock.set(local(2026, 11, 30, 20))
    await flow.ask("50")
    await flow.press(BOB, "approve_request")
    assert (await flow.limit())["limit_usd"] == "250"
    flow.clock.set(local(2026, 11, 30, 23, 59))  # 04:59 UTC on 1 December: still November in New York
    assert (await flow.limit())["period"] == "2026-11" and (await flow.limit())["limit_usd"] == "250"
    flow.clock.set(local(2026, 12, 1, 0, 0))
    limits = await flow.limit()
    assert (limits["period"], limits["limit_usd"]) == ("2026-12", "200")


async def test_slash_command_request_auto_approval_and_max(make_bot, fake_slack):
    clock = SettableClock(TZ, START)
    bot = await make_bot(clock=clock, approvers={ALICE: BOB}, auto_approve_under_usd=Decimal(25),
                         max_request_usd=Decimal(1000))
    flow = Flow(bot, clock, fake_slack)
    assert "At most $1,000" in (await flow.command("request 2000 big run"))["text"]
    assert await flow.requests() == []

    # up to the threshold: approved at once
    assert "Approved automatically" in (await flow.command("request 25 small eval"))["text"]
    [(_, _, state, granted, decided_by, automatic)] = await flow.requests()
    assert (state, granted, decided_by, automatic) == ("approved", True, "tokenbot", True)
    assert approval_messages(fake_slack, BOB) == []
    assert any("*Approved: $25 more* automatically" in block_text(m) for m in dms(fake_slack, ALICE))
    assert [a[1] for a in await flow.audit()] == ["request.created", "request.auto_approved"]
    assert (await flow.limit())["limit_usd"] == "225"

    assert "went to <@U0BOB>" in json.dumps(await flow.command("request 25.01 bigger eval"))
    rows = await flow.requests()
    assert rows[-1][2] == "pending" and len(approval_messages(fake_slack, BOB)) == 1
    reason = await bot.sql("SELECT reason, scope FROM budget_requests WHERE id = :id", id=rows[-1][0])
    assert reason == [("bigger eval", "month")]


async def test_approver_resolution_order(make_bot, fake_slack):
    bot = await make_bot(approvers={"U0CONF": "U0BOB"}, default_approvers=("U0FIN", "U0CFO"), admins=("U0ADMIN",))
    services = bot.services
    fake_slack.team_profile_fields = [{"id": "Xf01", "label": "Pronouns", "type": "text"},
                                      {"id": "Xf02", "label": "Manager", "type": "user"}]
    fake_slack.add_user("U0CONF", name="conf", fields={"Xf02": "U0PROFILE"})
    fake_slack.add_user("U0SET", name="set", fields={"Xf02": "U0PROFILE"})
    fake_slack.add_user("U0PROF", name="prof", fields={"Xf02": "U0PROFILE"})
    fake_slack.add_user("U0SELF", name="self", fields={"Xf02": "U0SELF"})
    fake_slack.add_user("U0FIN", name="fin")
    from bot.commands import set_approver

    await set_approver(services, "U0ADMIN", "U0SET", "U0SETAPPROVER")
    await set_approver(services, "U0ADMIN", "U0CONF", "U0IGNORED")
    assert await services.approvers.resolve("U0CONF") == Approvers(("U0BOB",), "config")
    assert await services.approvers.resolve("U0SET") == Approvers(("U0SETAPPROVER",), "admin")
    assert await services.approvers.resolve("U0PROF") == Approvers(("U0PROFILE",), "profile")
    # never the requester: a person who is their own "Manager" falls through to the defaults
    assert await services.approvers.resolve("U0SELF") == Approvers(("U0FIN", "U0CFO"),
                                                                                       "default")
    assert await services.approvers.resolve("U0FIN") == Approvers(("U0CFO",), "default")
    assert len(fake_slack.calls_to("team.profile.get")) == 1  # the field id is looked up once

    await Flow(bot, None, fake_slack).command("request 40", user="U0PROF")
    assert approval_messages(fake_slack, "U0PROFILE")


async def test_reminder_and_expiry_fire_once_each(flow, make_bot):
    await flow.ask("50")
    [(request_id, *_)] = await flow.requests()
    other = await make_bot(clock=flow.clock, approvers={ALICE: BOB}, default_approvers=(FIN,), admins=(ADMIN,))

    flow.clock.advance(hours=23)
    await jobs.sweep(flow.bot.services)
    assert approval_messages(flow.fake, FIN) == []

    flow.clock.advance(hours=2)  # past remind_after_hours (24)
    for services in (flow.bot.services, other.services, flow.bot.services):  # two processes, run again
        await jobs.sweep(services)
    reminders = [c for c in flow.fake.calls_to("chat.postMessage") if "Still waiting for you" in c.args["text"]]
    assert len(reminders) == 1
    assert reminders[0].args["channel"] == "DU0BOB" and reminders[0].args["thread_ts"]
    [escalated] = approval_messages(flow.fake, FIN)  # default approvers get the buttons too
    assert "approve_request" in buttons(escalated["blocks"]) and "<@U0BOB> has not decided" in block_text(escalated)
    assert await flow.bot.sql("SELECT approvers FROM budget_requests") in ([('["U0BOB", "U0FIN"]',)],
                                                                         [(["U0BOB", "U0FIN"],)])

    flow.clock.advance(hours=48)  # past expire_after_hours (72)
    await __import__("asyncio").gather(jobs.sweep(flow.bot.services), jobs.sweep(other.services))
    await jobs.sweep(flow.bot.services)
    await other.services.background.drain()
    assert [r[2] for r in await flow.requests()] == ["expired"]
    for approver in (BOB, FIN):
        message = flow.approval_message(approver)
        assert "Expired" in block_text(message) and "approve_request" not in buttons(message["blocks"])
    expired_notes = [m for m in dms(flow.fake, ALICE) if "*Expired*: nobody decided" in block_text(m)]
    assert len(expired_notes) == 1
    assert [a[1] for a in await flow.audit()] == ["request.created", "request.reminded", "request.expired"]
    assert (await flow.limit())["limit_usd"] == "200"
    # a click on the expired request changes nothing
    assert "expired with no decision" in await flow.press_stale(BOB, "approve_request", "late")
    assert [r[0] for r in await flow.requests()] == [request_id] and (await flow.limit())["limit_usd"] == "200"


async def test_repair_finishes_what_a_crashed_process_left(flow):
    await flow.ask("50")
    [(request_id, *_)] = await flow.requests()
    # decided in the database, then the process died before updating Slack
    result = await service.decide(flow.bot.services, request_id, BOB, approve=True)
    assert result.outcome == "approved"
    assert jobs.REPAIR_AFTER == timedelta(minutes=2)
    assert await jobs.repair_messages(flow.bot.services) == []  # the decider's own job, for now
    flow.clock.advance(minutes=3)
    assert await jobs.repair_messages(flow.bot.services) == [request_id]
    assert "*Approved* by <@U0BOB>" in block_text(flow.approval_message())
    assert await jobs.repair_messages(flow.bot.services) == []  # done once
    assert len([m for m in dms(flow.fake, ALICE) if "Approved: $50 more" in block_text(m)]) == 1


async def test_admin_audit_command(flow):
    await flow.ask("50")
    await flow.press(BOB, "deny_request")
    modal = flow.fake.views[flow.fake.calls_to("views.open")[-1].response["view"]["id"]]
    await submit(flow.bot, BOB, modal, {"reason": "not now"})
    await flow.settle()
    await flow.ask("30")
    await flow.press(BOB, "approve_request")

    answer = await flow.command("admin audit <@U0ALICE|alice>", ADMIN)
    history = json.dumps(answer["blocks"], ensure_ascii=False)
    assert "Approval history" in history
    for expected in ("denied", "not now", "approved $30", "limit $200 → $230", "asked for $50 more"):
        assert expected in history, expected
    assert history.index("approved $30") < history.index("denied")  # newest first

    assert "Only tokenbot admins" in (await flow.command("admin audit"))["text"]


async def test_app_home_lists_requests_waiting_for_the_approver(flow):
    from bot.home_builder import publish_home

    await flow.ask("50")
    await publish_home(flow.bot.services, BOB)
    home = flow.fake.home_views[BOB]
    [request_id] = [r[0] for r in await flow.requests()]
    approve = buttons(home["blocks"])[f"approve_request:{request_id}"]
    assert "Waiting for your decision (1)" in json.dumps(home["blocks"])
    await publish_home(flow.bot.services, ALICE)
    assert "Waiting for your decision" not in json.dumps(flow.fake.home_views[ALICE]["blocks"])

    status, _ = await click(flow.bot, BOB, approve, container="view")
    assert status == 200
    await flow.settle()
    assert (await flow.limit())["limit_usd"] == "250"
    assert "Waiting for your decision" not in json.dumps(flow.fake.home_views[BOB]["blocks"])  # republished
    assert "*Approved* by <@U0BOB>" in block_text(flow.approval_message())  # the DM is updated too


async def test_request_alone_opens_the_form_and_a_workspace_admin_may_decide(flow):
    answer = await flow.command("request")
    assert "Fill in the form" in answer["text"]
    [opened] = flow.fake.calls_to("views.open")
    assert opened.ok and opened.args["view"]["callback_id"] == "budget_request_modal"

    flow.fake.add_user("U0OWNER", name="Owner", is_owner=True)  # a Slack workspace owner, not in `admins`
    await flow.ask("50")
    await flow.press("U0OWNER", "approve_request")
    assert [r[2:5:2] for r in await flow.requests()] == [("approved", "U0OWNER")]
    await flow.command("admin set-budget <@U0ALICE> 300", "U0OWNER")
    history = json.dumps((await flow.command("admin audit", "U0OWNER"))["blocks"], ensure_ascii=False)
    assert "<@U0OWNER> set <@U0ALICE>'s monthly budget to $300 (was $200)" in history
    assert (await flow.limit())["limit_usd"] == "350"  # the new standing budget plus this month's raise
