"""
A real OpenSSH sftp-server that advertises fsync, posix-rename and limits and then refuses them.

That is how OpenSSH 6.5-8.5 (RHEL 7/8, Ubuntu 18.04/20.04, Debian 10/11) behave when the admin denies
the requests with ``sftp-server -P``: they keep the names in ``SSH_FXP_VERSION`` and answer
``SSH2_FX_PERMISSION_DENIED``. Debian 12's 9.2 stops advertising them, so the fixture runs Debian's
``sftp-server -P ...`` through ``tests/support/sftp_server_wrapper.py``, which puts the names back
into the version reply and passes everything else through untouched.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
from typing import TYPE_CHECKING

import asyncssh
import pytest

from airflow_provider_sftp_resume.core.errors import TransferInterrupted
from airflow_provider_sftp_resume.core.remote import failures as failures_module
from airflow_provider_sftp_resume.core.remote.sftp import FALLBACK_WRITE_LEN, open_sftp_session
from airflow_provider_sftp_resume.core.transfers.download import DownloadOptions, download_file
from airflow_provider_sftp_resume.core.transfers.upload import UploadOptions, upload_file
from tests.conftest import endpoint_for, session_factory, sha256_file, write_random
from tests.support.faultproxy import FaultProxy
from tests.support.servers import OpenSSHServer, find_sshd, wrapped_sftp_server

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.keys import KeyPair
    from tests.support.servers import ServerInfo

MiB = 1024 * 1024
#: Requests as `sftp-server -Q requests` names them (`-P` takes these); advertised as `<name>@openssh.com`.
DENIED = ("fsync", "posix-rename", "limits")


@pytest.fixture(autouse=True)
def fresh_refusal_notes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees the once-per-process refusal notes afresh."""
    monkeypatch.setattr(failures_module, "_REFUSALS_NOTED", set())


def _old_openssh(workdir: Path, client_key: KeyPair, denied: tuple[str, ...]) -> OpenSSHServer:
    if find_sshd() is None:
        pytest.skip("OpenSSH sshd is not installed (apt-get install openssh-server)")
    log = workdir / "sftp-server.log"
    advertise = tuple(f"{name}@openssh.com" for name in denied)
    subsystem = wrapped_sftp_server(deny=denied, advertise=advertise, log=log, level="INFO")
    server = OpenSSHServer(workdir, client_key, subsystem=subsystem)
    server.info.extra["log"] = log
    return server


@pytest.fixture(scope="module")
def old_openssh(tmp_path_factory: pytest.TempPathFactory, client_key: KeyPair) -> Iterator[ServerInfo]:
    """sshd whose sftp-server denies and still advertises fsync, posix-rename and limits."""
    server = _old_openssh(tmp_path_factory.mktemp("old-openssh"), client_key, DENIED)
    try:
        yield server.info
    finally:
        server.stop()


@pytest.fixture(scope="module")
def old_openssh_with_limits(
    tmp_path_factory: pytest.TempPathFactory, client_key: KeyPair
) -> Iterator[ServerInfo]:
    """The same with ``limits`` allowed: shows the fsync and posix-rename refusals on their own."""
    workdir = tmp_path_factory.mktemp("old-openssh-limits")
    server = _old_openssh(workdir, client_key, ("fsync", "posix-rename"))
    try:
        yield server.info
    finally:
        server.stop()


def test_the_fixture_behaves_like_openssh_6_5_to_8_5(old_openssh: ServerInfo) -> None:
    """The names are advertised and each request is answered with PERMISSION_DENIED."""

    async def probe() -> None:
        async with asyncssh.connect(
            "127.0.0.1",
            old_openssh.port,
            username=old_openssh.username,
            client_keys=[str(old_openssh.client_key.private)],
            known_hosts=None,
        ) as conn:
            with pytest.raises(asyncssh.SFTPPermissionDenied):
                await conn.start_sftp_client()  # asyncssh sends limits@openssh.com itself

    asyncio.run(probe())
    assert "sent status Permission denied" in old_openssh.extra["log"].read_text()


def test_session_starts_when_limits_is_refused_and_says_so(
    old_openssh: ServerInfo, caplog: pytest.LogCaptureFixture
) -> None:
    async def open_twice() -> list[int]:
        lengths = []
        for _ in range(2):
            async with open_sftp_session(endpoint_for(old_openssh), attempts=1) as fs:
                lengths.append(fs.max_write_len)
        return lengths

    with caplog.at_level(logging.INFO):
        assert asyncio.run(open_twice()) == [FALLBACK_WRITE_LEN] * 2
    notes = [r.getMessage() for r in caplog.records if "limits@openssh.com" in r.getMessage()]
    assert len(notes) == 1, notes
    assert "refused" in notes[0]


