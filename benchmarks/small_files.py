"""
Files per second for a directory of many small files, through the latency proxy, A/B between trees.

Starts a throwaway OpenSSH sshd and a latency-only fault proxy (its own process), writes ``--files``
files of ``--size`` bytes, then mirrors them with ``download_selection`` (the directory operator's
engine, with its default options) once per run, alternating the code trees given with ``--tree``
(each run is a fresh process with that tree first on ``PYTHONPATH``). Every run's output is checked
by sha256. Prints files/s, wall time / RTT, and CPU seconds of the client process and of sshd (its
reaped session processes) per run: CPU is what load on a shared machine does not change.

    .venv/bin/python benchmarks/small_files.py --tree /work/main --tree . [--runs 2] [--rtt 0.02]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KiB = 1024

CHILD = r"""
import asyncio, json, resource, sys, time
from pathlib import Path
from airflow_provider_sftp_resume.core.remote.sftp import SFTPSessionFactory
from airflow_provider_sftp_resume.core.remote.ssh import SSHEndpoint
from airflow_provider_sftp_resume.core.transfers.batch import download_selection
from airflow_provider_sftp_resume.core.transfers.download import DownloadOptions
from airflow_provider_sftp_resume.core.transfers.selection import RemoteSelection
spec = json.loads(sys.argv[1])
endpoint = SSHEndpoint(host="127.0.0.1", port=spec["port"], username=spec["user"],
    client_keys=(spec["key"],), trusted_host_keys=(spec["host_key"],), use_default_keys=False)
kwargs = {} if spec["concurrency"] is None else {"concurrency": spec["concurrency"]}
before = resource.getrusage(resource.RUSAGE_SELF)
started = time.monotonic()
result = asyncio.run(download_selection(SFTPSessionFactory(endpoint, attempts=1),
    RemoteSelection.parse(spec["remote"]), Path(spec["local"]), DownloadOptions(), **kwargs))
seconds = time.monotonic() - started
after = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": seconds, "files": len(result.files),
    "cpu": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
    "statuses": sorted({f.status for f in result.files})}))
"""


def _children_cpu(pid: int) -> float:
    """CPU seconds of the reaped children of ``pid`` (sshd's finished sessions)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from tests.conftest import write_random
    from tests.support.keys import make_key
    from tests.support.servers import OpenSSHServer

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tree", action="append", required=True, help="a code tree (repeat for A/B)")
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--size", type=int, default=256 * KiB)
    parser.add_argument("--rtt", type=float, default=0.02)
    parser.add_argument("--runs", type=int, default=2, help="runs per tree, alternating")
    parser.add_argument(
        "--concurrency", type=int, action="append", help="default: the engine's; repeat to alternate"
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="small-files-"))
    key = make_key(workdir / "keys" / "id_ed25519")
    server = OpenSSHServer(workdir / "sshd", key)
    proxy = subprocess.Popen(
        [sys.executable, "-m", "tests.support.faultproxy", "--target-port", str(server.info.port),
         "--rtt", str(args.rtt)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proxy.stdout is not None
        port = int(proxy.stdout.readline())
        remote = workdir / "outgoing"
        remote.mkdir()
        digests = {
            f"f{i:04d}.bin": write_random(remote / f"f{i:04d}.bin", args.size, seed=i)
            for i in range(args.files)
        }
        sshd_pid = server._process.pid
        child = workdir / "mirror_once.py"
        child.write_text(CHILD)
        for run in range(args.runs):
            for tree, concurrency in [(t, c) for t in args.tree for c in args.concurrency or [None]]:
                local = workdir / "mirror"
                shutil.rmtree(local, ignore_errors=True)
                spec = {
                    "port": port,
                    "user": server.info.username,
                    "key": str(key.private),
                    "host_key": server.info.host_key.public_line,
                    "remote": str(remote),
                    "local": str(local),
                    "concurrency": concurrency,
                }
                sshd_before = _children_cpu(sshd_pid)
                env = {**os.environ, "PYTHONPATH": str(Path(tree).resolve())}
                profile = (
                    ["-m", "cProfile", "-o", os.environ["PROFILE_TO"]] if "PROFILE_TO" in os.environ else []
                )
                out = subprocess.run(
                    [sys.executable, *profile, str(child), json.dumps(spec)],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                time.sleep(0.3)  # let sshd reap its sessions
                sshd_cpu = _children_cpu(sshd_pid) - sshd_before
                if out.returncode:
                    print(out.stderr[-3000:])
                    return 1
                figures = json.loads(out.stdout.strip().splitlines()[-1])
                bad = [
                    n for n, d in digests.items() if hashlib.sha256((local / n).read_bytes()).hexdigest() != d
                ]
                print(
                    f"run {run} {tree:12s} c={concurrency or 'default'} "
                    f"{figures['files'] / figures['seconds']:6.1f} files/s  "
                    f"{figures['seconds']:6.2f} s = {figures['seconds'] / (args.rtt or 1):6.0f} RTT  "
                    f"client CPU {figures['cpu']:5.2f} s  sshd CPU {sshd_cpu:5.2f} s  "
                    f"load {os.getloadavg()[0]:.1f}  {figures['statuses']}  sha256 bad: {len(bad)}",
                    flush=True,
                )
                if bad:
                    return 1
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
