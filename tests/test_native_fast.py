"""The native validator's fast path (`_plain_event`) agrees with the full checks (`_checked_event`):
whatever it accepts is the very record the full checks build, and every event it passes over is
judged, and its error worded, by the full checks alone."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.sources.native import EventError, _checked_event, _plain_event, validate_event

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

texts = st.one_of(
    st.sampled_from(["", " ", "a", " alice ", "U012AB3CD", "gpt-4o", "x" * 201, "x" * 321, "a\x00b", "\ud800",
                     "é", "\t\n", "team-α", "\x1f", None, 1, True, 1.5, [], {}]),
    st.text(max_size=12),
)
tokens = st.one_of(st.integers(min_value=-3, max_value=10**6), st.sampled_from([None, True, 1.0, "5", 2**63, 2**64]))
stamps = st.one_of(
    st.sampled_from(["2026-11-27T11:00:00Z", "2026-11-27T11:00:00+00:00", "2026-11-27T06:00:00-05:00",
                     "2026-11-27T11:00:00", "2026-11-27 11:00:00.123456+00:00", "1999-12-31T23:59:59Z",
                     "2026-11-27T12:06:00Z", "9999-12-31T23:59:59-01:00", "2026-11-27T11:00:00.1234567Z",
                     "not a date", "", 1796000000, 1.7e9, True, None, "2026-11-27", "2026-11-27T11:00Z"]),
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2030, 1, 1),
                 timezones=st.sampled_from([UTC, None])).map(lambda d: d.isoformat()),
)
costs = st.one_of(st.none(), st.sampled_from([0, 0.5, "1.25", -1, "x", True, 2_000_000, float("nan")]))
metadata = st.one_of(st.none(), st.sampled_from([{}, {"a": 1}, [], "x", {"k": "\x00"}, {"big": "x" * 5000}]))
ids = st.one_of(texts, st.sampled_from(["e-1", " e-2", "e\x003", "x" * 200]))

events = st.fixed_dictionaries({}, optional={
    "id": ids, "timestamp": stamps, "user": texts, "model": texts, "provider": texts, "team": texts,
    "project": texts, "input_tokens": tokens, "output_tokens": tokens, "cached_input_tokens": tokens,
    "reasoning_tokens": tokens, "cost_usd": costs, "metadata": metadata,
    "_cache_hit": st.sampled_from([True, False, 1]), "_invalid": st.just("bad line"), "extra": texts,
})


def outcome(fn, raw):
    try:
        return fn(raw, NOW)
    except EventError as exc:
        return ("error", str(exc))


@settings(max_examples=3000, deadline=None)
@given(events)
def test_fast_path_agrees_with_the_full_checks(raw):
    fast = _plain_event(raw, NOW)
    full = outcome(_checked_event, raw)
    if fast is not None:
        assert fast == full
        assert type(fast.occurred_at.tzinfo) is type(full.occurred_at.tzinfo)
    assert outcome(validate_event, raw) == full


@settings(max_examples=500, deadline=None)
@given(st.fixed_dictionaries({
    "id": st.text(alphabet="abc-0123", min_size=1, max_size=20), "timestamp": st.just("2026-11-27T11:00:00+00:00"),
    "user": st.sampled_from(["U012AB3CD", "alice@example.com", " bob "]), "model": st.just("gpt-4o"),
    "input_tokens": st.integers(0, 10**6), "output_tokens": st.integers(0, 10**6),
}, optional={"team": st.sampled_from(["platform", " research ", ""]), "provider": st.just("openai")}))
def test_usual_events_take_the_fast_path(raw):
    assert _plain_event(raw, NOW) == _checked_event(raw, NOW)


# -- pricing in whole picodollars (bot/pricing.py): the same Decimal as the Decimal arithmetic ----------
from decimal import Decimal  # noqa: E402

from bot.pricing import Pricer, Rate, RateCard  # noqa: E402

prices = st.one_of(st.sampled_from([Decimal("0"), Decimal("2.5"), Decimal("0.075"), Decimal("15.000000"),
                                    Decimal("0.0000001"), Decimal("3.1234567"), Decimal("1E+3"),
                                    Decimal("2.500000000000000000000000000"), Decimal("1E+25")]),
                   st.decimals(min_value=0, max_value=10**4, places=6, allow_nan=False, allow_infinity=False))
rates = st.builds(lambda base, tiers: Rate(base, tuple(sorted(tiers, key=lambda t: t[0]))), prices,
                  st.lists(st.tuples(st.integers(0, 300_000), prices), max_size=2))
cards = st.builds(lambda i, o, c: RateCard(i, o, c, "test"), rates, rates, st.none() | rates)


@settings(max_examples=3000, deadline=None)
@given(cards, st.integers(0, 10**12), st.integers(0, 10**12), st.integers(0, 10**12))
def test_picodollar_cost_is_the_decimal_cost(card, input_tokens, cached, output_tokens):
    cached = min(cached, input_tokens)

    def run(fn):
        try:
            return str(fn(input_tokens, cached, output_tokens))
        except ArithmeticError as exc:  # past 10^26 dollars: both refuse the same way
            return type(exc)

    assert run(card.cost) == run(card.decimal_cost)


def test_known_models_price_in_picodollars():
    pricer = Pricer()
    for model in ("gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet-20241022", "gemini-1.5-pro", "o1"):
        card = pricer.rate_card(model, None, NOW)
        assert card is not None and card.pico is not None, model
        for tokens in ((1000, 0, 10), (200_001, 100_000, 5000), (10**12, 10**11, 10**12), (0, 0, 0)):
            assert str(card.cost(*tokens)) == str(card.decimal_cost(*tokens))
