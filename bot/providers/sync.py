"""Pulling the sources: leases, windows, cursors, and what happens when a provider says no.

One poll of a source, under its lease (`source_state`, endpoint "*"), so several processes never
poll the same window: for each endpoint, the window runs from the cursor less `reopen_hours` (buckets
that recent can still grow), or `backfill_days` back on the first poll, or `--since`, to now. Each page
is written in one transaction (buckets, their ledger rows, the lease renewed); the cursor moves only
when every page of the window is in. A poll that dies halfway leaves the cursor where it was: the
next one reads the same pages again and the buckets it already has change nothing.

A refused admin key stops the source: one status line, one DM to the admins per outage (claimed in
the database, so one across processes and restarts), one WARNING; the next successful poll clears it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.clock import month_key
from bot.people import tell_admins
from bot.providers import buckets as bk
from bot.providers import pulls
from bot.providers.admin_http import AnthropicAdmin, KeyRefused, SourceUnavailable
from bot.providers.settings import SourceConfig
from bot.scheduler import JobSpec
from bot.services import Services
from bot.usage import IngestResult
from storage import sources_repo as repo

log = logging.getLogger(__name__)
LEASE_SECONDS = 600.0
ENDPOINTS = {"openai": ("users", *pulls.OPENAI_USAGE, "costs"), "anthropic": ("messages", "costs", "claude_code")}


@dataclass
class PollReport:
    source: str
    ok: bool = True
    busy: bool = False
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    ledger_rows: int = 0
    costs: int = 0
    claude_code: int = 0
    users: int = 0
    ahead: int = 0
    late_months: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        if self.busy:
            return f"{self.source}: another process is polling it now"
        text = (f"{self.source}: {self.new} new buckets, {self.changed} changed, {self.unchanged} unchanged; "
                f"{self.ledger_rows} ledger rows; {self.costs} cost lines")
        if self.source == "anthropic":
            text += f"; {self.claude_code} Claude Code days"
        if self.ahead:
            text += f"; {self.ahead} buckets dated ahead of our clock left for the next poll"
        if self.late_months:
            text += f"; late buckets for closed month(s) {', '.join(sorted(self.late_months))}"
        return text + ("" if self.ok else "; ERRORS: " + " | ".join(self.errors))


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


class SourceSync:
    def __init__(self, services: Services, *, base_seconds: float = 1.0, sleep=asyncio.sleep,
                 owner: str | None = None) -> None:
        self.services = services
        self.base_seconds = base_seconds
        self.sleep = sleep
        self.owner = owner or services.instance_id

    async def run(self, name: str | None = None, since: date | None = None) -> list[PollReport]:
        config = self.services.settings.sources
        chosen = [config.get(name)] if name else list(config.enabled())
        reports = []
        for source in chosen:
            if not source.enabled:
                missing = f"{source.name.upper()}_ADMIN_KEY is not set"
                reports.append(PollReport(source.name, ok=False, errors=[missing]))
                continue
            reports.append(await self.poll(source, since))
        await self.services.ingestor.writer.settle()
        return reports

    async def poll(self, source: SourceConfig, since: date | None = None) -> PollReport:
        report = PollReport(source.name)
        db, now = self.services.db, self.services.clock.now()
        async with db.write_connection() as conn:
            await repo.ensure_state(conn, source.name, ENDPOINTS[source.name])
            if not await repo.take_lease(conn, source.name, self.owner, now, LEASE_SECONDS):
                report.busy = True
                return report
        try:
            if source.name == "openai":
                await self._openai(source, since, report)
            else:
                await self._anthropic(source, since, report)
            async with db.write_connection() as conn:
                await repo.clear_key_alert(conn, source.name)
        except KeyRefused as exc:
            report.ok = False
            report.errors.append(f"admin key refused: {exc}")
            await self._key_refused(source, str(exc))
        finally:
            self._observe(source.name, report)
            async with db.write_connection() as conn:
                await repo.release_lease(conn, source.name, self.owner)
        return report

    def _observe(self, name: str, report: PollReport) -> None:
        """GET /metrics: tokenbot_source_poll_errors_total{source}, tokenbot_source_poll_lag_seconds{source}."""
        metrics = self.services.metrics
        if not report.ok:
            metrics.source_poll_errors.labels(source=name).inc()
        else:  # the cursor is this hour: what is older than it is in
            lag = self.services.clock.now() - floor_hour(self.services.clock.now())
            metrics.source_poll_lag_seconds.labels(source=name).set(lag.total_seconds())

    # -- windows -------------------------------------------------------------------------------
    async def _window(self, source: SourceConfig, endpoint: str, since: date | None) -> tuple[datetime, datetime]:
        now = self.services.clock.now()
        if since is not None:
            start = datetime(since.year, since.month, since.day, tzinfo=UTC)
        else:
            async with self.services.db.session() as session:
                cursor = await repo.cursor(session, source.name, endpoint)
            start = (cursor - timedelta(hours=source.reopen_hours)) if cursor else now - timedelta(
                days=source.backfill_days)
        return floor_hour(start), floor_hour(now) + timedelta(hours=1)

    async def _endpoint(self, source: SourceConfig, endpoint: str, report: PollReport, work) -> None:
        """Run one endpoint's pull; record success (and the cursor) or the error. KeyRefused goes up."""
        now = self.services.clock.now()
        try:
            notes = await work()
        except KeyRefused:
            async with self.services.db.write_connection() as conn:
                await repo.record_error(conn, source.name, endpoint, now=now, error="admin key refused")
            raise
        except (SourceUnavailable, ValueError, KeyError, TypeError) as exc:
            report.ok = False
            report.errors.append(f"{endpoint}: {exc}")
            log.warning("source %s %s: %s", source.name, endpoint, exc)
            async with self.services.db.write_connection() as conn:
                await repo.record_error(conn, source.name, endpoint, now=now, error=str(exc))
            return
        async with self.services.db.write_connection() as conn:
            await repo.record_success(conn, source.name, endpoint, now=now, new_cursor=floor_hour(now), notes=notes)

    async def _usage(self, source: SourceConfig, endpoint: str, pages, report: PollReport,
                     emails: dict[str, str]) -> str:
        services = self.services
        now = services.clock.now()
        this_month = month_key(services.clock.today())
        ahead = 0
        async for records in pages:
            kept = []
            for record in records:
                if record["start"] > now:
                    ahead += 1  # the provider's clock is ahead of ours: read again next poll
                else:
                    kept.append(record)
            ids = {id(r): bk.candidates(r, emails) for r in kept}
            resolved = await services.identities.resolve_many({i for v in ids.values() for i in v})
            rows = []
            teams = services.teams
            if teams is not None:
                await teams.refresh()
            for record in kept:
                subject = bk.choose_subject(source.name, ids[id(record)], resolved)
                if subject not in resolved:
                    resolved.update(await services.identities.resolve_many([subject]))
                rows.append(bk.to_bucket(source.name, record, local_day=services.clock.local_day, subject=subject,
                                         user_key=resolved[subject], counted=source.counts,
                                         price=bk.price_record(services.pricer, source.name, record)))
                if teams is not None:
                    rows[-1].charge_team = teams.charge_bucket(rows[-1].project, rows[-1].user_key)
            async with services.db.write_connection() as conn:
                if not await repo.take_lease(conn, source.name, self.owner, services.clock.now(), LEASE_SECONDS):
                    raise SourceUnavailable("lost the source's lease (another process took over)")
                out = await repo.apply_buckets(conn, rows, now=now, resolve_subject=lambda s, r=resolved: r.get(s, s))
            report.new += out.new
            report.changed += out.changed
            report.unchanged += out.unchanged
            report.ledger_rows += out.ledger_rows
            if out.inserted:
                await self._after_ledger(out.inserted, resolved, this_month, report)
        report.ahead += ahead
        notes = [f"{ahead} buckets ahead of our clock left for the next poll"] if ahead else []
        if report.late_months:
            notes.append(f"late buckets for closed month(s) {', '.join(sorted(report.late_months))}")
        return "; ".join(notes)

    async def _after_ledger(self, rows: list[dict], resolved: dict[str, str], this_month: str,
                            report: PollReport) -> None:
        """What every stored batch gets: email lookups, budget alerts; late months named."""
        services = self.services
        await services.identities.after_commit({r["subject"]: r["user_key"] for r in rows})
        result = IngestResult(accepted=len(rows))
        for r in rows:
            month = month_key(r["day"])
            if month < this_month:
                report.late_months.add(month)
            key = (r["user_key"], month)
            result.touched[key] = result.touched.get(key, 0) + r["cost_usd"]
            if r.get("charge_team"):
                team_key = (r["charge_team"], month)
                result.team_touched[team_key] = result.team_touched.get(team_key, 0) + r["cost_usd"]
        for hook in services.ingestor.after_ingest:
            try:
                await hook(result)
            except Exception:
                log.exception("after-ingest hook failed (provider buckets)")

    # -- the providers -------------------------------------------------------------------------
    async def _openai(self, source: SourceConfig, since: date | None, report: PollReport) -> None:
        client = pulls.openai_client(source.url, source.admin_key)
        try:
            async def users() -> str:
                found = await pulls.openai_users(client)
                async with self.services.db.write_connection() as conn:
                    await repo.upsert_users(conn, "openai", found)
                report.users = len(found)
                return f"{len(found)} users"

            await self._endpoint(source, "users", report, users)
            async with self.services.db.session() as session:
                emails = await repo.user_emails(session, "openai")
            for endpoint in pulls.OPENAI_USAGE:
                start, end = await self._window(source, endpoint, since)
                pages = pulls.openai_usage(client, endpoint, start, end, base_seconds=self.base_seconds,
                                           sleep=self.sleep)
                await self._endpoint(source, endpoint, report,
                                     lambda p=pages, e=endpoint: self._usage(source, e, p, report, emails))
            start, end = await self._window(source, "costs", since)

            async def costs() -> str:
                rows = await pulls.openai_costs(client, start.replace(hour=0), end, base_seconds=self.base_seconds,
                                                sleep=self.sleep)
                return await self._store_costs("openai", rows, report)

            await self._endpoint(source, "costs", report, costs)
        finally:
            await client.close()

    async def _anthropic(self, source: SourceConfig, since: date | None, report: PollReport) -> None:
        async with AnthropicAdmin(source.url, source.admin_key, base_seconds=self.base_seconds,
                                  sleep=self.sleep) as api:
            start, end = await self._window(source, "messages", since)
            await self._endpoint(source, "messages", report,
                                 lambda: self._usage(source, "messages", pulls.anthropic_usage(api, start, end),
                                                     report, {}))
            c_start, c_end = await self._window(source, "costs", since)

            async def costs() -> str:
                return await self._store_costs("anthropic", await pulls.anthropic_costs(
                    api, c_start.replace(hour=0), c_end), report)

            await self._endpoint(source, "costs", report, costs)
            if source.claude_code:
                cc_start, _ = await self._window(source, "claude_code", since)
                await self._endpoint(source, "claude_code", report,
                                     lambda: self._claude_code(api, cc_start.date(), report))

    async def _store_costs(self, name: str, rows, report: PollReport) -> str:
        async with self.services.db.write_connection() as conn:
            report.costs += await repo.upsert_costs(conn, name, rows, self.services.clock.now())
        return ""

    async def _claude_code(self, api: AnthropicAdmin, first: date, report: PollReport) -> str:
        services = self.services
        today = services.clock.now().astimezone(UTC).date()
        day = first
        while day <= today:
            records = await pulls.anthropic_claude_code(api, day)
            resolved = await services.identities.resolve_many(r["actor"] for r in records)
            now = services.clock.now()
            rows = [{"day": r["day"], "actor": r["actor"], "user_key": resolved[r["actor"]],
                     **{k: r[k] for k in ("sessions", "lines_added", "lines_removed", "commits", "pull_requests",
                                          "tokens", "estimated_cost_usd", "models")}, "updated_at": now}
                    for r in records]
            async with services.db.write_connection() as conn:
                report.claude_code += await repo.upsert_claude_code(conn, rows)
            day += timedelta(days=1)
        return ""

    async def _key_refused(self, source: SourceConfig, detail: str) -> None:
        services = self.services
        async with services.db.write_connection() as conn:
            first = await repo.claim_key_alert(conn, source.name, services.clock.now())
        if not first:
            log.debug("source %s: admin key still refused", source.name)
            return
        log.warning("source %s: the admin key was refused (%s); admins told once, polling continues", source.name,
                    detail)
        text = (f":warning: tokenbot cannot read {source.name}'s usage: the admin key "
                f"({source.name.upper()}_ADMIN_KEY) was refused. It may be revoked or not an admin key. "
                "Set a valid key and restart; `tokenbot sources status` shows the state. "
                "You hear this once until a poll succeeds again.")
        await tell_admins(services, text, about=f"{source.name}'s refused admin key")


def source_jobs(services: Services) -> list[JobSpec]:
    """One job per enabled source, every `every_minutes`, and a first poll at start (the first start's
    backfill; after a restart, the window since the cursor). The lease keeps processes apart."""
    jobs = []
    tz = services.settings.timezone
    for source in services.settings.sources.enabled():
        async def poll(services: Services, name: str = source.name) -> None:
            await SourceSync(services).run(name)

        start = DateTrigger(run_date=datetime.now(UTC), timezone=tz)
        jobs.append(JobSpec(f"source-{source.name}:startup", poll, start))
        jobs.append(JobSpec(f"source-{source.name}", poll, IntervalTrigger(minutes=source.every_minutes, timezone=tz)))
    return jobs
