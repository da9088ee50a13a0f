"""
The SFTP to S3 probe (``bench_sftp_to_s3.py --probe``): CPU seconds and wall time of each side, A/B.

On a shared machine wall-clock throughput is noise; CPU seconds per file and an alternating A/B in
the same minute are not. This runs, in **fresh processes** without Airflow (so nothing but the copy
is measured), alternately round after round:

- ``ours``: :func:`~airflow_provider_sftp_resume.core.transfers.to_s3.copy_to_s3` from the sshd
  (through the fault proxy, ``--rtt-ms``) into the moto server, with the client configured as the
  operator configures it (:func:`client_config_kwargs` of the code under test);
- ``ours-old``: the same with ``PYTHONPATH`` = ``--baseline`` (a checkout of the code before a change);
- ``boto3``: boto3's ``upload_file`` of the local source file to the same moto server (the S3 half
  alone: what the stock operator's ``use_temp_file=True`` does after its download);
- ``stock-temp``: paramiko ``SFTPClient.get`` through the proxy into a temp file, then ``upload_file``
  (the stock operator's ``use_temp_file=True``, without Airflow around it).

For each try: wall seconds, the CPU seconds of the copying process (``RUSAGE_SELF``: every thread),
of the moto server (``/proc/PID/stat`` utime+stime, before and after) and of sshd (its reaped
session processes: cutime+cstime of the listener), and the peak RSS. Every object is checked (its
sha256 equals the source's) after the measurement.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
MB = 1_000_000
BUCKET = "probe"
KEY = "landing/src.bin"
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int, *, children: bool = False) -> float:
    """CPU seconds of ``pid`` (utime+stime), or of its reaped children (cutime+cstime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    first = 13 if children else 11  # fields 16/17 (cutime, cstime) or 14/15 (utime, stime), 1-based
    return (int(fields[first]) + int(fields[first + 1])) / TICK


# -- one try, in its own process ------------------------------------------------------------------


def child(spec: dict[str, Any]) -> None:
    """``--probe-child``: one copy; print ``PROBE {json}``."""
    import boto3
    from botocore.config import Config

    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    started = time.monotonic()
    mode = spec["mode"]
    if mode.startswith("ours"):
        import asyncio

        from airflow_provider_sftp_resume.core.destinations.s3.calls import S3Target
        from airflow_provider_sftp_resume.core.destinations.s3.settings import (
            UploadSettings,
            client_config_kwargs,
        )
        from airflow_provider_sftp_resume.core.remote.sftp import SFTPSessionFactory
        from airflow_provider_sftp_resume.core.remote.ssh import SSHEndpoint
        from airflow_provider_sftp_resume.core.transfers.to_s3 import copy_to_s3

        client = boto3.client(
            "s3",
            endpoint_url=spec["endpoint_url"],
            region_name="us-east-1",
            config=Config(**client_config_kwargs(spec["checksum"])),
            **credentials,
        )
        opener = SFTPSessionFactory(SSHEndpoint(**spec["endpoint"]), attempts=1)
        settings = UploadSettings(checksum=spec["checksum"])
        result = asyncio.run(
            copy_to_s3(opener, spec["remote_path"], client, S3Target(BUCKET, KEY), settings=settings)
        )
        extra = {"parts": result.parts, "part_size": result.part_size}
    else:
        client = boto3.client("s3", endpoint_url=spec["endpoint_url"], region_name="us-east-1", **credentials)
        source = spec["local_path"]
        if mode == "stock-temp":
            source = os.path.join(tempfile.mkdtemp(), "download")
            _paramiko_get(spec, source)
        client.upload_file(source, BUCKET, KEY)
        extra = {}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        "PROBE "
        + json.dumps(
            {
                "seconds": time.monotonic() - started,
                "cpu": usage.ru_utime + usage.ru_stime,
                "maxrss_mib": usage.ru_maxrss / 1024,
                **extra,
            }
        ),
        flush=True,
    )


def _paramiko_get(spec: dict[str, Any], local: str) -> None:
    import paramiko

    endpoint = spec["endpoint"]
    ssh = paramiko.SSHClient()
    ssh.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    ssh.connect(
        endpoint["host"],
        port=endpoint["port"],
        username=endpoint["username"],
        key_filename=endpoint["client_keys"][0],
        look_for_keys=False,
        allow_agent=False,
    )
    try:
        sftp = ssh.open_sftp()
        sftp.get(spec["remote_path"], local, prefetch=True)
    finally:
        ssh.close()


# -- the harness ----------------------------------------------------------------------------------


