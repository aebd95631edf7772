"""LiteLLM generic API logger -> native usage events (SPEC 5, `POST /webhooks/litellm`).

LiteLLM batches 512 calls per POST by default and each `StandardLoggingPayload` is 10-100 KB
(messages, response, a 9 KB model map), so a body can be tens of MiB. `LiteLLMStream` is fed the
body chunk by chunk as it arrives and keeps only the few fields tokenbot maps
(`bot.sources.litellm_fields`); messages, responses and the model map are never built.

Two readers share that work. The record reader takes each record as it completes in the stream
and decodes it with msgspec, which skips every field tokenbot does not keep in C without
building it: a record costs a few C calls instead of ~850 parse events through Python. It holds
the raw bytes of one unfinished record at most, up to `MAX_RECORD_BYTES` (and the chunk being
read). The event reader (`bot.sources.litellm_events`, ijson) is the reference, memory flat
for any record size. Whatever the record reader does not take as it is (a record over
`MAX_RECORD_BYTES`, a record that is not an object, malformed JSON, bytes that are not UTF-8,
NaN) goes, with the rest of the body, to the event reader from the end of the last record read,
so the answer is the event reader's: the same events, the same errors. A record whose kept
fields have unusual shapes is read again by the event reader on its own. One difference is
kept on purpose: the event reader converts every number it meets, so a number Decimal cannot
read (an exponent past 10**18) fails the whole body there, while the record reader never reads
the numbers it skips.

LiteLLM always sends `Content-Type: application/json`, so the first bytes tell the form: `[`
is a JSON array (`json_array`, the default); `{` is one object (`single`) or JSON Lines
(`ndjson`), read alike as a stream of top-level objects. Whether a record is the legacy v1
shape is told per record, from its fields (`bot.sources.litellm_records`).

Nothing is dropped silently: a record that cannot be mapped still yields a dict for the
validator to reject by index; failed calls without tokens come back as `{"_skip": ...}`
(answered as skipped), cache hits are flagged `_cache_hit`.
"""

from __future__ import annotations

import re
from datetime import UTC, tzinfo

import msgspec

from bot.sources import BodyError
from bot.sources.json_guard import RUN_BYTES, non_finite_to_null, sanitise
from bot.sources.litellm_events import EventReader
from bot.sources.litellm_fields import RAW_DECODER, RECORD_DECODER, flatten
from bot.sources.litellm_records import map_record
from bot.sources.native import MAX_EVENTS, TooManyEvents

__all__ = ["LITELLM_MAX_BODY_BYTES", "MAX_RECORD_BYTES", "LiteLLMStream", "map_record", "parse_litellm_body"]

LITELLM_MAX_BODY_BYTES = 64 * 1024 * 1024
# The most raw bytes of one unfinished record the record reader holds; a longer record goes to
# the event reader, which reads it a slice at a time. LiteLLM's records are 10-100 KB.
MAX_RECORD_BYTES = 1024 * 1024

_WHITESPACE = re.compile(rb"[ \t\n\r]*")  # JSON's, not Python's \s
# msgspec's answers when the bytes after a record start hold more than the record, or less
_TRAILING = re.compile(r"JSON is malformed: trailing characters \(byte (\d+)\)")
_TRUNCATED = "Input data was truncated"
_INCOMPLETE = object()

# Where the record reader stands in the body: the state of the point it would hand over from
# (`_ELEMENT`, after a comma, is only ever passed through).
_OPEN, _FIRST, _AFTER_RECORD, _ELEMENT, _AFTER_ARRAY, _OBJECTS = range(6)
_BRACE, _BRACKET, _CLOSE_BRACKET, _COMMA = b"{[],"


