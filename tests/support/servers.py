"""
Real SFTP servers on 127.0.0.1, all serving the machine's real file system.

- :class:`OpenSSHServer`: Debian's OpenSSH ``sshd`` with ``internal-sftp`` (or Debian's
  ``sftp-server`` through :func:`wrapped_sftp_server`), its own config directory, a throwaway host
  key and one authorized client key.
- :class:`ProFTPDServer`: Debian's ProFTPD with mod_sftp, likewise (its built-in defaults, such as
  ``AllowOverwrite off``).
- :class:`AsyncsshServer`: an in-process SFTP server built on asyncssh (already installed with the
  Airflow SFTP provider), for machines without sshd and for server behaviours OpenSSH won't show.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import asyncssh

from tests.support.keys import KeyPair, make_key
from tests.support.ports import free_port, wait_for_port

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")


def find_sshd() -> str | None:
    """Return the sshd binary, if this machine has one."""
    for candidate in SSHD_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("sshd")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Stop a server process by its PID: SIGTERM, then SIGKILL if it has not exited within 5 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class ServerInfo:
    """What a client needs to reach a test server."""

    name: str
    port: int
    host_key: KeyPair
    client_key: KeyPair
    username: str
    host: str = "127.0.0.1"
    extra: dict[str, Any] = field(default_factory=dict)


class SFTPTestServer(Protocol):
    info: ServerInfo

    def stop(self) -> None: ...


class OpenSSHServer:
    """A private sshd process; started in ``__init__``, stopped by :meth:`stop` (by PID)."""

    def __init__(
        self,
        workdir: Path,
        client_key: KeyPair,
        *,
        extra_config: str = "",
        subsystem: str = "internal-sftp",
    ) -> None:
        """
        :param workdir: its config, keys, pid file and log
        :param client_key: the only key allowed to log in
        :param extra_config: more sshd_config lines
        :param subsystem: the ``Subsystem sftp`` command (see :func:`wrapped_sftp_server`)
        """
        sshd = find_sshd()
        if sshd is None:
            raise RuntimeError("sshd is not installed (Debian package openssh-server)")
        workdir.mkdir(parents=True, exist_ok=True)
        host_key = make_key(workdir / "ssh_host_ed25519_key")
        authorized = workdir / "authorized_keys"
        authorized.write_text(client_key.public.read_text())
        port = free_port()
        config = workdir / "sshd_config"
        config.write_text(
            f"""Port {port}
ListenAddress 127.0.0.1
HostKey {host_key.private}
PidFile {workdir / "sshd.pid"}
AuthorizedKeysFile {authorized}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin yes
StrictModes no
UsePAM no
MaxStartups 200
MaxSessions 200
LogLevel ERROR
Subsystem sftp {subsystem}
{extra_config}
"""
        )
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation directory
        self._log = open(workdir / "sshd.log", "wb")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            [sshd, "-D", "-e", "-f", str(config)], stdout=self._log, stderr=subprocess.STDOUT
        )
        try:
            wait_for_port(port)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"sshd did not start: {(workdir / 'sshd.log').read_text()}") from None
        import getpass

        self.info = ServerInfo("openssh", port, host_key, client_key, getpass.getuser())

    @property
    def pid(self) -> int:
        """The sshd listener's PID (its sessions are its children)."""
        return self._process.pid

    def stop(self) -> None:
        stop_process(self._process)
        self._log.close()


PROFTPD_CANDIDATES = ("/usr/sbin/proftpd", "/usr/local/sbin/proftpd")
PROFTPD_MODULES = ("/usr/lib/proftpd", "/usr/local/libexec/proftpd")


def find_proftpd() -> str | None:
    """Return the proftpd binary, if this machine has one with mod_sftp (Debian: proftpd-mod-crypto)."""
    for candidate in PROFTPD_CANDIDATES:
        if os.access(candidate, os.X_OK) and _proftpd_module_path() is not None:
            return candidate
    return None


def _proftpd_module_path() -> str | None:
    for directory in PROFTPD_MODULES:
        if os.path.exists(os.path.join(directory, "mod_sftp.so")):
            return directory
    return None


