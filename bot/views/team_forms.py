"""The team raise form (the team card's "Ask for a team raise" button). Input block ids are the
action ids, so `view_submission` errors key by them; the team travels in `private_metadata`."""

from __future__ import annotations

from decimal import Decimal

from bot.views.approvals import AMOUNT_BLOCK, REASON_BLOCK, REASON_MAX
from bot.views.blocks import Block, escape, plain, section
from bot.views.format import money

TEAM_RAISE_ACTION = "team_raise_open"
TEAM_RAISE_MODAL = "team_raise_modal"


def team_raise_modal(team: str, max_usd: Decimal) -> Block:
    return {
        "type": "modal",
        "callback_id": TEAM_RAISE_MODAL,
        "private_metadata": team,
        "title": plain("Team raise", 24),
        "submit": plain("Send request", 24),
        "close": plain("Cancel", 24),
        "blocks": [
            section(f"Ask for more budget for team *{escape(team)}* this month. The approvers decide with one "
                    "click; the team's budget changes only when they approve."),
            {"type": "input", "block_id": AMOUNT_BLOCK, "label": plain("How much more (USD)", 2000),
             "hint": plain(f"The raise, not the new total. At most {money(max_usd)}.", 2000),
             "element": {"type": "plain_text_input", "action_id": AMOUNT_BLOCK, "placeholder": plain("500", 150)}},
            {"type": "input", "block_id": REASON_BLOCK, "label": plain("Why", 2000), "optional": True,
             "element": {"type": "plain_text_input", "action_id": REASON_BLOCK, "multiline": True,
                         "max_length": REASON_MAX, "placeholder": plain("e.g. launch week load tests", 150)}},
        ],
    }
