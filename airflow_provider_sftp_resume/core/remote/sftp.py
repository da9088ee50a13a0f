"""
The :class:`~airflow_provider_sftp_resume.core.remote.protocol.RemoteFileSystem` protocol over asyncssh.

asyncssh is the transport because it was the fastest Python SFTP client measured on this project
(see docs/architecture.md, "Why asyncssh"), it is already installed with ``apache-airflow-providers-sftp``
(``SFTPHookAsync`` uses it), and it lets many reads be in flight on one channel without threads.
Open files live in :mod:`.handles`, starting SFTP and the request sizes in :mod:`.startup`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import asyncssh

from airflow_provider_sftp_resume.core.remote.acks import acknowledge_promptly
from airflow_provider_sftp_resume.core.remote.attributes import listed_name, remote_stat
from airflow_provider_sftp_resume.core.remote.connect import connect_with_retries
from airflow_provider_sftp_resume.core.remote.failures import (
    note_refused_extension,
    translate_error,
    translated,
)
from airflow_provider_sftp_resume.core.remote.handles import AsyncsshReader, AsyncsshWriter
from airflow_provider_sftp_resume.core.remote.protocol import RemoteEntry, RemoteStat
from airflow_provider_sftp_resume.core.remote.ssh import SSHEndpoint
from airflow_provider_sftp_resume.core.remote.startup import (
    FALLBACK_READ_LEN,
    FALLBACK_WRITE_LEN,
    begin_sftp,
    read_size,
    settle_quietly,
    write_len,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow_provider_sftp_resume.core.remote.readsize import ReadSize

__all__ = [
    "FALLBACK_READ_LEN",
    "FALLBACK_WRITE_LEN",
    "AsyncsshFileSystem",
    "SFTPSessionFactory",
    "open_sftp_session",
]

#: Errors a server sends when it will not do an optional operation (set times, fsync, rename over).
REFUSALS = (asyncssh.SFTPOpUnsupported, asyncssh.SFTPPermissionDenied, asyncssh.SFTPFailure)
POSIX_RENAME = "posix-rename@openssh.com"


class AsyncsshFileSystem:
    """
    One SFTP session on one SSH connection.

    :param sftp: the started asyncssh SFTP client
    :param server: ``user@host:port``, for log lines
    :param connection: the SSH connection it runs on (for :mod:`~.checksums`, which may run a command)
    :param limits: the pending ``limits@openssh.com`` request (:func:`~.startup.begin_sftp`); the
        request sizes are settled once a file is open
    """

    def __init__(
        self,
        sftp: asyncssh.SFTPClient,
        server: str = "",
        connection: asyncssh.SSHClientConnection | None = None,
        *,
        limits: asyncio.Future[None] | None = None,
    ) -> None:
        self._sftp = sftp
        self._limits = limits
        self.server = server
        #: the asyncssh client and connection, for what the protocol does not cover (checksums)
        self.sftp_client = sftp
        self.ssh_connection = connection
        #: optional extensions this server advertised and then refused in this session
        self.refused: set[str] = set()
        self._read_size: ReadSize | None = None

    @property
    def read_size(self) -> ReadSize:
        """
        The read size, advertised or discovered by the session's reads (shared by its open files).

        Settled once the ``limits@openssh.com`` answer is in (a file is open); before that it says
        what is known so far and is not kept.
        """
        if self._read_size is not None:
            return self._read_size
        size = read_size(self._sftp.limits, self.server)
        if self._limits is None or self._limits.done():
            self._read_size = size
        return size

    @property
    def max_read_len(self) -> int:
        return self.read_size.ceiling

    @property
    def max_write_len(self) -> int:
        return write_len(self._sftp.limits)

    async def stat(self, path: str) -> RemoteStat:
        with translated(f"reading the attributes of {path}"):
            return remote_stat(await self._sftp.stat(path))

    async def lstat(self, path: str) -> RemoteStat:
        with translated(f"reading the attributes of {path}"):
            return remote_stat(await self._sftp.lstat(path))

    async def _sizes_settled(self) -> None:
        """Wait for the answer to ``limits@openssh.com`` (sent at start-up, answered long ago, mostly)."""
        if self._limits is not None:
            await self._limits

    async def open_reader(self, path: str) -> AsyncsshReader:
        with translated(f"opening {path}"):
            # block_size=0: every read() is exactly one request; the engine does the pipelining.
            # The open travels with the limits request; both answers arrive in one round trip.
            handle, _ = await asyncio.gather(self._sftp.open(path, "rb", block_size=0), self._sizes_settled())
        return AsyncsshReader(handle, path, self.read_size)

    async def open_writer(self, path: str, *, truncate: bool) -> AsyncsshWriter:
        flags = asyncssh.FXF_WRITE | asyncssh.FXF_CREAT | (asyncssh.FXF_TRUNC if truncate else 0)
        with translated(f"opening {path} for writing"):
            handle, _ = await asyncio.gather(
                self._sftp.open(path, flags, encoding=None, block_size=0), self._sizes_settled()
            )
        return AsyncsshWriter(handle, path, self.server, self.refused)

    async def list_dir(self, path: str) -> list[RemoteEntry]:
        # Names are listed as bytes: one name that is not UTF-8 must not fail the whole listing.
        # Bytes that are not UTF-8 are kept as surrogate escapes, for names.check_relative_name to refuse.
        with translated(f"listing {path}"):
            return [
                RemoteEntry(listed_name(entry), remote_stat(entry.attrs))
                async for entry in self._sftp.scandir(path.encode("utf-8"))
                if entry.filename not in (b".", b"..")
            ]

    async def realpath(self, path: str) -> str:
        with translated(f"resolving {path}"):
            return str(await self._sftp.realpath(path))

    async def replace(self, source: str, target: str) -> str:
        refusal: asyncssh.SFTPError | None = None
        with translated(f"renaming {source} to {target}"):
            if POSIX_RENAME not in self.refused:
                try:
                    await self._sftp.posix_rename(source, target)
                    return "posix-rename"
                except asyncssh.SFTPOpUnsupported:
                    self.refused.add(POSIX_RENAME)
                except asyncssh.SFTPPermissionDenied as exc:
                    refusal = exc  # the admin denied it, or the rename itself is not allowed
            # No posix-rename@openssh.com: SFTP v3's RENAME refuses an existing target, so move the
            # old file aside first, and put it back if the second rename fails.
            how = await self._rename_without_posix_rename(source, target)
        if refusal is not None:  # the plain rename was allowed: it was the extension that was refused
            self.refused.add(POSIX_RENAME)
            note_refused_extension(
                self.server, POSIX_RENAME, refusal, "files are put in place with a plain SFTP rename instead"
            )
        return how

    async def _rename_without_posix_rename(self, source: str, target: str) -> str:
        """Plain SFTP renames: straight over when ``target`` is absent, else with the old file aside."""
        if not await self._sftp.exists(target):
            await self._sftp.rename(source, target)
            return "rename"
        aside = f"{target}.replaced-{secrets.token_hex(4)}"
        await self._sftp.rename(target, aside)
        try:
            await self._sftp.rename(source, target)
        except BaseException:
            with contextlib.suppress(asyncssh.Error, OSError):
                await self._sftp.rename(aside, target)
            raise
        with contextlib.suppress(asyncssh.Error, OSError):
            await self._sftp.remove(aside)
        return "rename-aside"

    async def rename(self, source: str, target: str) -> None:
        with translated(f"renaming {source} to {target}"):
            # SFTP v3 RENAME: "an error if there already exists a file" at target (OpenSSH: link+unlink).
            await self._sftp.rename(source, target)

    async def remove(self, path: str) -> None:
        with translated(f"removing {path}"):
            await self._sftp.remove(path)

    async def set_mtime(self, path: str, mtime: int) -> bool:
        with translated(f"setting the modification time of {path}"):
            try:
                await self._sftp.utime(path, (mtime, mtime))
            except REFUSALS:
                return False  # S3-backed and other servers refuse SETSTAT by design
        return True

    async def make_dirs(self, path: str) -> None:
        with translated(f"creating the directory {path}"):
            await self._sftp.makedirs(path, exist_ok=True)


@contextlib.asynccontextmanager
async def open_sftp_session(
    endpoint: SSHEndpoint,
    *,
    attempts: int = 3,
    max_wait: float = 10.0,
) -> AsyncIterator[AsyncsshFileSystem]:
    """
    Connect, start SFTP, and close both when the context exits.

    Connecting is retried with jittered exponential back-off on transient errors only
    (:func:`~.connect.connect_with_retries`).

    :param endpoint: where and how to connect
    :param attempts: connection attempts before giving up (at least 1)
    :param max_wait: longest pause between attempts, seconds
    """
    conn = await connect_with_retries(endpoint, attempts=attempts, max_wait=max_wait)
    try:
        stop_acknowledging = acknowledge_promptly(conn)  # saves sshd's Nagle wait (40 ms) at start-up
        try:
            started = begin_sftp(conn, endpoint.describe())
            sftp, limits = await asyncio.wait_for(started, endpoint.connect_timeout)
        except (asyncssh.Error, OSError, TimeoutError) as exc:
            raise translate_error(exc, f"starting SFTP on {endpoint.describe()}") from None
        finally:
            stop_acknowledging()
        try:
            yield AsyncsshFileSystem(sftp, endpoint.describe(), conn, limits=limits)
        finally:
            await settle_quietly(limits)
            sftp.exit()
    finally:
        conn.abort()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.wait_closed(), timeout=2)


@dataclass(frozen=True)
class SFTPSessionFactory:
    """
    Opens SFTP sessions to one endpoint; a plain value, so a worker process can rebuild it.

    :param endpoint: where and how to connect
    :param attempts: connection attempts per session (transient errors only)
    :param max_wait: longest pause between attempts, seconds
    """

    endpoint: SSHEndpoint
    attempts: int = 3
    max_wait: float = 10.0

    def __call__(self) -> contextlib.AbstractAsyncContextManager[AsyncsshFileSystem]:
        return open_sftp_session(self.endpoint, attempts=self.attempts, max_wait=self.max_wait)

    @property
    def identity(self) -> str:
        """``user@host:port``, as resume state records it."""
        return self.endpoint.describe()

    def process_spec(self) -> dict[str, Any] | None:
        """A worker process rebuilds this factory from :meth:`to_dict`."""
        return self.to_dict()

    def to_dict(self) -> dict[str, Any]:
        """Everything needed to connect, secrets included: only ever sent down a private pipe."""
        return {"endpoint": asdict(self.endpoint), "attempts": self.attempts, "max_wait": self.max_wait}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SFTPSessionFactory:
        """Rebuild a factory sent by :meth:`to_dict`."""
        endpoint = dict(data["endpoint"])
        for name in ("client_keys", "trusted_host_keys", "ciphers"):
            endpoint[name] = tuple(endpoint[name])
        endpoint["disabled_algorithms"] = tuple(
            (str(kind), tuple(names)) for kind, names in endpoint["disabled_algorithms"]
        )
        return cls(SSHEndpoint(**endpoint), attempts=int(data["attempts"]), max_wait=float(data["max_wait"]))