@pytest.mark.parametrize("server_fixture", ["old_openssh", "old_openssh_with_limits"])
def test_upload_completes_byte_exact_when_fsync_and_posix_rename_are_refused(
    server_fixture: str, request: pytest.FixtureRequest, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old_openssh: ServerInfo = request.getfixturevalue(server_fixture)
    remote = tmp_path / "remote"
    remote.mkdir()
    source = tmp_path / "out.bin"
    digest = write_random(source, 5 * MiB + 3, seed=40)
    target = remote / "out.bin"
    opener = session_factory(endpoint_for(old_openssh))

    with caplog.at_level(logging.INFO):
        first = asyncio.run(upload_file(opener, source, str(target), UploadOptions(), server="old"))
        assert sha256_file(target) == digest
        assert first.rename == "rename"  # posix-rename refused, no target yet: plain SFTP rename

        digest = write_random(source, 3 * MiB, seed=41)  # a new version over the existing file
        second = asyncio.run(upload_file(opener, source, str(target), UploadOptions(), server="old"))
    assert sha256_file(target) == digest
    assert second.rename == "rename-aside"
    assert sorted(p.name for p in remote.iterdir()) == ["out.bin"]
    messages = [r.getMessage() for r in caplog.records]
    assert any("fsync@openssh.com" in m and "refused" in m for m in messages), messages
    assert any("posix-rename@openssh.com" in m and "refused" in m for m in messages), messages


def test_refused_posix_rename_falls_back_to_plain_renames(
    old_openssh_with_limits: ServerInfo, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("new.part", "old.part"):
        (tmp_path / name).write_bytes(name.encode())
    (tmp_path / "old").write_bytes(b"yesterday")

    async def put_in_place() -> list[str]:
        async with open_sftp_session(endpoint_for(old_openssh_with_limits), attempts=1) as fs:
            return [
                await fs.replace(str(tmp_path / "new.part"), str(tmp_path / "new")),
                await fs.replace(str(tmp_path / "old.part"), str(tmp_path / "old")),
            ]

    with caplog.at_level(logging.INFO):
        assert asyncio.run(put_in_place()) == ["rename", "rename-aside"]
    assert (tmp_path / "new").read_bytes() == b"new.part"
    assert (tmp_path / "old").read_bytes() == b"old.part"
    assert not list(tmp_path.glob("*.replaced-*"))
    notes = [r.getMessage() for r in caplog.records if "posix-rename@openssh.com" in r.getMessage()]
    assert len(notes) == 1, notes


def test_interrupted_upload_resumes_when_fsync_is_refused(old_openssh: ServerInfo, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    source = tmp_path / "cut.bin"
    digest = write_random(source, 12 * MiB, seed=42)
    target = remote / "cut.bin"
    proxy = FaultProxy(old_openssh.port)
    try:
        proxy.cut_after_sent(5 * MiB)
        opener = session_factory(endpoint_for(old_openssh, proxy.port))
        options = UploadOptions(checkpoint_interval=0.05)
        with pytest.raises(TransferInterrupted):
            asyncio.run(upload_file(opener, source, str(target), options, server="old"))
        result = asyncio.run(upload_file(opener, source, str(target), options, server="old"))
    finally:
        proxy.stop()
    assert result.resumed_from > 0
    assert sha256_file(target) == digest


def test_download_completes_byte_exact(old_openssh: ServerInfo, tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    digest = write_random(source, 4 * MiB + 5, seed=43)
    target = tmp_path / "local" / "in.bin"
    target.parent.mkdir()
    opener = session_factory(endpoint_for(old_openssh))

    result = asyncio.run(download_file(opener, str(source), target, DownloadOptions()))

    assert result.sha256 == digest
    assert sha256_file(target) == digest


def test_openssh_sftp_client_also_completes_get_and_put(old_openssh: ServerInfo, tmp_path: Path) -> None:
    """Evidence for what users expect: OpenSSH's own client works on the same server."""
    source = tmp_path / "put.bin"
    digest = write_random(source, 2 * MiB, seed=44)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{old_openssh.port} {old_openssh.host_key.public_line}\n")
    batch = tmp_path / "batch"
    batch.write_text(
        f"put {source} {tmp_path / 'put.copy'}\nget {tmp_path / 'put.copy'} {tmp_path / 'got.bin'}\n"
    )
    completed = subprocess.run(
        [
            "sftp",
            "-q",
            "-b",
            str(batch),
            "-i",
            str(old_openssh.client_key.private),
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-o",
            "IdentitiesOnly=yes",
            "-P",
            str(old_openssh.port),
            f"{old_openssh.username}@127.0.0.1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert sha256_file(tmp_path / "put.copy") == digest
    assert sha256_file(tmp_path / "got.bin") == digest
