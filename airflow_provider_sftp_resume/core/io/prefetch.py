"""
Reads sent before they are asked for: the first data window travels with the tail fingerprint.

A fresh try reads the remote file's last 64 KiB (its fingerprint) before the first data block is
asked for, one round trip in which the link carries nothing else. :class:`PrefetchingReader` sends
the first window of the data at the same time; when the pipeline then asks for exactly those
ranges (:func:`~.pipeline.pipelined_read` asks in file order, block by block), it takes the answers
already on their way. A read of any other range goes to the server as before, so the bytes a
caller sees are the same either way; only the round trip is saved. Memory stays bounded by the one
window the pipeline would have had in flight anyway. A read at the window's next offset with
another length shows that the caller reads in another shape: the early reads are dropped then.
:attr:`PrefetchingReader.claimed` and :attr:`~PrefetchingReader.unclaimed` count what became of them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.remote.protocol import RemoteReader

log = logging.getLogger(__name__)


def first_window(start: int, end: int, block_size: int, requests: int) -> list[tuple[int, int]]:
    """
    The ``(offset, length)`` of the first ``requests`` reads a pipeline over ``[start, end)`` sends.

    :param start: first byte
    :param end: one past the last byte
    :param block_size: bytes per request
    :param requests: requests in flight
    """
    window: list[tuple[int, int]] = []
    offset = start
    while offset < end and len(window) < requests:
        length = min(block_size, end - offset)
        window.append((offset, length))
        offset += length
    return window


class PrefetchingReader:
    """
    A :class:`~.protocol.RemoteReader` whose reads of prefetched ranges take the early answers.

    :param reader: the open remote file
    """

    def __init__(self, reader: RemoteReader) -> None:
        self._reader = reader
        self._early: dict[tuple[int, int], asyncio.Future[bytes]] = {}
        #: early reads sent, taken by a read of their range, and dropped with nobody asking for them
        self.sent = self.claimed = self.unclaimed = 0

    def prefetch(self, ranges: list[tuple[int, int]]) -> None:
        """Send reads of ``ranges`` (``(offset, length)``) now, in order."""
        self.sent += len(ranges)
        for offset, length in ranges:
            self._early[(offset, length)] = asyncio.ensure_future(self._reader.read(offset, length))

    async def read(self, offset: int, length: int) -> bytes:
        early = self._early.pop((offset, length), None)
        if early is not None:
            self.claimed += 1
            return await early
        if self._early and offset == next(iter(self._early))[0]:
            # The window's next range asked with another length: the caller reads in another shape,
            # and none of the early reads will be claimed. Drop them now, not at the end of the try.
            self.drop()
        return await self._reader.read(offset, length)

    def drop(self) -> None:
        """Cancel the early reads nobody asked for, and forget them (their errors included)."""
        early, self._early = self._early, {}
        if early:
            self.unclaimed += len(early)
            log.debug(
                "%d of %d early reads dropped unclaimed, from %s", len(early), self.sent, next(iter(early))
            )
        for future in early.values():
            if future.done():
                if not future.cancelled():
                    future.exception()  # retrieved: a read nobody wanted has no one to fail
            else:
                future.cancel()

    def finish(self) -> None:
        """Drop the early reads nobody asked for, and say at debug level what became of them."""
        self.drop()
        if self.sent:
            log.debug(
                "Early reads: %d sent, %d claimed, %d dropped unclaimed",
                self.sent,
                self.claimed,
                self.unclaimed,
            )

    async def close(self) -> None:
        self.drop()
        await self._reader.close()
