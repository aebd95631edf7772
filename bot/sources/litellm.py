"""LiteLLM generic API logger -> native usage events (SPEC 5, `POST /webhooks/litellm`).

LiteLLM always sends `Content-Type: application/json`, whatever its `log_format`, so the
body itself says which form it is: a JSON array (`json_array`, the default), JSON Lines
(`ndjson`) or a single object (`single`).

Each record is either a `StandardLoggingPayload` (plain JSON) or the legacy v1 shape
(`litellm.generic_api_use_v1 = True`) in which LiteLLM called `str()` on every value:
nested dicts arrive as Python reprs, times as `str(datetime)`, and `usage` as either a dict
repr or a pydantic repr (`prompt_tokens=10 completion_tokens=20 ...`). Reprs are read with
`ast.literal_eval` (never `eval`); anything it refuses is treated as absent.

This module only maps fields; `bot.usage` validates, prices and stores. A record that cannot
be mapped still yields a dict (with the bad value kept as sent, or a key left out) so the
validator can reject it by index with a reason. Nothing is dropped silently.
"""

from __future__ import annotations

import ast
import json
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.sources import BodyError

__all__ = ["parse_litellm_body"]

_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=str)
_WS = re.compile(r"[ \t\n\r]*")
_ABSENT = object()

# Legacy-only helpers (never used on the StandardLoggingPayload path).
_USAGE_FIELDS = (
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_read_input_tokens",
    "reasoning_tokens",
)
# Matches `name=123` (pydantic str/repr) and `'name': 123` (dict repr); the lookbehind keeps
# `prompt_tokens` from matching inside a longer name.
_USAGE_RE = {
    name: re.compile(r"""(?<![\w])['"]?""" + name + r"""['"]?\s*[:=]\s*(\d+)""") for name in _USAGE_FIELDS
}
_LEGACY_META_KEYS = (
    "user_api_key_user_id",
    "user_api_key_user_email",
    "user_api_key_alias",
    "user_api_key_hash",
    "user_api_key_team_id",
    "user_api_key_team_alias",
    "team_id",
    "team_alias",
    "model_group",
)
_META_VALUE_RE = {
    key: re.compile(r"""['"]""" + key + r"""['"]\s*:\s*('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|None)""")
    for key in _LEGACY_META_KEYS
}


def parse_litellm_body(body: bytes) -> list[dict]:
    """Body of POST /webhooks/litellm -> native usage event dicts, one per LiteLLM record, in order.

    Raises BodyError when the body is not JSON / JSON Lines at all, or is a bare JSON scalar.
    A record that is not a JSON object becomes `{"_invalid": "record is not a JSON object"}`.
    """
    return [_record(rec) for rec in _split_records(body)]


# --------------------------------------------------------------------------- body forms


