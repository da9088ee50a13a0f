"""
Starting an SFTP session on a real sshd: no 40 ms wait for a delayed acknowledgement (core/remote/acks.py).

After a key login sshd sends two small debug messages and the channel confirmation with Nagle still
on, so without prompt acknowledgements the confirmation waits for Linux's delayed ACK (40 ms at
least, a kernel timer). The fastest of several session starts shows it, whatever the machine's load.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_sftp_resume.core.remote import acks
from airflow_provider_sftp_resume.core.remote import sftp as remote_sftp
from tests.conftest import endpoint_for, session_factory, write_random

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.support.servers import ServerInfo

pytestmark = pytest.mark.skipif(acks.QUICKACK is None, reason="TCP_QUICKACK is Linux only")

#: Linux's shortest delayed acknowledgement (TCP_DELACK_MIN), in seconds.
DELAYED_ACK = 0.040


def fastest_session_start(server: ServerInfo, path: Path, sessions: int = 5) -> float:
    """Seconds from the start of a session to its first answer (a stat), the fastest of ``sessions``."""
    opener = session_factory(endpoint_for(server))

    async def once() -> float:
        started = time.monotonic()
        async with opener() as fs:
            assert (await fs.stat(str(path))).size == 1024
            return time.monotonic() - started

    return min(asyncio.run(once()) for _ in range(sessions))


def test_a_session_starts_without_waiting_for_a_delayed_acknowledgement(
    openssh_server: ServerInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "one-kib.bin"
    write_random(source, 1024, seed=5)
    prompt = fastest_session_start(openssh_server, source)

    def no_acknowledgements(conn: Any) -> Callable[[], None]:
        return lambda: None

    monkeypatch.setattr(remote_sftp, "acknowledge_promptly", no_acknowledgements)
    delayed = fastest_session_start(openssh_server, source)
    # Without prompt acknowledgements the wait is the kernel's timer: this test can tell the two apart.
    assert delayed - prompt > DELAYED_ACK * 0.75, f"with {prompt:.3f} s, without {delayed:.3f} s"


def test_acknowledging_stops_once_the_session_is_up(openssh_server: ServerInfo) -> None:
    """The wrapper is removed again: the bulk transfer's reads go straight to asyncssh."""
    from airflow_provider_sftp_resume.core.remote.connect import connect_with_retries

    async def run() -> tuple[bool, bool]:
        conn = await connect_with_retries(endpoint_for(openssh_server), attempts=1)
        async with conn:
            before = conn.data_received
            stop = acks.acknowledge_promptly(conn)
            wrapped = conn.data_received is not before
            stop()
            stop()  # a second call changes nothing
            return wrapped, conn.data_received is before

    assert asyncio.run(run()) == (True, True)


class _NoSocketConnection:
    """A connection over a ``ProxyCommand``: a pipe, no TCP socket."""

    def get_extra_info(self, name: str) -> Any:
        return None

    def data_received(self, data: bytes, datatype: Any = None) -> None:
        raise AssertionError("not called here")


class _UnixSocketConnection(_NoSocketConnection):
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def get_extra_info(self, name: str) -> Any:
        return self._sock if name == "socket" else None


def test_a_connection_without_a_tcp_socket_is_left_alone() -> None:
    conn = _NoSocketConnection()
    acks.acknowledge_promptly(conn)()  # type: ignore[arg-type]
    assert "data_received" not in vars(conn)
    left, right = socket.socketpair()
    with left, right:
        unix = _UnixSocketConnection(left)
        acks.acknowledge_promptly(unix)  # type: ignore[arg-type]
        assert "data_received" not in vars(unix), "a Unix socket has no TCP acknowledgements"
