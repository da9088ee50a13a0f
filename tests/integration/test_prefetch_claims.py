"""
The first window, prefetched with the tail-fingerprint read, is claimed by the fill (core/io/prefetch.py).

Against real servers: OpenSSH (advertises its read size), ProFTPD's mod_sftp (advertises none: the read
size is discovered) and asyncssh's server, for a fresh download and a resumed one; and asyncssh's
server with its extensions taken away and refusing reads above 64 KiB, whose refusal of the probe
settles the read size lower between the prefetch and the fill. Every try tells, in a debug line, how
many early reads it sent, how many were claimed and how many were dropped unclaimed.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING

import asyncssh
import pytest

from airflow_provider_sftp_resume.core.errors import TransferInterrupted
from airflow_provider_sftp_resume.core.remote import readsize
from airflow_provider_sftp_resume.core.resume.verify import TAIL_LENGTH
from airflow_provider_sftp_resume.core.transfers.download import DownloadOptions, download_file
from tests.conftest import endpoint_for, session_factory, sha256_file, write_random
from tests.support.faultproxy import FaultProxy
from tests.support.servers import AsyncsshServer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.keys import KeyPair
    from tests.support.servers import ServerInfo

MiB = 1024 * 1024
EARLY = re.compile(r"Early reads: (\d+) sent, (\d+) claimed, (\d+) dropped unclaimed")


def _fetch(server: ServerInfo, source: Path, target: Path, port: int | None = None) -> int:
    """One download try; return where it resumed from."""
    opener = session_factory(endpoint_for(server, port))
    options = DownloadOptions(checkpoint_interval=0.05)
    return asyncio.run(download_file(opener, str(source), target, options)).resumed_from


def _early_reads(caplog: pytest.LogCaptureFixture) -> list[tuple[int, int, int]]:
    """``(sent, claimed, dropped)`` of every try logged so far."""
    found = (EARLY.search(r.getMessage()) for r in caplog.records)
    return [(int(m[1]), int(m[2]), int(m[3])) for m in found if m]


@pytest.mark.parametrize("server_fixture", ["openssh_server", "proftpd_server", "asyncssh_server"])
def test_every_prefetched_read_is_claimed_fresh_and_resumed(
    server_fixture: str, request: pytest.FixtureRequest, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server: ServerInfo = request.getfixturevalue(server_fixture)
    source, target = tmp_path / "src.bin", tmp_path / "dst.bin"
    digest = write_random(source, 8 * MiB, seed=161)
    caplog.set_level(logging.DEBUG)
    assert _fetch(server, source, target) == 0
    assert _early_reads(caplog) == [(16, 16, 0)]  # 4 MiB at loopback, every one taken by the fill
    target.unlink()
    caplog.clear()
    # A try cut after 3 MiB (at 8 MB/s, so that the client has read them before the cut), then a
    # resumed one: its first window starts where the kept bytes end.
    proxy = FaultProxy(server.port, rate=8_000_000)
    try:
        proxy.cut_after(3 * MiB)
        with pytest.raises(TransferInterrupted):
            _fetch(server, source, target, proxy.port)
    finally:
        proxy.stop()
    caplog.clear()
    assert _fetch(server, source, target) > 0
    assert sha256_file(target) == digest
    [(sent, claimed, dropped)] = _early_reads(caplog)
    assert (claimed, dropped) == (sent, 0)
    assert sent > 0


#: ``(offset, length)`` of every read the refusing server answered with data.
SERVED: list[tuple[int, int]] = []


class _RefusesLargeReads(asyncssh.SFTPServer):
    """An SFTP server that refuses reads above 64 KiB, as some appliances do."""

    def read(self, file_obj: object, offset: int, size: int) -> bytes:
        if size > 64 * 1024:
            raise asyncssh.SFTPFailure("read too large")
        data: bytes = super().read(file_obj, offset, size)  # type: ignore[arg-type]
        SERVED.append((offset, len(data)))
        return data


@pytest.fixture
def refusing_server(
    tmp_path_factory: pytest.TempPathFactory, client_key: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ServerInfo]:
    """asyncssh's server advertising no extensions (no limits), refusing reads above 64 KiB."""
    monkeypatch.setattr(asyncssh.sftp.SFTPServerHandler, "_extensions", [])
    monkeypatch.setattr(readsize, "_DROPPED_ON_PROBE", {})
    SERVED.clear()
    server = AsyncsshServer(tmp_path_factory.mktemp("refusing"), client_key, sftp_factory=_RefusesLargeReads)
    try:
        yield server.info
    finally:
        server.stop()


def test_a_refused_probe_does_not_waste_the_prefetched_window(
    refusing_server: ServerInfo, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The first early read is the 256 KiB probe; its refusal settles the read size at 32 KiB before
    # the fill starts. The fill still asks for the prefetched ranges (each split into 32 KiB requests).
    source, target = tmp_path / "src.bin", tmp_path / "dst.bin"
    size = 8 * MiB
    digest = write_random(source, size, seed=162)
    caplog.set_level(logging.DEBUG)
    assert _fetch(refusing_server, source, target) == 0
    assert sha256_file(target) == digest
    assert _early_reads(caplog) == [(16, 16, 0)]
    # Each byte was served once, but for the tail fingerprint and its re-check at the end.
    assert sum(length for _, length in SERVED) == size + 2 * TAIL_LENGTH
    twice = {read for read in SERVED if SERVED.count(read) > 1}
    assert twice
    assert all(offset >= size - TAIL_LENGTH for offset, _ in twice), sorted(twice)
