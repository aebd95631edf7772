"""The sources' commands: `tokenbot sources status|sync`, `tokenbot reconcile`, `/tokens admin reconcile`."""

from __future__ import annotations

from datetime import UTC, date, timedelta

from sqlalchemy import text

from bot.clock import month_label
from bot.people import is_admin
from bot.providers.reconcile import Reconciliation, pct_text, reconcile_month, table_text
from bot.providers.sync import SourceSync
from bot.services import Services
from bot.views.help import Message, Notice
from bot.views.reconcile import DriftLine, ReconcileView, reconcile_blocks, reconcile_fallback
from storage import sources_repo

RECONCILE_USAGE = "Use `/tokens admin reconcile [YYYY-MM]`, e.g. `/tokens admin reconcile 2026-11`."


def reconcile_view(rec: Reconciliation) -> ReconcileView:
    def line(r) -> DriftLine:
        return DriftLine(r.provider, r.day, r.project, r.ledger, r.bill, pct_text(r), r.over(rec.tolerance_pct))

    ordered = sorted(rec.rows, key=lambda r: (not r.over(rec.tolerance_pct), -abs(r.drift)))
    return ReconcileView(month_label(rec.month), rec.tolerance_pct, tuple(line(r) for r in ordered),
                         tuple(line(t) for t in rec.totals), len(rec.over))


async def drift_over_tolerance(services: Services) -> tuple[DriftLine, ...]:
    """This month's day·project rows over `reconcile.tolerance_pct`, largest first (Data to check, digests)."""
    if not services.settings.sources.enabled():
        return ()
    view = reconcile_view(await reconcile_month(services))
    return tuple(line for line in view.rows if line.over)


async def reconcile_command(invocation) -> object:
    """`/tokens admin reconcile [YYYY-MM]` (admins only)."""
    services = invocation.services
    if not await is_admin(services, invocation.user_id):
        return Notice("Only tokenbot admins can see the reconciliation.", ok=False)
    words = (invocation.text or "").split()
    month = None
    if words:
        if len(words) != 1 or not _is_month(words[0]):
            return Notice(RECONCILE_USAGE, ok=False)
        month = words[0]
    view = reconcile_view(await reconcile_month(services, month))
    return Message(reconcile_fallback(view), reconcile_blocks(view))


def _is_month(value: str) -> bool:
    try:
        date.fromisoformat(value + "-01")
    except ValueError:
        return False
    return len(value) == 7


async def overlap_warnings(services: Services) -> list[str]:
    """A counting source whose provider's calls also arrive from a gateway: counted twice."""
    out = []
    since = services.clock.today() - timedelta(days=31)
    async with services.db.session() as session:
        for source in services.settings.sources.enabled():
            if not source.counts:
                continue
            rows = (await session.execute(text(
                "SELECT source, COUNT(*) FROM usage_events WHERE day >= :since AND lower(provider) = :p "
                "AND source <> :p GROUP BY source"), {"since": since, "p": source.name})).all()
            for other, count in rows:
                out.append(f"WARNING: {source.name} counts its usage (count = \"all\") and {count:,} {source.name} "
                           f"calls in the last 31 days also came from `{other}`: they are counted twice. "
                           f"Set [sources.{source.name}] count = \"none\" or stop sending them.")
    return out


async def status_text(services: Services) -> str:
    now = services.clock.now()
    config = services.settings.sources
    async with services.db.session() as session:
        states = await sources_repo.states(session)
        counts = await sources_repo.bucket_counts(session)
    by_source: dict[str, list] = {}
    for s in states:
        by_source.setdefault(s.source, []).append(s)
    lines = []
    for source in config.all():
        mine = by_source.get(source.name, [])
        if not source.enabled and not mine:
            lines.append(f"{source.name}: off ({source.name.upper()}_ADMIN_KEY not set)")
            continue
        key = "key set" if source.enabled else "NO KEY"
        buckets, revised, latest = counts.get(source.name, (0, 0, None))
        lines.append(f"{source.name}: {key}, count = \"{source.count}\", every {source.every_minutes} min, "
                     f"{buckets:,} buckets ({revised:,} revised), latest {latest or '-'}")
        for s in mine:
            if s.endpoint == sources_repo.LEASE_ENDPOINT:
                if s.lease_until and s.lease_until > now:
                    lines.append(f"  polling now: {s.lease_owner} (lease until {s.lease_until:%H:%M:%S} UTC)")
                if s.key_alerted_at:
                    lines.append(f"  ADMIN KEY REFUSED since {s.key_alerted_at:%Y-%m-%d %H:%M} UTC (admins told)")
                continue
            lag = f"{(now - s.cursor).total_seconds() / 3600:.1f} h" if s.cursor else "-"
            polled = f"{s.last_poll_at:%Y-%m-%d %H:%M}" if s.last_poll_at else "never"
            line = (f"  {s.endpoint:<12} last poll {polled}, cursor "
                    f"{s.cursor.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if s.cursor else
                    f"  {s.endpoint:<12} last poll {polled}, no cursor yet")
            line += f", lag {lag}, errors {s.errors}"
            if s.last_error:
                line += f" (last: {s.last_error[:160]})"
            if s.notes:
                line += f"; {s.notes}"
            lines.append(line)
    lines += await overlap_warnings(services)
    for extra in services.status_lines:  # enforcers (SPEC 11) and anything else wired in bot/wiring.py
        lines += await extra(services)
    return "\n".join(lines)


async def sync_cli(services: Services, source: str | None, since: date | None) -> tuple[int, str]:
    reports = await SourceSync(services).run(source, since)
    if not reports:
        return 1, "no source is configured: set OPENAI_ADMIN_KEY or ANTHROPIC_ADMIN_KEY"
    return (0 if all(r.ok or r.busy for r in reports) else 1), "\n".join(r.line() for r in reports)


async def reconcile_cli(services: Services, month: str | None) -> str:
    return table_text(await reconcile_month(services, month))
