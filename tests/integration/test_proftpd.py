"""
Uploads and downloads against a real ProFTPD (mod_sftp) with its built-in defaults.

ProFTPD's ``AllowOverwrite off`` (the built-in default) refuses to open an existing file for writing,
truncating or not, and ``AllowStoreRestart off`` refuses appending too: the remote temporary file an
interrupted upload leaves behind cannot be written again. The faults are real: the fault proxy cuts
the link mid-upload.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import pytest

from airflow_provider_sftp_resume.core.errors import RemotePathError, TransferInterrupted
from airflow_provider_sftp_resume.core.transfers.download import DownloadOptions, download_file
from airflow_provider_sftp_resume.core.transfers.upload import UploadOptions, UploadResult, upload_file
from tests.conftest import endpoint_for, session_factory, sha256_file, write_random
from tests.support.faultproxy import FaultProxy
from tests.support.servers import ProFTPDServer, find_proftpd

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.keys import KeyPair
    from tests.support.servers import ServerInfo

MiB = 1024 * 1024


@pytest.fixture
def proxy(proftpd_server: ServerInfo) -> Iterator[FaultProxy]:
    fault_proxy = FaultProxy(proftpd_server.port)
    yield fault_proxy
    fault_proxy.stop()


def _upload(server: ServerInfo, port: int, source: Path, target: Path, **options: object) -> UploadResult:
    merged: dict[str, object] = {"checkpoint_interval": 0.05, **options}
    return asyncio.run(
        upload_file(
            session_factory(endpoint_for(server, port)),
            source,
            str(target),
            UploadOptions(**merged),  # type: ignore[arg-type]
            server=endpoint_for(server).describe(),
        )
    )


def _cut_upload(server: ServerInfo, proxy: FaultProxy, source: Path, target: Path, cut: int) -> int:
    """One upload try cut after ``cut`` bytes sent (20 ms link); return the offset its sidecar kept."""
    proxy.set_rtt(0.02)
    proxy.cut_after_sent(cut)
    with pytest.raises(TransferInterrupted):
        _upload(server, proxy.port, source, target, max_requests=8)
    proxy.set_rtt(0.0)
    sidecars = list(source.parent.glob(f"{source.name}.upload-*.json"))
    return int(json.loads(sidecars[0].read_text())["acknowledged"]) if sidecars else 0


def test_the_fixture_refuses_to_reopen_an_existing_file(proftpd_server: ServerInfo, tmp_path: Path) -> None:
    """What makes ProFTPD special here: a second upload to the same remote name is refused."""
    source = tmp_path / "twice.bin"
    write_random(source, 1000, seed=60)
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "twice.bin.part").write_bytes(b"left over")

    async def open_for_writing() -> None:
        async with session_factory(endpoint_for(proftpd_server))() as fs:
            await fs.open_writer(str(remote / "twice.bin.part"), truncate=True)

    with pytest.raises(RemotePathError, match="Permission denied"):
        asyncio.run(open_for_writing())


def test_upload_and_download_are_byte_exact(proftpd_server: ServerInfo, tmp_path: Path) -> None:
    source = tmp_path / "plain.bin"
    digest = write_random(source, 3 * MiB + 17, seed=61)
    remote = tmp_path / "remote"
    remote.mkdir()
    target = remote / "plain.bin"

    sent = _upload(proftpd_server, proftpd_server.port, source, target)
    fetched = asyncio.run(
        download_file(
            session_factory(endpoint_for(proftpd_server)),
            str(target),
            tmp_path / "back.bin",
            DownloadOptions(),
        )
    )

    assert sent.sha256 == digest
    assert sha256_file(target) == digest
    assert fetched.sha256 == digest
    assert sha256_file(tmp_path / "back.bin") == digest


def test_interrupted_upload_recovers_from_the_stale_temporary_file(
    proftpd_server: ServerInfo, proxy: FaultProxy, tmp_path: Path
) -> None:
    source = tmp_path / "cut.bin"
    digest = write_random(source, 12 * MiB, seed=62)
    remote = tmp_path / "remote"
    remote.mkdir()
    target = remote / "cut.bin"
    _cut_upload(proftpd_server, proxy, source, target, 5 * MiB)
    assert (remote / "cut.bin.part").exists(), "the cut try left its temporary file on the server"

    result = _upload(proftpd_server, proxy.port, source, target)

    assert sha256_file(target) == digest
    assert result.resumed_from == 0
    assert result.restart_reason is not None
    assert "opened for writing again" in result.restart_reason
    assert sorted(p.name for p in remote.iterdir()) == ["cut.bin"]

    digest = write_random(source, 2 * MiB, seed=63)  # a new version over the published file
    again = _upload(proftpd_server, proftpd_server.port, source, target)
    assert sha256_file(target) == digest
    assert again.restart_reason is None


def test_a_genuine_permission_problem_stays_a_clear_permanent_error(
    proftpd_server: ServerInfo, tmp_path: Path
) -> None:
    """No temporary file to blame: the refusal is reported, nothing is removed."""
    source = tmp_path / "x.bin"
    write_random(source, 1000, seed=64)
    locked = tmp_path / "locked"
    locked.mkdir()
    config = proftpd_server.extra["workdir"] / "proftpd.conf"
    assert "AllowOverwrite" not in config.read_text(), "the fixture keeps ProFTPD's built-in default"
    (locked / "x.bin.part").mkdir()  # a directory where the temporary file should go

    with pytest.raises(RemotePathError):
        _upload(proftpd_server, proftpd_server.port, source, locked / "x.bin")
    assert (locked / "x.bin.part").is_dir()


@pytest.fixture(scope="module")
def proftpd_allowing_overwrite(
    tmp_path_factory: pytest.TempPathFactory, client_key: KeyPair
) -> Iterator[ServerInfo]:
    """The same ProFTPD set up as many sites do (``AllowOverwrite on``): resuming works there."""
    if find_proftpd() is None:
        pytest.skip("ProFTPD with mod_sftp is missing (apt-get install proftpd-core proftpd-mod-crypto)")
    server = ProFTPDServer(
        tmp_path_factory.mktemp("proftpd-overwrite"), client_key, extra_config="AllowOverwrite on"
    )
    try:
        yield server.info
    finally:
        server.stop()


def test_where_the_server_allows_overwriting_the_upload_resumes(
    proftpd_allowing_overwrite: ServerInfo, tmp_path: Path
) -> None:
    source = tmp_path / "resume.bin"
    digest = write_random(source, 12 * MiB, seed=65)
    remote = tmp_path / "remote"
    remote.mkdir()
    target = remote / "resume.bin"
    proxy = FaultProxy(proftpd_allowing_overwrite.port)
    try:
        kept = _cut_upload(proftpd_allowing_overwrite, proxy, source, target, 6 * MiB)
        result = _upload(proftpd_allowing_overwrite, proxy.port, source, target)
    finally:
        proxy.stop()

    assert kept > 0
    assert result.resumed_from == kept
    assert result.restart_reason is None
    assert sha256_file(target) == digest
