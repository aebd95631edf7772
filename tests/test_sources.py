"""Provider sources (SPEC 10) against fake Admin APIs, through the served bot and the real database.

Each test fills the fake OpenAI / Anthropic Admin API (tests/fakes/provider_admin.py) with buckets
whose prices are known, pulls with `SourceSync` (what the scheduled job and `tokenbot sources sync`
run), and checks the ledger, its rollups (equal to the raw events), and the bill side.
"""

from __future__ import annotations

from decimal import Decimal

import pytest_asyncio

from bot.providers.sync import SourceSync
from tests.fakes.provider_admin import FakeAdminAPIs, completion, hour, sources_for, this_hour
from tests.test_rollups_property import assert_rollups_match_raw


@pytest_asyncio.fixture
async def fake_admin():
    async with FakeAdminAPIs(page_size=2) as fake:
        yield fake


async def no_sleep(_seconds: float) -> None:
    return None


def syncer(bot) -> SourceSync:
    return SourceSync(bot.services, base_seconds=0.001, sleep=no_sleep)


async def ledger(bot) -> dict[str, Decimal]:
    rows = await bot.sql("SELECT user_key, cost_usd FROM usage_events")
    out: dict[str, Decimal] = {}
    for key, cost in rows:
        out[key] = out.get(key, Decimal(0)) + _money(cost)
    return out


def _money(value) -> Decimal:
    from tests.conftest import IS_POSTGRES

    return Decimal(value) if IS_POSTGRES else Decimal(int(value)).scaleb(-12)


async def test_openai_buckets_priced_attributed_and_a_grown_bucket_moves_rollups_by_the_difference(
        make_bot, fake_admin):
    fake_admin.openai_users = [{"id": "user-alice", "email": "alice@acme.test", "name": "Alice"}]
    fake_admin.openai_usage["completions"][hour(this_hour(3))] = [completion()]
    fake_admin.openai_usage["completions"][hour(this_hour(2))] = [completion(user=None, key="key_ci", cached=0)]
    bot = await make_bot(sources=sources_for(fake_admin), identities={"alice@acme.test": "U0ALICE"})

    [report] = await syncer(bot).run("openai")
    assert report.ok, report.errors
    assert (report.new, report.changed) == (2, 0)
    spend = await ledger(bot)
    assert spend["U0ALICE"] == Decimal("3.25")  # 0.8M x $2.50 + 0.2M cached x $1.25 + 0.1M x $10
    assert spend["key_ci"] == Decimal("3.5")  # no user: the key names the unlinked spend
    await assert_rollups_match_raw(bot.services.db)

    fake_admin.openai_usage["completions"][hour(this_hour(3))] = [completion(output=200_000)]  # it grew
    [again] = await syncer(bot).run("openai")
    assert (again.new, again.changed, again.unchanged) == (0, 1, 1)
    assert (await ledger(bot))["U0ALICE"] == Decimal("4.25")
    await assert_rollups_match_raw(bot.services.db)

    [third] = await syncer(bot).run("openai")
    assert (third.new, third.changed, third.ledger_rows) == (0, 0, 0)
    assert len(await bot.sql("SELECT event_id FROM usage_events")) == 3  # two buckets, one difference row
