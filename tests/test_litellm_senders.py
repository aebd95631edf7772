"""What a real LiteLLM 1.110 sends, end to end (issue 9): payloads copied from a real proxy's
generic API logger (tests/data/litellm/litellm-1.110-*.json), posted the way it posts them
(fixed bearer header, `Content-Type: application/json` whatever the format), stored in the real
database. Each test names the rule it holds.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.clock import SettableClock
from bot.config import ModelPrice
from bot.maintenance import reprice
from storage.models import Identity, UsageEvent, UsageMonthly
from tests.conftest import WEBHOOK_TOKEN

EXAMPLES = Path(__file__).resolve().parent / "data" / "litellm"
PROXY_BATCH = json.loads((EXAMPLES / "litellm-1.110-proxy-batch.json").read_text())
LEGACY_110 = json.loads((EXAMPLES / "litellm-1.110-legacy-v1.json").read_text())
AFTER_SAMPLES = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)  # the samples were recorded on 2026-11-27
PROMPT = "Say hi to the proxy"  # in every record's `messages`


def proxy_call(n: int = 0, **changes) -> dict:
    """One record of the real proxy batch, made unique by `n`; `meta_x=` sets metadata.x."""
    rec = copy.deepcopy(PROXY_BATCH[n % len(PROXY_BATCH)])
    rec["litellm_call_id"] = f"00000000-0000-4000-8000-{n:012d}"
    for key, value in changes.items():
        if key.startswith("meta_"):
            rec["metadata"][key[5:]] = value
        else:
            rec[key] = value
    return rec


async def post(bot, payload=None, *, raw: bytes | None = None):
    body = raw if raw is not None else json.dumps(payload).encode()
    return await bot.post_usage(None, raw=body, path="/webhooks/litellm", bearer=WEBHOOK_TOKEN,
                                content_type="application/json")


async def stored(bot) -> dict[str, UsageEvent]:
    async with bot.services.db.session() as session:
        return {e.event_id: e for e in await session.scalars(select(UsageEvent))}


async def monthly(bot) -> list[tuple]:
    async with bot.services.db.session() as session:
        rows = await session.scalars(select(UsageMonthly).order_by(UsageMonthly.user_key))
        return [(r.user_key, r.events, r.input_tokens, r.output_tokens, r.cost_usd) for r in rows]


def answer(accepted=0, duplicates=0, skipped=0, cached=0, rejected=()):
    return {"accepted": accepted, "duplicates": duplicates, "skipped": skipped, "served_from_cache": cached,
            "rejected": list(rejected)}


@pytest.fixture
async def lite(make_bot):
    return await make_bot(clock=SettableClock(ZoneInfo("America/New_York"), AFTER_SAMPLES))


# --------------------------------------------------------------------------- LiteLLM's default batch


async def test_a_default_batch_of_512_real_sized_calls_is_stored_and_no_prompt_is_kept(lite):
    batch = [proxy_call(i) for i in range(512)]
    raw = json.dumps(batch).encode()
    assert len(raw) > 7 * 1024 * 1024  # ~15 KB a call: over the native endpoint's 5 MiB
    status, body = await post(lite, raw=raw)
    assert (status, body) == (200, answer(accepted=512))
    rows = await stored(lite)
    assert len(rows) == 512
    assert sum(r.input_tokens for r in rows.values()) == 512 * 10
    assert sum((r.cost_usd for r in rows.values()), Decimal(0)) == 512 * Decimal("0.0000135")
    assert await monthly(lite) == [("bob@acme.com", 512, 5120, 10240, 512 * Decimal("0.0000135"))]
    everything = json.dumps([list(r) for r in await lite.sql("SELECT * FROM usage_events")], default=str)
    assert PROMPT not in everything
    assert "mini says hi" not in everything  # the response
    assert "input_cost_per_token" not in everything  # the model map


async def test_the_same_batch_as_ndjson_and_as_single_objects(lite):
    batch = [proxy_call(i) for i in range(5)]
    ndjson = "\n".join(json.dumps(r) for r in batch).encode()
    assert await post(lite, raw=ndjson) == (200, answer(accepted=5))
    assert await post(lite, raw=json.dumps(batch[0]).encode()) == (200, answer(duplicates=1))
    assert await post(lite, batch) == (200, answer(duplicates=5))


async def test_a_body_over_64_mib_is_413_and_the_bot_keeps_serving(lite):
    # declared: refused before a byte is read
    async with lite.http.post(lite.url + "/webhooks/litellm", data=b"[]",
                              headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json",
                                       "Content-Length": str(64 * 1024 * 1024 + 1)}) as resp:
        assert resp.status == 413
        assert "67108864" in (await resp.json())["error"]

    # streamed without a length: refused once 64 MiB have been read
    async def chunks():
        yield b"[" + json.dumps(proxy_call(1)).encode() + b","
        for _ in range(65):
            yield b" " * (1024 * 1024)

    async with lite.http.post(lite.url + "/webhooks/litellm", data=chunks(),
                              headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}",
                                       "Content-Type": "application/json"}) as resp:
        assert resp.status == 413
    assert await stored(lite) == {}
    assert (await lite.get("/healthz"))[0] == 200


# --------------------------------------------------------------------------- ids, people


async def test_calls_sharing_a_provider_id_are_two_calls_keyed_by_litellm_call_id(lite):
    first, second = proxy_call(1), proxy_call(2)
    second["id"] = first["id"]  # the provider's id repeats, e.g. across cache hits
    assert await post(lite, [first, second]) == (200, answer(accepted=2))
    assert sorted(await stored(lite)) == sorted([first["litellm_call_id"], second["litellm_call_id"]])
    assert await post(lite, [second]) == (200, answer(duplicates=1))


@pytest.mark.parametrize(
    ("changes", "user", "attributed_by"),
    [
        ({"meta_user_api_key_user_id": "default_user_id", "meta_user_api_key_user_email": None,
          "end_user": "customer-7"}, "customer-7", "end_user"),
        ({"meta_user_api_key_user_id": "default_user_id", "meta_user_api_key_user_email": None,
          "model_parameters": {"stream": False, "user": "sdk-user-3"}}, "sdk-user-3", "model_parameters.user"),
        ({"meta_user_api_key_user_id": "default_user_id", "meta_user_api_key_user_email": None},
         "bob-key", "user_api_key_alias"),
        ({"meta_user_api_key_user_id": "U0BOB", "end_user": "customer-7"}, "U0BOB", "user_api_key_user_id"),
        ({"meta_user_api_key_user_email": None, "end_user": None, "model_parameters": {"user": "sdk-user-3"}},
         "sdk-user-3", "model_parameters.user"),
    ],
    ids=["master-key-body-user", "master-key-sdk-user", "master-key-alone", "key-user-wins", "sdk-user"],
)
async def test_who_spent_it_follows_spec_5_and_default_user_id_is_never_a_person(lite, changes, user,
                                                                                   attributed_by):
    assert (await post(lite, [proxy_call(1, **changes)]))[0] == 200
    [row] = (await stored(lite)).values()
    assert (row.subject, row.meta["attributed_by"]) == (user, attributed_by)
    assert await lite.sql("SELECT count(*) FROM usage_events WHERE subject = 'default_user_id'") == [(0,)]


# --------------------------------------------------------------------------- what is spend


async def test_a_zero_cost_litellm_could_not_price_is_priced_here_or_flagged_for_reprice(lite, make_bot):
    debug = {"error": "This model isn't mapped yet. model=acme-private-7", "model": "acme-private-7"}
    known = proxy_call(1, model="openai/gpt-4o", model_group="gpt-4o", prompt_tokens=1_000_000,
                       completion_tokens=100_000, response_cost=0.0, cost_breakdown={"total_cost": 0.0},
                       response_cost_failure_debug_info=debug)
    unknown = proxy_call(2, model="acme-private-7", model_group="acme-private-7", response_cost=0.0,
                         cost_breakdown=None, response_cost_failure_debug_info=debug)
    assert await post(lite, [known, unknown]) == (200, answer(accepted=2))
    rows = await stored(lite)
    priced, flagged = rows[known["litellm_call_id"]], rows[unknown["litellm_call_id"]]
    assert priced.price_source.startswith("genai-prices ")
    assert priced.cost_usd == Decimal("2.5") + Decimal("1.0")  # gpt-4o: $2.50/M in, $10/M out
    assert (flagged.unpriced, flagged.price_source, flagged.cost_usd) == (True, "unpriced", Decimal(0))

    # a price is configured later: `tokenbot reprice` fixes the flagged call
    later = await make_bot(clock=SettableClock(ZoneInfo("America/New_York"), AFTER_SAMPLES),
                           model_prices={"acme-private-7": ModelPrice(input=Decimal(100), output=Decimal(1000))})
    result = await reprice(later.services)
    assert result.changed == 1
    repriced = (await stored(lite))[unknown["litellm_call_id"]]
    expected = (10 * Decimal(100) + 20 * Decimal(1000)) / 10**6
    assert (repriced.unpriced, repriced.price_source, repriced.cost_usd) == (False, "override", expected)


async def test_failed_calls_without_tokens_are_skipped_not_stored(lite, fake_slack):
    auth_failure = proxy_call(2, status="failure", prompt_tokens=0, completion_tokens=0, total_tokens=0,
                              response_cost=0.0, meta_user_api_key_user_email="mallory@acme.com",
                              error_str="AuthenticationError: invalid key", response={})
    rate_limited = proxy_call(3, status="failure", response_cost=0, meta_user_api_key_user_email="bob@acme.com")
    rate_limited.pop("prompt_tokens")
    rate_limited.pop("completion_tokens")
    rate_limited["response"] = {}
    rate_limited["metadata"]["usage_object"] = None
    assert await post(lite, [proxy_call(1), auth_failure, rate_limited]) == (200, answer(accepted=1, skipped=2))
    assert list(await stored(lite)) == [proxy_call(1)["litellm_call_id"]]
    await lite.services.identities.drain()
    assert "mallory@acme.com" not in [c.args.get("email") for c in fake_slack.calls_to("users.lookupByEmail")]
    async with lite.services.db.session() as session:
        assert await session.get(Identity, "mallory@acme.com") is None
    # a batch of failures only is understood, not refused (LiteLLM drops a batch on any 4xx)
    assert await post(lite, [auth_failure]) == (200, answer(skipped=1))


async def test_cache_hits_are_stored_flagged_and_left_out_of_token_and_cost_totals(lite):
    paid = proxy_call(1)
    hit = proxy_call(2, cache_hit=True, response_cost=0.0, saved_cache_cost=1.35e-05)
    status, body = await post(lite, [paid, hit])
    assert (status, body) == (200, answer(accepted=2, cached=1))
    rows = await stored(lite)
    served = rows[hit["litellm_call_id"]]
    assert served.cache_hit is True
    assert (served.input_tokens, served.output_tokens, served.cost_usd) == (0, 0, Decimal(0))
    assert served.meta["cached_response_tokens"] == {"input_tokens": 10, "output_tokens": 20}
    assert rows[paid["litellm_call_id"]].cache_hit is False
    # the totals hold the paid call's tokens and cost only; the hit is counted as a call
    assert await monthly(lite) == [("bob@acme.com", 2, 10, 20, Decimal("0.0000135"))]
    assert await lite.sql("SELECT count(*) FROM usage_events WHERE cache_hit") == [(1,)]


# --------------------------------------------------------------------------- legacy v1


async def test_legacy_v1_from_litellm_1_110_ids_people_tokens_and_costs(lite):
    status, body = await post(lite, LEGACY_110)
    assert (status, body) == (200, answer(accepted=4))
    rows = await stored(lite)
    by_subject = {r.subject: r for r in rows.values()}
    # litellm_call_id from hidden_params; the streamed call carries none, so its provider id
    assert set(rows) == {"22149269-a155-4cb5-be2b-9c6f8c38f19c", "257ed8fa-c393-4fef-a222-27b31ef1a009",
                         "chatcmpl-c0c8dbd6-9974-41c0-a731-e1c7b5068c99", "5aeecb00-fa6b-4eb2-a4fc-d355eb230907"}
    assert sorted(by_subject) == ["fmt-v1-u1@acme.com", "fmt-v1-u2@acme.com", "fmt-v1-u3@acme.com",
                                  "fmt-v1-u4@acme.com"]
    u3 = by_subject["fmt-v1-u3@acme.com"]
    assert (u3.model, u3.provider, u3.input_tokens, u3.output_tokens, u3.cost_usd) == (
        "claude-sonnet-4-5", "anthropic", 9, 2, Decimal("0.000057"))
    u4 = by_subject["fmt-v1-u4@acme.com"]
    assert (u4.input_tokens, u4.cached_input_tokens, u4.output_tokens, u4.reasoning_tokens) == (2000, 1024, 300, 100)
    assert u4.cost_usd == Decimal("0.00672")


async def test_legacy_v1_naive_start_time_is_read_in_litellm_legacy_timezone(make_bot):
    # 13:03 in Tokyo is 04:03 UTC: read as UTC it is hours in the future and refused
    at = datetime(2026, 11, 27, 5, 0, tzinfo=UTC)
    utc_bot = await make_bot(clock=SettableClock(ZoneInfo("America/New_York"), at))
    status, body = await post(utc_bot, LEGACY_110)
    assert status == 422
    assert all("in the future" in r["error"] for r in body["rejected"])

    bot = await make_bot(clock=SettableClock(ZoneInfo("America/New_York"), at),
                         litellm_legacy_timezone=ZoneInfo("Asia/Tokyo"))
    status, body = await post(bot, LEGACY_110)
    assert (status, body) == (200, answer(accepted=4))
    times = sorted(r.occurred_at for r in (await stored(bot)).values())
    assert times[0] == datetime(2026, 11, 27, 4, 3, 59, 552259, tzinfo=UTC)


async def test_what_the_litellm_sdk_posted_a_call_and_a_failure(lite):
    """Captured from the real SDK: the user comes from `user=` (model_parameters.user); the failed
    call is skipped; tokens and cost are LiteLLM's own."""
    sdk = json.loads((EXAMPLES / "litellm-1.110-sdk-success-and-failure.json").read_text())
    status, body = await post(lite, sdk)
    assert (status, body) == (200, answer(accepted=1, skipped=1))
    [row] = (await stored(lite)).values()
    assert row.event_id == sdk[0]["litellm_call_id"]
    assert (row.subject, row.meta["attributed_by"]) == ("sdk-user-0@acme.com", "model_parameters.user")
    assert (row.input_tokens, row.output_tokens) == (sdk[0]["prompt_tokens"], sdk[0]["completion_tokens"])
    assert row.cost_usd == Decimal("0.000225")  # LiteLLM's 0.00022500000000000002, to the picodollar
