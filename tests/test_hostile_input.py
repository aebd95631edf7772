"""Hostile input (issue 9): each a clear 4xx (or a 503 that says retry), the rest of the batch
unharmed, and the service still answering. Requests go over real sockets to the served bot;
where a client library would refuse to send the bytes (non-UTF-8 headers, a stalled body), a
raw socket writes them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import zlib
from datetime import UTC, datetime

import orjson
import pytest

from tests.conftest import API_TOKEN, IS_POSTGRES, WEBHOOK_TOKEN, event
from tests.test_crash import WriteLock


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def litellm_call(n: int, **fields) -> dict:
    rec = {
        "id": f"chatcmpl-{n}", "litellm_call_id": f"call-{n}", "startTime": time.time() - 60, "model": "gpt-4o",
        "prompt_tokens": 100, "completion_tokens": 10, "response_cost": 0.001, "status": "success",
        "metadata": {"user_api_key_user_id": "U0ALICE"}, "messages": [{"role": "user", "content": "hi"}],
    }
    rec.update(fields)
    return rec


async def post_litellm(bot, raw: bytes):
    return await bot.post_usage(None, raw=raw, path="/webhooks/litellm", bearer=WEBHOOK_TOKEN)


async def stored_ids(bot) -> list[str]:
    return [r[0] for r in await bot.sql("SELECT event_id FROM usage_events ORDER BY event_id")]


async def raw_request(bot, head: bytes, body: bytes = b"", *, wait: float = 10.0) -> tuple[int, bytes]:
    """Write bytes to the bot's socket as they are; return the status and the response body."""
    host, port = bot.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head + body)
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), wait)
    finally:
        writer.close()
    status_line, _, rest = response.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


# --------------------------------------------------------------------------- timestamps that overflow


async def test_native_timestamp_that_overflows_in_utc_is_rejected_by_index(bot):
    batch = [event(1), event(2, timestamp="9999-12-31T23:59:59-01:00"), event(3, timestamp=10**400), event(4)]
    raw = orjson.dumps(batch[:2]).replace(b"]", b"," + json.dumps(batch[2:]).encode()[1:])
    status, body = await bot.post_usage(None, raw=raw)
    assert status == 200, body
    assert body["accepted"] == 2
    assert [(r["index"], r["id"]) for r in body["rejected"]] == [(1, "evt-2"), (2, "evt-3")]
    assert "out of range" in body["rejected"][0]["error"]
    assert "timestamp" in body["rejected"][1]["error"]
    assert len(body["rejected"][1]["error"]) < 200  # the 400 digits are not echoed back
    assert await stored_ids(bot) == ["evt-1", "evt-4"]


async def test_litellm_start_times_that_overflow_are_rejected_by_index(bot):
    raw = json.dumps([litellm_call(0), litellm_call(1, startTime="9999-12-31T23:59:59-01:00"), litellm_call(2),
                      litellm_call(3, startTime=10**400), litellm_call(4, startTime="HUGE")])
    raw = raw.replace('"HUGE"', "9" * 5000)  # past Python's 4300-digit limit for int()
    status, body = await post_litellm(bot, raw.encode())
    assert status == 200, body
    assert [(r["index"], r["id"]) for r in body["rejected"]] == [(1, "call-1"), (3, "call-3"), (4, "call-4")]
    assert await stored_ids(bot) == ["call-0", "call-2"]
    assert (await bot.get("/healthz"))[0] == 200  # the process is still there


async def test_a_huge_integer_anywhere_in_a_litellm_body_does_not_crash_the_process(bot):
    # ijson's C backend dereferences NULL on integers past 4300 digits: one such number used to kill
    # the whole process. In a field we ignore it is ignored; digits inside strings are left alone.
    rec = litellm_call(1, hidden_params={"huge": "HUGE", "tiny": "TINY"}, messages=[{"content": "8" * 6000}])
    raw = json.dumps([rec, litellm_call(2)]).encode()
    raw = raw.replace(b'"HUGE"', b"-" + b"7" * 5000).replace(b'"TINY"', b"1e-" + b"9" * 400)
    status, body = await post_litellm(bot, raw)
    assert status == 200, body
    assert body["accepted"] == 2
    assert (await bot.get("/healthz"))[0] == 200


