"""Fire-and-forget work that must not be garbage-collected halfway (SLACK_NOTES.md).

asyncio keeps only weak references to tasks, and Bolt starts listeners without keeping
one: anything we start in the background (alert checks after ingest, message updates
after a decision, an outbox kick) is held here until it finishes. Tests and shutdown
call `drain` to wait for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)

_KEY = "_tokenbot_background"


class Background:
    def __init__(self) -> None:
        self.tasks: set[asyncio.Task] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    async def drain(self) -> None:
        """Wait until nothing is running, including tasks started by the tasks awaited."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)


def background(services: Any) -> Background:
    """The process's task holder, kept on the Services object."""
    holder = getattr(services, _KEY, None)
    if holder is None:
        holder = Background()
        setattr(services, _KEY, holder)
    return holder


async def run_after_ack(services: Any, coro: Coroutine[Any, Any, Any], *, name: str) -> None:
    """Work a Slack listener does after its ack: held here, and its failure logged rather than
    raised into Bolt, which would otherwise overwrite the ack it already sent."""
    try:
        await background(services).spawn(coro, name=name)
    except Exception:
        log.exception("%s failed", name)


async def drain(services: Any) -> None:
    await background(services).drain()
