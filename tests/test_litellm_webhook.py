"""POST /webhooks/litellm end to end: the served bot, LiteLLM's real payload shapes, the real database.

The parser's field mapping is covered record by record in test_litellm_source.py; here every
payload goes over HTTP with the fixed bearer header LiteLLM sends and `Content-Type:
application/json` whatever the log format, and the assertions are on what got stored.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select

from storage.models import UsageDaily, UsageDailyModel, UsageEvent, UsageMonthly
from tests.conftest import WEBHOOK_TOKEN

NO_SKIPS = {"skipped": 0, "served_from_cache": 0}  # nothing skipped, nothing served from a cache

EXAMPLES = Path(__file__).resolve().parent / "data" / "litellm"
STANDARD = json.loads((EXAMPLES / "standard_logging_payload.json").read_text())
LEGACY_BATCH = json.loads((EXAMPLES / "legacy_v1_batch.json").read_text())
STANDARD_ID = "chatcmpl-2299b6a2-82a3-465a-b47c-04e685a2227f"
LEGACY_ID = "chatcmpl-7f3c2a90e1b84d6f9a51c0d2"


async def post(bot, payload=None, *, raw: bytes | None = None, bearer: str = WEBHOOK_TOKEN):
    """Exactly what LiteLLM's generic API logger sends: fixed bearer header, always application/json."""
    body = raw if raw is not None else json.dumps(payload).encode()
    return await bot.post_usage(None, raw=body, path="/webhooks/litellm", bearer=bearer,
                                content_type="application/json")


async def events(bot) -> dict[str, UsageEvent]:
    async with bot.services.db.session() as session:
        return {e.event_id: e for e in await session.scalars(select(UsageEvent))}


async def rollup_totals(bot) -> dict[str, tuple]:
    """(events, input, output, cost) summed over each rollup table, as exact Decimals."""
    out = {}
    async with bot.services.db.session() as session:
        for model in (UsageDailyModel, UsageDaily, UsageMonthly):
            rows = list(await session.scalars(select(model)))
            out[model.__tablename__] = (
                sum(r.events for r in rows),
                sum(r.input_tokens for r in rows),
                sum(r.output_tokens for r in rows),
                sum((r.cost_usd for r in rows), Decimal(0)),
            )
    return out


def standard(**changes) -> dict:
    rec = copy.deepcopy(STANDARD)
    for key, value in changes.items():
        if key.startswith("meta_"):
            rec["metadata"][key[5:]] = value
        else:
            rec[key] = value
    return rec


def assert_standard_row(row: UsageEvent) -> None:
    assert row.user_key == "unattributed"  # every user field of the sample is null or ""
    assert row.subject == "unattributed"
    assert row.model == "gpt-4o"  # model_group is "" in the sample
    assert row.provider == "openai"
    assert (row.input_tokens, row.output_tokens, row.cached_input_tokens, row.reasoning_tokens) == (10, 20, 0, 0)
    # response_cost 0.00022500000000000002 read as a decimal literal, kept to the picodollar
    assert row.cost_usd == Decimal("0.000225")
    assert isinstance(row.cost_usd, Decimal)
    assert row.price_source == "source"
    assert row.unpriced is False
    assert row.team is None
    assert row.source == "litellm"
    assert row.occurred_at == datetime(2025, 1, 24, 9, 20, 46, 847371, tzinfo=UTC)


# --------------------------------------------------------------------------- the sample files, every body form


async def test_standard_sample_as_json_array(bot):
    status, body = await post(bot, [STANDARD])
    assert (status, body) == (200, {"accepted": 1, "duplicates": 0, **NO_SKIPS, "rejected": []})
    stored = await events(bot)
    assert list(stored) == [STANDARD_ID]
    assert_standard_row(stored[STANDARD_ID])
    # the local day is America/New_York's (04:20 there)
    assert str(stored[STANDARD_ID].day) == "2025-01-24"
    totals = await rollup_totals(bot)
    assert set(totals.values()) == {(1, 10, 20, Decimal("0.000225"))}


async def test_standard_sample_as_single_object(bot):
    status, body = await post(bot, raw=(EXAMPLES / "standard_logging_payload.json").read_bytes())
    assert (status, body) == (200, {"accepted": 1, "duplicates": 0, **NO_SKIPS, "rejected": []})
    stored = await events(bot)
    assert list(stored) == [STANDARD_ID]
    assert_standard_row(stored[STANDARD_ID])


