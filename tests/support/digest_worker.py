"""A digest process for tests/test_digest_race.py: `python -m tests.support.digest_worker '<json>'`.

It imports only the bot (no pytest), builds its own Services (engine, Slack client) from the
arguments, and then either claims one run and hangs until it is killed ("claim-and-hang"),
or prints "ready", waits for a line on stdin (so racing processes start together) and
sweeps once at each of the given clock instants, printing [[channel, status], ...] as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from bot.clock import SettableClock
from bot.config import DigestConfig, Settings
from bot.digests import delivery
from bot.digests.jobs import sweep
from bot.wiring import build_services


async def main(args: dict) -> None:
    tz = ZoneInfo(args["tz"])
    settings = Settings(
        slack_bot_token=args["token"], slack_api_url=args["api"], database_url=args["db"], timezone=tz,
        admins=("U0ADMIN",), digests=tuple(DigestConfig(channel=c, time=time(9, 0)) for c in args["channels"]),
    )
    clock = SettableClock(tz, datetime.fromisoformat(args["times"][0]))
    services = build_services(settings, clock=clock)
    try:
        if args["mode"] == "claim-and-hang":
            claimed = await delivery.claim(services, args["channels"][0], "day", date.fromisoformat(args["day"]))
            print(json.dumps({"claimed": claimed is not None}), flush=True)
            await asyncio.sleep(120)  # killed here, between claim and post
            return
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        statuses = []
        for moment in args["times"]:
            clock.set(datetime.fromisoformat(moment))
            statuses += [(o.channel, o.status) for o in await sweep(services)]
        print(json.dumps(statuses), flush=True)
    finally:
        await services.close()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
