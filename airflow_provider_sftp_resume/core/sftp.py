"""
The :class:`~airflow_provider_sftp_resume.core.remote.RemoteFileSystem` protocol over asyncssh.

asyncssh is the transport because it was the fastest Python SFTP client measured on this project
(see README, "Why asyncssh"), it is already installed with ``apache-airflow-providers-sftp``
(``SFTPHookAsync`` uses it), and it lets many reads be in flight on one channel without threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import stat as stat_module
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import asyncssh
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from airflow_provider_sftp_resume.core.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    HostKeyRejected,
    RemoteFileNotFound,
    RemotePathError,
    TransferError,
    TransferInterrupted,
)
from airflow_provider_sftp_resume.core.remote import RemoteEntry, RemoteStat
from airflow_provider_sftp_resume.core.tuning import SSH_WINDOW

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

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
#: Cipher preference when the connection names none: AES-GCM first, since AES-NI/ARMv8 make it the
#: cheapest for a Python client (asyncssh's own order puts chacha20-poly1305, computed in pieces,
#: first). The same algorithms as asyncssh's defaults, only reordered.
PREFERRED_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
)


@dataclass(frozen=True)
class SSHEndpoint:
    """
    Everything needed to open an SSH connection, with secrets kept out of ``repr``.

    :param host: server host name or address
    :param port: server TCP port
    :param username: login name
    :param password: password, if password authentication is used
    :param client_keys: private keys: file paths, or key text from the connection
    :param passphrase: passphrase of encrypted private keys
    :param use_default_keys: also try the user's default keys and agent (``look_for_keys``)
    :param trusted_host_keys: host keys (OpenSSH public key lines) trusted for this server; when
        empty and ``verify_host_key`` is set, ``known_hosts_path`` is used
    :param known_hosts_path: known_hosts file consulted when no host key is pinned
    :param verify_host_key: ``False`` only when the connection explicitly turns verification off
    :param connect_timeout: seconds allowed for TCP connect, key exchange and authentication
    :param keepalive_interval: seconds between keepalives (0 disables); a dead link is noticed after
        three missed replies
    :param ciphers: preferred encryption algorithms, if the connection names them
    :param proxy_command: command whose stdin/stdout carry the connection (``ProxyCommand``)
    :param window: SSH channel receive window in bytes; only an upper bound, the engine's outstanding
        requests decide the data in flight (see :mod:`.tuning`)
    :param max_packet_size: largest SSH channel packet the server may send us, in bytes
    """

    host: str
    port: int = 22
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    client_keys: tuple[str, ...] = field(default=(), repr=False)
    passphrase: str | None = field(default=None, repr=False)
    use_default_keys: bool = True
    trusted_host_keys: tuple[str, ...] = ()
    known_hosts_path: str | None = None
    verify_host_key: bool = True
    connect_timeout: float = 30.0
    keepalive_interval: float = 30.0
    ciphers: tuple[str, ...] = ()
    proxy_command: str | None = None
    window: int | None = SSH_WINDOW
    max_packet_size: int | None = None

    def describe(self) -> str:
        """Return ``user@host:port`` for log lines (no secrets)."""
        user = f"{self.username}@" if self.username else ""
        return f"{user}{self.host}:{self.port}"

    def asyncssh_options(self) -> dict[str, Any]:
        """Translate into keyword arguments of :func:`asyncssh.connect`."""
        options: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "connect_timeout": self.connect_timeout,
            "keepalive_interval": self.keepalive_interval or None,
            "keepalive_count_max": 3,
            # Bulk data is mostly compressed already; zlib would make the client CPU-bound.
            "compression_algs": None,
            "known_hosts": self._known_hosts(),
        }
        if self.password is not None:
            options["password"] = self.password
        if self.client_keys:
            options["client_keys"] = [_load_key(key, self.passphrase) for key in self.client_keys]
        elif not self.use_default_keys:
            options["client_keys"] = None
        options["encryption_algs"] = list(self.ciphers or PREFERRED_CIPHERS)
        if self.proxy_command:
            options["proxy_command"] = self.proxy_command
        if self.window:
            options["window"] = self.window
        if self.max_packet_size:
            options["max_pktsize"] = self.max_packet_size
        return options

    def _known_hosts(self) -> Any:
        if not self.verify_host_key:
            return None
        if self.trusted_host_keys:
            keys = [asyncssh.import_public_key(line) for line in self.trusted_host_keys]
            return (keys, [], [])
        if self.known_hosts_path:
            return self.known_hosts_path
        # Nothing trusted: every host key is rejected, as paramiko's RejectPolicy does.
        return ([], [], [])


def _load_key(key: str, passphrase: str | None) -> asyncssh.SSHKey:
    if "PRIVATE KEY" in key:
        return asyncssh.import_private_key(key, passphrase)
    return asyncssh.read_private_key(key, passphrase)


log = logging.getLogger(__name__)
_REFUSALS_NOTED: set[tuple[str, str]] = set()


def note_refused_extension(server: str, extension: str, exc: BaseException, consequence: str) -> None:
    """
    Log once per process (one task try) and server that ``server`` refused an optional extension.

    :param server: ``user@host:port``
    :param extension: the extension's name (``fsync@openssh.com``)
    :param exc: the server's answer
    :param consequence: what happens instead
    """
    if (server, extension) in _REFUSALS_NOTED:
        return
    _REFUSALS_NOTED.add((server, extension))
    reason = getattr(exc, "reason", "") or type(exc).__name__
    log.warning("The server %s refused %s (%s); %s.", server or "(unnamed)", extension, reason, consequence)


def translate_error(exc: BaseException, where: str) -> TransferError:
    """
    Map an asyncssh or socket error onto the engine's error tree.

    :param exc: the error raised by asyncssh or the socket layer
    :param where: what was being done, for the message (``"connecting to user@host:22"``)
    """
    if isinstance(exc, TransferError):
        return exc
    if isinstance(exc, asyncssh.PermissionDenied):
        return AuthenticationFailed(
            f"Authentication failed while {where}: {exc.reason}. Check the login, password or "
            "private key of the Airflow connection."
        )
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return HostKeyRejected(
            f"Host key verification failed while {where}: {exc.reason}. Put the server's current "
            "public host key in the connection's `host_key` extra (or its known_hosts file); set "
            "`no_host_key_check` only if you accept the man-in-the-middle risk."
        )
    if isinstance(exc, asyncssh.SFTPNoSuchFile):
        return RemoteFileNotFound(f"Remote file not found while {where}: {exc.reason}.")
    if isinstance(exc, asyncssh.SFTPPermissionDenied):
        return RemotePathError(
            f"Permission denied on the server while {where}: {exc.reason}. Ask the server's owner "
            "for access or fix the path."
        )
    if isinstance(exc, ConnectionRefusedError):
        return ConnectionFailed(
            f"Connection refused while {where}. Check that the SFTP server is running and that the "
            "connection's host and port are right (a retry may help if the server is restarting)."
        )
    if isinstance(exc, asyncssh.SFTPConnectionLost | asyncssh.ConnectionLost | ConnectionError):
        return TransferInterrupted(f"Connection lost while {where}: {exc}")
    if isinstance(exc, TimeoutError):
        return ConnectionFailed(f"Timed out while {where}.")
    if isinstance(exc, asyncssh.Error | OSError | asyncssh.SFTPError):
        return ConnectionFailed(f"SSH/SFTP error while {where}: {exc}")
    return ConnectionFailed(f"Unexpected error while {where}: {exc!r}")


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
        try:
            return [
                RemoteEntry(str(entry.filename), _to_remote_stat(entry.attrs))
                async for entry in self._sftp.scandir(path)
                if entry.filename not in (".", "..")
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


#: Errors worth a quick reconnect inside the same try: the server may be restarting or throttling
#: (OpenSSH ``MaxStartups``). Authentication and host key errors are never retried.
TRANSIENT_CONNECT_ERRORS: Sequence[type[BaseException]] = (ConnectionFailed, TransferInterrupted)


def quiet_library_logs() -> None:
    """
    Keep asyncssh's per-connection INFO lines out of task logs, unless someone chose a level.

    The engine logs one line per phase itself; asyncssh would add five more for every connection.
    """
    library_logger = logging.getLogger("asyncssh")
    if library_logger.level == logging.NOTSET:
        library_logger.setLevel(logging.WARNING)


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
    handler = _NoLimitsClientHandler(
        asyncio.get_running_loop(), "strict", reader, writer, asyncssh.sftp.MIN_SFTP_VERSION
    )
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

    Set-up is retried with jittered exponential back-off (tenacity) on transient errors only.

    :param endpoint: where and how to connect
    :param attempts: connection attempts before giving up (at least 1)
    :param max_wait: longest pause between attempts, seconds
    """
    quiet_library_logs()
    where = f"connecting to {endpoint.describe()}"
    conn: asyncssh.SSHClientConnection | None = None
    async for attempt in AsyncRetrying(
        stop=stop_after_attempt(max(1, attempts)),
        wait=wait_random_exponential(multiplier=0.5, max=max_wait),
        retry=retry_if_exception_type(tuple(TRANSIENT_CONNECT_ERRORS)),
        reraise=True,
    ):
        with attempt:
            try:
                conn = await asyncssh.connect(**endpoint.asyncssh_options())
            except (TimeoutError, asyncssh.Error, OSError) as exc:
                raise translate_error(exc, where) from None
    assert conn is not None
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
        return cls(SSHEndpoint(**endpoint), attempts=int(data["attempts"]), max_wait=float(data["max_wait"]))
