"""The resumable upload against real SFTP servers (OpenSSH sshd and asyncssh), with real faults."""

from __future__ import annotations

import asyncio
import json
import os
from typing import TYPE_CHECKING

import asyncssh
import pytest

from airflow_provider_sftp_resume.core.errors import (
    LocalPathError,
    RemotePathError,
    SourceChanged,
    TransferInterrupted,
)
from airflow_provider_sftp_resume.core.resume.localfiles import LocalPaths
from airflow_provider_sftp_resume.core.transfers.upload import UploadOptions, UploadResult, upload_file
from tests.conftest import endpoint_for, session_factory, sha256_file, write_random

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.faultproxy import FaultProxy
    from tests.support.servers import ServerInfo

MiB = 1024 * 1024
FAST = {"checkpoint_interval": 0.05}


def upload(
    server: ServerInfo, local: Path, remote: Path, port: int | None = None, **options: object
) -> UploadResult:
    endpoint = endpoint_for(server, port)
    opener = session_factory(endpoint)
    merged = {**FAST, **options}
    return asyncio.run(
        upload_file(
            opener,
            local,
            str(remote),
            UploadOptions(**merged),  # type: ignore[arg-type]
            server=endpoint_for(server).describe(),  # the same server whichever port the proxy uses
        )
    )


def sidecars(local: Path) -> list[Path]:
    return sorted(local.parent.glob(f"{local.name}.upload-*.json"))


def interrupted_upload(
    server: ServerInfo, proxy: FaultProxy, source: Path, target: Path, cut: int, **options: object
) -> int:
    """
    Run one upload try that the proxy cuts after ``cut`` bytes sent; return the offset its sidecar kept.

    The link has a 20 ms round trip and 4 writes in flight meanwhile (about 50 MB/s), so that durable
    checkpoints (each after a server fsync) happen before the cut; at loopback speed a few MiB would
    be gone before the first fsync answers.
    """
    proxy.set_rtt(0.02)
    proxy.cut_after_sent(cut)
    with pytest.raises(TransferInterrupted):
        upload(server, source, target, port=proxy.port, **{"max_requests": 4, **options})
    proxy.set_rtt(0.0)
    found = sidecars(source)
    return int(json.loads(found[0].read_text())["acknowledged"]) if found else 0


def test_fresh_upload_is_byte_exact_and_renamed_into_place(
    sftp_server: ServerInfo, remote_dir: Path, local_dir: Path
) -> None:
    source = local_dir / "report.bin"
    digest = write_random(source, 3 * MiB + 777)
    target = remote_dir / "report.bin"

    result = upload(sftp_server, source, target)

    assert sha256_file(target) == digest
    assert result.sha256 == digest
    assert result.remote_size == result.size == source.stat().st_size
    assert result.resumed_from == 0
    assert result.bytes_transferred == result.size
    assert result.rename in {"posix-rename", "rename"}
    assert result.mtime_preserved is True
    assert int(target.stat().st_mtime) == int(source.stat().st_mtime)
    assert sorted(p.name for p in remote_dir.iterdir()) == ["report.bin"], "no temporary file is left"
    assert sidecars(source) == [], "no resume state is left after success"
    json.dumps(result.to_dict())


def test_interrupted_upload_resumes_without_duplicating_or_skipping_bytes(
    sftp_server: ServerInfo, proxy: FaultProxy, remote_dir: Path, local_dir: Path
) -> None:
    source = local_dir / "big.bin"
    digest = write_random(source, 24 * MiB, seed=3)
    target = remote_dir / "big.bin"

    kept = interrupted_upload(sftp_server, proxy, source, target, 10 * MiB)
    temp = remote_dir / "big.bin.part"
    assert 0 < kept <= temp.stat().st_size, "the sidecar claims only what the server acknowledged"
    assert not target.exists(), "the target name appears only when the upload is complete"

    result = upload(sftp_server, source, target, port=proxy.port)

    assert sha256_file(target) == digest
    assert result.sha256 == digest
    assert result.resumed_from >= kept
    assert result.resumed_from + result.bytes_transferred == result.size
    assert result.bytes_transferred < result.size
    assert not temp.exists()


