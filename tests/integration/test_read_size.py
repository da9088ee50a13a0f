"""
Read size discovery on servers without ``limits@openssh.com`` (core/remote/readsize.py).

Against real servers: ProFTPD's mod_sftp and Twisted Conch (both advertise nothing and serve large
reads), OpenSSH (advertises its limits: nothing is discovered), and asyncssh's server with its
extensions taken away and made to answer large reads short, with an error, or by dropping the
connection.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import TYPE_CHECKING, Any

import asyncssh
import pytest

from airflow_provider_sftp_resume.core.errors import TransferInterrupted
from airflow_provider_sftp_resume.core.remote import readsize
from airflow_provider_sftp_resume.core.remote.sftp import open_sftp_session
from airflow_provider_sftp_resume.core.remote.startup import FALLBACK_READ_LEN, MAX_READ_LEN
from airflow_provider_sftp_resume.core.transfers.download import DownloadOptions, download_file
from tests.conftest import endpoint_for, session_factory, sha256_file, write_random
from tests.support.conch import ConchServer, conch_available
from tests.support.servers import AsyncsshServer, ServerInfo

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.keys import KeyPair

MiB = 1024 * 1024
KiB = 1024


@pytest.fixture(scope="module")
def conch_server(tmp_path_factory: pytest.TempPathFactory, client_key: KeyPair) -> Iterator[ServerInfo]:
    if not conch_available():
        pytest.skip("Twisted Conch is not installed (the test extra: pip install twisted)")
    server = ConchServer(tmp_path_factory.mktemp("conch"), client_key)
    yield server.info
    server.stop()


def fetch(server: ServerInfo, source: Path, target: Path) -> Any:
    opener = session_factory(endpoint_for(server))
    return asyncio.run(download_file(opener, str(source), target, DownloadOptions(checkpoint_interval=0.05)))


async def read_once(server: ServerInfo, path: Path, length: int) -> tuple[int, int, bool, int]:
    """One read of ``length`` at offset 0: ``(bytes answered, known size, settled, max_read_len)``."""
    async with open_sftp_session(endpoint_for(server), attempts=1) as fs:
        reader = await fs.open_reader(str(path))
        try:
            data = await reader.read(0, length)
        finally:
            await reader.close()
        return len(data), fs.read_size.known, fs.read_size.settled, fs.max_read_len


@pytest.mark.parametrize("server_fixture", ["proftpd_server", "conch_server"])
def test_servers_without_limits_are_read_256_kib_at_a_time(
    server_fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    server: ServerInfo = request.getfixturevalue(server_fixture)
    source = tmp_path / "src.bin"
    digest = write_random(source, 5 * MiB + 7, seed=141)
    answered, known, settled, block = asyncio.run(read_once(server, source, MAX_READ_LEN))
    assert (answered, known, settled, block) == (MAX_READ_LEN, MAX_READ_LEN, True, MAX_READ_LEN)
    result = fetch(server, source, tmp_path / "dst.bin")
    assert result.sha256 == digest == sha256_file(tmp_path / "dst.bin")


def test_advertised_limits_are_used_as_they_are(openssh_server: ServerInfo, tmp_path: Path) -> None:
    source = tmp_path / "src.bin"
    write_random(source, MiB, seed=142)
    answered, known, settled, block = asyncio.run(read_once(openssh_server, source, MAX_READ_LEN))
    # OpenSSH advertises 261120 bytes (255 KiB): a larger read goes as two requests at once.
    assert settled
    assert known == block < MAX_READ_LEN
    assert answered == MAX_READ_LEN


#: Lengths the misbehaving server was asked for, in order.
ASKED: list[int] = []


class _Misbehaving(asyncssh.SFTPServer):
    """An SFTP server that treats reads above ``LIMIT`` the way ``MODE`` says."""

    LIMIT = 64 * KiB
    MODE = "short"

    def read(self, file_obj: object, offset: int, size: int) -> bytes:
        ASKED.append(size)
        if size > self.LIMIT:
            if self.MODE == "error":
                raise asyncssh.SFTPFailure("read too large")
            if self.MODE == "drop":
                self.channel.get_connection().abort()
                raise asyncssh.SFTPFailure("dropping")
            size = self.LIMIT
        data: bytes = super().read(file_obj, offset, size)  # type: ignore[arg-type]
        return data


@pytest.fixture
def bare_server(
    tmp_path_factory: pytest.TempPathFactory, client_key: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ServerInfo]:
    """asyncssh's server advertising no extensions (no limits), reads handled by :class:`_Misbehaving`."""
    monkeypatch.setattr(asyncssh.sftp.SFTPServerHandler, "_extensions", [])
    monkeypatch.setattr(readsize, "_DROPPED_ON_PROBE", {})
    ASKED.clear()
    server = AsyncsshServer(tmp_path_factory.mktemp("bare"), client_key, sftp_factory=_Misbehaving)
    try:
        yield server.info
    finally:
        server.stop()


def _larger_than(limit: int) -> int:
    return sum(1 for size in ASKED if size > limit)


def test_a_server_that_answers_large_reads_short_is_read_at_its_maximum(
    bare_server: ServerInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_Misbehaving, "LIMIT", 100 * KiB)
    monkeypatch.setattr(_Misbehaving, "MODE", "short")
    source = tmp_path / "src.bin"
    digest = write_random(source, 6 * MiB + 3, seed=143)
    with caplog.at_level(logging.INFO, logger=readsize.__name__):
        result = fetch(bare_server, source, tmp_path / "dst.bin")
    assert result.sha256 == digest == sha256_file(tmp_path / "dst.bin")
    assert any("at most 102400 bytes" in r.getMessage() for r in caplog.records)
    # Larger than the maximum: only the probe and the read of its rest (which showed it was no EOF).
    sizes = collections.Counter(ASKED)
    assert _larger_than(100 * KiB) == 2, sizes
    assert sizes[100 * KiB] > 0, sizes
    assert len(ASKED) < (6 * MiB) // FALLBACK_READ_LEN, sizes  # fewer requests than at 32 KiB


def test_a_server_that_refuses_large_reads_gets_small_ones_and_a_log_line(
    bare_server: ServerInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_Misbehaving, "MODE", "error")
    source = tmp_path / "src.bin"
    digest = write_random(source, 4 * MiB + 1, seed=144)
    with caplog.at_level(logging.WARNING, logger=readsize.__name__):
        result = fetch(bare_server, source, tmp_path / "dst.bin")
    assert result.sha256 == digest == sha256_file(tmp_path / "dst.bin")
    notes = [r.getMessage() for r in caplog.records if "refused a read of 256 KiB" in r.getMessage()]
    assert len(notes) == 1, notes
    assert _larger_than(_Misbehaving.LIMIT) == 1  # the probe, once: nothing large after the refusal


def test_a_server_that_drops_the_connection_on_a_large_read_is_read_small_on_the_next_try(
    bare_server: ServerInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_Misbehaving, "MODE", "drop")
    source = tmp_path / "src.bin"
    digest = write_random(source, 4 * MiB + 1, seed=145)
    with caplog.at_level(logging.WARNING, logger=readsize.__name__), pytest.raises(TransferInterrupted):
        fetch(bare_server, source, tmp_path / "dst.bin")
    assert any("block_size=" in r.getMessage() for r in caplog.records)
    dropped = _larger_than(_Misbehaving.LIMIT)
    result = fetch(bare_server, source, tmp_path / "dst.bin")
    assert result.sha256 == digest == sha256_file(tmp_path / "dst.bin")
    assert _larger_than(_Misbehaving.LIMIT) == dropped  # the next try never asked for more again
