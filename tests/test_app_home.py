"""The App Home: app_home_opened events (signed, into the served bot) publish the caller's card."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio

from bot.clock import SettableClock
from tests.support.signing import event_callback_body
from tests.test_tokens_command import flat, ingest, local, usage

TZ = ZoneInfo("America/New_York")
NOW = datetime(2026, 11, 18, 17, 0, tzinfo=UTC)


@pytest_asyncio.fixture
async def hbot(make_bot, fake_slack):
    fake_slack.add_user("U0ADA", name="ada", email="ada@acme.example")
    return await make_bot(clock=SettableClock(TZ, NOW))


async def open_home(bot, user: str = "U0ADA", *, event_id: str | None = None, tab: str = "home",
                    retry: int | None = None) -> str:
    """Send app_home_opened as Slack does (with the view Slack has, if any); wait until handled."""
    event = {"type": "app_home_opened", "user": user, "channel": f"D{user}", "tab": tab,
             "event_ts": "1732600000.000100"}
    shown = bot.fake_slack.home_views.get(user)
    if shown is not None:
        event["view"] = shown
    body = event_callback_body(event, event_id)
    headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"} if retry else None
    status, answer = await bot.slack_post(body, headers=headers)
    assert status == 200, answer
    await bot.services.background.drain()
    return event_id or ""


def publishes(bot, user: str = "U0ADA") -> list:
    return [c for c in bot.fake_slack.calls_to("views.publish") if c.args.get("user_id") == user and c.ok]


async def test_opening_the_home_publishes_the_card(hbot):
    await ingest(hbot, [usage(1, "U0ADA", local(18, 9), "4.5"), usage(2, "U0ADA", local(3), "10")])
    await open_home(hbot)
    [call] = publishes(hbot)
    view = call.args["view"]
    assert view["type"] == "home"
    text = flat(view)
    assert "*Today*\n$4.50" in text and "*$14.50 spent, $185.50 left of your $200 budget (7%)*" in text
    assert text.index("$14.50 spent") < text.index("*Today*")  # the answer first
    assert any(e.get("action_id") == "request_budget" for b in view["blocks"] if b["type"] == "actions"
               for e in b["elements"])
    assert hbot.fake_slack.home_views["U0ADA"]["private_metadata"]


async def test_no_usage_gets_a_first_run_home(hbot):
    await open_home(hbot)
    view = publishes(hbot)[0].args["view"]
    text = flat(view)
    assert text.startswith("Welcome to tokenbot") and "No usage from you yet" in text
    assert "$0" not in text and "*Today*" not in text  # no rows of zeros
    assert "request_budget" not in str(view["blocks"])  # nothing to ask for yet


async def test_slack_retries_of_one_event_publish_once(hbot):
    await open_home(hbot, event_id="Ev0RETRY1")
    await open_home(hbot, event_id="Ev0RETRY1", retry=1)
    await open_home(hbot, event_id="Ev0RETRY1", retry=2)
    assert len(publishes(hbot)) == 1
    assert await hbot.sql("SELECT event_id FROM slack_events_seen") == [("Ev0RETRY1",)]


async def test_concurrent_duplicate_deliveries_publish_once(hbot, make_bot, fake_slack):
    other = await make_bot(clock=SettableClock(TZ, NOW))  # a second process on the same database
    body = event_callback_body({"type": "app_home_opened", "user": "U0ADA", "tab": "home"}, "Ev0TWICE")
    results = await asyncio.gather(hbot.slack_post(body), other.slack_post(body, headers={"X-Slack-Retry-Num": "1"}))
    assert [status for status, _ in results] == [200, 200]
    await hbot.services.background.drain()
    await other.services.background.drain()
    assert len(publishes(hbot)) == 1


async def test_home_is_republished_when_usage_changed(hbot):
    await open_home(hbot)
    await open_home(hbot)  # nothing changed: Slack already shows it
    assert len(publishes(hbot)) == 1
    await ingest(hbot, [usage(1, "U0ADA", local(18, 10), "2.25")])
    await open_home(hbot)
    calls = publishes(hbot)
    assert len(calls) == 2
    assert "*Today*\n$2.25" in flat(calls[-1].args["view"])


async def test_messages_tab_is_ignored(hbot):
    await open_home(hbot, tab="messages")
    assert publishes(hbot) == []


async def test_rate_limited_publish_is_retried(hbot, fake_slack):
    fake_slack.fail_next("views.publish", retry_after=0)
    await open_home(hbot)
    assert [c.status for c in fake_slack.calls_to("views.publish")] == [429, 200]
    assert fake_slack.home_views["U0ADA"]


async def test_failed_publish_leaves_the_event_for_slacks_retry(hbot, fake_slack):
    fake_slack.fail_next("views.publish", error="internal_error")
    await open_home(hbot, event_id="Ev0FAIL")
    assert publishes(hbot) == []
    await open_home(hbot, event_id="Ev0FAIL", retry=1)
    assert len(publishes(hbot)) == 1


async def test_email_only_user_sees_their_numbers_at_home(hbot, fake_slack):
    await ingest(hbot, [usage(1, "eve@acme.example", local(16), "3.30")])
    await hbot.services.identities.drain()
    fake_slack.add_user("U0EVE", name="eve", email="eve@acme.example")
    await open_home(hbot, "U0EVE")
    assert "*$3.30 spent, $196.70 left" in flat(publishes(hbot, "U0EVE")[0].args["view"])


@pytest.fixture
def extra_section(hbot):
    async def waiting_for_you(services, user_id):
        return [{"type": "section", "text": {"type": "mrkdwn", "text": f"*Requests waiting for you* ({user_id})"}}]

    async def broken(services, user_id):
        raise RuntimeError("half-built feature")

    hbot.services.home_sections.extend([broken, waiting_for_you])


async def test_registered_sections_are_shown_and_a_broken_one_is_skipped(hbot, extra_section):
    await open_home(hbot)
    view = publishes(hbot)[0].args["view"]
    assert "*Requests waiting for you* (U0ADA)" in flat(view)
    assert flat(view).index("Your AI spend") < flat(view).index("Requests waiting for you")
