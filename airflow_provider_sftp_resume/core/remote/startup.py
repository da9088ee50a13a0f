"""
Starting SFTP on an SSH connection, and the request sizes a session settles on.

The ``limits@openssh.com`` request travels with the session's first requests instead of before
them; a server that advertises it and then refuses it still gets a session (at the sizes every
server accepts).
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import asyncssh

from airflow_provider_sftp_resume.core.remote.failures import note_refused_extension
from airflow_provider_sftp_resume.core.remote.readsize import ReadSize

#: Read size known to work when the server does not advertise its limits (``limits@openssh.com``):
#: the SFTP draft asks every server to accept at least 32 KiB; OpenSSH's own client uses it too.
#: Larger reads are then discovered (:mod:`.readsize`), up to :data:`MAX_READ_LEN`.
FALLBACK_READ_LEN = 32 * 1024  # 32 KiB
#: Never ask for more than this in one read, whatever the server advertises.
MAX_READ_LEN = 256 * 1024  # 256 KiB, as OpenSSH advertises
#: Write size when the server does not advertise its limits; OpenSSH's own client writes 32 KiB.
FALLBACK_WRITE_LEN = 32 * 1024  # 32 KiB
#: Never write more than this in one request, whatever the server advertises.
MAX_WRITE_LEN = 256 * 1024  # 256 KiB
#: How a server says no to an optional extension (fsync, posix-rename, limits): not implemented, or
#: denied by the admin. OpenSSH 6.5-8.5 keep advertising requests denied with ``sftp-server -P`` and
#: answer PERMISSION_DENIED; 8.6+ stop advertising them. SFTPFailure is not a refusal here: for fsync
#: it is the server's own I/O error.
EXTENSION_REFUSALS = (asyncssh.SFTPOpUnsupported, asyncssh.SFTPPermissionDenied)
LIMITS = "limits@openssh.com"
#: Seconds a session that closes waits for a limits answer still outstanding (only a session that
#: never opened a file; the answer comes with the first requests).
LIMITS_GRACE = 1.0


def read_len(limits: asyncssh.sftp.SFTPLimits) -> int:
    """Bytes per read request: what the server advertises, at most :data:`MAX_READ_LEN`."""
    advertised = limits.max_read_len
    if advertised and advertised > asyncssh.sftp.SAFE_SFTP_READ_LEN:
        return int(min(advertised, MAX_READ_LEN))
    return FALLBACK_READ_LEN


def read_size(limits: asyncssh.sftp.SFTPLimits, server: str) -> ReadSize:
    """
    The session's read size: what the server advertises, else discovered from :data:`FALLBACK_READ_LEN` up.

    :param limits: what the server advertised (asyncssh's safe defaults when it advertised nothing)
    :param server: ``user@host:port``, for log lines
    """
    if limits.max_read_len and limits.max_read_len > asyncssh.sftp.SAFE_SFTP_READ_LEN:  # as read_len()
        return ReadSize(server, read_len(limits), read_len(limits))
    return ReadSize(server, FALLBACK_READ_LEN, MAX_READ_LEN)


def write_len(limits: asyncssh.sftp.SFTPLimits) -> int:
    """Bytes per write request: what the server advertises, at most :data:`MAX_WRITE_LEN`."""
    advertised = limits.max_write_len
    if advertised and advertised > FALLBACK_WRITE_LEN:
        return int(min(advertised, MAX_WRITE_LEN))
    return FALLBACK_WRITE_LEN


class _NoLimitsClientHandler(asyncssh.sftp.SFTPClientHandler):
    """asyncssh's SFTP client handler, without the ``limits@openssh.com`` request at start-up."""

    async def request_limits(self) -> None:
        """Send nothing at start-up: :func:`begin_sftp` sends the request alongside the first requests."""


async def _request_limits(handler: asyncssh.sftp.SFTPClientHandler, server: str) -> None:
    """Ask for the server's limits; a refusal leaves the sizes every server accepts, and says so."""
    try:
        await asyncssh.sftp.SFTPClientHandler.request_limits(handler)
    except EXTENSION_REFUSALS as exc:
        # The sizes stay asyncssh's safe defaults, which read_len/write_len turn into the fallbacks.
        note_refused_extension(
            server, LIMITS, exc, f"requests of {FALLBACK_WRITE_LEN // 1024} KiB, which every server accepts"
        )


async def begin_sftp(
    conn: asyncssh.SSHClientConnection, server: str
) -> tuple[asyncssh.SFTPClient, asyncio.Task[None]]:
    """
    Start SFTP on ``conn`` and send ``limits@openssh.com`` without waiting for its answer.

    asyncssh's ``start_sftp_client`` waits for the limits answer before it returns, one round trip
    in which nothing else is sent, and fails the whole start-up when a server that advertises the
    extension then refuses it (OpenSSH 6.5-8.5 with ``sftp-server -P limits``). Here the channel is
    started the way ``start_sftp_client`` does it, and the limits request goes out as a task, so the
    caller's first stat and open travel with it; a refusal only leaves the sizes every server accepts
    (:data:`FALLBACK_READ_LEN`, :data:`FALLBACK_WRITE_LEN`). Await the task before using the sizes.

    :param conn: an authenticated SSH connection
    :param server: ``user@host:port``, for the log line
    :returns: the client, and the pending limits request (done at once when none is advertised)
    """
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
    limits = asyncio.ensure_future(_request_limits(handler, server))
    return asyncssh.SFTPClient(handler, "utf-8", "strict"), limits


async def settle_quietly(limits: asyncio.Future[None]) -> None:
    """Let a still-pending limits request finish (its refusal is worth the log line), briefly; never raise."""
    if not limits.done():
        await asyncio.wait({limits}, timeout=LIMITS_GRACE)
    if not limits.done():
        limits.cancel()
    elif not limits.cancelled():
        limits.exception()  # retrieved: a lost connection is reported by the request that needs it
