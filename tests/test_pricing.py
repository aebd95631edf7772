"""Exact prices (SPEC 5): bot.pricing.Pricer against genai-prices' own calc_price."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import genai_prices
import pytest
from genai_prices import Usage, calc_price
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from bot.config import ModelPrice
from bot.pricing import Pricer
from storage.models import UsageEvent, UsageMonthly
from storage.types import PICO
from tests.conftest import event

WHEN = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
GENAI = f"genai-prices {genai_prices.__version__}"
PRICER = Pricer()


def reference(model: str, provider: str | None, when: datetime, inp: int, cached: int, out: int) -> Decimal:
    usage = Usage(input_tokens=inp, cache_read_tokens=cached, output_tokens=out)
    result = calc_price(usage, model, provider_id=provider, genai_request_timestamp=when)
    return result.total_price.quantize(PICO)


def ours(pricer: Pricer, model: str, provider: str | None, when: datetime, inp: int, cached: int, out: int):
    return pricer.price(model=model, provider=provider, occurred_at=when, input_tokens=inp,
                        cached_input_tokens=cached, output_tokens=out)


CASES = [
    # model, provider, input, cached, output, when
    ("gpt-4o", None, 1_000, 200, 500, WHEN),
    ("gpt-4o", "openai", 123_457, 100_000, 4_321, WHEN),
    ("gpt-4o-mini", "openai", 3_000, 1_000, 900, WHEN),
    ("o3", None, 8_000, 2_000, 5_000, WHEN),
    ("o3", None, 8_000, 2_000, 5_000, datetime(2025, 5, 1, 12, tzinfo=UTC)),  # before its 2025-06-10 price cut
    ("claude-sonnet-4-5", "anthropic", 150_000, 30_000, 2_000, WHEN),  # below the 200k tier
    ("claude-sonnet-4-5", "anthropic", 200_000, 0, 2_000, WHEN),  # at the threshold: still base
    ("claude-sonnet-4-5", "anthropic", 250_000, 50_000, 2_000, WHEN),  # above: long-context prices
    ("claude-sonnet-4-5", None, 250_001, 1, 1, WHEN),
    ("gemini-2.5-pro", "google", 20_000, 5_000, 2_000, WHEN),
    ("gemini-2.5-pro", "google", 300_000, 100_000, 8_000, WHEN),
    ("claude-3-5-haiku-latest", None, 7_777, 3_333, 1_111, WHEN),
    ("deepseek-chat", "deepseek", 10_000, 2_000, 1_000, datetime(2026, 11, 20, 10, 0, tzinfo=UTC)),  # discount hours
    ("deepseek-chat", "deepseek", 10_000, 2_000, 1_000, datetime(2026, 11, 20, 17, 0, tzinfo=UTC)),
]


@pytest.mark.parametrize(("model", "provider", "inp", "cached", "out", "when"), CASES)
def test_matches_genai_prices_to_the_picodollar(model, provider, inp, cached, out, when):
    price = ours(PRICER, model, provider, when, inp, cached, out)
    assert isinstance(price.cost_usd, Decimal)
    assert price.cost_usd == reference(model, provider, when, inp, cached, out)
    assert price.cost_usd.as_tuple().exponent == -12
    assert price.source == GENAI
    assert price.unpriced is False


def test_long_context_tier_is_chosen_per_call():
    below = ours(PRICER, "claude-sonnet-4-5", "anthropic", WHEN, 200_000, 0, 1_000).cost_usd
    above = ours(PRICER, "claude-sonnet-4-5", "anthropic", WHEN, 200_001, 0, 1_000).cost_usd
    # one more input token flips every rate to the long-context price: far more than one token's worth
    assert above - below > Decimal("0.5")


def test_time_dependent_prices_are_not_cached_across_the_change():
    pricer = Pricer()
    after = ours(pricer, "o3", None, WHEN, 1_000_000, 0, 1_000_000).cost_usd
    before = ours(pricer, "o3", None, datetime(2025, 5, 1, tzinfo=UTC), 1_000_000, 0, 1_000_000).cost_usd
    assert (before, after) == (Decimal(50), Decimal(10))  # $10+$40 before the cut, $2+$8 after


@settings(max_examples=150, deadline=None)
@given(
    model=st.sampled_from(["gpt-4o", "claude-sonnet-4-5", "gemini-2.5-pro", "o3", "gpt-4o-mini"]),
    inp=st.integers(0, 2_000_000),
    cached_share=st.fractions(0, 1),
    out=st.integers(0, 300_000),
    minute=st.integers(0, 60 * 24 * 365),
)
def test_property_any_token_counts_match_reference(model, inp, cached_share, out, minute):
    cached = int(inp * cached_share)
    when = datetime.fromtimestamp(WHEN.timestamp() - minute * 60, UTC)
    assert ours(PRICER, model, None, when, inp, cached, out).cost_usd == reference(model, None, when, inp, cached, out)


def test_override_beats_genai_prices_and_prices_cached_input_at_its_own_rate():
    pricer = Pricer({"gpt-4o": ModelPrice(Decimal(1), Decimal(4), Decimal("0.1"))})
    price = ours(pricer, "gpt-4o", "openai", WHEN, 1_000_000, 400_000, 1_000_000)
    assert price.source == "override"
    assert price.cost_usd == Decimal("0.6") + Decimal("0.04") + Decimal(4)
    # case does not matter
    assert ours(pricer, "GPT-4o", None, WHEN, 1_000_000, 400_000, 1_000_000) == price


def test_override_without_cached_input_bills_cached_tokens_at_the_input_rate():
    pricer = Pricer({"acme-finetune-1": ModelPrice(Decimal(3), Decimal(12))})
    price = ours(pricer, "acme-finetune-1", None, WHEN, 1_000, 600, 100)
    assert price.source == "override"
    assert price.cost_usd == (Decimal(1_000) * 3 + Decimal(100) * 12) / 10**6


def test_override_applies_to_gateway_style_names():
    pricer = Pricer({"acme-finetune-1": ModelPrice(Decimal(3), Decimal(12), Decimal("0.3"))})
    price = ours(pricer, "openai/acme-finetune-1", None, WHEN, 1_000, 0, 100)
    assert (price.source, price.cost_usd) == ("override", Decimal("0.0042"))


def test_unknown_model_is_unpriced():
    price = ours(PRICER, "acme-internal-7b", None, WHEN, 5_000, 0, 5_000)
    assert (price.cost_usd, price.source, price.unpriced) == (Decimal(0), "unpriced", True)


def test_cost_sent_by_the_source_is_kept_exactly():
    price = PRICER.price(model="gpt-4o", provider=None, occurred_at=WHEN, input_tokens=10**6,
                         cached_input_tokens=0, output_tokens=10**6, cost_usd=Decimal("0.123456789012"))
    assert (price.cost_usd, price.source, price.unpriced) == (Decimal("0.123456789012"), "source", False)
    unknown = PRICER.price(model="no-such-model", provider=None, occurred_at=WHEN, input_tokens=1,
                           cached_input_tokens=0, output_tokens=1, cost_usd=Decimal("0.5"))
    assert (unknown.cost_usd, unknown.source, unknown.unpriced) == (Decimal("0.5"), "source", False)


@pytest.mark.parametrize(("gateway", "plain", "provider"), [
    ("openai/gpt-4o", "gpt-4o", "openai"),
    ("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5", "anthropic"),
])
def test_gateway_style_model_names_resolve(gateway, plain, provider):
    price = ours(PRICER, gateway, None, WHEN, 5_000, 1_000, 700)
    assert price.source == GENAI
    assert price.cost_usd == reference(plain, provider, WHEN, 5_000, 1_000, 700)


def test_price_source_names_the_genai_prices_version():
    assert GENAI == "genai-prices 0.2.3"  # the pinned version the reference figures come from
    assert Pricer().genai_source == GENAI


# --- through the served bot: what is stored ---------------------------------------------------------------


async def stored_costs(bot) -> dict[str, tuple[Decimal, str]]:
    async with bot.services.db.session() as session:
        rows = (await session.execute(select(UsageEvent.event_id, UsageEvent.cost_usd, UsageEvent.price_source))).all()
    return {r[0]: (r[1], r[2]) for r in rows}


async def test_reasoning_tokens_are_billed_as_output(bot):
    status, body = await bot.post_usage([
        event("plain", model="o3", input_tokens=2_000, output_tokens=10_000),
        event("thinking", model="o3", input_tokens=2_000, output_tokens=10_000, reasoning_tokens=9_000),
    ])
    assert status == 200, body
    costs = await stored_costs(bot)
    assert costs["evt-thinking"] == costs["evt-plain"]
    assert costs["evt-plain"][0] == reference("o3", None, datetime.now(UTC), 2_000, 0, 10_000)
    assert costs["evt-plain"][0] > 0


async def test_cost_is_per_event_not_per_rollup(bot):
    # two 150k-token calls each stay below the 200k long-context tier, though together they are above it
    status, body = await bot.post_usage([
        event(i, model="claude-sonnet-4-5", provider="anthropic", input_tokens=150_000, output_tokens=1_000)
        for i in (1, 2)
    ])
    assert status == 200, body
    one = reference("claude-sonnet-4-5", "anthropic", datetime.now(UTC), 150_000, 0, 1_000)
    costs = await stored_costs(bot)
    assert costs["evt-1"] == costs["evt-2"] == (one, GENAI)
    async with bot.services.db.session() as session:
        (row,) = (await session.scalars(select(UsageMonthly))).all()
    assert row.cost_usd == 2 * one
    assert isinstance(row.cost_usd, Decimal)


async def test_stored_costs_keep_their_source_and_exact_value(make_bot):
    bot = await make_bot(model_prices={"acme-finetune-1": ModelPrice(Decimal(3), Decimal(12), Decimal("0.3"))})
    status, body = await bot.post_usage([
        event("sent", model="gpt-4o", cost_usd="0.000000000001"),
        event("override", model="acme-finetune-1", input_tokens=1_000, cached_input_tokens=1, output_tokens=1),
        event("unknown", model="acme-internal-7b"),
        event("genai", model="gpt-4o", input_tokens=1, output_tokens=0),
    ])
    assert status == 200, body
    assert await stored_costs(bot) == {
        "evt-sent": (Decimal("0.000000000001"), "source"),
        "evt-override": (Decimal("0.0030093"), "override"),  # (999*3 + 1*0.3 + 1*12) per million
        "evt-unknown": (Decimal(0), "unpriced"),
        "evt-genai": (Decimal("0.0000025"), GENAI),
    }
    assert await bot.sql("SELECT event_id FROM usage_events WHERE unpriced") == [("evt-unknown",)]
