"""
A TCP proxy that injects real network faults between an SSH client and server.

It runs its own event loop in a thread and forwards 127.0.0.1:<port> to the server. Faults:

- :meth:`FaultProxy.cut_after`: deliver N more server-to-client bytes (counted across all
  connections), then abort every connection (RST), as a dropped link does;
- :meth:`FaultProxy.cut_after_sent`: the same, counting client-to-server bytes (uploads);
- :meth:`FaultProxy.stall_after`: after N more server-to-client bytes, stop forwarding anything in
  either direction while keeping the sockets open (a black-holed link);
- ``latency``: delay every chunk by ``rtt / 2`` in each direction without limiting throughput, as a
  long link does;
- :meth:`FaultProxy.hold` / :meth:`FaultProxy.release`: stop delivering server-to-client bytes
  without losing any (the server's sends back up in TCP), then deliver them again, as a link that
  stalls and recovers does; a reader blocked meanwhile wakes up with the bytes it asked for;
- ``rate``: deliver server-to-client bytes at most this fast (bytes per second), as a slow link does;
  a cut then lands seconds into a transfer instead of a fraction of a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import socket
import struct
import termios
import threading
import time
from dataclasses import dataclass

from tests.support.ports import free_port

CHUNK = 256 * 1024  # 256 KiB
#: Longest wait at a cut for the peer to take the bytes before it (a peer that reads nothing).
DELIVERY_TIMEOUT = 10.0  # seconds


@dataclass
class _Plan:
    cut_at: int | None = None  # cumulative s->c byte count at which to cut
    cut_sent_at: int | None = None  # cumulative c->s byte count at which to cut
    stall_at: int | None = None
    refuse: bool = False


class _RateLimit:
    """
    Hold a reader back so that the bytes let through keep to ``rate`` (TCP then pushes back).

    :param rate: bytes per second; ``None`` or 0 lets everything through at once
    """

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self._due = 0.0  # when the bytes let through so far have had their time at the rate

    async def take(self, nbytes: int) -> None:
        """Wait until ``nbytes`` more may pass (the time is reserved before waiting)."""
        if not self.rate:
            return
        now = time.monotonic()
        self._due = max(self._due, now) + nbytes / self.rate
        if self._due > now:
            await asyncio.sleep(self._due - now)


class FaultProxy:
    """
    Forward ``127.0.0.1:port`` to ``target_host:target_port`` with injectable faults.

    :param target_port: the server's port
    :param target_host: the server's address
    :param rtt: added round-trip time in seconds (half each way)
    :param rate: server-to-client bytes per second over all connections; ``None`` for no limit
    """

    def __init__(
        self,
        target_port: int,
        target_host: str = "127.0.0.1",
        *,
        rtt: float = 0.0,
        rate: float | None = None,
    ) -> None:
        self.target = (target_host, target_port)
        self.rtt = rtt
        self.port = free_port()
        self.server_to_client = 0  # bytes forwarded since start
        self.client_to_server = 0
        self.connections = 0
        self.open_connections = 0
        self.connection_limit: int | None = None
        self.refused = 0
        self.cuts = 0
        self._plan = _Plan()
        self._writers: set[asyncio.StreamWriter] = set()
        self._stalled = False
        self._download_limit = _RateLimit(rate)  # server-to-client
        self._upload_limit = _RateLimit(None)  # client-to-server
        self._flowing = asyncio.Event()  # cleared by hold(): downstream reading pauses
        self._flowing.set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)

    # -- control (any thread) ---------------------------------------------------------------------

    def cut_after(self, nbytes: int) -> None:
        """Abort all connections once ``nbytes`` more server-to-client bytes have passed."""
        self._call(lambda: setattr(self._plan, "cut_at", self.server_to_client + nbytes))

    def cut_after_sent(self, nbytes: int) -> None:
        """Abort all connections once ``nbytes`` more client-to-server bytes have passed."""
        self._call(lambda: setattr(self._plan, "cut_sent_at", self.client_to_server + nbytes))

    def stall_after(self, nbytes: int) -> None:
        """Stop forwarding (both ways, sockets left open) after ``nbytes`` more server-to-client bytes."""
        self._call(lambda: setattr(self._plan, "stall_at", self.server_to_client + nbytes))

    def hold(self) -> None:
        """Stop forwarding server-to-client bytes, keeping them (sockets stay open, nothing is lost)."""
        self._call(self._flowing.clear)

    def release(self) -> None:
        """Forward again what :meth:`hold` held back, and everything after it."""
        self._call(self._flowing.set)

    def limit_connections(self, count: int | None) -> None:
        """Refuse (reset) connections beyond ``count`` open at once, as a per-user limit would."""
        self._call(lambda: setattr(self, "connection_limit", count))

    def heal(self) -> None:
        """Remove planned faults and resume forwarding on new connections."""

        def clear() -> None:
            self._plan = _Plan()
            self._stalled = False

        self._call(clear)

    def set_rtt(self, rtt: float) -> None:
        """Change the added round-trip time for new chunks."""
        self._call(lambda: setattr(self, "rtt", rtt))

    def set_rate(self, bytes_per_second: float | None) -> None:
        """Cap server-to-client throughput at ``bytes_per_second`` (``None``: no cap)."""
        self._call(lambda: setattr(self._download_limit, "rate", bytes_per_second))

    def set_upload_rate(self, bytes_per_second: float | None) -> None:
        """Cap client-to-server throughput at ``bytes_per_second`` (``None``: no cap)."""
        self._call(lambda: setattr(self._upload_limit, "rate", bytes_per_second))

    def drop_all(self) -> None:
        """Abort every open connection now."""
        self._call(self._abort_all)

    def stop(self) -> None:
        """Close the listener and all connections, and stop the thread."""

        async def close() -> None:
            self._server.close()
            self._abort_all()
            handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def _call(self, func: object) -> None:
        done = threading.Event()

        def run() -> None:
            func()  # type: ignore[operator]
            done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(5)

    # -- the proxy (event loop thread) ------------------------------------------------------------

    async def _start(self) -> asyncio.base_events.Server:
        return await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    def _abort_all(self) -> None:
        for writer in list(self._writers):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    # Linger 0: close with RST, as a dropped link or a reset middlebox would.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.connection_limit is not None and self.open_connections >= self.connection_limit:
            self.refused += 1
            client_writer.transport.abort()
            return
        self.open_connections += 1
        try:
            await self._forward(client_reader, client_writer)
        finally:
            self.open_connections -= 1

    async def _forward(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        for writer in (client_writer, server_writer):
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._writers.add(writer)
        await asyncio.gather(
            self._pump(client_reader, server_writer, downstream=False),
            self._pump(server_reader, client_writer, downstream=True),
            return_exceptions=True,
        )
        for writer in (client_writer, server_writer):
            self._writers.discard(writer)
            writer.transport.abort()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, downstream: bool
    ) -> None:
        queue: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if data is None:  # the cut: everything before it has been delivered
                    await _received(writer)
                    self._abort_all()
                    return
                if not data:
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        delivery = asyncio.ensure_future(deliver())
        try:
            while True:
                if downstream:
                    await self._flowing.wait()
                data = await reader.read(CHUNK)
                if not data:
                    queue.put_nowait((0.0, b""))
                    break
                due = time.monotonic() + self.rtt / 2
                if downstream:
                    await self._download_limit.take(len(data))
                    data, cut = self._account(data)
                    if cut:
                        queue.put_nowait((due, data))
                        queue.put_nowait((due, None))
                        break
                    if not data:
                        continue  # stalled: read and drop, keep the sockets open
                elif self._stalled:
                    continue
                else:
                    await self._upload_limit.take(len(data))
                    data, cut = self._account_sent(data)
                    if cut:
                        queue.put_nowait((due, data))
                        queue.put_nowait((due, None))
                        break
                queue.put_nowait((due, data))
            await delivery
        finally:
            delivery.cancel()

    def _account(self, data: bytes) -> tuple[bytes, bool]:
        """Count server-to-client bytes; apply a planned stall or cut. Returns what to forward, and
        whether the link is cut after it."""
        plan = self._plan
        start = self.server_to_client
        self.server_to_client += len(data)
        if self._stalled:
            return b"", False
        if plan.stall_at is not None and self.server_to_client >= plan.stall_at:
            keep = max(0, plan.stall_at - start)
            plan.stall_at = None
            self._stalled = True
            return data[:keep], False
        if plan.cut_at is not None and self.server_to_client >= plan.cut_at:
            keep = max(0, plan.cut_at - start)
            plan.cut_at = None
            self.cuts += 1
            return data[:keep], True
        return data, False

    def _account_sent(self, data: bytes) -> tuple[bytes, bool]:
        """Count client-to-server bytes; apply a planned cut."""
        plan = self._plan
        start = self.client_to_server
        self.client_to_server += len(data)
        if plan.cut_sent_at is not None and self.client_to_server >= plan.cut_sent_at:
            keep = max(0, plan.cut_sent_at - start)
            plan.cut_sent_at = None
            self.cuts += 1
            return data[:keep], True
        return data, False


async def _received(writer: asyncio.StreamWriter) -> None:
    """
    Wait until the peer has acknowledged every byte written to ``writer`` (at most :data:`DELIVERY_TIMEOUT`).

    Written is not received: the RST of a cut discards what still waits in this socket's send queue
    (Linux ``SIOCOUTQ``), megabytes on loopback when the peer is a process a loaded machine has not
    run for a while. Those bytes would never reach it, and a cut "after N bytes" would come before
    them. What the peer's kernel acknowledged it can still read after the RST.
    """
    sock = writer.get_extra_info("socket")
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while sock is not None and time.monotonic() < deadline:
        if writer.transport.get_write_buffer_size() == 0:
            try:
                queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))  # = SIOCOUTQ
            except (OSError, ValueError):
                return  # the socket is gone: nothing more can reach the peer
            if struct.unpack("i", queued)[0] == 0:
                return
        await asyncio.sleep(0.001)


def main() -> None:
    """Run a latency-only proxy in its own process (benchmarks use this, so it takes no GIL from the
    client being measured). Prints the listening port, then serves until terminated."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--target-port", type=int, required=True)
    parser.add_argument("--rtt", type=float, default=0.0, help="added round trip, seconds")
    args = parser.parse_args()
    proxy = FaultProxy(args.target_port, rtt=args.rtt)
    print(proxy.port, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    proxy.stop()


if __name__ == "__main__":
    main()
