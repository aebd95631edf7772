"""The event reader: LiteLLM records read from ijson's parse events, any size, memory flat.

The reference reading of a LiteLLM body (`bot.sources.litellm` uses the faster record reader
where it can and hands the rest of a body over to this one). ijson's C backend (yajl) turns the
bytes into events; a small state machine keeps the paths of `bot.sources.litellm_fields.TREE`
and counts its way past every other subtree, so messages, responses and the model map are never
built, however large they are: only their scalars pass by, one event each, 64 KiB of body at a
time (yajl does hand over each string whole, so one string longer than that is held while it
passes). A key sent twice in one record: the last one counts, wholesale, as in the record reader.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable
from typing import Any

import ijson

from bot.sources import BodyError
from bot.sources.litellm_fields import ROOT_NODES, Node

__all__ = ["EventReader"]

_NESTING = {"start_map": 1, "start_array": 1, "end_map": -1, "end_array": -1}
_SLICE = 64 * 1024  # a slice of `{},{},...` is ~45x its size in events


class EventReader:
    """Pieces of (guarded) body in; each record's flat fields out through `on_record`.

    `on_record(fields)` gets the flat dict of one record, or None for a record that is not a JSON
    object. `count()` is how many records the body has given so far (for error messages);
    `line` is the line the first piece starts on (JSON Lines errors name their line).
    `after_record` starts a JSON array just after one of its records: the reader is primed with
    `[{}` and that placeholder record is dropped, so what follows (`, {...}`, `]`...) is read
    exactly as in the whole body.
    """

    def __init__(self, *, object_stream: bool, on_record: Callable[[dict | None], None],
                 count: Callable[[], int], line: int = 1, after_record: bool = False) -> None:
        self.object_stream = object_stream
        self.line = line
        self._on_record = on_record
        self._count = count
        self._events = ijson.sendable_list()
        self._coro = ijson.basic_parse_coro(self._events, use_float=False, multiple_values=object_stream)
        # where the parser is: depth 0 is the top level; records sit at _record_depth
        self._record_depth = 1 if object_stream else 2
        self._depth = 0
        self._skip = 0  # > 0: inside a subtree that is not kept
        self._stack: list[dict[str, Node]] = []
        self._key: str | None = None
        self._current: dict[str, Any] | None = None
        self._drop = False
        if after_record:
            self._drop = True
            self.send(b"[{}")

    def send(self, piece: bytes) -> None:
        try:
            # one send per line, so an error can name its line (a line is a record in ndjson), and
            # at most _SLICE bytes at a time: the events of one send are held until drained
            newline = b"\n" if self.object_stream else None
            start = 0
            while start < len(piece):
                end = min(start + _SLICE, len(piece))
                if newline is not None and (found := piece.find(newline, start, end)) != -1:
                    end = found + 1
                self._coro.send(piece[start:end])
                self._drain()
                if piece[end - 1 : end] == newline:
                    self.line += 1
                start = end
        except BodyError:
            raise
        except Exception as exc:
            raise self._failed(exc) from None

    def close(self) -> None:
        try:
            self._coro.close()
        except Exception as exc:
            raise self._failed(exc) from None
        self._drain()
        if self._depth or self._current is not None:
            raise BodyError(f"body is not valid JSON: it ends inside record {self._count()}")

    def _failed(self, exc: Exception) -> BodyError:
        # the records before the error count, however the body was cut into pieces
        self._drain()
        return self._body_error(exc)

    def _body_error(self, exc: Exception) -> BodyError:
        if isinstance(exc, ijson.JSONError):
            # yajl's first line only: the lines after it quote the body (prompt text)
            message = exc.args[0] if exc.args else ""
            if isinstance(message, bytes):
                message = message.decode("utf-8", "replace")
            lines = str(message).strip().splitlines()
            reason = lines[0] if lines else "malformed JSON"
        elif isinstance(exc, UnicodeError):
            reason = "the body is not UTF-8 text"
        elif isinstance(exc, decimal.DecimalException | ValueError | OverflowError):
            reason = "a number that cannot be read"
        else:
            reason = type(exc).__name__
        if self.object_stream:
            what = "JSON Lines" if self._count() else "JSON"
            return BodyError(f"body is not valid {what} at line {self.line}: {reason}")
        return BodyError(f"body is not valid JSON after {self._count()} records: {reason}")

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
                    self._emit(fields)
            else:
                node = self._stack[-1].get(self._key)
                if node is None:
                    if event == "start_map" or event == "start_array":
                        skip = 1
                    continue
                current = self._current
                for key in node.owned:  # the last occurrence of a key counts, wholesale
                    current.pop(key, None)
                if event == "start_map" and node.children is not None:
                    self._depth += 1
                    self._stack.append(node.children)
                elif event == "start_map" or event == "start_array":
                    if node.keep:
                        current[node.flat] = True
                    skip = 1
                elif node.flat is not None:
                    current[node.flat] = value
        self._skip = skip
        del events[:]

    def _outside_record(self, event: str) -> None:
        """Events above the records: the body's array, or a record that is not an object."""
        if self._depth == 0 and not self.object_stream:
            self._depth = 1  # the body's `[`
        elif event == "start_map":
            self._depth += 1
            self._stack.append(ROOT_NODES)
            self._current = {}
        elif event == "end_array":
            self._depth = 0  # the body's `]`
        else:
            self._emit(None)
            if event == "start_array":
                self._skip = 1

    def _emit(self, fields: dict | None) -> None:
        if self._drop:
            self._drop = False  # the placeholder that primed the reader
            return
        self._on_record(fields)
