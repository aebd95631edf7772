"""The composition root's lists: what exists in this process, in one place.

Nothing registers itself at import. A feature offers plain functions; this module
lists them and `build_services` puts them on the process's `Services`:
- `tokens_words`: the `/tokens` words beyond the built-in ones (bot/commands.py);
- `home_sections`: what the App Home shows besides the card (bot/home_builder.py);
- `install_ingest_hooks`: what runs after each stored batch of usage (budget alerts);
- `scheduled_jobs`: the jobs `tokenbot serve` runs (`start_background`).
bot/app.py wires these rules to the doors (handlers/).
"""

from __future__ import annotations

from bot.approvals import commands as approval_commands
from bot.approvals.home import pending_section
from bot.approvals.jobs import approval_jobs
from bot.breaker import flows as breaker_flows
from bot.breaker.detector import Detector
from bot.budget_alerts import AlertChecker
from bot.clock import Clock
from bot.commands import Word
from bot.config import Settings
from bot.data_check import data_check_section
from bot.digests.jobs import digest_jobs
from bot.enforce import status as enforce_status
from bot.enforce.push import enforce_jobs
from bot.maintenance import ledger_jobs
from bot.outbox import outbox_jobs
from bot.providers.commands import reconcile_command
from bot.providers.sync import source_jobs
from bot.scheduler import JobSpec, start_scheduler, stop_scheduler
from bot.services import Services, create_services
from bot.teams import commands as team_commands
from bot.teams.alerts import TeamAlertChecker
from bot.teams.assign import TeamDirectory
from bot.teams.digest import team_digest_jobs
from bot.teams.requests import request_team_command
from bot.teams.sync import team_jobs


def tokens_words() -> dict[str, Word]:
    return {
        "request": approval_commands.request_command,
        "admin audit": approval_commands.audit_command,
        "admin reconcile": reconcile_command,
        "admin status": enforce_status.status_command,
        "admin breaker": breaker_flows.breaker_command,
        "team": team_commands.team_command,
        "admin team": team_commands.admin_team_command,
        "request team": request_team_command,
    }


def home_sections() -> list:
    return [pending_section, data_check_section]


def install_ingest_hooks(services: Services) -> None:
    services.ingestor.after_ingest.append(AlertChecker(services).after_ingest)
    services.ingestor.after_ingest.append(TeamAlertChecker(services).after_ingest)
    if services.settings.breaker.on:  # the runaway breaker (SPEC 12): in-memory window sums per event
        detector = Detector(services)
        services.ingestor.recent_window = detector.window
        services.ingestor.after_ingest.append(detector.after_ingest)


def scheduled_jobs(services: Services) -> list[JobSpec]:
    return [*digest_jobs(services), *approval_jobs(services), *outbox_jobs(services), *ledger_jobs(services),
            *source_jobs(services), *enforce_jobs(services), *breaker_flows.breaker_jobs(services),
            *team_jobs(services), *team_digest_jobs(services)]


def status_lines() -> list:
    """Lines `tokenbot sources status` prints after the sources: `async (services) -> list[str]` (enforcers)."""
    return [enforce_status.enforcer_status_lines]


def build_services(settings: Settings, *, clock: Clock | None = None, with_slack: bool = True) -> Services:
    """A working process's Services: the objects, the `/tokens` words, the Home sections, the ingest hooks."""
    services = create_services(settings, clock=clock, with_slack=with_slack)
    services.teams = TeamDirectory(settings, services.db)
    services.ingestor.teams = services.approvers.teams = services.identities.teams = services.teams
    services.tokens_words.update(tokens_words())
    services.home_sections.extend(home_sections())
    services.status_lines.extend(status_lines())
    install_ingest_hooks(services)
    return services


async def start_background(services: Services) -> None:
    """`tokenbot serve`'s start-up hook: run the scheduled jobs."""
    start_scheduler(services, scheduled_jobs(services))


async def stop_background(services: Services) -> None:
    stop_scheduler(services)
