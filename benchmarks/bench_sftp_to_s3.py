"""
SFTP to S3 benchmark: ``ResumableSFTPToS3Operator`` against the stock ``SFTPToS3Operator``.

One command (from the repository root, after ``scripts/bootstrap.sh``)::

    .venv/bin/python benchmarks/bench_sftp_to_s3.py            # full run, about 10 minutes
    .venv/bin/python benchmarks/bench_sftp_to_s3.py --quick    # smoke test (CI): small file, RTT 0

It starts a private OpenSSH ``sshd`` on 127.0.0.1, the fault proxy of the test support code in
front of it (20 ms round trip by default; it counts the bytes it forwards) and a moto S3 server,
migrates a throwaway SQLite metadata DB, and then runs every transfer **as a real Airflow task**:
``dag.test()`` of a one-task DAG, in a fresh Python process with its own empty ``TMPDIR``, ``HOME``
and working directory, both operators reading the same ``sftp`` connection (compression off) and
the same ``aws`` connection (``endpoint_url`` = the moto server). Measured:

- **speed**: the duration of the operator's ``execute()`` inside the task (both operators build
  their hooks there: connect, transfer, completion of the upload; not the ~5-10 s dag.test() itself
  spends around the task starting an in-process API server), for ours and the stock operator
  with ``use_temp_file=True`` and ``False``, interleaved rounds on a 256 MiB file; the ratio to
  the faster stock mode;
- **a cut at 50 % and a retry**: the transfer process is killed (SIGKILL, by PID) once half the
  file has passed the proxy, then the retry runs in a new process with new empty directories; the
  proxy's count of SFTP bytes (server to client) during the retry, ours against the faster stock mode;
- **local disk**: the bytes in the process's ``TMPDIR``, ``HOME`` and working directory, sampled
  every 50 ms during each try and once after it;
- **memory**: the peak RSS (``ru_maxrss``) of the process that ran the task, 256 MiB against a
  2 GiB file, for ours.

Every object is checked afterwards: its sha256 equals the source's. The load average is printed
before and after. Exit status 1 when a floor of the issue is missed (not in ``--quick``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MiB = 1024 * 1024
MB = 1_000_000
SFTP_CONN_ID = "sftp_bench"
S3_CONN_ID = "s3_bench"
BUCKET = "bench"
STATE_PREFIX = "_sftp_resume/"  # our operator's default state prefix
MODES = ("ours", "stock-temp", "stock-stream")
LABELS = {
    "ours": "ResumableSFTPToS3Operator",
    "stock-temp": "SFTPToS3Operator(use_temp_file=True)",
    "stock-stream": "SFTPToS3Operator(use_temp_file=False)",
}
#: Floors from issue 12.
SPEED_FLOOR = 1.5  # ours / the faster stock mode
RETRY_FLOOR = 0.6  # at most this fraction of the file moved over SFTP by ours' retry
RSS_FLOOR_MIB = 64.0  # peak RSS for 2 GiB within this of the peak for 256 MiB
SAMPLE_SECONDS = 0.05


# -- the task, in its own process ---------------------------------------------------------------


def run_task(spec: dict[str, Any]) -> None:
    """``--task``: run one transfer as an Airflow task with ``dag.test()``; print ``RESULT {json}``."""
    import logging
    import resource
    from datetime import datetime

    from airflow.providers.common.compat.sdk import DAG

    from tests.support.airflow_env import run_dag_test, task_instance, xcom_return

    logging.getLogger("paramiko").setLevel(logging.WARNING)
    mode = spec["mode"]
    if mode == "ours":
        from airflow_provider_sftp_resume.transfers.sftp_to_s3 import ResumableSFTPToS3Operator as operator
    else:
        from airflow.providers.amazon.aws.transfers.sftp_to_s3 import SFTPToS3Operator as operator
    timings: list[float] = []

    def execute(self: Any, context: Any) -> Any:
        # Both operators build their hooks inside execute(): this is connect + transfer + completion.
        started = time.monotonic()
        try:
            return operator.execute(self, context)
        finally:
            timings.append(time.monotonic() - started)

    timed = type(operator.__name__, (operator,), {"execute": execute})
    with DAG(dag_id=spec["dag_id"], schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        if mode == "ours":
            timed(
                task_id="copy",
                sftp_conn_id=SFTP_CONN_ID,
                sftp_path=spec["sftp_path"],
                s3_conn_id=S3_CONN_ID,
                s3_bucket=BUCKET,
                s3_key=spec["key"],
            )
        else:
            timed(
                task_id="copy",
                sftp_conn_id=SFTP_CONN_ID,
                sftp_path=spec["sftp_path"],
                aws_conn_id=S3_CONN_ID,
                s3_bucket=BUCKET,
                s3_key=spec["key"],
                use_temp_file=mode == "stock-temp",
            )
    dag_run = run_dag_test(dag)
    ti = task_instance(dag_run, "copy")
    result = xcom_return(dag.dag_id, dag_run.run_id, "copy")
    rusage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        "RESULT "
        + json.dumps(
            {
                "state": str(ti.state),
                "seconds": timings[-1] if timings else None,
                "ti_duration": ti.duration,
                "maxrss_mib": rusage.ru_maxrss / 1024,
                "xcom": result if isinstance(result, dict) else None,
            },
            default=str,
        ),
        flush=True,
    )


# -- the harness --------------------------------------------------------------------------------


@dataclass
class Try:
    """One task process: what Airflow recorded, what the proxy counted, what the disk held."""

    mode: str
    state: str
    seconds: float
    sftp_bytes: int
    maxrss_mib: float
    disk_peak_bytes: int
    disk_after_bytes: int
    xcom: dict[str, Any] | None
    killed: bool = False


@dataclass
class Series:
    tries: list[Try] = field(default_factory=list)

    @property
    def median_seconds(self) -> float:
        return statistics.median(t.seconds for t in self.tries) if self.tries else float("nan")

    def cell(self, size: int) -> str:
        rates = [size / t.seconds / MB for t in self.tries]
        if len(rates) == 1:
            return f"{self.tries[0].seconds:.1f} s ({rates[0]:.1f} MB/s)"
        secs = [t.seconds for t in self.tries]
        return (
            f"{self.median_seconds:.1f} s ({min(secs):.1f}-{max(secs):.1f}); "
            f"{size / self.median_seconds / MB:.1f} MB/s"
        )


def make_file(path: Path, size: int) -> str:
    """Write ``size`` bytes of random data (an 8 MiB random block repeated); return its sha256."""
    digest = hashlib.sha256()
    block = os.urandom(8 * MiB)
    with open(path, "wb") as handle:
        left = size
        while left:
            chunk = block[: min(left, len(block))]
            handle.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def dir_bytes(roots: list[Path]) -> int:
    """Bytes of all files under ``roots`` (files vanishing meanwhile count as 0)."""
    total = 0
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.stat(os.path.join(dirpath, name)).st_size
    return total


class DiskSampler:
    """Sample the bytes under ``roots`` every 50 ms in a thread; :meth:`stop` returns the peak."""

    def __init__(self, roots: list[Path]) -> None:
        self.roots = roots
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="disk-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(SAMPLE_SECONDS):
            self.peak = max(self.peak, dir_bytes(self.roots))

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return max(self.peak, dir_bytes(self.roots))


class Bench:
    """The servers, the proxy and the Airflow home shared by every try of one benchmark run."""

    def __init__(self, workdir: Path, rtt: float) -> None:
        from tests.support.airflow_env import connection_json
        from tests.support.faultproxy import FaultProxy
        from tests.support.keys import make_key
        from tests.support.s3 import REGION, TEST_CREDENTIALS, MotoServer
        from tests.support.servers import OpenSSHServer

        self.workdir = workdir
        self.runs = 0
        client_key = make_key(workdir / "keys" / "id_ed25519")
        self.sshd = OpenSSHServer(workdir / "sshd", client_key)
        self.moto = MotoServer.start()
        # In this process: the tasks run in processes of their own, so it shares no GIL with them.
        self.proxy = FaultProxy(self.sshd.info.port, rtt=rtt)
        self.s3 = self.moto.client()
        self.s3.create_bucket(Bucket=BUCKET)
        home = workdir / "airflow"
        dags = workdir / "no-dags"
        dags.mkdir()
        aws = {
            "conn_type": "aws",
            "login": TEST_CREDENTIALS["aws_access_key_id"],
            "password": TEST_CREDENTIALS["aws_secret_access_key"],
            "extra": {"endpoint_url": self.moto.endpoint_url, "region_name": REGION},
        }
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_"))}
        self.env.update(
            {
                "PYTHONPATH": str(ROOT),
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
                "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
                f"AIRFLOW_CONN_{SFTP_CONN_ID.upper()}": connection_json(
                    self.sshd.info, port=self.proxy.port, compress="false"
                ),
                f"AIRFLOW_CONN_{S3_CONN_ID.upper()}": json.dumps(aws),
            }
        )
        home.mkdir()
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
            cwd=home,
        )

    def stop(self) -> None:
        self.proxy.stop()
        self.moto.stop()
        self.sshd.stop()

    def clear_bucket(self) -> None:
        """Delete every object and abort every multipart upload: each try starts from nothing."""
        for upload in self.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []):
            self.s3.abort_multipart_upload(Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"])
        for item in self.s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
            self.s3.delete_object(Bucket=BUCKET, Key=item["Key"])

    def object_sha256(self, key: str) -> str:
        body = self.s3.get_object(Bucket=BUCKET, Key=key)["Body"]
        digest = hashlib.sha256()
        for chunk in iter(lambda: body.read(8 * MiB), b""):
            digest.update(chunk)
        return digest.hexdigest()

    def leftovers(self, key: str) -> list[str]:
        """Multipart uploads in progress and resume state objects left in the bucket."""
        found = [
            f"upload {u['Key']}" for u in self.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
        ]
        state = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=STATE_PREFIX).get("Contents", [])
        return found + [f"state {item['Key']}" for item in state]

    def run(self, mode: str, src: Path, key: str, *, kill_at: int | None = None) -> Try:
        """
        Run one try of ``mode`` copying ``src`` to ``key`` in a fresh process with fresh directories.

        :param kill_at: SIGKILL the process once the proxy has forwarded this many more bytes
        """
        self.runs += 1
        private = self.workdir / "tries" / f"{self.runs:02d}-{mode}"
        dirs = [private / "tmp", private / "home", private / "work"]
        for path in dirs:
            path.mkdir(parents=True)
        env = dict(self.env, TMPDIR=str(dirs[0]), HOME=str(dirs[1]))
        spec = {"mode": mode, "sftp_path": str(src), "key": key, "dag_id": f"bench_{mode.replace('-', '_')}"}
        before = self.proxy.server_to_client
        sampler = DiskSampler(dirs)
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--task", json.dumps(spec)],
            env=env,
            cwd=dirs[2],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        killed = False
        if kill_at is not None:
            while process.poll() is None and self.proxy.server_to_client - before < kill_at:
                time.sleep(0.005)
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                killed = True
        out, _ = process.communicate()
        sftp_bytes = self.proxy.server_to_client - before
        peak = sampler.stop()
        after = dir_bytes(dirs)
        shutil.rmtree(private, ignore_errors=True)
        if killed:
            return Try(mode, "killed", float("nan"), sftp_bytes, float("nan"), peak, after, None, killed=True)
        lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
        if not lines:
            raise RuntimeError(f"{mode}: the task process printed no result (exit {process.returncode})")
        result = json.loads(lines[-1][len("RESULT ") :])
        if result["state"] != "success":
            raise RuntimeError(f"{mode}: the task ended {result['state']}")
        return Try(
            mode,
            result["state"],
            float(result["seconds"]),
            sftp_bytes,
            float(result["maxrss_mib"]),
            peak,
            after,
            result["xcom"],
        )

    def checked(self, mode: str, src: Path, sha256: str, key: str, **kwargs: Any) -> Try:
        """:meth:`run` on an empty bucket, then check the object's sha256 and that nothing is left."""
        self.clear_bucket()
        done = self.run(mode, src, key, **kwargs)
        self.verify(done, key, sha256)
        return done

    def verify(self, done: Try, key: str, sha256: str) -> None:
        if self.object_sha256(key) != sha256:
            raise RuntimeError(f"{done.mode}: the object's sha256 is not the source's")
        if done.mode == "ours" and self.leftovers(key):
            raise RuntimeError(f"ours left {self.leftovers(key)} in the bucket")


