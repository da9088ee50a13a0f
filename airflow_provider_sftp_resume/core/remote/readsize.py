"""
The read size of a session whose server does not advertise ``limits@openssh.com``, discovered by reading.

SFTP lets a server answer a read with fewer bytes than asked, and the draft asks every server to
accept 32 KiB. ProFTPD's mod_sftp, Twisted Conch, paramiko's server and asyncssh's server send what
was asked up to megabytes, but advertise nothing, so a client that trusts only the advertisement
reads 32 KiB at a time and pays a request and a reply per 32 KiB (about half the rate at loopback).

So the session asks for more and learns from the answers (:class:`ReadSize`):

- the first read that asks the ceiling (more than is known to work) is the *probe*, sent alone as
  one request; smaller reads above the known size are split (a probe of 64 KiB would teach little);
  reads issued while it is out are split into requests of the size known to work, all in flight
  at once (no round trip is spent waiting for the probe);
- a full answer confirms the size asked; a short answer may be the server's maximum or the end of
  the file, so it is confirmed by the read of the rest (the engine asks for the rest of every short
  read): when that brings data, the short length is the server's maximum from then on;
- an error answer (a server that refuses a large read) sets the size back to what worked before,
  the read is redone at that size and a log line says so;
- a connection lost while the probe was out is not retried here (the session is gone): this
  process remembers the server, so the next session to it reads at the size that worked, and the
  log line names the ``block_size`` knob that skips the probe altogether.

Reads never ask more than :data:`~.startup.MAX_READ_LEN` (256 KiB, as OpenSSH advertises): a reply
must fit in the server's buffers and in what clients accept (OpenSSH's own client refuses SFTP
packets above 256 KiB).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import asyncssh

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

#: What a server answers when it will not serve a read that large.
READ_REFUSALS = (asyncssh.SFTPFailure, asyncssh.SFTPBadMessage, asyncssh.SFTPOpUnsupported)
#: What a server does when it drops the session over a read that large.
READ_DROPS = (
    asyncssh.SFTPConnectionLost,
    asyncssh.SFTPNoConnection,
    asyncssh.ConnectionLost,
    ConnectionError,
)
#: Servers (``user@host:port``) that dropped the connection on a probe in this process, and the
#: read size that worked with them before it.
_DROPPED_ON_PROBE: dict[str, int] = {}


class ReadSize:
    """
    The read size of one session: advertised (fixed), or discovered from the server's answers.

    :param server: ``user@host:port``, for log lines and the per-process memory of dropped probes
    :param known: the size every read may ask (advertised, or the size every server accepts)
    :param ceiling: the most a read may ask; equal to ``known`` when nothing is to be discovered
    """

    def __init__(self, server: str, known: int, ceiling: int) -> None:
        self.server = server
        dropped = _DROPPED_ON_PROBE.get(server)
        if dropped is not None:
            known = ceiling = min(known, dropped)
        self.known = known
        self.ceiling = ceiling
        self._probing = False  # a probe is out
        #: ``(where the rest starts, length)`` of a short answer to a probe, until the rest is read
        self._short: tuple[int, int] | None = None

    @property
    def settled(self) -> bool:
        """Nothing is left to discover: every read up to :attr:`ceiling` is one request."""
        return self.known >= self.ceiling

    async def read(self, request: Callable[[int, int], Awaitable[bytes]], offset: int, length: int) -> bytes:
        """
        Read up to ``length`` bytes at ``offset`` with ``request`` (one SFTP read) at sizes known to work.

        :param request: sends one read request: ``(offset, length) -> data``
        :param offset: first byte
        :param length: bytes wanted (the answer may be shorter, as any SFTP read)
        """
        if self.settled:  # one request, or several at once when the engine's block is larger
            return await split_read(request, offset, length, self.ceiling)
        ask = min(length, self.ceiling)
        short = self._short  # this read may be the rest of a short answer (which a probe would replace)
        rest = short is not None and offset == short[0]
        if ask <= self.known:
            data = await request(offset, ask)
        elif rest or (ask == self.ceiling and not self._probing and short is None):
            data = await self._send_probe(request, offset, ask)
        else:
            # A probe, or the rest of its short answer, is out; or the read is smaller than the
            # ceiling (a 64 KiB tail read would only prove 64 KiB): go on at the size known to work.
            data = await split_read(request, offset, ask, self.known)
        if short is not None and rest:
            self._learn_maximum(short[1] if data else None)
        return data

    def _learn_maximum(self, maximum: int | None) -> None:
        """The rest of a short answer was read: ``maximum`` is the server's (``None``: the file ended)."""
        self._short = None
        if maximum is not None and maximum < self.ceiling:
            self.known = self.ceiling = maximum
            log.info(
                "The server %s answers reads with at most %d bytes; reading that much at a time.",
                self.server,
                maximum,
            )

    async def _send_probe(
        self, request: Callable[[int, int], Awaitable[bytes]], offset: int, ask: int
    ) -> bytes:
        self._probing = True
        try:
            data = await request(offset, ask)
        except READ_REFUSALS as exc:
            self.ceiling = self.known
            log.warning(
                "The server %s refused a read of %d KiB (%s); reading %d KiB at a time from now on.",
                self.server,
                ask // 1024,
                getattr(exc, "reason", "") or type(exc).__name__,
                self.known // 1024,
            )
            return await split_read(request, offset, ask, self.known)
        except READ_DROPS:
            _DROPPED_ON_PROBE[self.server] = self.known
            log.warning(
                "The connection to %s was lost while reading %d KiB in one request; the next sessions "
                "to it in this task read %d KiB at a time. If this server cannot take large reads, set "
                "block_size=%d to skip this probe.",
                self.server,
                ask // 1024,
                self.known // 1024,
                self.known,
            )
            raise
        finally:
            self._probing = False
        if len(data) >= ask:
            self.known = ask
        elif data:  # the server's maximum, or the end of the file: the read of the rest tells
            self._short = (offset + len(data), len(data))
        return data


async def split_read(
    request: Callable[[int, int], Awaitable[bytes]], offset: int, length: int, piece: int
) -> bytes:
    """
    Read ``[offset, offset + length)`` as concurrent requests of ``piece`` bytes; return what is contiguous.

    The answer stops at the first piece that came back short (the end of the file, or a server
    that sends less): what follows it would not be contiguous.

    Errors of pieces after the first short one are ignored, as their data would be.
    """
    if length <= piece:
        return await request(offset, length)
    starts = range(offset, offset + length, piece)
    answers = await asyncio.gather(
        *(request(start, min(piece, offset + length - start)) for start in starts), return_exceptions=True
    )
    parts: list[bytes] = []
    for start, answer in zip(starts, answers, strict=True):
        if isinstance(answer, BaseException):
            raise answer
        parts.append(answer)
        if len(answer) < min(piece, offset + length - start):
            break
    return b"".join(parts)
