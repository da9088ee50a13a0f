"""The fast-path choices, against a real sshd: input in pieces, two connections for a large file."""

from __future__ import annotations

import asyncio
import hashlib
from typing import TYPE_CHECKING

import pytest

from airflow_provider_sftp_resume.core.io import tuning
from airflow_provider_sftp_resume.core.remote.connect import connect_with_retries
from airflow_provider_sftp_resume.core.remote.inbound import PIECE, feed_in_pieces
from airflow_provider_sftp_resume.core.transfers.download import DownloadOptions, download_file
from tests.conftest import endpoint_for, session_factory, sha256_file, write_random

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.faultproxy import FaultProxy
    from tests.support.servers import ServerInfo

MiB = 1024 * 1024


def test_asyncssh_gets_its_input_in_pieces_and_the_bytes_are_intact(
    openssh_server: ServerInfo, tmp_path: Path
) -> None:
    """16 reads of 255 KiB in flight make asyncio hand over reads far larger than a piece."""
    source = tmp_path / "pieces.bin"
    digest = write_random(source, 16 * MiB, seed=71)
    handed: list[int] = []

    async def run() -> str:
        conn = await connect_with_retries(endpoint_for(openssh_server), attempts=1)
        async with conn:
            assert "feed_in_pieces" in conn.data_received.__qualname__, "the engine's connect feeds in pieces"
            original = type(conn).data_received.__get__(conn)

            def recorder(data: bytes, datatype: object = None) -> None:
                handed.append(len(data))
                original(data, datatype)  # type: ignore[arg-type]

            conn.data_received = recorder  # type: ignore[method-assign]
            feed_in_pieces(conn)
            async with conn.start_sftp_client() as sftp, sftp.open(str(source), "rb") as remote:
                blocks = [remote.read(261120, offset) for offset in range(0, 16 * MiB, 261120)]
                return hashlib.sha256(b"".join(await asyncio.gather(*blocks))).hexdigest()

    assert asyncio.run(run()) == digest
    assert max(handed) <= PIECE
    assert handed.count(PIECE) > 0, "reads larger than a piece were split"
    assert sum(handed) > 16 * MiB


def download(server: ServerInfo, port: int, remote: Path, local: Path, **options: object) -> int:
    """Download over the proxy; return the sha256 check's verdict and connections through it."""
    opener = session_factory(endpoint_for(server, port))
    result = asyncio.run(download_file(opener, str(remote), local, DownloadOptions(**options)))  # type: ignore[arg-type]
    assert result.sha256 == sha256_file(local)
    return result.size


@pytest.mark.parametrize(
    ("rtt", "options", "connections"),
    [
        (0.0, {}, 2),
        (0.0, {"max_connections": 1}, 1),
        (0.02, {}, 1),
    ],
    ids=["fast-path-two", "asked-for-one", "long-link-one"],
)
def test_a_large_file_on_a_fast_path_is_read_over_two_connections(
    *,
    rtt: float,
    options: dict[str, object],
    connections: int,
    openssh_server: ServerInfo,
    sshd_proxy: FaultProxy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the size floor lowered to 16 MiB, a 48 MiB file shows the rule a 1 GiB one follows."""
    monkeypatch.setattr(tuning, "AUTO_SPLIT_MIN_SIZE", 16 * MiB)
    monkeypatch.setattr(tuning, "usable_cpus", lambda: 4.0)  # the rule, on any test machine
    source = tmp_path / "large.bin"
    digest = write_random(source, 48 * MiB, seed=72)
    sshd_proxy.set_rtt(rtt)
    target = tmp_path / "out.bin"
    assert download(openssh_server, sshd_proxy.port, source, target, **options) == 48 * MiB
    assert sha256_file(target) == digest
    assert sshd_proxy.connections == connections


def test_a_file_under_the_floor_keeps_one_connection(
    openssh_server: ServerInfo, sshd_proxy: FaultProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tuning, "usable_cpus", lambda: 4.0)
    source = tmp_path / "small.bin"
    write_random(source, 24 * MiB, seed=73)
    download(openssh_server, sshd_proxy.port, source, tmp_path / "out.bin")
    assert sshd_proxy.connections == 1
