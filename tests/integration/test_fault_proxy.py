"""The fault proxy's cut keeps its word: the bytes before it reach the client, however late it reads."""

from __future__ import annotations

import socket
import threading
import time

from tests.support.faultproxy import FaultProxy

MiB = 1024 * 1024


def test_a_cut_delivers_the_bytes_before_it_to_a_client_that_reads_late() -> None:
    # A client on a loaded machine is not run for a while: the proxy has long written the bytes
    # before the cut (into its socket's send queue), and the RST of the cut must not discard them.
    server = socket.create_server(("127.0.0.1", 0))
    sent = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(bytes(4 * MiB))
            sent.set()
            time.sleep(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    proxy = FaultProxy(server.getsockname()[1])
    received = 0
    try:
        proxy.cut_after(2 * MiB)
        with socket.create_connection(("127.0.0.1", proxy.port)) as client:
            time.sleep(0.5)  # not reading: what the proxy wrote waits in the kernels' queues
            try:
                while data := client.recv(MiB):
                    received += len(data)
            except ConnectionResetError:
                pass
    finally:
        proxy.stop()
        server.close()
        thread.join(timeout=5)
    assert proxy.cuts == 1
    assert received == 2 * MiB
