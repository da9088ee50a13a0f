"""
Handing asyncssh its input in pieces no larger than a few SSH packets.

asyncssh (2.21 to 2.24 at least) keeps the bytes received but not yet parsed in one ``bytes``
object and re-slices it after every packet it takes off the front (``self._inpbuf =
self._inpbuf[n:]``, twice per packet), so one read of ``n`` bytes costs copies proportional to
``n`` squared over the packet size. asyncio reads up to 256 KiB at a time, and on a fast link
nearly every read is that full. Fed 64 KiB at a time, the client spent about 0.2-0.4 CPU seconds
less per GiB (``benchmarks/receive_pieces.py``: 3.49 against 3.13 s when it was built, 2.25
against 2.01 s on c71f344); the client process is
CPU-bound on a fast link, so that is throughput. No asyncssh option sizes the input, and the
asyncio transport's read size is not public; handing the same bytes on in slices of a memoryview
(no copy) is equivalent to TCP delivering them in smaller segments, which every SSH implementation
must handle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncssh

#: Largest piece handed to asyncssh at once: two SSH packets of OpenSSH's 32 KiB channel data.
PIECE = 64 * 1024


def feed_in_pieces(conn: asyncssh.SSHClientConnection, piece: int = PIECE) -> None:
    """
    Make ``conn`` receive its input in slices of at most ``piece`` bytes.

    Replaces the connection's ``data_received`` on this one object (asyncio's transports look it up
    on every read); nothing else of asyncssh changes, and no other connection. A piece that makes
    asyncssh close the connection is followed by the rest, as asyncssh goes on parsing a whole
    buffer after a close itself.

    :param conn: a connected asyncssh client connection
    :param piece: the largest slice handed on at once
    """
    receive = conn.data_received

    def data_received(data: bytes, datatype: Any = None) -> None:
        if len(data) <= piece:
            receive(data, datatype)
            return
        view = memoryview(data)
        for start in range(0, len(data), piece):
            receive(view[start : start + piece], datatype)  # type: ignore[arg-type]

    conn.data_received = data_received  # type: ignore[method-assign]
