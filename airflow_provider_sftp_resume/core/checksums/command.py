"""
``sha256sum`` run on the server over the SSH connection: the route for servers with a shell.

Opt-in only (``source_checksum="command"``): it needs a shell account, and it runs a program on
someone else's machine. The command is one fixed template, ``sha256sum -- <path>``, with the path
quoted by :func:`shlex.quote` (POSIX shell single quotes; ``--`` ends the options, so a path starting
with ``-`` is a path). Paths that cannot be passed safely are refused: a newline or carriage return
(``sha256sum`` would escape it in its output, and some shells and loggers split on it), a NUL (no
shell argument can hold one), or bytes that are not UTF-8 (the SSH ``exec`` request is text here).
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

import asyncssh

from airflow_provider_sftp_resume.core.checksums.formats import Digest
from airflow_provider_sftp_resume.core.errors import SourceChecksumUnavailable

if TYPE_CHECKING:
    from asyncssh import SSHClientConnection

COMMAND = "sha256sum"
#: Bytes of output kept from the command: a digest line is ~70 bytes plus the path.
MAX_OUTPUT = 64 * 1024  # 64 KiB
#: Exit status of a shell that did not find the program.
NOT_FOUND = 127
UNSAFE = {"\n": "a newline", "\r": "a carriage return", "\0": "a NUL byte"}


def command_for(path: str) -> str:
    """
    ``sha256sum -- '<path>'``, or a refusal for a path that cannot be quoted safely.

    :raises SourceChecksumUnavailable: the path holds a newline, carriage return, NUL, or non-UTF-8 bytes
    """
    for char, what in UNSAFE.items():
        if char in path:
            raise SourceChecksumUnavailable(
                f"The remote path {path!r} holds {what}, which cannot be passed to {COMMAND} safely; "
                "use source_checksum='check-file' or a checksum file for it, or rename the file."
            )
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise SourceChecksumUnavailable(
            f"The remote path {path!r} is not valid UTF-8, so it cannot be passed to {COMMAND}; "
            "use source_checksum='check-file' or a checksum file for it."
        ) from None
    return f"{COMMAND} -- {shlex.quote(path)}"


async def _read_bounded(stream: asyncssh.SSHReader[bytes]) -> bytes:
    """Read a stream to its end, keeping at most :data:`MAX_OUTPUT` bytes (a server may send more)."""
    kept = b""
    while chunk := await stream.read(MAX_OUTPUT):
        kept = (kept + chunk)[:MAX_OUTPUT]
    return kept


async def run_sha256sum(connection: SSHClientConnection, path: str) -> Digest:
    """
    The sha256 of ``path`` as the server's ``sha256sum`` computes it.

    :param connection: the session's SSH connection
    :param path: the remote file
    :raises SourceChecksumUnavailable: the path cannot be quoted, the server runs no commands, has
        no ``sha256sum``, or the command failed (its message is quoted)
    """
    command = command_for(path)
    try:
        async with connection.create_process(command, encoding=None) as process:
            output = await _read_bounded(process.stdout)
            errors = await _read_bounded(process.stderr)
            status = (await process.wait(check=False)).exit_status
    except (asyncssh.ChannelOpenError, asyncssh.ProcessError) as exc:
        raise SourceChecksumUnavailable(
            f"The server does not run commands for this login ({exc}), so source_checksum='command' "
            "cannot work here; use 'check-file' or a checksum file."
        ) from None
    if status == NOT_FOUND:
        raise SourceChecksumUnavailable(
            f"The server has no {COMMAND} (exit status 127); use 'check-file' or a checksum file."
        )
    first = output.decode("utf-8", "replace").split(maxsplit=1)[:1]
    digest = first[0].removeprefix("\\").lower() if first else ""
    if status != 0 or len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
        said = errors.decode("utf-8", "replace").strip()[:300] or output.decode("utf-8", "replace")[:300]
        raise SourceChecksumUnavailable(
            f"{command} on the server failed (exit status {status}): {said!r}. Check that the login's "
            "shell can read the file, or use 'check-file' or a checksum file."
        )
    return Digest("sha256", digest, COMMAND)
