"""One LiteLLM record (the fields `bot.sources.litellm` kept) -> one native usage event dict.

Each record is a `StandardLoggingPayload` or the legacy v1 shape (`litellm.generic_api_use_v1 =
True`) in which LiteLLM called `str()` on every value: nested dicts arrive as Python reprs, times
as naive `str(datetime)` in the LiteLLM host's local time, `usage` as a dict or pydantic repr.
Reprs are read with `ast.literal_eval` (never `eval`); anything it refuses is treated as absent.
The mapping is SPEC 5's; validation is `bot.sources.native`'s.
"""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

_ABSENT = object()
_PLACEHOLDER_USERS = frozenset({"default_user_id"})  # LiteLLM's stand-in under the master key: never a person
META_KEYS = (
    "user_api_key_user_id",
    "user_api_key_user_email",
    "user_api_key_alias",
    "user_api_key_hash",
    "user_api_key_team_id",
    "user_api_key_team_alias",
    "user_api_key_end_user_id",
    "team_id",
    "team_alias",
)
_META_FLAT = tuple((key, f"metadata.{key}") for key in META_KEYS)  # how the readers keep them


def map_record(rec: dict[str, Any], legacy_timezone: tzinfo = UTC) -> dict:
    """The flat fields kept from one LiteLLM record -> one native event dict."""
    meta_raw = rec.get("metadata")
    legacy = (
        isinstance(meta_raw, str)
        or isinstance(rec.get("usage"), str)
        or ("cost" in rec and "response_cost" not in rec)
    )
    if legacy:
        meta = _legacy_dict(meta_raw)
        usage = _legacy_usage(rec.get("usage"))
        params = _legacy_dict(rec.get("modelParameters"))
    else:
        meta = {key: rec[flat] for key, flat in _META_FLAT if flat in rec}
        usage = None
        params = {"user": rec.get("model_parameters.user")}

    def text(value: Any) -> str | None:
        return _text(value, legacy)

    def m(key: str) -> str | None:
        return _text(meta.get(key), legacy)

    out: dict[str, Any] = {}

    hidden = meta.get("hidden_params") if legacy else None
    call_id = text(rec.get("litellm_call_id"))
    if call_id is None and isinstance(hidden, dict):
        call_id = text(hidden.get("litellm_call_id"))
    if call_id is None and legacy:
        call_id = m("litellm_call_id")  # found by the regex fallback
    event_id = call_id or text(rec.get("id")) or text(rec.get("call_id")) or text(rec.get("trace_id"))
    if event_id is not None:
        out["id"] = event_id

    ts = _timestamp(rec.get("startTime"), legacy, legacy_timezone)
    if ts is not _ABSENT:
        out["timestamp"] = ts

    # --- who (SPEC 5): the key's user unless it is LiteLLM's placeholder, its email, the end
    # user, the SDK's user=, then the key itself
    key_hash = m("user_api_key_hash")
    if key_hash is not None and key_hash.startswith("sk-"):
        key_hash = None  # a raw key, not a hash: never store or display a secret
    key_alias = m("user_api_key_alias")
    candidates = [
        ("user_api_key_user_id", m("user_api_key_user_id")),
        ("user_api_key_user_email", m("user_api_key_user_email")),
        ("end_user", text(rec.get("end_user")) or m("user_api_key_end_user_id")),
    ]
    if legacy:
        candidates.append(("user", text(rec.get("user"))))
    candidates += [
        ("model_parameters.user", text(params.get("user"))),
        ("user_api_key_alias", key_alias),
        ("user_api_key_hash", key_hash),
    ]
    user, attributed_by = "unattributed", "unattributed"
    for field, value in candidates:
        if value is not None and value not in _PLACEHOLDER_USERS:
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
    if provider is None and legacy and isinstance(hidden, dict):
        provider = text(hidden.get("custom_llm_provider"))
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
        _standard_tokens(rec, out)

    # --- cost
    cost = _cost(rec, legacy)
    if cost is not _ABSENT:
        out["cost_usd"] = cost

    status = text(rec.get("status"))
    info = {
        "source": "litellm",
        "call_type": text(rec.get("call_type")),
        "key_alias": key_alias,
        "key_hash_prefix": key_hash[:12] if key_hash else None,
        "team_id": team_id,
        "status": status,
        "attributed_by": attributed_by,
    }

    # --- what is not spend
    if status == "failure" and not _has_tokens(out):
        return {"_skip": "failed call with no tokens", **({"id": event_id} if event_id else {})}
    if _truthy(rec.get("cache_hit")):
        # Served from LiteLLM's cache: no provider tokens, no cost. What the cached answer
        # reported is kept for explanation only.
        reported = {k: out.get(k) for k in ("input_tokens", "output_tokens") if isinstance(out.get(k), int)}
        for key in ("input_tokens", "output_tokens"):
            out[key] = 0
        out.pop("cached_input_tokens", None)
        out.pop("reasoning_tokens", None)
        out["cost_usd"] = Decimal(0)
        out["_cache_hit"] = True
        info["cache_hit"] = True
        if reported:
            info["cached_response_tokens"] = reported

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


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _has_tokens(out: dict) -> bool:
    return any(isinstance(out.get(k), int) and not isinstance(out.get(k), bool) and out[k] > 0
               for k in ("input_tokens", "output_tokens"))


