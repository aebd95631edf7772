"""The App Home tab: the caller's card, then the sections other features add.

`private_metadata` carries the fingerprint of what is shown, so opening the Home again
publishes only when something changed (bot/home_builder.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.views.blocks import MAX_VIEW_BLOCKS, Block, context, divider, fit
from bot.views.card import CardView, card_blocks, card_text


@dataclass(frozen=True)
class HomeView:
    card: CardView
    sections: tuple[tuple[Block, ...], ...] = field(default=())  # from Services.home_sections, in order
    fingerprint: str = ""


def home_blocks(view: HomeView) -> list[Block]:
    blocks = card_blocks(view.card, title="Your AI spend")
    for extra in view.sections:
        if extra:
            blocks += [divider(), *extra]
    blocks.append(context("`/tokens help` lists every command · `/tokens top` shows the leaderboard"))
    return fit(blocks, MAX_VIEW_BLOCKS, note="…more than fits here: see `/tokens help`")


def home_view(view: HomeView) -> dict[str, Any]:
    return {"type": "home", "blocks": home_blocks(view), "private_metadata": view.fingerprint}


def home_text(view: HomeView) -> str:
    extra = sum(1 for s in view.sections if s)
    text = card_text(view.card)
    if extra:
        text += f"\n(+{extra} more section{'s' if extra > 1 else ''} in the App Home)"
    return text
