"""
The :class:`~airflow_provider_sftp_resume.core.remote.RemoteFileSystem` protocol over asyncssh.

asyncssh is the transport because it was the fastest Python SFTP client measured on this project
(see README, "Why asyncssh"), it is already installed with ``apache-airflow-providers-sftp``
(``SFTPHookAsync`` uses it), and it lets many reads be in flight on one channel without threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import re
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
    RemoteDiskFull,
    RemoteFileNotFound,
    RemotePathError,
    TransferError,
    TransferInterrupted,
)
from airflow_provider_sftp_resume.core.remote import RemoteEntry, RemoteStat
from airflow_provider_sftp_resume.core.tuning import SSH_WINDOW

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence

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
#: Cipher preference: AES-GCM first, since AES-NI/ARMv8 make it the cheapest for a Python client
#: (asyncssh's own order puts chacha20-poly1305, computed in pieces, first). Only an order: every
#: algorithm asyncssh and paramiko offer by default is still offered after these, so the reorder can
#: never make a negotiation fail.
PREFERRED_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
)
#: What paramiko (the stock hook) offers by default beyond asyncssh's defaults, offered last so that a
#: legacy server the stock hook reaches is reached here too (the server picks the first of our list
#: it knows, so these are used only when it knows nothing better).
PARAMIKO_ALSO_OFFERS: dict[str, tuple[str, ...]] = {
    "ciphers": ("aes128-cbc", "aes192-cbc", "aes256-cbc", "3des-cbc"),
    "kex": (
        "diffie-hellman-group-exchange-sha1",
        "diffie-hellman-group14-sha1",
        "diffie-hellman-group1-sha1",
    ),
    "macs": ("hmac-md5", "hmac-sha1-96", "hmac-md5-96"),
    "keys": ("ssh-dss",),
}
#: paramiko's ``disabled_algorithms`` keys, and the :func:`asyncssh.connect` argument each one limits.
DISABLED_ALGORITHM_KINDS = {
    "ciphers": "encryption_algs",
    "macs": "mac_algs",
    "kex": "kex_algs",
    "keys": "server_host_key_algs",
    "pubkeys": "signature_algs",
    "compression": "compression_algs",
}


@dataclass(frozen=True)
class SSHEndpoint:
    """
    Everything needed to open an SSH connection, with secrets kept out of ``repr``.

    Host keys, as the stock hook (paramiko) checks them, but never more permissively: a key that
    differs from a pinned key, or from the known_hosts entry of the same type for this host, is
    always rejected; a key that is neither pinned nor known is rejected unless ``verify_host_key``
    is ``False``.

    :param host: server host name or address
    :param port: server TCP port
    :param username: login name
    :param password: password, if password authentication is used; also the passphrase of an
        encrypted key when ``passphrase`` is not set, as paramiko does
    :param client_keys: private keys: file paths, or key text from the connection
    :param passphrase: passphrase of encrypted private keys
    :param use_default_keys: also try the user's default keys (``~/.ssh/id_*``, ``look_for_keys``)
    :param use_agent: also try the keys of a running ssh-agent (``SSH_AUTH_SOCK``), as paramiko does
    :param trusted_host_keys: host keys (OpenSSH public key lines) pinned for this server
    :param known_hosts_path: known_hosts file consulted for this server's keys
    :param verify_host_key: ``False`` accepts a server whose key is neither pinned nor known
        (a pinned key and the known_hosts entries are still enforced)
    :param learn_host_keys: append such an accepted unknown key to ``known_hosts_path``, as
        paramiko's ``AutoAddPolicy`` does, so a later change is caught
    :param connect_timeout: seconds allowed for TCP connect, key exchange and authentication
    :param keepalive_interval: seconds between keepalives (0 disables); a dead link is noticed after
        three missed replies
    :param ciphers: encryption algorithms to prefer, in order (the others are still offered after them)
    :param disabled_algorithms: ``(kind, names)`` pairs never offered, kinds as paramiko's
        ``disabled_algorithms`` (``ciphers``, ``macs``, ``kex``, ``keys``, ``pubkeys``, ``compression``)
    :param compress: also offer zlib compression (after none)
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
    use_agent: bool = True
    trusted_host_keys: tuple[str, ...] = ()
    known_hosts_path: str | None = None
    verify_host_key: bool = True
    learn_host_keys: bool = False
    connect_timeout: float = 30.0
    keepalive_interval: float = 30.0
    ciphers: tuple[str, ...] = ()
    disabled_algorithms: tuple[tuple[str, tuple[str, ...]], ...] = ()
    compress: bool = False
    proxy_command: str | None = None
    window: int | None = SSH_WINDOW
    max_packet_size: int | None = None

    def describe(self) -> str:
        """Return ``user@host:port`` for log lines (no secrets)."""
        user = f"{self.username}@" if self.username else ""
        return f"{user}{self.host}:{self.port}"

    def asyncssh_options(self) -> dict[str, Any]:
        """
        Translate into keyword arguments of :func:`asyncssh.connect` (host keys checked separately).

        :raises AuthenticationFailed: a private key cannot be used and nothing else can log in
        """
        return self._connect_plan().options

    def _connect_plan(self) -> _ConnectPlan:
        options: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "connect_timeout": self.connect_timeout,
            "keepalive_interval": self.keepalive_interval or None,
            "keepalive_count_max": 3,
            # No ~/.ssh/config: the stock hook applies only its ProxyCommand and IdentityFile, which
            # the hook has already resolved; asyncssh would also apply HostName, Port, User, ...
            "config": None,
            # Every host key goes to _HostKeyCheckingClient.validate_host_public_key.
            "known_hosts": ([], [], []),
            "server_host_key_algs": self._host_key_algorithms(),
            "encryption_algs": self._algorithms("ciphers", self.ciphers),
            "kex_algs": self._algorithms("kex"),
            "mac_algs": self._algorithms("macs"),
            # Bulk data is mostly compressed already; zlib would make the client CPU-bound.
            "compression_algs": self._algorithms("compression"),
        }
        disabled = dict(self.disabled_algorithms)
        if disabled.get("pubkeys"):
            options["signature_algs"] = self._algorithms("pubkeys")
        if self.password is not None:
            options["password"] = self.password
        keys, problems = self._load_client_keys()
        agent_only = False
        if keys:
            # paramiko tries the default keys after the connection's own (look_for_keys).
            defaults = asyncssh.public_key.load_default_keypairs(self.passphrase)
            options["client_keys"] = [*keys, *(defaults if self.use_default_keys else ())]
        elif not self.use_default_keys:
            options["client_keys"] = None  # no usable key; the agent's keys are added on connecting
            agent_only = self.use_agent
        # else: asyncssh's default, the agent and ~/.ssh/id_* (paramiko's order after a failed key)
        if not self.use_agent:
            options["agent_path"] = None
        # paramiko goes on to the agent, the default keys and the password after a key it cannot
        # decrypt; with none of them, fail now (permanently), naming the key.
        other_ways = bool(keys) or self.password is not None or self.use_default_keys
        if problems and not (other_ways or (self.use_agent and os.environ.get("SSH_AUTH_SOCK"))):
            raise AuthenticationFailed(" ".join(problems))
        if self.proxy_command:
            options["proxy_command"] = self.proxy_command
        if self.window:
            options["window"] = self.window
        if self.max_packet_size:
            options["max_pktsize"] = self.max_packet_size
        return _ConnectPlan(options, tuple(problems), agent_only)

    def _algorithms(self, kind: str, preferred: Sequence[str] = ()) -> list[str]:
        """Preferred names first, then asyncssh's defaults, then paramiko's extras; minus disabled."""
        possible, defaults = _ALGORITHMS[kind]()
        if kind == "ciphers":
            defaults = [*PREFERRED_CIPHERS, *defaults]
        elif kind == "compression":
            defaults = ["none", "zlib@openssh.com", "zlib"] if self.compress else ["none"]
        disabled = set(dict(self.disabled_algorithms).get(kind, ()))
        if kind == "pubkeys":  # paramiko applies this list only to the signature of an RSA client key
            disabled = {name for name in disabled if "rsa" in name}
        names: list[str] = []
        for name in [*preferred, *defaults, *PARAMIKO_ALSO_OFFERS.get(kind, ())]:
            if name in possible and name not in disabled and name not in names:
                names.append(name)
        return names

    def _host_key_algorithms(self) -> list[str]:
        """
        The server's host key types, those of the pinned and known keys first (as paramiko orders them).

        Only an order, never a restriction: a server without the pinned key's type still shows its
        key, so the refusal can name it.
        """
        first: list[str] = []
        for key in (*self._pinned_keys(), *self._known_keys(self.host, "")[0]):
            first.extend(alg.decode("ascii") for alg in key.sig_algorithms)
        return self._algorithms("keys", first)

    def _pinned_keys(self) -> list[asyncssh.SSHKey]:
        return [asyncssh.import_public_key(line) for line in self.trusted_host_keys]

    def _known_keys(self, host: str, addr: str) -> tuple[list[asyncssh.SSHKey], list[asyncssh.SSHKey]]:
        """The trusted and revoked keys known_hosts holds for this server (bad lines are skipped)."""
        if not self.known_hosts_path:
            return [], []
        try:
            with open(self.known_hosts_path, encoding="utf-8", errors="replace") as handle:
                lines = handle.read().splitlines()
        except OSError:
            return [], []  # paramiko ignores an unreadable known_hosts as well
        trusted: list[asyncssh.SSHKey] = []
        revoked: list[asyncssh.SSHKey] = []
        port = None if self.port == 22 else self.port
        for line in lines:
            try:
                matched = asyncssh.import_known_hosts(line).match(host, addr, port)
            except (ValueError, asyncssh.KeyImportError):
                continue
            trusted.extend(matched[0])
            revoked.extend(matched[2])
        return trusted, revoked

    def check_host_key(self, host: str, addr: str, key: asyncssh.SSHKey) -> str | None:
        """
        Decide on the host key a server offered; return why it is refused, or ``None`` to accept it.

        :param host: the host name connected to
        :param addr: its IP address
        :param key: the key the server offered
        """
        offered = f"{key.algorithm.decode('ascii')} key {key.get_fingerprint()}"
        server = f"{self.host}:{self.port}"
        known, revoked = self._known_keys(host, addr)
        if key in revoked:
            return (
                f"The host key of {server} is REVOKED: the server offered the {offered}, which "
                f"{self.known_hosts_path} marks @revoked. Do not connect; ask the server's owner."
            )
        same_type = [k for k in known if k.algorithm == key.algorithm]
        if same_type and key not in known:
            expected = ", ".join(k.get_fingerprint() for k in same_type)
            return (
                f"The host key of {server} has CHANGED: the server offered the {offered}, but "
                f"{self.known_hosts_path} holds {expected} for this host. Someone may be intercepting "
                "the connection (man-in-the-middle), or the server was reinstalled. Check the new "
                "fingerprint with the server's owner; if the change is genuine, remove the old entry "
                f"(ssh-keygen -R '{_known_hosts_name(self.host, self.port)}' -f {self.known_hosts_path}) "
                "or pin the new key in the connection's `host_key` extra."
            )
        pinned = self._pinned_keys()
        if pinned:
            if key in pinned:
                return None
            expected = ", ".join(f"{k.algorithm.decode('ascii')} {k.get_fingerprint()}" for k in pinned)
            return (
                f"The host key of {server} has CHANGED: the server offered the {offered}, but the "
                f"connection's `host_key` extra pins {expected}. Someone may be intercepting the "
                "connection (man-in-the-middle), or the server's key was replaced. Check the new "
                "fingerprint with the server's owner before updating the `host_key` extra."
            )
        if key in known or not self.verify_host_key:
            return None
        where = self.known_hosts_path or "~/.ssh/known_hosts (no such file)"
        return (
            f"The host key of {server} is unknown: the server offered the {offered}, which is neither "
            f"in the connection's `host_key` extra nor in {where}. Check the fingerprint with the "
            f"server's owner (ssh-keyscan -p {self.port} {self.host} | ssh-keygen -lf -), then put the "
            "key line in the `host_key` extra; set `no_host_key_check` only if you accept the "
            "man-in-the-middle risk."
        )

    def learn_host_key(self, key: asyncssh.SSHKey) -> None:
        """Append an accepted unknown host key to known_hosts, as paramiko's ``AutoAddPolicy`` does."""
        if not (self.learn_host_keys and self.known_hosts_path):
            return
        kind, data = key.export_public_key("openssh").decode("ascii").split()[:2]
        line = f"{_known_hosts_name(self.host, self.port)} {kind} {data}\n".encode("ascii")
        with contextlib.suppress(OSError):
            fd = os.open(self.known_hosts_path, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, line)  # one short append: concurrent tries never interleave lines
            finally:
                os.close(fd)

    def _load_client_keys(self) -> tuple[list[asyncssh.SSHKey], list[str]]:
        """Load the connection's keys; a missing file is refused now, an undecryptable key noted."""
        keys: list[asyncssh.SSHKey] = []
        problems: list[str] = []
        for key in self.client_keys:
            try:
                keys.append(_load_key(key, self.passphrase, self.password))
            except _KeyNotDecrypted as exc:
                problems.append(str(exc))
        return keys, problems