class ProFTPDServer:
    """
    A private ProFTPD with mod_sftp on 127.0.0.1; started in ``__init__``, stopped by :meth:`stop` (by PID).

    Its configuration is ProFTPD's built-in defaults plus what a test server needs: SFTP only, a
    throwaway ed25519 host key, one authorized client key (converted to the RFC 4716 form mod_sftp
    reads), the current user allowed in. Built-in defaults matter: ``AllowOverwrite off`` (an existing
    file cannot be opened for writing) and ``AllowStoreRestart off`` (nor appended to) are what a
    stock ProFTPD does; pass ``extra_config`` to change them.

    :param workdir: its config, keys, pid file and logs (``proftpd.log``, ``sftp.log``)
    :param client_key: the only key allowed to log in
    :param extra_config: more ``proftpd.conf`` lines (``AllowOverwrite on``, ...)
    """

    def __init__(self, workdir: Path, client_key: KeyPair, *, extra_config: str = "") -> None:
        proftpd = find_proftpd()
        modules = _proftpd_module_path()
        if proftpd is None or modules is None:
            raise RuntimeError(
                "proftpd with mod_sftp is not installed (Debian: proftpd-core proftpd-mod-crypto)"
            )
        workdir.mkdir(parents=True, exist_ok=True)
        host_key = make_key(workdir / "proftpd_host_ed25519_key")
        authorized = workdir / "authorized_keys"
        converted = subprocess.run(
            ["ssh-keygen", "-e", "-f", str(client_key.public)], check=True, capture_output=True, text=True
        )
        authorized.write_text(converted.stdout)
        import getpass
        import grp
        import pwd

        user = getpass.getuser()
        group = grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
        port = free_port()
        config = workdir / "proftpd.conf"
        config.write_text(
            f"""ServerType standalone
ServerName "sftp-resume test ProFTPD"
Port {port}
DefaultAddress 127.0.0.1
SocketBindTight on
UseIPv6 off
UseReverseDNS off
PidFile {workdir / "proftpd.pid"}
ScoreboardFile {workdir / "proftpd.scoreboard"}
DelayTable {workdir / "proftpd.delay"}
WtmpLog off
TransferLog NONE
SystemLog {workdir / "proftpd.log"}
ModulePath {modules}
LoadModule mod_sftp.c
User {user}
Group {group}
RootLogin on
UseFtpUsers off
RequireValidShell off
AuthOrder mod_auth_unix.c
MaxInstances 100
SFTPEngine on
SFTPLog {workdir / "sftp.log"}
SFTPHostKey {host_key.private}
SFTPAuthMethods publickey
SFTPAuthorizedUserKeys file:{authorized}
{extra_config}
"""
        )
        self._log = open(workdir / "proftpd.out", "wb")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            [proftpd, "--nodaemon", "-c", str(config)], stdout=self._log, stderr=subprocess.STDOUT
        )
        try:
            wait_for_port(port)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"proftpd did not start: {(workdir / 'proftpd.out').read_text()}") from None
        self.info = ServerInfo("proftpd", port, host_key, client_key, user, extra={"workdir": workdir})

    def stop(self) -> None:
        stop_process(self._process)
        self._log.close()


SFTP_SERVER_BINARY = "/usr/lib/openssh/sftp-server"
_WRAPPER = Path(__file__).with_name("sftp_server_wrapper.py")


def wrapped_sftp_server(
    *,
    deny: tuple[str, ...] = (),
    advertise: tuple[str, ...] = (),
    log: Path | None = None,
    level: str = "ERROR",
) -> str:
    """
    Return a ``Subsystem sftp`` command running Debian's real ``sftp-server`` through
    ``sftp_server_wrapper.py``.

    :param deny: requests for ``sftp-server -P``, named as ``sftp-server -Q requests`` prints them
        (``fsync``, ``posix-rename``, ``limits``)
    :param advertise: extension names put back into its version reply (OpenSSH 6.5-8.5 behaviour)
    :param log: file receiving the server's own log lines
    :param level: ``sftp-server -l`` level (``DEBUG3`` logs every fsync)
    """
    command = [sys.executable, str(_WRAPPER), "--level", level]
    if deny:
        command += ["--deny", ",".join(deny)]
    if advertise:
        command += ["--advertise", ",".join(advertise)]
    if log is not None:
        command += ["--log", str(log)]
    return " ".join(shlex.quote(part) for part in command)


class _PasswordServer(asyncssh.SSHServer):
    """Key authentication always; password authentication when a password is set."""

    def __init__(self, password: str | None) -> None:
        self._password = password

    def password_auth_supported(self) -> bool:
        return self._password is not None

    def validate_password(self, username: str, password: str) -> bool:
        return self._password is not None and password == self._password


class AsyncsshServer:
    """
    An asyncssh SFTP server on its own event loop thread.

    :param workdir: where its host key goes
    :param client_key: the only key allowed to log in
    :param sftp_factory: the SFTPServer class (subclass it to make a server misbehave)
    :param password: also accept password authentication with this password
    """

    def __init__(
        self,
        workdir: Path,
        client_key: KeyPair,
        *,
        sftp_factory: type[asyncssh.SFTPServer] = asyncssh.SFTPServer,
        password: str | None = None,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        host_key = make_key(workdir / "asyncssh_host_ed25519_key")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="asyncssh-server", daemon=True)
        self._thread.start()
        port = free_port()

        async def start() -> asyncssh.SSHAcceptor:
            return await asyncssh.listen(
                "127.0.0.1",
                port,
                server_host_keys=[str(host_key.private)],
                authorized_client_keys=str(client_key.public),
                sftp_factory=sftp_factory,
                allow_scp=False,
                server_factory=lambda: _PasswordServer(password),
            )

        self._acceptor = asyncio.run_coroutine_threadsafe(start(), self._loop).result(timeout=10)
        import getpass

        self.info = ServerInfo("asyncssh", port, host_key, client_key, getpass.getuser())

    def stop(self) -> None:
        async def close() -> None:
            self._acceptor.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._acceptor.wait_closed(), 2)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
