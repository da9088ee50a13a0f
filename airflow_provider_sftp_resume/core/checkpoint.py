"""
Checkpointing: make received bytes durable and record how far they reach.

A checkpoint is ``fsync(.part)`` followed by an atomic rewrite of the sidecar with the offsets
written *before* the fsync started, so the sidecar never claims a byte the disk may not hold. It runs
in a worker thread at most once per ``interval`` seconds while the transfer goes on, which keeps its
cost off the data path.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from airflow_provider_sftp_resume.core.errors import TransferError
from airflow_provider_sftp_resume.core.localfiles import os_error_to_local, write_state

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.localfiles import LocalPaths
    from airflow_provider_sftp_resume.core.state import ResumeState


class Checkpointer:
    """
    Track written offsets and persist them at a bounded rate.

    :param fd: the ``.part`` file descriptor
    :param paths: where the sidecar lives
    :param state: the state as last written to the sidecar
    :param interval: seconds between background checkpoints
    :param clock: monotonic clock (injected by tests)
    """

    def __init__(
        self,
        fd: int,
        paths: LocalPaths,
        state: ResumeState,
        *,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fd = fd
        self._paths = paths
        self._written = state  # offsets written to the .part (page cache)
        self.durable = state  # offsets fsynced and recorded in the sidecar
        self._interval = interval
        self._clock = clock
        self._last = clock()
        self._pending: asyncio.Task[None] | None = None
        self.count = 0

    @property
    def written(self) -> ResumeState:
        """State including bytes written but not yet fsynced."""
        return self._written

    def advance(self, index: int, done: int) -> None:
        """
        Record that segment ``index`` is written up to ``done``; start a checkpoint if one is due.

        :raises LocalDiskFull: the previous background checkpoint failed for lack of space
        """
        self._written = self._written.with_progress(index, done)
        if self._pending is not None and self._pending.done():
            pending, self._pending = self._pending, None
            pending.result()  # re-raise a failed checkpoint here, on the data path
        if self._pending is None and self._clock() - self._last >= self._interval:
            self._last = self._clock()
            self._pending = asyncio.ensure_future(asyncio.to_thread(self._persist, self._written))

    async def flush(self) -> ResumeState:
        """Wait for a running checkpoint, then checkpoint everything written; return the durable state."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            try:
                await pending
            except TransferError:
                pass  # the synchronous checkpoint below raises the error again if it persists
        if self._written != self.durable:
            await asyncio.to_thread(self._persist, self._written)
        return self.durable

    def _persist(self, state: ResumeState) -> None:
        try:
            os.fsync(self._fd)
        except OSError as exc:
            raise os_error_to_local(exc, self._paths.part, "syncing") from None
        write_state(self._paths, state)
        self.durable = state
        self.count += 1
