"""GET /api/v1/limits/{user} (SPEC 4): what a gateway reads to enforce a person's budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from bot.clock import SettableClock
from storage.models import Budget, BudgetRaise, BudgetRequest, Identity, Person
from tests.conftest import API_TOKEN, event

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
KEYS = {"user", "slack_user_id", "period", "limit_usd", "spent_usd", "remaining_usd", "allowed", "reason",
        "pending_request", "team"}


def clock(at: datetime = NOW) -> SettableClock:
    return SettableClock(ZoneInfo("America/New_York"), at)


def spend(n: int | str, cost: str, *, user: str = "U0ALICE", at: datetime = NOW - timedelta(hours=1), **fields):
    return event(n, user=user, cost_usd=cost, timestamp=at.isoformat(), **fields)


async def add_rows(bot, *rows) -> None:
    async with bot.services.db.write() as session:
        session.add_all(rows)


async def limits(bot, user: str, headers: dict[str, str] | None = None):
    return await bot.get(f"/api/v1/limits/{user}", headers=AUTH if headers is None else headers)


@pytest.fixture
async def api(make_bot):
    return await make_bot(clock=clock())


# --- authentication -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer wrong-token"},
    {"Authorization": f"Basic {API_TOKEN}"},
    {"Authorization": API_TOKEN},
    {"Authorization": f"Bearer {API_TOKEN}x"},
])
async def test_refused_without_the_right_bearer_token(api, headers):
    assert (await api.post_usage([spend(1, "1")]))[0] == 200
    status, body = await limits(api, "U0ALICE", headers)
    assert status == 401
    assert isinstance(body, dict) and body["error"]
    assert "U0ALICE" not in str(body)


async def test_api_is_closed_when_no_token_is_configured(make_bot):
    bot = await make_bot(api_token=None, clock=clock())
    assert (await bot.post_usage([spend(1, "1")]))[0] == 200
    for headers in (AUTH, {"Authorization": "Bearer "}, {"Authorization": "Bearer None"}, {}):
        status, body = await limits(bot, "U0ALICE", headers)
        assert status == 401, headers
        assert "TOKENBOT_API_TOKEN" in body["error"]


@pytest.mark.parametrize("user", ["U0NOBODY", "nobody@acme.com", "key_unknown"])
async def test_unknown_user_is_404(api, user):
    assert (await api.post_usage([spend(1, "1")]))[0] == 200
    status, body = await limits(api, user)
    assert status == 404
    assert user in body["error"]


# --- the answer -----------------------------------------------------------------------------------------------


async def test_answer_shape_with_string_decimals(api):
    status, body = await api.post_usage([spend(1, "12.5"), spend(2, "0.25"), spend(3, "7", user="U0BOB")])
    assert status == 200, body
    status, body = await limits(api, "U0ALICE")
    assert status == 200, body
    assert body == {
        "user": "U0ALICE",
        "slack_user_id": "U0ALICE",
        "period": "2026-11",
        "limit_usd": "200",
        "spent_usd": "12.75",
        "remaining_usd": "187.25",
        "allowed": True,
        "reason": None,
        "pending_request": None,
        "team": None,
    }


async def test_spent_is_the_priced_cost_of_the_events(api):
    status, body = await api.post_usage([
        spend(1, None, model="gpt-4o", input_tokens=1_000_000, cached_input_tokens=200_000, output_tokens=100_000),
        spend(2, None, model="gpt-4o-mini", input_tokens=300_000, output_tokens=1_000),
        spend(3, None, model="acme-internal-7b"),  # unpriced: counts as 0
    ])
    assert status == 200, body
    stored = await api.sql("SELECT event_id FROM usage_events")
    assert len(stored) == 3
    # gpt-4o: 800k * $2.50 + 200k * $1.25 + 100k * $10 per million; gpt-4o-mini: 300k * $0.15 + 1k * $0.60
    spent = Decimal("2") + Decimal("0.25") + Decimal("1") + Decimal("0.045") + Decimal("0.0006")
    status, body = await limits(api, "U0ALICE")
    assert (body["spent_usd"], body["remaining_usd"]) == (str(spent), str(Decimal(200) - spent))
    assert set(body) == KEYS
    for key in ("limit_usd", "spent_usd", "remaining_usd"):
        assert isinstance(body[key], str)


async def test_per_user_budget_from_config(make_bot):
    bot = await make_bot(clock=clock(), user_budgets={"U0ALICE": Decimal("500.5"), "U0DAVE": Decimal(75)})
    assert (await bot.post_usage([spend(1, "0.5")]))[0] == 200
    status, body = await limits(bot, "U0ALICE")
    assert (status, body["limit_usd"], body["remaining_usd"]) == (200, "500.5", "500")
    # a person with a configured budget is known before their first call
    status, body = await limits(bot, "U0DAVE")
    assert (status, body["limit_usd"], body["spent_usd"], body["allowed"]) == (200, "75", "0", True)


async def test_admin_set_budget_beats_config_and_raises_add_for_this_month_only(make_bot):
    bot = await make_bot(clock=clock(), user_budgets={"U0ALICE": Decimal(500)})
    assert (await bot.post_usage([spend(1, "100")]))[0] == 200
    await add_rows(bot, Budget(user_key="U0ALICE", monthly_usd=Decimal(80), set_by="U0ADMIN", set_at=NOW))
    _, body = await limits(bot, "U0ALICE")
    assert (body["limit_usd"], body["spent_usd"], body["remaining_usd"], body["allowed"]) == ("80", "100", "0", False)

    await add_rows(
        bot,
        BudgetRaise(user_key="U0ALICE", month="2026-11", amount_usd=Decimal("25.5"), created_at=NOW),
        BudgetRaise(user_key="U0ALICE", month="2026-11", amount_usd=Decimal(10), created_at=NOW),
        BudgetRaise(user_key="U0ALICE", month="2026-10", amount_usd=Decimal(1000), created_at=NOW),
        BudgetRaise(user_key="U0BOB", month="2026-11", amount_usd=Decimal(1000), created_at=NOW),
    )
    _, body = await limits(bot, "U0ALICE")
    assert (body["limit_usd"], body["remaining_usd"], body["allowed"]) == ("115.5", "15.5", True)


@pytest.mark.parametrize(("costs", "allowed", "remaining"), [
    (["9.999999"], True, "0.000001"),
    (["10"], False, "0"),
    (["6", "9"], False, "0"),  # over the limit: remaining is never negative
])
async def test_allowed_only_while_spent_is_below_the_limit(make_bot, costs, allowed, remaining):
    bot = await make_bot(clock=clock(), user_budgets={"U0ALICE": Decimal(10)})
    assert (await bot.post_usage([spend(i, c) for i, c in enumerate(costs)]))[0] == 200
    status, body = await limits(bot, "U0ALICE")
    assert status == 200
    assert (body["allowed"], body["remaining_usd"]) == (allowed, remaining)
    assert Decimal(body["spent_usd"]) == sum(Decimal(c) for c in costs)


# --- who {user} is --------------------------------------------------------------------------------------------


async def test_lookup_by_email_of_a_known_person(api):
    assert (await api.post_usage([spend(1, "3")]))[0] == 200
    await add_rows(api, Person(slack_user_id="U0ALICE", display_name="Alice", email="alice@acme.com", fetched_at=NOW))
    status, body = await limits(api, "alice@acme.com")
    assert status == 200, body
    assert (body["user"], body["slack_user_id"], body["spent_usd"]) == ("alice@acme.com", "U0ALICE", "3")
    status, body = await limits(api, "alice%40acme.com")  # percent-encoded in the path
    assert (status, body["slack_user_id"]) == (200, "U0ALICE")


async def test_lookup_by_linked_identity(api):
    assert (await api.post_usage([spend(1, "3"), spend(2, "4", user="U0CAROL")]))[0] == 200
    await add_rows(
        api,
        Identity(external_id="key_live_xyz", slack_user_id="U0ALICE", source="admin", checked_at=NOW, set_by="U0A"),
        Identity(external_id="carol@acme.com", slack_user_id="U0CAROL", source="email", checked_at=NOW),
    )
    status, body = await limits(api, "key_live_xyz")
    assert (status, body["user"], body["slack_user_id"], body["spent_usd"]) == (200, "key_live_xyz", "U0ALICE", "3")
    status, body = await limits(api, "carol@acme.com")
    assert (status, body["slack_user_id"], body["spent_usd"]) == (200, "U0CAROL", "4")


async def test_lookup_by_external_id_from_config(make_bot):
    bot = await make_bot(clock=clock(), identities={"key_live_abc": "U0ALICE"},
                         user_budgets={"U0ALICE": Decimal(50)})
    # spend sent under the key is the person's
    assert (await bot.post_usage([spend(1, "5", user="key_live_abc"), spend(2, "1")]))[0] == 200
    status, body = await limits(bot, "key_live_abc")
    assert status == 200, body
    assert body["user"] == "key_live_abc"
    assert (body["slack_user_id"], body["limit_usd"], body["spent_usd"]) == ("U0ALICE", "50", "6")


async def test_email_resolved_through_slack(api, fake_slack):
    fake_slack.add_user("U0ERIN", name="erin", email="erin@acme.com")
    # The first sighting queues users.lookupByEmail in the background; once linked, later spend is Erin's.
    assert (await api.post_usage([spend(1, "0", user="erin@acme.com")]))[0] == 200
    await api.services.identities.drain()
    assert (await api.post_usage([spend(2, "2", user="erin@acme.com")]))[0] == 200
    status, body = await limits(api, "erin@acme.com")
    assert (status, body["slack_user_id"], body["spent_usd"]) == (200, "U0ERIN", "2")
    assert (await limits(api, "U0ERIN"))[1]["spent_usd"] == "2"


async def test_spend_sent_before_slack_answered_is_reattributed(api, fake_slack):
    """SPEC/README: once Slack resolves an email, its past events are the person's."""
    fake_slack.add_user("U0FRED", name="fred", email="fred@acme.com")
    assert (await api.post_usage([spend(1, "3", user="fred@acme.com")]))[0] == 200
    await api.services.identities.drain()
    assert await api.sql("SELECT user_key FROM usage_events") == [("U0FRED",)]
    status, body = await limits(api, "fred@acme.com")
    assert (status, body["slack_user_id"], body["spent_usd"]) == (200, "U0FRED", "3")