def run_probe(
    size_mib: int, rtt_ms: float, *, rounds: int, modes: list[str], baseline: Path | None, checksum: str
) -> str:
    """Start the parts, run ``rounds`` alternating rounds of ``modes``; return a Markdown report."""
    sys.path.insert(0, str(ROOT))
    import boto3  # noqa: F401 - fail early without the amazon extra

    from tests.support.faultproxy import FaultProxy
    from tests.support.keys import make_key
    from tests.support.s3 import MotoServer
    from tests.support.servers import OpenSSHServer

    if "ours-old" in modes and baseline is None:
        raise SystemExit("--probe-modes ours-old needs --baseline DIR (a checkout of the old code)")
    load_before = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="sftp-resume-probe-"))
    sshd = OpenSSHServer(workdir / "sshd", make_key(workdir / "keys" / "id_ed25519"))
    moto = MotoServer.start()
    proxy = FaultProxy(sshd.info.port, rtt=rtt_ms / 1000)
    s3 = moto.client()
    rows: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    try:
        s3.create_bucket(Bucket=BUCKET)
        src = workdir / "src.bin"
        sha256 = _make_file(src, size_mib * MiB)
        info = sshd.info
        spec_base = {
            "endpoint": {
                "host": info.host,
                "port": proxy.port,
                "username": info.username,
                "client_keys": [str(info.client_key.private)],
                "use_default_keys": False,
                "trusted_host_keys": [info.host_key.public_line],
                "connect_timeout": 30.0,
                "keepalive_interval": 0.0,
            },
            "endpoint_url": moto.endpoint_url,
            "remote_path": str(src),
            "local_path": str(src),
            "checksum": checksum,
        }
        for number in range(rounds):
            for mode in modes:
                _clear(s3)
                root = baseline if mode == "ours-old" else ROOT
                row = _one(mode, dict(spec_base, mode=mode), root=root, workdir=workdir, moto=moto, sshd=sshd)
                _check(s3, sha256)
                rows[mode].append(row)
                print(f"round {number + 1} {mode}: {json.dumps(row)}", file=sys.stderr, flush=True)
    finally:
        proxy.stop()
        moto.stop()
        sshd.stop()
    return _render(
        rows,
        size_mib=size_mib,
        rtt_ms=rtt_ms,
        rounds=rounds,
        checksum=checksum,
        load_before=load_before,
        baseline=baseline,
    )


def _one(
    mode: str, spec: dict[str, Any], *, root: Path | None, workdir: Path, moto: Any, sshd: Any
) -> dict[str, Any]:
    private = Path(tempfile.mkdtemp(dir=workdir, prefix=f"{mode}-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_"))}
    env.update(PYTHONPATH=str(root), TMPDIR=str(private), HOME=str(private))
    moto_pid, sshd_pid = moto.process.pid, sshd._process.pid
    moto_before, sshd_before = proc_cpu(moto_pid), proc_cpu(sshd_pid, children=True)
    command = [sys.executable, str(Path(__file__).resolve()), "--probe-child", json.dumps(spec)]
    profile = os.environ.get("PROBE_PYSPY")  # a folder: record each try with py-spy (dev only)
    if profile:
        out = Path(profile) / f"{private.name}.txt"
        command = ["py-spy", "record", "-r", "250", "-f", "raw", "-o", str(out), "--", *command]
    answer = subprocess.run(
        command,
        env=env,
        cwd=private,
        capture_output=True,
        text=True,
        check=False,
    )
    # sshd reaps the session process a moment later; its CPU then counts in the listener's cutime
    deadline = time.monotonic() + 2.0
    while proc_cpu(sshd_pid, children=True) == sshd_before and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [line for line in answer.stdout.splitlines() if line.startswith("PROBE ")]
    if not lines:
        raise RuntimeError(f"{mode}: no result (exit {answer.returncode}): {answer.stderr[-3000:]}")
    row: dict[str, Any] = json.loads(lines[-1][len("PROBE ") :])
    row["moto_cpu"] = proc_cpu(moto_pid) - moto_before
    row["sshd_cpu"] = proc_cpu(sshd_pid, children=True) - sshd_before
    return row


def _make_file(path: Path, size: int) -> str:
    import hashlib

    digest, block = hashlib.sha256(), os.urandom(8 * MiB)
    with open(path, "wb") as handle:
        left = size
        while left:
            chunk = block[: min(left, len(block))]
            handle.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def _clear(s3: Any) -> None:
    for upload in s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"])
    for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        s3.delete_object(Bucket=BUCKET, Key=item["Key"])


def _check(s3: Any, sha256: str) -> None:
    import hashlib

    body, digest = s3.get_object(Bucket=BUCKET, Key=KEY)["Body"], hashlib.sha256()
    for chunk in iter(lambda: body.read(8 * MiB), b""):
        digest.update(chunk)
    if digest.hexdigest() != sha256:
        raise RuntimeError("the object's sha256 is not the source's")


def _render(
    rows: dict[str, list[dict[str, Any]]],
    *,
    size_mib: int,
    rtt_ms: float,
    rounds: int,
    checksum: str,
    load_before: tuple[float, float, float],
    baseline: Path | None,
) -> str:
    def med(mode: str, key: str) -> float:
        return statistics.median(float(r[key]) for r in rows[mode])

    lines = [
        f"`benchmarks/bench_sftp_to_s3.py --probe --size-mib {size_mib} --rtt-ms {rtt_ms:g} --runs {rounds}"
        f" --checksum {checksum}`: medians of {rounds} alternating rounds, each try a fresh process"
        + (f" (ours-old = {baseline})" if baseline else "")
        + ".",
        "",
        "| mode | wall s (min-max) | MB/s | copier CPU s | moto CPU s | sshd CPU s | peak RSS MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode, tries in rows.items():
        secs = [float(r["seconds"]) for r in tries]
        lines.append(
            f"| {mode} | {med(mode, 'seconds'):.2f} ({min(secs):.2f}-{max(secs):.2f}) "
            f"| {size_mib * MiB / med(mode, 'seconds') / MB:.0f} | {med(mode, 'cpu'):.2f} "
            f"| {med(mode, 'moto_cpu'):.2f} | {med(mode, 'sshd_cpu'):.2f} | {med(mode, 'maxrss_mib'):.0f} |"
        )
    after = os.getloadavg()
    lines += [
        "",
        f"Load average before: {' '.join(f'{x:.2f}' for x in load_before)}; "
        f"after: {' '.join(f'{x:.2f}' for x in after)} (2 shared cores).",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--probe-child":
        child(json.loads(sys.argv[2]))
