"""What people see of the provider sources (SPEC 10), through the served bot and the strict fake Slack:
the card's Claude Code output, `/tokens admin reconcile`, the admins' Data to check, output on the
leaderboard, and the `tokenbot sources` / `tokenbot reconcile` commands."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from decimal import Decimal

import pytest_asyncio

from tests.fakes.blockkit import validate_blocks
from tests.fakes.provider_admin import (
    ANTHROPIC_KEY,
    OPENAI_KEY,
    FakeAdminAPIs,
    claude_code_row,
    completion,
    hour,
    message,
    sources_for,
    this_hour,
)
from tests.test_sources import syncer
from tests.test_tokens_command import ask

ADMIN = "U0ADMIN"


@pytest_asyncio.fixture
async def fake_admin():
    async with FakeAdminAPIs(page_size=2) as fake:
        today = this_hour(2).date()  # the buckets' UTC day: the bill of the same day
        fake.anthropic_usage[hour(this_hour(2))] = [message(key="apikey_bob")]
        fake.anthropic_costs[today] = [{"workspace_id": "wrkspc_eng", "description": "Claude Sonnet 4.5",
                                        "amount": "1555"}]  # $15.55: $1 over the $14.55 of usage
        fake.claude_code[today] = [claude_code_row(today, "bob@acme.test", sessions=4, added=900, removed=120,
                                                   commits=6, prs=2, cost_cents="1455")]
        fake.openai_usage["completions"][hour(this_hour(2))] = [completion(user="user-bob", key="key_bob")]
        fake.openai_users = [{"id": "user-bob", "email": "bob@acme.test", "name": "Bob"}]
        fake.openai_costs[today] = [{"project_id": "proj_app", "line_item": "gpt-4o", "amount": Decimal("3.25")}]
        yield fake


@pytest_asyncio.fixture
async def sbot(make_bot, fake_slack, fake_admin):
    fake_slack.add_user("U0BOB", name="bob", email="bob@acme.test")
    fake_slack.add_user(ADMIN, name="admin", email="admin@acme.test")
    bot = await make_bot(sources=sources_for(fake_admin, show_output=True), admins=(ADMIN,),
                         identities={"apikey_bob": "U0BOB", "bob@acme.test": "U0BOB"})
    reports = await syncer(bot).run()
    assert all(r.ok for r in reports), [r.errors for r in reports]
    return bot


def shown(blocks) -> str:
    return json.dumps(blocks, ensure_ascii=False)


async def test_the_card_shows_claude_code_output_beside_spend(sbot):
    answer = await ask(sbot, "me", user="U0BOB")
    assert validate_blocks(answer["blocks"], surface="message") == []
    text = shown(answer["blocks"])
    assert "Claude Code this month" in text
    assert "4 sessions · 6 commits · 2 PRs · +900/−120 lines · $7.28 per PR" in text  # $14.55 / 2
    assert "$17.80" in text  # the ledger: $14.55 Anthropic + $3.25 OpenAI; the estimate is not added


async def test_admin_reconcile_names_the_drift_and_refuses_others(sbot):
    answer = await ask(sbot, "admin reconcile", user=ADMIN)
    assert validate_blocks(answer["blocks"], surface="message") == []
    text = shown(answer["blocks"])
    assert "*anthropic*: ledger $14.55 · bill $15.55 · drift -$1 (-6.4%) :warning:" in text
    assert "*openai*: ledger $3.25 · bill $3.25 · drift $0 (0.0%)" in text
    refused = await ask(sbot, "admin reconcile", user="U0BOB")
    assert "Only tokenbot admins" in refused["text"]
    bad = await ask(sbot, "admin reconcile November", user=ADMIN)
    assert "YYYY-MM" in bad["text"]


async def test_data_to_check_names_the_drift_for_admins(sbot):
    from bot.data_check import data_check_section

    blocks = await data_check_section(sbot.services, ADMIN)
    assert validate_blocks(blocks, surface="home") == []
    text = shown(blocks)
    assert "The ledger and the provider bill disagree" in text and "wrkspc_eng" in text
    assert await data_check_section(sbot.services, "U0BOB") == []


async def test_the_leaderboard_shows_output_per_dollar_when_asked(sbot):
    answer = await ask(sbot, "top month", user="U0BOB")
    assert validate_blocks(answer["blocks"], surface="message") == []
    assert "2 PRs · 6 commits · $9/PR" in shown(answer["blocks"])  # $17.80 of spend / 2 PRs


async def test_a_link_made_after_the_pull_moves_unlinked_bucket_spend(make_bot, fake_slack, fake_admin):
    from tests.test_sources import ledger

    fake_slack.add_user(ADMIN, name="admin", email="admin@acme.test")
    fake_slack.add_user("U0BOB", name="bob", email="bob@elsewhere.test")
    bot = await make_bot(sources=sources_for(fake_admin), admins=(ADMIN,))
    await syncer(bot).run("anthropic")
    assert (await ledger(bot)) == {"apikey_bob": Decimal("14.55")}  # unlinked: named by its key
    answer = await ask(bot, "admin link apikey_bob <@U0BOB|bob>", user=ADMIN)
    assert "apikey_bob" in answer["text"]
    await bot.services.ingestor.writer.settle()
    assert (await ledger(bot)) == {"U0BOB": Decimal("14.55")}


async def test_the_cli_syncs_prints_status_and_reconciles(tmp_path, fake_admin, database_url):
    env = {**os.environ, "DATABASE_URL": database_url, "OPENAI_ADMIN_KEY": OPENAI_KEY,
           "OPENAI_BASE_URL": fake_admin.openai_url, "ANTHROPIC_ADMIN_KEY": ANTHROPIC_KEY,
           "ANTHROPIC_BASE_URL": fake_admin.url, "TOKENBOT_CONFIG": ""}
    config = tmp_path / "tokenbot.toml"
    config.write_text('[sources.openai]\nbackfill_days = 2\n[sources.anthropic]\nbackfill_days = 2\n'
                      'count = "all"\n[reconcile]\ntolerance_pct = 5\n')
    env["TOKENBOT_CONFIG"] = str(config)

    async def tokenbot(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot.cli", *args, env=env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        return proc.returncode, out.decode(), err.decode()

    code, out, err = await tokenbot("sources", "sync")
    assert code == 0, err
    assert "openai: 1 new buckets" in out and "anthropic: 1 new buckets" in out
    code, out, err = await tokenbot("sources", "status")
    assert code == 0, err
    assert "completions" in out and "cursor" in out and "claude_code" in out
    code, out, err = await tokenbot("reconcile")
    assert code == 0, err
    assert "tolerance 5%" in out and "OVER" in out and "wrkspc_eng" in out  # 6.4% > 5%
    code, _, err = await tokenbot("sources", "sync", "--source", "nope")
    assert code == 2 and "invalid choice" in err


async def test_the_digest_leaderboard_shows_output_beside_spend(sbot):
    from datetime import time

    from bot.digests.builder import build_digest
    from bot.digests.periods import Subscription
    from bot.views.digest import digest_blocks

    today = sbot.services.clock.today()
    view = await build_digest(sbot.services, Subscription("C0SPEND", time(9)), today.replace(day=1), today)
    [bob] = [r for r in view.leaderboard if r.user_key == "U0BOB"]
    assert bob.output == "2 PRs · 6 commits · $9/PR"
    blocks = digest_blocks(view)
    assert validate_blocks(blocks, surface="message") == []
    assert "2 PRs · 6 commits · $9/PR" in shown(blocks)