async def test_unlinked_key_with_spend_has_a_limit_but_no_slack_user(api):
    assert (await api.post_usage([spend(1, "2", user="ci-nightly-key")]))[0] == 200
    status, body = await limits(api, "ci-nightly-key")
    assert status == 200, body
    assert (body["slack_user_id"], body["spent_usd"], body["limit_usd"]) == (None, "2", "200")


# --- the period -----------------------------------------------------------------------------------------------


async def test_period_is_the_organisations_month(make_bot):
    boundary = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)  # 22:00 on 30 November in New York
    settable = clock(boundary)
    bot = await make_bot(clock=settable)
    status, body = await bot.post_usage([
        spend("nov-last", "5", at=boundary),
        spend("oct-last", "100", at=datetime(2026, 11, 1, 3, 59, tzinfo=UTC)),  # 23:59 on 31 October locally
        spend("nov-first", "0.5", at=datetime(2026, 11, 1, 4, 0, tzinfo=UTC)),  # midnight, 1 November (EDT)
    ])
    assert status == 200, body
    status, body = await limits(bot, "U0ALICE")
    assert (body["period"], body["spent_usd"]) == ("2026-11", "5.5")

    settable.set(datetime(2026, 12, 1, 5, 0, tzinfo=UTC))  # midnight has passed in New York
    status, body = await limits(bot, "U0ALICE")
    assert (body["period"], body["spent_usd"], body["allowed"]) == ("2026-12", "0", True)


