"""
Sizing the transfer to the path: how many bytes to keep in flight, and when to split a file.

Measured on this project's 2-core machine against OpenSSH 9.2: keeping 32 MiB of reads outstanding
on loopback made OpenSSH's ``sshd`` crawl (about 90 MB/s, against 300 MB/s with 2-4 MiB), while at
20 ms round trip 8 MiB in flight reached 160 MB/s where 2 MiB stalls near 40 MB/s. So the amount
in flight follows the bandwidth-delay product: the round trip (timed on the first requests of the
try) times the rate one connection can carry, within fixed bounds. The SSH window is set high and
only caps it; the outstanding requests are what really bound the data in flight and the memory.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

MiB = 1024 * 1024
#: The cgroup v2 CPU limit of this process's container: ``<quota> <period>`` or ``max <period>``.
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
#: Best rate one connection reaches here (CPU-bound in the Python client), bytes per second.
RATE_PER_CONNECTION = 400_000_000  # 400 MB/s
#: Never less than this in flight: enough for LAN round trips, small enough for sshd's buffers.
MIN_IN_FLIGHT = 4 * MiB
#: Never more than this in flight over all connections of one try (the memory budget).
MAX_IN_FLIGHT = 64 * MiB
MIN_REQUESTS = 4
MAX_REQUESTS = 512


def in_flight_bytes(rtt: float, streams: int = 1) -> int:
    """
    Bytes to keep outstanding on each of ``streams`` connections for a path with round trip ``rtt``.

    :param rtt: round-trip time in seconds
    :param streams: connections sharing the memory budget
    """
    per_stream_cap = max(MIN_IN_FLIGHT, MAX_IN_FLIGHT // max(1, streams))
    wanted = int(RATE_PER_CONNECTION * min(max(0.0, rtt), 10.0))  # an unmeasured (inf) rtt gets the cap
    return max(MIN_IN_FLIGHT, min(per_stream_cap, wanted))


def requests_in_flight(block_size: int, rtt: float, streams: int = 1) -> int:
    """Number of ``block_size`` reads to keep outstanding per connection."""
    return max(MIN_REQUESTS, min(MAX_REQUESTS, in_flight_bytes(rtt, streams) // max(1, block_size)))


#: A round trip below this is a fast path (loopback, a LAN): one connection is then CPU-bound, not
#: link-bound, and a second connection in a worker process on a core of its own adds throughput.
#: Above it the link is the limit and one connection with enough bytes in flight is as fast.
AUTO_SPLIT_MAX_RTT = 0.005  # 5 ms
#: Smallest file split automatically: a worker process costs about half a second to start and
#: connect, which a smaller file does not pay back.
AUTO_SPLIT_MIN_SIZE = 256 * MiB
#: Fewest usable CPUs for the automatic split. Each connection keeps a client core busy, and on
#: loopback a server core as well (its sshd session). On this project's 2-core machine two
#: connections did not beat one (``bench_peers.py --case 1g-rtt0 --runs 5``: one connection 0.84-0.98
#: of OpenSSH ``sftp`` at 3.0 client and 1.0 sshd CPU-s per GiB, two 0.83-0.95 at 5.0 and 1.9;
#: against ProFTPD one read 209.7-369.7 MB/s, two 179.4), so a second connection needs cores to
#: spare beyond two.
AUTO_SPLIT_MIN_CPUS = 4
#: Connections chosen for a large file on a fast path with cores to spare.
AUTO_CONNECTIONS = 2


def automatic_connections(size: int, rtt: float, cpus: float) -> int:
    """
    Connections for one file when ``max_connections`` is not set.

    :param size: bytes still to read
    :param rtt: measured round trip in seconds (``inf`` when unmeasured)
    :param cpus: CPUs this process may use (:func:`usable_cpus`)
    """
    if cpus >= AUTO_SPLIT_MIN_CPUS and rtt < AUTO_SPLIT_MAX_RTT and size >= AUTO_SPLIT_MIN_SIZE:
        return AUTO_CONNECTIONS
    return 1


def choose_connections(
    asked: int | None, left: int, rtt: float, *, random_access: bool, workers: bool
) -> int:
    """
    Connections for one file: as asked, else :func:`automatic_connections` where they can help.

    :param asked: ``max_connections`` (``None``: choose)
    :param left: bytes still to read
    :param rtt: measured round trip in seconds
    :param random_access: the destination takes writes at any offset (else one connection)
    :param workers: extra connections would run in worker processes, on CPUs of their own; extra
        streams in this process (under a bandwidth cap, or into an in-memory destination) share its
        CPU and are never chosen
    """
    if not random_access:
        return 1
    if asked is not None:
        return asked
    return automatic_connections(left, rtt, usable_cpus()) if workers else 1


def usable_cpus() -> float:
    """
    CPUs this process may run on: its affinity, capped by a cgroup v2 CPU quota (a Kubernetes limit).

    The standard library sees the affinity (``os.sched_getaffinity``) but not a quota, and a pod
    limited to one CPU on a large node would otherwise look like it has many.
    """
    try:
        cpus = float(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        cpus = float(os.cpu_count() or 1)
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
    except (OSError, ValueError):
        return cpus
    if quota == "max":
        return cpus
    with contextlib.suppress(ValueError, ZeroDivisionError):
        cpus = min(cpus, int(quota) / int(period))
    return cpus