def test_a_custom_temp_suffix_and_an_existing_target_replaced_atomically(
    sftp_server: ServerInfo, remote_dir: Path, local_dir: Path
) -> None:
    source = local_dir / "data.csv"
    digest = write_random(source, MiB, seed=4)
    target = remote_dir / "data.csv"
    target.write_bytes(b"the old version")

    result = upload(sftp_server, source, target, temp_suffix=".uploading")

    assert sha256_file(target) == digest
    assert result.skipped is False
    assert sorted(p.name for p in remote_dir.iterdir()) == ["data.csv"]


def test_second_run_skips_an_unchanged_remote_copy(
    openssh_server: ServerInfo, remote_dir: Path, local_dir: Path
) -> None:
    source = local_dir / "same.bin"
    write_random(source, MiB, seed=5)
    target = remote_dir / "same.bin"
    upload(openssh_server, source, target)

    again = upload(openssh_server, source, target)

    assert again.skipped is True
    assert again.bytes_transferred == 0


def test_local_file_changed_between_tries_restarts_from_zero(
    sftp_server: ServerInfo, proxy: FaultProxy, remote_dir: Path, local_dir: Path
) -> None:
    source = local_dir / "moving.bin"
    write_random(source, 16 * MiB, seed=6)
    target = remote_dir / "moving.bin"
    assert interrupted_upload(sftp_server, proxy, source, target, 6 * MiB) > 0

    digest = write_random(source, 16 * MiB, seed=7)  # same size, new content
    result = upload(sftp_server, source, target, port=proxy.port)

    assert result.resumed_from == 0
    assert result.restart_reason == "the local file changed since the earlier try"
    assert sha256_file(target) == digest


def test_remote_kept_bytes_that_differ_are_not_trusted(
    sftp_server: ServerInfo, proxy: FaultProxy, remote_dir: Path, local_dir: Path
) -> None:
    source = local_dir / "tampered.bin"
    digest = write_random(source, 16 * MiB, seed=8)
    target = remote_dir / "tampered.bin"
    kept = interrupted_upload(sftp_server, proxy, source, target, 8 * MiB)
    temp = remote_dir / "tampered.bin.part"
    with temp.open("r+b") as handle:  # someone else wrote into our temporary file on the server
        handle.seek(kept - 100)
        handle.write(b"\0" * 100)

    result = upload(sftp_server, source, target)

    assert result.resumed_from == 0
    assert result.restart_reason is not None
    assert "differ" in result.restart_reason
    assert sha256_file(target) == digest


def test_missing_remote_directory_is_a_clear_error_unless_asked_to_create(
    openssh_server: ServerInfo, remote_dir: Path, local_dir: Path
) -> None:
    source = local_dir / "x.bin"
    digest = write_random(source, 1000)
    target = remote_dir / "new" / "deeper" / "x.bin"
    with pytest.raises(RemotePathError, match="create_intermediate_dirs=True"):
        upload(openssh_server, source, target)

    upload(openssh_server, source, target, create_intermediate_dirs=True)

    assert sha256_file(target) == digest


def test_bad_local_paths_are_refused_with_the_fix(
    openssh_server: ServerInfo, remote_dir: Path, local_dir: Path
) -> None:
    with pytest.raises(LocalPathError, match="Cannot read the local file"):
        upload(openssh_server, local_dir / "missing.bin", remote_dir / "m.bin")
    with pytest.raises(LocalPathError, match="not a regular file"):
        upload(openssh_server, local_dir, remote_dir / "d.bin")
    source = local_dir / "ok.bin"
    write_random(source, 10)
    with pytest.raises(RemotePathError, match="is a directory"):
        upload(openssh_server, source, remote_dir)
    with pytest.raises(ValueError, match="temp_suffix"):
        UploadOptions(temp_suffix="/x")


def test_source_growing_during_upload_is_never_published(
    sftp_server: ServerInfo, proxy: FaultProxy, remote_dir: Path, local_dir: Path
) -> None:
    source = local_dir / "growing.bin"
    write_random(source, 8 * MiB, seed=9)
    target = remote_dir / "growing.bin"
    proxy.set_rtt(0.02)

    async def grow_meanwhile() -> None:
        endpoint = endpoint_for(sftp_server, proxy.port)
        task = asyncio.ensure_future(
            upload_file(
                session_factory(endpoint),
                source,
                str(target),
                UploadOptions(**FAST),
                server="s",
            )
        )
        await asyncio.sleep(0.3)
        with source.open("ab") as handle:
            handle.write(os.urandom(1000))
        await task

    with pytest.raises(SourceChanged):
        asyncio.run(grow_meanwhile())
    assert not target.exists()