def cut_and_retry(bench: Bench, mode: str, src: Path, sha256: str, key: str) -> dict[str, Any]:
    """Kill a try once half the file has passed the proxy (slowed to ~8 s per file), then retry."""
    size = src.stat().st_size
    bench.clear_bucket()
    bench.proxy.set_rate(max(size / 8, 1 * MiB))
    try:
        first = bench.run(mode, src, key, kill_at=size // 2)
    finally:
        bench.proxy.set_rate(None)
    if not first.killed:
        raise RuntimeError(f"{mode}: the try ended before the cut at 50 %")
    retry = bench.run(mode, src, key)
    bench.verify(retry, key, sha256)
    return {
        "first_sftp_bytes": first.sftp_bytes,
        "retry_sftp_bytes": retry.sftp_bytes,
        "resumed_from": (retry.xcom or {}).get("resumed_from", 0),
        "retry_xcom": {k: (retry.xcom or {}).get(k) for k in ("bytes_transferred", "part_size", "parts")},
        "retry_seconds": retry.seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task", help=argparse.SUPPRESS)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--big-mib", type=int, default=2048, help="file for the memory figure")
    parser.add_argument("--rtt-ms", type=float, default=20.0, help="round trip added by the proxy")
    parser.add_argument("--runs", type=int, default=3, help="interleaved rounds of the speed comparison")
    parser.add_argument("--stream-runs", type=int, default=1, help="rounds of the (slow) streaming mode")
    parser.add_argument("--quick", action="store_true", help="smoke test: 16 MiB, RTT 0, one run, no 2 GiB")
    parser.add_argument("--output", type=Path, help="also write the Markdown report here")
    parser.add_argument(
        "--probe",
        action="store_true",
        help="CPU seconds and wall time per side, without Airflow, alternating (see benchmarks/s3_probe.py)",
    )
    parser.add_argument(
        "--probe-modes",
        default="ours,boto3,stock-temp",
        help="comma-separated, alternating: ours, ours-old (needs --baseline), boto3, stock-temp",
    )
    parser.add_argument("--baseline", type=Path, help="--probe: a checkout of the old code, for ours-old")
    parser.add_argument("--checksum", default="SHA256", help="--probe: ours' s3_checksum knob")
    args = parser.parse_args()
    if args.task:
        run_task(json.loads(args.task))
        return 0
    if args.probe:
        from benchmarks.s3_probe import run_probe

        report = run_probe(
            args.size_mib,
            args.rtt_ms,
            rounds=args.runs,
            modes=args.probe_modes.split(","),
            baseline=args.baseline,
            checksum=args.checksum,
        )
        print(report)
        if args.output:
            args.output.write_text(report)
        return 0
    if args.quick:
        args.size_mib, args.rtt_ms, args.runs, args.stream_runs = 16, 0.0, 1, 1

    load_before = os.getloadavg()
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="sftp-resume-bench-s3-"))
    figures: dict[str, Any] = {}
    try:
        print("servers and Airflow DB ...", file=sys.stderr, flush=True)
        bench = Bench(workdir, rtt=args.rtt_ms / 1000)
        try:
            src = workdir / "src.bin"
            sha256 = make_file(src, args.size_mib * MiB)
            key = "landing/src.bin"
            series = {mode: Series() for mode in MODES}
            for round_number in range(args.runs):
                for mode in MODES:
                    if mode == "stock-stream" and round_number >= args.stream_runs:
                        continue
                    print(f"round {round_number + 1}: {mode} ...", file=sys.stderr, flush=True)
                    series[mode].tries.append(bench.checked(mode, src, sha256, key))
            figures["series"] = series
            faster = min(("stock-temp", "stock-stream"), key=lambda m: series[m].median_seconds)
            figures["faster_stock"] = faster
            figures["cut"] = {}
            for mode in ("ours", faster) if not args.quick else ("ours",):
                print(f"cut at 50 % and retry: {mode} ...", file=sys.stderr, flush=True)
                figures["cut"][mode] = cut_and_retry(bench, mode, src, sha256, key)
            if not args.quick:
                print(f"memory: ours on {args.big_mib} MiB ...", file=sys.stderr, flush=True)
                src.unlink()
                big = workdir / "big.bin"
                big_sha256 = make_file(big, args.big_mib * MiB)
                figures["big"] = bench.checked("ours", big, big_sha256, "landing/big.bin")
                bench.clear_bucket()
        finally:
            bench.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    figures["load"] = (load_before, os.getloadavg())
    figures["minutes"] = (time.monotonic() - started) / 60
    report, met = render(figures, args)
    print(report)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report)
    return 0 if met or args.quick else 1


