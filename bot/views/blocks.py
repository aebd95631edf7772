"""Small Block Kit builders shared by every surface, with Slack's limits applied.

Views build view models elsewhere (cards, digests, approvals) and turn them into blocks
with these helpers only, so every message looks alike and stays inside the limits
(SLACK_NOTES.md): 50 blocks a message, 100 a modal or Home tab, 3000 chars a section,
10 fields of 2000 chars, 150-char headers, 75-char button labels; one table of 100 rows a message.
There are no text bars or sparklines: a screen reader reads "dark shade" twenty times where the
words ("16% used", "up 12% week on week") say it once.
"""

from __future__ import annotations

from typing import Any

Block = dict[str, Any]

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
SECTION_TEXT = 3000
FIELD_TEXT = 2000
HEADER_TEXT = 150
BUTTON_TEXT = 75
CONTEXT_ELEMENTS = 10
FIELDS_PER_SECTION = 10
TABLE_ROWS = 100
TABLE_COLUMNS = 20


def escape(text: str) -> str:
    """Escape &, < and > so user-provided text cannot form mentions or links."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mention(user_id: str) -> str:
    if user_id.startswith("team:"):  # a team's raise request (bot/teams/requests.py)
        return f"team *{escape(user_id[5:])}*"
    return f"<@{user_id}>"


def mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": clip(text, SECTION_TEXT)}


def plain(text: str, limit: int = SECTION_TEXT) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, limit), "emoji": True}


def header(text: str) -> Block:
    return {"type": "header", "text": plain(text, HEADER_TEXT)}


def section(text: str, *, accessory: Block | None = None, block_id: str | None = None) -> Block:
    block: Block = {"type": "section", "text": mrkdwn(text)}
    if accessory is not None:
        block["accessory"] = accessory
    if block_id:
        block["block_id"] = block_id
    return block


def fields(pairs: list[str]) -> Block:
    """A section of up to 10 two-column fields."""
    return {"type": "section",
            "fields": [{"type": "mrkdwn", "text": clip(p, FIELD_TEXT)} for p in pairs[:FIELDS_PER_SECTION]]}


def table(rows: list[list[str]], *, align: list[str], wrap: list[bool] | None = None) -> Block:
    """A table block (messages only, one per message): plain cells, the first row a header by convention.

    Slack's limits: up to 100 rows of up to 20 cells; a raw_text cell may not be empty, so "–" stands in."""
    settings = [{"align": a, **({"is_wrapped": True} if wrap and wrap[i] else {})} for i, a in enumerate(align)]
    return {
        "type": "table",
        "column_settings": settings[:TABLE_COLUMNS],
        "rows": [[{"type": "raw_text", "text": cell or "–"} for cell in row[:TABLE_COLUMNS]]
                 for row in rows[:TABLE_ROWS]],
    }


def context(*texts: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(t) for t in texts[:CONTEXT_ELEMENTS] if t]}


def divider() -> Block:
    return {"type": "divider"}


def button(text: str, action_id: str, *, value: str | None = None, style: str | None = None,
           confirm: dict[str, Any] | None = None, label: str | None = None) -> Block:
    """`label` is what a screen reader says instead of the short visible text (75 chars)."""
    element: Block = {"type": "button", "text": plain(text, BUTTON_TEXT), "action_id": action_id}
    if label:
        element["accessibility_label"] = clip(label, 75)
    if value is not None:
        element["value"] = clip(value, 2000)
    if style in ("primary", "danger"):
        element["style"] = style
    if confirm is not None:
        element["confirm"] = confirm
    return element


def confirm_dialog(title: str, text: str, *, ok: str = "Confirm", cancel: str = "Cancel") -> dict[str, Any]:
    return {
        "title": plain(title, 100),
        "text": mrkdwn(clip(text, 300)),
        "confirm": plain(ok, 30),
        "deny": plain(cancel, 30),
    }


def actions(*elements: Block, block_id: str | None = None) -> Block:
    block: Block = {"type": "actions", "elements": list(elements[:25])}
    if block_id:
        block["block_id"] = block_id
    return block


def long_text_sections(lines: list[str], *, limit: int = SECTION_TEXT) -> list[Block]:
    """Pack many lines into as few sections as the 3000-char limit allows (never one per line)."""
    blocks: list[Block] = []
    chunk: list[str] = []
    size = 0
    for line in lines:
        line = clip(line, limit)
        if chunk and size + len(line) + 1 > limit:
            blocks.append(section("\n".join(chunk)))
            chunk, size = [], 0
        chunk.append(line)
        size += len(line) + 1
    if chunk:
        blocks.append(section("\n".join(chunk)))
    return blocks


def fit(blocks: list[Block], limit: int = MAX_MESSAGE_BLOCKS, *, note: str = "…more in the App Home") -> list[Block]:
    """Trim to the block limit, ending with a note when something was cut."""
    if len(blocks) <= limit:
        return blocks
    return [*blocks[: limit - 1], context(note)]
