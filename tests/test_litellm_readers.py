"""The two readers of a LiteLLM body (SPEC 5): the record reader (msgspec) gives exactly what the
event reader (ijson, the reference) gives, takes real batches itself, hands the rest of a body
over when it must, and neither ever builds a subtree tokenbot does not keep.
"""

from __future__ import annotations

import copy
import gc
import json
import re
import tracemalloc
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bot.sources import BodyError, json_guard, litellm
from bot.sources.litellm import MAX_RECORD_BYTES, LiteLLMStream, parse_litellm_body
from bot.sources.litellm_fields import DECIMAL_LEAVES, ROOT_NODES, Node
from bot.sources.native import TooManyEvents

EXAMPLES = Path(__file__).resolve().parent / "data" / "litellm"
PROXY_BATCH = json.loads((EXAMPLES / "litellm-1.110-proxy-batch.json").read_text())
LEGACY_BATCH = json.loads((EXAMPLES / "litellm-1.110-legacy-v1.json").read_text())


def read(body: bytes, *, chunk_size: int = 65536, record_reader: bool = True, max_records: int = 10_000):
    """(canonical events or the error, the stream) for one body read in chunks."""
    stream = LiteLLMStream(record_reader=record_reader, max_records=max_records)
    try:
        for start in range(0, len(body), chunk_size):
            stream.feed(body[start : start + chunk_size])
        return canonical(stream.close()), stream
    except (BodyError, TooManyEvents) as exc:
        return f"{type(exc).__name__}: {exc}", stream


def canonical(value):
    """Types and exact digits matter: Decimal('1.0'), Decimal('1') and 1 are three answers."""
    if isinstance(value, dict):
        return tuple(sorted((key, canonical(item)) for key, item in value.items()))
    if isinstance(value, list):
        return tuple(canonical(item) for item in value)
    return type(value).__name__, repr(value)


def assert_same(body: bytes, chunk_size: int = 65536) -> LiteLLMStream:
    fast, stream = read(body, chunk_size=chunk_size)
    reference, _ = read(body, chunk_size=chunk_size, record_reader=False)
    assert fast == reference
    return stream


def proxy_call(n: int, **changes) -> dict:
    rec = copy.deepcopy(PROXY_BATCH[n % len(PROXY_BATCH)])
    rec["litellm_call_id"] = f"call-{n}"
    rec.update(changes)
    return rec


# --------------------------------------------------------------------------- real batches


@pytest.mark.parametrize("chunk_size", [1000, 65536, 256 * 1024])
def test_real_batches_are_read_by_the_record_reader_and_agree_with_the_event_reader(chunk_size):
    """If msgspec ever changes the answers the record reader relies on, this fails instead of
    every batch silently going the slow way."""
    for records in (PROXY_BATCH, LEGACY_BATCH, PROXY_BATCH + LEGACY_BATCH):
        for body in (json.dumps(records).encode(), "\n".join(json.dumps(r) for r in records).encode()):
            stream = assert_same(body, chunk_size)
            assert (stream.handed_over, stream.reread) == (False, 0)
            assert len(stream.records) == len(records)


