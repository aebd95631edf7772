"""`tokenbot enforce status` (the enforcers as `/tokens admin status` shows them) and
`tokenbot enforce push` (deliver what waits now, e.g. after an outage)."""

from __future__ import annotations

from bot.config import Settings


async def enforce_command(settings: Settings, action: str) -> int:
    from bot.enforce.push import deliver_due
    from bot.enforce.status import enforcer_status_lines
    from bot.wiring import build_services

    services = build_services(settings, with_slack=action == "push")
    try:
        if action == "push":
            pushed = await deliver_due(services)
            print(f"{pushed} push(es) taken")
        for paragraph in await enforcer_status_lines(services):
            print(paragraph)
            print()
    finally:
        await services.close()
    return 0
