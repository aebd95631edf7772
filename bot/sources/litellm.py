"""LiteLLM generic API logger -> native usage events (SPEC 5, `POST /webhooks/litellm`).

LiteLLM batches 512 calls per POST by default and each `StandardLoggingPayload` is 10-100 KB
(messages, response, a 9 KB model map), so a body can be tens of MiB. `LiteLLMStream` is fed the
body chunk by chunk as it arrives and keeps only the few fields tokenbot maps; messages,
responses and the model map go past the streaming parser (ijson's C backend) without ever
being built. Memory stays flat whatever the body size.

LiteLLM always sends `Content-Type: application/json`, so the first bytes tell the form: `[`
is a JSON array (`json_array`, the default); `{` is one object (`single`) or JSON Lines
(`ndjson`), read alike as a stream of top-level objects. Each record is a
`StandardLoggingPayload` or the legacy v1 shape (`litellm.generic_api_use_v1 = True`) in which
LiteLLM called `str()` on every value: nested dicts arrive as Python reprs, times as naive
`str(datetime)` in the LiteLLM host's local time, `usage` as a dict or pydantic repr. Reprs are
read with `ast.literal_eval` (never `eval`); anything it refuses is treated as absent.

This module only maps fields; `bot.usage` validates, prices and stores. A record that cannot be
mapped still yields a dict (the bad value kept as sent, or a key left out) so the validator
rejects it by index with a reason. Nothing is dropped silently: failed calls without tokens
come back as `{"_skip": ...}` (answered as skipped), cache hits are flagged `_cache_hit`.
"""

from __future__ import annotations

import ast
import decimal
import re
from datetime import UTC, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

import ijson

from bot.sources import BodyError
from bot.sources.native import MAX_EVENTS, TooManyEvents

__all__ = ["LITELLM_MAX_BODY_BYTES", "LiteLLMStream", "parse_litellm_body"]

LITELLM_MAX_BODY_BYTES = 64 * 1024 * 1024
_ABSENT = object()
_PLACEHOLDER_USERS = frozenset({"default_user_id"})  # LiteLLM's stand-in under the master key: never a person

# --------------------------------------------------------------------------- the fields kept
# A tree of the paths read from each record; every other subtree is skipped unbuilt. A leaf
# names the flat key the value is kept under; `_KEEP_CONTAINER` marks fields whose mere
# presence matters when they are objects (LiteLLM's cost failure diagnostics).
_KEEP_CONTAINER = "+"


def _usage_tree(prefix: str) -> dict:
    return {
        "prompt_tokens": f"{prefix}.prompt_tokens",
        "completion_tokens": f"{prefix}.completion_tokens",
        "cache_read_input_tokens": f"{prefix}.cache_read_input_tokens",
        "prompt_tokens_details": {"cached_tokens": f"{prefix}.cached_tokens"},
        "completion_tokens_details": {"reasoning_tokens": f"{prefix}.reasoning_tokens"},
    }


