"""Strict Block Kit validation for the fake Slack Web API.

`validate_blocks` and `validate_view` return a list of problems, each a human-readable message
followed by a JSON pointer like Slack's own errors, e.g.
``"must be at most 3000 characters (got 3001) [json-pointer:/blocks/0/text/text]"``.
An empty list means Slack would accept the payload. The checks cover the blocks and
elements tokenbot can send; anything else (unknown block types, element types, keys) is rejected.
"""

from __future__ import annotations

from typing import Any

SURFACES = ("message", "modal", "home")
MAX_BLOCKS = {"message": 50, "modal": 100, "home": 100}

BLOCK_KEYS = {
    "section": {"text", "fields", "accessory", "expand"},
    "header": {"text"},
    "divider": set(),
    "context": {"elements"},
    "actions": {"elements"},
    "image": {"image_url", "slack_file", "alt_text", "title"},
    "input": {"label", "element", "dispatch_action", "hint", "optional"},
    "rich_text": {"elements"},
    "table": {"rows", "column_settings"},
}
# The table block (docs.slack.dev/reference/block-kit/blocks/table-block): messages only, one per
# message, up to 100 rows of up to 20 cells (raw_text with non-empty text, or a rich_text block),
# up to 20 column settings ({align: left|center|right, is_wrapped: bool}, or null).
TABLE_ROWS = 100
TABLE_CELLS = 20
TABLE_ALIGN = ("left", "center", "right")

_SELECT_COMMON = {"action_id", "placeholder", "confirm", "focus_on_load"}
ELEMENT_KEYS = {
    "button": {"text", "action_id", "url", "value", "style", "confirm", "accessibility_label"},
    "static_select": _SELECT_COMMON | {"options", "option_groups", "initial_option"},
    "multi_static_select": _SELECT_COMMON
    | {"options", "option_groups", "initial_options", "max_selected_items"},
    "users_select": _SELECT_COMMON | {"initial_user"},
    "multi_users_select": _SELECT_COMMON | {"initial_users", "max_selected_items"},
    "conversations_select": _SELECT_COMMON
    | {"initial_conversation", "default_to_current_conversation", "response_url_enabled", "filter"},
    "multi_conversations_select": _SELECT_COMMON
    | {"initial_conversations", "default_to_current_conversation", "max_selected_items", "filter"},
    "channels_select": _SELECT_COMMON | {"initial_channel", "response_url_enabled"},
    "multi_channels_select": _SELECT_COMMON | {"initial_channels", "max_selected_items"},
    "datepicker": _SELECT_COMMON | {"initial_date"},
    "timepicker": _SELECT_COMMON | {"initial_time", "timezone"},
    "overflow": {"action_id", "options", "confirm"},
    "radio_buttons": {"action_id", "options", "initial_option", "confirm", "focus_on_load"},
    "checkboxes": {"action_id", "options", "initial_options", "confirm", "focus_on_load"},
    "plain_text_input": {
        "action_id", "placeholder", "initial_value", "multiline", "min_length", "max_length",
        "dispatch_action_config", "focus_on_load",
    },
    "number_input": {
        "action_id", "placeholder", "is_decimal_allowed", "initial_value", "min_value", "max_value",
        "dispatch_action_config", "focus_on_load",
    },
    "image": {"image_url", "slack_file", "alt_text"},
}
SELECTS = {t for t in ELEMENT_KEYS if t.endswith("_select")}
INTERACTIVE = SELECTS | {"button", "overflow", "datepicker", "timepicker", "radio_buttons", "checkboxes"}
ALLOWED_ELEMENTS = {
    "actions": INTERACTIVE,
    "accessory": INTERACTIVE | {"image"},
    "input": (SELECTS | {"datepicker", "timepicker", "radio_buttons", "checkboxes"}
              | {"plain_text_input", "number_input"}),
}
RICH_TEXT_ELEMENTS = {"rich_text_section", "rich_text_list", "rich_text_preformatted", "rich_text_quote"}
VIEW_KEYS = {
    "type", "title", "blocks", "close", "submit", "private_metadata", "callback_id",
    "clear_on_close", "notify_on_close", "external_id", "submit_disabled",
}


