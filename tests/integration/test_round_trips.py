"""
Sequential round trips of one download, counted through the latency proxy (docs/round-trips.md).

Every SFTP request the engine sends is timed by a thin recorder around the real session; the
longest chain of requests where each starts only after the one before it was answered is the
number of round trips the engine waits for, whatever the machine's load (at 100 ms, requests sent
together start within milliseconds of each other and end a round trip later). A second test bounds
the wall time of the whole download, connect included, at a long round trip, with margin.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_sftp_resume.core.errors import TransferError
from airflow_provider_sftp_resume.core.transfers.download import DownloadOptions, download_file
from tests.conftest import endpoint_for, session_factory, sha256_file, write_random
from tests.support.faultproxy import FaultProxy

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable
    from pathlib import Path

    from airflow_provider_sftp_resume.core.remote.sftp import SFTPSessionFactory
    from tests.support.servers import ServerInfo

MiB = 1024 * 1024


@dataclass
class Requests:
    """``(what, sent, answered)`` of every request, in the order they were sent."""

    seen: list[tuple[str, float, float]] = field(default_factory=list)

    async def timed(self, what: str, request: Awaitable[Any]) -> Any:
        sent = time.monotonic()
        try:
            return await request
        finally:
            self.seen.append((what, sent, time.monotonic()))

    def longest_chain(self) -> list[str]:
        """The longest sequence of requests each sent after the previous one was answered."""
        ordered = sorted(self.seen, key=lambda r: r[1])
        chains: list[list[str]] = []
        for index, (what, sent, _) in enumerate(ordered):
            before = [chains[j] for j in range(index) if ordered[j][2] <= sent]
            chains.append([*max(before, key=len, default=[]), what])
        return max(chains, key=len, default=[])


class _RecordingReader:
    def __init__(self, reader: Any, requests: Requests) -> None:
        self._reader = reader
        self._requests = requests

    async def read(self, offset: int, length: int) -> bytes:
        data: bytes = await self._requests.timed(f"read {offset}+{length}", self._reader.read(offset, length))
        return data

    async def close(self) -> None:
        await self._requests.timed("close", self._reader.close())


class _RecordingFileSystem:
    def __init__(self, fs: Any, requests: Requests) -> None:
        self._fs = fs
        self._requests = requests

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fs, name)

    async def stat(self, path: str) -> Any:
        return await self._requests.timed("stat", self._fs.stat(path))

    async def open_reader(self, path: str) -> _RecordingReader:
        reader = await self._requests.timed("open", self._fs.open_reader(path))
        return _RecordingReader(reader, self._requests)


@dataclass
class _RecordingFactory:
    factory: SFTPSessionFactory
    requests: Requests

    @property
    def identity(self) -> str:
        return self.factory.identity

    def process_spec(self) -> None:
        return None  # one connection: nothing to rebuild in a worker

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[_RecordingFileSystem]:
        async with self.factory() as fs:
            yield _RecordingFileSystem(fs, self.requests)


@pytest.fixture
def latency_proxy(openssh_server: ServerInfo) -> Any:
    proxy = FaultProxy(openssh_server.port, rtt=0.1)
    yield proxy
    proxy.stop()


def test_fresh_download_waits_for_four_request_round_trips(
    openssh_server: ServerInfo, latency_proxy: FaultProxy, tmp_path: Path
) -> None:
    # stat+open | tail fingerprint + the first data window | stat + tail re-read | close (not awaited).
    # Before docs/round-trips.md's changes: stat, open, tail, data, stat, tail, close = 7.
    source = tmp_path / "src.bin"
    digest = write_random(source, 1 * MiB, seed=14)
    requests = Requests()
    opener = _RecordingFactory(session_factory(endpoint_for(openssh_server, latency_proxy.port)), requests)

    result = asyncio.run(download_file(opener, str(source), tmp_path / "out.bin", DownloadOptions()))

    assert result.sha256 == digest == sha256_file(tmp_path / "out.bin")
    names = [what for what, _, _ in requests.seen]
    assert names.count("stat") == 2, names
    chain = requests.longest_chain()
    assert len(chain) <= 4, chain


def test_resumed_download_waits_for_five_request_round_trips(
    openssh_server: ServerInfo, latency_proxy: FaultProxy, tmp_path: Path
) -> None:
    # stat+open | kept-bytes checks (tail and overlap together) | the rest of the data (one window)
    # | stat + tail re-read | close. Before: stat, open, checks, data, stat, tail, close = 7.
    source = tmp_path / "src.bin"
    digest = write_random(source, 8 * MiB, seed=15)
    target = tmp_path / "out.bin"
    cut = FaultProxy(openssh_server.port)
    try:
        cut.cut_after(3 * MiB)
        first = session_factory(endpoint_for(openssh_server, cut.port))
        with pytest.raises(TransferError):
            asyncio.run(download_file(first, str(source), target, DownloadOptions(max_requests=4)))
    finally:
        cut.stop()
    requests = Requests()
    opener = _RecordingFactory(session_factory(endpoint_for(openssh_server, latency_proxy.port)), requests)

    result = asyncio.run(download_file(opener, str(source), target, DownloadOptions()))

    assert result.resumed_from > 0
    assert result.sha256 == digest == sha256_file(target)
    chain = requests.longest_chain()
    assert len(chain) <= 5, chain


def test_small_download_with_connect_fits_the_round_trip_budget(
    openssh_server: ServerInfo, tmp_path: Path
) -> None:
    # Connect ~9 round trips (TCP and versions, key exchange, ssh-userauth, none, publickey query,
    # signed publickey, channel, subsystem, SFTP init) + 3 of ours = 12; before: 10 + 7 = 17.
    rtt = 0.25
    source = tmp_path / "src.bin"
    digest = write_random(source, 1 * MiB, seed=16)
    proxy = FaultProxy(openssh_server.port, rtt=rtt)
    try:
        opener = session_factory(endpoint_for(openssh_server, proxy.port))
        started = time.monotonic()
        result = asyncio.run(download_file(opener, str(source), tmp_path / "out.bin", DownloadOptions()))
        elapsed = time.monotonic() - started
    finally:
        proxy.stop()
    assert result.sha256 == digest
    assert elapsed / rtt <= 15.0, f"{elapsed:.2f} s = {elapsed / rtt:.1f} round trips"
