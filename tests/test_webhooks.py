"""POST /webhooks/usage: authentication, body forms, validation, de-duplication (SPEC 5)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest

from tests.conftest import WEBHOOK_TOKEN, event
from tests.support.signing import standard_webhook_headers, standard_webhook_signature

NO_SKIPS = {"skipped": 0, "served_from_cache": 0}  # nothing skipped, nothing served from a cache


async def stored_ids(bot) -> list[str]:
    return [r[0] for r in await bot.sql("SELECT event_id FROM usage_events ORDER BY event_id")]


async def month_totals(bot) -> tuple:
    rows = await bot.sql("SELECT SUM(events), SUM(input_tokens), SUM(output_tokens) FROM usage_monthly")
    return rows[0]


async def test_signed_event_is_stored_with_exact_cost(bot):
    status, body = await bot.post_usage(event(1, input_tokens=1000, cached_input_tokens=200, output_tokens=500))
    assert status == 200, body
    assert body == {"accepted": 1, "duplicates": 0, **NO_SKIPS, "rejected": []}
    rows = await bot.sql("SELECT user_key, model, cost_usd, price_source, unpriced FROM usage_events")
    assert len(rows) == 1
    user_key, model, _cost, source, unpriced = rows[0]
    # gpt-4o: $2.50/M input, $1.25/M cached input, $10/M output
    expected = (Decimal(800) * Decimal("2.5") + Decimal(200) * Decimal("1.25") + Decimal(500) * 10) / 10**6
    async with bot.services.db.session() as session:
        from storage.models import UsageEvent

        stored = await session.get(UsageEvent, "evt-1")
    assert stored.cost_usd == expected
    assert (user_key, model, unpriced) == ("U0ALICE", "gpt-4o", False)
    assert source.startswith("genai-prices ")


@pytest.mark.parametrize("form", ["array", "events", "single", "ndjson"])
async def test_every_body_form(bot, form):
    events = [event(f"{form}-{i}") for i in range(3)]
    if form == "array":
        status, body = await bot.post_usage(events)
    elif form == "events":
        status, body = await bot.post_usage({"events": events})
    elif form == "single":
        status, body = await bot.post_usage(events[0])
        events = events[:1]
    else:
        raw = b"\n".join(orjson.dumps(e) for e in events) + b"\n"
        status, body = await bot.post_usage(None, raw=raw, content_type="application/x-ndjson")
    assert status == 200, body
    assert body["accepted"] == len(events)
    assert await stored_ids(bot) == sorted(e["id"] for e in events)


async def test_unsigned_request_is_refused(bot):
    status, body = await bot.post_usage([event()], sign=False)
    assert status == 401
    assert "webhook-signature" in body["error"]
    assert await stored_ids(bot) == []


async def test_wrong_signature_is_refused(bot):
    raw = orjson.dumps([event()])
    headers = standard_webhook_headers(raw, "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=")
    status, body = await bot.post_usage(None, raw=raw, sign=False, headers=headers)
    assert status == 401
    assert "signature" in body["error"]
    assert await stored_ids(bot) == []


async def test_stale_signature_is_refused(bot):
    raw = orjson.dumps([event()])
    headers = standard_webhook_headers(raw, bot.settings.usage_webhook_secret, timestamp=int(time.time()) - 301)
    status, body = await bot.post_usage(None, raw=raw, sign=False, headers=headers)
    assert status == 401
    assert "too old" in body["error"]


async def test_tampered_body_is_refused(bot):
    raw = orjson.dumps([event(input_tokens=10)])
    headers = standard_webhook_headers(raw, bot.settings.usage_webhook_secret)
    tampered = raw.replace(b'"input_tokens":10', b'"input_tokens":1')
    status, _ = await bot.post_usage(None, raw=tampered, sign=False, headers=headers)
    assert status == 401
    assert await stored_ids(bot) == []


async def test_rotated_keys_any_valid_signature_passes(bot):
    raw = orjson.dumps([event()])
    stamp = int(time.time())
    good = standard_webhook_signature(raw, bot.settings.usage_webhook_secret, "msg-rot", stamp)
    headers = standard_webhook_headers(raw, bot.settings.usage_webhook_secret, msg_id="msg-rot", timestamp=stamp)
    headers["webhook-signature"] = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= " + good
    status, body = await bot.post_usage(None, raw=raw, sign=False, headers=headers)
    assert status == 200, body


async def test_bearer_token(bot):
    status, body = await bot.post_usage([event()], bearer="wrong-token")
    assert status == 401
    assert body["error"] == "wrong bearer token"
    status, body = await bot.post_usage([event()], bearer=WEBHOOK_TOKEN)
    assert status == 200, body


async def test_unconfigured_auth_answers_503_naming_the_variables(make_bot):
    bot = await make_bot(usage_webhook_secret=None, usage_webhook_token=None)
    status, body = await bot.post_usage([event()])
    assert status == 503
    assert "USAGE_WEBHOOK_SECRET" in body["error"] and "USAGE_WEBHOOK_TOKEN" in body["error"]


async def test_malformed_json_is_400(bot):
    status, body = await bot.post_usage(None, raw=b'[{"id": "x",')
    assert status == 400
    assert "not valid JSON" in body["error"]


async def test_wrong_content_type_is_415(bot):
    status, body = await bot.post_usage([event()], content_type="text/plain")
    assert status == 415
    assert "text/plain" in body["error"]


async def test_body_over_5_mib_is_413(bot):
    raw = b"[" + b" " * (5 * 1024 * 1024) + b"]"
    status, body = await bot.post_usage(None, raw=raw, bearer=WEBHOOK_TOKEN)
    assert status == 413
    assert "5 MiB" in body["error"]


async def test_more_than_10000_events_is_413(bot):
    events = [{"id": str(i)} for i in range(10_001)]
    status, body = await bot.post_usage(events, bearer=WEBHOOK_TOKEN)
    assert status == 413
    assert "10000" in body["error"]
    assert await stored_ids(bot) == []


INVALID = [
    (dict(input_tokens=-1), "input_tokens: must be >= 0"),
    (dict(output_tokens=1.5), "output_tokens: must be an integer"),
    (dict(input_tokens="100"), "input_tokens: must be an integer"),
    (dict(input_tokens=True), "input_tokens: must be an integer"),
    (dict(input_tokens=10, cached_input_tokens=11), "cached_input_tokens: 11 is more than input_tokens"),
    (dict(output_tokens=10, reasoning_tokens=11), "reasoning_tokens: 11 is more than output_tokens"),
    (dict(timestamp=(datetime.now(UTC) + timedelta(hours=1)).isoformat()), "more than 5 minutes in the future"),
    (dict(timestamp="2026-11-20 14:03"), "has no UTC offset"),
    (dict(id=None), "id: required"),
    (dict(id="x" * 201), "id: at most 200"),
    (dict(user=None), "user: required"),
    (dict(model=""), "model: required"),
    (dict(cost_usd=-0.01), "cost_usd: must be a finite number >= 0"),
    (dict(metadata={"blob": "x" * 5000}), "metadata:"),
]


@pytest.mark.parametrize(("fields", "reason"), INVALID, ids=[r for _, r in INVALID])
async def test_invalid_event_is_rejected_by_index(bot, fields, reason):
    bad = event("bad", **fields)
    if "id" in fields and fields["id"] is None:
        bad.pop("id", None)
    status, body = await bot.post_usage([bad])
    assert status == 422
    assert body["accepted"] == 0
    assert len(body["rejected"]) == 1
    assert body["rejected"][0]["index"] == 0
    assert reason in body["rejected"][0]["error"]
    assert await stored_ids(bot) == []


async def test_future_timestamp_within_five_minutes_is_accepted(bot):
    soon = (datetime.now(UTC) + timedelta(minutes=4)).isoformat()
    status, body = await bot.post_usage([event(timestamp=soon), event(2, timestamp=int(time.time()))])
    assert status == 200, body
    assert body["accepted"] == 2


async def test_mixed_batch_stores_the_valid_and_names_each_invalid(bot):
    batch = [event(1), event(2, input_tokens=-5), event(3), "not an object", event(5, model=None)]
    status, body = await bot.post_usage(batch)
    assert status == 200
    assert body["accepted"] == 2
    assert [(r["index"], r["id"]) for r in body["rejected"]] == [(1, "evt-2"), (3, None), (4, "evt-5")]
    assert "input_tokens" in body["rejected"][0]["error"]
    assert "model" in body["rejected"][2]["error"]
    assert await stored_ids(bot) == ["evt-1", "evt-3"]


@pytest.mark.parametrize("times", [2, 3])
async def test_same_events_sent_again_count_once(bot, times):
    batch = [event(i, input_tokens=100 * i) for i in range(1, 6)]
    answers = [await bot.post_usage(batch) for _ in range(times)]
    assert answers[0] == (200, {"accepted": 5, "duplicates": 0, **NO_SKIPS, "rejected": []})
    for status, body in answers[1:]:
        assert (status, body) == (200, {"accepted": 0, "duplicates": 5, **NO_SKIPS, "rejected": []})
    assert len(await stored_ids(bot)) == 5
    assert await month_totals(bot) == (5, 1500, 2500)


async def test_duplicate_inside_one_body_counts_once(bot):
    status, body = await bot.post_usage([event(1), event(1), event(2)])
    assert (status, body["accepted"], body["duplicates"]) == (200, 2, 1)
    assert await month_totals(bot) == (2, 2000, 1000)


async def test_concurrent_duplicate_batches_count_once(bot):
    import asyncio

    batch = [event(i) for i in range(50)]
    answers = await asyncio.gather(*(bot.post_usage(batch) for _ in range(5)))
    assert all(status == 200 for status, _ in answers)
    assert sum(body["accepted"] for _, body in answers) == 50
    assert sum(body["duplicates"] for _, body in answers) == 200
    assert await month_totals(bot) == (50, 50_000, 25_000)


async def test_unknown_model_is_stored_unpriced(bot):
    status, body = await bot.post_usage([event(model="acme-mystery-9000")])
    assert status == 200, body
    rows = await bot.sql("SELECT cost_usd, price_source, unpriced FROM usage_events")
    assert rows == [(0, "unpriced", True)]
    assert await bot.sql("SELECT unpriced_events FROM usage_monthly") == [(1,)]


async def test_cost_sent_by_source_is_kept_exactly(bot):
    raw = b'[{"id":"c1","timestamp":%d,"user":"U0ALICE","model":"gpt-4o","input_tokens":1,' \
          b'"output_tokens":1,"cost_usd":0.123456789012}]' % int(time.time())
    status, body = await bot.post_usage(None, raw=raw)
    assert status == 200, body
    async with bot.services.db.session() as session:
        from storage.models import UsageEvent

        stored = await session.get(UsageEvent, "c1")
    assert stored.cost_usd == Decimal("0.123456789012")
    assert stored.price_source == "source"


async def test_process_keeps_serving_after_bad_input(bot):
    await bot.post_usage(None, raw=b"\xff\xfe garbage")
    await bot.post_usage(None, raw=b"{}", content_type="application/xml")
    status, body = await bot.post_usage([event(99)])
    assert status == 200, body


async def test_timestamp_six_minutes_ahead_is_rejected(bot):
    ahead = (datetime.now(UTC) + timedelta(minutes=6)).isoformat()
    status, body = await bot.post_usage([event(timestamp=ahead)])
    assert status == 422
    assert "more than 5 minutes in the future" in body["rejected"][0]["error"]
