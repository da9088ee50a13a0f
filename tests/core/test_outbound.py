"""Small writes of one event loop iteration leave in one write, in order; large writes and close
send what was collected first. A real asyncio socket transport over a real socket pair."""

from __future__ import annotations

import asyncio
import socket
from types import SimpleNamespace
from typing import Any

from airflow_provider_sftp_resume.core.remote.outbound import BATCH_LIMIT, SMALL_WRITE, send_in_batches


async def _transport_pair() -> tuple[Any, socket.socket, list[bytes]]:
    """A socket transport whose writes are recorded as they reach it, and the peer's socket."""
    ours, peer = socket.socketpair()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(asyncio.Protocol, sock=ours)
    reached: list[bytes] = []
    write = transport.write

    def recording_write(data: bytes) -> None:
        reached.append(bytes(data))
        write(data)

    transport.write = recording_write  # type: ignore[method-assign]
    send_in_batches(SimpleNamespace(_transport=transport))  # type: ignore[arg-type]
    peer.setblocking(False)
    return transport, peer, reached


async def _received(peer: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    while len(data) < size:
        data += await loop.sock_recv(peer, size - len(data))
    return data


def test_small_writes_of_one_iteration_reach_the_socket_as_one_write_in_order() -> None:
    async def main() -> None:
        transport, peer, reached = await _transport_pair()
        packets = [bytes([i]) * (10 + i) for i in range(20)]
        for packet in packets:
            transport.write(packet)
        assert reached == []  # nothing sent while the loop runs this callback
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert reached == [b"".join(packets)]
        assert await _received(peer, len(reached[0])) == b"".join(packets)
        transport.close()
        peer.close()

    asyncio.run(main())


def test_a_large_write_goes_at_once_after_what_was_collected() -> None:
    async def main() -> None:
        transport, peer, reached = await _transport_pair()
        small, large = b"s" * 100, b"L" * SMALL_WRITE
        transport.write(small)
        transport.write(large)
        assert reached == [small, large]
        assert await _received(peer, len(small) + len(large)) == small + large
        transport.close()
        peer.close()

    asyncio.run(main())


def test_collected_bytes_are_sent_at_the_limit_and_on_close() -> None:
    async def main() -> None:
        transport, peer, reached = await _transport_pair()
        chunk = b"c" * (SMALL_WRITE - 1)
        count = BATCH_LIMIT // len(chunk) + 1
        for _ in range(count):
            transport.write(chunk)
        assert len(reached) == 1  # the limit was reached inside this callback
        assert len(reached[0]) >= BATCH_LIMIT
        transport.write(b"last")
        transport.close()  # sends what was collected before closing
        assert reached[-1].endswith(b"last")
        assert await _received(peer, count * len(chunk) + 4) == chunk * count + b"last"
        peer.close()

    asyncio.run(main())
