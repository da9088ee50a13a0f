"""
The bandwidth cap measured on the wire: the fault proxy counts the bytes, a thread samples the count
every 0.5 s, and every 10 s window's average must be within 10 % of ``max_bytes_per_second``.

Windows start at the first sample after file data began to flow (connecting and planning move
almost nothing) and end at the last sample (taken once the transfer returned). Each transfer lasts
about 12.5 s at the cap, so several overlapping windows are checked. Every test prints its windows'
minimum and maximum (``pytest -s`` shows them).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_sftp_resume.core.errors import TransferInterrupted
from airflow_provider_sftp_resume.core.transfers.batch import download_selection
from airflow_provider_sftp_resume.core.transfers.download import DownloadOptions, download_file
from airflow_provider_sftp_resume.core.transfers.selection import RemoteSelection
from airflow_provider_sftp_resume.core.transfers.upload import UploadOptions, upload_file
from tests.conftest import endpoint_for, session_factory, sha256_file, write_random

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.support.faultproxy import FaultProxy
    from tests.support.servers import ServerInfo

MiB = 1024 * 1024
CAP = 2_000_000  # bytes per second
SIZE = 24 * MiB  # about 12.6 s at the cap
WINDOW = 10.0  # seconds
SAMPLE_EVERY = 0.5  # seconds
TOLERANCE = 0.10
#: File data is flowing once this much has passed (the SSH handshake and the planning reads are less).
FLOWING = 256 * 1024


class ByteSampler:
    """
    Sample a byte counter every :data:`SAMPLE_EVERY` seconds in a thread, while the block runs.

    :param read: returns the counter (the proxy's bytes forwarded so far in one direction)
    """

    def __init__(self, read: Callable[[], int]) -> None:
        self._read = read
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="byte-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self._read()))
            self._stop.wait(SAMPLE_EVERY)

    def __enter__(self) -> ByteSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.monotonic(), self._read()))

    def window_rates(self) -> list[float]:
        """The average rate over every 10 s window between consecutive-enough samples."""
        base = self.samples[0][1]
        flowing = [(t, n) for t, n in self.samples if n - base >= FLOWING]
        start = self.samples.index(flowing[0]) - 1  # the last sample before data flowed
        samples = self.samples[max(0, start) :]
        rates = []
        for i, (t0, n0) in enumerate(samples):
            later = [(t, n) for t, n in samples[i + 1 :] if t - t0 >= WINDOW]
            if not later:
                break
            t1, n1 = later[0]
            rates.append((n1 - n0) / (t1 - t0))
        return rates


def assert_capped(name: str, sampler: ByteSampler, cap: int = CAP) -> None:
    rates = sampler.window_rates()
    assert rates, f"the transfer was too short for one {WINDOW:g} s window"
    low, high = min(rates), max(rates)
    summary = f"{len(rates)} windows of {WINDOW:g} s, {low / 1e6:.3f}-{high / 1e6:.3f} MB/s"
    print(f"\n{name}: {summary} (cap {cap / 1e6:g} MB/s)")
    assert (1 - TOLERANCE) * cap <= low, f"{name}: a window averaged {low:.0f} B/s, under the cap by > 10 %"
    assert high <= (1 + TOLERANCE) * cap, f"{name}: a window averaged {high:.0f} B/s, over the cap by > 10 %"


def download(server: ServerInfo, port: int, remote: Path, local: Path, **options: Any) -> Any:
    opener = session_factory(endpoint_for(server, port))
    settings = DownloadOptions(checkpoint_interval=0.2, **options)
    return asyncio.run(download_file(opener, str(remote), local, settings))


def test_a_capped_download_keeps_every_10_s_window_within_10_percent(
    openssh_server: ServerInfo, sshd_proxy: FaultProxy, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    digest = write_random(source, SIZE, seed=901)
    target = tmp_path / "big.out"
    with ByteSampler(lambda: sshd_proxy.server_to_client) as sampler:
        result = download(openssh_server, sshd_proxy.port, source, target, max_bytes_per_second=CAP)
    assert result.sha256 == digest == sha256_file(target)
    assert_capped("download", sampler)


def test_a_capped_upload_keeps_every_10_s_window_within_10_percent(
    openssh_server: ServerInfo, sshd_proxy: FaultProxy, tmp_path: Path
) -> None:
    source = tmp_path / "up.bin"
    digest = write_random(source, SIZE, seed=902)
    target = tmp_path / "uploaded.bin"
    opener = session_factory(endpoint_for(openssh_server, sshd_proxy.port))
    options = UploadOptions(checkpoint_interval=0.2, max_bytes_per_second=CAP)
    with ByteSampler(lambda: sshd_proxy.client_to_server) as sampler:
        result = asyncio.run(upload_file(opener, source, str(target), options, server="s"))
    assert result.sha256 == digest == sha256_file(target)
    assert_capped("upload", sampler)


def test_a_directory_download_shares_one_cap_across_its_concurrent_files(
    openssh_server: ServerInfo, sshd_proxy: FaultProxy, tmp_path: Path
) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    digests = {f"f{i}.bin": write_random(remote / f"f{i}.bin", SIZE // 3, seed=910 + i) for i in range(3)}
    local = tmp_path / "local"
    opener = session_factory(endpoint_for(openssh_server, sshd_proxy.port))
    options = DownloadOptions(checkpoint_interval=0.2, max_bytes_per_second=CAP)
    with ByteSampler(lambda: sshd_proxy.server_to_client) as sampler:
        result = asyncio.run(
            download_selection(opener, RemoteSelection.parse(str(remote)), local, options, concurrency=3)
        )
    assert {f.relative: f.sha256 for f in result.files} == digests
    assert sshd_proxy.connections >= 3, "the three files must have been in flight at once"
    assert_capped("directory, concurrency 3", sampler)  # the total, not each file's


def test_a_resumed_download_over_two_connections_is_still_capped(
    openssh_server: ServerInfo, sshd_proxy: FaultProxy, tmp_path: Path
) -> None:
    """The first try (uncapped) is cut; the resumed try's two connections share one cap."""
    source = tmp_path / "resume.bin"
    digest = write_random(source, SIZE + 4 * MiB, seed=903)
    target = tmp_path / "resume.out"
    split = {"max_connections": 2, "min_segment_size": 4 * MiB}
    sshd_proxy.cut_after(4 * MiB)
    with pytest.raises(TransferInterrupted):
        download(openssh_server, sshd_proxy.port, source, target, **split)
    sshd_proxy.heal()
    connections_before = sshd_proxy.connections
    with ByteSampler(lambda: sshd_proxy.server_to_client) as sampler:
        result = download(openssh_server, sshd_proxy.port, source, target, max_bytes_per_second=CAP, **split)
    assert result.sha256 == digest == sha256_file(target)
    assert result.resumed_from > 0
    assert result.bytes_transferred >= SIZE - 2 * MiB, "enough was left to measure the resumed try"
    assert sshd_proxy.connections - connections_before >= 2, "the resumed try used two connections"
    assert_capped("resumed, 2 connections", sampler)


@pytest.mark.slow
def test_a_fresh_download_over_two_connections_shares_one_cap(
    openssh_server: ServerInfo, sshd_proxy: FaultProxy, tmp_path: Path
) -> None:
    source = tmp_path / "two.bin"
    digest = write_random(source, SIZE, seed=904)
    target = tmp_path / "two.out"
    with ByteSampler(lambda: sshd_proxy.server_to_client) as sampler:
        result = download(
            openssh_server,
            sshd_proxy.port,
            source,
            target,
            max_bytes_per_second=CAP,
            max_connections=2,
            min_segment_size=4 * MiB,
        )
    assert result.sha256 == digest == sha256_file(target)
    assert sshd_proxy.connections >= 2
    assert_capped("fresh, 2 connections", sampler)
