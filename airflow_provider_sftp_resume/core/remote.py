"""
What the transfer engine needs from a remote file system, as a small protocol.

The engine never talks to an SSH library directly: it reads blocks at offsets and asks for file
attributes. :mod:`airflow_provider_sftp_resume.core.sftp` implements this over asyncssh; tests can
implement it in memory to reach edge cases a real server will not produce on demand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager


@dataclass(frozen=True)
class RemoteStat:
    """
    Attributes of a remote path, as far as the engine cares.

    :param size: size in bytes
    :param mtime: modification time, whole seconds since the epoch (SFTP v3 resolution)
    :param is_dir: whether the path is a directory
    :param is_regular: whether the path is a regular file
    """

    size: int
    mtime: int
    is_dir: bool = False
    is_regular: bool = True


class RemoteReader(Protocol):
    """An open remote file that serves reads at arbitrary offsets, several in flight at once."""

    async def read(self, offset: int, length: int) -> bytes:
        """
        Read up to ``length`` bytes at ``offset``.

        :return: the bytes read; fewer than asked is a short read, ``b""`` means end of file
        """
        ...

    async def stat(self) -> RemoteStat:
        """Return the attributes of the open file."""
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


class SessionFactory(Protocol):
    """Opens a new session with the remote file system, closed when the context exits."""

    def __call__(self) -> AbstractAsyncContextManager[RemoteFileSystem]: ...