# --------------------------------------------------------------------------- NUL and lone surrogates

HOSTILE_NATIVE = [
    (dict(user="U0AL\u0000ICE"), "user: contains a NUL"),
    (dict(id="evt-\u0000"), "id: contains a NUL"),
    (dict(model="gpt-4o\ud800"), "model: contains a NUL character or a lone surrogate"),
    (dict(team="\udc00team"), "team: contains"),
    (dict(metadata={"k": "v\u0000"}), "metadata: contains"),
    (dict(metadata={"\ud83d": 1}), "metadata: contains"),
]


@pytest.mark.parametrize(("fields", "reason"), HOSTILE_NATIVE, ids=[r for _, r in HOSTILE_NATIVE])
async def test_nul_and_lone_surrogates_reject_that_native_event_only(bot, fields, reason):
    bad = event("bad", **fields)
    raw = json.dumps([event(1), bad, event(3)]).encode()  # \u0000 and \ud800 as JSON escapes
    status, body = await bot.post_usage(None, raw=raw)
    assert status == 200, body
    assert body["accepted"] == 2
    assert [r["index"] for r in body["rejected"]] == [1]
    assert reason in body["rejected"][0]["error"]
    assert await stored_ids(bot) == ["evt-1", "evt-3"]
    # and again: the same batch resent is answered the same way, not failed for good
    status, body = await bot.post_usage(None, raw=raw)
    assert (status, body["duplicates"], len(body["rejected"])) == (200, 2, 1)


@pytest.mark.parametrize(
    ("record", "raw_edit"),
    [
        (dict(end_user="\ud800eve", metadata={}), None),
        (dict(model="gpt\u0000-4o"), None),
        (dict(metadata={"user_api_key_user_id": "\udfffU0ALICE"}), None),
        (dict(end_user="RAWSURROGATE", metadata={}), (b"RAWSURROGATE", b"eve\xed\xa0\x80")),
    ],
    ids=["high-surrogate-escape", "nul", "low-surrogate-escape", "raw-surrogate-bytes"],
)
async def test_nul_and_lone_surrogates_reject_that_litellm_call_only(bot, record, raw_edit):
    raw = json.dumps([litellm_call(0), litellm_call(1, **record), litellm_call(2)]).encode()
    if raw_edit:
        raw = raw.replace(*raw_edit)
    status, body = await post_litellm(bot, raw)
    assert status == 200, body
    assert [(r["index"], r["id"]) for r in body["rejected"]] == [(1, "call-1")]
    assert "NUL character or a lone surrogate" in body["rejected"][0]["error"]
    assert await stored_ids(bot) == ["call-0", "call-2"]


async def test_surrogate_pairs_are_text_and_are_stored(bot):
    raw = json.dumps([litellm_call(1, end_user="eve \U0001f600", metadata={})]).encode()
    assert b"\\ud83d\\ude00" in raw  # how Python's json.dumps (LiteLLM's) writes an emoji
    status, body = await post_litellm(bot, raw)
    assert (status, body["accepted"]) == (200, 1), body
    assert await bot.sql("SELECT subject FROM usage_events") == [("eve \U0001f600",)]


# --------------------------------------------------------------------------- compressed bodies


