"""GET /metrics: Prometheus text with SPEC 4's counters, read over HTTP from the served bot."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families

from bot.outbox import enqueue
from tests.conftest import event


async def scrape(bot, headers: dict[str, str] | None = None) -> dict[tuple[str, tuple], float]:
    async with bot.http.get(bot.url + "/metrics", headers=headers or {}) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "text/plain"
        text = await resp.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_events_by_source_and_outcome_batch_sizes_and_latency(bot):
    status, _ = await bot.post_usage([event(1), event(2), event(2), {"id": "bad"}])
    assert status == 200
    status, _ = await bot.post_usage([event(1)])  # a resend
    assert status == 200
    samples = await scrape(bot)
    assert value(samples, "tokenbot_events_total", source="native", outcome="accepted") == 2
    assert value(samples, "tokenbot_events_total", source="native", outcome="duplicate") == 2
    assert value(samples, "tokenbot_events_total", source="native", outcome="rejected") == 1
    assert value(samples, "tokenbot_ingest_batch_events_count", source="native") == 2
    assert value(samples, "tokenbot_ingest_batch_events_sum", source="native") == 5
    assert value(samples, "tokenbot_request_seconds_count", method="POST", route="/webhooks/usage",
                 status="200") == 2
    assert value(samples, "tokenbot_ledger_commit_group_events_sum") >= 2
    assert value(samples, "tokenbot_rollup_folds_total") >= 1
    # defined for the subsystems that increment them (provider pulls, enforcers, breaker)
    names = {name for name, _ in samples}
    for family in ("tokenbot_breaker_trips_total", "tokenbot_outbox_backlog", "tokenbot_outbox_oldest_age_seconds"):
        assert family in names, family
    # an unknown path is one label value, not one per path
    await bot.get("/no/such/path/123")
    samples = await scrape(bot)
    assert value(samples, "tokenbot_request_seconds_count", method="GET", route="unmatched", status="404") == 1


async def test_outbox_backlog_and_oldest_age_are_read_at_scrape_time(bot):
    now = bot.services.clock.now()
    async with bot.services.db.write() as session:
        enqueue(session, msg_id="m-old", kind="limit.changed", payload={"a": 1}, now=now - timedelta(seconds=90))
        enqueue(session, msg_id="m-new", kind="limit.changed", payload={"a": 2}, now=now)
    samples = await scrape(bot)
    assert value(samples, "tokenbot_outbox_backlog") == 2
    assert 89 <= value(samples, "tokenbot_outbox_oldest_age_seconds") < 120


async def test_slack_api_errors_are_counted_by_method(bot, fake_slack):
    fake_slack.fail_next("users.info", error="user_not_found")
    try:
        await bot.services.slack.users_info(user="U0NOBODY")
    except Exception:
        pass
    samples = await scrape(bot)
    assert value(samples, "tokenbot_slack_api_errors_total", method="users.info", error="user_not_found") == 1


async def test_metrics_token_makes_the_endpoint_bearer_protected(make_bot):
    bot = await make_bot(metrics_token="scrape-secret")
    status, body = await bot.get("/metrics")
    assert status == 401 and "METRICS_TOKEN" in body["error"]
    status, _ = await bot.get("/metrics", headers={"Authorization": "Bearer wrong"})
    assert status == 401
    samples = await scrape(bot, {"Authorization": "Bearer scrape-secret"})
    assert ("tokenbot_outbox_backlog", ()) in samples


async def test_livez_answers_without_the_database(make_bot):
    bot = await make_bot(database_url="postgresql+asyncpg://postgres@127.0.0.1:1/none")  # nothing listens
    assert (await bot.get("/healthz"))[0] == 503
    assert await bot.get("/livez") == (200, {"status": "ok"})
