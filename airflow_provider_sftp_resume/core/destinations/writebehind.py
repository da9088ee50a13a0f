"""
Writing a local file behind the event loop: one thread takes blocks off a bounded queue.

The event loop hands blocks over and goes on receiving; the thread ``pwrite``\\ s them (the GIL is
released for the copy into the page cache) and counts them done. Completion is polled, not
signalled: the loop collects the finished blocks on its next hand-over and calls their ``written``
callbacks there (``run_in_executor`` per block, one wake-up each, cost the loop about as much as
the copy it moved: measured). Blocks are handed over in batches of :data:`HANDOVER_BYTES`: a
thread woken for every 256 KiB block made about 30 futex calls per block between the wake-ups and
the GIL going back and forth (``strace -c``: 120,000 per GiB, with the hasher's), a tenth of the
client's CPU time on a fast link. While blocks wait, a timer hands over a batch that did not fill
and reports what was written every :data:`HANDOVER_DELAY`, so a slow or stalled link still gets its
blocks written and checkpointed. The loop waits only when more than :data:`WRITE_BEHIND_BYTES`
are not yet written, and at the end (:meth:`WriteBehind.wait` hands over a partial batch).

After a failed write the thread writes nothing more and no later block is reported written; the
error is raised on the loop. :meth:`WriteBehind.stop` drops blocks not yet written and ends the
thread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import queue
import threading
from typing import TYPE_CHECKING

from airflow_provider_sftp_resume.core.resume.localfiles import os_error_to_local, pwrite_all
from airflow_provider_sftp_resume.core.threads import in_thread

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

#: Bytes handed to the writer thread and not yet written, at most (the loop waits beyond).
WRITE_BEHIND_BYTES = 8 * 1024 * 1024
#: Bytes collected on the loop before they go to the thread in one hand-over (one wake-up).
HANDOVER_BYTES = 2 * 1024 * 1024
#: Seconds between hand-overs (and reports of written blocks) while blocks wait, whatever their size.
HANDOVER_DELAY = 0.02

_Block = tuple[int, int, bytes]  # (sequence number, offset, data)
#: Most blocks in one ``pwritev`` (Linux's ``IOV_MAX`` is 1024).
MAX_RUN = 512


def _runs(batch: list[_Block]) -> Iterator[list[_Block]]:
    """Split ``batch`` into runs of blocks that follow each other in the file."""
    run: list[_Block] = []
    for block in batch:
        if run and (len(run) >= MAX_RUN or run[-1][1] + len(run[-1][2]) != block[1]):
            yield run
            run = []
        run.append(block)
    if run:
        yield run


class WriteBehind:
    """
    Blocks written into ``fd`` by one thread, in the order handed over.

    :param fd: the open file, writable
    :param path: its path, for error messages
    :param max_bytes: bytes not yet written at most
    """

    def __init__(self, fd: int, path: Path, max_bytes: int = WRITE_BEHIND_BYTES) -> None:
        self._fd = fd
        self._path = path
        self._max_bytes = max_bytes
        self._handover = min(HANDOVER_BYTES, max(1, max_bytes // 4))
        self._queue: queue.SimpleQueue[list[_Block] | None] = queue.SimpleQueue()
        self._batch: list[_Block] = []
        self._batch_bytes = 0
        self._pending: collections.deque[tuple[int, int, Callable[[], None]]] = collections.deque()
        self.queued_bytes = 0
        self._submitted = 0
        self._completed = 0  # the last block written, set by the thread only
        self._error: BaseException | None = None
        self._dropping = False
        self._ticking = False  # a _tick is scheduled
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    async def submit(self, offset: int, data: bytes, written: Callable[[], None]) -> None:
        """
        Queue ``data`` for ``offset``; ``written()`` is called (on the loop) once it is written.

        :raises LocalDiskFull: an earlier block found no room (likewise any error of a write)
        """
        if self._thread is None:
            self._dropping = False
            self._thread = threading.Thread(target=self._serve, name="part-writer", daemon=True)
            self._thread.start()
        self._submitted += 1
        self._pending.append((self._submitted, len(data), written))
        self.queued_bytes += len(data)
        if not self._ticking:
            self._ticking = True
            asyncio.get_running_loop().call_later(HANDOVER_DELAY, self._tick)
        self._batch.append((self._submitted, offset, data))
        self._batch_bytes += len(data)
        if self._batch_bytes >= self._handover:
            self._hand_over()
        self._collect()
        if self.queued_bytes > self._max_bytes:
            await self.wait(self._max_bytes // 2)  # half: not one wake-up per block on a slow disk

    async def wait(self, queued_bytes: int = 0) -> None:
        """Wait until at most ``queued_bytes`` are not yet written; raise the error of a failed write."""
        self._hand_over()
        self._collect()
        while self.queued_bytes > queued_bytes:
            await in_thread(self._wait_for, self._block_to_wait_for(queued_bytes))
            self._collect()

    def _tick(self) -> None:
        """Every :data:`HANDOVER_DELAY` while blocks wait: hand them over, report the written ones."""
        self._hand_over()
        # A failed write, or a failed checkpoint raised by a ``written`` callback, sticks: the next
        # submit or wait raises it on the data path.
        with contextlib.suppress(Exception):
            self._collect()
        if self._pending and not self._dropping:
            asyncio.get_running_loop().call_later(HANDOVER_DELAY, self._tick)
        else:
            self._ticking = False

    def _hand_over(self) -> None:
        """Give the thread the blocks collected so far (one wake-up for the batch)."""
        if self._batch and not self._dropping:
            self._queue.put(self._batch)
            self._batch, self._batch_bytes = [], 0

    def _block_to_wait_for(self, queued_bytes: int) -> int:
        """The first queued block after whose write at most ``queued_bytes`` are left."""
        left = self.queued_bytes
        for seq, size, _ in self._pending:
            left -= size
            if left <= queued_bytes:
                return seq
        return self._submitted

    def _wait_for(self, seq: int) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._completed >= seq or self._error is not None)

    def _collect(self) -> None:
        completed = self._completed
        while self._pending and self._pending[0][0] <= completed:
            _, size, written = self._pending.popleft()
            self.queued_bytes -= size
            written()
        if self._error is not None:
            raise self._error

    def _serve(self) -> None:
        while (batch := self._queue.get()) is not None:
            for run in _runs(batch):
                if self._error is not None or self._dropping:
                    break
                try:
                    self._write_run(run)
                except BaseException as exc:  # raised again on the loop; the thread must not die silently
                    self._error = exc
            with self._changed:
                self._changed.notify_all()

    def _write_run(self, run: list[_Block]) -> None:
        """Write blocks that follow each other in the file with one ``pwritev`` (one GIL release)."""
        start = run[0][1]
        try:
            written = os.pwritev(self._fd, [data for _, _, data in run], start)
        except OSError as exc:
            raise os_error_to_local(exc, self._path, "writing") from None
        for seq, offset, data in run:
            done = start + written - offset  # bytes of this block already written
            if done < len(data):  # a short write: the rest one block at a time
                pwrite_all(self._fd, memoryview(data)[max(0, done) :], offset + max(0, done), self._path)
            self._completed = seq  # one int: the loop polls it without the lock

    def stop(self) -> None:
        """Drop the blocks not yet written, wait for the one being written and end the thread (blocking)."""
        if self._thread is not None:
            self._dropping = True
            self._queue.put(None)
            self._thread.join()
            self._thread = None
            self._batch, self._batch_bytes = [], 0
            self._pending.clear()
            self.queued_bytes = 0
