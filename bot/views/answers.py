"""A `/tokens` answer (a view model of bot/views, or a ready `Message`) -> notification text + blocks."""

from __future__ import annotations

from bot.views.card import BudgetView, CardView, budget_blocks, budget_fallback, card_blocks, card_fallback
from bot.views.help import HelpView, Message, Notice, help_message, notice_message
from bot.views.leaderboard import LeaderboardView, leaderboard_blocks, leaderboard_fallback


def render(answer) -> Message:
    """A command's answer (view model) -> text + blocks, through bot/views."""
    if isinstance(answer, Message):
        return answer
    if isinstance(answer, CardView):
        return Message(card_fallback(answer), card_blocks(answer))
    if isinstance(answer, LeaderboardView):
        return Message(leaderboard_fallback(answer), leaderboard_blocks(answer))
    if isinstance(answer, BudgetView):
        return Message(budget_fallback(answer), budget_blocks(answer))
    if isinstance(answer, HelpView):
        return help_message(answer)
    if isinstance(answer, Notice):
        return notice_message(answer)
    if isinstance(answer, str):
        return notice_message(Notice(answer))
    raise TypeError(f"cannot render {type(answer).__name__}")
