"""Exact token prices: configured overrides first, then genai-prices.

genai-prices' `calc_price` costs ~100 µs a call, so a model's rate card is resolved once
(per provider and model, and per minute for the few models whose price depends on the
time of day) and every event is priced with integer arithmetic: each rate in whole
picodollars per token (all known prices are whole micro-dollars per million tokens), the
result turned into the same Decimal the Decimal arithmetic gives (`RateCard.decimal_cost`,
still used for any price that is not whole, or a sum past 10^27 picodollars). Tiers are still
chosen per event: long-context prices depend on each call's own input size.

What is priced how:
- `input_tokens - cached_input_tokens` at the input rate, `cached_input_tokens` at the
  cache-read rate (the input rate when a model has none);
- `output_tokens` (reasoning included: providers bill reasoning as output) at the
  output rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from bot.config import ModelPrice
from storage.types import MONEY_SCALE, quantize_money

MILLION = Decimal(1_000_000)
ZERO = Decimal(0)
EXACT_PICO = 10**27


@dataclass(frozen=True, slots=True)
class Rate:
    """USD per million tokens, with optional cliff tiers: (start, price) ascending."""

    base: Decimal
    tiers: tuple[tuple[int, Decimal], ...] = ()

    def at(self, total_input_tokens: int) -> Decimal:
        price = self.base
        for start, tier_price in self.tiers:
            if total_input_tokens > start:
                price = tier_price
        return price


@dataclass(frozen=True, slots=True)
class RateCard:
    input: Rate
    output: Rate
    cached_input: Rate | None
    source: str  # "override" | "genai-prices <version>"
    # the three rates in whole picodollars per token, when every price of the card is a whole number of
    # micro-dollars per million tokens (all known ones): (base, tiers) for input, cached input, output
    pico: tuple | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pico", _pico_rates(self))

    def cost(self, input_tokens: int, cached_input_tokens: int, output_tokens: int) -> Decimal:
        """Exact: the same Decimal as `decimal_cost`, to the last digit and exponent."""
        total = self.pico_cost(input_tokens, cached_input_tokens, output_tokens)
        if total is not None:
            return Decimal(total).scaleb(-MONEY_SCALE)
        return self.decimal_cost(input_tokens, cached_input_tokens, output_tokens)

    def pico_cost(self, input_tokens: int, cached_input_tokens: int, output_tokens: int) -> int | None:
        """The cost in whole picodollars, or None where only `decimal_cost` can tell."""
        pico = self.pico
        if pico is not None and input_tokens >= cached_input_tokens >= 0 and output_tokens >= 0:
            (input_rate, input_tiers), (cached_rate, cached_tiers), (output_rate, output_tiers) = pico
            if input_tiers or cached_tiers or output_tiers:
                input_rate = _tier(input_rate, input_tiers, input_tokens)
                cached_rate = _tier(cached_rate, cached_tiers, input_tokens)
                output_rate = _tier(output_rate, output_tiers, input_tokens)
            total = ((input_tokens - cached_input_tokens) * input_rate + cached_input_tokens * cached_rate
                     + output_tokens * output_rate)
            # below 10^27 picodollars every Decimal step of `decimal_cost` is exact (28 digits), so both agree
            if total < EXACT_PICO:
                return total
        return None

    def decimal_cost(self, input_tokens: int, cached_input_tokens: int, output_tokens: int) -> Decimal:
        cached_rate = self.cached_input or self.input
        total = (
            (input_tokens - cached_input_tokens) * self.input.at(input_tokens)
            + cached_input_tokens * cached_rate.at(input_tokens)
            + output_tokens * self.output.at(input_tokens)
        )
        return quantize_money(total / MILLION)


@dataclass(frozen=True, slots=True)
class Price:
    cost_usd: Decimal
    source: str
    unpriced: bool = False


UNPRICED = Price(ZERO, "unpriced", True)


class Pricer:
    """Prices events; holds the rate-card cache for the life of the process."""

    def __init__(self, overrides: dict[str, ModelPrice] | None = None) -> None:
        import genai_prices
        from genai_prices.data_snapshot import get_snapshot

        self._snapshot = get_snapshot()
        self.genai_source = f"genai-prices {genai_prices.__version__}"
        self._overrides = {
            name.lower(): RateCard(
                input=Rate(p.input),
                output=Rate(p.output),
                cached_input=Rate(p.cached_input) if p.cached_input is not None else None,
                source="override",
            )
            for name, p in (overrides or {}).items()
        }
        # (provider, model) -> RateCard | ModelInfo (time-dependent) | None (unknown)
        self._cards: dict[tuple[str | None, str], object] = {}
        self._timed: dict[tuple[int, datetime], RateCard | None] = {}

    def price(
        self,
        *,
        model: str,
        provider: str | None,
        occurred_at: datetime,
        input_tokens: int,
        cached_input_tokens: int,
        output_tokens: int,
        cost_usd: Decimal | None = None,
    ) -> Price:
        if cost_usd is not None:
            return Price(quantize_money(cost_usd), "source")
        card = self.rate_card(model, provider, occurred_at)
        if card is None:
            return UNPRICED
        return Price(card.cost(input_tokens, cached_input_tokens, output_tokens), card.source)

    def quote(self, model: str, provider: str | None, occurred_at: datetime, input_tokens: int,
              cached_input_tokens: int, output_tokens: int, cost_usd: Decimal | None,
              ) -> tuple[Decimal, str, bool, int | None]:
        """`price` as a plain (cost_usd, source, unpriced, picodollars or None) tuple, for the ingest loop."""
        if cost_usd is not None:
            return quantize_money(cost_usd), "source", False, None
        card = self._cards.get((provider, model), self)
        if card is self or not (card is None or type(card) is RateCard):
            card = self.rate_card(model, provider, occurred_at)
        if card is None:
            return ZERO, "unpriced", True, None
        pico = card.pico_cost(input_tokens, cached_input_tokens, output_tokens)
        if pico is None:
            return card.decimal_cost(input_tokens, cached_input_tokens, output_tokens), card.source, False, None
        return Decimal(pico).scaleb(-MONEY_SCALE), card.source, False, pico

    def rate_card(self, model: str, provider: str | None, occurred_at: datetime) -> RateCard | None:
        key = (provider, model)
        try:
            found = self._cards[key]
        except KeyError:
            found = self._cards[key] = self._resolve(model, provider, occurred_at)
        if found is None or isinstance(found, RateCard):
            return found
        # A model whose price depends on the date or time of day: cache per minute.
        minute = occurred_at.replace(second=0, microsecond=0)
        timed_key = (id(found), minute)
        if timed_key not in self._timed:
            self._timed[timed_key] = self._card_from(found.get_prices(minute))
        return self._timed[timed_key]

    def _resolve(self, model: str, provider: str | None, occurred_at: datetime) -> object:
        lowered = model.lower()
        if lowered in self._overrides:
            return self._overrides[lowered]
        if "/" in lowered and lowered.partition("/")[2] in self._overrides:  # gateway style "openai/acme-1"
            return self._overrides[lowered.partition("/")[2]]
        info = self._lookup(lowered, provider)
        if info is None:
            return None
        if isinstance(info.prices, list) and len(info.prices) > 1:
            return info
        return self._card_from(info.get_prices(occurred_at))

    def _lookup(self, model: str, provider: str | None):
        attempts: list[tuple[str, str | None]] = [(model, provider), (model, None)]
        if "/" in model:  # gateway style "openai/gpt-4o"
            prefix, _, rest = model.partition("/")
            attempts += [(rest, prefix), (rest, None)]
        for ref, provider_id in attempts:
            try:
                _, info = self._snapshot.find_provider_model(ref, None, provider_id, None)
                return info
            except (LookupError, ValueError):
                continue
        return None

    def _card_from(self, model_price) -> RateCard | None:
        input_rate = _rate(getattr(model_price, "input_mtok", None))
        output_rate = _rate(getattr(model_price, "output_mtok", None))
        if input_rate is None and output_rate is None:
            return None
        return RateCard(
            input=input_rate or Rate(ZERO),
            output=output_rate or Rate(ZERO),
            cached_input=_rate(getattr(model_price, "cache_read_mtok", None)),
            source=self.genai_source,
        )


def _tier(base: int, tiers: tuple, total_input_tokens: int) -> int:
    for start, price in tiers:
        if total_input_tokens > start:
            base = price
    return base


def _pico_rates(card: RateCard) -> tuple | None:
    """USD per million tokens -> whole picodollars per token (x 10^6), or None if any is not whole."""
    out = []
    for rate in (card.input, card.cached_input or card.input, card.output):
        prices = [rate.base, *(price for _, price in rate.tiers)]
        if not all(isinstance(p, Decimal) and p.is_finite() and p >= 0 for p in prices):
            return None
        scaled = [p.scaleb(6) for p in prices]
        if any(p != p.to_integral_value() or p >= EXACT_PICO for p in scaled):
            return None
        out.append((int(scaled[0]), tuple((start, int(p)) for (start, _), p in zip(rate.tiers, scaled[1:],
                                                                                   strict=True))))
    return tuple(out)


def _rate(value) -> Rate | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return Rate(value)
    tiers = tuple(sorted((int(t.start), Decimal(t.price)) for t in value.tiers))
    return Rate(Decimal(value.base), tiers)