async def test_standard_sample_as_ndjson_with_json_content_type(bot):
    second = standard(id="chatcmpl-second", prompt_tokens=1000, completion_tokens=7, response_cost=0.5)
    third = standard(id="chatcmpl-third")
    raw = b"\n".join(orjson.dumps(r) for r in (STANDARD, second, third)) + b"\n"
    status, body = await post(bot, raw=raw)
    assert (status, body) == (200, {"accepted": 3, "duplicates": 0, **NO_SKIPS, "rejected": []})
    stored = await events(bot)
    assert sorted(stored) == sorted([STANDARD_ID, "chatcmpl-second", "chatcmpl-third"])
    assert_standard_row(stored[STANDARD_ID])
    assert (stored["chatcmpl-second"].input_tokens, stored["chatcmpl-second"].output_tokens) == (1000, 7)
    assert stored["chatcmpl-second"].cost_usd == Decimal("0.5")
    totals = await rollup_totals(bot)
    assert set(totals.values()) == {(3, 1020, 47, Decimal("0.50045"))}


async def test_legacy_v1_batch_with_unknown_email_stays_unlinked(bot, fake_slack):
    status, body = await post(bot, LEGACY_BATCH)
    assert (status, body) == (200, {"accepted": 1, "duplicates": 0, **NO_SKIPS, "rejected": []})
    await bot.services.identities.drain()
    stored = await events(bot)
    row = stored[LEGACY_ID]
    # Slack was asked about the email and did not know it: the spend stays under the email
    assert [c.args.get("email") for c in fake_slack.calls_to("users.lookupByEmail")] == ["alice@acme.test"]
    assert row.user_key == "alice@acme.test"
    assert row.subject == "alice@acme.test"
    assert row.model == "gpt-4o-mini"
    assert row.team == "research"
    assert (row.input_tokens, row.output_tokens) == (1830, 212)
    assert row.cost_usd == Decimal("0.0004017")
    assert row.price_source == "source"
    assert row.occurred_at == datetime(2026, 11, 20, 14, 3, 11, 482911, tzinfo=UTC)
    assert "sk-" not in json.dumps(row.meta)
    monthly = await bot.sql("SELECT user_key, month, events, input_tokens, output_tokens FROM usage_monthly")
    assert monthly == [("alice@acme.test", "2026-11", 1, 1830, 212)]


async def test_legacy_v1_batch_with_known_email_is_linked(bot, fake_slack):
    fake_slack.add_user("U0ALICE", name="alice", email="alice@acme.test")
    status, _ = await post(bot, LEGACY_BATCH)
    assert status == 200
    await bot.services.identities.drain()
    row = (await events(bot))[LEGACY_ID]
    assert row.user_key == "U0ALICE"
    assert row.subject == "alice@acme.test"  # what was sent is kept
    assert await bot.sql("SELECT user_key, events FROM usage_monthly") == [("U0ALICE", 1)]


# --------------------------------------------------------------------------- no user: kept, never dropped


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({"user_api_key_alias": "ml-team-key", "user_api_key_hash": "88dc28d0f030c55e"}, "ml-team-key"),
        ({"user_api_key_hash": "88dc28d0f030c55e"}, "88dc28d0f030c55e"),
        ({"user_api_key_hash": "sk-live-raw-secret-key"}, "unattributed"),  # a raw key is never stored
        ({}, "unattributed"),
    ],
    ids=["alias", "hash", "raw-key", "nothing"],
)
async def test_call_without_a_user_is_stored_under_key_or_unattributed(bot, meta, expected):
    rec = standard(id="no-user-call", end_user="", **{f"meta_{k}": v for k, v in meta.items()})
    status, body = await post(bot, [rec])
    assert (status, body) == (200, {"accepted": 1, "duplicates": 0, **NO_SKIPS, "rejected": []})
    rows = await bot.sql("SELECT event_id, user_key FROM usage_events")
    assert rows == [("no-user-call", expected)]
    assert await bot.sql("SELECT user_key, events FROM usage_monthly") == [(expected, 1)]
    everything = json.dumps([list(r) for r in await bot.sql("SELECT * FROM usage_events")], default=str)
    assert "sk-live-raw-secret-key" not in everything


async def test_user_id_wins_and_end_user_is_a_fallback(bot):
    batch = [
        standard(id="by-user-id", meta_user_api_key_user_id="U0BOB", end_user="someone-else"),
        standard(id="by-end-user", end_user="customer-42", meta_user_api_key_alias="ml-team-key"),
    ]
    status, _ = await post(bot, batch)
    assert status == 200
    rows = dict(await bot.sql("SELECT event_id, user_key FROM usage_events"))
    assert rows == {"by-user-id": "U0BOB", "by-end-user": "customer-42"}


# --------------------------------------------------------------------------- cost