class _Checker:
    def __init__(self, surface: str) -> None:
        self.surface = surface
        self.problems: list[str] = []
        self.action_ids: set[str] = set()
        self.tables = 0

    def err(self, path: str, message: str) -> None:
        self.problems.append(f"{message} [json-pointer:{path}]")

    # -- primitives -------------------------------------------------------------------------------
    def keys(self, obj: dict, allowed: set[str], path: str) -> None:
        for key in sorted(set(obj) - allowed - {"type"}):
            self.err(f"{path}/{key}", f"unsupported property {key!r}")

    def string(self, obj: dict, key: str, path: str, *, max_len: int, required: bool = False,
               allow_empty: bool = False) -> None:
        value = obj.get(key)
        if value is None:
            if required:
                self.err(f"{path}/{key}", "missing required field")
            return
        if not isinstance(value, str):
            self.err(f"{path}/{key}", f"must be a string (got {type(value).__name__})")
        elif not value and not allow_empty:
            self.err(f"{path}/{key}", "must not be empty")
        elif len(value) > max_len:
            self.err(f"{path}/{key}", f"must be at most {max_len} characters (got {len(value)})")

    def text(self, obj: dict, key: str, path: str, *, max_len: int, plain_only: bool = False,
             required: bool = True) -> None:
        value = obj.get(key)
        path = f"{path}/{key}"
        if value is None:
            if required:
                self.err(path, "missing required field")
            return
        self.text_object(value, path, max_len=max_len, plain_only=plain_only)

    def text_object(self, value: Any, path: str, *, max_len: int, plain_only: bool = False) -> None:
        if not isinstance(value, dict):
            self.err(path, "must be a text object")
            return
        kind = value.get("type")
        allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
        if kind not in allowed:
            self.err(f"{path}/type", f"must be one of {', '.join(allowed)} (got {kind!r})")
            return
        self.keys(value, {"text", "emoji"} if kind == "plain_text" else {"text", "verbatim"}, path)
        self.string(value, "text", path, max_len=max_len, required=True)

    def action_id(self, obj: dict, path: str) -> None:
        self.string(obj, "action_id", path, max_len=255)
        action_id = obj.get("action_id")
        if isinstance(action_id, str) and action_id:
            if action_id in self.action_ids:
                self.err(f"{path}/action_id", f"duplicate action_id {action_id!r}")
            self.action_ids.add(action_id)

    def confirm(self, obj: dict, path: str) -> None:
        if "confirm" not in obj:
            return
        conf, path = obj["confirm"], f"{path}/confirm"
        if not isinstance(conf, dict):
            self.err(path, "must be a confirmation dialog object")
            return
        self.keys(conf, {"title", "text", "confirm", "deny", "style"}, path)
        self.text(conf, "title", path, max_len=100, plain_only=True)
        self.text(conf, "text", path, max_len=300)
        self.text(conf, "confirm", path, max_len=30, plain_only=True)
        self.text(conf, "deny", path, max_len=30, plain_only=True)
        if "style" in conf and conf["style"] not in ("primary", "danger"):
            self.err(f"{path}/style", "must be primary or danger")

    def options(self, obj: dict, key: str, path: str, *, max_items: int, min_items: int = 1,
                mrkdwn_ok: bool = False, url_ok: bool = False) -> None:
        options, path = obj.get(key), f"{path}/{key}"
        if not isinstance(options, list) or not (min_items <= len(options) <= max_items):
            self.err(path, f"must be a list of {min_items} to {max_items} options")
            return
        for i, option in enumerate(options):
            self.option(option, f"{path}/{i}", mrkdwn_ok=mrkdwn_ok, url_ok=url_ok)

    def option(self, option: Any, path: str, *, mrkdwn_ok: bool = False, url_ok: bool = False) -> None:
        if not isinstance(option, dict):
            self.err(path, "must be an option object")
            return
        self.keys(option, {"text", "value", "description"} | ({"url"} if url_ok else set()), path)
        self.text(option, "text", path, max_len=75, plain_only=not mrkdwn_ok)
        self.string(option, "value", path, max_len=150, required=True)
        self.text(option, "description", path, max_len=75, plain_only=not mrkdwn_ok, required=False)
        self.string(option, "url", path, max_len=3000)

    # -- elements ---------------------------------------------------------------------------------
    def element(self, el: Any, path: str, allowed: set[str]) -> None:
        if not isinstance(el, dict):
            self.err(path, "must be an element object")
            return
        kind = el.get("type")
        if kind not in allowed:
            self.err(f"{path}/type", f"element type {kind!r} is not allowed here")
            return
        self.keys(el, ELEMENT_KEYS[kind], path)
        if kind == "image":
            self.image(el, path)
            return
        self.action_id(el, path)
        self.confirm(el, path)
        if "placeholder" in el:
            self.text(el, "placeholder", path, max_len=150, plain_only=True)
        if kind == "button":
            self.text(el, "text", path, max_len=75, plain_only=True)
            self.string(el, "value", path, max_len=2000)
            self.string(el, "url", path, max_len=3000)
            self.string(el, "accessibility_label", path, max_len=75)
            if "style" in el and el["style"] not in ("primary", "danger"):
                self.err(f"{path}/style", f"must be primary or danger (got {el['style']!r})")
        elif kind in ("static_select", "multi_static_select"):
            if ("options" in el) == ("option_groups" in el):
                self.err(path, "needs exactly one of options or option_groups")
            elif "options" in el:
                self.options(el, "options", path, max_items=100)
        elif kind == "overflow":
            self.options(el, "options", path, max_items=5, min_items=1, url_ok=True)
        elif kind in ("radio_buttons", "checkboxes"):
            self.options(el, "options", path, max_items=10, mrkdwn_ok=True)
        elif kind == "plain_text_input":
            self.string(el, "initial_value", path, max_len=3000)
        elif kind == "number_input":
            if not isinstance(el.get("is_decimal_allowed"), bool):
                self.err(f"{path}/is_decimal_allowed", "missing required boolean field")

    def image(self, obj: dict, path: str) -> None:
        if "slack_file" not in obj:
            self.string(obj, "image_url", path, max_len=3000, required=True)
        self.string(obj, "alt_text", path, max_len=2000, required=True)

    def element_list(self, block: dict, path: str, *, max_items: int, allowed: set[str]) -> None:
        elements, path = block.get("elements"), f"{path}/elements"
        if not isinstance(elements, list) or not 1 <= len(elements) <= max_items:
            self.err(path, f"must be a list of 1 to {max_items} elements")
            return
        for i, el in enumerate(elements):
            if isinstance(el, dict) and el.get("type") in ("plain_text", "mrkdwn") and "text" in allowed:
                self.text_object(el, f"{path}/{i}", max_len=3000)
            else:
                self.element(el, f"{path}/{i}", allowed - {"text"})

    # -- blocks -----------------------------------------------------------------------------------
    def block(self, block: Any, path: str) -> None:
        if not isinstance(block, dict):
            self.err(path, "block must be an object")
            return
        kind = block.get("type")
        if kind not in BLOCK_KEYS:
            self.err(f"{path}/type", f"unknown block type {kind!r}")
            return
        self.keys(block, BLOCK_KEYS[kind] | {"block_id"}, path)
        if kind == "section":
            if "text" not in block and "fields" not in block:
                self.err(path, "section needs text or fields")
            self.text(block, "text", path, max_len=3000, required=False)
            if "fields" in block:
                fields = block["fields"]
                if not isinstance(fields, list) or not 1 <= len(fields) <= 10:
                    self.err(f"{path}/fields", "must be a list of 1 to 10 text objects")
                else:
                    for i, field in enumerate(fields):
                        self.text_object(field, f"{path}/fields/{i}", max_len=2000)
            if "accessory" in block:
                self.element(block["accessory"], f"{path}/accessory", ALLOWED_ELEMENTS["accessory"])
        elif kind == "header":
            self.text(block, "text", path, max_len=150, plain_only=True)
        elif kind == "context":
            self.element_list(block, path, max_items=10, allowed={"text", "image"})
        elif kind == "actions":
            self.element_list(block, path, max_items=25, allowed=ALLOWED_ELEMENTS["actions"])
        elif kind == "image":
            self.image(block, path)
            self.text(block, "title", path, max_len=2000, plain_only=True, required=False)
        elif kind == "input":
            if self.surface == "message":
                self.err(path, "input blocks are not allowed in messages")
            self.text(block, "label", path, max_len=2000, plain_only=True)
            self.text(block, "hint", path, max_len=2000, plain_only=True, required=False)
            if "element" not in block:
                self.err(f"{path}/element", "missing required field")
            else:
                self.element(block["element"], f"{path}/element", ALLOWED_ELEMENTS["input"])
        elif kind == "table":
            self.table(block, path)
        elif kind == "rich_text":
            elements = block.get("elements")
            if not isinstance(elements, list):
                self.err(f"{path}/elements", "must be a list")
            else:
                for i, el in enumerate(elements):
                    if not isinstance(el, dict) or el.get("type") not in RICH_TEXT_ELEMENTS:
                        self.err(f"{path}/elements/{i}", "must be a rich_text_* element")

    def table(self, block: dict, path: str) -> None:
        if self.surface != "message":
            self.err(path, f"table blocks are only allowed in messages, not in a {self.surface}")
        self.tables += 1
        if self.tables > 1:
            self.err(path, "only one table block is allowed per message")
        rows = block.get("rows")
        if not isinstance(rows, list) or not 1 <= len(rows) <= TABLE_ROWS:
            self.err(f"{path}/rows", f"must be a list of 1 to {TABLE_ROWS} rows")
            rows = []
        widths = set()
        for r, row in enumerate(rows):
            if not isinstance(row, list) or not 1 <= len(row) <= TABLE_CELLS:
                self.err(f"{path}/rows/{r}", f"must be a list of 1 to {TABLE_CELLS} cells")
                continue
            widths.add(len(row))
            for c, cell in enumerate(row):
                where = f"{path}/rows/{r}/{c}"
                kind = cell.get("type") if isinstance(cell, dict) else None
                if kind == "raw_text":
                    self.keys(cell, {"text"}, where)
                    self.string(cell, "text", where, max_len=10_000, required=True)
                elif kind == "rich_text":
                    self.block(cell, where)
                else:
                    self.err(where, "a cell must be raw_text or rich_text")
        if len(widths) > 1:  # Slack does not document ragged tables; tokenbot never sends one
            self.err(f"{path}/rows", "every row must have the same number of cells")
        settings = block.get("column_settings")
        if settings is None:
            return
        if not isinstance(settings, list) or len(settings) > TABLE_CELLS:
            self.err(f"{path}/column_settings", f"must be a list of at most {TABLE_CELLS} items")
            return
        for i, setting in enumerate(settings):
            where = f"{path}/column_settings/{i}"
            if setting is None:
                continue
            if not isinstance(setting, dict):
                self.err(where, "must be an object or null")
                continue
            self.keys(setting, {"align", "is_wrapped"}, where)
            if "align" in setting and setting["align"] not in TABLE_ALIGN:
                self.err(f"{where}/align", f"must be one of {', '.join(TABLE_ALIGN)}")
            if "is_wrapped" in setting and not isinstance(setting["is_wrapped"], bool):
                self.err(f"{where}/is_wrapped", "must be a boolean")

    def blocks(self, blocks: Any, path: str) -> None:
        if not isinstance(blocks, list):
            self.err(path, "blocks must be a list")
            return
        limit = MAX_BLOCKS[self.surface]
        if len(blocks) > limit:
            self.err(path, f"no more than {limit} blocks allowed in a {self.surface} (got {len(blocks)})")
        block_ids: set[str] = set()
        for i, block in enumerate(blocks):
            self.block(block, f"{path}/{i}")
            if isinstance(block, dict) and "block_id" in block:
                self.string(block, "block_id", f"{path}/{i}", max_len=255)
                block_id = block["block_id"]
                if isinstance(block_id, str) and block_id in block_ids:
                    self.err(f"{path}/{i}/block_id", f"duplicate block_id {block_id!r}")
                block_ids.add(block_id if isinstance(block_id, str) else repr(block_id))


