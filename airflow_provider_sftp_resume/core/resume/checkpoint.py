"""
Checkpointing, one mechanism for both directions: track what was written, make it durable at a
bounded rate, off the data path.

What *durable* means is the only difference, and the caller says it (``make_durable``): for a
download, ``fsync`` of the ``.part`` and then an atomic rewrite of the sidecar (see
:class:`~.destinations.local.LocalPart`); for an upload, ``fsync@openssh.com`` of the remote file and
then the local sidecar. Either way the state recorded is the one written *before* the sync started,
so a sidecar never claims a byte that may not be durable. Checkpoints run every ``interval`` seconds
in a background task while the transfer goes on (also while the link is stalled, so a worker killed
then loses at most one interval of data), one at a time; blocking work inside ``make_durable`` goes
through :func:`~.threads.in_thread`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Generic, TypeVar

from airflow_provider_sftp_resume.core.errors import TransferError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

S = TypeVar("S")


class Checkpointer(Generic[S]):
    """
    Track the written state and persist it at a bounded rate.

    :param state: the state as last recorded (the sidecar's)
    :param make_durable: makes the bytes ``state`` claims durable, records it, and returns what was
        recorded (an upload whose server stops confirming fsync records less: ``synced=False``)
    :param interval: seconds between background checkpoints
    """

    def __init__(self, state: S, make_durable: Callable[[S], Awaitable[S]], *, interval: float) -> None:
        self._written = state  # written, maybe not durable yet
        self._asked = state  # the last state handed to make_durable
        self.durable = state  # what the last checkpoint recorded
        self._make_durable = make_durable
        self._interval = interval
        self._pending: asyncio.Task[None] | None = None
        self._one_at_a_time = asyncio.Lock()
        self.count = 0

    @property
    def written(self) -> S:
        """State including bytes written but not yet durable."""
        return self._written

    def advance(self, state: S) -> None:
        """
        Record the written state (made durable by the next checkpoint); it may also go back.

        :raises TransferError: the background checkpoint failed (a full disk, a refused fsync): the
            failure surfaces here, on the data path
        """
        self._written = state
        if self._pending is not None and self._pending.done():
            self._pending.result()

    def start(self) -> None:
        """Checkpoint every ``interval`` seconds in the background, also while no data arrives."""
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._periodically())

    async def _periodically(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self._checkpoint()

    async def _checkpoint(self) -> S:
        async with self._one_at_a_time:
            state = self._written
            if state != self._asked:
                self.durable = await self._make_durable(state)
                self._asked = state
                self.count += 1
            return self.durable

    async def stop(self) -> None:
        """Stop background checkpoints and wait until none is being written."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, TransferError):
                await pending  # a failure is raised again by the next checkpoint
        async with self._one_at_a_time:
            pass  # a cancelled checkpoint has let go (in_thread waits for its thread)

    async def flush(self) -> S:
        """Stop background checkpoints, then checkpoint everything written; return the durable state."""
        await self.stop()
        return await self._checkpoint()