@dataclass(frozen=True)
class _ConnectPlan:
    options: dict[str, Any]
    key_problems: tuple[str, ...]
    agent_only: bool


def _known_hosts_name(host: str, port: int) -> str:
    """The host as known_hosts names it (``host``, or ``[host]:port`` off port 22)."""
    return host if port == 22 else f"[{host}]:{port}"


def _algorithm_tables() -> dict[str, Callable[[], tuple[set[str], list[str]]]]:
    from asyncssh import compression, encryption, kex, mac, public_key

    def names(algs: Sequence[bytes]) -> list[str]:
        return [alg.decode("ascii") for alg in algs]

    def table(possible: Sequence[bytes], defaults: Sequence[bytes]) -> tuple[set[str], list[str]]:
        # GSS key exchange needs a Kerberos context, which the stock hook never sets up either.
        return set(names(possible)), [name for name in names(defaults) if not name.startswith("gss-")]

    return {
        "ciphers": lambda: table(encryption.get_encryption_algs(), encryption.get_default_encryption_algs()),
        "kex": lambda: table(kex.get_kex_algs(), kex.get_default_kex_algs()),
        "macs": lambda: table(mac.get_mac_algs(), mac.get_default_mac_algs()),
        "keys": lambda: table(public_key.get_public_key_algs(), public_key.get_default_public_key_algs()),
        "pubkeys": lambda: table(public_key.get_public_key_algs(), public_key.get_default_public_key_algs()),
        "compression": lambda: table(compression.get_compression_algs(), compression.get_compression_algs()),
    }


