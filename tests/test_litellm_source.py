"""LiteLLM generic API logger adapter (SPEC 5): body forms, both record shapes, field mapping."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from bot.sources import BodyError
from bot.sources.litellm import parse_litellm_body

EXAMPLES = Path(__file__).resolve().parent / "data" / "litellm"
STANDARD_FILE = EXAMPLES / "standard_logging_payload.json"
LEGACY_FILE = EXAMPLES / "legacy_v1_batch.json"

PYDANTIC_USAGE = (
    "completion_tokens=212 prompt_tokens=1830 total_tokens=2042 "
    "completion_tokens_details=CompletionTokensDetailsWrapper(accepted_prediction_tokens=None, "
    "audio_tokens=None, reasoning_tokens=0, rejected_prediction_tokens=None, text_tokens=None) "
    "prompt_tokens_details=PromptTokensDetailsWrapper(audio_tokens=None, cached_tokens=0, "
    "text_tokens=None, image_tokens=None)"
)
NATIVE_KEYS = {
    "id",
    "timestamp",
    "user",
    "model",
    "provider",
    "team",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "cost_usd",
    "metadata",
}


def _standard() -> dict:
    return json.loads(STANDARD_FILE.read_text())


def _legacy() -> dict:
    return json.loads(LEGACY_FILE.read_text())[0]


def _one(record: dict) -> dict:
    events = parse_litellm_body(json.dumps(record).encode())
    assert len(events) == 1
    return events[0]


def _minimal(**fields) -> dict:
    rec = {
        "id": "call-1",
        "startTime": 1737710446.847371,
        "model": "gpt-4o",
        "prompt_tokens": 10,
        "completion_tokens": 20,
        "response_cost": 0.001,
        "metadata": {},
    }
    rec.update(fields)
    return rec


# --------------------------------------------------------------------------- sample files


def test_standard_sample_file():
    events = parse_litellm_body(STANDARD_FILE.read_bytes())
    assert len(events) == 1
    ev = events[0]
    assert set(ev) <= NATIVE_KEYS
    assert ev["id"] == "chatcmpl-2299b6a2-82a3-465a-b47c-04e685a2227f"
    assert ev["user"] == "unattributed"  # every user field is null or empty
    assert ev["model"] == "gpt-4o"  # model_group is ""
    assert ev["provider"] == "openai"
    assert ev["timestamp"] == "2025-01-24T09:20:46.847371+00:00"
    assert ev["cost_usd"] == Decimal("0.00022500000000000002")
    assert isinstance(ev["cost_usd"], Decimal)
    assert ev["input_tokens"] == 10
    assert ev["output_tokens"] == 20
    assert "team" not in ev
    assert "cached_input_tokens" not in ev  # prompt_tokens_details is null
    assert "reasoning_tokens" not in ev
    assert ev["metadata"] == {
        "source": "litellm",
        "call_type": "acompletion",
        "status": "success",
        "attributed_by": "unattributed",
    }


def test_standard_sample_as_array():
    body = b"[" + STANDARD_FILE.read_bytes() + b"]"
    assert parse_litellm_body(body) == parse_litellm_body(STANDARD_FILE.read_bytes())


def test_legacy_sample_file():
    events = parse_litellm_body(LEGACY_FILE.read_bytes())
    assert len(events) == 1
    ev = events[0]
    assert set(ev) <= NATIVE_KEYS
    assert ev["id"] == "chatcmpl-7f3c2a90e1b84d6f9a51c0d2"
    assert ev["user"] == "alice@acme.test"
    assert ev["team"] == "research"
    assert ev["model"] == "gpt-4o-mini"
    assert ev["input_tokens"] == 1830
    assert ev["output_tokens"] == 212
    assert ev["cost_usd"] == Decimal("0.0004017")
    assert isinstance(ev["cost_usd"], Decimal)
    assert ev["timestamp"] == "2026-11-20T14:03:11.482911+00:00"
    assert ev["metadata"] == {
        "source": "litellm",
        "call_type": "acompletion",
        "key_alias": "ml-team-key",
        "key_hash_prefix": "88dc28d0f030",
        "team_id": "team-research",
        "attributed_by": "user_api_key_user_id",
    }


def test_no_content_leaks_into_events():
    for path in (STANDARD_FILE, LEGACY_FILE):
        dumped = repr(parse_litellm_body(path.read_bytes()))
        assert "Hello, world!" not in dumped
        assert "summarise this thread" not in dumped
        assert "10.0.3.17" not in dumped


# --------------------------------------------------------------------------- body forms


def test_json_array_ndjson_and_single_agree():
    records = [_minimal(id=f"call-{i}") for i in range(3)]
    as_array = parse_litellm_body(json.dumps(records).encode())
    as_ndjson = parse_litellm_body("\n".join(json.dumps(r) for r in records).encode())
    assert [e["id"] for e in as_array] == ["call-0", "call-1", "call-2"]
    assert as_ndjson == as_array
    single = parse_litellm_body(json.dumps(records[1]).encode())
    assert single == [as_array[1]]


def test_ndjson_blank_lines_crlf_and_trailing_newline():
    lines = [json.dumps(_minimal(id="a")), "", "   ", json.dumps(_minimal(id="b")), ""]
    events = parse_litellm_body("\r\n".join(lines).encode() + b"\n\n")
    assert [e["id"] for e in events] == ["a", "b"]


def test_single_ndjson_line_is_a_single_object():
    events = parse_litellm_body(json.dumps(_minimal()).encode() + b"\n")
    assert [e["id"] for e in events] == ["call-1"]


def test_empty_array_gives_no_events():
    assert parse_litellm_body(b"[]") == []


def test_utf8_bom_is_accepted():
    events = parse_litellm_body(b"\xef\xbb\xbf" + json.dumps([_minimal()]).encode())
    assert events[0]["id"] == "call-1"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   \n  ",
        b"not json at all",
        b"<html>502 Bad Gateway</html>",
        b'{"id": "a"',
        b'{"id": "a"}\n{"id": ',
        b'{"id": "a"}\nnot json',
        b"\xff\xfe\x00garbage",
        b"42",
        b'"a string"',
        b"null",
    ],
)
def test_garbage_body_raises_body_error(body):
    with pytest.raises(BodyError) as info:
        parse_litellm_body(body)
    assert str(info.value)


def test_body_error_names_the_line():
    with pytest.raises(BodyError, match="line 2"):
        parse_litellm_body(b'{"id": "a"}\n{"id": oops}\n')


def test_non_object_records_become_invalid_markers():
    body = json.dumps([_minimal(id="ok"), 1, "x", None, [1, 2]]).encode()
    events = parse_litellm_body(body)
    assert events[0]["id"] == "ok"
    assert events[1:] == [{"_invalid": "record is not a JSON object"}] * 4


def test_non_object_ndjson_line_becomes_invalid_marker():
    body = json.dumps(_minimal()).encode() + b"\n7\n"
    events = parse_litellm_body(body)
    assert events[1] == {"_invalid": "record is not a JSON object"}


def test_array_of_numbers_is_not_a_body_error():
    assert parse_litellm_body(b"[1, 2.5]") == [{"_invalid": "record is not a JSON object"}] * 2


# --------------------------------------------------------------------------- standard mapping


def test_id_falls_back_to_call_id_then_trace_id_then_absent():
    rec = _minimal(id=None, call_id="cid", trace_id="tid")
    assert _one(rec)["id"] == "cid"
    rec = _minimal(id="", call_id=None, trace_id="tid")
    assert _one(rec)["id"] == "tid"
    rec = _minimal()
    del rec["id"]
    assert "id" not in _one(rec)


def test_epoch_float_start_time_is_kept_as_a_number():
    ev = _one(_minimal(startTime=1737710446.847371))
    assert ev["timestamp"] == Decimal("1737710446.847371")
    assert _one(_minimal(startTime=1737710446))["timestamp"] == 1737710446


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2025-01-24 09:20:46.847371", "2025-01-24T09:20:46.847371+00:00"),
        ("2025-01-24 09:20:46", "2025-01-24T09:20:46+00:00"),
        ("2025-01-24T09:20:46.5", "2025-01-24T09:20:46.500000+00:00"),
        ("2025-01-24 11:20:46.847371+02:00", "2025-01-24T09:20:46.847371+00:00"),
        ("2025-01-24T09:20:46Z", "2025-01-24T09:20:46+00:00"),
    ],
)
def test_datetime_start_time_becomes_rfc3339_utc(raw, expected):
    assert _one(_minimal(startTime=raw))["timestamp"] == expected


def test_bad_or_missing_start_time():
    assert _one(_minimal(startTime="yesterday"))["timestamp"] == "yesterday"  # validation rejects
    rec = _minimal()
    del rec["startTime"]
    assert "timestamp" not in _one(rec)
    assert "timestamp" not in _one(_minimal(startTime=None))


def test_model_group_wins_over_model_when_set():
    assert _one(_minimal(model_group="prod-gpt", model="azure/gpt-4o-deploy"))["model"] == "prod-gpt"
    assert _one(_minimal(model_group="", model="gpt-4o"))["model"] == "gpt-4o"
    assert _one(_minimal(model_group=None, model="gpt-4o"))["model"] == "gpt-4o"


def test_provider_only_when_present():
    assert _one(_minimal(custom_llm_provider="anthropic"))["provider"] == "anthropic"
    assert "provider" not in _one(_minimal())
    assert "provider" not in _one(_minimal(custom_llm_provider=""))


def test_team_prefers_alias_then_id():
    meta = {"user_api_key_team_id": "t-1", "user_api_key_team_alias": "Research"}
    ev = _one(_minimal(metadata=meta))
    assert ev["team"] == "Research"
    assert ev["metadata"]["team_id"] == "t-1"
    ev = _one(_minimal(metadata={"user_api_key_team_id": "t-1", "user_api_key_team_alias": None}))
    assert ev["team"] == "t-1"
    assert "team" not in _one(_minimal(metadata={"user_api_key_team_id": None}))


FULL_META = {
    "user_api_key_user_id": "U123",
    "user_api_key_user_email": "bob@acme.test",
    "user_api_key_alias": "bob-laptop",
    "user_api_key_hash": "0123456789abcdef0123456789abcdef",
}


@pytest.mark.parametrize(
    ("cleared", "end_user", "user", "attributed_by"),
    [
        ((), "eu-1", "U123", "user_api_key_user_id"),
        (("user_api_key_user_id",), "eu-1", "bob@acme.test", "user_api_key_user_email"),
        (("user_api_key_user_id", "user_api_key_user_email"), "eu-1", "eu-1", "end_user"),
        (
            ("user_api_key_user_id", "user_api_key_user_email"),
            "",
            "bob-laptop",
            "user_api_key_alias",
        ),
        (
            ("user_api_key_user_id", "user_api_key_user_email", "user_api_key_alias"),
            None,
            "0123456789abcdef0123456789abcdef",
            "user_api_key_hash",
        ),
        (tuple(FULL_META), "", "unattributed", "unattributed"),
    ],
)
def test_user_fallbacks_in_order(cleared, end_user, user, attributed_by):
    meta = dict(FULL_META)
    for i, key in enumerate(cleared):
        meta[key] = None if i % 2 else ""  # null and empty both count as absent
    ev = _one(_minimal(metadata=meta, end_user=end_user))
    assert ev["user"] == user
    assert ev["metadata"]["attributed_by"] == attributed_by
    if "user_api_key_hash" not in cleared:
        assert ev["metadata"]["key_hash_prefix"] == "0123456789ab"


def test_standard_shape_ignores_top_level_user_field():
    ev = _one(_minimal(user="someone", metadata={"user_api_key_alias": "k"}))
    assert ev["user"] == "k"


def test_missing_metadata_is_fine():
    rec = _minimal()
    del rec["metadata"]
    ev = _one(rec)
    assert ev["user"] == "unattributed"
    ev = _one(_minimal(metadata=None))
    assert ev["user"] == "unattributed"


def test_raw_key_in_hash_field_is_never_stored():
    ev = _one(_minimal(metadata={"user_api_key_hash": "sk-live-secret"}))
    assert ev["user"] == "unattributed"
    assert "sk-live-secret" not in repr(ev)


def test_tokens_fall_back_to_response_usage():
    rec = _minimal(prompt_tokens=None, response={"usage": {"prompt_tokens": 7, "completion_tokens": 3}})
    del rec["completion_tokens"]
    ev = _one(rec)
    assert (ev["input_tokens"], ev["output_tokens"]) == (7, 3)


def test_tokens_fall_back_to_metadata_usage_object():
    rec = _minimal(prompt_tokens=None, completion_tokens=None)
    rec["metadata"] = {"usage_object": {"prompt_tokens": 4, "completion_tokens": 5}}
    ev = _one(rec)
    assert (ev["input_tokens"], ev["output_tokens"]) == (4, 5)


def test_missing_tokens_are_left_out_for_validation():
    rec = _minimal(prompt_tokens=None)
    del rec["completion_tokens"]
    ev = _one(rec)
    assert "input_tokens" not in ev
    assert "output_tokens" not in ev


def test_bad_tokens_are_kept_raw_for_validation():
    ev = _one(_minimal(prompt_tokens=-3, completion_tokens="lots"))
    assert ev["input_tokens"] == -3
    assert ev["output_tokens"] == "lots"


def test_cached_and_reasoning_tokens_from_details():
    usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 500,
        "prompt_tokens_details": {"cached_tokens": 600, "audio_tokens": None},
        "completion_tokens_details": {"reasoning_tokens": 320},
    }
    ev = _one(_minimal(prompt_tokens=1000, completion_tokens=500, response={"usage": usage}))
    assert ev["cached_input_tokens"] == 600
    assert ev["reasoning_tokens"] == 320


def test_cache_read_input_tokens_and_zero_or_unknown_details():
    ev = _one(_minimal(response={"usage": {"cache_read_input_tokens": 8}}))
    assert ev["cached_input_tokens"] == 8
    usage = {
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": None},
    }
    ev = _one(_minimal(response={"usage": usage}))
    assert "cached_input_tokens" not in ev
    assert "reasoning_tokens" not in ev


def test_response_as_string_is_ignored():
    ev = _one(_minimal(response="some text response"))
    assert ev["input_tokens"] == 10


# --------------------------------------------------------------------------- cost


def test_cost_is_exact_decimal():
    body = b'[{"id": "c", "response_cost": 0.1, "prompt_tokens": 1, "completion_tokens": 1}]'
    ev = parse_litellm_body(body)[0]
    assert ev["cost_usd"] == Decimal("0.1")
    assert isinstance(ev["cost_usd"], Decimal)
    assert _one(_minimal(response_cost=0))["cost_usd"] == Decimal(0)


def test_cost_breakdown_total_wins_when_larger_streaming():
    ev = _one(_minimal(stream=True, response_cost=0.0, cost_breakdown={"total_cost": 0.0042}))
    assert ev["cost_usd"] == Decimal("0.0042")
    ev = _one(_minimal(response_cost=0.5, cost_breakdown={"total_cost": 0.25}))
    assert ev["cost_usd"] == Decimal("0.5")
    ev = _one(_minimal(response_cost=None, cost_breakdown={"total_cost": 0.3}))
    assert ev["cost_usd"] == Decimal("0.3")
    ev = _one(_minimal(response_cost=0.2, cost_breakdown={"total_cost": "junk"}))
    assert ev["cost_usd"] == Decimal("0.2")


def test_cost_absent_is_left_out():
    rec = _minimal()
    del rec["response_cost"]
    assert "cost_usd" not in _one(rec)
    assert "cost_usd" not in _one(_minimal(response_cost=None))


def test_bad_cost_is_kept_raw_for_validation():
    assert _one(_minimal(response_cost=-0.5))["cost_usd"] == Decimal("-0.5")
    assert _one(_minimal(response_cost="free"))["cost_usd"] == "free"
    # Python's json.dumps writes NaN for a cost LiteLLM could not compute: no cost, priced here
    assert "cost_usd" not in parse_litellm_body(b'{"id": "n", "response_cost": NaN}')[0]
    assert "cost_usd" not in parse_litellm_body(b'[{"id": "n", "response_cost": -Infinity}]')[0]


def test_failed_call_without_tokens_is_skipped_not_spend():
    rec = _minimal(
        status="failure",
        prompt_tokens=0,
        completion_tokens=0,
        response_cost=0,
        error_str="RateLimitError",
        response={},
    )
    assert _one(rec) == {"_skip": "failed call with no tokens", "id": "call-1"}
    rec.pop("prompt_tokens")
    rec.pop("completion_tokens")
    assert "_skip" in _one(rec)


def test_failed_call_that_used_tokens_is_still_a_call():
    ev = _one(_minimal(status="failure", prompt_tokens=900, completion_tokens=0, response_cost=0.002))
    assert ev["metadata"]["status"] == "failure"
    assert (ev["input_tokens"], ev["output_tokens"], ev["cost_usd"]) == (900, 0, Decimal("0.002"))


# --------------------------------------------------------------------------- legacy v1 shape


def test_legacy_pydantic_usage_string():
    rec = _legacy()
    rec["usage"] = PYDANTIC_USAGE
    ev = _one(rec)
    assert (ev["input_tokens"], ev["output_tokens"]) == (1830, 212)
    assert "cached_input_tokens" not in ev  # cached_tokens=0
    assert "reasoning_tokens" not in ev  # reasoning_tokens=0


def test_legacy_pydantic_usage_with_cached_and_reasoning():
    rec = _legacy()
    rec["usage"] = PYDANTIC_USAGE.replace("cached_tokens=0", "cached_tokens=1024").replace(
        "reasoning_tokens=0", "reasoning_tokens=64"
    )
    ev = _one(rec)
    assert ev["cached_input_tokens"] == 1024
    assert ev["reasoning_tokens"] == 64


def test_legacy_dict_usage_with_details():
    rec = _legacy()
    rec["usage"] = str(
        {
            "completion_tokens": 50,
            "prompt_tokens": 900,
            "prompt_tokens_details": {"cached_tokens": 512},
            "completion_tokens_details": {"reasoning_tokens": 30},
        }
    )
    ev = _one(rec)
    assert (ev["input_tokens"], ev["output_tokens"]) == (900, 50)
    assert ev["cached_input_tokens"] == 512
    assert ev["reasoning_tokens"] == 30


def test_legacy_dict_repr_holding_objects_falls_back_to_fields():
    rec = _legacy()
    rec["usage"] = (
        "{'completion_tokens': 5, 'prompt_tokens': 40, 'prompt_tokens_details': "
        "PromptTokensDetailsWrapper(audio_tokens=None, cached_tokens=16)}"
    )
    rec["metadata"] = (
        "{'user_api_key_user_id': 'carol', 'user_api_key_team_alias': 'ops', "
        "'started': datetime.datetime(2026, 11, 20, 14, 3), 'obj': <object at 0x7f>}"
    )
    ev = _one(rec)
    assert (ev["input_tokens"], ev["output_tokens"], ev["cached_input_tokens"]) == (40, 5, 16)
    assert ev["user"] == "carol"
    assert ev["team"] == "ops"


def test_legacy_none_and_empty_strings_are_absent():
    rec = _legacy()
    rec.update(cost="None", metadata="None", usage="None", user="None", startTime="None", model="")
    ev = _one(rec)
    assert ev["user"] == "unattributed"
    for key in ("cost_usd", "timestamp", "input_tokens", "output_tokens", "model", "team"):
        assert key not in ev


def test_legacy_top_level_user_comes_after_end_user():
    rec = _legacy()
    rec["metadata"] = "{'user_api_key_alias': 'k1', 'user_api_key_user_id': None}"
    rec["user"] = "dave"
    ev = _one(rec)
    assert (ev["user"], ev["metadata"]["attributed_by"]) == ("dave", "user")
    rec["end_user"] = "erin"
    ev = _one(rec)
    assert (ev["user"], ev["metadata"]["attributed_by"]) == ("erin", "end_user")
    rec["end_user"] = ""
    rec["user"] = ""
    ev = _one(rec)
    assert (ev["user"], ev["metadata"]["attributed_by"]) == ("k1", "user_api_key_alias")


def test_legacy_times_without_microseconds_or_with_offset():
    rec = _legacy()
    rec["startTime"] = "2026-11-20 14:03:11"
    assert _one(rec)["timestamp"] == "2026-11-20T14:03:11+00:00"
    rec["startTime"] = "2026-11-20 15:03:11.000001+01:00"
    assert _one(rec)["timestamp"] == "2026-11-20T14:03:11.000001+00:00"


def test_legacy_bad_cost_is_kept_raw():
    rec = _legacy()
    rec["cost"] = "-1"
    assert _one(rec)["cost_usd"] == "-1"
    rec["cost"] = "abc"
    assert _one(rec)["cost_usd"] == "abc"


def test_legacy_repr_with_code_is_never_executed(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.chdir(tmp_path)
    code = f"__import__('os').system('touch {marker}')"
    rec = _legacy()
    rec["usage"] = code
    rec["metadata"] = "{'user_api_key_user_id': " + code + "}"
    rec["cost"] = code
    ev = _one(rec)
    assert not marker.exists()
    assert "input_tokens" not in ev
    assert "output_tokens" not in ev
    assert ev["user"] == "unattributed"
    assert ev["cost_usd"] == code  # not a number: validation rejects it


def test_mixed_shapes_in_one_batch():
    body = json.dumps([_standard(), _legacy()]).encode()
    first, second = parse_litellm_body(body)
    assert first["user"] == "unattributed"
    assert second["user"] == "alice@acme.test"


# --------------------------------------------------------------------------- chunk boundaries

TRICKY = (
    b'[{"id": "a\\ud83d\\ude00", "litellm_call_id": "c-1", "end_user": "x\\\\ud800y", "startTime": 1737710446.5,'
    b' "model": "gpt-4o", "prompt_tokens": 10, "completion_tokens": 20, "response_cost": NaN,'
    b' "messages": [{"content": "' + b"9" * 700 + b' \\ud800 caf\xc3\xa9 : NaN, -Infinity"}],'
    b' "hidden_params": {"n": ' + b"7" * 700 + b', "e": 1e-' + b"9" * 400 + b', "f": 0.' + b"3" * 500 + b'}},'
    b' {"litellm_call_id": "c-2", "end_user": "lone\\udc00", "model": "m\xc3\xa9", "prompt_tokens": 1,'
    b' "completion_tokens": 1, "startTime": ' + b"8" * 500 + b'}]'
)


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 64, 4096, len(TRICKY)])
def test_the_result_does_not_depend_on_where_chunks_end(chunk_size):
    events = parse_litellm_body(TRICKY, chunk_size=chunk_size)
    assert events == parse_litellm_body(TRICKY, chunk_size=len(TRICKY))
    first, second = events
    assert first["id"] == "c-1"
    assert first["user"] == "x\\ud800y"  # an escaped backslash, then text: not a surrogate
    assert "cost_usd" not in first  # NaN: no cost, priced here
    assert second["user"] == "lone\x00"  # a lone surrogate: refused by validation, for this record only
    assert second["model"] == "m\u00e9"
    assert not isinstance(second["timestamp"], int)  # 500 digits: read as a Decimal, refused by validation


def test_an_emoji_split_across_chunks_is_kept():
    body = json.dumps([_minimal(end_user="eve \U0001f600")]).encode()
    for size in range(1, 40):
        assert parse_litellm_body(body, chunk_size=size)[0]["user"] == "eve \U0001f600"
