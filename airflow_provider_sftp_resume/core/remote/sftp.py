"""
The :class:`~airflow_provider_sftp_resume.core.remote.protocol.RemoteFileSystem` protocol over asyncssh.

asyncssh is the transport because it was the fastest Python SFTP client measured on this project
(see docs/architecture.md, "Why asyncssh"), it is already installed with ``apache-airflow-providers-sftp``
(``SFTPHookAsync`` uses it), and it lets many reads be in flight on one channel without threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import secrets
import stat as stat_module
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import asyncssh

from airflow_provider_sftp_resume.core.errors import TransferInterrupted
from airflow_provider_sftp_resume.core.remote.failures import note_refused_extension, translate_error
from airflow_provider_sftp_resume.core.remote.protocol import RemoteEntry, RemoteStat
from airflow_provider_sftp_resume.core.remote.ssh import SSHEndpoint, connect_with_retries

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

#: Read size used when the server does not advertise its limits (``limits@openssh.com``).
#: The SFTP draft asks every server to accept at least 32 KiB; OpenSSH's own client uses it too.
FALLBACK_READ_LEN = 32 * 1024  # 32 KiB
#: Never ask for more than this in one read, whatever the server advertises.
MAX_READ_LEN = 256 * 1024  # 256 KiB, as OpenSSH advertises
#: Write size when the server does not advertise its limits; OpenSSH's own client writes 32 KiB.
FALLBACK_WRITE_LEN = 32 * 1024  # 32 KiB
#: Never write more than this in one request, whatever the server advertises.
MAX_WRITE_LEN = 256 * 1024  # 256 KiB
#: Errors a server sends when it will not do an optional operation (set times, fsync, rename over).
REFUSALS = (asyncssh.SFTPOpUnsupported, asyncssh.SFTPPermissionDenied, asyncssh.SFTPFailure)
#: How a server says no to an optional extension (fsync, posix-rename, limits): not implemented, or
#: denied by the admin. OpenSSH 6.5-8.5 keep advertising requests denied with ``sftp-server -P`` and
#: answer PERMISSION_DENIED; 8.6+ stop advertising them. SFTPFailure is not a refusal here: for fsync
#: it is the server's own I/O error.
EXTENSION_REFUSALS = (asyncssh.SFTPOpUnsupported, asyncssh.SFTPPermissionDenied)
FSYNC = "fsync@openssh.com"
POSIX_RENAME = "posix-rename@openssh.com"
LIMITS = "limits@openssh.com"


def _name_of(entry: asyncssh.SFTPName) -> str:
    """A listed name (bytes, as asked for), with bytes that are not UTF-8 kept as surrogate escapes."""
    name = entry.filename
    return name.decode("utf-8", "surrogateescape") if isinstance(name, bytes) else name


def _to_remote_stat(attrs: asyncssh.SFTPAttrs) -> RemoteStat:
    mode = attrs.permissions
    if mode is not None:
        is_dir = stat_module.S_ISDIR(mode)
        is_regular = stat_module.S_ISREG(mode)
    else:
        is_dir = attrs.type == asyncssh.FILEXFER_TYPE_DIRECTORY
        is_regular = attrs.type in (asyncssh.FILEXFER_TYPE_REGULAR, asyncssh.FILEXFER_TYPE_UNKNOWN)
    return RemoteStat(
        size=attrs.size or 0,
        size_known=attrs.size is not None,
        mtime=int(attrs.mtime or 0),
        is_dir=is_dir,
        is_regular=is_regular,
        is_symlink=(
            stat_module.S_ISLNK(mode) if mode is not None else attrs.type == asyncssh.FILEXFER_TYPE_SYMLINK
        ),
    )


class AsyncsshReader:
    """A remote file opened for reading; each :meth:`read` is one SFTP request."""

    def __init__(self, handle: asyncssh.SFTPClientFile, path: str) -> None:
        self._handle = handle
        self._path = path

    async def read(self, offset: int, length: int) -> bytes:
        try:
            data: bytes = await self._handle.read(length, offset)
        except (asyncssh.Error, OSError) as exc:
            raise translate_error(exc, f"reading {self._path} at offset {offset}") from exc
        return data

    async def stat(self) -> RemoteStat:
        try:
            return _to_remote_stat(await self._handle.stat())
        except (asyncssh.Error, OSError) as exc:
            raise translate_error(exc, f"reading the attributes of {self._path}") from exc

    async def close(self) -> None:
        with contextlib.suppress(asyncssh.Error, OSError):
            await self._handle.close()


class AsyncsshWriter:
    """
    A remote file opened for writing; each :meth:`write` is one SFTP request.

    :param handle: the open asyncssh file
    :param path: its remote path, for messages
    :param session: the session it belongs to (remembers a refused fsync)
    """

    def __init__(self, handle: asyncssh.SFTPClientFile, path: str, session: AsyncsshFileSystem) -> None:
        self._handle = handle
        self._path = path
        self._session = session

    async def write(self, offset: int, data: bytes) -> None:
        try:
            await self._handle.write(data, offset)
        except (asyncssh.Error, OSError) as exc:
            raise translate_error(exc, f"writing {self._path} at offset {offset}") from exc

    async def flush(self) -> bool:
        """
        Ask the server to put what it acknowledged on its disk (``fsync@openssh.com``).

        :returns: ``False`` when the server has no fsync or refuses it (then it decides when data
            reaches its disk)
        """
        if FSYNC in self._session.refused:
            return False
        try:
            await self._handle.fsync()
        except asyncssh.SFTPOpUnsupported:
            self._session.refused.add(FSYNC)
            return False  # not advertised: asyncssh answers without asking the server
        except asyncssh.SFTPPermissionDenied as exc:
            self._session.refused.add(FSYNC)
            note_refused_extension(
                self._session.server,
                FSYNC,
                exc,
                "uploads go on without it, and a resumed upload re-reads sampled blocks of the kept bytes",
            )
            return False
        except asyncssh.SFTPNoConnection as exc:  # the link went down while fsync was pending
            raise TransferInterrupted(f"Connection lost while flushing {self._path}: {exc.reason}") from exc
        except (asyncssh.Error, OSError) as exc:
            raise translate_error(exc, f"flushing {self._path}") from exc
        return True

    async def close(self) -> None:
        with contextlib.suppress(asyncssh.Error, OSError):
            await self._handle.close()


class AsyncsshFileSystem:
    """
    One SFTP session on one SSH connection.

    :param sftp: the started asyncssh SFTP client
    :param server: ``user@host:port``, for log lines
    """

    def __init__(self, sftp: asyncssh.SFTPClient, server: str = "") -> None:
        self._sftp = sftp
        self.server = server
        #: optional extensions this server advertised and then refused in this session
        self.refused: set[str] = set()

    @property
    def max_read_len(self) -> int:
        advertised = self._sftp.limits.max_read_len
        if advertised and advertised > asyncssh.sftp.SAFE_SFTP_READ_LEN:
            return int(min(advertised, MAX_READ_LEN))
        return FALLBACK_READ_LEN

    async def stat(self, path: str) -> RemoteStat:
        try:
            return _to_remote_stat(await self._sftp.stat(path))
        except (asyncssh.Error, OSError) as exc:
            raise translate_error(exc, f"reading the attributes of {path}") from exc

    async def open_reader(self, path: str) -> AsyncsshReader:
        try:
            # block_size=0: every read() is exactly one request; the engine does the pipelining.
            handle = await self._sftp.open(path, "rb", block_size=0)
        except (asyncssh.Error, OSError) as exc:
            raise translate_error(exc, f"opening {path}") from exc
        return AsyncsshReader(handle, path)

    @property
    def max_write_len(self) -> int:
        advertised = self._sftp.limits.max_write_len
        if advertised and advertised > FALLBACK_WRITE_LEN:
            return int(min(advertised, MAX_WRITE_LEN))
        return FALLBACK_WRITE_LEN

    async def lstat(self, path: str) -> RemoteStat:
        try:
            return _to_remote_stat(await self._sftp.lstat(path))
        except (asyncssh.Error, OSError) as exc:
            raise translate_error(exc, f"reading the attributes of {path}") from exc

    async def list_dir(self, path: str) -> list[RemoteEntry]:
        # Names are listed as bytes: one name that is not UTF-8 must not fail the whole listing.
        # Bytes that are not UTF-8 are kept as surrogate escapes, for names.check_relative_name to refuse.
        try:
            return [
                RemoteEntry(_name_of(entry), _to_remote_stat(entry.attrs))
                async for entry in self._sftp.scandir(path.encode("utf-8"))
                if entry.filename not in (b".", b"..")
            ]
        except (asyncssh.Error, OSError) as exc:
            raise translate_error(exc, f"listing {path}") from exc

    async def realpath(self, path: str) -> str:
        try:
            return str(await self._sftp.realpath(path))
        except (asyncssh.Error, OSError) as exc:
            raise translate_error(exc, f"resolving {path}") from exc

    async def open_writer(self, path: str, *, truncate: bool) -> AsyncsshWriter:
        flags = asyncssh.FXF_WRITE | asyncssh.FXF_CREAT | (asyncssh.FXF_TRUNC if truncate else 0)
        try:
            handle = await self._sftp.open(path, flags, encoding=None, block_size=0)
        except (asyncssh.Error, OSError) as exc:
            raise translate_error(exc, f"opening {path} for writing") from exc
        return AsyncsshWriter(handle, path, self)

    async def replace(self, source: str, target: str) -> str:
        where = f"renaming {source} to {target}"
        refusal: asyncssh.SFTPError | None = None
        try:
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
        except (asyncssh.Error, OSError) as exc:
            raise translate_error(exc, where) from exc
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
        try:
            # SFTP v3 RENAME: "an error if there already exists a file" at target (OpenSSH: link+unlink).
            await self._sftp.rename(source, target)
        except (asyncssh.Error, OSError) as exc:
            raise translate_error(exc, f"renaming {source} to {target}") from exc

    async def remove(self, path: str) -> None:
        try:
            await self._sftp.remove(path)
        except (asyncssh.Error, OSError) as exc:
            raise translate_error(exc, f"removing {path}") from exc

    async def set_mtime(self, path: str, mtime: int) -> bool:
        try:
            await self._sftp.utime(path, (mtime, mtime))
        except REFUSALS:
            return False  # S3-backed and other servers refuse SETSTAT by design
        except (asyncssh.Error, OSError) as exc:
            raise translate_error(exc, f"setting the modification time of {path}") from exc
        return True

    async def make_dirs(self, path: str) -> None:
        try:
            await self._sftp.makedirs(path, exist_ok=True)
        except (asyncssh.Error, OSError) as exc:
            raise translate_error(exc, f"creating the directory {path}") from exc


class _NoLimitsClientHandler(asyncssh.sftp.SFTPClientHandler):
    """asyncssh's SFTP client handler, without the ``limits@openssh.com`` request at start-up."""

    async def request_limits(self) -> None:
        """Keep asyncssh's safe defaults: this server advertised the limits request and refused it."""