_ALGORITHMS = _algorithm_tables()


def supported_ciphers() -> set[str]:
    """The encryption algorithms asyncssh implements (what a ``ciphers`` list may name)."""
    return _ALGORITHMS["ciphers"]()[0]


class _KeyNotDecrypted(Exception):
    """An encrypted private key that neither the passphrase nor the password opens."""


def _load_key(key: str, passphrase: str | None, password: str | None = None) -> asyncssh.SSHKey:
    """
    Load a private key from its text or its file; without a passphrase, try the password (paramiko).

    :raises AuthenticationFailed: the ``key_file`` cannot be read or is not a private key
    :raises _KeyNotDecrypted: the key is encrypted and nothing given opens it
    """
    inline = "PRIVATE KEY" in key
    if inline:
        source, data = "the connection's `private_key` extra", key.encode()
    else:
        path = os.path.expanduser(key)
        source = f"the `key_file` extra ({path})"
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise AuthenticationFailed(
                f"Cannot read the private key file {path} named by the connection's `key_file` extra "
                f"(or ~/.ssh/config IdentityFile): {exc.strerror or exc}. Fix the path or the file's "
                "permissions on the worker."
            ) from None
    candidates = [passphrase] if passphrase else [None, *([password] if password else [])]
    reason = ""
    for candidate in candidates:
        try:
            return asyncssh.import_private_key(data, candidate)
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError, ValueError) as exc:
            reason = str(exc)
            if not _is_passphrase_problem(reason):
                raise AuthenticationFailed(
                    f"{source[0].upper()}{source[1:]} is not a usable private key: {reason}. Put an "
                    "OpenSSH or PEM private key (RSA, ECDSA or Ed25519) there."
                ) from None
    given = "the `private_key_passphrase` extra" if passphrase else "no `private_key_passphrase` extra"
    if not passphrase and password:
        given += " (the connection's password was tried too, as paramiko does)"
    raise _KeyNotDecrypted(
        f"The private key from {source} is encrypted and cannot be decrypted with {given}: {reason}. "
        "Set the connection's `private_key_passphrase` extra to the key's passphrase."
    )


