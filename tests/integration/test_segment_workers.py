"""Several connections on slow and dead links: stall detection means "no bytes for stall_timeout"."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING

import pytest

from airflow_provider_sftp_resume.core.errors import TransferStalled
from airflow_provider_sftp_resume.core.resume.localfiles import LocalPaths
from airflow_provider_sftp_resume.core.transfers.download import (
    DownloadOptions,
    DownloadResult,
    download_file,
)
from tests.conftest import endpoint_for, session_factory, sha256_file, write_random

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.faultproxy import FaultProxy
    from tests.support.servers import ServerInfo

MiB = 1024 * 1024


def download(server: ServerInfo, port: int, remote: Path, local: Path, **options: object) -> DownloadResult:
    opener = session_factory(endpoint_for(server, port))
    settings = DownloadOptions(checkpoint_interval=0.2, **options)  # type: ignore[arg-type]
    return asyncio.run(download_file(opener, str(remote), local, settings))


def test_two_connections_on_a_slow_link_do_not_count_as_stalled(
    openssh_server: ServerInfo, sshd_proxy: FaultProxy, tmp_path: Path
) -> None:
    """40 MiB over 2 connections at 3 MB/s (1.5 MB/s each): every segment takes far longer than
    stall_timeout, but bytes never stop flowing, so the download must succeed."""
    source = tmp_path / "slow.bin"
    digest = write_random(source, 40 * MiB, seed=501)
    target = tmp_path / "out" / "slow.bin"
    target.parent.mkdir()
    sshd_proxy.set_rate(3_000_000)
    started = time.monotonic()
    result = download(openssh_server, sshd_proxy.port, source, target, stall_timeout=3, max_connections=2)
    seconds = time.monotonic() - started
    assert result.sha256 == digest == sha256_file(target)
    assert result.bytes_transferred == 40 * MiB
    assert sshd_proxy.connections >= 2, "the second connection (a worker process) must have been used"
    assert seconds > 3 * 3, f"the link was not slow enough to prove anything ({seconds:.1f} s)"


def test_two_connections_on_a_dead_link_fail_as_stalled_in_time(
    openssh_server: ServerInfo, sshd_proxy: FaultProxy, tmp_path: Path
) -> None:
    """A black-holed link is still noticed within about stall_timeout, with a checkpoint kept."""
    source = tmp_path / "dead.bin"
    write_random(source, 40 * MiB, seed=502)
    target = tmp_path / "dead.bin.out"
    sshd_proxy.set_rate(6_000_000)
    sshd_proxy.stall_after(6 * MiB)
    started = time.monotonic()
    with pytest.raises(TransferStalled):
        download(openssh_server, sshd_proxy.port, source, target, stall_timeout=3, max_connections=2)
    seconds = time.monotonic() - started
    assert seconds < 1 + 3 + 3, f"a dead link took {seconds:.1f} s to notice (stall_timeout=3)"
    state = json.loads(LocalPaths.for_target(target).sidecar.read_text())
    assert sum(s["done"] - s["start"] for s in state["segments"]) > 0
