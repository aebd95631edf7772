"""The native usage format (SPEC 5): body forms and per-event validation.

Validation is hand-written rather than a schema library: it runs once per event on the
ingest hot path, and each failure must name the field in words a sender can act on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from bot.sources import BodyError

MAX_EVENTS = 10_000
MAX_BODY_BYTES = 5 * 1024 * 1024
MAX_METADATA_BYTES = 4096
MAX_FUTURE = timedelta(minutes=5)
MAX_TOKENS = 2**63 - 1
NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/json-lines", "application/ndjson")


@dataclass(slots=True)
class UsageRecord:
    """One validated event, before identity and price."""

    event_id: str
    occurred_at: datetime
    subject: str
    model: str
    provider: str | None
    team: str | None
    project: str | None
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost_usd: Decimal | None
    metadata: dict[str, Any] | None


class TooManyEvents(BodyError):
    pass


def parse_body(body: bytes, *, ndjson: bool) -> list[Any]:
    """A request body -> the list of raw events it carries (SPEC 5 body forms)."""
    if ndjson:
        events = []
        for number, line in enumerate(body.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                events.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise BodyError(f"line {number} is not valid JSON: {exc}") from None
            if len(events) > MAX_EVENTS:
                raise TooManyEvents(f"more than {MAX_EVENTS} events in one request")
        if not events:
            raise BodyError("the body holds no events")
        return events
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BodyError(f"body is not valid JSON: {exc}") from None
    if isinstance(data, dict) and "events" in data:
        data = data["events"]
        if not isinstance(data, list):
            raise BodyError('"events" must be an array of events')
    elif isinstance(data, dict):
        data = [data]
    elif not isinstance(data, list):
        raise BodyError("body must be an event, an array of events or {\"events\": [...]}")
    if not data:
        raise BodyError("the body holds no events")
    if len(data) > MAX_EVENTS:
        raise TooManyEvents(f"{len(data)} events in one request; at most {MAX_EVENTS}")
    return data


class EventError(ValueError):
    pass


def validate_event(raw: Any, now: datetime) -> UsageRecord:
    """Check one raw event; raise EventError naming the first problem."""
    if not isinstance(raw, dict):
        raise EventError("event must be a JSON object")
    if "_invalid" in raw:
        raise EventError(str(raw["_invalid"]))
    event_id = raw.get("id")
    if not isinstance(event_id, str) or not event_id.strip():
        raise EventError("id: required, a non-empty string")
    if len(event_id) > 200:
        raise EventError("id: at most 200 characters")
    occurred_at = _timestamp(raw.get("timestamp"), now)
    subject = _string(raw, "user", 320, required=True)
    model = _string(raw, "model", 200, required=True)
    input_tokens = _tokens(raw, "input_tokens", required=True)
    output_tokens = _tokens(raw, "output_tokens", required=True)
    cached = _tokens(raw, "cached_input_tokens")
    if cached > input_tokens:
        raise EventError(f"cached_input_tokens: {cached} is more than input_tokens ({input_tokens})")
    reasoning = _tokens(raw, "reasoning_tokens")
    if reasoning > output_tokens:
        raise EventError(f"reasoning_tokens: {reasoning} is more than output_tokens ({output_tokens})")
    metadata = raw.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise EventError("metadata: must be a JSON object")
        try:
            size = len(orjson.dumps(metadata, default=str))
        except TypeError:
            raise EventError("metadata: must be plain JSON") from None
        if size > MAX_METADATA_BYTES:
            raise EventError(f"metadata: {size} bytes as JSON; at most {MAX_METADATA_BYTES}")
    return UsageRecord(
        event_id=event_id,
        occurred_at=occurred_at,
        subject=subject,
        model=model,
        provider=_string(raw, "provider", 100),
        team=_string(raw, "team", 200),
        project=_string(raw, "project", 200),
        input_tokens=input_tokens,
        cached_input_tokens=cached,
        output_tokens=output_tokens,
        reasoning_tokens=reasoning,
        cost_usd=_cost(raw.get("cost_usd")),
        metadata=metadata or None,
    )


def _string(raw: dict, key: str, limit: int, *, required: bool = False) -> str | None:
    value = raw.get(key)
    if value is None or value == "":
        if required:
            raise EventError(f"{key}: required, a non-empty string")
        return None
    if not isinstance(value, str):
        raise EventError(f"{key}: must be a string")
    value = value.strip()
    if required and not value:
        raise EventError(f"{key}: required, a non-empty string")
    if len(value) > limit:
        raise EventError(f"{key}: at most {limit} characters")
    return value or None


def _tokens(raw: dict, key: str, *, required: bool = False) -> int:
    value = raw.get(key)
    if value is None:
        if required:
            raise EventError(f"{key}: required, an integer >= 0")
        return 0
    if type(value) is not int:  # bool is an int subclass; floats like 1.0 are refused too
        raise EventError(f"{key}: must be an integer >= 0 (got {value!r})")
    if value < 0:
        raise EventError(f"{key}: must be >= 0 (got {value})")
    if value > MAX_TOKENS:
        raise EventError(f"{key}: too large for a 64-bit count")
    return value


def _timestamp(value: Any, now: datetime) -> datetime:
    if value is None:
        raise EventError("timestamp: required, RFC 3339 with an offset or Unix seconds")
    if isinstance(value, bool):
        raise EventError("timestamp: must be RFC 3339 with an offset or Unix seconds")
    if isinstance(value, int | float | Decimal):
        if not math.isfinite(float(value)):
            raise EventError("timestamp: must be a finite number of Unix seconds")
        try:
            moment = datetime.fromtimestamp(float(value), UTC)
        except (OverflowError, OSError, ValueError):
            raise EventError(f"timestamp: {value} is out of range for Unix seconds") from None
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise EventError(f"timestamp: {value!r} is not RFC 3339 (like 2026-11-20T14:03:11Z)") from None
        if moment.tzinfo is None:
            raise EventError(f"timestamp: {value!r} has no UTC offset (add Z or +00:00)")
        moment = moment.astimezone(UTC)
    else:
        raise EventError("timestamp: must be RFC 3339 with an offset or Unix seconds")
    if moment > now + MAX_FUTURE:
        raise EventError(f"timestamp: {moment.isoformat()} is more than 5 minutes in the future")
    if moment.year < 2000:
        raise EventError(f"timestamp: {moment.isoformat()} is before the year 2000")
    return moment


def _cost(value: Any) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise EventError("cost_usd: must be a decimal number >= 0")
    try:
        # repr() of a float is the shortest string that reads back as the same float,
        # i.e. the literal the sender wrote for any sane amount.
        cost = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise EventError(f"cost_usd: {value!r} is not a number") from None
    if not cost.is_finite() or cost < 0:
        raise EventError(f"cost_usd: must be a finite number >= 0 (got {value!r})")
    if cost > Decimal(1_000_000):
        raise EventError(f"cost_usd: {value!r} is implausibly large for one event (over $1,000,000)")
    return cost
