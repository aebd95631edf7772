"""LiteLLM generic API logger -> native usage events (SPEC 5, `POST /webhooks/litellm`).

LiteLLM batches 512 calls per POST by default and each `StandardLoggingPayload` is 10-100 KB
(messages, response, a 9 KB model map), so a body can be tens of MiB. `LiteLLMStream` is fed the
body chunk by chunk as it arrives and keeps only the few fields tokenbot maps; messages,
responses and the model map go past the streaming parser (ijson's C backend) without ever
being built. Memory stays flat whatever the body size.

LiteLLM always sends `Content-Type: application/json`, so the first bytes tell the form: `[`
is a JSON array (`json_array`, the default); `{` is one object (`single`) or JSON Lines
(`ndjson`), read alike as a stream of top-level objects. Whether a record is the legacy v1
shape is told per record, from its fields (`bot.sources.litellm_records`).

Nothing is dropped silently: a record that cannot be mapped still yields a dict for the
validator to reject by index; failed calls without tokens come back as `{"_skip": ...}`
(answered as skipped), cache hits are flagged `_cache_hit`.
"""

from __future__ import annotations

import decimal
from datetime import UTC, tzinfo
from typing import Any

import ijson

from bot.sources import BodyError
from bot.sources.json_guard import RUN_BYTES, sanitise
from bot.sources.litellm_records import META_KEYS, map_record
from bot.sources.native import MAX_EVENTS, TooManyEvents

__all__ = ["LITELLM_MAX_BODY_BYTES", "LiteLLMStream", "map_record", "parse_litellm_body"]

LITELLM_MAX_BODY_BYTES = 64 * 1024 * 1024

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
        **{key: f"metadata.{key}" for key in META_KEYS},
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
        self._pending: list[bytes] = []  # a trailing run of RUN_BYTES, held until it ends
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
        kept = len(chunk.rstrip(RUN_BYTES))
        if kept == 0:
            self._pending.append(chunk)
            return
        piece = chunk[:kept]
        if self._pending:
            piece = b"".join(self._pending) + piece
            self._pending = []
        if kept < len(chunk):
            self._pending.append(chunk[kept:])
        self._send(sanitise(piece))

    def close(self) -> list[dict]:
        if self._coro is None:
            rest = self._start(b"".join(self._pending), final=True)
            if rest is None:
                raise BodyError("body is empty: expected a JSON array, JSON Lines or one JSON object")
            self._pending = [rest]
        if self._pending:
            piece = b"".join(self._pending)
            self._pending = []
            self._send(sanitise(piece))
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
