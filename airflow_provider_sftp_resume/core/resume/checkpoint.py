"""
Checkpointing: make received bytes durable and record how far they reach.

A checkpoint is ``fsync(.part)`` followed by an atomic rewrite of the sidecar with the offsets
written *before* the fsync started, so the sidecar never claims a byte the disk may not hold. It runs
in a worker thread every ``interval`` seconds while the transfer goes on (also while the link is
stalled, so a worker killed then loses at most one interval of data), which keeps its cost off the
data path.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from typing import TYPE_CHECKING

from airflow_provider_sftp_resume.core.errors import TransferError
from airflow_provider_sftp_resume.core.resume.localfiles import os_error_to_local, write_state

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.resume.localfiles import LocalPaths
    from airflow_provider_sftp_resume.core.resume.state import ResumeState


class Checkpointer:
    """
    Track written offsets and persist them at a bounded rate.

    :param fd: the ``.part`` file descriptor
    :param paths: where the sidecar lives
    :param state: the state as last written to the sidecar
    :param interval: seconds between background checkpoints
    """

    def __init__(
        self,
        fd: int,
        paths: LocalPaths,
        state: ResumeState,
        *,
        interval: float,
    ) -> None:
        self._fd = fd
        self._paths = paths
        self._written = state  # offsets written to the .part (page cache)
        self.durable = state  # offsets fsynced and recorded in the sidecar
        self._interval = interval
        self._pending: asyncio.Task[None] | None = None
        self._persist_lock = threading.Lock()
        self.count = 0

    @property
    def written(self) -> ResumeState:
        """State including bytes written but not yet fsynced."""
        return self._written

    def advance(self, index: int, done: int) -> None:
        """
        Record that segment ``index`` is written up to ``done`` (made durable by the next checkpoint).

        ``done`` may also go back (bytes given up); the sidecar then records the lower offset.

        :raises LocalDiskFull: the background checkpoint failed for lack of space
        """
        self._written = self._written.with_progress(index, done)
        if self._pending is not None and self._pending.done():
            self._pending.result()  # re-raise a failed checkpoint here, on the data path

    def start(self) -> None:
        """Checkpoint every ``interval`` seconds in the background, also while no data arrives."""
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._periodically())

    async def _periodically(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if self._written != self.durable:
                await asyncio.to_thread(self._persist, self._written)

    async def stop(self) -> None:
        """Stop background checkpoints and wait until none is being written."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, TransferError):
                await pending  # a failure is raised again by the next synchronous checkpoint
        # A cancelled to_thread() keeps running in its thread; wait for it to let go of the lock.
        await asyncio.to_thread(self._wait_idle)

    def _wait_idle(self) -> None:
        with self._persist_lock:
            pass

    async def flush(self) -> ResumeState:
        """Stop background checkpoints, then checkpoint everything written; return the durable state."""
        await self.stop()
        if self._written != self.durable:
            await asyncio.to_thread(self._persist, self._written)
        return self.durable

    def _persist(self, state: ResumeState) -> None:
        # A cancelled background checkpoint may still be running in its thread: one at a time.
        # (flush() and stop() wait for it, so an older state never lands after a newer one.)
        with self._persist_lock:
            if state == self.durable:
                return
            self._persist_locked(state)

    def _persist_locked(self, state: ResumeState) -> None:
        try:
            os.fsync(self._fd)
        except OSError as exc:
            raise os_error_to_local(exc, self._paths.part, "syncing") from None
        write_state(self._paths, state)
        self.durable = state
        self.count += 1