def _split_records(body: bytes) -> list[Any]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BodyError(f"body is not UTF-8 text: {exc.reason} at byte {exc.start}") from None

    values: list[Any] = []
    pos = _WS.match(text, 0).end()
    end = len(text)
    if pos == end:
        raise BodyError("body is empty: expected a JSON array, JSON Lines or one JSON object")
    try:
        while pos < end:
            value, pos = _DECODER.raw_decode(text, pos)
            values.append(value)
            pos = _WS.match(text, pos).end()
    except json.JSONDecodeError as exc:
        what = "JSON Lines" if values else "JSON"
        raise BodyError(
            f"body is not valid {what}: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer too long to convert, deep nesting
        raise BodyError(f"body is not usable JSON: {type(exc).__name__}") from None

    if len(values) == 1:
        only = values[0]
        if isinstance(only, list):  # json_array
            return only
        if isinstance(only, dict):  # single
            return values
        raise BodyError(
            f"body is a bare JSON {type(only).__name__}: expected a JSON array, JSON Lines or one JSON object"
        )
    return values  # ndjson: one value per line


# --------------------------------------------------------------------------- one record


def _record(rec: Any) -> dict:
    if not isinstance(rec, dict):
        return {"_invalid": "record is not a JSON object"}

    meta_raw = rec.get("metadata")
    legacy = (
        isinstance(meta_raw, str)
        or isinstance(rec.get("usage"), str)
        or ("cost" in rec and "response_cost" not in rec)
    )
    if legacy:
        meta = _legacy_metadata(meta_raw)
        usage = _legacy_usage(rec.get("usage"))
    else:
        meta = meta_raw if isinstance(meta_raw, dict) else {}
        usage = None

    def text(value: Any, _t=_text, _legacy=legacy) -> str | None:
        return _t(value, _legacy)

    def m(key: str, _get=meta.get, _t=_text, _legacy=legacy) -> str | None:
        return _t(_get(key), _legacy)

    out: dict[str, Any] = {}

    event_id = text(rec.get("id")) or text(rec.get("call_id")) or text(rec.get("trace_id"))
    if event_id is not None:
        out["id"] = event_id

    ts = _timestamp(rec.get("startTime"), legacy)
    if ts is not _ABSENT:
        out["timestamp"] = ts

    # --- who
    key_hash = m("user_api_key_hash")
    if key_hash is not None and key_hash.startswith("sk-"):
        key_hash = None  # a raw key, not a hash: never store or display a secret
    key_alias = m("user_api_key_alias")
    candidates = [
        ("user_api_key_user_id", m("user_api_key_user_id")),
        ("user_api_key_user_email", m("user_api_key_user_email")),
        ("end_user", text(rec.get("end_user"))),
    ]
    if legacy:
        candidates.append(("user", text(rec.get("user"))))
    candidates += [("user_api_key_alias", key_alias), ("user_api_key_hash", key_hash)]
    user, attributed_by = "unattributed", "unattributed"
    for field, value in candidates:
        if value is not None:
            user, attributed_by = value, field
            break
    out["user"] = user

    # --- what
    model = text(rec.get("model_group"))
    if model is None and legacy:
        model = m("model_group")
    if model is None:
        model = text(rec.get("model"))
    if model is not None:
        out["model"] = model
    provider = text(rec.get("custom_llm_provider"))
    if provider is not None:
        out["provider"] = provider

    team_id = m("user_api_key_team_id") or m("team_id")
    team = m("user_api_key_team_alias") or m("team_alias") or team_id
    if team is not None:
        out["team"] = team

    # --- tokens
    if legacy:
        _legacy_tokens(rec, usage or {}, out)
    else:
        _standard_tokens(rec, meta, out)

    # --- cost
    cost = _cost(rec, legacy)
    if cost is not _ABSENT:
        out["cost_usd"] = cost

    # --- metadata (small, no message or response content)
    info = {
        "source": "litellm",
        "call_type": text(rec.get("call_type")),
        "key_alias": key_alias,
        "key_hash_prefix": key_hash[:12] if key_hash else None,
        "team_id": team_id,
        "status": text(rec.get("status")),
        "attributed_by": attributed_by,
    }
    out["metadata"] = {k: v for k, v in info.items() if v is not None}
    return out


# --------------------------------------------------------------------------- value helpers


def _text(value: Any, legacy: bool) -> str | None:
    """A usable identifier string, or None for null / "" (and "None" in the legacy shape)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value or (legacy and value == "None"):
            return None
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _count(value: Any) -> Any:
    """A token count: int as is, digit strings -> int, null/""/"None" -> _ABSENT, else raw."""
    if value is None:
        return _ABSENT
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        s = value.strip()
        if not s or s == "None":
            return _ABSENT
        if s.isascii() and s.isdigit():
            return int(s)
    return value


def _positive(value: Any) -> int | None:
    """A known, positive integer count (cached / reasoning parts), else None."""
    value = _count(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _decimal(value: Any) -> Decimal | None:
    """A finite, non-negative Decimal, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, int):
        d = Decimal(value)
    elif isinstance(value, float):
        d = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            d = Decimal(value.strip())
        except InvalidOperation:
            return None
    else:
        return None
    if not d.is_finite() or d < 0:
        return None
    return d


def _timestamp(value: Any, legacy: bool) -> Any:
    if value is None:
        return _ABSENT
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return value  # epoch seconds, kept as sent
    if not isinstance(value, str):
        return value  # let validation reject it
    s = value.strip()
    if not s or (legacy and s == "None"):
        return _ABSENT
    if s[0].isdigit() and "-" not in s and ":" not in s:
        try:
            return Decimal(s)  # an epoch number sent as a string
        except InvalidOperation:
            return value
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return value
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    else:
        dt = dt.astimezone(UTC)
    return dt.isoformat()


