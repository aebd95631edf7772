"""The one owner of the process's background work (SLACK_NOTES.md).

asyncio keeps only weak references to tasks, and Bolt starts listeners without keeping
one: anything running in the background (alert checks after ingest, message updates after
a decision, an outbox kick, Slack listeners still working after their ack) is held by
the `Background` on `Services.background` until it finishes. Tests and shutdown
(`Services.close`) call `drain` to wait for all of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class Background:
    def __init__(self) -> None:
        self.tasks: set[asyncio.Task] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def hold_current_task(self) -> None:
        """Hold the task running now (a listener Bolt started after its ack) until it finishes."""
        task = asyncio.current_task()
        if task is not None and task not in self.tasks:
            self.tasks.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    async def after_ack(self, coro: Coroutine[Any, Any, Any], *, name: str) -> None:
        """Work a Slack listener does after its ack: held here, and its failure logged rather than
        raised into Bolt, which would otherwise overwrite the ack it already sent."""
        try:
            await self.spawn(coro, name=name)
        except Exception:
            log.exception("%s failed", name)

    async def drain(self) -> None:
        """Wait until nothing else is running, including tasks started by the tasks awaited."""
        current = asyncio.current_task()
        while pending := [t for t in self.tasks if t is not current]:
            await asyncio.gather(*pending, return_exceptions=True)

    async def stop(self, grace_seconds: float) -> None:
        """Let running work finish for `grace_seconds`, then cancel what is left."""
        try:
            await asyncio.wait_for(self.drain(), grace_seconds)
        except TimeoutError:
            current = asyncio.current_task()
            left = [t for t in self.tasks if t is not current]
            for task in left:
                task.cancel()
            await asyncio.gather(*left, return_exceptions=True)
            log.warning("stopped %d background tasks at shutdown", len(left))
