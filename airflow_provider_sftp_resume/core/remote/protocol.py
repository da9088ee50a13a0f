"""
What the transfer engine needs from a remote file system, as a small protocol.

The engine never talks to an SSH library directly: it reads and writes blocks at offsets, lists
directories and asks for file attributes. :mod:`airflow_provider_sftp_resume.core.remote.sftp` implements
this over asyncssh; tests can implement the read side in memory to reach edge cases a real server
will not produce on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager


#: Seconds allowed to close a remote handle after a failure (the link may be dead).
CLOSE_TIMEOUT = 2.0


@dataclass(frozen=True)
class RemoteStat:
    """
    Attributes of a remote path, as far as the engine cares.

    :param size: size in bytes
    :param mtime: modification time, whole seconds since the epoch (SFTP v3 resolution)
    :param is_dir: whether the path is a directory
    :param is_regular: whether the path is a regular file
    :param is_symlink: whether the path itself is a symbolic link (only from ``lstat``/listings)
    :param size_known: whether the server sent the size (SFTP attributes are optional; ``size`` is 0
        when it did not)
    """

    size: int
    mtime: int
    is_dir: bool = False
    is_regular: bool = True
    is_symlink: bool = False
    size_known: bool = True


@dataclass(frozen=True)
class RemoteEntry:
    """
    One name in a remote directory listing.

    :param name: the name as the server sent it (untrusted: may hold anything but ``/``; bytes that
        are not UTF-8 are kept as surrogate escapes, as ``os.fsdecode`` does)
    :param stat: its attributes, not following a symbolic link
    """

    name: str
    stat: RemoteStat


class RemoteReader(Protocol):
    """An open remote file that serves reads at arbitrary offsets, several in flight at once."""

    async def read(self, offset: int, length: int) -> bytes:
        """
        Read up to ``length`` bytes at ``offset``.

        :return: the bytes read; fewer than asked is a short read, ``b""`` means end of file
        """
        ...

    async def close(self) -> None:
        """Close the remote file handle."""
        ...


class RemoteWriter(Protocol):
    """An open remote file that accepts writes at arbitrary offsets, several in flight at once."""

    async def write(self, offset: int, data: bytes) -> None:
        """Write all of ``data`` at ``offset``; returns when the server acknowledged it."""
        ...

    async def flush(self) -> bool:
        """Ask the server to make written data durable; ``False`` when it cannot (no extension)."""
        ...

    async def close(self) -> None:
        """Close the remote file handle."""
        ...


class RemoteFileSystem(Protocol):
    """One open session with a remote file system."""

    @property
    def max_read_len(self) -> int:
        """Largest read the server accepts in one request (advertised, or a safe default)."""
        ...

    async def stat(self, path: str) -> RemoteStat:
        """
        Return the attributes of ``path``, following symlinks.

        :raises RemoteFileNotFound: when the path does not exist
        """
        ...

    async def open_reader(self, path: str) -> RemoteReader:
        """Open ``path`` for reading."""
        ...

    @property
    def max_write_len(self) -> int:
        """Largest write the server accepts in one request (advertised, or a safe default)."""
        ...

    async def lstat(self, path: str) -> RemoteStat:
        """Return the attributes of ``path`` itself, not following a symbolic link."""
        ...

    async def list_dir(self, path: str) -> list[RemoteEntry]:
        """List ``path`` (without ``.`` and ``..``), attributes not following links."""
        ...

    async def realpath(self, path: str) -> str:
        """Return the canonical absolute form of ``path``, links resolved."""
        ...

    async def open_writer(self, path: str, *, truncate: bool) -> RemoteWriter:
        """Open ``path`` for writing at offsets, creating it; ``truncate`` empties it first."""
        ...

    async def replace(self, source: str, target: str) -> str:
        """
        Rename ``source`` to ``target``, replacing ``target`` if it exists.

        :return: how it was done (``posix-rename``, ``rename``, or ``rename-aside``)
        """
        ...

    async def rename(self, source: str, target: str) -> None:
        """Rename ``source`` to ``target`` without replacing it (SFTP's RENAME refuses an existing target)."""
        ...

    async def remove(self, path: str) -> None:
        """Remove a file."""
        ...

    async def set_mtime(self, path: str, mtime: int) -> bool:
        """Set the modification time; ``False`` when the server refuses (some do, by design)."""
        ...

    async def make_dirs(self, path: str) -> None:
        """Create ``path`` and missing parents."""
        ...


class SessionFactory(Protocol):
    """
    Opens a new session with the remote file system, closed when the context exits.

    It also says who it talks to and whether a worker process can rebuild it: resume state records
    the ``identity`` (state kept for one server is never used for another), and extra connections
    run in worker processes only when :meth:`process_spec` gives what a child needs.
    """

    def __call__(self) -> AbstractAsyncContextManager[RemoteFileSystem]: ...

    @property
    def identity(self) -> str:
        """Who the sessions talk to, e.g. ``user@host:port``; recorded in resume state."""
        ...

    def process_spec(self) -> dict[str, Any] | None:
        """What a worker process needs to open the same sessions; ``None``: only in this process."""
        ...


async def close_quietly(handle: RemoteReader | RemoteWriter) -> None:
    """Close a remote handle, giving up after a moment: after a failure the link may be dead."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(handle.close(), CLOSE_TIMEOUT)
