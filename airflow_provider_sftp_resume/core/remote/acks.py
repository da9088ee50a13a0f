"""
Acknowledging the server's segments at once while an SFTP session is being set up (Linux).

After a public-key login, OpenSSH's ``sshd`` sends two debug messages (``key options: ...``), then
the confirmation of the session channel, each as its own small TCP segment, before it turns Nagle's
algorithm off for the session (``TCP_NODELAY``, set when the subsystem starts). Nagle holds the
second segment until the first is acknowledged; the client has nothing to send while it waits for
the confirmation, so Linux delays that acknowledgement by its minimum of 40 ms. Every connection
therefore waited about 40 ms before its SFTP session started: ``strace`` of ``sshd`` shows it
reading the channel request 38 ms after it wrote the confirmation, and ``start_sftp_client`` on
loopback took 45-47 ms against 3-5 ms with the acknowledgement sent at once.

``TCP_QUICKACK`` sends a pending acknowledgement at once and leaves the delayed mode, but the kernel
goes back to that mode by itself (it is not a lasting setting), so it is set again after every read
until the session is up; then the reads are left alone (sshd has Nagle off by then, and the
client's own requests carry the acknowledgements).
Neither asyncssh nor asyncio has an option for it. Elsewhere than Linux, and on a connection
without a TCP socket of its own (a ``ProxyCommand``), this does nothing.
"""

from __future__ import annotations

import contextlib
import socket
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    import asyncssh

#: ``TCP_QUICKACK`` where the platform has it (Linux), else ``None``.
QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


def acknowledge_promptly(conn: asyncssh.SSHClientConnection) -> Callable[[], None]:
    """
    Have the kernel acknowledge every segment ``conn`` receives at once, until the returned call.

    Wraps the connection's ``data_received`` on this one object (as :mod:`.inbound` does) and
    restores it when stopped.

    :param conn: a connected asyncssh client connection
    :return: stop: call it once the SFTP session has started (calling it again does nothing)
    """
    sock = conn.get_extra_info("socket")
    if QUICKACK is None or sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return lambda: None
    option = QUICKACK

    def acknowledge() -> None:
        with contextlib.suppress(OSError):  # a socket being closed: nothing left to acknowledge
            sock.setsockopt(socket.IPPROTO_TCP, option, 1)

    receive = conn.data_received

    def data_received(data: bytes, datatype: Any = None) -> None:
        receive(data, datatype)
        acknowledge()

    def stop() -> None:
        if conn.data_received is data_received:  # nothing wrapped it since
            conn.data_received = receive  # type: ignore[method-assign]

    acknowledge()  # an acknowledgement already being held back goes out now
    conn.data_received = data_received  # type: ignore[method-assign]
    return stop
