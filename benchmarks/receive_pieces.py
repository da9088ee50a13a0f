"""
What handing asyncssh its input in pieces saves (:mod:`airflow_provider_sftp_resume.core.remote.inbound`).

It also measures sending new reads in groups of four free pipeline slots instead of one by one. On
plain asyncssh, as here, the saving has varied from run to run: none, pinned or not, when this
benchmark was written (3390e05); 0.45 CPU-s/GiB unpinned on c71f344. The engine sends its reads in
groups all the same (``REQUEST_GROUP`` in :mod:`~.core.io.pipeline`, since commit 996a528): there
the requests of a group leave in one ``send`` (:mod:`~.core.remote.outbound`), which that commit
measured with ``strace -c``, for the two together (1 GiB over one connection: 8,359 ``sendto``
calls down to 1,098).

One command (from the repository root)::

    .venv/bin/python benchmarks/receive_pieces.py             # 256 MiB, 8 rounds
    .venv/bin/python benchmarks/receive_pieces.py --rounds 3  # quicker

It starts a private OpenSSH ``sshd`` on 127.0.0.1, and reads one file over plain asyncssh with 16
reads of 255 KiB in flight (the engine's shape on loopback), three ways, alternating: as asyncssh
receives it, refilling each free slot at once; fed in 64 KiB pieces; fed in pieces and refilling
four slots at a time. It prints the client's CPU seconds per GiB (this process only;
min and median of the rounds), which depends far less on a busy machine than wall time does. The
client and sshd are pinned to different CPUs when there are two, unless ``--unpinned``: then the
scheduler may run sshd on the client's CPU when a read request wakes it, which is what the groups
of reads were meant to save.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

if TYPE_CHECKING:
    from tests.support.servers import OpenSSHServer

GiB = 1024**3
BLOCK = 261120  # OpenSSH's largest read
IN_FLIGHT = 16


async def read_once(
    server: OpenSSHServer, known_hosts: Path, src: Path, size: int, *, pieces: bool, group: int
) -> tuple[float, float]:
    """CPU and wall seconds this process spent reading ``src`` once."""
    import asyncssh

    from airflow_provider_sftp_resume.core.remote.inbound import feed_in_pieces

    key = asyncssh.read_private_key(str(server.info.client_key.private))
    async with asyncssh.connect(
        "127.0.0.1",
        server.info.port,
        known_hosts=str(known_hosts),
        client_keys=[key],
        username=os.environ.get("USER", "root"),
        encryption_algs=["aes128-gcm@openssh.com"],
        window=64 * 1024 * 1024,
    ) as conn:
        if pieces:
            feed_in_pieces(conn)
        async with conn.start_sftp_client() as sftp, sftp.open(str(src), "rb") as remote:
            started, wall = time.process_time(), time.monotonic()
            offset, tasks = 0, []
            while offset < size or tasks:
                while len(tasks) <= IN_FLIGHT - group and offset < size:
                    tasks.append(asyncio.ensure_future(remote.read(BLOCK, offset)))
                    offset += BLOCK
                await tasks.pop(0)
            return time.process_time() - started, time.monotonic() - wall


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument(
        "--unpinned", action="store_true", help="let the scheduler place sshd and the client (as in real use)"
    )
    args = parser.parse_args()
    from tests.support.keys import make_key
    from tests.support.servers import OpenSSHServer

    work = Path(tempfile.mkdtemp(prefix="receive-pieces-"))
    server = OpenSSHServer(work / "sshd", make_key(work / "id_ed25519"))
    try:
        if len(os.sched_getaffinity(0)) >= 2 and not args.unpinned:
            os.sched_setaffinity(server.pid, {1})  # its sessions inherit it
            os.sched_setaffinity(0, {0})
        known_hosts = work / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{server.info.port} {server.info.host_key.public_line}\n")
        size = args.size_mib * 1024 * 1024
        src = work / "src.bin"
        with src.open("wb") as out:
            for _ in range(args.size_mib):
                out.write(os.urandom(1024 * 1024))
        ways = {"as received": (False, 1), "in 64 KiB pieces": (True, 1), "pieces, groups of 4": (True, 4)}
        seconds: dict[str, list[float]] = {label: [] for label in ways}
        walls: dict[str, list[float]] = {label: [] for label in ways}
        for _ in range(args.rounds):
            for label, (pieces, group) in ways.items():
                cpu, wall = asyncio.run(read_once(server, known_hosts, src, size, pieces=pieces, group=group))
                seconds[label].append(cpu * GiB / size)
                walls[label].append(size / wall / 1e6)
        first = statistics.median(seconds["as received"])
        for label, runs in seconds.items():
            median = statistics.median(runs)
            print(
                f"{label:20s} client CPU s/GiB: min {min(runs):.2f}, median {median:.2f} "
                f"({len(runs)} rounds; {median - first:+.2f} against as received); "
                f"median {statistics.median(walls[label]):.0f} MB/s"
            )
    finally:
        server.stop()
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