async def test_streamed_call_uses_the_larger_cost_breakdown_total(bot):
    raw = (
        b'[{"id": "stream-1", "startTime": 1795000000.25, "model": "gpt-4o", "prompt_tokens": 10,'
        b' "completion_tokens": 20, "response_cost": 0, "cost_breakdown": {"total_cost": 0.000123456789,'
        b' "input_cost": 0.0001, "output_cost": 0.000023456789012}, "metadata": {}},'
        b' {"id": "not-stream", "startTime": 1795000000.25, "model": "gpt-4o", "prompt_tokens": 10,'
        b' "completion_tokens": 20, "response_cost": 0.3, "cost_breakdown": {"total_cost": 0.1}, "metadata": {}}]'
    )
    status, body = await post(bot, raw=raw)
    assert (status, body["accepted"]) == (200, 2), body
    stored = await events(bot)
    assert stored["stream-1"].cost_usd == Decimal("0.000123456789")
    assert stored["stream-1"].price_source == "source"
    assert stored["not-stream"].cost_usd == Decimal("0.3")  # the smaller breakdown does not win
    totals = await rollup_totals(bot)
    assert {t[3] for t in totals.values()} == {Decimal("0.300123456789")}


async def test_record_without_cost_is_priced_from_the_model(bot):
    rec = standard(id="priced-here", prompt_tokens=1_000_000, completion_tokens=100_000)
    del rec["response_cost"]
    status, _ = await post(bot, [rec])
    assert status == 200
    row = (await events(bot))["priced-here"]
    assert row.price_source.startswith("genai-prices ")
    assert row.cost_usd == Decimal("2.5") + Decimal("1.0")  # gpt-4o: $2.50/M in, $10/M out


# --------------------------------------------------------------------------- retries, bad input, auth


async def test_same_batch_sent_twice_counts_once(bot):
    batch = [standard(id=f"retry-{i}", prompt_tokens=100 * i, response_cost=0.01) for i in range(1, 6)]
    batch.append(copy.deepcopy(LEGACY_BATCH[0]))
    first = await post(bot, batch)
    second = await post(bot, batch)
    assert first == (200, {"accepted": 6, "duplicates": 0, **NO_SKIPS, "rejected": []})
    assert second == (200, {"accepted": 0, "duplicates": 6, **NO_SKIPS, "rejected": []})
    assert len(await events(bot)) == 6
    totals = await rollup_totals(bot)
    assert set(totals.values()) == {(6, 1500 + 1830, 5 * 20 + 212, Decimal("0.05") + Decimal("0.0004017"))}


@pytest.mark.parametrize(
    "raw",
    [b"this is not json", b'[{"id": "x",', b"42", b"", b"\xff\xfe\x00garbage", b'{"a": 1}\n{"b": '],
    ids=["text", "truncated", "scalar", "empty", "binary", "broken-ndjson"],
)
async def test_garbage_body_is_400_json(bot, raw):
    status, body = await post(bot, raw=raw)
    assert status == 400
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]
    assert "Traceback" not in body["error"]
    assert await events(bot) == {}


async def test_record_without_tokens_is_rejected_by_index_and_the_rest_stored(bot):
    no_tokens = standard(id="no-tokens")
    for key in ("prompt_tokens", "completion_tokens", "total_tokens", "response"):
        no_tokens.pop(key)
    batch = [standard(id="ok-0"), no_tokens, standard(id="ok-2")]
    status, body = await post(bot, batch)
    assert status == 200
    assert body["accepted"] == 2
    assert [(r["index"], r["id"]) for r in body["rejected"]] == [(1, "no-tokens")]
    assert "input_tokens" in body["rejected"][0]["error"]
    assert sorted(await events(bot)) == ["ok-0", "ok-2"]


async def test_batch_with_nothing_usable_is_422(bot):
    no_tokens = standard(id="no-tokens")
    for key in ("prompt_tokens", "completion_tokens", "response"):
        no_tokens.pop(key)
    status, body = await post(bot, [no_tokens, "not an object"])
    assert status == 422
    assert body["accepted"] == 0
    assert [r["index"] for r in body["rejected"]] == [0, 1]


@pytest.mark.parametrize("bearer", ["wrong-token", WEBHOOK_TOKEN + "x", ""])
async def test_wrong_bearer_is_401(bot, bearer):
    status, body = await post(bot, [STANDARD], bearer=bearer)
    assert status == 401
    assert isinstance(body, dict) and body["error"]
    assert await events(bot) == {}


async def test_no_credentials_is_401(bot):
    raw = json.dumps([STANDARD]).encode()
    status, body = await bot.post_usage(None, raw=raw, path="/webhooks/litellm", sign=False)
    assert status == 401, body
    assert await events(bot) == {}


async def test_standard_webhooks_signature_is_accepted_too(bot):
    status, body = await bot.post_usage([STANDARD], path="/webhooks/litellm")  # signed, no bearer
    assert (status, body) == (200, {"accepted": 1, "duplicates": 0, **NO_SKIPS, "rejected": []})
    assert list(await events(bot)) == [STANDARD_ID]


async def test_more_than_10000_records_is_413_and_nothing_is_stored(bot):
    records = [{"id": f"r{i}", "startTime": 1795000000, "model": "gpt-4o", "prompt_tokens": 1,
                "completion_tokens": 1, "response_cost": 0.001} for i in range(10_001)]
    status, body = await post(bot, records)
    assert status == 413
    assert "10000" in body["error"]
    assert await events(bot) == {}