def _cost(rec: dict, legacy: bool) -> Any:
    if legacy:
        raw = rec.get("cost", rec.get("response_cost"))
        breakdown = None
    else:
        raw = rec.get("response_cost")
        breakdown = rec.get("cost_breakdown")
    if isinstance(raw, str) and (not raw.strip() or raw.strip() == "None"):
        raw = None
    total = breakdown.get("total_cost") if isinstance(breakdown, dict) else None
    total_dec = _decimal(total)

    if raw is None:
        if total_dec is not None:
            return total_dec
        return _ABSENT if total is None else total
    cost = _decimal(raw)
    if cost is None:
        return raw  # negative or not a number: validation rejects it with a reason
    if total_dec is not None and total_dec > cost:
        return total_dec  # streamed calls are known to report response_cost 0
    return cost


# --------------------------------------------------------------------------- StandardLoggingPayload


def _standard_tokens(rec: dict, meta: dict, out: dict) -> None:
    usages = []
    response = rec.get("response")
    if isinstance(response, dict) and isinstance(response.get("usage"), dict):
        usages.append(response["usage"])
    if isinstance(meta.get("usage_object"), dict):
        usages.append(meta["usage_object"])

    for key, src in (("input_tokens", "prompt_tokens"), ("output_tokens", "completion_tokens")):
        value = _count(rec.get(src))
        for usage in usages:
            if value is not _ABSENT:
                break
            value = _count(usage.get(src))
        if value is not _ABSENT:
            out[key] = value

    cached = reasoning = None
    for usage in usages:
        if cached is None:
            details = usage.get("prompt_tokens_details")
            if isinstance(details, dict):
                cached = _positive(details.get("cached_tokens"))
            if cached is None:
                cached = _positive(usage.get("cache_read_input_tokens"))
        if reasoning is None:
            details = usage.get("completion_tokens_details")
            if isinstance(details, dict):
                reasoning = _positive(details.get("reasoning_tokens"))
    if cached is not None:
        out["cached_input_tokens"] = cached
    if reasoning is not None:
        out["reasoning_tokens"] = reasoning


# --------------------------------------------------------------------------- legacy v1 shape


def _literal(value: str) -> Any:
    """ast.literal_eval that never raises; only Python literals, nothing is executed."""
    try:
        return ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _legacy_metadata(raw: Any) -> dict:
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str) or not raw.strip() or raw.strip() == "None":
        return {}
    parsed = _literal(raw)
    if isinstance(parsed, dict):
        return parsed
    # The repr held something that is not a literal (an object, a datetime...): pick out the
    # few plain string fields we need.
    found: dict[str, Any] = {}
    for key, pattern in _META_VALUE_RE.items():
        match = pattern.search(raw)
        if match:
            value = _literal(match.group(1))
            if isinstance(value, str):
                found[key] = value
    return found


def _legacy_usage(raw: Any) -> dict:
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str) or not raw.strip() or raw.strip() == "None":
        return {}
    parsed = _literal(raw) if raw.lstrip().startswith("{") else None
    if isinstance(parsed, dict):
        return parsed
    # pydantic str(): `completion_tokens=212 prompt_tokens=1830 ... prompt_tokens_details=
    # PromptTokensDetailsWrapper(cached_tokens=0, ...)`, or a dict repr holding such objects.
    found: dict[str, Any] = {}
    for name, pattern in _USAGE_RE.items():
        match = pattern.search(raw)
        if match:
            found[name] = int(match.group(1))
    return found


def _legacy_tokens(rec: dict, usage: dict, out: dict) -> None:
    for key, src in (("input_tokens", "prompt_tokens"), ("output_tokens", "completion_tokens")):
        value = _count(rec.get(src))
        if value is _ABSENT:
            value = _count(usage.get(src))
        if value is not _ABSENT:
            out[key] = value

    details = usage.get("prompt_tokens_details")
    cached = _positive(details.get("cached_tokens")) if isinstance(details, dict) else None
    if cached is None:
        cached = _positive(usage.get("cached_tokens"))  # flattened by the regex fallback
    if cached is None:
        cached = _positive(usage.get("cache_read_input_tokens"))
    if cached is not None:
        out["cached_input_tokens"] = cached

    details = usage.get("completion_tokens_details")
    reasoning = _positive(details.get("reasoning_tokens")) if isinstance(details, dict) else None
    if reasoning is None:
        reasoning = _positive(usage.get("reasoning_tokens"))
    if reasoning is not None:
        out["reasoning_tokens"] = reasoning
