"""SSH and SFTP errors from asyncssh and the socket layer, mapped onto the engine's error tree."""

from __future__ import annotations

import contextlib
import logging
import re
from typing import TYPE_CHECKING

import asyncssh

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

if TYPE_CHECKING:
    from collections.abc import Iterator

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


@contextlib.contextmanager
def translated(where: str) -> Iterator[None]:
    """
    Raise what asyncssh or the socket layer raises inside the block as the engine's error.

    :param where: what the block does, for the message (``"listing /data"``); see :func:`translate_error`
    """
    try:
        yield
    except (asyncssh.Error, OSError) as exc:
        raise translate_error(exc, where) from exc


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
