"""Open remote files over asyncssh: one SFTP request per read or write, and ``fsync@openssh.com``."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import asyncssh

from airflow_provider_sftp_resume.core.errors import TransferInterrupted
from airflow_provider_sftp_resume.core.remote.failures import note_refused_extension, translated

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.remote.readsize import ReadSize

FSYNC = "fsync@openssh.com"


class AsyncsshReader:
    """
    A remote file opened for reading; each :meth:`read` is one SFTP request, or several at once while
    the session's read size is being discovered (:mod:`.readsize`).

    :param handle: the open asyncssh file
    :param path: its remote path, for messages
    :param size: the session's read size; ``None`` sends every read as asked
    """

    def __init__(self, handle: asyncssh.SFTPClientFile, path: str, size: ReadSize | None = None) -> None:
        self._handle = handle
        self._path = path
        self._size = size
        self._closing: asyncio.Future[None] | None = None

    async def read(self, offset: int, length: int) -> bytes:
        with translated(f"reading {self._path} at offset {offset}"):
            if self._size is None:
                return await self._request(offset, length)
            return await self._size.read(self._request, offset, length)

    async def _request(self, offset: int, length: int) -> bytes:
        data: bytes = await self._handle.read(length, offset)
        return data

    async def close(self) -> None:
        """Close the remote file; a second call waits for the first one's request (one close is sent)."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        await self._closing

    async def _close(self) -> None:
        with contextlib.suppress(asyncssh.Error, OSError):
            await self._handle.close()


class AsyncsshWriter:
    """
    A remote file opened for writing; each :meth:`write` is one SFTP request.

    :param handle: the open asyncssh file
    :param path: its remote path, for messages
    :param server: ``user@host:port`` of its session, for the log line about a refused fsync
    :param refused: the session's set of refused extensions (a refused fsync is added to it)
    """

    def __init__(self, handle: asyncssh.SFTPClientFile, path: str, server: str, refused: set[str]) -> None:
        self._handle = handle
        self._path = path
        self._server = server
        self._refused = refused

    async def write(self, offset: int, data: bytes) -> None:
        with translated(f"writing {self._path} at offset {offset}"):
            await self._handle.write(data, offset)

    async def flush(self) -> bool:
        """
        Ask the server to put what it acknowledged on its disk (``fsync@openssh.com``).

        :returns: ``False`` when the server has no fsync or refuses it (then it decides when data
            reaches its disk)
        """
        if FSYNC in self._refused:
            return False
        with translated(f"flushing {self._path}"):
            try:
                await self._handle.fsync()
            except asyncssh.SFTPOpUnsupported:
                self._refused.add(FSYNC)
                return False  # not advertised: asyncssh answers without asking the server
            except asyncssh.SFTPPermissionDenied as exc:
                self._refused.add(FSYNC)
                note_refused_extension(
                    self._server,
                    FSYNC,
                    exc,
                    "uploads go on without it, and a resumed upload re-reads sampled blocks of the kept "
                    "bytes",
                )
                return False
            except asyncssh.SFTPNoConnection as exc:  # the link went down while fsync was pending
                raise TransferInterrupted(
                    f"Connection lost while flushing {self._path}: {exc.reason}"
                ) from exc
        return True

    async def close(self) -> None:
        with contextlib.suppress(asyncssh.Error, OSError):
            await self._handle.close()