def test_a_record_over_the_limit_goes_with_the_rest_to_the_event_reader():
    big = proxy_call(1, messages=[{"role": "user", "content": "x" * 1000}] * (MAX_RECORD_BYTES // 1000 + 10))
    records = [proxy_call(0), big, proxy_call(2)]
    for body in (json.dumps(records).encode(), "\n".join(json.dumps(r) for r in records).encode()):
        stream = assert_same(body)
        assert stream.handed_over
        assert [r["id"] for r in stream.records] == ["call-0", "call-1", "call-2"]


def test_a_record_with_kept_fields_of_unusual_shapes_is_read_again_alone():
    odd = proxy_call(1, prompt_tokens=12.0, response=[1, 2], metadata={"user_api_key_user_id": ["x"]})
    stream = assert_same(json.dumps([proxy_call(0), odd, proxy_call(2)]).encode())
    assert (stream.handed_over, stream.reread) == (False, 1)
    assert stream.records[1]["input_tokens"] == Decimal("12.0")  # as sent: validation refuses it


@pytest.mark.parametrize("body", [
    b'[{"id": "a"}, {"id": "b", "response_cost": NaN}, {"id": "c"}]',
    b'[{"id": "a"}, {"id": "b"} {"id": "c"}]',
    b'[{"id": "a"}, {"id": "b"},]',
    b'[{"id": "a"}, 7, [1, {"b": 2}], "x", null, {"id": "c"}]',
    b'[{"id": "a"}] trailing',
    b'[{"id": "a"}, {"id": "b"}',
    b'[{"id": "a"}, {"id": "b"',
    b'[{"id": "a"}, {"id": "\xff"}]',
    b'[{"id": "a", "messages": "\xc0\xaf"}]',
    b'[{"id": "a"}, {"id": 01}]',
    b'{"id": "a"}\n{"id": oops}\n{"id": "c"}',
    b'{"id": "a"}\n\n7\n{"id": "c"}\n',
    b'{"id": "a"}{"id": "b"}',
    b'{"id": "a"}\n{"id": "b", "messages": [\n',
    b'{"id": "a", "x": "tab\there"}',
    b'{"id": "a", "startTime": 5, "startTime": {"x": 1}, "metadata": {"team_id": "t"}, "metadata": "str"}',
    b'{"id": "a", "response_cost_failure_debug_info": {}, "response_cost_failure_debug_info": null}',
])
def test_odd_bodies_get_the_event_readers_answer(body):
    for chunk_size in (1, 5, 64, len(body)):
        assert_same(body, chunk_size)


# --------------------------------------------------------------------------- any body at all

_OTHER_KEYS = ["messages", "hidden_params", "x", "", "a.b", "metadata.team_id"]  # never kept
_NUMBER_TEXT = st.sampled_from(["0", "-0", "7", "1.5", "0.1", "1e5", "-2.5E-3", "1.0", "12345678901234567890123",
                                "9" * 310, "1e" + "9" * 305, "0." + "3" * 320, "NaN", "-Infinity", "Infinity"])


def _text(value: str) -> st.SearchStrategy[str]:
    return st.sampled_from([json.dumps(value), json.dumps(value, ensure_ascii=False)])


_STRINGS = st.one_of(
    st.text(max_size=12).flatmap(_text),
    st.sampled_from(['"\\ud800"', '"a\\udc00b"', '"\\ud83d\\ude00"', '"\\\\ud800"', '"None"', '""', '" 42 "',
                     '"2025-01-24 09:20:46.5"', '"1737710446.5"', '"sk-secret"', '"default_user_id"', '"failure"',
                     '"x\\u0000y"', '"{\'user_api_key_user_id\': \'U1\', \'team_alias\': None}"',
                     '"prompt_tokens=12 completion_tokens=3"']),
)
_TEXTS = st.one_of(st.sampled_from(["null", "true", "false"]), st.integers(-5, 10**25).map(str), _STRINGS)
_SCALARS = st.one_of(_TEXTS, _NUMBER_TEXT)
_ANY = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(lambda items: "[" + ",".join(items) + "]"),
        st.lists(st.tuples(st.sampled_from(["x", "usage", "user"]).map(json.dumps), children), max_size=4)
        .map(lambda pairs: "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"),
    ),
    max_leaves=10,
)


def _object(nodes: dict[str, Node]) -> st.SearchStrategy[str]:
    """An object of kept keys (sometimes twice) and others, its values mostly of the shapes LiteLLM
    sends, so that most records are the record reader's, and now and then anything at all."""
    def value(node: Node | None) -> st.SearchStrategy[str]:
        if node is None:
            return _ANY
        if node.children is None:
            usual = _SCALARS if node.keep or node.flat in DECIMAL_LEAVES else _TEXTS
        else:
            usual = st.one_of(_object(node.children), _TEXTS)
        return st.one_of(usual, usual, usual, _ANY)

    keys = sorted(nodes) * 3 + _OTHER_KEYS  # kept keys mostly, so some come twice
    pair = st.sampled_from(keys).flatmap(lambda key: value(nodes.get(key)).map(lambda v: f"{json.dumps(key)}: {v}"))
    return st.lists(pair, max_size=8).map(lambda pairs: "{" + ", ".join(pairs) + "}")


_RECORDS = st.one_of(*[_object(ROOT_NODES)] * 8, _ANY)


@st.composite
def bodies(draw) -> bytes:
    records = draw(st.lists(_RECORDS, max_size=5))
    form = draw(st.sampled_from(["array", "lines", "single"]))
    space = draw(st.sampled_from(["", " ", "\n", " \r\n\t"]))
    if form == "array":
        text = "[" + space + ("," + space).join(records) + space + "]"
    elif form == "lines" or not records:
        text = "\n".join(records) + space
    else:
        text = records[0] + space
    body = text.encode("utf-8", "surrogatepass")
    damage = draw(st.sampled_from(["none"] * 6 + ["cut", "byte"]))
    if damage != "none" and body:
        at = draw(st.integers(0, len(body) - 1))
        extra = draw(st.sampled_from([b"\xff", b"}", b",", b"\x01"]))
        body = body[:at] if damage == "cut" else body[:at] + extra + body[at:]
    return body


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies(), chunk_size=st.sampled_from([1, 3, 17, 256, 65536]))
def test_any_body_gets_the_same_fields_or_the_same_error_from_both_readers(body, chunk_size):
    with pytest.MonkeyPatch.context() as patch:
        # the readers' own answer, each record's flat fields, before the shared mapping can hide a difference
        patch.setattr(litellm, "map_record", lambda fields, timezone: fields)
        fast, stream = read(body, chunk_size=chunk_size, max_records=4)
        reference, _ = read(body, chunk_size=chunk_size, record_reader=False, max_records=4)
    assert fast == reference
    event(f"record reader: {len(stream.records) - stream.reread} of {len(stream.records)} records"
          if not stream.handed_over else "handed over")


