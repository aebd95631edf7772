"""`tokenbot enforce status` (the enforcers as `/tokens admin status` shows them) and
`tokenbot enforce push [--all]` (deliver what waits now, e.g. after an outage; `--all` first queues
everyone, as the month rollover does: the way to fill a proxy that was just put under tokenbot)."""

from __future__ import annotations

from bot.config import Settings


async def enforce_command(settings: Settings, action: str, *, everyone: bool = False) -> int:
    from bot.enforce.push import deliver_due, mark_everyone
    from bot.enforce.status import enforcer_status_lines
    from bot.wiring import build_services

    services = build_services(settings, with_slack=action == "push")
    try:
        if action == "push":
            if everyone:
                print(f"{await mark_everyone(services)} subject(s) queued")
            pushed = await deliver_due(services)
            print(f"{pushed} push(es) taken")
        for paragraph in await enforcer_status_lines(services):
            print(paragraph)
            print()
    finally:
        await services.close()
    return 0