def _count(value: Any) -> Any:
    """A token count: int as is, digit strings -> int, null/""/"None" -> _ABSENT, else raw."""
    if value is None:
        return _ABSENT
    if isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        s = value.strip()
        if not s or s == "None":
            return _ABSENT
        if s.isascii() and s.isdigit() and len(s) <= 30:
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


def _timestamp(value: Any, legacy: bool, legacy_timezone: tzinfo) -> Any:
    if value is None:
        return _ABSENT
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
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
        # LiteLLM's legacy shape is str(datetime.now()): the host's local wall clock
        dt = dt.replace(tzinfo=legacy_timezone if legacy else UTC)
    try:
        return dt.astimezone(UTC).isoformat()
    except (OverflowError, ValueError):
        return value  # e.g. 9999-12-31T23:59:59-01:00: validation rejects it by index


def _cost(rec: dict, legacy: bool) -> Any:
    if legacy:
        raw = rec.get("cost", rec.get("response_cost"))
        total = None
    else:
        raw = rec.get("response_cost")
        total = rec.get("cost_breakdown.total_cost")
    if isinstance(raw, str) and (not raw.strip() or raw.strip() == "None"):
        raw = None
    total_dec = _decimal(total)
    debug = rec.get("response_cost_failure_debug_info")
    could_not_price = debug is True or (isinstance(debug, str) and debug.strip() not in ("", "None"))

    if raw is None:
        if total_dec is not None and not (could_not_price and total_dec == 0):
            return total_dec
        return _ABSENT if total is None or could_not_price else total
    cost = _decimal(raw)
    if cost is None:
        return raw  # negative or not a number: validation rejects it with a reason
    if total_dec is not None and total_dec > cost:
        return total_dec  # streamed calls are known to report response_cost 0
    if cost == 0 and could_not_price:
        return _ABSENT  # LiteLLM could not price the model: not a $0 call; priced here or flagged
    return cost


# --------------------------------------------------------------------------- StandardLoggingPayload


def _standard_tokens(rec: dict, out: dict) -> None:
    for key, name in (("input_tokens", "prompt_tokens"), ("output_tokens", "completion_tokens")):
        value = _count(rec.get(name))
        for prefix in ("response.usage.", "usage_object."):
            if value is not _ABSENT:
                break
            value = _count(rec.get(prefix + name))
        if value is not _ABSENT:
            out[key] = value
    cached = reasoning = None
    for prefix in ("response.usage.", "usage_object."):
        if cached is None:
            cached = _positive(rec.get(prefix + "cached_tokens")) or _positive(
                rec.get(prefix + "cache_read_input_tokens")
            )
        if reasoning is None:
            reasoning = _positive(rec.get(prefix + "reasoning_tokens"))
    if cached is not None:
        out["cached_input_tokens"] = cached
    if reasoning is not None:
        out["reasoning_tokens"] = reasoning


# --------------------------------------------------------------------------- legacy v1 shape

_USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "cached_tokens", "cache_read_input_tokens", "reasoning_tokens")
# `name=123` (pydantic str/repr) and `'name': 123` (dict repr); the lookbehind keeps
# `prompt_tokens` from matching inside a longer name.
_USAGE_RE = {
    name: re.compile(r"""(?<![\w])['"]?""" + name + r"""['"]?\s*[:=]\s*(\d{1,30})\b""") for name in _USAGE_FIELDS
}
_LEGACYMETA_KEYS = (*META_KEYS, "model_group", "litellm_call_id", "user")
_META_VALUE_RE = {
    key: re.compile(r"""['"]""" + key + r"""['"]\s*:\s*('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|None)""")
    for key in _LEGACYMETA_KEYS
}
_MAX_REPR = 1_000_000  # reprs larger than this are searched, never evaluated


def _literal(value: str) -> Any:
    """ast.literal_eval that never raises; only Python literals, nothing is executed."""
    if len(value) > _MAX_REPR:
        return None
    try:
        return ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _legacy_dict(raw: Any) -> dict:
    """A repr of a dict -> the dict; else (an object, a datetime inside...) the few plain
    string fields found in it."""
    return _repr_dict(raw, lambda text: {
        key: value for key, pattern in _META_VALUE_RE.items()
        if (match := pattern.search(text)) and isinstance(value := _literal(match.group(1)), str)
    })


def _legacy_usage(raw: Any) -> dict:
    """A usage repr -> its counts: a dict repr, or pydantic's `completion_tokens=212 ...
    prompt_tokens_details=PromptTokensDetailsWrapper(cached_tokens=0, ...)`."""
    return _repr_dict(raw, lambda text: {
        name: int(match.group(1)) for name, pattern in _USAGE_RE.items() if (match := pattern.search(text))
    })


def _repr_dict(raw: Any, search) -> dict:
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str) or not raw.strip() or raw.strip() == "None":
        return {}
    parsed = _literal(raw) if raw.lstrip().startswith("{") else None
    return parsed if isinstance(parsed, dict) else search(raw)


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