def gzip_bomb(inflated_gib: int = 4) -> bytes:
    """~4 MB of gzip that inflates to `inflated_gib` GiB of zeros (built in a second, not by
    compressing 4 GiB: each fully-flushed 1 MiB block of zeros compresses to the same bytes)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    head = compressor.compress(b"[" + b"0" * (1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(b"0" * (1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return head + block * (inflated_gib * 1024 - 1)


@pytest.mark.parametrize("path", ["/webhooks/usage", "/webhooks/litellm"])
async def test_a_gzip_bomb_is_refused_before_authentication_and_healthz_keeps_answering(bot, path):
    bomb = gzip_bomb()
    assert len(bomb) < 6 * 1024 * 1024

    async def send():
        try:
            async with bot.http.post(bot.url + path, data=bomb,
                                     headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}) as resp:
                return resp.status, await resp.json()
        except OSError:  # the server closed the connection while the bomb was still being written
            return "closed", None

    async def health() -> float:
        worst = 0.0
        for _ in range(20):
            start = time.perf_counter()
            assert (await bot.get("/healthz"))[0] == 200
            worst = max(worst, time.perf_counter() - start)
            await asyncio.sleep(0.01)
        return worst

    (status, body), worst = await asyncio.gather(send(), health())
    assert status in (415, "closed")
    if status == 415:
        assert "Content-Encoding" in body["error"]
    assert worst < 1.0


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "x-gzip, identity"])
async def test_compressed_or_broken_compressed_bodies_are_415_never_500(bot, encoding):
    broken = b"\x1f\x8b\x08\x00garbage-after-a-gzip-magic"
    for path in ("/webhooks/usage", "/webhooks/litellm", "/slack/events"):
        async with bot.http.post(bot.url + path, data=broken,
                                 headers={"Content-Encoding": encoding, "Authorization": f"Bearer {WEBHOOK_TOKEN}",
                                          "Content-Type": "application/json"}) as resp:
            assert resp.status == 415, (path, await resp.text())
    assert (await bot.post_usage([event(1)]))[0] == 200


# --------------------------------------------------------------------------- headers that are not text


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/webhooks/usage"), ("POST", "/webhooks/litellm"), ("GET", "/api/v1/limits/U0ALICE")],
)
@pytest.mark.parametrize("value", [b"Bearer \xff\xfe", b"Bearer " + API_TOKEN.encode() + b"\xe9", b"\xc3\x28"])
async def test_an_authorization_header_that_is_not_utf8_is_401(bot, method, path, value):
    body = orjson.dumps([event(1)]) if method == "POST" else b""
    head = (f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\nAuthorization: ").encode() + value + b"\r\n\r\n"
    status, answer = await raw_request(bot, head, body)
    assert status == 401, answer
    assert json.loads(answer)["error"]
    assert await stored_ids(bot) == []
    assert (await bot.get("/healthz"))[0] == 200


async def test_webhook_signature_headers_that_are_not_utf8_are_401(bot):
    body = orjson.dumps([event(1)])
    head = (b"POST /webhooks/usage HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\nwebhook-id: m\xff\r\n"
            b"webhook-timestamp: " + str(int(time.time())).encode() + b"\r\nwebhook-signature: v1,\xfe\r\n\r\n")
    status, _ = await raw_request(bot, head, body)
    assert status == 401


# --------------------------------------------------------------------------- Slack's door


@pytest.mark.parametrize("body", [b'{"type": "event_callback", "event": ', b"\xff\xfe{{{", b"payload=%7Bnot-json"])
async def test_slack_events_with_an_unsigned_malformed_body_is_a_quiet_401(bot, caplog, body):
    caplog.set_level(logging.INFO)
    async with bot.http.post(bot.url + "/slack/events", data=body,
                             headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 401
        assert "error" in await resp.json()
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_slack_events_signed_but_malformed_is_400_without_a_traceback(bot, caplog):
    caplog.set_level(logging.INFO)
    body = b'{"type": "event_callback", "event": '
    status, answer = await bot.slack_post(body)
    assert status == 400, answer
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    status, _ = await bot.command("help")  # a well-formed, signed request still works
    assert status == 200


async def test_slacks_unsigned_ssl_check_is_still_answered(bot):
    async with bot.http.post(bot.url + "/slack/events", data=b"ssl_check=1&token=x",
                             headers={"Content-Type": "application/x-www-form-urlencoded"}) as resp:
        assert resp.status == 200


# --------------------------------------------------------------------------- stuck senders, frozen databases


@pytest.mark.parametrize("path", ["/webhooks/usage", "/webhooks/litellm", "/slack/events"])
async def test_a_request_stuck_mid_body_is_timed_out_with_503(make_bot, path):
    bot = await make_bot(body_timeout_seconds=0.3)
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n"
            f"Authorization: Bearer {WEBHOOK_TOKEN}\r\n\r\n").encode()
    start = time.perf_counter()
    host, port = bot.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head + b'[{"id": "stuck"')  # ...and nothing more
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert response.startswith(b"HTTP/1.1 503"), response[:200]
    assert time.perf_counter() - start < 3
    assert b"Retry-After" in response or path == "/slack/events"
    assert (await bot.get("/healthz"))[0] == 200


@pytest.mark.parametrize("which", ["ingest deadline", "statement timeout"])
async def test_a_frozen_database_answers_503_and_the_resent_batch_counts_once(make_bot, database_url, which):
    if which == "statement timeout" and not IS_POSTGRES:
        pytest.skip("SQLite has no statement timeout; its writer waits on the lock (busy_timeout)")
    quick = {"ingest_timeout_seconds": 0.5} if which == "ingest deadline" else {
        "statement_timeout_seconds": 0.3, "ingest_timeout_seconds": 30}
    bot = await make_bot(**quick)
    assert (await bot.post_usage([event("warm-up")]))[0] == 200  # the writer's connection is open
    batch = [event(i) for i in range(5)]
    async with WriteLock(database_url) as lock:
        start = time.perf_counter()
        status, body = await bot.post_usage(batch)
        assert status == 503, body
        assert time.perf_counter() - start < 5
        assert "again" in body["error"] or "retry" in body["error"]
        assert (await bot.get("/healthz"))[0] in (200, 503)
        await lock.release()
    status, body = await bot.post_usage(batch)
    for _ in range(50):  # the first attempt may still be committing behind the lock it waited on
        if status == 200 and body["accepted"] + body["duplicates"] == 5:
            break
        await asyncio.sleep(0.1)
        status, body = await bot.post_usage(batch)
    assert (status, body["accepted"] + body["duplicates"]) == (200, 5), body
    assert len(await stored_ids(bot)) == 6
    assert await bot.sql("SELECT SUM(events) FROM usage_monthly") == [(6,)]


# --------------------------------------------------------------------------- the limits API before a first call


async def test_limits_for_an_email_never_seen_in_usage_is_looked_up_in_slack(bot, fake_slack):
    fake_slack.add_user("U0NEWBIE", name="newbie", email="newbie@acme.com")
    status, body = await bot.get("/api/v1/limits/newbie@acme.com", headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert status == 200, body
    assert (body["slack_user_id"], body["spent_usd"], body["allowed"]) == ("U0NEWBIE", "0", True)
    # linked like an email seen in usage: the first call is the person's
    assert (await bot.post_usage([event(1, user="newbie@acme.com")]))[0] == 200
    assert await bot.sql("SELECT user_key FROM usage_events") == [("U0NEWBIE",)]
    # asked once: the link is kept
    await bot.get("/api/v1/limits/newbie@acme.com", headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert len(fake_slack.calls_to("users.lookupByEmail")) == 1


async def test_limits_for_an_email_slack_does_not_know_is_404_and_remembered(bot, fake_slack):
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    for _ in range(3):
        status, _ = await bot.get("/api/v1/limits/ghost@acme.com", headers=auth)
        assert status == 404
    assert len(fake_slack.calls_to("users.lookupByEmail")) == 1


async def test_limits_when_slack_cannot_be_asked_is_503(bot, fake_slack):
    fake_slack.fail_next("users.lookupByEmail", status=500, times=10)
    status, body = await bot.get("/api/v1/limits/someone@acme.com", headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert status == 503
    assert "Slack" in body["error"]


async def test_limits_path_that_is_not_text_is_400(bot):
    status, _ = await bot.get("/api/v1/limits/a%00b", headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert status == 400


async def test_every_refusal_is_logged_once_at_warning_with_the_senders_address(bot, caplog):
    caplog.set_level(logging.INFO)
    await bot.post_usage([event(1)], bearer="wrong")
    await bot.post_usage([event(2, input_tokens=-1)])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("refused 401" in m and "127.0.0.1" in m for m in warnings), warnings
    assert any("1 rejected" in m and "127.0.0.1" in m for m in warnings), warnings
    assert not any(WEBHOOK_TOKEN in m or "wrong" in m.split("refused")[0] for m in warnings)