async def test_raise_for_last_month_ends_with_the_month(make_bot):
    settable = clock(datetime(2026, 11, 30, 12, 0, tzinfo=UTC))
    bot = await make_bot(clock=settable)
    assert (await bot.post_usage([spend(1, "1", at=datetime(2026, 11, 30, 11, 0, tzinfo=UTC))]))[0] == 200
    await add_rows(bot, BudgetRaise(user_key="U0ALICE", month="2026-11", amount_usd=Decimal(40), created_at=NOW))
    assert (await limits(bot, "U0ALICE"))[1]["limit_usd"] == "240"
    settable.set(datetime(2026, 12, 1, 6, 0, tzinfo=UTC))
    assert (await limits(bot, "U0ALICE"))[1]["limit_usd"] == "200"


# --- pending requests -----------------------------------------------------------------------------------------


def request(requester: str = "U0ALICE", status: str = "pending", **fields) -> BudgetRequest:
    values = dict(requester=requester, amount_usd=Decimal(50), reason="eval run", scope="month", month="2026-11",
                  status=status, approvers=["U0BOB"], limit_before_usd=Decimal(200), created_at=NOW,
                  expires_at=NOW + timedelta(hours=72))
    values.update(fields)
    return BudgetRequest(**values)


async def test_pending_request_is_shown(api):
    assert (await api.post_usage([spend(1, "1")]))[0] == 200
    await add_rows(api, request(status="denied", amount_usd=Decimal(999), decided_by="U0BOB", decided_at=NOW))
    assert (await limits(api, "U0ALICE"))[1]["pending_request"] is None
    await add_rows(api, request())
    status, body = await limits(api, "U0ALICE")
    pending = body["pending_request"]
    assert status == 200 and pending is not None
    assert isinstance(pending["id"], int)
    assert {k: pending[k] for k in ("amount_usd", "scope", "reason", "approvers")} == {
        "amount_usd": "50", "scope": "this_month", "reason": "eval run", "approvers": ["U0BOB"],
    }
    assert datetime.fromisoformat(pending["created_at"]) == NOW
    assert datetime.fromisoformat(pending["expires_at"]) == NOW + timedelta(hours=72)
    # a pending request does not change the limit until it is approved
    assert body["limit_usd"] == "200"


async def test_a_person_with_only_a_request_is_known(api):
    await add_rows(api, request("U0NEWBIE", scope="standing", amount_usd=Decimal("12.5")))
    status, body = await limits(api, "U0NEWBIE")
    assert status == 200, body
    assert (body["spent_usd"], body["pending_request"]["scope"], body["pending_request"]["amount_usd"]) == (
        "0", "from_now_on", "12.5"
    )