def validate_blocks(blocks: Any, *, surface: str, path: str = "/blocks") -> list[str]:
    """Problems Slack would report for `blocks` on `surface` ("message", "modal" or "home")."""
    if surface not in SURFACES:
        raise ValueError(f"unknown surface {surface!r}")
    checker = _Checker(surface)
    checker.blocks(blocks, path)
    return checker.problems


def validate_view(view: Any, *, path: str = "/view") -> list[str]:
    """Problems Slack would report for a modal or Home tab view (views.open/update/push/publish)."""
    if not isinstance(view, dict):
        return [f"view must be an object [json-pointer:{path}]"]
    kind = view.get("type")
    if kind not in ("modal", "home"):
        return [f"view type must be modal or home (got {kind!r}) [json-pointer:{path}/type]"]
    checker = _Checker(kind)
    checker.keys(view, VIEW_KEYS, path)
    if kind == "modal":
        checker.text(view, "title", path, max_len=24, plain_only=True)
        checker.text(view, "submit", path, max_len=24, plain_only=True, required=False)
        checker.text(view, "close", path, max_len=24, plain_only=True, required=False)
        blocks = view.get("blocks")
        has_input = isinstance(blocks, list) and any(
            isinstance(b, dict) and b.get("type") == "input" for b in blocks
        )
        if has_input and "submit" not in view:
            checker.err(f"{path}/submit", "submit is required when the view has input blocks")
    else:
        for key in ("title", "submit", "close"):
            if key in view:
                checker.err(f"{path}/{key}", f"{key} is not allowed in a home view")
    if "private_metadata" in view:
        meta = view["private_metadata"]
        if not isinstance(meta, str):
            checker.err(f"{path}/private_metadata", "must be a string")
        elif len(meta) > 3000:
            checker.err(f"{path}/private_metadata", f"must be at most 3000 characters (got {len(meta)})")
    checker.string(view, "callback_id", path, max_len=255, allow_empty=True)
    checker.string(view, "external_id", path, max_len=255)
    if "blocks" not in view:
        checker.err(f"{path}/blocks", "missing required field")
    else:
        checker.blocks(view["blocks"], f"{path}/blocks")
    return checker.problems
