"""A provider usage record -> a priced, attributed bucket for the ledger (storage/sources_repo.py).

Prices (bot/pricing.py: configured overrides, then genai-prices):
- OpenAI: `input_tokens` includes cached and cache-write tokens; `input_cached_tokens` are priced at
  the cache-read rate, the rest (cache writes included: OpenAI bills them as input) at the input rate.
- Anthropic: uncached input at the input rate, cache reads at the cache-read rate, 5-minute cache
  writes at 1.25x and 1-hour cache writes at 2x the input rate (Anthropic's published multipliers).
- Buckets sum many calls: long-context tiers apply only to Anthropic buckets whose
  `context_window` is "200k-1M" (OpenAI's usage API does not say; its base rates are used).
- Batch (OpenAI `batch = true`, Anthropic `service_tier = "batch"`): half price.
- A model with no known price is stored unpriced (cost 0, flagged) and named in Data to check.

Who spent it: the first of the bucket's ids that is linked to a Slack person (the OpenAI user's
email, the user id, the API key, the project or workspace), else the email, else the key, else the
project; what cannot be attributed keeps that id as its name (unlinked spend).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal

from bot.pricing import MILLION, Pricer
from storage.sources_repo import Bucket
from storage.types import quantize_money

CACHE_WRITE_5M = Decimal("1.25")
CACHE_WRITE_1H = Decimal(2)
BATCH = Decimal("0.5")
LONG_CONTEXT = 200_001  # input tokens of one call in a "200k-1M" bucket, for the tier lookup
MAX_ID = 200


def bucket_id(source: str, record: dict) -> str:
    parts = [source, record["endpoint"], str(int(record["start"].timestamp())), record.get("project") or "-",
             record.get("user") or "-", record.get("api_key") or "-", record["model"],
             "b" if record.get("batch") else "-", record.get("service_tier") or "-"]
    if record.get("context_window"):
        parts.append(record["context_window"])
    text = ":".join(parts)
    if len(text) <= MAX_ID:
        return text
    return f"{source}:{record['endpoint']}:{parts[2]}:{hashlib.sha256(text.encode()).hexdigest()[:40]}"


def price_record(pricer: Pricer, source: str, record: dict) -> tuple[Decimal, str, bool]:
    """(cost, price source, unpriced)."""
    model, moment = record["model"], record["start"]
    card = pricer.rate_card(model, source, moment)
    if card is None:
        return Decimal(0), "unpriced", True
    # a bucket sums many calls: a long-context tier applies only where the provider says the calls
    # were long (Anthropic's context_window "200k-1M"), never because the bucket's sum is large
    size = LONG_CONTEXT if str(record.get("context_window") or "").startswith("200k") else 0
    writes = record.get("cw5m", 0) + record.get("cw1h", 0)
    cached_rate = card.cached_input or card.input
    cost = ((record["input"] - writes - record["cached"]) * card.input.at(size)
            + record["cached"] * cached_rate.at(size) + record["output"] * card.output.at(size)
            + record.get("cw5m", 0) * card.input.at(size) * CACHE_WRITE_5M
            + record.get("cw1h", 0) * card.input.at(size) * CACHE_WRITE_1H) / MILLION
    if record.get("batch"):
        cost *= BATCH
    return quantize_money(cost), card.source + (" (batch)" if record.get("batch") else ""), False


def candidates(record: dict, emails: dict[str, str]) -> list[str]:
    ids = []
    user = record.get("user")
    if user and emails.get(user):
        ids.append(emails[user])
    for value in (user, record.get("api_key"), record.get("project")):
        if value:
            ids.append(value)
    return ids


def choose_subject(source: str, ids: list[str], resolved: dict[str, str]) -> str:
    for value in ids:
        if resolved.get(value, value) != value:
            return value  # linked to a Slack person (config, /tokens admin link, or a known email)
    return ids[0] if ids else f"{source}:unattributed"


def to_bucket(source: str, record: dict, *, local_day: Callable[[datetime], date], subject: str, user_key: str,
              price: tuple[Decimal, str, bool], counted: bool) -> Bucket:
    cost, how, unpriced = price
    figures = {"input": record["input"], "cached": record["cached"], "output": record["output"],
               "cw5m": record.get("cw5m", 0), "cw1h": record.get("cw1h", 0), "requests": record.get("requests", 0),
               **record.get("extra", {})}
    return Bucket(
        bucket_id=bucket_id(source, record), source=source, occurred_at=record["start"],
        day=local_day(record["start"]), utc_day=record["start"].date(), subject=subject, user_key=user_key,
        model=record["model"], project=record.get("project"), input_tokens=record["input"],
        cached_input_tokens=record["cached"], output_tokens=record["output"], cost_usd=cost, price_source=how,
        unpriced=unpriced, counted=counted, figures=figures,
    )
