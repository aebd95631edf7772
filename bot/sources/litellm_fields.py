"""The fields tokenbot keeps from one LiteLLM record, described once, and the two readers' views of it.

`TREE` names every path read from a record and the flat key its value is kept under
(`bot.sources.litellm_records` maps the flat dict); every other subtree is skipped unbuilt. Both
readers of `bot.sources.litellm` are derived from it, so they cannot drift apart:

- `ROOT_NODES`, for the event reader (`bot.sources.litellm_events`, ijson): a node per key.
- `RecordStruct` and `flatten`, for the record reader: msgspec Structs whose fields are the kept
  paths. msgspec skips every other key in C without building it; a kept leaf that may be a
  non-integer number is decoded from its raw bytes as an exact Decimal, never a binary float.

Both readers agree on every record msgspec accepts, including a key sent twice (the last one
counts, wholesale) and a kept leaf that turns out to be an object or array (absent, except the
cost failure diagnostics, whose mere presence counts). A record whose kept fields have shapes
the Structs do not take (an array where an object is expected, a float token count...) raises
msgspec.ValidationError, and the caller reads that record with the event reader instead.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, NamedTuple, Union

import msgspec

from bot.sources.litellm_records import META_KEYS

__all__ = ["DECIMAL_LEAVES", "RAW_DECODER", "RECORD_DECODER", "ROOT_NODES", "TREE", "Node", "RecordStruct", "flatten"]

# --------------------------------------------------------------------------- the tree
# A leaf names the flat key its value is kept under. A (flat key, children) pair is kept as a
# scalar when it is one and read into when it is an object; `KEEP_CONTAINER` marks a field whose
# mere presence matters when it is an object or array (LiteLLM's cost failure diagnostics).
KEEP_CONTAINER = "+"


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
TREE: dict[str, Any] = {name: name for name in _TOP_SCALARS}
TREE.update({
    # a dict in the StandardLoggingPayload, a repr string in the legacy shape
    "metadata": ("metadata", {
        **{key: f"metadata.{key}" for key in META_KEYS},
        "usage_object": _usage_tree("usage_object"),
    }),
    "cost_breakdown": {"total_cost": "cost_breakdown.total_cost"},
    "model_parameters": {"user": "model_parameters.user"},
    "response": {"usage": _usage_tree("response.usage")},
    "response_cost_failure_debug_info": ("response_cost_failure_debug_info", KEEP_CONTAINER),
})
# Leaves that may carry a non-integer number (epoch seconds, costs): read from their raw bytes so
# that 0.1 stays Decimal("0.1"). The others are ids, names and token counts.
DECIMAL_LEAVES = frozenset({"startTime", "response_cost", "cost", "cost_breakdown.total_cost"})


class Node(NamedTuple):
    flat: str | None  # the flat key a scalar here is kept under
    children: dict[str, Node] | None  # the keys read inside an object here
    keep: bool  # an object or array here is kept as True
    owned: tuple[str, ...]  # every flat key under this node: cleared when its key comes again


def _compile(tree: dict) -> dict[str, Node]:
    nodes = {}
    for key, value in tree.items():
        if isinstance(value, str):
            nodes[key] = Node(value, None, False, (value,))
            continue
        flat, children = value if isinstance(value, tuple) else (None, value)
        if children == KEEP_CONTAINER:
            nodes[key] = Node(flat, None, True, (flat,))
            continue
        compiled = _compile(children)
        owned = tuple(k for child in compiled.values() for k in child.owned)
        nodes[key] = Node(flat, compiled, False, (flat, *owned) if flat else owned)
    return nodes


ROOT_NODES = _compile(TREE)

# --------------------------------------------------------------------------- msgspec's view
# How flatten() reads each Struct field.
_TYPED_LEAF, _RAW_LEAF, _KEPT, _INTO, _INTO_OR_SCALAR = range(5)
_SCALAR_DECODER = msgspec.json.Decoder(float_hook=Decimal)  # numbers exactly as ijson reads them
_CONTAINER_START = frozenset(b"{[")
_TEXTS = (str, int, bool, type(None))  # bool before int would not matter: msgspec keeps JSON's true


def _struct(name: str, nodes: dict[str, Node]) -> tuple[type, list]:
    fields, plan = [], []
    for key, node in nodes.items():
        if node.children is None:
            if node.keep or node.flat in DECIMAL_LEAVES:
                kind, kind_type = (_KEPT if node.keep else _RAW_LEAF), msgspec.Raw
            else:
                # anything else (a float, an object...) is a ValidationError: the event reader's
                kind, kind_type = _TYPED_LEAF, Union[_TEXTS]  # noqa: UP007
            fields.append((key, kind_type, msgspec.UNSET))
            plan.append((key, node.flat, kind, None, None))
            continue
        sub_type, sub_plan = _struct(f"{name}_{key}", node.children)
        if node.flat:
            # its scalars are kept: a float would be a binary float here, so it is not accepted
            kind, field_type = _INTO_OR_SCALAR, Union[(sub_type, *_TEXTS)]
        else:
            kind, field_type = _INTO, Union[(sub_type, str, int, float, bool, type(None))]  # noqa: UP007
        fields.append((key, field_type, msgspec.UNSET))
        plan.append((key, node.flat, kind, sub_type, sub_plan))
    return msgspec.defstruct(name, fields, gc=False), plan


RecordStruct, _PLAN = _struct("LiteLLMRecord", ROOT_NODES)
RECORD_DECODER = msgspec.json.Decoder(RecordStruct)
RAW_DECODER = msgspec.json.Decoder(msgspec.Raw)  # validates one JSON value without building it


def flatten(record: Any, plan: list | None = None, out: dict | None = None) -> dict[str, Any]:
    """A decoded RecordStruct -> the flat dict the event reader builds for the same record."""
    if out is None:
        out = {}
    unset = msgspec.UNSET
    for attr, flat, kind, sub_type, sub_plan in plan or _PLAN:
        value = getattr(record, attr)
        if value is unset:
            continue
        if kind == _TYPED_LEAF:
            out[flat] = value
        elif kind == _RAW_LEAF or kind == _KEPT:
            if memoryview(value)[0] in _CONTAINER_START:
                if kind == _KEPT:
                    out[flat] = True
            else:
                out[flat] = _SCALAR_DECODER.decode(value)
        elif type(value) is sub_type:
            flatten(value, sub_plan, out)
        elif kind == _INTO_OR_SCALAR:
            out[flat] = value
    return out
