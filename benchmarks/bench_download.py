"""
Download benchmark: our operator's transfer path against the tools users would use instead.

One command (from the repository root, after ``scripts/bootstrap.sh``)::

    .venv/bin/python benchmarks/bench_download.py            # full run, about 5 minutes
    .venv/bin/python benchmarks/bench_download.py --quick    # smoke test (CI): small file, RTT 0

It starts a private OpenSSH ``sshd`` on 127.0.0.1 and the latency proxy from the test support code,
makes the test files, and measures, at each round-trip time:

- ``ours``: ``ResumableSFTPHook.download_resumable`` (what the operator runs), defaults;
- ``openssh``: OpenSSH ``sftp -b`` (batch mode) ``get``, defaults;
- ``paramiko``: ``SFTPClient.get()`` (prefetching), defaults;
- ``naive``: ``open``/``seek``/``read(32768)`` in a loop (the paramiko blog recipe), time-bounded.

It prints MB/s (median of runs, min-max), the ratios against the issue's floors, the peak RSS added
by a download (1 KiB vs the full file vs 2 GiB), how fast a resumed try starts moving bytes with
most of a 2 GiB file kept, and what checkpointing costs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MiB = 1024 * 1024
MB = 1_000_000
CONN_ID = "sftp_bench"

#: floors from issue 3: RTT ms -> (ours/openssh, ours/naive)
FLOORS = {0: (1.0, 20.0), 20: (1.5, 50.0), 100: (4.0, 100.0)}


@dataclass
class Series:
    rates: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.rates) if self.rates else float("nan")

    def cell(self) -> str:
        if not self.rates:
            return "-"
        if len(self.rates) == 1:
            return f"{self.rates[0]:.1f}"
        return f"{self.median:.1f} ({min(self.rates):.1f}-{max(self.rates):.1f})"


def configure_airflow(home: Path) -> None:
    import logging

    logging.getLogger("paramiko").setLevel(logging.WARNING)
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        }
    )


def make_file(path: Path, size: int) -> None:
    if path.exists() and path.stat().st_size == size:
        return
    chunk = os.urandom(8 * MiB)
    with open(path, "wb") as handle:
        left = size
        while left:
            handle.write(chunk[: min(left, len(chunk))])
            left -= min(left, len(chunk))


def drop(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


class Bench:
    def __init__(self, workdir: Path, naive_seconds: float) -> None:
        from tests.support.keys import make_key
        from tests.support.servers import OpenSSHServer

        self.workdir = workdir
        self.naive_seconds = naive_seconds
        self.client_key = make_key(workdir / "keys" / "id_ed25519")
        self.server = OpenSSHServer(workdir / "sshd", self.client_key)
        self.known_hosts = workdir / "known_hosts"
        self.dst = workdir / "dst.bin"

    def stop(self) -> None:
        self.server.stop()

    def define_connection(self, port: int) -> None:
        from tests.support.airflow_env import connection_json

        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = connection_json(self.server.info, port=port)
        self.known_hosts.write_text(f"[127.0.0.1]:{port} {self.server.info.host_key.public_line}\n")

    def _clean(self) -> None:
        drop([self.dst, Path(f"{self.dst}.part"), Path(f"{self.dst}.part.json")])

    def ours(self, src: Path, port: int, **options: object) -> float:
        from airflow_provider_sftp_resume.core import DownloadOptions
        from airflow_provider_sftp_resume.hooks import ResumableSFTPHook

        self._clean()
        started = time.monotonic()
        hook = ResumableSFTPHook(ssh_conn_id=CONN_ID)
        result = hook.download_resumable(str(src), str(self.dst), DownloadOptions(**options))  # type: ignore[arg-type]
        elapsed = time.monotonic() - started
        assert result.size == src.stat().st_size
        return result.size / elapsed / MB

    def openssh(self, src: Path, port: int) -> float:
        self._clean()
        started = time.monotonic()
        subprocess.run(
            [
                "sftp", "-q", "-b", "-", "-P", str(port), "-i", str(self.client_key.private),
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "BatchMode=yes",
                f"{self.server.info.username}@127.0.0.1",
            ],
            input=f'get "{src}" "{self.dst}"\n'.encode(),
            check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        elapsed = time.monotonic() - started
        assert self.dst.stat().st_size == src.stat().st_size
        return src.stat().st_size / elapsed / MB

    def _paramiko(self, port: int):  # type: ignore[no-untyped-def]
        import paramiko

        client = paramiko.SSHClient()
        client.load_host_keys(str(self.known_hosts))
        client.connect(
            "127.0.0.1",
            port=port,
            username=self.server.info.username,
            key_filename=str(self.client_key.private),
            look_for_keys=False,
            allow_agent=False,
        )
        return client

    def paramiko_get(self, src: Path, port: int) -> float:
        self._clean()
        started = time.monotonic()
        client = self._paramiko(port)
        try:
            client.open_sftp().get(str(src), str(self.dst))
        finally:
            client.close()
        elapsed = time.monotonic() - started
        return src.stat().st_size / elapsed / MB

    def naive(self, src: Path, port: int) -> float:
        """The blog recipe: seek to the kept size and read 32 KiB at a time (time-bounded)."""
        self._clean()
        started = time.monotonic()
        client = self._paramiko(port)
        moved = 0
        try:
            with client.open_sftp().open(str(src), "rb") as remote, open(self.dst, "wb") as local:
                remote.seek(0)
                while time.monotonic() - started < self.naive_seconds:
                    data = remote.read(32768)
                    if not data:
                        break
                    local.write(data)
                    moved += len(data)
        finally:
            client.close()
        return moved / (time.monotonic() - started) / MB


class LatencyProxy:
    """The test suite's fault proxy, in a process of its own so it does not share a GIL with us."""

    def __init__(self, target_port: int, rtt: float) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.faultproxy",
                "--target-port",
                str(target_port),
                "--rtt",
                str(rtt),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def interleaved(runs: int, clients: dict[str, Callable[[], float]]) -> dict[str, Series]:
    """Run every client once per round, so that background noise falls on all of them alike."""
    series = {name: Series() for name in clients}
    for _ in range(runs):
        for name, func in clients.items():
            series[name].rates.append(func())
    return series


