"""
Pipelined reads: many block requests in flight, results handed out in file order.

One request per round trip is what makes the naive ``read(32768)`` loop crawl on a long link. Here
up to ``max_requests`` block reads are outstanding at once; the caller sees ``(offset, data)`` in
ascending offset order, so it can append to the local file and advance a single durable offset.
Memory is bounded by ``max_requests * block_size``. A short read (fewer bytes than asked) is
answered by requesting the rest before anything after it is handed out.

asyncssh has a parallel reader of its own (``SFTPClientFile.read`` with a block size), but it
returns the whole range as one ``bytes`` object, which neither bounds memory nor lets the caller
checkpoint or notice a stall as data arrives; hence this small class.
"""

from __future__ import annotations

import asyncio
import collections
from typing import TYPE_CHECKING

from airflow_provider_sftp_resume.core.errors import RemoteChanged, TransferStalled

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from airflow_provider_sftp_resume.core.remote import RemoteReader


async def pipelined_read(
    reader: RemoteReader,
    start: int,
    end: int,
    *,
    block_size: int,
    max_requests: int,
    stall_timeout: float,
) -> AsyncGenerator[tuple[int, bytes], None]:
    """
    Read ``[start, end)`` of ``reader`` and yield ``(offset, data)`` in offset order.

    :param reader: the open remote file
    :param start: first byte to read
    :param end: one past the last byte to read
    :param block_size: bytes asked for in one request
    :param max_requests: requests kept in flight at once
    :param stall_timeout: seconds without any completed request before giving up
    :raises TransferStalled: nothing arrived for ``stall_timeout`` seconds
    :raises RemoteChanged: the file ended before ``end``
    """
    queue: collections.deque[tuple[int, int, asyncio.Task[bytes]]] = collections.deque()
    next_offset = start

    def issue(offset: int, length: int) -> tuple[int, int, asyncio.Task[bytes]]:
        return offset, length, asyncio.ensure_future(reader.read(offset, length))

    def fill() -> None:
        nonlocal next_offset
        while len(queue) < max_requests and next_offset < end:
            length = min(block_size, end - next_offset)
            queue.append(issue(next_offset, length))
            next_offset += length

    try:
        fill()
        while queue:
            offset, length, task = queue[0]
            done, _ = await asyncio.wait({task}, timeout=stall_timeout)
            if not done:
                raise TransferStalled(
                    f"No data for {stall_timeout:g} s at offset {offset}; treating the link as dead.",
                    offset=offset,
                )
            queue.popleft()
            data = task.result()[:length]  # a server must not send more than asked
            if not data:
                raise RemoteChanged(
                    f"The remote file ended at byte {offset}, before the expected {end}; it was "
                    "truncated or replaced while being read.",
                    what="size",
                )
            if len(data) < length:
                queue.appendleft(issue(offset + len(data), length - len(data)))
            fill()
            yield offset, data
    finally:
        for _, _, task in queue:
            task.cancel()
        if queue:
            await asyncio.gather(*(t for _, _, t in queue), return_exceptions=True)
