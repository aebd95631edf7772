"""Teams (SPEC 13) end to end: config, who is charged, team rollups, the team card, admin, sync,
team budgets in the limits API and alerts, the chargeback export (CLI and HTTP).

The served bot talks to the strict fake Slack; the clock is fixed at Wed 18 Nov 2026, 12:00 in
New York. Teams: platform (config members ada and bob, lead bob, $100), data (ada in config,
the user group S0DATA, no lead, $50), ml (only the user group S0ML, lead cat, $1,000).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio

from bot.clock import SettableClock
from bot.config import ConfigError, parse_toml_text
from bot.teams.config import TeamConfig
from bot.teams.sync import sync_teams
from tests.conftest import API_TOKEN
from tests.test_tokens_command import ask, flat

TZ = ZoneInfo("America/New_York")
NOW = datetime(2026, 11, 18, 17, 0, tzinfo=UTC)
TEAMS = {
    "platform": TeamConfig("platform", members=("U0ADA", "U0BOB"), lead="U0BOB", channel="C0PLAT",
                           monthly_usd=Decimal(100), aliases=("proj_plat", "litellm-team-7")),
    "data": TeamConfig("data", members=("U0ADA",), usergroup="S0DATA", monthly_usd=Decimal(50)),
    "ml": TeamConfig("ml", usergroup="S0ML", lead="U0CAT", monthly_usd=Decimal(1000)),
}


def local(day: int, hour: int = 10, month: int = 11) -> str:
    return datetime(2026, month, day, hour, tzinfo=TZ).isoformat()


def usage(n, user, cost, *, when=None, model="gpt-4o", **extra) -> dict:
    return {"id": f"t-{n}", "timestamp": when or local(17), "user": user, "model": model, "input_tokens": 1000,
            "output_tokens": 100, "cost_usd": str(cost), **extra}


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(TZ, NOW)


@pytest_asyncio.fixture
async def tbot(make_bot, fake_slack, clock):
    for user_id, name in [("U0ADA", "ada"), ("U0BOB", "bob"), ("U0CAT", "cat"), ("U0DAN", "dan"),
                          ("U0EVE", "eve"), ("U0ADMIN", "admin"), ("U0FIN", "fin")]:
        fake_slack.add_user(user_id, name=name, email=f"{name}@acme.example")
    fake_slack.usergroups = {"S0DATA": ["U0DAN", "U0ADA"], "S0ML": ["U0CAT", "U0EVE"]}
    bot = await make_bot(clock=clock, admins=("U0ADMIN",), teams=TEAMS, default_approvers=("U0FIN",))
    await sync_teams(bot.services)
    return bot


async def ingest(bot, events) -> None:
    status, body = await bot.post_usage(events)
    assert status == 200, body
    assert body["accepted"] == len(events), body
    await bot.services.background.drain()  # after-ingest checks (team alerts)


async def team_rollup(bot) -> dict[str, Decimal]:
    rows = await bot.sql("SELECT team, cost_usd FROM usage_team_monthly WHERE month = '2026-11'")
    out: dict[str, Decimal] = {}
    for team, cost in rows:
        value = Decimal(str(cost)) if bot.services.db.dialect != "sqlite" else Decimal(int(cost)).scaleb(-12)
        out[team] = out.get(team, Decimal(0)) + value
    return out


# -- config ---------------------------------------------------------------------------------------------

def test_config_parses_teams_in_file_order_with_aliases_and_team_approver():
    values = parse_toml_text("""
