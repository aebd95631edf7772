"""The native usage format (SPEC 5): body forms and per-event validation.

Validation is hand-written rather than a schema library: it runs once per event on the
ingest hot path, and each failure must name the field in words a sender can act on. The usual
event takes a short path (`_plain_event`); anything it is not sure of goes through the full
checks, which alone word errors (tests/test_native_fast.py holds the two equal).
"""

from __future__ import annotations

import json
import math
import re
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
_fromisoformat = datetime.fromisoformat
# PostgreSQL text cannot hold NUL, and a lone UTF-16 surrogate is not text at all (no UTF-8
# encoding): either would fail the whole batch at insert time, so the event is refused up front.
_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")
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
    cache_hit: bool = False  # served from a gateway's cache: no provider tokens, no cost


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
                events.append(_loads(line))
            except ValueError as exc:
                raise BodyError(f"line {number} is not valid JSON: {exc}") from None
            if len(events) > MAX_EVENTS:
                raise TooManyEvents(f"more than {MAX_EVENTS} events in one request")
        if not events:
            raise BodyError("the body holds no events")
        return events
    try:
        data = _loads(body)
    except ValueError as exc:
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


def _loads(text: bytes) -> Any:
    """orjson, and the standard library for what orjson refuses but is still JSON: a lone
    surrogate escape or an integer past 64 bits, so that only the event holding it is refused."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        first_error = exc
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise ValueError(str(first_error)) from None


class EventError(ValueError):
    pass


def validate_event(raw: Any, now: datetime) -> UsageRecord:
    """Check one raw event; raise EventError naming the first problem."""
    if type(raw) is dict:
        record = _plain_event(raw, now)
        if record is not None:
            return record
    return _checked_event(raw, now)


def _plain_event(raw: dict, now: datetime) -> UsageRecord | None:
    """The common case in few steps: every field of the usual type, ASCII text, an RFC 3339 string
    timestamp. None for anything else, which `_checked_event` then judges (and words the error of);
    what this returns is what `_checked_event` would (tests/test_native_fast.py)."""
    get = raw.get
    event_id = get("id")
    # ASCII: no lone surrogate; a first character above " ": not all whitespace
    if (type(event_id) is not str or not 0 < len(event_id) <= 200 or not event_id.isascii()
            or event_id[0] <= " " or "\x00" in event_id or "_invalid" in raw):
        return None
    stamp = get("timestamp")
    if type(stamp) is not str:
        return None
    try:
        moment = _fromisoformat(stamp)
    except ValueError:
        return None
    if moment.tzinfo is not UTC:
        if moment.tzinfo is None:
            return None
        try:
            moment = moment.astimezone(UTC)
        except (OverflowError, ValueError):
            return None
    if moment > now + MAX_FUTURE or moment.year < 2000:
        return None
    subject, model = get("user"), get("model")
    if (type(subject) is not str or not subject.isascii() or len(subject) > 320 or "\x00" in subject
            or type(model) is not str or not model.isascii() or len(model) > 200 or "\x00" in model):
        return None
    subject, model = subject.strip(), model.strip()
    input_tokens, output_tokens = get("input_tokens"), get("output_tokens")
    cached, reasoning = get("cached_input_tokens", 0), get("reasoning_tokens", 0)
    if (not subject or not model or type(input_tokens) is not int or type(output_tokens) is not int
            or not 0 <= input_tokens <= MAX_TOKENS or not 0 <= output_tokens <= MAX_TOKENS
            or type(cached) is not int or not 0 <= cached <= input_tokens
            or type(reasoning) is not int or not 0 <= reasoning <= output_tokens):
        return None
    provider, team, project = get("provider"), get("team"), get("project")
    if provider is not None:
        provider = _plain_string(provider, 100)
        if provider is False:
            return None
    if team is not None:
        team = _plain_string(team, 200)
        if team is False:
            return None
    if project is not None:
        project = _plain_string(project, 200)
        if project is False:
            return None
    cost = get("cost_usd")
    metadata = get("metadata")
    if cost is not None or metadata is not None:
        try:
            cost = _cost(cost)
            if metadata is not None:
                _check_metadata(metadata)
        except EventError:
            return None
    return UsageRecord(event_id, moment, subject, model, provider, team, project, input_tokens, cached,
                       output_tokens, reasoning, cost, metadata or None, get("_cache_hit") is True)


def _plain_string(value: Any, limit: int) -> str | bool | None:
    """`_string` for an optional ASCII string; False: let `_string` judge it."""
    if type(value) is not str or not value.isascii() or len(value) > limit or "\x00" in value:
        return False
    return value.strip() or None


def _checked_event(raw: Any, now: datetime) -> UsageRecord:
    if not isinstance(raw, dict):
        raise EventError("event must be a JSON object")
    if "_invalid" in raw:
        raise EventError(str(raw["_invalid"]))
    event_id = raw.get("id")
    if not isinstance(event_id, str) or not event_id.strip():
        raise EventError("id: required, a non-empty string")
    if len(event_id) > 200:
        raise EventError("id: at most 200 characters")
    if _NOT_TEXT.search(event_id):
        raise EventError("id: contains a NUL character or a lone surrogate")
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
        _check_metadata(metadata)
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
        cache_hit=raw.get("_cache_hit") is True,
    )


def _check_metadata(metadata: Any) -> None:
    if not isinstance(metadata, dict):
        raise EventError("metadata: must be a JSON object")
    if not _plain_text(metadata):
        raise EventError("metadata: contains a NUL character or a lone surrogate")
    try:
        size = len(orjson.dumps(metadata, default=str))
    except TypeError:
        raise EventError("metadata: must be plain JSON") from None
    if size > MAX_METADATA_BYTES:
        raise EventError(f"metadata: {size} bytes as JSON; at most {MAX_METADATA_BYTES}")


def _plain_text(value: Any, depth: int = 0) -> bool:
    """No NUL and no lone surrogate in any key or string of a (small, size-checked) JSON value."""
    if isinstance(value, str):
        return not _NOT_TEXT.search(value)
    if depth > 32:
        return True  # deeper than any real metadata: orjson.dumps below refuses a surrogate there
    if isinstance(value, dict):
        return all(_plain_text(k, depth + 1) and _plain_text(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain_text(v, depth + 1) for v in value)
    return True


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
    if _NOT_TEXT.search(value):
        raise EventError(f"{key}: contains a NUL character or a lone surrogate")
    return value or None


def _tokens(raw: dict, key: str, *, required: bool = False) -> int:
    value = raw.get(key)
    if value is None:
        if required:
            raise EventError(f"{key}: required, an integer >= 0")
        return 0
    if type(value) is not int:  # bool is an int subclass; floats like 1.0 are refused too
        raise EventError(f"{key}: must be an integer >= 0 (got {_show(value)})")
    if value < 0:
        raise EventError(f"{key}: must be >= 0 (got {_show(value)})")
    if value > MAX_TOKENS:
        raise EventError(f"{key}: too large for a 64-bit count")
    return value


def _timestamp(value: Any, now: datetime) -> datetime:
    if value is None:
        raise EventError("timestamp: required, RFC 3339 with an offset or Unix seconds")
    if isinstance(value, bool):
        raise EventError("timestamp: must be RFC 3339 with an offset or Unix seconds")
    if isinstance(value, int | float | Decimal):
        try:
            seconds = float(value)
        except OverflowError:  # an integer of hundreds of digits
            seconds = math.inf
        if not math.isfinite(seconds):
            raise EventError("timestamp: must be a finite number of Unix seconds")
        try:
            moment = datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise EventError(f"timestamp: {_show(value)} is out of range for Unix seconds") from None
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise EventError(f"timestamp: {_show(value)} is not RFC 3339 (like 2026-11-20T14:03:11Z)") from None
        if moment.tzinfo is None:
            raise EventError(f"timestamp: {_show(value)} has no UTC offset (add Z or +00:00)")
        try:
            moment = moment.astimezone(UTC)
        except (OverflowError, ValueError):  # 9999-12-31T23:59:59-01:00 is past year 9999 in UTC
            raise EventError(f"timestamp: {_show(value)} is out of range") from None
    else:
        raise EventError("timestamp: must be RFC 3339 with an offset or Unix seconds")
    if moment > now + MAX_FUTURE:
        raise EventError(f"timestamp: {moment.isoformat()} is more than 5 minutes in the future")
    if moment.year < 2000:
        raise EventError(f"timestamp: {moment.isoformat()} is before the year 2000")
    return moment


def _show(value: Any) -> str:
    """A sent value for an error message, cut short: answers and logs never echo a huge field."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


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
        raise EventError(f"cost_usd: {_show(value)} is not a number") from None
    if not cost.is_finite() or cost < 0:
        raise EventError(f"cost_usd: must be a finite number >= 0 (got {_show(value)})")
    if cost > Decimal(1_000_000):
        raise EventError(f"cost_usd: {_show(value)} is implausibly large for one event (over $1,000,000)")
    return cost