def _is_passphrase_problem(reason: str) -> bool:
    lowered = reason.lower()
    return "passphrase" in lowered or "decrypt" in lowered or "encrypt" in lowered


class _HostKeyCheckingClient(asyncssh.SSHClient):
    """Hands every server host key to :meth:`SSHEndpoint.check_host_key` and keeps the verdict."""

    def __init__(self, endpoint: SSHEndpoint) -> None:
        self._endpoint = endpoint
        #: why the server's host key was refused, for the error message
        self.refusal: str | None = None

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        self.refusal = self._endpoint.check_host_key(host, addr, key)
        if self.refusal is not None:
            return False
        if key not in self._endpoint._known_keys(host, addr)[0] and key not in self._endpoint._pinned_keys():
            self._endpoint.learn_host_key(key)
        return True


#: What a server that runs out of room says in an SFTP status message.
_SPACE_WORDS = re.compile(r"no space|disk full|quota", re.IGNORECASE)
#: How the messages of writes begin (``where`` of :func:`translate_error`).
_WRITING = ("writing ", "flushing ")


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
            f"Host key verification failed while {where}: {exc.reason}. Check the server's key "
            "fingerprint with its owner (ssh-keyscan HOST | ssh-keygen -lf -), then put its public "
            "host key in the connection's `host_key` extra (or ~/.ssh/known_hosts); set "
            "`no_host_key_check` only if you accept the man-in-the-middle risk."
        )
    if isinstance(exc, asyncssh.SFTPNoSuchFile):
        return RemoteFileNotFound(f"Remote file not found while {where}: {exc.reason}.")
    if isinstance(exc, asyncssh.SFTPPermissionDenied):
        return RemotePathError(
            f"Permission denied on the server while {where}: {exc.reason}. Ask the server's owner "
            "for access or fix the path."
        )
    if isinstance(exc, asyncssh.SFTPNoSpaceOnFilesystem | asyncssh.SFTPQuotaExceeded) or (
        isinstance(exc, asyncssh.SFTPFailure) and _SPACE_WORDS.search(exc.reason)
    ):
        return RemoteDiskFull(
            f"The server's disk is full or the quota of this login is exceeded, while {where}: "
            f"{exc.reason}. Free space or raise the quota on the server; the next try resumes."
        )
    if isinstance(exc, asyncssh.SFTPFailure) and where.startswith(_WRITING):
        # OpenSSH's sftp-server sends a bare "Failure" for ENOSPC and EDQUOT: it maps only a few
        # errno values to SFTP codes, and sends no text of its own.
        return RemoteDiskFull(
            f"The server failed while {where} and gave no reason ({exc.reason!r}). Servers such as "
            "OpenSSH report a full disk or an exceeded quota this way: check free space and the "
            "quota of this login on the server; the next try resumes."
        )
    if isinstance(exc, asyncssh.SFTPWriteProtect):
        return RemotePathError(
            f"The server's file system is read-only while {where}: {exc.reason}. Ask the server's "
            "owner to make it writable or choose another remote path."
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


async def _connect(endpoint: SSHEndpoint, plan: _ConnectPlan, where: str) -> asyncssh.SSHClientConnection:
    """One connection attempt: host key checked by :class:`_HostKeyCheckingClient`, errors translated."""
    client = _HostKeyCheckingClient(endpoint)
    options = dict(plan.options)
    agent: asyncssh.SSHAgentClient | None = None
    try:
        if plan.agent_only and os.environ.get("SSH_AUTH_SOCK"):
            # No key of the connection's own (look_for_keys false): paramiko still asks the agent.
            with contextlib.suppress(OSError, asyncssh.Error, ValueError):
                agent = await asyncssh.connect_agent()
                options["client_keys"] = list(await agent.get_keys()) or None
        return await asyncssh.connect(client_factory=lambda: client, **options)
    except asyncssh.HostKeyNotVerifiable as exc:
        if client.refusal is None:
            raise translate_error(exc, where) from None
        raise HostKeyRejected(f"{client.refusal} (while {where})") from None
    except asyncssh.PermissionDenied as exc:
        if plan.key_problems:
            raise AuthenticationFailed(
                f"Authentication failed while {where}: {exc.reason}. " + " ".join(plan.key_problems)
            ) from None
        raise translate_error(exc, where) from None
    except (TimeoutError, asyncssh.Error, OSError) as exc:
        raise translate_error(exc, where) from None
    finally:
        if agent is not None:
            agent.close()
            with contextlib.suppress(Exception):
                await agent.wait_closed()


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

    Set-up is retried with jittered exponential back-off (tenacity) on transient errors only.

    :param endpoint: where and how to connect
    :param attempts: connection attempts before giving up (at least 1)
    :param max_wait: longest pause between attempts, seconds
    """
    quiet_library_logs()
    where = f"connecting to {endpoint.describe()}"
    plan = endpoint._connect_plan()  # a key that cannot be used fails here, before any retry
    conn: asyncssh.SSHClientConnection | None = None
    async for attempt in AsyncRetrying(
        stop=stop_after_attempt(max(1, attempts)),
        wait=wait_random_exponential(multiplier=0.5, max=max_wait),
        retry=retry_if_exception_type(tuple(TRANSIENT_CONNECT_ERRORS)),
        reraise=True,
    ):
        with attempt:
            conn = await _connect(endpoint, plan, where)
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
        endpoint["disabled_algorithms"] = tuple(
            (str(kind), tuple(names)) for kind, names in endpoint["disabled_algorithms"]
        )
        return cls(SSHEndpoint(**endpoint), attempts=int(data["attempts"]), max_wait=float(data["max_wait"]))