# --------------------------------------------------------------------------- nothing skipped is built


def _peak_while_reading(body: bytes, *, record_reader: bool = True) -> tuple[int, LiteLLMStream]:
    chunk_size = 256 * 1024  # what the webhook reads at a time
    gc.collect()
    tracemalloc.start()
    try:
        stream = LiteLLMStream(record_reader=record_reader)
        for start in range(0, len(body), chunk_size):
            stream.feed(body[start : start + chunk_size])
        stream.close()
        return tracemalloc.get_traced_memory()[1], stream
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("record_reader", [True, False])
def test_messages_and_responses_are_never_built(record_reader):
    """Built as Python objects, these `{}`s would take ~25x their bytes (a dict is 64 bytes). Read,
    everything allocated at once stays within a few MiB: one unfinished record's raw bytes for the
    record reader; one 256 KiB chunk and the parse events of 64 KiB of it for the event reader."""
    empties = "[" + ",".join(["{}"] * (MAX_RECORD_BYTES * 3 // 4 // 6)) + "]"  # half in messages, half in choices
    text = json.dumps([proxy_call(0, messages="MESSAGES", response="RESPONSE"), proxy_call(1)])
    body = text.replace('"MESSAGES"', empties).replace(
        '"RESPONSE"', f'{{"usage": {{"prompt_tokens": 5}}, "choices": {empties}}}').encode()
    peak, stream = _peak_while_reading(body, record_reader=record_reader)
    assert not stream.handed_over and not stream.reread
    assert [r["id"] for r in stream.records] == ["call-0", "call-1"]
    assert stream.records[0]["input_tokens"] == 10  # the record's own prompt_tokens, not response.usage
    assert peak < 5 * 1024 * 1024, f"{peak:,} bytes allocated reading {len(body):,}"


# --------------------------------------------------------------------------- the guards both readers rely on


@settings(max_examples=300, deadline=None)
@given(runs=st.lists(st.tuples(st.integers(0, 700), st.sampled_from([b" ", b"e", b".", b"-", b'"', b"x"])),
                     max_size=8), offset=st.integers(0, 149))
def test_the_long_digit_precheck_never_misses_a_run(runs, offset):
    piece = b"x" * offset + b"".join(b"7" * length + sep for length, sep in runs)
    if re.search(rb"\d{300}", piece):
        assert json_guard._may_hold_long_digits(piece)


def test_a_huge_integer_does_not_crash_either_reader():
    # ijson's C backend dereferences NULL on integers past 4300 digits: the guard must reach it
    text = json.dumps([proxy_call(0, hidden_params={"huge": "HUGE", "tiny": "TINY"}), proxy_call(1)])
    body = text.replace('"HUGE"', "-" + "7" * 5000).replace('"TINY"', "1e-" + "9" * 400).encode()
    for record_reader in (True, False):
        for chunk_size in (997, 65536):
            events = [e["id"] for e in parse_litellm_body(body, chunk_size=chunk_size, record_reader=record_reader)]
            assert events == ["call-0", "call-1"]


def test_a_number_decimal_cannot_read_fails_the_body_only_where_it_is_read():
    # Decimal refuses an exponent past 10**18. The event reader converts every number, so anywhere
    # in the body it is a 400; the record reader never reads numbers it skips, so there it costs
    # nothing, and in a kept field it hands the body over and the answer is the event reader's.
    exponent = "12e" + "9" * 20
    skipped = json.dumps([proxy_call(0, hidden_params={"x": "EXP"}), proxy_call(1)]).replace('"EXP"', exponent)
    assert [e["id"] for e in parse_litellm_body(skipped.encode())] == ["call-0", "call-1"]
    with pytest.raises(BodyError, match="a number that cannot be read"):
        parse_litellm_body(skipped.encode(), record_reader=False)
    kept = json.dumps([proxy_call(0), proxy_call(1, startTime="EXP")]).replace('"EXP"', exponent)
    for record_reader in (True, False):
        with pytest.raises(BodyError, match="after 1 records: a number that cannot be read"):
            parse_litellm_body(kept.encode(), record_reader=record_reader)
