"""
Pipelined reads and writes: many block requests in flight, results handed out in file order.

One request per round trip is what makes the naive ``read(32768)`` loop crawl on a long link. Here
up to ``max_requests`` block reads are outstanding at once; the caller sees ``(offset, data)`` in
ascending offset order, so it can append to the local file and advance a single durable offset.
Memory is bounded by ``max_requests * block_size``. A short read (fewer bytes than asked) is
answered by requesting the rest before anything after it is handed out.

asyncssh has a parallel reader of its own (``SFTPClientFile.read`` with a block size), but it
returns the whole range as one ``bytes`` object, which neither bounds memory nor lets the caller
checkpoint or notice a stall as data arrives; hence this small class.

Under a bandwidth cap (``limit``, :mod:`~.core.bandwidth`) each request waits for its tokens, for
its full length, before it is issued; the remainder of a short read was paid for with the request
and is not charged again. Blocks and the pipeline depth shrink to fit the cap
(:meth:`~.core.bandwidth.BandwidthLimit.request_size`), so a capped stream never bursts far ahead of
its rate. The wait for tokens is not silence from the server: the stall timeout starts only when a
request is out.
"""

from __future__ import annotations

import asyncio
import collections
import os
from typing import TYPE_CHECKING, TypeVar

from airflow_provider_sftp_resume.core.errors import RemoteChanged, SourceChanged, TransferStalled

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from airflow_provider_sftp_resume.core.bandwidth import BandwidthLimit
    from airflow_provider_sftp_resume.core.remote.protocol import RemoteReader, RemoteWriter


#: Free request slots a read pipeline waits for before it sends more requests (at most a quarter
#: of the pipeline): one send of four requests instead of four sends of one.
REQUEST_GROUP = 4


async def pipelined_read(
    reader: RemoteReader,
    start: int,
    end: int,
    *,
    block_size: int,
    max_requests: int,
    stall_timeout: float,
    limit: BandwidthLimit | None = None,
) -> AsyncGenerator[tuple[int, bytes], None]:
    """
    Read ``[start, end)`` of ``reader`` and yield ``(offset, data)`` in offset order.

    :param reader: the open remote file
    :param start: first byte to read
    :param end: one past the last byte to read
    :param block_size: bytes asked for in one request
    :param max_requests: requests kept in flight at once
    :param stall_timeout: seconds without any completed request before giving up
    :param limit: the bandwidth cap every request takes its tokens from; ``None`` for no cap
    :raises TransferStalled: nothing arrived for ``stall_timeout`` seconds
    :raises RemoteChanged: the file ended before ``end``
    """
    queue: collections.deque[tuple[int, int, asyncio.Task[bytes]]] = collections.deque()
    next_offset = start
    block_size, max_requests = _capped(limit, block_size, max_requests)

    def issue(offset: int, length: int) -> tuple[int, int, asyncio.Task[bytes]]:
        return offset, length, asyncio.ensure_future(reader.read(offset, length))

    group = min(REQUEST_GROUP, max(1, max_requests // 4))

    async def fill(at_least: int = 1) -> None:
        nonlocal next_offset
        if max_requests - len(queue) < at_least:
            return
        while len(queue) < max_requests and next_offset < end:
            length = min(block_size, end - next_offset)
            if limit is not None:
                await limit.take(length)
            queue.append(issue(next_offset, length))
            next_offset += length

    try:
        await fill()
        while queue:
            await fill(group)  # the requests of a group leave in one send (:mod:`~.remote.outbound`)
            offset, length, result = await _oldest(queue, stall_timeout, "No data")
            data = result[:length]  # a server must not send more than asked
            if not data:
                raise RemoteChanged(
                    f"The remote file ended at byte {offset}, before the expected {end}; it was "
                    "truncated or replaced while being read.",
                )
            if len(data) < length:  # its tokens were taken with the request: not charged again
                queue.appendleft(issue(offset + len(data), length - len(data)))
            yield offset, data
    finally:
        await _cancel_all(queue)


async def pipelined_write(
    writer: RemoteWriter,
    source_fd: int,
    start: int,
    end: int,
    *,
    block_size: int,
    max_requests: int,
    stall_timeout: float,
    limit: BandwidthLimit | None = None,
) -> AsyncGenerator[int, None]:
    """
    Send ``[start, end)`` of the local file ``source_fd`` and yield the acknowledged prefix as it grows.

    Every yielded offset ``n`` means the server acknowledged all bytes ``[start, n)``: a later try
    may resume from there. Memory is bounded by ``max_requests * block_size``.

    asyncssh's own parallel writer (``SFTPClientFile.write`` with a block size) sends a whole buffer
    and reports nothing until all of it is acknowledged; resuming needs the acknowledged prefix.

    :param writer: the open remote file
    :param source_fd: the local file, readable
    :param start: first byte to send
    :param end: one past the last byte to send
    :param block_size: bytes per write request
    :param max_requests: requests kept in flight at once
    :param stall_timeout: seconds without any acknowledgement before giving up
    :param limit: the bandwidth cap every request takes its tokens from; ``None`` for no cap
    :raises TransferStalled: nothing was acknowledged for ``stall_timeout`` seconds
    :raises SourceChanged: the local file ended before ``end``
    """
    queue: collections.deque[tuple[int, int, asyncio.Task[None]]] = collections.deque()
    next_offset = start
    block_size, max_requests = _capped(limit, block_size, max_requests)

    async def fill() -> None:
        nonlocal next_offset
        while len(queue) < max_requests and next_offset < end:
            length = min(block_size, end - next_offset)
            if limit is not None:
                await limit.take(length)
            data = os.pread(source_fd, length, next_offset)
            if not data:
                raise SourceChanged(
                    f"The local file ended at byte {next_offset}, before the expected {end}; it was "
                    "truncated while being uploaded."
                )
            queue.append((next_offset, len(data), asyncio.ensure_future(writer.write(next_offset, data))))
            next_offset += len(data)

    try:
        await fill()
        while queue:
            offset, length, _ = await _oldest(queue, stall_timeout, "No acknowledgement")
            await fill()
            yield offset + length
    finally:
        await _cancel_all(queue)


R = TypeVar("R")


def _capped(limit: BandwidthLimit | None, block_size: int, max_requests: int) -> tuple[int, int]:
    """Block size and pipeline depth under ``limit`` (unchanged without a cap)."""
    if limit is None:
        return block_size, max_requests
    block = limit.request_size(block_size)
    return block, limit.requests_in_flight(max_requests, block)


_Queue = collections.deque[tuple[int, int, "asyncio.Task[R]"]]


async def _oldest(queue: _Queue[R], stall_timeout: float, nothing: str) -> tuple[int, int, R]:
    """
    Wait for the oldest request in ``queue`` and take it off: ``(offset, length, result)``.

    :raises TransferStalled: it did not complete within ``stall_timeout`` seconds
    """
    offset, length, task = queue[0]
    done, _ = await asyncio.wait({task}, timeout=stall_timeout)
    if not done:
        raise TransferStalled(
            f"{nothing} for {stall_timeout:g} s at offset {offset}; treating the link as dead.",
            offset=offset,
        )
    queue.popleft()
    return offset, length, task.result()


async def _cancel_all(queue: _Queue[R]) -> None:
    """Cancel the requests still in flight and wait until they are gone."""
    for _, _, task in queue:
        task.cancel()
    if queue:
        await asyncio.gather(*(t for _, _, t in queue), return_exceptions=True)