[approvals]
team_approver = ["U0FIN"]
[teams.platform]
members = ["U0ADA"]
usergroup = "S0PLAT"
lead = "U0BOB"
channel = "C0PLAT"
monthly_usd = 5000
aliases = ["proj_abc"]
[teams.data]
members = ["U0ADA"]
""")
    assert list(values["teams"]) == ["platform", "data"]
    platform = values["teams"]["platform"]
    assert (platform.members, platform.usergroup, platform.lead, platform.channel, platform.monthly_usd,
            platform.aliases) == (("U0ADA",), "S0PLAT", "U0BOB", "C0PLAT", Decimal(5000), ("proj_abc",))
    assert values["teams"]["data"].monthly_usd is None
    assert values["team_approvers"] == ("U0FIN",)


@pytest.mark.parametrize("text, named", [
    ('[teams.Platform]\nmembers = ["U0ADA"]', "teams.Platform"),
    ('[teams.p]\nusergroup = "platform"', "teams.p.usergroup"),
    ('[teams.p]\nchannel = "#general"', "teams.p.channel"),
    ('[teams.p]\nmonthly_usd = -5', "teams.p.monthly_usd"),
    ('[teams.p]\nlead = "bob"', "teams.p.lead"),
    ('[teams.p]\nbudget = 5', "teams.p.budget"),
    ('[teams.p]\naliases = ["x"]\n[teams.q]\naliases = ["x"]', "teams.q.aliases"),
])
def test_bad_team_config_names_the_key(text, named):
    with pytest.raises(ConfigError) as exc:
        parse_toml_text(text)
    assert str(exc.value).startswith(named)


# -- who is charged ---------------------------------------------------------------------------------------

async def test_events_are_charged_to_alias_then_primary_team_and_teams_sum_to_the_org(tbot):
    await ingest(tbot, [
        usage(1, "U0ADA", "1.10"),  # in platform (config) and data (config + group): platform, first in file
        usage(2, "U0BOB", "2.20"),  # platform
        usage(3, "U0DAN", "3.30"),  # data, from its user group
        usage(4, "U0EVE", "4.40"),  # ml, from its user group
        usage(5, "U0DAN", "5.50", team="proj_plat"),  # the event's team field names platform
        usage(6, "U0ZED", "6.60"),  # in no team: unattributed
        usage(7, "U0EVE", "0.70", team="unknown-team"),  # an unknown team field: the person's team
    ])
    teams = await team_rollup(tbot)
    assert teams == {"platform": Decimal("8.80"), "data": Decimal("3.30"), "ml": Decimal("5.10"),
                     "": Decimal("6.60")}
    org = await tbot.sql("SELECT cost_usd FROM usage_events")
    total = sum((Decimal(str(c)) if tbot.services.db.dialect != "sqlite" else Decimal(int(c)).scaleb(-12)
                 for (c,) in org), Decimal(0))
    assert sum(teams.values()) == total == Decimal("23.80")


async def test_member_removed_mid_month_keeps_past_spend_with_the_team(tbot, fake_slack, clock):
    await ingest(tbot, [usage(1, "U0EVE", "4")])
    fake_slack.usergroups["S0ML"] = ["U0CAT"]  # eve leaves the group
    clock.advance(hours=2)
    outcomes = await sync_teams(tbot.services)
    assert [(o.team, o.removed) for o in outcomes if o.team == "ml"] == [("ml", 1)]
    await ingest(tbot, [usage(2, "U0EVE", "6", when=local(18, 13))])
    assert await team_rollup(tbot) == {"ml": Decimal(4), "": Decimal(6)}
    rows = await tbot.sql("SELECT user_id, source, until IS NULL FROM team_memberships WHERE team = 'ml' "
                          "ORDER BY user_id")
    assert [(u, s, bool(open_)) for u, s, open_ in rows] == [("U0CAT", "usergroup", True),
                                                             ("U0EVE", "usergroup", False)]
    # a rebuild from the events gives the same: the team was stored with each event
    from storage.rewrites import rebuild_rollups
    async with tbot.services.db.write() as session:
        await rebuild_rollups(session)
    assert await team_rollup(tbot) == {"ml": Decimal(4), "": Decimal(6)}


async def test_linking_an_id_moves_its_team_rows_with_the_person(tbot):
    await ingest(tbot, [usage(1, "key_live_abc", "2", team="proj_plat"), usage(2, "U0BOB", "1"),
                        usage(3, "key_live_abc", "4")])  # in no team until the key is linked
    assert await team_rollup(tbot) == {"platform": Decimal(3), "": Decimal(4)}
    await tbot.services.identities.link("key_live_abc", "U0DAN", source="admin", set_by="U0ADMIN")
    await tbot.services.ingestor.writer.settle()
    rows = await tbot.sql("SELECT team, user_key, events FROM usage_team_monthly ORDER BY team, user_key")
    # the event its team field named stays with platform; the one in no team joins dan's team (data)
    assert [tuple(r) for r in rows] == [("data", "U0DAN", 1), ("platform", "U0BOB", 1), ("platform", "U0DAN", 1)]
    assert await team_rollup(tbot) == {"platform": Decimal(3), "data": Decimal(4)}


# -- user groups ------------------------------------------------------------------------------------------

async def test_a_vanished_user_group_is_named_to_admins_once_and_nothing_crashes(tbot, fake_slack):
    del fake_slack.usergroups["S0ML"]
    for _ in range(2):
        outcomes = await sync_teams(tbot.services)
        assert {o.team: o.error for o in outcomes} == {"data": None, "ml": "no_such_subteam"}
    dms = [m for m in fake_slack.messages_in("DU0ADMIN") if "S0ML" in m.get("text", "")]
    assert len(dms) == 1 and "no_such_subteam" in dms[0]["text"]
    # members stay as last synced: eve's spend still goes to ml
    await ingest(tbot, [usage(1, "U0EVE", "1")])
    assert await team_rollup(tbot) == {"ml": Decimal(1)}
    answer = await ask(tbot, "admin team", user="U0ADMIN")
    assert "no_such_subteam" in flat(answer)
    # fixed: a later failure is named again
    fake_slack.usergroups["S0ML"] = ["U0CAT"]
    await sync_teams(tbot.services)
    del fake_slack.usergroups["S0ML"]
    await sync_teams(tbot.services)
    assert len([m for m in fake_slack.messages_in("DU0ADMIN") if "S0ML" in m.get("text", "")]) == 2


async def test_missing_scope_is_a_sync_error_too(tbot, fake_slack):
    fake_slack.scopes_missing = {"usergroups:read"}
    outcomes = await sync_teams(tbot.services)
    assert {o.error for o in outcomes} == {"missing_scope"}
    assert any("usergroups:read" in m.get("text", "") for m in fake_slack.messages_in("DU0ADMIN"))


async def test_admin_team_lists_teams_and_syncs_on_demand(tbot, fake_slack):
    answer = await ask(tbot, "admin team", user="U0ADMIN")
    text = flat(answer)
    for name in ("platform", "data", "ml"):
        assert f"*{name}*" in text
    assert "no lead" in text and "S0DATA" in text
    fake_slack.usergroups["S0ML"].append("U0NEW")
    answer = await ask(tbot, "admin team sync", user="U0ADMIN")
    assert "ml" in flat(answer) and "+1" in flat(answer)
    refused = await ask(tbot, "admin team", user="U0ADA")
    assert "Only tokenbot admins" in flat(refused)


# -- the team card ------------------------------------------------------------------------------------------

async def test_team_card_defaults_to_your_team_and_ranks_members(tbot):
    await ingest(tbot, [usage(1, "U0ADA", "30"), usage(2, "U0BOB", "50", model="claude-sonnet-4-5"),
                        usage(3, "U0BOB", "5", when=local(2, 10))])
    answer = await ask(tbot, "team", user="U0ADA")
    text = flat(answer)
    assert "Team platform" in text
    assert "$85 spent, $15 left of the team's $100 November 2026 budget (85%)" in text
    assert text.index("<@U0BOB>\n$55") < text.index("<@U0ADA> (you)")
    assert "claude-sonnet-4-5" in text
    other = await ask(tbot, "team ml", user="U0ADA")
    assert "Team ml" in flat(other) and "$0 spent" in flat(other)


async def test_team_card_answers_unknown_team_and_no_team_clearly(tbot):
    unknown = await ask(tbot, "team nosuch", user="U0ADA")
    assert "no team called `nosuch`" in flat(unknown) and "`platform`" in flat(unknown)
    alone = await ask(tbot, "team", user="U0FIN")
    assert "You are not in a team" in flat(alone)


async def test_team_card_applies_anonymous_leaderboard(make_bot, fake_slack, clock):
    fake_slack.add_user("U0ADA", name="ada")
    fake_slack.add_user("U0BOB", name="bob")
    bot = await make_bot(clock=clock, teams=TEAMS, leaderboard="anonymous")
    await ingest(bot, [usage(1, "U0ADA", "3"), usage(2, "U0BOB", "5")])
    members = flat(await ask(bot, "team platform", user="U0ADA")).split("Members this month")[1]
    assert "1. someone" in members and "U0BOB" not in members and "bob" not in members
    assert "2. *<@U0ADA> (you)*" in members


# -- team budgets --------------------------------------------------------------------------------------------

async def test_limits_api_names_the_team_and_refuses_when_the_team_is_over(tbot):
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    await ingest(tbot, [usage(1, "U0ADA", "60")])
    status, body = await tbot.get("/api/v1/limits/U0ADA", headers=headers)
    assert status == 200
    assert body["team"] == {"name": "platform", "limit_usd": "100", "spent_usd": "60", "remaining_usd": "40",
                            "allowed": True}
    assert body["allowed"] is True and body["reason"] is None
    await ingest(tbot, [usage(2, "U0BOB", "45")])  # bob is within his own $200, the team is over
    status, body = await tbot.get("/api/v1/limits/U0BOB", headers=headers)
    assert body["allowed"] is False and body["reason"] == "team_budget"
    assert body["team"]["allowed"] is False and body["remaining_usd"] == "155"
    status, body = await tbot.get("/api/v1/limits/U0ZED", headers=headers)
    assert status == 404
    await ingest(tbot, [usage(3, "U0DAN", "250")])  # over his own $200 and his team's $50: his own comes first
    status, body = await tbot.get("/api/v1/limits/U0DAN", headers=headers)
    assert (body["allowed"], body["reason"], body["team"]["name"], body["team"]["allowed"]) == (
        False, "budget", "data", False)


async def test_team_threshold_alerts_go_to_the_lead_once(tbot, fake_slack):
    await ingest(tbot, [usage(1, "U0ADA", "55")])
    await ingest(tbot, [usage(2, "U0BOB", "1")])
    await ingest(tbot, [usage(3, "U0BOB", "30")])
    alerts = [m["text"] for m in fake_slack.messages_in("DU0BOB") if "Team *platform*" in m.get("text", "")]
    assert len([a for a in alerts if "50%" in a]) == 1
    assert len([a for a in alerts if "80%" in a]) == 1
    rows = await tbot.sql("SELECT threshold FROM alerts_sent WHERE user_key = 'team:platform' AND kind = 'threshold' "
                          "ORDER BY threshold")
    assert [r[0] for r in rows] == ["0.5", "0.8"]


async def test_a_team_without_lead_alerts_its_approvers(tbot, fake_slack):
    await ingest(tbot, [usage(1, "U0DAN", "60")])  # data: $50, no lead
    to_fin = [m["text"] for m in fake_slack.messages_in("DU0FIN") if "Team *data*" in m.get("text", "")]
    assert to_fin and any("whole $50 budget" in t for t in to_fin)


# -- chargeback export ------------------------------------------------------------------------------------------

async def test_export_over_http_sums_to_the_month_and_keeps_unattributed_apart(tbot):
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    await ingest(tbot, [usage(1, "U0ADA", "1.005"), usage(2, "U0EVE", "2.25", project="search"),
                        usage(3, "U0ZED", "0.333333"), usage(4, "U0BOB", "9", when=local(30, 10, month=10))])
    status, rows = await tbot.get("/api/v1/export?month=2026-11&by=team", headers=headers)
    assert status == 200
    assert [(r["key"], r["spend_usd"], r["unattributed"], r["calls"]) for r in rows] == [
        ("ml", "2.25", False, 1), ("platform", "1.005", False, 1), ("(none)", "0.333333", True, 1)]
    month_total = Decimal("3.588333")
    for by in ("team", "person", "model", "project"):
        status, rows = await tbot.get(f"/api/v1/export?month=2026-11&by={by}", headers=headers)
        assert sum(Decimal(r["spend_usd"]) for r in rows) == month_total, by
    status, body = await tbot.get("/api/v1/export?month=2026-11&by=project&format=csv", headers=headers)
    assert body.splitlines()[0] == ("project,unattributed,spend_usd,spend_usd_cents,input_tokens,output_tokens,"
                                    "tokens,calls")
    assert "(none),true,1.338333,1.34,2000,200,2200,2" in body


async def test_export_empty_month_and_bad_parameters(tbot):
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    assert await tbot.get("/api/v1/export?month=2025-01&by=team", headers=headers) == (200, [])
    status, body = await tbot.get("/api/v1/export?month=2025-01&by=team&format=csv", headers=headers)
    assert (status, body) == (200, "team,unattributed,spend_usd,spend_usd_cents,input_tokens,output_tokens,tokens,"
                                   "calls\n")
    status, body = await tbot.get("/api/v1/export?month=2026-11&by=cost_centre", headers=headers)
    assert status == 400 and "by: unknown 'cost_centre'" in body["error"]
    status, body = await tbot.get("/api/v1/export?month=november&by=team", headers=headers)
    assert status == 400 and body["error"].startswith("month:")
    status, _ = await tbot.get("/api/v1/export?month=2026-11&by=team")
    assert status == 401


# -- team raise requests -----------------------------------------------------------------------------------------

async def settle(bot) -> None:
    await bot.services.background.drain()


async def test_the_lead_asks_for_a_team_raise_and_an_approver_approves_it_with_the_same_buttons(tbot, fake_slack):
    from tests.support.approvals import approval_messages, buttons, click

    await ingest(tbot, [usage(1, "U0ADA", "95")])
    refused = await ask(tbot, "request team platform 50 launch week", user="U0ADA")
    assert "Only team platform's lead" in flat(refused)
    answer = await ask(tbot, "request team platform 50 launch week", user="U0BOB")
    assert "Team platform's request for $50 more" in flat(answer) and "<@U0FIN>" in flat(answer)
    again = await ask(tbot, "request team 20", user="U0BOB")  # the lead's own team by default
    assert "already has a request waiting" in flat(again)
    await settle(tbot)
    [message] = approval_messages(fake_slack, "U0FIN")
    assert "team *platform*" in str(message["blocks"])
    card = flat(await ask(tbot, "team platform", user="U0BOB"))
    assert "A team raise of $50" in card
    # the lead cannot decide the team's own request, even with the button
    own = buttons(message["blocks"])["approve_request"]
    await click(tbot, "U0BOB", own, channel="DU0FIN", message=message)
    await settle(tbot)
    rows = await tbot.sql("SELECT status FROM budget_requests")
    assert rows == [("pending",)]
    await click(tbot, "U0FIN", own, channel="DU0FIN", message=message)
    await settle(tbot)
    assert await tbot.sql("SELECT status, granted_usd IS NOT NULL FROM budget_requests") in ([("approved", True)],
                                                                                              [("approved", 1)])
    raised = await tbot.sql("SELECT user_key, month FROM budget_raises")
    assert raised == [("team:platform", "2026-11")]
    card = flat(await ask(tbot, "team platform", user="U0BOB"))
    assert "of the team's $150 November 2026 budget" in card
    _, body = await tbot.get("/api/v1/limits/U0ADA", headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert body["team"]["limit_usd"] == "150" and body["allowed"] is True
    assert any("approved" in m.get("text", "").lower() for m in fake_slack.messages_in("DU0BOB"))


async def test_a_team_without_lead_can_ask_through_a_member_and_the_lead_approves_members(tbot):
    answer = await ask(tbot, "request team data 10", user="U0DAN")  # a synced member of data
    assert "went to <@U0FIN>" in flat(answer)
    outsider = await ask(tbot, "request team data 10", user="U0CAT")
    assert "has no lead" in flat(outsider)
    # the lead is the default approver of the team's members (no profile field, no assignment)
    approvers = await tbot.services.approvers.resolve("U0EVE")
    assert approvers.users == ("U0CAT",) and approvers.source == "team lead"


# -- digests -------------------------------------------------------------------------------------------------

async def test_org_digest_has_a_teams_section_that_adds_up_and_export_equals_its_month(tbot, fake_slack):
    from datetime import date

    from bot.digests.builder import build_digest
    from bot.digests.delivery import deliver
    from bot.digests.periods import Subscription
    from bot.views.digest import digest_text

    await ingest(tbot, [usage(1, "U0ADA", "10", when=local(16)), usage(2, "U0ADA", "20"),
                        usage(3, "U0EVE", "5"), usage(4, "U0ZED", "2.5"), usage(5, "U0DAN", "1.25", when=local(3))])
    sub = Subscription("C0ORG", datetime(2026, 1, 1, 9).time())
    view = await build_digest(tbot.services, sub, date(2026, 11, 17), date(2026, 11, 17))
    lines = {line.team: line for line in view.teams}
    assert set(lines) == {"platform", "data", "ml", ""}
    assert sum(line.cost_usd for line in view.teams) == view.cost_usd == Decimal("27.5")
    assert lines["platform"].previous_usd == Decimal(10) and lines["platform"].month_usd == Decimal(30)
    assert "30% of its $100 month budget" in lines["platform"].text()
    text = digest_text(view)
    assert "Teams" in text and "(no team): $2.50" in text
    # the chargeback export of the month equals the digest's month total
    _, rows = await tbot.get("/api/v1/export?month=2026-11&by=team",
                             headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert sum(Decimal(r["spend_usd"]) for r in rows) == view.month_to_date_usd == Decimal("38.75")
    outcome = await deliver(tbot.services, sub, date(2026, 11, 17), date(2026, 11, 17))
    assert outcome.status == "posted"
    thread = fake_slack.thread_of("C0ORG", outcome.message_ts)
    assert any("*Teams*" in str(m.get("blocks")) for m in thread)


async def test_each_team_channel_gets_its_daily_digest_once(tbot, fake_slack):
    from bot.teams.digest import team_digest_sweep

    await ingest(tbot, [usage(1, "U0ADA", "10"), usage(2, "U0BOB", "4"), usage(3, "U0EVE", "99")])
    first = await team_digest_sweep(tbot.services)
    again = await team_digest_sweep(tbot.services)
    assert [o.status for o in first] == ["posted"] and [o.status for o in again] == ["already-posted"]
    [message] = fake_slack.channel_messages("C0PLAT")
    text = flat(message)
    assert "Team platform" in text and "$14" in text and "$99" not in text
    assert text.index("<@U0ADA>") < text.index("<@U0BOB>")


async def test_team_digest_to_a_channel_the_bot_is_not_in_fails_once_and_tells_admins(tbot, fake_slack):
    from bot.teams.digest import team_digest_sweep

    fake_slack.not_in_channels.add("C0PLAT")
    assert [o.status for o in await team_digest_sweep(tbot.services)] == ["failed"]
    assert [o.status for o in await team_digest_sweep(tbot.services)] == ["failed"]
    told = [m for m in fake_slack.messages_in("DU0ADMIN") if "C0PLAT" in m.get("text", "")]
    assert len(told) == 1


# -- the export command -----------------------------------------------------------------------------------------

async def test_tokenbot_export_cli_csv_json_empty_and_unknown_by(tbot, tmp_path):
    import asyncio
    import json

    from tests.test_cli import tokenbot

    await ingest(tbot, [usage(1, "U0ADA", "1.005"), usage(2, "U0ZED", "2", project="search")])
    url = tbot.services.settings.database_url

    def run(*args):
        return tokenbot("export", *args, cwd=tmp_path, DATABASE_URL=url)

    done = await asyncio.to_thread(run, "--month", "2026-11", "--by", "team")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "team,unattributed,spend_usd,spend_usd_cents,input_tokens,output_tokens,tokens,calls",
        "(none),true,2,2.00,1000,100,1100,1", "platform,false,1.005,1.01,1000,100,1100,1"]
    done = await asyncio.to_thread(run, "--month", "2026-11", "--by", "project", "--format", "json")
    assert [(r["key"], r["spend_usd"]) for r in json.loads(done.stdout)] == [("search", "2"), ("(none)", "1.005")]
    done = await asyncio.to_thread(run, "--month", "2026-01", "--by", "person", "--format", "json")
    assert (done.returncode, json.loads(done.stdout)) == (0, [])
    done = await asyncio.to_thread(run, "--month", "2026-11", "--by", "cost-centre")
    assert done.returncode == 2 and "by: unknown 'cost-centre'" in done.stderr and not done.stdout


async def test_team_forecast_alert_once_and_concurrent_checks_claim_once(tbot, fake_slack):
    import asyncio

    from bot.teams.alerts import check_teams

    await ingest(tbot, [usage(1, "U0ADA", "70")])  # $70 by the 18th: on pace for about $117 of $100
    forecasts = [m["text"] for m in fake_slack.messages_in("DU0BOB") if "on pace for about $116.67" in m["text"]]
    assert len(forecasts) == 1
    await ingest(tbot, [usage(2, "U0BOB", "1")])
    results = await asyncio.gather(*(check_teams(tbot.services, ["platform"]) for _ in range(3)))
    assert sum(len(r) for r in results) == 0  # everything already claimed: nobody sends twice
    rows = await tbot.sql("SELECT kind, threshold FROM alerts_sent WHERE user_key = 'team:platform' ORDER BY kind")
    assert [tuple(r) for r in rows] == [("forecast", ""), ("threshold", "0.5")]


async def test_the_team_card_button_opens_the_team_raise_form_and_submitting_it_asks(tbot, fake_slack):
    from tests.support.approvals import approval_messages, buttons, click, submit

    card = await ask(tbot, "team", user="U0BOB")
    button = buttons(card["blocks"])["team_raise_open"]
    assert button["value"] == "platform"
    assert "team_raise_open" not in buttons((await ask(tbot, "team platform", user="U0ADA"))["blocks"])
    await click(tbot, "U0ADA", button, channel="DU0ADA")  # not the lead: told why, no form
    await settle(tbot)
    assert not fake_slack.calls_to("views.open")
    await click(tbot, "U0BOB", button, channel="DU0BOB")
    await settle(tbot)
    [opened] = fake_slack.calls_to("views.open")
    form = fake_slack.views[opened.response["view"]["id"]]
    assert form["callback_id"] == "team_raise_modal" and form["private_metadata"] == "platform"
    status, body = await submit(tbot, "U0BOB", form, {"amount": "lots", "reason": None})
    assert status == 200 and body["response_action"] == "errors"
    status, body = await submit(tbot, "U0BOB", form, {"amount": "75", "reason": "launch <week>"})
    assert status == 200
    await settle(tbot)
    [message] = approval_messages(fake_slack, "U0FIN")
    assert "team *platform*" in str(message["blocks"]) and "launch &lt;week&gt;" in str(message["blocks"])
    status, body = await submit(tbot, "U0BOB", form, {"amount": "20", "reason": None})
    assert body["response_action"] == "errors" and "already has a request waiting" in str(body["errors"])
    card = await ask(tbot, "team", user="U0BOB")
    assert "team_raise_open" not in buttons(card["blocks"]) and "A team raise of $75" in flat(card)
