"""Every Slack surface, as Block Kit: what comes first, length limits, escaping, nothing said twice,
and the strict fake Slack accepting it (issue 11). View models are built here directly, so each rule
is checked on the renderer that owns it; the end-to-end tests (test_tokens_command, test_approvals,
test_digests, test_alerts, test_app_home) check the same surfaces as the served bot sends them.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from bot.charts import OTHERS, ChartSeries, DailyChart, render_png
from bot.views import alerts, approvals
from bot.views.answers import render
from bot.views.approval_forms import DecisionContext, amount_modal, deny_modal, request_modal
from bot.views.approval_notices import RequesterNotice, notice_blocks, notice_fallback
from bot.views.audit import AuditLine, audit_blocks
from bot.views.card import BudgetFigures, BudgetView, CardView, ModelLine, PendingView, PeriodFigures
from bot.views.data_check import DataCheckView, data_check_blocks
from bot.views.digest import (
    AnomalyRow,
    BudgetRow,
    DigestView,
    LeaderRow,
    ModelRow,
    MoverRow,
    UnlinkedRow,
    UnpricedRow,
    details_blocks,
    digest_blocks,
    fallback_text,
)
from bot.views.format import change, day, moment_text, money, percent, slack_moment, tokens
from bot.views.help import HelpView
from bot.views.home import HomeSection, HomeView, home_view
from bot.views.leaderboard import LeaderboardView
from bot.views.leaderboard import LeaderRow as BoardRow
from tests.fakes.blockkit import validate_blocks, validate_view
from tests.support.digests import png_info

TZ = ZoneInfo("America/New_York")
NOW = datetime(2026, 11, 18, 12, 0, tzinfo=TZ)
TODAY = NOW.date()
PHONE_SCREEN_TEXT = 700  # characters of visible text a phone shows on one screen, give or take
# a `<…>` that Slack reads as a token: a mention, a channel, a date, a link; anything else must be escaped
SLACK_TOKEN = re.compile(r"<(@[UW][A-Z0-9]+|#[CG][A-Z0-9]+(\|[^>]*)?|!date\^\d+\^[^|>]+\|[^>]+|https?://[^>|]+(\|[^>]*)?)>")
BARS = "▓░▁▂▃▄▅▆▇█"


# -- helpers -----------------------------------------------------------------------------------------

def texts(node) -> list[tuple[str, str]]:
    """(type, text) of every text object under `node` (mrkdwn, plain_text, raw_text cells)."""
    found: list[tuple[str, str]] = []
    if isinstance(node, dict):
        if node.get("type") in ("mrkdwn", "plain_text", "raw_text") and isinstance(node.get("text"), str):
            found.append((node["type"], node["text"]))
        for value in node.values():
            found += texts(value)
    elif isinstance(node, list):
        for item in node:
            found += texts(item)
    return found


def visible(blocks) -> str:
    return "\n".join(text for _, text in texts(blocks))


def check_message(blocks: list[dict], text: str) -> None:
    """What every message must be: accepted by Slack, a notification text, escaped, no text bars."""
    assert validate_blocks(blocks, surface="message") == []
    assert text and "*" not in text and "`" not in text  # the notification text carries no markup
    check_escaped([*blocks, {"type": "mrkdwn", "text": text}])  # Slack parses the notification text too
    assert not any(c in visible(blocks) + text for c in BARS), "no text bars or sparklines"


def check_escaped(blocks) -> None:
    """Every `<` in mrkdwn opens a real Slack token; every `&` is an entity: user text cannot form links."""
    for kind, text in texts(blocks):
        if kind != "mrkdwn":
            continue
        rest = re.sub(r"(?m)^>", "", SLACK_TOKEN.sub("", text))  # a `>` opening a line is a quote
        assert "<" not in rest and ">" not in rest, f"unescaped <…> in {text!r}"
        assert not re.search(r"&(?!amp;|lt;|gt;)", rest), f"unescaped & in {text!r}"


def primaries(blocks) -> int:
    return json.dumps(blocks).count('"style": "primary"')


def figures(label: str, cost: str, tokens_in: int = 0, out: int = 0, events: int = 1, **extra) -> PeriodFigures:
    return PeriodFigures(label=label, first=TODAY, last=TODAY, input_tokens=tokens_in, output_tokens=out,
                         cost_usd=Decimal(cost), events=events, **extra)


def budget(spent: str, limit: str = "600", *, pace: str = "3.05", projected: str = "104.68",
           runs_out: date | None = None, enforced: bool = False, raises: str = "0") -> BudgetFigures:
    limit_d = Decimal(limit)
    return BudgetFigures(user_key="U0ADA", period="2026-11", standing_usd=limit_d - Decimal(raises),
                         raises_usd=Decimal(raises), limit_usd=limit_d, spent_usd=Decimal(spent),
                         resets_on=date(2026, 12, 1), burn_rate_usd=Decimal(pace), projected_usd=Decimal(projected),
                         runs_out_on=runs_out, month_end=date(2026, 11, 30), month_label="November",
                         enforced=enforced)


def card(b: BudgetFigures | None = None, **overrides) -> CardView:
    view = CardView(
        user_id="U0ADA", name="Ada <Lovelace>", as_of=NOW, timezone="America/New_York",
        today=figures("Today", "0.65", 196_000, 23_400, cached_input_tokens=27_400),
        week=figures("Last 7 days", "21.33", 5_700_000, 972_000, events=300),
        month=figures("This month", "95.54", 25_300_000, 4_590_000, events=2_000, reasoning_tokens=127_000),
        budget=b or budget("95.54"), rank=2, ranked=26,
        top_models=(ModelLine("claude-<sonnet>&4", 15_400_000, Decimal("59.58")), ModelLine("gpt-4o", 8, Decimal(31))),
        previous_week_usd=Decimal(19), pending=None, linked_ids=("key_<ci>&co",),
    )
    return replace(view, **overrides)


# -- formats -----------------------------------------------------------------------------------------

def test_one_money_one_token_one_date_format():
    assert [money(Decimal(v)) for v in ("4200", "4200.00", "95.5", "0.001", "0", "-3.82", "1234.567")] == [
        "$4,200", "$4,200", "$95.50", "<$0.01", "$0", "-$3.82", "$1,234.57"]
    assert [tokens(n) for n in (950, 98_000, 98_049, 219_400, 999_999, 1_500_000, 12_400)] == [
        "950", "98K", "98K", "219K", "1M", "1.5M", "12.4K"]
    assert [percent(Decimal(v)) for v in ("0.16", "0.001", "0", "1.085")] == ["16%", "<1%", "0%", "109%"]
    assert [change(Decimal(a), Decimal(b)) for a, b in ((11, 10), (5, 10), (10, 10), (3, 0), (100, 3))] == [
        "up 10%", "down 50%", "flat", "new", "up 33×"]  # words, not arrows alone
    assert day(date(2026, 12, 1)) == "Dec 1"
    moment = datetime(2026, 11, 30, 21, 5, tzinfo=TZ)
    assert moment_text(moment) == "Nov 30 at 9:05 PM EST"
    stamp = int(moment.timestamp())
    assert slack_moment(moment) == f"<!date^{stamp}^{{date_short_pretty}} at {{time}}|Nov 30 at 9:05 PM EST>"


# -- the card ----------------------------------------------------------------------------------------

def test_card_leads_with_spent_left_pace_and_reset():
    message = render(card())
    blocks = message.blocks
    check_message(blocks, message.text)
    assert blocks[0]["type"] == "header" and blocks[0]["text"]["text"] == "Your AI spend in November"
    lead = blocks[1]["text"]["text"]
    assert lead == ("*$95.54 spent, $504.46 left of your $600 budget (16%)*\n"
                    "On pace for about $104.68 by Nov 30 · resets Dec 1")
    assert message.text == "$95.54 spent, $504.46 left of your $600 November budget (16%)"
    assert blocks[2]["type"] == "section" and len(blocks[2]["fields"]) == 4  # the periods, as fields
    assert "up 12% week on week" in visible(blocks)  # 21.33 on 19: the change in words
    assert "#2 of 26 people" in visible(blocks)
    small = blocks[3]
    assert small["type"] == "context" and "29.9M tokens this month: 25.3M input" in small["elements"][0]["text"]
    # nothing said twice: the month's cost and the limit appear once each
    assert visible(blocks).count("$95.54") == 1 and visible(blocks).count("$600") == 1
    assert len(visible(blocks)) < PHONE_SCREEN_TEXT
    assert "claude-&lt;sonnet&gt;&amp;4" in visible(blocks) and "key_&lt;ci&gt;&amp;co" in visible(blocks)
    assert primaries(blocks) == 0  # 16% used: asking for more is there, but not the loudest thing


def test_card_over_budget_says_how_much_over_and_whether_calls_are_refused():
    over = budget("648", enforced=True)
    blocks = render(card(over)).blocks
    assert blocks[1]["text"]["text"].startswith(":no_entry: *$648 spent: $48 over your $600 budget (108%)*\n")
    assert "Gateways that check tokenbot refuse your calls until the budget resets on Dec 1" in visible(blocks)
    assert "$0 left" not in visible(blocks) and "On pace" not in visible(blocks)
    assert primaries(blocks) == 1  # now the button matters
    unenforced = render(card(replace(over, enforced=False))).blocks
    assert "tokenbot does not block calls" in visible(unenforced)


def test_card_runs_out_this_month_and_a_pending_request():
    soon = budget("500", pace="40", projected="980", runs_out=date(2026, 11, 21))
    pending = PendingView(7, Decimal(50), "month", "evals", NOW - timedelta(hours=2), ("U0BOSS",), ("Boss",))
    blocks = render(card(soon, pending=pending)).blocks
    assert "At $40/day it runs out on Nov 21 · resets Dec 1" in blocks[1]["text"]["text"]
    assert "Your request for $50 more (this month only) is waiting for <@U0BOSS>" in visible(blocks)
    assert "#7" not in visible(blocks)  # requests are named by what was asked
    assert "request_budget" not in json.dumps(blocks)  # one request at a time


def test_card_without_usage_is_one_line_on_how_usage_arrives():
    empty = figures("x", "0", events=0)
    view = card(budget("0", "150"), today=replace(empty, label="Today"), week=replace(empty, label="Last 7 days"),
                month=replace(empty, label="This month"), rank=None, ranked=0, top_models=())
    message = render(view)
    check_message(message.blocks, message.text)
    assert len(message.blocks) == 3 and "No AI usage from you yet" in visible(message.blocks)
    assert "$0" not in visible(message.blocks) and "request_budget" not in json.dumps(message.blocks)
    assert message.text == "No AI usage from you yet this month; your budget is $150."


def test_budget_answer_leads_with_the_same_line():
    view = BudgetView("U0ADA", "Ada", False, budget("60", "200", raises="50"), None, ("U0BOSS",), ("Boss",))
    message = render(view)
    check_message(message.blocks, message.text)
    assert message.blocks[0]["text"]["text"] == "Ada's budget"
    assert message.blocks[1]["text"]["text"].startswith("<@U0ADA>: *$60 spent, $140 left of their $200 November")
    assert "$200 = $150 standing + $50 raised for this month" in visible(message.blocks)
    assert "request_budget" not in json.dumps(message.blocks)  # only the person asks for more


# -- the leaderboard ------------------------------------------------------------------------------------

def test_leaderboard_counts_people_not_keys_and_aligns_amounts():
    rows = [BoardRow(None, "key_<ci>", None, False, False, 1000, Decimal(500))]
    rows += [BoardRow(i, f"U0P{i:02d}", f"Person {i} & co", True, False, 1100, Decimal(120 - i)) for i in range(1, 10)]
    view = LeaderboardView("month", "Top spenders, November so far", "names", tuple(rows),
                           BoardRow(14, "U0ADA", "Ada", True, True, 1100, Decimal(1)), 14, Decimal(1600), 17_600,
                           unlinked=1)
    message = render(view)
    check_message(message.blocks, message.text)
    assert message.blocks[0]["type"] == "header"
    cells = [f["text"] for b in message.blocks if "fields" in b for f in b["fields"]]
    assert cells[:4] == ["*Who*", "*Cost · tokens*", "· key_&lt;ci&gt; _(unlinked id)_", "$500 · 1K"]
    assert cells[4:6] == ["1. Person 1 &amp; co", "$119 · 1.1K"]  # a plain rank, the amount in its own column
    assert all(len(b.get("fields", [])) <= 10 for b in message.blocks)
    assert "*You: #14* of 14 people · $1 · 1.1K tokens" in visible(message.blocks)
    assert "14 people and 1 unlinked id" in visible(message.blocks)
    assert "`" not in "".join(cells)  # ranks are not the loudest thing on it
    assert message.text == "Top spenders, November so far: $1,600 by 14 people; you are #14 with $1"


def test_help_escapes_every_placeholder():
    for view in (HelpView(), HelpView(unknown="<b>&", hint="Usage: `/tokens top [today|week|month]`")):
        message = render(view)
        check_message(message.blocks, message.text)
        assert "&lt;amount&gt;" in visible(message.blocks) and "&lt;external-id&gt;" in visible(message.blocks)


# -- digests -------------------------------------------------------------------------------------------

def digest(period: str = "day", **overrides) -> DigestView:
    first = date(2026, 11, 24) if period == "day" else date(2026, 11, 16)
    last = first if period == "day" else first + timedelta(days=6)
    view = DigestView(
        channel="C0AISPEND", period=period, first=first, last=last, timezone="America/New_York",
        as_of=datetime(2026, 11, 25, 9, 5, tzinfo=TZ), privacy="names", top=10, cost_usd=Decimal("18.05"),
        tokens=6_700_000, events=512, people=24, previous_cost_usd=Decimal("16.4"),
        baseline_cost_usd=Decimal("16.7"), baseline_label="7-day average" if period == "day" else "4-week average",
        leaderboard=tuple(LeaderRow(i, f"U0P{i:02d}", f"Person <{i}> & co", True, Decimal(20 - i), 100_000,
                                    Decimal(10)) for i in range(1, 11)),
        models=(ModelRow("claude-<4>", Decimal("7.57"), 2_050_000, 100), ModelRow("gpt-4o", Decimal("5.92"), 1, 1)),
        month="2026-11", month_to_date_usd=Decimal("427.52"), projected_usd=Decimal("485.32"),
        budgets_usd=Decimal(4025), budget_people=24,
        over_budget=(BudgetRow("U0P01", "Person <1> & co", Decimal(130), Decimal(150)),),
        anomalies=(AnomalyRow("U0P02", "Person <2> & co", first, Decimal(18), Decimal(2)),),
        unlinked=(UnlinkedRow("ci-<key>", Decimal("0.06"), 290_000),),
        unpriced=(UnpricedRow("acme-internal-7b", 6, 17_200),),
        movers=(MoverRow("U0P03", "Person <3> & co", Decimal(30), Decimal(12)),) if period == "week" else (),
    )
    return replace(view, **overrides)


@pytest.mark.parametrize("period", ["day", "week"])
def test_digest_is_a_headline_a_top_five_table_and_one_line(period):
    view = digest(period)
    blocks, text = digest_blocks(view), fallback_text(view)
    check_message(blocks, text)
    assert blocks[0]["type"] == "header"
    assert blocks[1]["text"]["text"].startswith("*$18.05* on 6.7M tokens · up 10% on ")
    assert "November so far $427.52, on pace for $485.32 of $4,025 in budgets (12%)" in blocks[1]["text"]["text"]
    [table] = [b for b in blocks if b["type"] == "table"]
    assert [c["text"] for c in table["rows"][0]] == ["Who", "Cost", "Tokens", "vs Mon" if period == "day"
                                                     else "vs prev wk"]
    assert len(table["rows"]) == 6 and table["rows"][1][0]["text"] == "1. Person <1> & co"  # raw text: as typed
    assert [s["align"] for s in table["column_settings"]] == ["left", "right", "right", "right"]
    assert len(blocks) <= 5 and len(visible(blocks)) < PHONE_SCREEN_TEXT
    shown = visible(blocks)
    assert "<@" not in shown  # display names in a channel: nobody is pinged
    for admin_matter in ("ci-&lt;key&gt;", "acme-internal-7b", "admin link", "reprice", "Data to check"):
        assert admin_matter not in shown  # admins see these in their App Home, not the channel
    assert shown.count("$18.05") == 1 and shown.count("$427.52") == 1  # nothing said twice
    if period == "week":
        assert blocks[2]["text"]["text"] == "*Biggest movers*: Person &lt;3&gt; &amp; co up $18"
        assert text.startswith("AI spend, week of Nov 16 – 22: $18.05")
    else:
        assert text == "AI spend, Tue, Nov 24: $18.05 across 6.7M tokens (up 10% on Monday)"


def test_digest_details_go_in_the_thread_without_repeating_the_top_five():
    view = digest()
    blocks = details_blocks(view)
    check_message(blocks, "details")
    [table] = [b for b in blocks if b["type"] == "table"]
    assert [r[0]["text"] for r in table["rows"][1:]] == [f"{i}. Person <{i}> & co" for i in range(6, 11)]
    shown = visible(blocks)
    assert "*Models*" in shown and "claude-&lt;4&gt;" in shown
    assert "Person &lt;1&gt; &amp; co: $130 of $150 (87%)" in shown and "*Unusual days (1)*" in shown
    assert "ci-&lt;key&gt;" not in shown  # still not the channel's business


def test_digest_privacy_anonymous_and_off():
    anonymous = digest_blocks(digest(privacy="anonymous", movers=()))
    assert "Person" not in visible(anonymous) and "names hidden" in visible(anonymous)
    assert [r[0]["text"] for r in next(b for b in anonymous if b["type"] == "table")["rows"][1:3]] == [
        "1. someone", "2. someone"]
    off = digest_blocks(digest("week", privacy="off"))
    assert not any(b["type"] == "table" for b in off) and "Person" not in visible(off)


def test_data_to_check_is_an_admin_section_with_what_to_do():
    blocks = data_check_blocks(DataCheckView("November", (("ci-<key>", Decimal("1.66"), 7_830_000),),
                                             (("acme-<7b>", 51, 143_000),)))
    assert validate_blocks(blocks, surface="home") == []
    check_escaped(blocks)
    assert blocks[0]["text"]["text"] == "Data to check" and "Only admins see this section." in visible(blocks)
    assert "`/tokens admin link &lt;id&gt; @person`" in visible(blocks)
    assert data_check_blocks(DataCheckView("November", (), ())) == []


# -- the chart -------------------------------------------------------------------------------------------

def test_chart_is_drawn_for_a_phone_marks_the_covered_day_and_says_the_takeaway():
    days = tuple(date(2026, 11, 1) + timedelta(days=i) for i in range(30))
    named = [ChartSeries(f"Person {k}", tuple(Decimal(k + (i % 5)) for i in range(30))) for k in (1, 2, 3)]
    chart = DailyChart("AI cost per day by person, Nov 1 – Nov 30", days,
                       (*named, ChartSeries(OTHERS, tuple(Decimal(1) for _ in range(30)))))
    width, height, info = png_info(render_png(chart))
    assert (width, height) == (1280, 960)
    assert info["tokenbot-series"] == "Person 1,Person 2,Person 3,everyone else"
    totals = chart.bar_totals()
    assert chart.takeaway() == f"Mon, Nov 30: {money(totals[-1])}, {change(totals[-1], totals[-2])} on the day before"
    alt = chart.alt_text()
    assert alt.startswith("Bar chart of AI cost per day, Nov 1 to Nov 30. Mon, Nov 30: ")
    assert "The 30-day average is" in alt and "Person 3 has the largest share" in alt
    assert info["Description"] == alt


# -- budget alerts ---------------------------------------------------------------------------------------

def alert(spent: str, threshold: str | None = "0.8", **extra) -> alerts.BudgetAlertView:
    fields = dict(user="U0ADA", name="Ada", kind="threshold", threshold=threshold and Decimal(threshold),
                  spent_usd=Decimal(spent),
                  limit_usd=Decimal(150), month_label="November 2026", resets_on=date(2026, 12, 1),
                  pace_per_day=Decimal(5), projected_usd=Decimal(210), month_end=date(2026, 11, 30))
    return alerts.BudgetAlertView(**{**fields, **extra})


@pytest.mark.parametrize(("spent", "threshold", "headline"), [
    ("148.50", "0.8", "You have used 99% of your $150 November budget: $1.50 left"),
    ("162", "1.0", "You are $12 over your $150 November budget (108%)"),
    ("150", "1.0", "You have used all of your $150 November budget"),
])
def test_alert_says_where_the_person_is_now(spent, threshold, headline):
    view = alert(spent, threshold)
    blocks, text = alerts.alert_blocks(view), alerts.alert_fallback(view)
    check_message(blocks, text)
    assert text == headline  # the notification says it too
    assert blocks[0]["text"]["text"].split("\n")[0].endswith(f"*{headline}*")
    assert "passed 80%" not in visible(blocks) and "$0 left" not in visible(blocks)
    assert primaries(blocks) == 1


def test_forecast_alert_and_the_approvers_note():
    view = alert("90", None, kind="forecast", runs_out_on=date(2026, 11, 25))
    check_message(alerts.alert_blocks(view), alerts.alert_fallback(view))
    assert alerts.alert_fallback(view) == "At this pace your $150 November budget runs out on Nov 25"
    over = alert("162", "1.0")
    note = alerts.approver_alert_blocks(over)
    check_message(note, alerts.approver_alert_fallback(over))
    assert alerts.approver_alert_fallback(over) == "Ada is $12 over their $150 November budget (108%)"
    assert "<@U0ADA> is $12 over their $150 November budget (108%)" in visible(note)


# -- the approval flow -------------------------------------------------------------------------------------

def request(status: str = "pending", **overrides) -> approvals.RequestView:
    view = approvals.RequestView(
        id=12, requester="U0ADA", amount_usd=Decimal(75), scope="month", month_label="November 2026", status=status,
        reason="load <test> & launch", approvers=("U0BOSS",), created_at=NOW, expires_at=NOW + timedelta(hours=72),
        spent_usd=Decimal("153.82"), limit_usd=Decimal(150), limit_after_usd=Decimal(225),
        projected_usd=Decimal("157.10"), last7_usd=Decimal("21.40"), prev7_usd=Decimal("18"),
        month_end=date(2026, 11, 30), names={"U0ADA": "Ada Lovelace", "U0BOSS": "Boss"},
    )
    return replace(view, **overrides)


def test_approval_dm_says_who_asks_and_does_the_arithmetic():
    view = request()
    blocks, text = approvals.approval_blocks(view), approvals.approval_fallback(view)
    check_message(blocks, text)
    assert blocks[0]["text"]["text"] == "Ada Lovelace asks for $75 more"
    assert text == "Ada Lovelace asks for $75 more (this month only); spent $153.82: $3.82 over $150"
    facts = [f["text"] for f in next(b for b in blocks if "fields" in b)["fields"]]
    assert facts == ["*Spent this month*\n$153.82: $3.82 over $150",
                     "*Last 7 days*\n$21.40, up 19% on the week before",
                     "*Pace*\nabout $157.10 by Nov 30: $7.10 over today's limit",
                     "*If approved*\nlimit $225: covers their pace, $67.90 to spare"]
    [buttons] = [b["elements"] for b in blocks if b["type"] == "actions"]
    assert [(b["text"]["text"], b.get("style")) for b in buttons] == [
        ("Approve", "primary"), ("Other amount", None), ("Deny", None)]  # Deny is not red
    assert all(b["accessibility_label"] for b in buttons) and "confirm" in buttons[0]
    assert ">load &lt;test&gt; &amp; launch" in visible(blocks)
    assert visible(blocks).count("$75") == 2  # the header and the confirm dialog: the ask is not repeated
    assert "#12" not in visible(blocks)


@pytest.mark.parametrize(("status", "first"), [
    ("approved", ":white_check_mark: *Approved* by <@U0BOSS>"),
    ("denied", ":x: *Denied* by <@U0BOSS>"),
    ("expired", ":hourglass: *Expired*"),
])
def test_after_a_decision_the_outcome_comes_first_and_the_buttons_go(status, first):
    view = request(status, decided_by="U0BOSS", decided_at=NOW + timedelta(hours=1), granted_usd=(
        Decimal(75) if status == "approved" else None), limit_after_usd=Decimal(225 if status == "approved" else 150),
        note="not <now>" if status == "denied" else None)
    blocks = approvals.approval_blocks(view)
    check_message(blocks, approvals.approval_fallback(view))
    assert blocks[0]["text"]["text"] == "Ada Lovelace asked for $75 more"
    assert blocks[1]["block_id"] == "outcome_12" and blocks[1]["text"]["text"].startswith(first)
    assert not any(b["type"] == "actions" for b in blocks)
    shown = visible(blocks)
    if status == "approved":
        assert "limit $150 → $225 for November only" in shown
    else:
        assert "The limit stays $150." in shown and "→" not in shown  # no "Limit before/after" of a non-change
    if status == "denied":
        assert ">not &lt;now&gt;" in shown


def test_requester_dms_name_the_ask_say_what_is_left_and_carry_no_numbers():
    approved = request("approved", decided_by="U0BOSS", decided_at=NOW, granted_usd=Decimal(75))
    denied = request("denied", decided_by="U0BOSS", decided_at=NOW, limit_after_usd=Decimal(150), note="not <now>")
    expired = request("expired", decided_at=NOW, limit_after_usd=Decimal(150), spent_usd=Decimal(40))
    expected = {
        "submitted": ("Your request for $75 more (this month only) went to Boss.", None),
        "approved": ("Approved: $75 more by Boss, this month only.", "Your limit is now $225: $71.18 left"),
        "denied": ("Denied by Boss: your request for $75 more (this month only).", "Your limit stays $150: $3.82 over"),
        "expired": ("Expired: nobody decided on your request for $75 more (this month only) in time.",
                    "Your limit stays $150: $110 left"),
    }
    for kind, view in (("submitted", request()), ("approved", approved), ("denied", denied), ("expired", expired)):
        notice = RequesterNotice(kind, view)
        blocks, text = notice_blocks(notice), notice_fallback(notice)
        check_message(blocks, text)
        headline, left = expected[kind]
        assert text == headline
        if left:
            assert left in visible(blocks)
        assert "#" not in text + visible(blocks)
    assert "“not &lt;now&gt;”" in visible(notice_blocks(RequesterNotice("denied", denied)))


def test_modals_fit_slack_and_carry_no_request_numbers():
    ctx = DecisionContext(12, "U0ADA", "75", "month", channel="DU0BOSS")
    for modal in (request_modal(Decimal(10_000)), amount_modal(ctx), deny_modal(ctx)):
        assert validate_view(modal) == []
        check_escaped(modal["blocks"])
        assert "#12" not in json.dumps(modal)
    assert request_modal(Decimal(10_000))["blocks"][1]["hint"]["text"].endswith("At most $10,000.")


# -- App Home ------------------------------------------------------------------------------------------------

def test_home_puts_pending_work_first_with_one_primary_button():
    pending = HomeSection(tuple(approvals.home_pending_blocks([request(), request(id=13, requester="U0BEN")])),
                          first=True)
    admin = HomeSection(tuple(data_check_blocks(DataCheckView("November", (("key", Decimal(1), 1),), ()))))
    view = home_view(HomeView(card(budget("500", pace="40", projected="980")), (pending, admin)))
    assert validate_view(view) == []
    check_escaped(view["blocks"])
    shown = visible(view["blocks"])
    assert view["blocks"][0]["text"]["text"] == "Waiting for your decision (2)"
    assert shown.index("Waiting for your decision") < shown.index("Your AI spend") < shown.index("Data to check")
    assert primaries(view["blocks"]) == 1  # the oldest request's Approve; the card's button stays quiet
    assert {b["block_id"] for b in view["blocks"] if b["type"] == "actions"} >= {"decide_12", "decide_13"}


def test_first_run_home_welcomes_instead_of_zeros():
    empty = figures("x", "0", events=0)
    view = home_view(HomeView(card(budget("0", "150"), today=empty, week=empty, month=empty, rank=None,
                                   top_models=()), (HomeSection(()),)))
    assert validate_view(view) == []
    shown = visible(view["blocks"])
    assert view["blocks"][0]["text"]["text"] == "Welcome to tokenbot" and "No usage from you yet" in shown
    assert "$0" not in shown and "request_budget" not in json.dumps(view) and primaries(view["blocks"]) == 0


def test_audit_uses_date_tokens_and_escapes_notes():
    line = AuditLine(NOW, "U0BOSS", "request.denied", "U0ADA", 12, {"requested_usd": "75", "note": "<no> & never"})
    blocks = audit_blocks(None, [line], {})
    assert validate_blocks(blocks, surface="message") == []
    check_escaped(blocks)
    assert slack_moment(NOW) in visible(blocks) and "&lt;no&gt; &amp; never" in visible(blocks)
