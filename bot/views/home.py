"""The App Home tab: work waiting for the viewer first, then their card, then what else is shown.

Pending work (requests waiting for the viewer's decision) comes before the card, as Slack's
App Home guidance asks: the most relevant content at the top. At most one button is primary:
the next decision when there is one, else the card's "Request more budget" when the budget
needs it. Someone with no usage and nothing to decide gets a first-run welcome instead of a
card of zeros. `private_metadata` carries the fingerprint of what is shown, so opening the Home
again publishes only when something changed (bot/home_builder.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.views.blocks import MAX_VIEW_BLOCKS, Block, context, divider, fit, header, section
from bot.views.card import CardView, card_blocks, card_text
from bot.views.format import day, money

HELP_LINE = "`/tokens` shows your card anywhere in Slack · `/tokens help` lists the rest"
SHORT_HELP = "`/tokens help` lists every command"


@dataclass(frozen=True)
class HomeSection:
    """What a feature adds to the Home (Services.home_sections); `first`: pending work, above the card."""

    blocks: tuple[Block, ...]
    first: bool = False


@dataclass(frozen=True)
class HomeView:
    card: CardView
    sections: tuple[HomeSection, ...] = field(default=())  # from Services.home_sections, in order
    fingerprint: str = ""

    @property
    def first_run(self) -> bool:
        return self.card.no_usage and not any(s.blocks for s in self.sections)


def _welcome(card: CardView) -> list[Block]:
    b = card.budget
    return [
        header("Welcome to tokenbot"),
        section("tokenbot shows what your AI calls cost and where your budget stands, and lets you ask "
                "for more in a click when you need it."),
        section("*No usage from you yet.* Your calls show up here once they go through a gateway that reports "
                "to tokenbot, under your Slack account, your email or a key an admin linked to you."),
        context(f"Your budget: {money(b.limit_usd)} a month, resets {day(b.resets_on)}"),
        context(HELP_LINE),
    ]


def home_blocks(view: HomeView) -> list[Block]:
    if view.first_run:
        return _welcome(view.card)
    first = [s for s in view.sections if s.first and s.blocks]
    rest = [s for s in view.sections if not s.first and s.blocks]
    blocks: list[Block] = []
    for extra in first:
        blocks += [*extra.blocks, divider()]
    blocks += card_blocks(view.card, title="Your AI spend", quiet_button=bool(first))
    for extra in rest:
        blocks += [divider(), *extra.blocks]
    blocks.append(context(SHORT_HELP))
    return fit(blocks, MAX_VIEW_BLOCKS, note="…more than fits here: see `/tokens help`")


def home_view(view: HomeView) -> dict[str, Any]:
    return {"type": "home", "blocks": home_blocks(view), "private_metadata": view.fingerprint}


def home_text(view: HomeView) -> str:
    extra = sum(1 for s in view.sections if s.blocks)
    text = card_text(view.card)
    if extra:
        text += f"\n(+{extra} more section{'s' if extra > 1 else ''} in the App Home)"
    return text