_META_KEYS = (
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
_TOP_SCALARS = (
    "id", "litellm_call_id", "call_id", "trace_id", "call_type", "status", "cache_hit", "startTime",
    "model", "model_group", "custom_llm_provider", "prompt_tokens", "completion_tokens", "response_cost",
    "end_user",
    # legacy v1: every value a string
    "user", "usage", "cost", "modelParameters",
)
_TREE: dict[str, Any] = {name: name for name in _TOP_SCALARS}
_TREE.update({
    # a dict in the StandardLoggingPayload, a repr string in the legacy shape
    "metadata": ("metadata", {
        **{key: f"metadata.{key}" for key in _META_KEYS},
        "usage_object": _usage_tree("usage_object"),
    }),
    "cost_breakdown": {"total_cost": "cost_breakdown.total_cost"},
    "model_parameters": {"user": "model_parameters.user"},
    "response": {"usage": _usage_tree("response.usage")},
    "response_cost_failure_debug_info": ("response_cost_failure_debug_info", _KEEP_CONTAINER),
})


def _compile(tree: dict) -> dict[str, tuple[str | None, Any]]:
    """The tree -> {key: (flat key for a scalar here, compiled children | _KEEP_CONTAINER | None)}."""
    nodes = {}
    for key, value in tree.items():
        if isinstance(value, str):
            nodes[key] = (value, None)
        elif isinstance(value, tuple):
            scalar, children = value
            nodes[key] = (scalar, _compile(children) if isinstance(children, dict) else children)
        else:
            nodes[key] = (None, _compile(value))
    return nodes


_ROOT_NODES = _compile(_TREE)
_NO_NODE = (None, None)
_NESTING = {"start_map": 1, "start_array": 1, "end_map": -1, "end_array": -1}

# --------------------------------------------------------------------------- byte-level guards
# Bytes that can belong to a JSON escape (\uXXXX), a number's digit run, a multi-byte UTF-8
# character or a `: NaN` / `, -Infinity` value. Each piece handed to the parser ends on a byte
# outside this set, so none of those is ever split between two pieces: the rewrites below see
# each of them whole.
_RUN_BYTES = b"0123456789abcdefABCDEFu\\ \t\r\n:,[.+-NIinty" + bytes(range(0x80, 0x100))
# Python's json.dumps (LiteLLM's) writes NaN and Infinity for non-finite floats, which JSON and
# the C parser refuse: as values they become null (a cost LiteLLM could not compute is priced
# here), so one bad float does not lose a whole batch. Inside strings nothing structural changes.
_NON_FINITE = re.compile(rb"([:,\[]\s*)(?:NaN|-?Infinity)(?![A-Za-z0-9_])")
# A lone UTF-16 surrogate escape: the C parser would turn it into '?' (a high one) or fail the
# whole body (a low one). It becomes \u0000 instead, which validation rejects for that event only.
_SURROGATE_HINT = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile(
    rb"(\\+)u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})(\\+)u[dD][c-fC-F][0-9a-fA-F]{2}"
)
# Surrogates encoded as raw bytes (CESU-8 / WTF-8 senders): the same, not a whole-body failure.
_RAW_SURROGATE = re.compile(rb"\xed[\xa0-\xbf][\x80-\xbf]")
# ijson's C backend converts integer literals with PyLong_FromString and does not check the
# result: past Python's 4300-digit limit it crashes the process (ijson 3.6, yajl2_c). A run of
# this many digits gets an `e0` exponent so it is read as a Decimal, and validation rejects it.
_LONG_DIGITS = re.compile(rb"\d{300,}")
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_ZEROS = b"0" * 300


def _fix_surrogate(match: re.Match) -> bytes:
    run = match.group(1) or match.group(2)
    if len(run) % 2 == 0:  # an escaped backslash followed by the letter u: not an escape
        return match.group(0)
    return run[:-1] + b"\\u0000"


def _fix_digits(match: re.Match) -> bytes:
    data, start, end = match.string, match.start(), match.end()
    before = data[start - 1 : start]
    if before in (b"e", b"E") or (before in (b"+", b"-") and data[start - 2 : start - 1] in (b"e", b"E")):
        # an exponent Decimal cannot hold: the largest it can, same sign (astronomically large or
        # small either way; validation refuses or rounds it like the value sent)
        return b"999999999"
    if before == b"." or data[end : end + 1] in (b".", b"e", b"E"):
        return match.group(0)  # a fraction: already read as a Decimal
    return match.group(0) + b"e0"


def _sanitise(piece: bytes) -> bytes:
    if (b"NaN" in piece or b"Infinity" in piece) and _NON_FINITE.search(piece):
        piece = _NON_FINITE.sub(rb"\1null", piece)
    if b"\\" in piece and _SURROGATE_HINT.search(piece):
        piece = _LONE_SURROGATE.sub(_fix_surrogate, piece)
    if _RAW_SURROGATE.search(piece):
        piece = _RAW_SURROGATE.sub(rb"\\u0000", piece)
    if _ZEROS in piece.translate(_DIGITS_AS_ZERO):  # a fast pre-check: re is slow on digit runs
        piece = _LONG_DIGITS.sub(_fix_digits, piece)
    return piece


# --------------------------------------------------------------------------- the stream


class LiteLLMStream:
    """Feed a LiteLLM body chunk by chunk; `close()` returns the native event dicts, in order.

    Raises BodyError when the body is not a JSON array / JSON Lines / one object, and
    TooManyEvents as soon as it holds more than `max_records` records.
    """

    def __init__(self, *, legacy_timezone: tzinfo = UTC, max_records: int = MAX_EVENTS) -> None:
        self.legacy_timezone = legacy_timezone
        self.max_records = max_records
        self.records: list[dict] = []
        self._events = ijson.sendable_list()
        self._coro = None
        self._object_stream = False  # `{`: one object or JSON Lines; `[`: a JSON array
        self._line = 1
        self._pending: list[bytes] = []  # a trailing run of _RUN_BYTES, held until it ends
        # where the parser is: depth 0 is the top level; records sit at _record_depth
        self._record_depth = 2
        self._depth = 0
        self._skip = 0  # > 0: inside a subtree that is not kept
        self._stack: list[dict] = []
        self._key: str | None = None
        self._current: dict[str, Any] | None = None

    # -- input ------------------------------------------------------------------------
    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self._coro is None:
            chunk = self._start(b"".join(self._pending) + chunk)
            if chunk is None:
                return
        kept = len(chunk.rstrip(_RUN_BYTES))
        if kept == 0:
            self._pending.append(chunk)
            return
        piece = chunk[:kept]
        if self._pending:
            piece = b"".join(self._pending) + piece
            self._pending = []
        if kept < len(chunk):
            self._pending.append(chunk[kept:])
        self._send(_sanitise(piece))

    def close(self) -> list[dict]:
        if self._coro is None:
            rest = self._start(b"".join(self._pending), final=True)
            if rest is None:
                raise BodyError("body is empty: expected a JSON array, JSON Lines or one JSON object")
            self._pending = [rest]
        if self._pending:
            piece = b"".join(self._pending)
            self._pending = []
            self._send(_sanitise(piece))
        try:
            self._coro.close()
        except Exception as exc:
            raise self._body_error(exc) from None
        self._drain()
        if self._depth or self._current is not None:
            raise BodyError(f"body is not valid JSON: it ends inside record {len(self.records)}")
        return self.records

    def _start(self, data: bytes, *, final: bool = False) -> bytes | None:
        """Pick the form from the first bytes; None while nothing but whitespace has arrived."""
        self._pending = []
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        elif not final and b"\xef\xbb\xbf".startswith(data):
            self._pending = [data]  # maybe the first bytes of a BOM
            return None
        stripped = data.lstrip()
        self._line += data.count(b"\n", 0, len(data) - len(stripped))
        if not stripped:
            return None
        first = stripped[:1]
        if first == b"[":
            self._object_stream, self._record_depth = False, 2
        elif first == b"{":
            self._object_stream, self._record_depth = True, 1
        else:
            raise BodyError("body is not a JSON array, JSON Lines or one JSON object (it must start with [ or {)")
        self._coro = ijson.basic_parse_coro(self._events, use_float=False, multiple_values=self._object_stream)
        return stripped

    def _send(self, piece: bytes) -> None:
        if not piece:
            return
        try:
            if self._object_stream:
                # one send per line, so an error can name its line (a line is a record in ndjson)
                start = 0
                while (end := piece.find(b"\n", start)) != -1:
                    self._coro.send(piece[start : end + 1])
                    self._drain()
                    self._line += 1
                    start = end + 1
                if start < len(piece):
                    self._coro.send(piece[start:])
            else:
                self._coro.send(piece)
        except BodyError:
            raise
        except Exception as exc:
            raise self._body_error(exc) from None
        self._drain()

    def _body_error(self, exc: Exception) -> BodyError:
        if isinstance(exc, ijson.JSONError):
            # yajl's first line only: the lines after it quote the body (prompt text)
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "malformed JSON"
        elif isinstance(exc, UnicodeError):
            reason = "the body is not UTF-8 text"
        elif isinstance(exc, decimal.DecimalException | ValueError | OverflowError):
            reason = "a number that cannot be read"
        else:
            reason = type(exc).__name__
        if self._object_stream:
            what = "JSON Lines" if self.records else "JSON"
            return BodyError(f"body is not valid {what} at line {self._line}: {reason}")
        return BodyError(f"body is not valid JSON after {len(self.records)} records: {reason}")

    # -- events -----------------------------------------------------------------------
    def _drain(self) -> None:
        # The hot loop: ~850 events per 15 KB record, most of them in skipped subtrees.
        events = self._events
        skip = self._skip
        nesting = _NESTING
        for event, value in events:
            if skip:
                skip += nesting.get(event, 0)
                continue
            if event == "map_key":
                self._key = value
            elif self._depth < self._record_depth:
                self._skip = 0
                self._outside_record(event)
                skip = self._skip
            elif event == "end_map":
                self._depth -= 1
                self._stack.pop()
                if self._depth < self._record_depth:
                    fields, self._current = self._current, None
                    self._add(map_record(fields, self.legacy_timezone))
            else:
                scalar_key, children = self._stack[-1].get(self._key, _NO_NODE)
                if event == "start_map" and children is not None and children is not _KEEP_CONTAINER:
                    self._depth += 1
                    self._stack.append(children)
                elif event == "start_map" or event == "start_array":
                    if children is _KEEP_CONTAINER:
                        self._current[scalar_key] = True
                    skip = 1
                elif scalar_key is not None:
                    self._current[scalar_key] = value
        self._skip = skip
        del events[:]

    def _outside_record(self, event: str) -> None:
        """Events above the records: the body's array, or a record that is not an object."""
        if self._depth == 0 and not self._object_stream:
            self._depth = 1  # the body's `[`
        elif event == "start_map":
            self._depth += 1
            self._stack.append(_ROOT_NODES)
            self._current = {}
        elif event == "end_array":
            self._depth = 0  # the body's `]`
        else:
            self._add({"_invalid": "record is not a JSON object"})
            if event == "start_array":
                self._skip = 1

    def _add(self, record: dict) -> None:
        self.records.append(record)
        if len(self.records) > self.max_records:
            raise TooManyEvents(f"more than {self.max_records} calls in one request")


def parse_litellm_body(body: bytes, *, legacy_timezone: tzinfo = UTC, chunk_size: int = 65536) -> list[dict]:
    """A whole body -> native event dicts (the same stream the webhook reads, fed in chunks)."""
    stream = LiteLLMStream(legacy_timezone=legacy_timezone)
    view = memoryview(body)
    for start in range(0, len(body), chunk_size):
        stream.feed(bytes(view[start : start + chunk_size]))
    return stream.close()


# --------------------------------------------------------------------------- one record


def map_record(rec: dict[str, Any], legacy_timezone: tzinfo = UTC) -> dict:
    """The flat fields kept from one LiteLLM record -> one native event dict."""
    meta_raw = rec.get("metadata")
    legacy = (
        isinstance(meta_raw, str)
        or isinstance(rec.get("usage"), str)
        or ("cost" in rec and "response_cost" not in rec)
    )
    if legacy:
        meta = _legacy_metadata(meta_raw)
        usage = _legacy_usage(rec.get("usage"))
        params = _legacy_dict(rec.get("modelParameters"))
    else:
        meta = {key[9:]: value for key, value in rec.items() if key.startswith("metadata.")}
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
_LEGACY_META_KEYS = (*_META_KEYS, "model_group", "litellm_call_id", "user")
_META_VALUE_RE = {
    key: re.compile(r"""['"]""" + key + r"""['"]\s*:\s*('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|None)""")
    for key in _LEGACY_META_KEYS
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
    """A repr of a dict -> the dict, else the few plain string fields found in it."""
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str) or not raw.strip() or raw.strip() == "None":
        return {}
    parsed = _literal(raw) if raw.lstrip().startswith("{") else None
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


_legacy_metadata = _legacy_dict


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