class LiteLLMStream:
    """Feed a LiteLLM body chunk by chunk; `close()` returns the native event dicts, in order.

    Raises BodyError when the body is not a JSON array / JSON Lines / one object, and
    TooManyEvents as soon as it holds more than `max_records` records. `record_reader=False`
    reads everything with the event reader (the reference the tests compare against).
    """

    def __init__(self, *, legacy_timezone: tzinfo = UTC, max_records: int = MAX_EVENTS,
                 record_reader: bool = True) -> None:
        self.legacy_timezone = legacy_timezone
        self.max_records = max_records
        self.records: list[dict] = []
        self.reread = 0  # records the event reader read again on their own (unusual shapes)
        self.handed_over = False  # the rest of the body went to the event reader
        self._record_reader = record_reader
        self._started = False
        self._object_stream = False  # `{`: one object or JSON Lines; `[`: a JSON array
        self._line = 1  # the line the hand-over point is on
        self._pending: list[bytes] = []  # a trailing run of RUN_BYTES, held until it ends
        self._reader: EventReader | None = None
        self._buf = bytearray()  # from the hand-over point: what the record reader has not read
        self._state = _OPEN  # the state at the hand-over point (the start of _buf)
        self._retry_at = 0  # len(_buf) at which an unfinished record is looked at again

    # -- input ------------------------------------------------------------------------
    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        if not self._started:
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
        self._take(piece)

    def close(self) -> list[dict]:
        if not self._started:
            rest = self._start(b"".join(self._pending), final=True)
            if rest is None:
                raise BodyError("body is empty: expected a JSON array, JSON Lines or one JSON object")
            self._pending = [rest]
        if self._pending:
            piece = b"".join(self._pending)
            self._pending = []
            self._take(piece)
        if self._reader is None:
            self._split(final=True)
        if self._reader is not None:
            self._reader.close()
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
            self._object_stream, self._state = False, _OPEN
        elif first == b"{":
            self._object_stream, self._state = True, _OBJECTS
        else:
            raise BodyError("body is not a JSON array, JSON Lines or one JSON object (it must start with [ or {)")
        self._started = True
        if not self._record_reader:
            self._reader = self._event_reader()
        return stripped

    def _take(self, piece: bytes) -> None:
        """A piece of body that ends where no guarded sequence can be split (RUN_BYTES)."""
        if not piece:
            return
        if self._reader is not None:
            self._reader.send(sanitise(piece))
            return
        # msgspec refuses NaN and Infinity: a record holding one goes to the event reader, and
        # only then are they rewritten (see _hand_over), so the common case never searches for them
        piece = sanitise(piece, non_finite=False)
        if not piece.isascii():
            try:
                piece.decode("utf-8")  # a piece never ends inside a character (RUN_BYTES)
            except UnicodeDecodeError:
                self._hand_over()  # the event reader names the error
                self._reader.send(non_finite_to_null(piece))
                return
        self._buf += piece
        if len(self._buf) >= self._retry_at:
            self._split(final=False)

    # -- the record reader --------------------------------------------------------------
    def _split(self, *, final: bool) -> None:
        """Read every record complete in _buf; keep the rest (an unfinished record) for later."""
        buf = self._buf
        size = len(buf)
        state = self._state
        handover = scan = 0  # the hand-over point; where the scan is
        while True:
            scan = _WHITESPACE.match(buf, scan).end()
            if scan == size:
                break
            byte = buf[scan]
            if state == _OPEN and byte == _BRACKET:
                state, scan = _FIRST, scan + 1
                continue
            if state == _AFTER_RECORD and byte == _COMMA:
                state, scan = _ELEMENT, scan + 1
                continue
            if byte == _CLOSE_BRACKET and state in (_FIRST, _AFTER_RECORD):
                state, scan = _AFTER_ARRAY, scan + 1
                handover = self._advance(handover, scan, state)
                continue
            if byte != _BRACE or state not in (_FIRST, _ELEMENT, _OBJECTS):
                return self._hand_over(handover)  # not a record where one may start: the event reader's
            end = self._record_end(scan)
            if end is _INCOMPLETE:
                if final or size - handover > MAX_RECORD_BYTES:
                    return self._hand_over(handover)
                break
            if end is None or not self._read_record(bytes(buf[scan:end])):
                return self._hand_over(handover)
            state = _OBJECTS if self._object_stream else _AFTER_RECORD
            scan = end
            handover = self._advance(handover, scan, state)
        if final and state not in (_AFTER_ARRAY, _OBJECTS):
            return self._hand_over(handover)  # the array never closed
        del buf[:handover]
        # look at an unfinished record again when it has doubled (each byte is read a few times at
        # most, however small the chunks), and as soon as it outgrows MAX_RECORD_BYTES
        self._retry_at = min(2 * len(buf), MAX_RECORD_BYTES + 1)

    def _advance(self, handover: int, to: int, state: int) -> int:
        """Move the hand-over point to `to`, whose state is `state`."""
        if self._object_stream:  # JSON Lines errors name their line
            self._line += self._buf.count(b"\n", handover, to)
        self._state = state
        return to

    def _record_end(self, start: int) -> object:
        """Where the record starting at `start` ends: an offset, _INCOMPLETE, or None (malformed)."""
        with memoryview(self._buf) as view:
            rest = view[start:]
            try:
                RAW_DECODER.decode(rest)  # validates it, builds nothing
            except msgspec.DecodeError as exc:
                text = str(exc)
                if text == _TRUNCATED:
                    return _INCOMPLETE
                match = _TRAILING.fullmatch(text)
                # msgspec counts the first byte after the record from 1
                end = start + int(match[1]) - 1 if match else -1
                return end if start < end < len(view) and view[end] not in b" \t\n\r" else None
            finally:
                rest.release()
            return len(view)  # the record ends at the end of what has arrived

    def _read_record(self, data: bytes) -> bool:
        """One whole record -> self.records; False when the event reader must have it and what follows."""
        try:
            fields = flatten(RECORD_DECODER.decode(data))
        except msgspec.ValidationError:
            fields = self._reread(data)  # kept fields of unusual shapes
            if fields is None:
                return False
        except (msgspec.DecodeError, UnicodeError, ArithmeticError, ValueError):
            return False  # the event reader's answer, whatever it is (the guards leave none of these)
        self._add(map_record(fields, self.legacy_timezone))
        return True

    def _reread(self, data: bytes) -> dict | None:
        found: list[dict | None] = []
        reader = EventReader(object_stream=False, on_record=found.append, count=lambda: 0)
        try:
            reader.send(b"[" + data + b"]")
            reader.close()
        except BodyError:
            return None
        if len(found) != 1 or found[0] is None:
            return None
        self.reread += 1
        return found[0]

    # -- the event reader ---------------------------------------------------------------
    def _event_reader(self, *, after_record: bool = False) -> EventReader:
        return EventReader(object_stream=self._object_stream, on_record=self._on_fields,
                           count=lambda: len(self.records), line=self._line, after_record=after_record)

    def _hand_over(self, handover: int = 0) -> None:
        """The rest of the body, from the hand-over point, goes to the event reader."""
        self.handed_over = True
        self._reader = self._event_reader(after_record=self._state == _AFTER_RECORD)
        if self._state == _AFTER_ARRAY:
            self._reader.send(b"[]")
        rest = non_finite_to_null(bytes(self._buf[handover:]))  # _buf starts where no guarded sequence can
        self._buf = bytearray()
        self._reader.send(rest)

    def _on_fields(self, fields: dict | None) -> None:
        if fields is None:
            self._add({"_invalid": "record is not a JSON object"})
        else:
            self._add(map_record(fields, self.legacy_timezone))

    def _add(self, record: dict) -> None:
        self.records.append(record)
        if len(self.records) > self.max_records:
            raise TooManyEvents(f"more than {self.max_records} calls in one request")


def parse_litellm_body(body: bytes, *, legacy_timezone: tzinfo = UTC, chunk_size: int = 65536,
                       record_reader: bool = True) -> list[dict]:
    """A whole body -> native event dicts (the same stream the webhook reads, fed in chunks)."""
    stream = LiteLLMStream(legacy_timezone=legacy_timezone, record_reader=record_reader)
    view = memoryview(body)
    for start in range(0, len(body), chunk_size):
        stream.feed(bytes(view[start : start + chunk_size]))
    return stream.close()
