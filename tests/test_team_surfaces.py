"""The team surfaces as Block Kit (the rules of tests/test_surfaces.py): accepted by the strict fake,
a notification text without markup, escaped, no text bars, and what comes first."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from bot.views.blocks import long_text_sections
from bot.views.team_card import (
    MemberLine,
    TeamAdminLine,
    TeamCardView,
    TeamPending,
    team_admin_blocks,
    team_admin_fallback,
    team_card_blocks,
    team_card_fallback,
)
from bot.views.team_digest import (
    TeamDigestView,
    TeamLine,
    team_digest_blocks,
    team_digest_fallback,
    teams_section_lines,
)
from tests.test_surfaces import NOW, check_message, visible


def card(**overrides) -> TeamCardView:
    values = dict(
        team="platform", month_label="November 2026", spent_usd=Decimal("4210.5"), tokens=512_000_000, calls=41_000,
        budget_usd=Decimal(5000), projected_usd=Decimal("7017.5"), lead="U0BOB", member_count=12,
        members=tuple(MemberLine(i, f"Person <{i}> & co", f"U0P{i}", i == 2, Decimal(900 - i * 50), 10_000_000)
                      for i in range(1, 8)),
        members_hidden=False, others_usd=Decimal("12.5"),
        models=(("claude-<sonnet>", Decimal(2000)), ("gpt-4o", Decimal(1500))),
        trend=(("Oct", Decimal(3900)), ("Nov", Decimal("4210.5"))),
        pending=(), can_request=True)
    values.update(overrides)
    return TeamCardView(**values)


def test_team_card_leads_with_spent_left_and_pace_then_members():
    view = card()
    blocks = team_card_blocks(view)
    check_message(blocks, team_card_fallback(view))
    text = visible(blocks)
    assert text.index("$4,210.50 spent, $789.50 left of the team's $5,000") < text.index("On pace for about $7,017.50")
    assert "$2,017.50 over budget" in text
    assert "…and 2 more members" in text and "Person &lt;2&gt; &amp; co (you)" in text
    assert "/tokens request team platform" in text


def test_team_card_over_budget_pending_and_no_lead():
    view = card(spent_usd=Decimal(5100), lead=None, can_request=False,
                pending=(TeamPending(3, Decimal(500), datetime(2026, 11, 18, 9, tzinfo=NOW.tzinfo)),))
    blocks = team_card_blocks(view)
    check_message(blocks, team_card_fallback(view))
    text = visible(blocks)
    assert "$100 over the team's $5,000 budget (102%)" in text
    assert "no lead set" in text and "team raise of $500" in text and "/tokens request team" not in text


def test_team_card_with_leaderboard_off_lists_no_one():
    blocks = team_card_blocks(card(members_hidden=True))
    assert "Members are not ranked" in visible(blocks) and "Person" not in visible(blocks)


def test_teams_section_and_team_digest_and_admin_list():
    lines = (TeamLine("platform", Decimal(120), Decimal(100), Decimal(4210), Decimal(5000)),
             TeamLine("", Decimal(3), Decimal(0), Decimal(40), None))
    section = long_text_sections(teams_section_lines(lines))
    check_message(section, "Teams")
    assert "*platform*: $120 (up 20%) · 84% of its $5,000 month budget" in visible(section)
    assert "(no team): $3 (new)" in visible(section)
    view = TeamDigestView("platform", date(2026, 11, 17), Decimal(120), Decimal(100), 900, "November 2026",
                          Decimal(4210), Decimal(5000), Decimal(7000), card().members, False)
    blocks = team_digest_blocks(view)
    check_message(blocks, team_digest_fallback(view))
    assert visible(blocks).index("$120") < visible(blocks).index("Members, month so far")
    admin = [TeamAdminLine("platform", 12, "U0BOB", "C0PLAT", Decimal(5000), "S0PLAT", NOW, None),
             TeamAdminLine("ml", 0, None, None, None, "S0ML", None, "no_such_subteam")]
    blocks = team_admin_blocks(admin)
    check_message(blocks, team_admin_fallback(admin))
    assert "`no_such_subteam`" in visible(blocks) and "_no lead_" in visible(blocks)


def test_team_raise_form_fits_slack():
    from bot.views.team_forms import team_raise_modal
    from tests.fakes.blockkit import validate_view

    view = team_raise_modal("platform", Decimal(10000))
    assert validate_view(view) == []
    assert view["private_metadata"] == "platform" and "$10,000" in str(view["blocks"])