def render(figures: dict[str, Any], args: argparse.Namespace) -> tuple[str, bool]:
    """The Markdown report, and whether every floor was met."""
    size = args.size_mib * MiB
    series: dict[str, Series] = figures["series"]
    faster = figures["faster_stock"]
    ours = series["ours"]
    speedup = series[faster].median_seconds / ours.median_seconds
    command = "benchmarks/bench_sftp_to_s3.py" + (" --quick" if args.quick else "")
    lines = [
        f"`{command}`: file {args.size_mib} MiB, RTT {args.rtt_ms:g} ms (fault proxy), moto S3 server; "
        f"every transfer a real Airflow task (`dag.test()`) in a fresh process with empty TMPDIR/HOME; "
        f"seconds = the operator's execute() (connect, transfer, completion; not dag.test()'s own "
        "start-up); median of "
        f"{args.runs} interleaved rounds (streaming mode: {min(args.stream_runs, args.runs)}), "
        "min-max in brackets.",
        "",
        "| operator | seconds; throughput | SFTP bytes / file size | peak RSS | local disk during / after |",
        "|---|---|---|---|---|",
    ]
    for mode in MODES:
        tries = series[mode].tries
        rss = max(t.maxrss_mib for t in tries)
        disk_peak = max(t.disk_peak_bytes for t in tries)
        disk_after = max(t.disk_after_bytes for t in tries)
        lines.append(
            f"| {LABELS[mode]} | {series[mode].cell(size)} | {max(t.sftp_bytes for t in tries) / size:.3f} "
            f"| {rss:.0f} MiB | "
            f"{disk_peak / MiB:.1f} MiB / {disk_after / MiB:.1f} MiB |"
        )
    met_speed = speedup >= SPEED_FLOOR
    lines += [
        "",
        f"Ours against the faster stock mode ({LABELS[faster]}): **{speedup:.2f}x** "
        f"(floor {SPEED_FLOOR:g}x: {'met' if met_speed else 'NOT met'}).",
        "",
        "Cut at 50 % (the task process killed once half the file had passed the proxy), then a retry "
        "in a new process with empty directories; SFTP bytes counted at the proxy:",
        "",
        "| operator | try 1 (killed) | retry | retry / file size | resumed from |",
        "|---|---|---|---|---|",
    ]
    met_retry = True
    for mode, cut in figures["cut"].items():
        fraction = cut["retry_sftp_bytes"] / size
        if mode == "ours":
            met_retry = fraction <= RETRY_FLOOR
        lines.append(
            f"| {LABELS[mode]} | {cut['first_sftp_bytes'] / MiB:.1f} MiB "
            f"| {cut['retry_sftp_bytes'] / MiB:.1f} MiB | {fraction:.2f} "
            f"| {cut['resumed_from'] / MiB:.1f} MiB |"
        )
    lines += ["", f"Ours' retry moves ≤ {RETRY_FLOOR:g} x the file: {'met' if met_retry else 'NOT met'}."]
    met_disk = all(t.disk_peak_bytes == 0 and t.disk_after_bytes == 0 for t in ours.tries)
    met_rss = True
    if "big" in figures:
        big: Try = figures["big"]
        mid = max(t.maxrss_mib for t in ours.tries)
        met_rss = big.maxrss_mib - mid <= RSS_FLOOR_MIB
        met_disk = met_disk and big.disk_peak_bytes == 0 and big.disk_after_bytes == 0
        lines += [
            "",
            f"Peak RSS of the task process, ours: {mid:.0f} MiB for {args.size_mib} MiB, "
            f"{big.maxrss_mib:.0f} MiB for {args.big_mib} MiB ({big.seconds:.1f} s, "
            f"{args.big_mib * MiB / big.seconds / MB:.1f} MB/s): {big.maxrss_mib - mid:+.0f} MiB "
            f"(floor ≤ {RSS_FLOOR_MIB:g} MiB: {'met' if met_rss else 'NOT met'}); local disk during / after: "
            f"{big.disk_peak_bytes / MiB:.1f} / {big.disk_after_bytes / MiB:.1f} MiB.",
        ]
    lines += [
        "",
        f"Ours wrote nothing to local disk (TMPDIR, HOME, working dir; sampled every "
        f"{SAMPLE_SECONDS * 1000:.0f} ms): {'yes' if met_disk else 'NO'}.",
    ]
    load_before, load_after = figures["load"]
    lines += [
        "",
        f"Load average (1, 5, 15 min) before: {' '.join(f'{x:.2f}' for x in load_before)}; "
        f"after: {' '.join(f'{x:.2f}' for x in load_after)} (2 cores, shared); "
        f"the run took {figures['minutes']:.1f} min.",
    ]
    raw = {mode: [t.seconds for t in series[mode].tries] for mode in MODES}
    lines += ["", "```", json.dumps({"seconds": raw, "cut": figures["cut"]}), "```"]
    return "\n".join(lines) + "\n", met_speed and met_retry and met_disk and met_rss


if __name__ == "__main__":
    sys.exit(main())
