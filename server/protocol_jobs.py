"""Runs the protocols' background jobs (ProtocolSpec.jobs) in every server process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from protocols.base import BackgroundJob

log = logging.getLogger("tetra.jobs")


class ProtocolJobs:
    def __init__(self, jobs: Iterable[BackgroundJob]) -> None:
        self._jobs = tuple(jobs)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._every(job), name=job.name) for job in self._jobs]

    @staticmethod
    async def _every(job: BackgroundJob) -> None:
        while True:
            await asyncio.sleep(job.interval)
            try:
                await job.run()
            except Exception as exc:  # the store may be down for a while: try again next time
                log.warning("job %s failed: %s", job.name, exc)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
