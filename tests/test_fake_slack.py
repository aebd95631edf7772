"""Tests of the fake Slack Web API, the Block Kit validator and the signing helpers."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from urllib.parse import parse_qs

import aiohttp
import pytest
import pytest_asyncio
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.fakes.blockkit import validate_blocks, validate_view
from tests.fakes.slack_api import FakeSlack
from tests.support.signing import (
    block_action_body,
    event_callback_body,
    slack_signed_headers,
    slash_command_body,
    standard_webhook_headers,
    view_submission_body,
)


def section(text: str, **extra) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}, **extra}


def button(action_id: str, text: str = "Approve", **extra) -> dict:
    return {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": text}, **extra}


def modal(title: str = "Request tokens", blocks: list | None = None, **extra) -> dict:
    return {"type": "modal", "title": {"type": "plain_text", "text": title}, "blocks": blocks or [], **extra}


@pytest_asyncio.fixture
async def fake():
    async with FakeSlack() as fake:
        yield fake


@pytest_asyncio.fixture
async def client(fake):
    client = AsyncWebClient(
        token="xoxb-test",
        base_url=fake.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2),
                        AsyncServerErrorRetryHandler(max_retry_count=2)],
    )
    yield client
    if client.session is not None:
        await client.session.close()


# -- messages -------------------------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_api_url_shape(fake):
    assert fake.api_url.startswith("http://127.0.0.1:") and fake.api_url.endswith("/api/")


@pytest.mark.asyncio
async def test_valid_message_is_accepted_and_recorded(fake, client):
    blocks = [section("*Hello*"), {"type": "actions", "elements": [button("approve", style="primary")]}]
    resp = await client.chat_postMessage(channel="C1", text="Hello", blocks=blocks)
    assert resp["ok"] and resp["channel"] == "C1"
    assert resp["message"]["blocks"] == blocks
    [call] = fake.calls_to("chat.postMessage")
    assert call.args["blocks"] == blocks and call.args["text"] == "Hello"
    assert call.headers["Authorization"] == "Bearer xoxb-test"
    assert fake.messages_in("C1")[0]["ts"] == resp["ts"]


@pytest.mark.asyncio
async def test_ts_is_unique_and_increasing(client):
    first = await client.chat_postMessage(channel="C1", text="a")
    second = await client.chat_postMessage(channel="C1", text="b")
    assert first["ts"] == "1732600000.000100"
    assert float(second["ts"]) > float(first["ts"])


@pytest.mark.asyncio
async def test_51_blocks_are_rejected(fake, client):
    with pytest.raises(SlackApiError) as exc:
        await client.chat_postMessage(channel="C1", text="x", blocks=[{"type": "divider"}] * 51)
    assert exc.value.response["error"] == "invalid_blocks"
    assert any("no more than 50 blocks" in e for e in exc.value.response["errors"])
    assert fake.messages_in("C1") == []
    await client.chat_postMessage(channel="C1", text="x", blocks=[{"type": "divider"}] * 50)


@pytest.mark.asyncio
async def test_section_text_over_3000_chars_is_rejected(client):
    with pytest.raises(SlackApiError) as exc:
        await client.chat_postMessage(channel="C1", text="x", blocks=[section("a" * 3001)])
    assert exc.value.response["error"] == "invalid_blocks"
    assert "/blocks/0/text/text" in exc.value.response["errors"][0]
    await client.chat_postMessage(channel="C1", text="x", blocks=[section("a" * 3000)])


@pytest.mark.asyncio
@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
async def test_message_needs_text_or_blocks(client):
    with pytest.raises(SlackApiError) as exc:
        await client.chat_postMessage(channel="C1")
    assert exc.value.response["error"] == "no_text"


@pytest.mark.asyncio
async def test_channel_errors(fake, client):
    fake.missing_channels.add("CGONE")
    fake.not_in_channels.add("COUT")
    fake.archived_channels.add("COLD")
    expected = [("CGONE", "channel_not_found"), ("COUT", "not_in_channel"), ("COLD", "is_archived")]
    for channel, error in expected:
        with pytest.raises(SlackApiError) as exc:
            await client.chat_postMessage(channel=channel, text="x")
        assert exc.value.response["error"] == error


@pytest.mark.asyncio
async def test_post_to_user_goes_to_dm_channel(fake, client):
    opened = await client.conversations_open(users="U1")
    posted = await client.chat_postMessage(channel="U1", text="hi")
    assert opened["channel"]["id"] == posted["channel"] == "DU1"
    assert fake.messages_in("DU1")[0]["text"] == "hi"


@pytest.mark.asyncio
async def test_unknown_method_is_404(client):
    with pytest.raises(SlackApiError) as exc:
        await client.api_call("chat.postMessages", json={"channel": "C1", "text": "x"})
    assert exc.value.response.status_code == 404
    assert exc.value.response["error"] == "unknown_method"


@pytest.mark.asyncio
async def test_auth_is_required(fake):
    for token, error in [(None, "not_authed"), ("xoxp-user", "invalid_auth")]:
        client = AsyncWebClient(token=token, base_url=fake.api_url)
        with pytest.raises(SlackApiError) as exc:
            await client.auth_test()
        assert exc.value.response["error"] == error


@pytest.mark.asyncio
async def test_auth_test(client):
    resp = await client.auth_test()
    identity = (resp["user_id"], resp["bot_id"], resp["team_id"], resp["team"])
    assert identity == ("UBOT", "BBOT", "T0TEAM", "Acme")


@pytest.mark.asyncio
async def test_chat_update_updates_in_place(fake, client):
    posted = await client.chat_postMessage(channel="C1", text="pending", blocks=[section("Pending")])
    updated = await client.chat_update(channel="C1", ts=posted["ts"], text="approved",
                                       blocks=[section("Approved by <@U2>")])
    assert updated["ts"] == posted["ts"]
    [message] = fake.messages_in("C1")
    assert message["text"] == "approved"
    assert message["blocks"][0]["text"]["text"] == "Approved by <@U2>"
    with pytest.raises(SlackApiError) as exc:
        await client.chat_update(channel="C1", ts="1.000000", text="x")
    assert exc.value.response["error"] == "message_not_found"


@pytest.mark.asyncio
async def test_ephemeral_cannot_be_updated(fake, client):
    resp = await client.chat_postEphemeral(channel="C1", user="U1", text="only you")
    assert fake.ephemerals[0]["message_ts"] == resp["message_ts"]
    with pytest.raises(SlackApiError):
        await client.chat_update(channel="C1", ts=resp["message_ts"], text="x")


@pytest.mark.asyncio
async def test_permalink(client):
    posted = await client.chat_postMessage(channel="C1", text="x")
    resp = await client.chat_getPermalink(channel="C1", message_ts=posted["ts"])
    assert resp["permalink"].endswith("/archives/C1/p" + posted["ts"].replace(".", ""))


@pytest.mark.asyncio
async def test_form_encoded_request_with_json_string_blocks(fake):
    blocks = [section("from a form")]
    form = {"channel": "C1", "text": "x", "blocks": json.dumps(blocks)}
    headers = {"Authorization": "Bearer xoxb-form"}
    async with aiohttp.ClientSession() as session, session.post(
        fake.api_url + "chat.postMessage", data=form, headers=headers
    ) as resp:
        assert (await resp.json())["ok"] is True
    assert fake.calls_to("chat.postMessage")[0].args["blocks"] == blocks


# -- retries and failure injection ----------------------------------------------------------------------

@pytest.mark.asyncio
async def test_429_is_retried_by_the_client(fake, client):
    fake.fail_next("chat.postMessage", status=429, retry_after=0)
    resp = await client.chat_postMessage(channel="C1", text="x")
    assert resp["ok"]
    calls = fake.calls_to("chat.postMessage")
    assert [c.status for c in calls] == [429, 200]
    assert len(fake.messages_in("C1")) == 1


@pytest.mark.asyncio
async def test_500_is_retried_with_server_error_handler(fake, client):
    fake.fail_next("auth.test", status=500, times=1)
    assert (await client.auth_test())["ok"]
    assert [c.status for c in fake.calls_to("auth.test")] == [500, 200]


@pytest.mark.asyncio
async def test_injected_error(fake, client):
    fake.fail_next("chat.postMessage", error="channel_not_found", times=2)
    for _ in range(2):
        with pytest.raises(SlackApiError):
            await client.chat_postMessage(channel="C1", text="x")
    assert (await client.chat_postMessage(channel="C1", text="x"))["ok"]


@pytest.mark.asyncio
async def test_wait_for_returns_when_call_arrives(fake, client):
    task = asyncio.create_task(client.chat_postMessage(channel="C1", text="later"))
    [call] = await fake.wait_for("chat.postMessage", timeout=5)
    assert call.args["text"] == "later" and call.ok
    await task
    with pytest.raises(TimeoutError):
        await fake.wait_for("chat.update", timeout=0.05)


@pytest.mark.asyncio
async def test_reset_clears_recorded_state(fake, client):
    fake.add_user("U1", name="ann")
    await client.chat_postMessage(channel="C1", text="x")
    fake.reset()
    assert fake.calls == [] and fake.messages_in("C1") == [] and "U1" in fake.users


# -- users and team --------------------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_users_info_and_lookup_by_email(fake, client):
    fake.add_user("U1", name="ann", email="ann@example.com", is_admin=True, tz="Europe/Berlin")
    by_email = await client.users_lookupByEmail(email="ann@example.com")
    assert by_email["user"]["id"] == "U1"
    info = await client.users_info(user="U1")
    assert info["user"]["is_admin"] is True and info["user"]["tz"] == "Europe/Berlin"
    assert info["user"]["profile"]["email"] == "ann@example.com"
    with pytest.raises(SlackApiError) as exc:
        await client.users_lookupByEmail(email="nobody@example.com")
    assert exc.value.response["error"] == "users_not_found"
    with pytest.raises(SlackApiError) as exc:
        await client.users_info(user="U404")
    assert exc.value.response["error"] == "user_not_found"


@pytest.mark.asyncio
async def test_profile_fields(fake, client):
    fake.team_profile_fields = [{"id": "Xf01", "label": "Manager", "type": "user"}]
    fake.add_user("U1", name="ann", fields={"Xf01": "U2"})
    team = await client.team_profile_get()
    assert team["profile"]["fields"][0]["label"] == "Manager"
    profile = await client.users_profile_get(user="U1")
    assert profile["profile"]["fields"]["Xf01"]["value"] == "U2"


# -- files ----------------------------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_files_upload_v2_end_to_end(fake, client):
    resp = await client.files_upload_v2(channel="C1", content=b"a,b\n1,2\n", filename="usage.csv",
                                        title="Usage", initial_comment="Here you go")
    assert resp["ok"] and resp["file"]["title"] == "Usage"
    [uploaded] = fake.uploaded_files
    assert uploaded.content == b"a,b\n1,2\n" and uploaded.filename == "usage.csv"
    assert uploaded.channel == "C1" and uploaded.initial_comment == "Here you go"


@pytest.mark.asyncio
async def test_complete_upload_without_bytes_fails(client):
    url = await client.files_getUploadURLExternal(filename="x.txt", length=3)
    with pytest.raises(SlackApiError) as exc:
        await client.files_completeUploadExternal(files=[{"id": url["file_id"], "title": "x"}],
                                                  channel_id="C1")
    assert exc.value.response["error"] == "file_not_found"


# -- views ----------------------------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_modal_with_25_char_title_is_rejected(fake, client):
    with pytest.raises(SlackApiError) as exc:
        await client.views_open(trigger_id="t1", view=modal("x" * 25))
    assert exc.value.response["error"] == "invalid_arguments"
    assert "/view/title/text" in exc.value.response["errors"][0]
    opened = await client.views_open(trigger_id="t2", view=modal("x" * 24))
    assert opened["view"]["id"].startswith("V")


@pytest.mark.asyncio
async def test_views_trigger_rules_and_update(fake, client):
    with pytest.raises(SlackApiError):
        await client.views_open(trigger_id="", view=modal())
    opened = await client.views_open(trigger_id="t1", view=modal(external_id="req-1"))
    with pytest.raises(SlackApiError) as exc:
        await client.views_open(trigger_id="t1", view=modal())
    assert exc.value.response["error"] == "exchanged_trigger_id"
    updated = await client.views_update(external_id="req-1", view=modal("Done", [section("ok")]))
    assert updated["view"]["id"] == opened["view"]["id"]
    assert fake.views[opened["view"]["id"]]["title"]["text"] == "Done"
    with pytest.raises(SlackApiError) as exc:
        await client.views_update(view_id="VNOPE", view=modal())
    assert exc.value.response["error"] == "not_found"


@pytest.mark.asyncio
async def test_views_publish_stores_home_view(fake, client):
    await client.views_publish(user_id="U1", view={"type": "home", "blocks": [section("Your balance")]})
    assert fake.home_views["U1"]["blocks"][0]["text"]["text"] == "Your balance"
    with pytest.raises(SlackApiError):
        await client.views_publish(user_id="U1", view={"type": "home", "blocks": [{"type": "bogus"}]})


# -- response_url ---------------------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_response_url_records_and_validates(fake):
    webhook = AsyncWebhookClient(fake.response_url("cmd-1"))
    ok = await webhook.send(text="done", replace_original=True, blocks=[section("Done")])
    assert ok.status_code == 200
    bad = await webhook.send(text="x", blocks=[{"type": "input", "label": {"type": "plain_text", "text": "l"},
                                                "element": {"type": "plain_text_input"}}])
    assert bad.status_code == 400 and "invalid_blocks" in bad.body
    assert [r.ok for r in fake.responses_to("cmd-1")] == [True, False]
    assert fake.responses[0].args["replace_original"] is True


# -- Block Kit validator --------------------------------------------------------------------------------

def test_validate_blocks_rules():
    assert validate_blocks([section("hi")], surface="message") == []
    assert validate_blocks("nope", surface="message")
    assert validate_blocks([{"type": "section"}], surface="message")
    assert validate_blocks([{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}], surface="message")
    assert validate_blocks([{"type": "divider", "block_id": "a"}, {"type": "divider", "block_id": "a"}],
                           surface="message")
    dup = [{"type": "actions", "elements": [button("a")]}, {"type": "actions", "elements": [button("a")]}]
    assert any("duplicate action_id" in p for p in validate_blocks(dup, surface="message"))
    assert validate_blocks([{"type": "actions", "elements": [button("a", style="green")]}], surface="message")
    assert validate_blocks([{"type": "actions", "elements": [button("a", "x" * 76)]}], surface="message")
    assert validate_blocks([{"type": "actions", "elements": []}], surface="message")
    confirm = {"title": {"type": "plain_text", "text": "Sure?"}, "text": {"type": "mrkdwn", "text": "Really"},
               "confirm": {"type": "plain_text", "text": "Yes"}, "deny": {"type": "plain_text", "text": "No"}}
    assert validate_blocks([{"type": "actions", "elements": [button("a", confirm=confirm)]}],
                           surface="message") == []
    long_confirm = {**confirm, "deny": {"type": "plain_text", "text": "n" * 31}}
    assert validate_blocks([{"type": "actions", "elements": [button("a", confirm=long_confirm)]}],
                           surface="message")
    assert validate_blocks([section("x", fields=[{"type": "mrkdwn", "text": "f"}] * 11)], surface="message")
    assert validate_blocks([{"type": "image", "image_url": "https://x/y.png"}], surface="message")
    assert validate_blocks([section("x", imageUrl="camel")], surface="message")
    input_block = {"type": "input", "label": {"type": "plain_text", "text": "Amount"},
                   "element": {"type": "number_input", "is_decimal_allowed": False, "action_id": "amount"}}
    assert validate_blocks([input_block], surface="message")
    assert validate_blocks([input_block], surface="modal") == []
    assert len(validate_blocks([{"type": "divider"}] * 100, surface="home")) == 0


def test_validate_view_rules():
    input_block = {"type": "input", "label": {"type": "plain_text", "text": "Reason"},
                   "element": {"type": "plain_text_input", "action_id": "reason"}}
    assert validate_view(modal(blocks=[input_block]))  # no submit
    submit = {"type": "plain_text", "text": "Send"}
    assert validate_view(modal(blocks=[input_block], submit=submit)) == []
    assert validate_view(modal(private_metadata="x" * 3001))
    assert validate_view(modal(callback_id="c" * 256))
    assert validate_view({"type": "dialog", "blocks": []})
    assert validate_view({"type": "home", "blocks": [section("x")]}) == []


# -- signing helpers ------------------------------------------------------------------------------------

def test_slack_signing_matches_slack_sdk():
    verifier = SignatureVerifier("shh-secret")
    for body in (slash_command_body(user_id="U1", channel_id="C1"),
                 block_action_body({"type": "block_actions", "actions": []}),
                 view_submission_body({"type": "view_submission", "view": {}}),
                 event_callback_body({"type": "app_home_opened", "user": "U1"}, event_id="Ev1")):
        headers = slack_signed_headers(body, "shh-secret")
        assert verifier.is_valid_request(body, headers)
        assert not SignatureVerifier("other").is_valid_request(body, headers)
    stale = slack_signed_headers(b"a=b", "shh-secret", timestamp=int(time.time()) - 600)
    assert not verifier.is_valid_request(b"a=b", stale)


def test_slash_command_body_is_form_encoded():
    fields = parse_qs(slash_command_body(text="me please", user_id="U1", trigger_id="t.1").decode())
    assert fields["command"] == ["/tokens"] and fields["text"] == ["me please"]
    assert fields["user_id"] == ["U1"] and fields["trigger_id"] == ["t.1"] and fields["team_id"] == ["T0TEAM"]
    payload = parse_qs(block_action_body({"type": "block_actions"}).decode())["payload"][0]
    assert json.loads(payload) == {"type": "block_actions"}
    assert slack_signed_headers(b"a=b", "s")["Content-Type"] == "application/x-www-form-urlencoded"
    assert json.loads(event_callback_body({"type": "x"}, event_id="Ev1"))["event_id"] == "Ev1"


def test_standard_webhook_headers_verify_with_standardwebhooks():
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    body = b'{"type": "usage.updated", "user": "ann@example.com"}'
    headers = standard_webhook_headers(body, secret, msg_id="msg_1")
    assert headers["Content-Type"] == "application/json"
    assert Webhook(secret).verify(body, headers) == json.loads(body)
    rotated = standard_webhook_headers(body, secret, extra_signatures=["v1,AAAA"])
    assert len(rotated["webhook-signature"].split(" ")) == 2
    Webhook(secret).verify(body, rotated)
    other = "whsec_" + base64.b64encode(b"another-secret-another-secret!!!").decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        old = standard_webhook_headers(body, secret, timestamp=int(time.time()) - 3600)
        Webhook(secret).verify(body, old)
