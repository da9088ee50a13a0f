"""Directories of many small files against OpenSSH: round trips per file, and kill -9 mid-directory."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from airflow_provider_sftp_resume.core.transfers.batch import BatchResult, download_selection
from airflow_provider_sftp_resume.core.transfers.download import DownloadOptions
from airflow_provider_sftp_resume.core.transfers.selection import RemoteSelection
from tests.conftest import REPO_ROOT, endpoint_for, session_factory, sha256_file, write_random
from tests.support.faultproxy import FaultProxy

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.servers import ServerInfo

KiB = 1024

MIRROR = r"""
import asyncio, json, sys
from pathlib import Path
from airflow_provider_sftp_resume.core.remote.sftp import SFTPSessionFactory
from airflow_provider_sftp_resume.core.remote.ssh import SSHEndpoint
from airflow_provider_sftp_resume.core.transfers.batch import download_selection
from airflow_provider_sftp_resume.core.transfers.download import DownloadOptions
from airflow_provider_sftp_resume.core.transfers.selection import RemoteSelection
spec = json.loads(sys.argv[1])
endpoint = SSHEndpoint(host="127.0.0.1", port=spec["port"], username=spec["user"],
    client_keys=(spec["key"],), trusted_host_keys=(spec["host_key"],), use_default_keys=False)
asyncio.run(download_selection(SFTPSessionFactory(endpoint, attempts=1),
    RemoteSelection.parse(spec["remote"]), Path(spec["local"]), DownloadOptions()))
"""


def make_files(remote: Path, count: int, size: int) -> dict[str, str]:
    return {f"f{i:03d}.bin": write_random(remote / f"f{i:03d}.bin", size, seed=500 + i) for i in range(count)}


def mirror(server: ServerInfo, remote: Path, local: Path, port: int | None = None) -> BatchResult:
    opener = session_factory(endpoint_for(server, port))
    return asyncio.run(
        download_selection(opener, RemoteSelection.parse(str(remote)), local, DownloadOptions())
    )


def test_small_files_cost_two_round_trips_each(
    openssh_server: ServerInfo, remote_dir: Path, local_dir: Path
) -> None:
    """
    40 files of 64 KiB, 4 at once, at RTT 100 ms: about 20 round trips to connect and list, then 10
    files per slot at 2 round trips each (~42 RTT measured). The single-file try per file took ~107
    (7-9 sequential round trips a file); the bound of 70 leaves room for a loaded machine.
    """
    digests = make_files(remote_dir, 40, 64 * KiB)
    proxy = FaultProxy(openssh_server.port, rtt=0.1)
    try:
        started = time.monotonic()
        result = mirror(openssh_server, remote_dir, local_dir, proxy.port)
        seconds = time.monotonic() - started
    finally:
        proxy.stop()

    assert {f.status for f in result.files} == {"downloaded"}
    assert all(sha256_file(local_dir / name) == digest for name, digest in digests.items())
    assert sorted(p.name for p in local_dir.iterdir()) == sorted(digests), "no .part, sidecar or lock left"
    assert seconds < 70 * 0.1, f"{seconds:.1f} s = {seconds / 0.1:.0f} round trips for 40 small files"
    assert proxy.connections == 1, "the listing and every small file share one SSH connection"


def test_kill_9_mid_directory_then_the_retry_completes_every_file(
    openssh_server: ServerInfo, remote_dir: Path, local_dir: Path
) -> None:
    digests = make_files(remote_dir, 150, 128 * KiB)
    proxy = FaultProxy(openssh_server.port, rtt=0.02)
    spec = {
        "port": proxy.port,
        "user": openssh_server.username,
        "key": str(openssh_server.client_key.private),
        "host_key": openssh_server.host_key.public_line,
        "remote": str(remote_dir),
        "local": str(local_dir),
    }
    child = subprocess.Popen(
        [sys.executable, "-c", MIRROR, json.dumps(spec)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        deadline = time.monotonic() + 60
        while len([p for p in local_dir.iterdir() if p.suffix == ".bin"]) < 20:
            assert child.poll() is None, "the mirror ended before it could be killed"
            assert time.monotonic() < deadline, "the mirror published nothing in 60 s"
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        proxy.stop()
    published = {p.name for p in local_dir.iterdir() if p.suffix == ".bin"}
    assert published < set(digests), "killed mid-directory"
    for name in published:  # never a partial file under a target name
        assert sha256_file(local_dir / name) == digests[name], name

    retry = mirror(openssh_server, remote_dir, local_dir)

    statuses = {f.relative: f.status for f in retry.files}
    assert {n for n, s in statuses.items() if s == "skipped"} == published
    assert {n for n, s in statuses.items() if s == "downloaded"} == set(digests) - published
    for name, digest in digests.items():
        assert sha256_file(local_dir / name) == digest, name
    assert sorted(p.name for p in local_dir.iterdir()) == sorted(digests), "no .part, sidecar or lock left"


@pytest.mark.parametrize("kind", ["openssh", "asyncssh", "proftpd"])
def test_every_server_kind_takes_the_small_file_path(
    kind: str, request: pytest.FixtureRequest, remote_dir: Path, local_dir: Path
) -> None:
    """The listing's attributes and the stat agree on each server, so no file falls back (one connection)."""
    server: ServerInfo = request.getfixturevalue(f"{kind}_server")
    sizes = [0, 1, 32 * KiB, 32 * KiB + 1, 200 * KiB, 1024 * KiB]
    digests = {f"f{i}.bin": write_random(remote_dir / f"f{i}.bin", n, seed=i) for i, n in enumerate(sizes)}
    proxy = FaultProxy(server.port)
    try:
        result = mirror(server, remote_dir, local_dir, proxy.port)
    finally:
        proxy.stop()

    assert {f.status for f in result.files} == {"downloaded"}
    assert {f.relative: f.sha256 for f in result.files} == digests
    assert all(sha256_file(local_dir / name) == digest for name, digest in digests.items())
    assert proxy.connections == 1, "a file that fell back to the single-file try would open a session"