def measure(runs: int, func: Callable[[], float]) -> Series:
    series = Series()
    for _ in range(runs):
        series.rates.append(func())
    return series


def peak_rss_mib(bench: Bench, src: Path, port: int) -> str:
    """Peak RSS of a fresh process that imports Airflow and runs one hook download, and of its largest child.

    The child is the segment worker when the download uses two connections (a large file on a fast
    path); the largest of the process's children in any case (``RUSAGE_CHILDREN``).
    """
    code = f"""
import os, resource, sys
sys.path.insert(0, {str(ROOT)!r})
from airflow_provider_sftp_resume.hooks import ResumableSFTPHook
dst = {str(bench.dst)!r}
for p in (dst, dst + ".part", dst + ".part.json"):
    if os.path.exists(p): os.unlink(p)
ResumableSFTPHook(ssh_conn_id={CONN_ID!r}).download_resumable({str(src)!r}, dst)
usage = resource.getrusage
print(usage(resource.RUSAGE_SELF).ru_maxrss, usage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    own, worker = (int(kib) / 1024 for kib in done.stdout.strip().splitlines()[-1].split())
    return f"{own:.0f}" + (f" (largest child process: {worker:.0f})" if worker else "")


def resume_start(bench: Bench, src: Path, server_port: int, kept_fraction: float) -> dict[str, float]:
    """Cut a download of ``src`` at ``kept_fraction``, then time the resumed try."""
    from airflow_provider_sftp_resume.core import TransferInterrupted
    from airflow_provider_sftp_resume.hooks import ResumableSFTPHook
    from tests.support.faultproxy import FaultProxy

    proxy = FaultProxy(server_port)
    try:
        bench.define_connection(proxy.port)
        bench._clean()
        proxy.cut_after(int(src.stat().st_size * kept_fraction))
        with contextlib.suppress(TransferInterrupted):
            ResumableSFTPHook(ssh_conn_id=CONN_ID).download_resumable(str(src), str(bench.dst))
        result = ResumableSFTPHook(ssh_conn_id=CONN_ID).download_resumable(str(src), str(bench.dst))
    finally:
        proxy.stop()
    return {
        "kept_mib": result.resumed_from / MiB,
        "first_byte_seconds": result.first_byte_seconds or float("nan"),
        "seconds": result.seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--rtts", default="0,20,100", help="round-trip times in ms, comma-separated")
    parser.add_argument("--runs", type=int, default=5, help="rounds per RTT (at most 3 at 100 ms)")
    parser.add_argument("--naive-seconds", type=float, default=6.0)
    parser.add_argument("--big-mib", type=int, default=2048, help="file for the memory and resume figures")
    parser.add_argument("--quick", action="store_true", help="smoke test: 8 MiB, RTT 0, one run, no extras")
    parser.add_argument("--output", type=Path, help="also write the Markdown report here")
    args = parser.parse_args()
    if args.quick:
        args.size_mib, args.rtts, args.runs, args.naive_seconds = 8, "0", 1, 1.0

    workdir = Path(tempfile.mkdtemp(prefix="sftp-resume-bench-"))
    configure_airflow(workdir / "airflow")
    bench = Bench(workdir, args.naive_seconds)
    rtts = [int(x) for x in args.rtts.split(",")]
    src = workdir / "src.bin"
    make_file(src, args.size_mib * MiB)
    table: dict[int, dict[str, Series]] = {}
    extras: dict[str, object] = {}
    try:
        for rtt in rtts:
            proxy = LatencyProxy(bench.server.info.port, rtt=rtt / 1000) if rtt else None
            port = proxy.port if proxy else bench.server.info.port
            bench.define_connection(port)
            print(f"RTT {rtt} ms ...", file=sys.stderr, flush=True)
            clients: dict[str, Callable[[], float]] = {
                "ours": lambda p=port: bench.ours(src, p),
                "openssh": lambda p=port: bench.openssh(src, p),
                "paramiko": lambda p=port: bench.paramiko_get(src, p),
            }
            runs = args.runs if rtt < 100 else max(1, min(args.runs, 3))
            row = interleaved(runs, clients)
            row["naive"] = measure(1, lambda p=port: bench.naive(src, p))
            table[rtt] = row
            if proxy:
                proxy.stop()
        if not args.quick:
            port = bench.server.info.port
            bench.define_connection(port)
            print("checkpoint cost ...", file=sys.stderr, flush=True)
            pair = interleaved(
                args.runs,
                {
                    "with": lambda: bench.ours(src, port),
                    "without": lambda: bench.ours(src, port, checkpoint_interval=1e9),
                },
            )
            with_checkpoints, without = pair["with"], pair["without"]
            extras["checkpoint_cost_percent"] = 100 * (1 - with_checkpoints.median / without.median)
            extras["with_checkpoints"] = with_checkpoints.cell()
            extras["without_checkpoints"] = without.cell()
            print("memory ...", file=sys.stderr, flush=True)
            tiny = workdir / "tiny.bin"
            make_file(tiny, 1024)
            small = workdir / "small.bin"
            make_file(small, 64 * MiB)
            mid = workdir / "mid.bin"
            make_file(mid, 256 * MiB)
            big = workdir / "big.bin"
            make_file(big, args.big_mib * MiB)
            rss = {
                "1 KiB": peak_rss_mib(bench, tiny, port),
                "64 MiB": peak_rss_mib(bench, small, port),
                "256 MiB": peak_rss_mib(bench, mid, port),
                f"{args.big_mib} MiB": peak_rss_mib(bench, big, port),
            }
            extras["rss_mib"] = rss
            print("resume start ...", file=sys.stderr, flush=True)
            extras["resume"] = resume_start(bench, big, bench.server.info.port, 0.9)
    finally:
        bench.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    report = render(table, extras, args)
    print(report)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report)
    return 0 if all_floors_met(table) or args.quick else 1


def all_floors_met(table: dict[int, dict[str, Series]]) -> bool:
    return all(
        table[rtt]["ours"].median >= FLOORS[rtt][0] * table[rtt]["openssh"].median
        and table[rtt]["ours"].median >= FLOORS[rtt][1] * table[rtt]["naive"].median
        for rtt in table
        if rtt in FLOORS
    )


def render(table: dict[int, dict[str, Series]], extras: dict[str, object], args: argparse.Namespace) -> str:
    rtts = sorted(table)
    lines = [
        f"Throughput in MB/s, median of {args.runs} interleaved rounds (3 at 100 ms), min-max in "
        f"brackets; file {args.size_mib} MiB; naive loop time-bounded to {args.naive_seconds:g} s, one run",
        "",
        "| client | " + " | ".join(f"RTT {r} ms" for r in rtts) + " |",
        "|---|" + "---|" * len(rtts),
    ]
    for client in ("ours", "openssh", "paramiko", "naive"):
        lines.append(f"| {client} | " + " | ".join(table[r][client].cell() for r in rtts) + " |")
    lines += ["", "| RTT | ours / openssh (floor) | ours / naive (floor) | met |", "|---|---|---|---|"]
    for rtt in rtts:
        ours = table[rtt]["ours"].median
        vs_openssh = ours / table[rtt]["openssh"].median
        vs_naive = ours / table[rtt]["naive"].median
        floor = FLOORS.get(rtt)
        met = "n/a" if floor is None else ("yes" if vs_openssh >= floor[0] and vs_naive >= floor[1] else "NO")
        floors = ("-", "-") if floor is None else (f"{floor[0]:g}", f"{floor[1]:g}")
        lines.append(f"| {rtt} ms | {vs_openssh:.2f} ({floors[0]}) | {vs_naive:.0f} ({floors[1]}) | {met} |")
    if extras:
        lines += ["", "Peak RSS of a process running one download (MiB):", ""]
        for label, value in extras["rss_mib"].items():  # type: ignore[attr-defined]
            lines.append(f"- {label}: {value}")
        resume = extras["resume"]
        lines += [
            "",
            f"Resume start: with {resume['kept_mib']:.0f} MiB kept, the resumed try wrote its first new "  # type: ignore[index]
            f"byte {resume['first_byte_seconds']:.2f} s after it started (connect included); "  # type: ignore[index]
            f"whole try {resume['seconds']:.2f} s.",  # type: ignore[index]
            "",
            f"Checkpointing (fsync + sidecar every 0.5 s) costs {extras['checkpoint_cost_percent']:.1f} % of "
            f"throughput at RTT 0: {extras['with_checkpoints']} MB/s with, {extras['without_checkpoints']} "
            "MB/s without.",
        ]
    lines += ["", "```", json.dumps({str(r): {c: s.rates for c, s in table[r].items()} for r in rtts}), "```"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