def test_server_that_refuses_setstat_and_posix_rename_still_gets_the_file(
    asyncssh_refusing_server: ServerInfo, remote_dir: Path, local_dir: Path
) -> None:
    source = local_dir / "s3.bin"
    digest = write_random(source, 2 * MiB, seed=10)
    target = remote_dir / "s3.bin"
    target.write_bytes(b"yesterday's file")

    result = upload(asyncssh_refusing_server, source, target)

    assert sha256_file(target) == digest
    assert result.mtime_preserved is False
    assert result.rename == "rename-aside"
    assert sorted(p.name for p in remote_dir.iterdir()) == ["s3.bin"]


def test_upload_state_lives_in_state_dir_when_asked(
    sftp_server: ServerInfo, proxy: FaultProxy, remote_dir: Path, local_dir: Path, tmp_path: Path
) -> None:
    source = local_dir / "ro.bin"
    digest = write_random(source, 12 * MiB, seed=11)
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    interrupted_upload(sftp_server, proxy, source, remote_dir / "ro.bin", 5 * MiB, state_dir=str(state_dir))
    assert sidecars(source) == []
    paths = LocalPaths.for_upload(source, "x", str(state_dir))
    assert len(list(state_dir.glob("ro.bin.upload-*.json"))) == 1
    assert paths.sidecar.parent == state_dir

    result = upload(sftp_server, source, remote_dir / "ro.bin", state_dir=str(state_dir))

    assert result.resumed_from > 0
    assert sha256_file(remote_dir / "ro.bin") == digest


@pytest.fixture
def asyncssh_refusing_server(
    tmp_path_factory: pytest.TempPathFactory, client_key: object, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ServerInfo]:
    """An asyncssh SFTP server like an object-storage gateway: no SETSTAT, no posix-rename."""
    from tests.support.servers import AsyncsshServer

    class RefusingSFTPServer(asyncssh.SFTPServer):
        def setstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
            raise asyncssh.SFTPOpUnsupported("setstat is not supported")

        def fsetstat(self, file_obj: object, attrs: asyncssh.SFTPAttrs) -> None:
            raise asyncssh.SFTPOpUnsupported("fsetstat is not supported")

    handler = asyncssh.sftp.SFTPServerHandler
    monkeypatch.setattr(
        handler, "_extensions", [e for e in handler._extensions if e[0] != b"posix-rename@openssh.com"]
    )
    server = AsyncsshServer(tmp_path_factory.mktemp("refusing"), client_key, sftp_factory=RefusingSFTPServer)  # type: ignore[arg-type]
    try:
        yield server.info
    finally:
        server.stop()


@pytest.mark.parametrize(
    "hostile",
    [
        "x" * 200_000,  # huge
        "{not json",
        '{"format": "airflow-provider-sftp-resume/upload", "version": 1}',  # fields missing
        '{"format": "airflow-provider-sftp-resume/upload", "version": 1, "server": "s", "remote_temp": "t",'
        ' "local": {"size": 1, "mtime_ns": 1, "inode": 1}, "acknowledged": 99999999999}',  # absurd offset
        '{"format": "airflow-provider-sftp-resume/upload", "version": 1, "server": "s", "remote_temp": "t",'
        ' "local": {"size": true, "mtime_ns": 1, "inode": 1}, "acknowledged": 0}',  # wrong type
    ],
)
def test_hostile_upload_sidecar_means_a_restart_not_a_crash(
    openssh_server: ServerInfo, remote_dir: Path, local_dir: Path, hostile: str
) -> None:
    source = local_dir / "h.bin"
    digest = write_random(source, 300_000, seed=12)
    target = remote_dir / "h.bin"
    endpoint = endpoint_for(openssh_server).describe()
    LocalPaths.for_upload(source, f"{endpoint}{target}", None).sidecar.write_text(hostile)

    result = upload(openssh_server, source, target)

    assert result.resumed_from == 0
    assert result.restart_reason is not None
    assert "unusable" in result.restart_reason
    assert sha256_file(target) == digest
    assert target.stat().st_size == source.stat().st_size
