"""
Side by side with the peers (issue 14): our operators against OpenSSH ``sftp``, ``lftp`` and ``rclone``.

One command (from the repository root, after ``scripts/bootstrap.sh`` and ``apt-get install lftp
rclone``)::

    .venv/bin/python benchmarks/bench_peers.py --output benchmarks/results/peers-latest.md  # every case
    .venv/bin/python benchmarks/bench_peers.py --case 64m-rtt100 --runs 1                  # one case
    .venv/bin/python benchmarks/bench_peers.py --quick                                     # CI smoke

It starts a private OpenSSH ``sshd`` (and a ProFTPD with mod_sftp for the last case) on 127.0.0.1,
the latency proxy from the test support code in a process of its own (RTT 0 cases go straight to
loopback), makes the test files, and runs every case of issue 14's table with the tools alternating
inside each round (the order rotates from round to round):

- ``sftp``: OpenSSH ``sftp -b -`` (batch mode) ``get`` (``get -r`` for the directory), defaults;
- ``lftp get``, ``lftp pget -n 4``, ``lftp mirror --parallel=4`` (the directory), defaults;
- ``rclone``: ``rclone copy`` with its defaults, the sftp remote configured by environment variables;
- ``ours``: a real Airflow task (``dag.test()``) running ``ResumableSFTPDownloadOperator`` (or
  ``ResumableSFTPDirectoryDownloadOperator`` for the directory) with its defaults.

The SSH connect is inside every figure: the CLI tools are timed as a process (start to exit); ours
by the task's XCom ``seconds``, whose clock starts before the transfer lock and the SSH connect
(``TryStory.started``, ``download_directory``'s ``started``). Host keys are checked by every tool
against a known_hosts file (``sftp``/``lftp`` through ``ssh``, rclone through ``known_hosts_file``).
Every output is checked by sha256 against its source.

CPU seconds are counted per run: the client (a CLI tool and its children, from ``RUSAGE_CHILDREN``;
ours, the benchmark process itself, which runs ``dag.test()``, plus its children) and the server
(the ``sshd`` or ``proftpd`` listener with the session processes it has reaped, from
``/proc/PID/stat``). Our client figure includes what ``dag.test()`` itself costs; the report gives
that cost, measured the same way on an empty task.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime as dt
import hashlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench_download import MB, LatencyProxy, MiB, configure_airflow, make_file

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONN_ID = "sftp_peers"
KiB = 1024
GiB = 1024 * MiB
#: issue 14's figure for today's read size against ProFTPD (83-90 MB/s); its floor is 1.5 x this.
#: The top of the range, so that the floor is not met by a lucky run against a low figure.
PROFTPD_TODAY_MB_S = 90.0
PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
TOOL_TIMEOUT = 900  # seconds; a CLI tool stuck longer than this fails its run


@dataclass(frozen=True)
class Case:
    """
    One row of issue 14's table.

    :param name: what ``--case`` selects
    :param title: the row's label
    :param rtt_ms: added round-trip time (0: straight to loopback, no proxy)
    :param size: bytes of the file, or of each file of the directory
    :param files: 0 for one file, else the number of files in the directory
    :param runs: rounds of the full benchmark
    :param floor: ours / best peer the issue asks for; ``None`` for none
    :param server: ``openssh`` or ``proftpd``
    :param absolute_floor: MB/s ours must reach (the ProFTPD case, against today's figure)
    """

    name: str
    title: str
    rtt_ms: int
    size: int
    files: int = 0
    runs: int = 3
    floor: float | None = None
    server: str = "openssh"
    absolute_floor: float | None = None

    @property
    def unit(self) -> str:
        return "files/s" if self.files else "MB/s"

    @property
    def total_bytes(self) -> int:
        return self.size * max(self.files, 1)


CASES = (
    Case("1g-rtt0", "1 GiB, RTT 0 (loopback)", 0, 1024 * MiB, runs=5, floor=1.0),
    Case("64m-rtt20", "64 MiB, RTT 20 ms", 20, 64 * MiB, floor=1.5),
    Case("256m-rtt20", "256 MiB, RTT 20 ms", 20, 256 * MiB),
    Case("256m-rtt100", "256 MiB, RTT 100 ms", 100, 256 * MiB, floor=3.0),
    Case("64m-rtt100", "64 MiB, RTT 100 ms", 100, 64 * MiB, floor=3.0),
    Case("dir-rtt20", "400 files x 256 KiB, RTT 20 ms", 20, 256 * KiB, files=400, floor=1.2),
    Case(
        "proftpd",
        "ProFTPD mod_sftp (no limits@openssh.com), 256 MiB, loopback",
        0,
        256 * MiB,
        server="proftpd",
        absolute_floor=1.5 * PROFTPD_TODAY_MB_S,
    ),
)


def quick_case(case: Case) -> Case:
    """The CI smoke version of ``case``: small sizes, one run, a few seconds, no floors."""
    if case.files:
        return replace(case, title=f"{case.title} [quick: 20 x 64 KiB]", size=64 * KiB, files=20, runs=1)
    return replace(case, title=f"{case.title} [quick: 8 MiB]", size=8 * MiB, runs=1)


@dataclass
class Run:
    """One tool's run: wall seconds (connect included), rate, and CPU seconds of client and server."""

    seconds: float
    rate: float
    client_cpu: float
    server_cpu: float
    note: dict[str, Any] = field(default_factory=dict)


@dataclass
class ToolSeries:
    runs: list[Run] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(r.rate for r in self.runs) if self.runs else float("nan")

    def cell(self) -> str:
        if self.failures:
            return f"FAILED ({len(self.failures)})"
        if not self.runs:
            return "-"
        rates = [r.rate for r in self.runs]
        if len(rates) == 1:
            return f"{rates[0]:.1f}"
        return f"{self.median:.1f} ({min(rates):.1f}-{max(rates):.1f})"

    def cpu_cell(self, case: Case) -> str:
        if not self.runs:
            return "-"
        client = statistics.median(r.client_cpu for r in self.runs)
        server = statistics.median(r.server_cpu for r in self.runs)
        per_gib = GiB / case.total_bytes
        return f"{client:.2f} / {server:.2f} ({client * per_gib:.1f} / {server * per_gib:.1f} per GiB)"


def sha256_of(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def tree_digests(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every regular file under ``root``."""
    return {str(p.relative_to(root)): sha256_of(p) for p in sorted(root.rglob("*")) if p.is_file()}


def server_cpu(pid: int) -> float:
    """CPU seconds of a server listener and of the session processes it has reaped (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # after the command: state is field 3, so utime, stime, cutime, cstime are fields 14-17
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def wait_sessions_reaped(pid: int, timeout: float = 10.0) -> None:
    """Wait until the server has no session processes left, so that their CPU is in its counters."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    deadline = time.monotonic() + timeout
    while children.read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.05)


def become_subreaper() -> None:
    """
    Adopt the orphans of the tools this process starts (Linux ``PR_SET_CHILD_SUBREAPER``).

    ``lftp`` exits without waiting for its ``ssh``; that ``ssh`` would be reaped by init and its CPU
    seconds lost. The standard library has no call for this ``prctl``, hence ctypes.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def reap_orphans(keep: set[int], timeout: float = 10.0) -> None:
    """Wait for every child of this process but ``keep`` (the servers, the proxy), adopted ones included."""
    deadline = time.monotonic() + timeout
    while True:
        pids = {
            int(pid)
            for task in Path("/proc/self/task").iterdir()
            for pid in (task / "children").read_text().split()
        } - keep
        if not pids:
            return
        late = time.monotonic() > deadline
        for pid in pids:
            with contextlib.suppress(ChildProcessError, ProcessLookupError):
                if late:  # an orphan of a tool this benchmark started, still running: end it
                    os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0 if late else os.WNOHANG)
        time.sleep(0.02)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def tool_versions() -> dict[str, str]:
    import asyncssh

    def first_line(command: list[str]) -> str:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        return (done.stdout or done.stderr).strip().splitlines()[0]

    from importlib.metadata import version

    return {
        "openssh": first_line(["ssh", "-V"]),
        "lftp": first_line(["lftp", "--version"]),
        "rclone": first_line(["rclone", "version"]),
        "asyncssh": asyncssh.__version__,
        "apache-airflow": version("apache-airflow"),
        "python": sys.version.split()[0],
    }


class Peers:
    """The servers, the tools and the Airflow runs of one benchmark."""

    def __init__(self, workdir: Path, *, need_proftpd: bool) -> None:
        from tests.support.keys import make_key
        from tests.support.servers import OpenSSHServer, ProFTPDServer

        self.workdir = workdir
        self.key = make_key(workdir / "keys" / "id_ed25519")
        self.servers: dict[str, Any] = {"openssh": OpenSSHServer(workdir / "sshd", self.key)}
        self.pids = {"openssh": int((workdir / "sshd" / "sshd.pid").read_text())}
        if need_proftpd:
            self.servers["proftpd"] = ProFTPDServer(workdir / "proftpd", self.key)
            self.pids["proftpd"] = self._proftpd_pid(workdir / "proftpd" / "proftpd.pid")
        self.known_hosts = workdir / "known_hosts"
        self.rclone_config = workdir / "rclone.conf"
        self.rclone_config.write_text("")
        self.out = workdir / "out"
        self.dag_count = 0
        #: our own long-lived children (servers, latency proxy), never reaped by reap_orphans
        self.keep_children = set(self.pids.values())
        self.server = "openssh"
        self.port = 0

    @staticmethod
    def _proftpd_pid(path: Path) -> int:
        deadline = time.monotonic() + 10
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return int(path.read_text())

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()

    def route(self, server: str, port: int) -> None:
        """Point every tool (and the Airflow connection) at ``server`` through ``port``."""
        from tests.support.airflow_env import connection_json

        self.server, self.port = server, port
        info = self.servers[server].info
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = connection_json(info, port=port)
        self.known_hosts.write_text(f"[127.0.0.1]:{port} {info.host_key.public_line}\n")

    @property
    def user(self) -> str:
        return str(self.servers[self.server].info.username)

    def fresh_out(self) -> Path:
        shutil.rmtree(self.out, ignore_errors=True)
        self.out.mkdir(parents=True)
        return self.out

    # ---- the CLI tools: process wall time, connect included ----

    def _ssh_options(self) -> list[str]:
        return [
            "-i", str(self.key.private),
            "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes",
        ]  # fmt: skip

    def _timed(
        self, command: list[str], *, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> Run:
        before_client = children_cpu()
        before_server = server_cpu(self.pids[self.server])
        started = time.monotonic()
        done = subprocess.run(
            command,
            input=stdin.encode() if stdin is not None else None,
            capture_output=True,
            env=env,
            timeout=TOOL_TIMEOUT,
            check=False,
        )
        seconds = time.monotonic() - started
        reap_orphans(self.keep_children)
        if done.returncode != 0:
            raise RuntimeError(
                f"{command[0]} exited with {done.returncode}: {done.stderr.decode(errors='replace')[-600:]}"
            )
        wait_sessions_reaped(self.pids[self.server])
        return Run(
            seconds,
            0.0,
            children_cpu() - before_client,
            server_cpu(self.pids[self.server]) - before_server,
        )

    def sftp(self, remote: Path, local: Path, *, directory: bool = False) -> Run:
        get = "get -r" if directory else "get"
        command = [
            "sftp",
            "-q",
            "-b",
            "-",
            "-P",
            str(self.port),
            *self._ssh_options(),
            f"{self.user}@127.0.0.1",
        ]
        return self._timed(command, stdin=f'{get} "{remote}" "{local}"\n')

    def lftp(self, transfer: str) -> Run:
        connect = " ".join(["ssh", "-a", "-x", *self._ssh_options()])  # lftp's default is "ssh -a -x"
        script = (
            f'set sftp:connect-program "{connect}"; '
            # not a speed setting: a failing run ends instead of lftp retrying for ever
            "set net:max-retries 2; set net:reconnect-interval-base 1; "
            f"open -u {self.user}, -p {self.port} sftp://127.0.0.1; {transfer}"
        )
        return self._timed(["lftp", "-c", script])

    def rclone(self, remote: Path, local_dir: Path) -> Run:
        env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
        env.update(
            {
                "RCLONE_CONFIG": str(self.rclone_config),
                "RCLONE_CONFIG_PEER_TYPE": "sftp",
                "RCLONE_CONFIG_PEER_HOST": "127.0.0.1",
                "RCLONE_CONFIG_PEER_PORT": str(self.port),
                "RCLONE_CONFIG_PEER_USER": self.user,
                "RCLONE_CONFIG_PEER_KEY_FILE": str(self.key.private),
                "RCLONE_CONFIG_PEER_KNOWN_HOSTS_FILE": str(self.known_hosts),
            }
        )
        if self.server == "proftpd":
            # rclone's default probes the server for a shell to run md5sum in; ProFTPD accepts the
            # probe, then fails the command, and rclone fails the copy ("md5 hash differ"). Telling
            # it there is no shell is the one setting it needs against this server.
            env["RCLONE_CONFIG_PEER_SHELL_TYPE"] = "none"
        return self._timed(["rclone", "copy", "-q", f"peer:{remote}", str(local_dir)], env=env)

    # ---- ours: a real Airflow task, its XCom seconds ----

    def _dag_run(self, make_task: Callable[[], Any]) -> tuple[dict[str, Any], float, float]:
        """Run a one-task DAG with ``dag.test()``; return the XCom, its CPU seconds and wall seconds."""
        from airflow.providers.common.compat.sdk import DAG

        from tests.support.airflow_env import run_dag_test, xcom_return

        self.dag_count += 1
        with DAG(
            f"bench_peers_{self.dag_count}",
            schedule=None,
            start_date=dt.datetime(2026, 1, 1),
            catchup=False,
        ) as dag:
            make_task()
        before = self_cpu() + children_cpu()
        started = time.monotonic()
        with contextlib.redirect_stdout(sys.stderr):  # the task log, not the report
            dag_run = run_dag_test(dag)
        wall = time.monotonic() - started
        cpu = self_cpu() + children_cpu() - before
        if str(dag_run.state) != "success":
            raise RuntimeError(f"the Airflow task ended {dag_run.state}")
        result = xcom_return(dag.dag_id, dag_run.run_id, "fetch")
        return (result if isinstance(result, dict) else {}), cpu, wall

    def dag_overhead(self) -> tuple[float, float]:
        """CPU and wall seconds of ``dag.test()`` around an empty task, measured as ours is."""
        from airflow.providers.common.compat.sdk import BaseOperator

        class Nothing(BaseOperator):
            def execute(self, context: Any) -> None:
                return None

        _, cpu, wall = self._dag_run(lambda: Nothing(task_id="fetch"))
        return cpu, wall

    def ours(self, remote: Path, local: Path, *, directory: bool = False) -> Run:
        from airflow_provider_sftp_resume.operators import (
            ResumableSFTPDirectoryDownloadOperator,
            ResumableSFTPDownloadOperator,
        )

        def task() -> Any:
            if directory:
                return ResumableSFTPDirectoryDownloadOperator(
                    task_id="fetch", sftp_conn_id=CONN_ID, remote_path=str(remote), local_dir=str(local)
                )
            return ResumableSFTPDownloadOperator(
                task_id="fetch", sftp_conn_id=CONN_ID, remote_path=str(remote), local_path=str(local)
            )

        before_server = server_cpu(self.pids[self.server])
        result, cpu, wall = self._dag_run(task)
        wait_sessions_reaped(self.pids[self.server])
        note: dict[str, Any] = {"dag_test_wall": round(wall, 3)}
        if not directory:
            note["first_byte_seconds"] = result.get("first_byte_seconds")
        return Run(
            float(result["seconds"]), 0.0, cpu, server_cpu(self.pids[self.server]) - before_server, note
        )


def tools_for(case: Case, peers: Peers, src: Path) -> dict[str, Callable[[], Run]]:
    """The tools of a case, each a function that runs once into a fresh output directory."""
    if case.files:

        def sftp_dir() -> Run:
            return peers.sftp(src, peers.fresh_out() / "dir", directory=True)

        def mirror() -> Run:
            return peers.lftp(f'mirror --parallel=4 "{src}" "{peers.fresh_out() / "dir"}"')

        def rclone_dir() -> Run:
            return peers.rclone(src, peers.fresh_out() / "dir")

        def ours_dir() -> Run:
            return peers.ours(src, peers.fresh_out() / "dir", directory=True)

        return {
            "sftp get -r": sftp_dir,
            "lftp mirror --parallel=4": mirror,
            "rclone copy": rclone_dir,
            "ours": ours_dir,
        }

    def target() -> Path:
        return peers.fresh_out() / "dir" / src.name

    def prepared() -> Path:
        path = target()
        path.parent.mkdir()
        return path

    return {
        "sftp get": lambda: peers.sftp(src, prepared()),
        "lftp get": lambda: peers.lftp(f'get "{src}" -o "{prepared()}"'),
        "lftp pget -n 4": lambda: peers.lftp(f'pget -n 4 "{src}" -o "{prepared()}"'),
        "rclone copy": lambda: peers.rclone(src, target().parent),
        "ours": lambda: peers.ours(src, prepared()),
    }


def check_output(case: Case, peers: Peers, src: Path, expected: dict[str, str]) -> str | None:
    """Compare what the tool wrote with the source, by sha256; return what differs, or ``None``."""
    written = peers.out / "dir"
    got = tree_digests(written) if written.is_dir() else {}
    if got == expected:
        return None
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    differ = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    return f"missing {missing[:3]}, extra {extra[:3]}, sha256 differs {differ[:3]} (of {len(expected)} files)"


def make_source(case: Case, workdir: Path) -> tuple[Path, dict[str, str]]:
    """The case's source file or directory (shared by cases of the same shape) and its digests."""
    if case.files:
        src = workdir / "src" / f"dir-{case.files}x{case.size}"
        src.mkdir(parents=True, exist_ok=True)
        for i in range(case.files):
            path = src / f"part-{i:04d}.bin"
            if not path.exists():
                path.write_bytes(os.urandom(case.size))
        return src, tree_digests(src)
    src = workdir / "src" / f"file-{case.size}.bin"
    src.parent.mkdir(parents=True, exist_ok=True)
    make_file(src, case.size)
    return src, {src.name: sha256_of(src)}


def run_case(case: Case, peers: Peers, workdir: Path, log: Callable[[str], None]) -> dict[str, ToolSeries]:
    src, expected = make_source(case, workdir)
    proxy = (
        LatencyProxy(peers.servers[case.server].info.port, rtt=case.rtt_ms / 1000) if case.rtt_ms else None
    )
    try:
        if proxy:
            peers.keep_children.add(proxy.process.pid)
        peers.route(case.server, proxy.port if proxy else peers.servers[case.server].info.port)
        tools = tools_for(case, peers, src)
        names = list(tools)
        series = {name: ToolSeries() for name in names}
        for round_index in range(case.runs):
            shift = round_index % len(names)  # rotate the order: no tool always runs first
            for name in names[shift:] + names[:shift]:
                log(f"  {case.name} round {round_index + 1}/{case.runs}: {name}")
                try:
                    run = tools[name]()
                except Exception as exc:
                    series[name].failures.append(f"{type(exc).__name__}: {exc}")
                    log(f"    FAILED: {exc}")
                    continue
                problem = check_output(case, peers, src, expected)
                if problem is not None:
                    series[name].failures.append(f"output differs from the source: {problem}")
                    log(f"    OUTPUT DIFFERS: {problem}")
                    continue
                run.rate = (case.files / run.seconds) if case.files else case.total_bytes / run.seconds / MB
                series[name].runs.append(run)
                log(f"    {run.rate:.1f} {case.unit} in {run.seconds:.2f} s")
    finally:
        if proxy:
            proxy.stop()
            peers.keep_children.discard(proxy.process.pid)
        shutil.rmtree(peers.out, ignore_errors=True)
    return series


@dataclass
class Verdict:
    best_peer: str
    best: float
    ratio: float
    floor: str
    met: str


def verdict(case: Case, series: dict[str, ToolSeries], *, check_floors: bool) -> Verdict:
    peers = {name: s.median for name, s in series.items() if name != "ours" and s.runs}
    best_peer = max(peers, key=lambda n: peers[n]) if peers else "-"
    best = peers.get(best_peer, float("nan"))
    ours = series["ours"].median
    ratio = ours / best if peers else float("nan")
    if case.absolute_floor is not None:
        floor = f"ours >= {case.absolute_floor:g} MB/s (1.5 x today's {PROFTPD_TODAY_MB_S:g})"
        passed = ours >= case.absolute_floor
    elif case.floor is not None:
        floor = f">= {case.floor:g}"
        passed = ratio >= case.floor
    else:
        return Verdict(best_peer, best, ratio, "-", "n/a")
    met = "n/a (--quick)" if not check_floors else ("yes" if passed else "**no**")
    return Verdict(best_peer, best, ratio, floor, met)


def render(
    cases: list[Case],
    table: dict[str, dict[str, ToolSeries]],
    meta: dict[str, Any],
    *,
    check_floors: bool,
) -> str:
    load_before, load_after = meta["loadavg_before"], meta["loadavg_after"]
    lines = [
        f"Peers side by side (issue 14), {meta['date']}, commit {meta['commit']}; "
        f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
        f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}; {os.cpu_count()} cores.",
        "",
        "Median of the rounds (min-max), tools alternating inside each round, connect included for "
        "every tool (CLI tools: process wall time; ours: the Airflow task's XCom `seconds`, whose clock "
        "starts before the lock and the SSH connect); every output checked by sha256. MB/s (10^6 "
        "bytes), files/s for the directory.",
        "",
        "| case | tool | median (min-max) | runs |",
        "|---|---|---|---|",
    ]
    for case in cases:
        for name, series in table[case.name].items():
            lines.append(f"| {case.title} | {name} | {series.cell()} {case.unit} | {len(series.runs)} |")
    lines += [
        "",
        "| case | best peer | ours | ours / best | floor (issue 14) | met |",
        "|---|---|---|---|---|---|",
    ]
    for case in cases:
        v = verdict(case, table[case.name], check_floors=check_floors)
        lines.append(
            f"| {case.title} | {v.best_peer} {v.best:.1f} | {table[case.name]['ours'].median:.1f} "
            f"| {v.ratio:.2f} | {v.floor} | {v.met} |"
        )
    overhead_cpu, overhead_wall = meta["dag_test_overhead"]
    lines += [
        "",
        "CPU seconds per run, median: client / server (and per GiB moved). Client: the CLI tool and "
        "its children; ours: the benchmark process running `dag.test()` (an empty task costs "
        f"{overhead_cpu:.2f} s CPU, {overhead_wall:.2f} s wall, measured the same way). Server: the "
        "`sshd` or `proftpd` listener and the session processes it reaped.",
        "",
        "| case | tool | client / server CPU s |",
        "|---|---|---|",
    ]
    for case in cases:
        for name, series in table[case.name].items():
            lines.append(f"| {case.title} | {name} | {series.cpu_cell(case)} |")
    firsts = {
        case.title: [r.note.get("first_byte_seconds") for r in table[case.name]["ours"].runs]
        for case in cases
        if not case.files
    }
    lines += ["", "Ours, seconds from the start of the try to the first byte (connect included):", ""]
    lines += [f"- {title}: {values}" for title, values in firsts.items()]
    failures = [
        f"- {case.title}, {name}: {failure}"
        for case in cases
        for name, series in table[case.name].items()
        for failure in series.failures
    ]
    if failures:
        lines += ["", "Failures:", "", *failures]
    raw = {
        "meta": meta,
        "cases": {
            case.name: {
                "case": asdict(case),
                "tools": {
                    name: {"runs": [asdict(r) for r in s.runs], "failures": s.failures}
                    for name, s in table[case.name].items()
                },
            }
            for case in cases
        },
    }
    lines += ["", "Raw figures:", "", "```json", json.dumps(raw), "```"]
    return "\n".join(lines) + "\n"


def airflow_db() -> None:
    """Migrate the private metadata DB (``airflow db migrate``), as the end-to-end tests do."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )


def commit() -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    names = [case.name for case in CASES]
    parser.add_argument(
        "--case", action="append", choices=names, help="run only this case (repeatable); default all"
    )
    parser.add_argument("--runs", type=int, help="rounds per case (default: the case's, 5 or 3)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="CI smoke: small sizes, one round, no floors; fails only on a tool failure or a sha256 mismatch",
    )
    parser.add_argument("--output", type=Path, help="also write the Markdown report here")
    args = parser.parse_args()
    for tool in ("sftp", "ssh", "lftp", "rclone"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed (Debian: apt-get install openssh-client lftp rclone)")
    cases = [case for case in CASES if args.case is None or case.name in args.case]
    if args.quick:
        cases = [quick_case(case) for case in cases]
    if args.runs is not None:
        if args.runs < 1:
            parser.error("--runs must be at least 1")
        cases = [replace(case, runs=args.runs) for case in cases]

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    become_subreaper()
    workdir = Path(tempfile.mkdtemp(prefix="sftp-resume-peers-"))
    meta: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit(),
        "loadavg_before": os.getloadavg(),
        "quick": args.quick,
        "versions": tool_versions(),
        "proftpd_today_mb_s": PROFTPD_TODAY_MB_S,
    }
    table: dict[str, dict[str, ToolSeries]] = {}
    configure_airflow(workdir / "airflow")
    peers = None
    try:
        log("airflow db migrate ...")
        airflow_db()
        peers = Peers(workdir, need_proftpd=any(case.server == "proftpd" for case in cases))
        peers.route("openssh", peers.servers["openssh"].info.port)
        peers.dag_overhead()  # the first dag.test() imports and sets up what the others reuse
        meta["dag_test_overhead"] = peers.dag_overhead()
        for case in cases:
            log(f"{case.name}: {case.title}, {case.runs} round(s) ...")
            table[case.name] = run_case(case, peers, workdir, log)
    finally:
        if peers is not None:
            peers.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    meta["loadavg_after"] = os.getloadavg()

    report = render(cases, table, meta, check_floors=not args.quick)
    print(report)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report)
    failed = any(s.failures or not s.runs for row in table.values() for s in row.values())
    if failed or args.quick:
        return 1 if failed else 0
    verdicts = [verdict(case, table[case.name], check_floors=True) for case in cases]
    return 0 if all(v.met in ("yes", "n/a") for v in verdicts) else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
