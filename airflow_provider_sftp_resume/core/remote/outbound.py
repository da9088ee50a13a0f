"""
Sending asyncssh's small packets in batches: one ``send`` per event loop iteration, not one per packet.

asyncssh writes every SSH packet to its transport at once, and asyncio's socket transport sends
each write with its own ``send`` system call while its buffer is empty. A download sends a small
packet (an SFTP read request, a window adjustment) for every block it asks for; on loopback each
``send`` also runs the receiving side of the TCP stack and wakes ``sshd``, so these sends were a
fifth of the task process's samples (py-spy, 1 GiB over the loopback). Small writes made while the
loop runs its callbacks are joined and sent once those callbacks are done, in the same order:
equivalent to a socket that is written a little later, which TCP never promises anyway. Large
writes (an upload's data) go out at once, after what was collected before them. No asyncssh option
does this and asyncio has no cork; :func:`send_in_batches` wraps the one connection's transport.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncssh

#: Writes at least this large are not collected (their own ``send`` costs little per byte).
SMALL_WRITE = 4096
#: Collected bytes sent at once when they reach this, without waiting for the loop.
BATCH_LIMIT = 64 * 1024


def send_in_batches(conn: asyncssh.SSHClientConnection) -> None:
    """
    Make ``conn`` send its small packets in one write per event loop iteration.

    Replaces ``write`` and ``close`` on this connection's transport object only (asyncssh keeps it
    in ``_transport``, 2.13 to 2.24 at least); where that is missing nothing changes. ``close``
    first sends what was collected; ``abort`` drops it, as it drops the transport's own buffer.

    :param conn: a connected asyncssh client connection, on the running loop
    """
    transport: Any = getattr(conn, "_transport", None)
    if transport is None or not callable(getattr(transport, "write", None)):
        return
    loop = asyncio.get_running_loop()
    write, close = transport.write, transport.close
    pending: list[bytes] = []
    collected = 0

    def flush() -> None:
        nonlocal collected
        if pending:
            data = pending[0] if len(pending) == 1 else b"".join(pending)
            pending.clear()
            collected = 0
            write(data)

    def batched_write(data: bytes) -> None:
        nonlocal collected
        if len(data) >= SMALL_WRITE:
            flush()
            write(data)
            return
        if not pending:
            loop.call_soon(flush)
        pending.append(bytes(data))
        collected += len(data)
        if collected >= BATCH_LIMIT:
            flush()

    def flushing_close() -> None:
        flush()
        close()

    transport.write = batched_write
    transport.close = flushing_close
