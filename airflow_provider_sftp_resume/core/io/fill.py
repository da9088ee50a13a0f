"""
Filling the destination: every incomplete segment, over one connection or several.

The first connection (the one the try planned with) drains segments in file order; each extra
connection, when ``max_connections`` asks for them and the destination takes random-access writes,
takes the next segment as soon as it is up. Extra connections run in worker processes
(:mod:`.worker`), one CPU each, when the session factory can be rebuilt in one (its
``process_spec()``) and the destination is a local file they can write (its ``worker_path``);
otherwise (the in-memory remote of the tests, or a transfer under a bandwidth cap, whose one token
bucket lives in this process) they are extra in-process streams. A destination
without random access gets one stream. Whichever writes a block, the same :class:`SegmentFiller`
records it: checkpoint offsets, hash watermark, progress.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import time
from typing import TYPE_CHECKING, TypeVar

from airflow_provider_sftp_resume.core.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    TransferInterrupted,
    TransferStalled,
)
from airflow_provider_sftp_resume.core.io.pipeline import pipelined_read
from airflow_provider_sftp_resume.core.io.segments import run_all_or_none
from airflow_provider_sftp_resume.core.io.worker import SegmentWorker
from airflow_provider_sftp_resume.core.options import answer_within
from airflow_provider_sftp_resume.core.progress import ProgressReporter
from airflow_provider_sftp_resume.core.remote.protocol import close_quietly

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from typing import Any

    from airflow_provider_sftp_resume.core.destinations.protocol import Destination, StreamHasher
    from airflow_provider_sftp_resume.core.logs import Logger
    from airflow_provider_sftp_resume.core.options import TransferOptions
    from airflow_provider_sftp_resume.core.remote.protocol import RemoteReader, SessionFactory
    from airflow_provider_sftp_resume.core.resume.checkpoint import Checkpointer
    from airflow_provider_sftp_resume.core.resume.state import ResumeState

T = TypeVar("T")
#: Extra seconds of silence allowed from a segment worker beyond ``stall_timeout``: the worker
#: times its own link and reports the stall itself, which says more (offset) than the parent can.
WORKER_SILENCE_GRACE = 1.0
#: Errors that mean "this extra connection could not be opened" rather than "the transfer failed".
REFUSED = (ConnectionFailed, TransferInterrupted, AuthenticationFailed)


def worker_job(
    options: TransferOptions, open_session: SessionFactory, destination: Destination
) -> tuple[dict[str, Any], str] | None:
    """
    What an extra connection's worker process needs: the session to rebuild and the ``.part`` to write.

    ``None`` where extra connections stay streams of this process. Under a bandwidth cap: a worker
    process cannot take from this process's token bucket, and a fixed share per worker would idle
    the share of a worker that finished its segments (or could not connect); a cap means the link,
    not this CPU, is the bottleneck, so the worker processes' extra cores would buy nothing. Also
    where the session cannot be rebuilt in a child, or the destination is not a local file.
    """
    if options.bandwidth is not None:
        return None
    spec, part = open_session.process_spec(), destination.worker_path
    return None if spec is None or part is None else (spec, part)


@contextlib.asynccontextmanager
async def stall_watchdog(seconds: float, what: str) -> AsyncIterator[Callable[[], None]]:
    """
    An inactivity timer, not a deadline: fail only when nothing happened for ``seconds``.

    Yields ``alive``; call it on every sign of progress to restart the count. A slow link that keeps
    delivering never trips it, however long the whole job takes.

    :param seconds: silence allowed
    :param what: what is being waited for (for the message)
    :raises TransferStalled: ``alive`` was not called for ``seconds``
    """
    loop = asyncio.get_running_loop()
    timeout = asyncio.timeout(seconds)
    try:
        async with timeout:
            yield lambda: timeout.reschedule(loop.time() + seconds)
    except TimeoutError:
        if not timeout.expired():
            raise  # a TimeoutError of the body's own, not the watchdog's
        raise TransferStalled(f"Nothing for {seconds:g} s while {what}; treating the link as dead.") from None


class SegmentFiller:
    """
    Fetch the incomplete segments of one try and write them into the destination.

    :param destination: where the bytes go
    :param remote_path: the remote file
    :param open_session: opens extra sessions
    :param options: the transfer knobs (stall timeout, progress interval)
    :param log: the try's logger
    :param checkpointer: records written offsets and makes them durable
    :param hasher: hashes the contiguous written prefix
    :param lock_fd: the descriptor holding the transfer lock, shared with segment worker processes
        so that none of them can outlive the lock (see :mod:`.worker`)
    """

    def __init__(
        self,
        *,
        destination: Destination,
        remote_path: str,
        open_session: SessionFactory,
        options: TransferOptions,
        log: Logger,
        checkpointer: Checkpointer[ResumeState],
        hasher: StreamHasher,
        lock_fd: int | None = None,
    ) -> None:
        self.destination = destination
        self.lock_fd = lock_fd
        self.remote_path = remote_path
        self.open_session = open_session
        self.options = options
        self.log = log
        self.checkpointer = checkpointer
        self.hasher = hasher
        self.transferred = 0
        self.first_byte_at: float | None = None
        state = checkpointer.written
        self._todo = collections.deque(i for i, s in enumerate(state.segments) if not s.complete)
        self._last_offset = {i: s.done for i, s in enumerate(state.segments)}
        self._refused: list[BaseException] = []
        self._progress = ProgressReporter.for_transfer(
            options, log, state.remote.size, state.durable_bytes, remote_path
        )
        self._block = 0
        self._requests = 0

    async def run(
        self, reader: RemoteReader, connections: int, shape: Callable[[int], tuple[int, int]]
    ) -> None:
        """
        Fill every incomplete segment.

        :param reader: the try's open remote file (the first stream)
        :param connections: streams to use at most
        :param shape: ``(block size, requests in flight)`` for a given number of streams
        """
        if not self._todo:
            return
        streams = min(connections if self.destination.random_access else 1, len(self._todo))
        self._block, self._requests = shape(streams)
        job = worker_job(self.options, self.open_session, self.destination)
        extra: Callable[[], Awaitable[None]] = (
            functools.partial(self._worker_process, *job) if job is not None else self._extra_stream
        )
        if streams > 1:
            self.log.info("Reading %d segments over up to %d connections", len(self._todo), streams)
        await run_all_or_none([functools.partial(self._drain, reader)] + [extra] * (streams - 1))
        if self._refused:
            self.log.warning(
                "%d of %d extra connections could not be opened (%s); the others did the work. Set "
                "max_connections=1 for servers that allow one connection per user.",
                len(self._refused),
                streams - 1,
                self._refused[0],
            )

    def _record(self, index: int, offset: int, block: tuple[int, bytes] | None = None) -> None:
        """Segment ``index`` is written up to ``offset`` (by this process or a worker)."""
        if self.first_byte_at is None:
            self.first_byte_at = time.monotonic()
        self.transferred += offset - self._last_offset[index]
        self._last_offset[index] = offset
        self.checkpointer.advance(self.checkpointer.written.with_progress(index, offset))
        written = self.checkpointer.written
        self.hasher.advance(written.contiguous_prefix, block)
        self._progress.update(written.durable_bytes)

    async def _drain(self, stream: RemoteReader) -> None:
        """Take segments off the queue and read them over ``stream`` until none is left."""
        while self._todo:
            index = self._todo.popleft()
            segment = self.checkpointer.written.segments[index]
            blocks = pipelined_read(
                stream,
                segment.done,
                segment.end,
                block_size=self._block,
                max_requests=self._requests,
                stall_timeout=self.options.stall_timeout,
                limit=self.options.bandwidth,  # one bucket for every stream of the task
            )
            async with contextlib.aclosing(blocks):
                async for offset, data in blocks:
                    await self.destination.write(offset, data)
                    self._record(index, offset + len(data), (offset, data))

    async def _extra_stream(self) -> None:
        """Open one more session in this process and drain with it. Only *opening* may fail quietly."""
        async with contextlib.AsyncExitStack() as stack:
            try:
                fs = await stack.enter_async_context(self.open_session())
                stream = await answer_within(
                    fs.open_reader(self.remote_path), self.options.stall_timeout, "opening the remote file"
                )
            except REFUSED as exc:
                self._refused.append(exc)
                return
            stack.push_async_callback(close_quietly, stream)
            await self._drain(stream)

    async def _worker_process(self, session: dict[str, Any], part: str) -> None:
        """Drain segments in a child process with its own connection (its own CPU), writing into ``part``."""
        worker = SegmentWorker(
            session,
            self.remote_path,
            part,
            block_size=self._block,
            max_requests=self._requests,
            stall_timeout=self.options.stall_timeout,
            lock_fd=self.lock_fd,
        )
        try:
            try:
                await worker.start()
            except (*REFUSED, OSError, TimeoutError) as exc:
                self._refused.append(exc)
                return
            # The worker times its own link (no bytes for stall_timeout); this watchdog catches a
            # worker that stops talking. Every progress report restarts it: a slow link that keeps
            # delivering is never a stall, however long a segment takes.
            async with stall_watchdog(
                self.options.stall_timeout + WORKER_SILENCE_GRACE, "waiting for a segment worker"
            ) as alive:

                def progress(index: int, offset: int) -> None:
                    alive()
                    self._record(index, offset)

                while self._todo:
                    index = self._todo.popleft()
                    segment = self.checkpointer.written.segments[index]
                    alive()
                    await worker.fill(index, segment.done, segment.end, progress)
            await worker.stop()
        finally:
            await worker.close()