async def start_sftp(conn: asyncssh.SSHClientConnection, server: str) -> asyncssh.SFTPClient:
    """
    Start SFTP on ``conn``; a server that refuses ``limits@openssh.com`` gets a session without it.

    asyncssh's ``start_sftp_client`` sends ``limits@openssh.com`` itself when the server advertises
    it, and fails the whole start-up when the server then refuses it (OpenSSH 6.5-8.5 with
    ``sftp-server -P limits``). The extension only tunes request sizes, so on that refusal a second
    SFTP channel is started the way ``start_sftp_client`` does it, without the limits request; the
    session then uses the sizes every server accepts (:data:`FALLBACK_READ_LEN`,
    :data:`FALLBACK_WRITE_LEN`). The refused channel is closed with the connection.

    :param conn: an authenticated SSH connection
    :param server: ``user@host:port``, for the log line
    """
    try:
        return await conn.start_sftp_client()
    except EXTENSION_REFUSALS as exc:
        # The version exchange cannot answer with a status: the only request start-up sends is limits.
        note_refused_extension(
            server, LIMITS, exc, f"requests of {FALLBACK_WRITE_LEN // 1024} KiB, which every server accepts"
        )
    writer, reader, _ = await conn.open_session(subsystem="sftp", encoding=None)
    # The handler's constructor is internal API and changed in asyncssh 2.22 (``utf8_decode_errors``
    # was added): pass only the arguments this version takes, by name.
    arguments: dict[str, Any] = {
        "loop": asyncio.get_running_loop(),
        "utf8_decode_errors": "strict",
        "reader": reader,
        "writer": writer,
        "sftp_version": asyncssh.sftp.MIN_SFTP_VERSION,
    }
    accepted = inspect.signature(asyncssh.sftp.SFTPClientHandler.__init__).parameters
    handler = _NoLimitsClientHandler(**{name: value for name, value in arguments.items() if name in accepted})
    await handler.start()
    conn.create_task(handler.recv_packets(), handler.logger)
    return asyncssh.SFTPClient(handler, "utf-8", "strict")


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
    (:func:`~.ssh.connect_with_retries`).

    :param endpoint: where and how to connect
    :param attempts: connection attempts before giving up (at least 1)
    :param max_wait: longest pause between attempts, seconds
    """
    conn = await connect_with_retries(endpoint, attempts=attempts, max_wait=max_wait)
    try:
        try:
            sftp = await asyncio.wait_for(start_sftp(conn, endpoint.describe()), endpoint.connect_timeout)
        except (asyncssh.Error, OSError, TimeoutError) as exc:
            raise translate_error(exc, f"starting SFTP on {endpoint.describe()}") from None
        try:
            yield AsyncsshFileSystem(sftp, endpoint.describe())
        finally:
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
