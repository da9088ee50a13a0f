"""Bad environments: a full disk, and secrets that must never leak (logs, XCom, files written)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from typing import TYPE_CHECKING

import pytest

from airflow_provider_sftp_resume.core.errors import LocalDiskFull
from airflow_provider_sftp_resume.core.resume.localfiles import LocalPaths
from airflow_provider_sftp_resume.core.resume.state import ResumeState
from tests.conftest import sha256_file, write_random
from tests.integration.test_download_engine import run

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.servers import ServerInfo

MiB = 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MiB tmpfs mounted for the test (needs root, as CI has)."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m,mode=0755", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs on CI: {done.stderr.decode()}")
        pytest.skip("mounting a tmpfs needs root")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_disk_full_keeps_a_consistent_state_and_resumes_once_space_is_freed(
    openssh_server: ServerInfo, tmp_path: Path, small_disk: Path
) -> None:
    source = tmp_path / "big.bin"
    digest = write_random(source, 10 * MiB, seed=71)
    target = small_disk / "big.bin"
    paths = LocalPaths.for_target(target)

    with pytest.raises(LocalDiskFull, match="disk full"):
        run(openssh_server, source, target)
    state = ResumeState.from_json(paths.sidecar.read_text())
    assert 0 < state.durable_bytes <= paths.part.stat().st_size
    assert not target.exists()

    subprocess.run(["mount", "-o", "remount,size=24m", str(small_disk)], check=True)  # space freed
    result = run(openssh_server, source, target)
    assert result.resumed_from == state.durable_bytes
    assert sha256_file(target) == digest


SECRET_PASSPHRASE = "Tr0ub4dor&3-sftp-resume-passphrase"


def test_secrets_never_reach_logs_xcom_or_files(
    openssh_server: ServerInfo,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from airflow_provider_sftp_resume.operators import (
        ResumableSFTPDirectoryDownloadOperator,
        ResumableSFTPDownloadOperator,
        ResumableSFTPUploadOperator,
    )
    from tests.support.airflow_env import connection_json
    from tests.support.faultproxy import FaultProxy

    encrypted = tmp_path / "enc_key"
    encrypted.write_bytes(openssh_server.client_key.private.read_bytes())
    encrypted.chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-p", "-N", SECRET_PASSPHRASE, "-f", str(encrypted)], check=True)
    key_text = encrypted.read_text()
    key_body = key_text.splitlines()[1]  # a line of the key material itself
    proxy = FaultProxy(openssh_server.port)
    monkeypatch.setenv(
        "AIRFLOW_CONN_SFTP_SECRET_TEST",
        connection_json(
            openssh_server,
            port=proxy.port,
            key_file=None,
            private_key=key_text,
            private_key_passphrase=SECRET_PASSPHRASE,
        ),
    )
    source = tmp_path / "src.bin"
    write_random(source, 2 * MiB, seed=72)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    operator = ResumableSFTPDownloadOperator(
        task_id="t",
        sftp_conn_id="sftp_secret_test",
        remote_path=str(source),
        local_path=str(out_dir / "dst.bin"),
    )
    upload = ResumableSFTPUploadOperator(
        task_id="u",
        sftp_conn_id="sftp_secret_test",
        local_path=str(source),
        remote_path=str(tmp_path / "remote-in" / "up.bin"),
        create_intermediate_dirs=True,
        state_dir=str(out_dir),  # its resume sidecar is scanned too
    )
    tree = tmp_path / "tree"
    tree.mkdir()
    write_random(tree / "a.csv", 5000)
    mirror = ResumableSFTPDirectoryDownloadOperator(
        task_id="m", sftp_conn_id="sftp_secret_test", remote_path=str(tree), local_dir=str(out_dir / "mirror")
    )
    try:
        with caplog.at_level(logging.DEBUG):
            result = operator.execute({})  # type: ignore[arg-type]
            # and a failing try, whose error message must not carry them either
            operator.remote_path = str(tmp_path / "missing.bin")
            with pytest.raises(Exception, match=r"missing\.bin") as failure:
                operator.execute({})  # type: ignore[arg-type]
            proxy.cut_after_sent(MiB)  # an interrupted upload leaves its sidecar behind
            with pytest.raises(Exception, match="Connection lost") as upload_failure:
                upload.execute({})  # type: ignore[arg-type]
            upload_sidecars = [p.read_text() for p in out_dir.glob("src.bin.upload-*.json")]
            results = [upload.execute({}), mirror.execute({})]  # type: ignore[arg-type]
    finally:
        proxy.stop()

    assert list(out_dir.glob("src.bin.upload-*.json")) == [], "the finished upload removed its sidecar"
    haystacks = [json.dumps(result), str(failure.value), repr(failure.value), json.dumps(results)]
    assert len(upload_sidecars) == 1
    haystacks += [str(upload_failure.value), repr(upload_failure.value), *upload_sidecars]
    printed = capfd.readouterr()  # Airflow 3 renders task logs to the process's stdout/stderr
    haystacks += [record.getMessage() for record in caplog.records] + [printed.out, printed.err]
    haystacks += [p.read_text(errors="replace") for p in out_dir.rglob("*") if p.is_file()]
    for secret in (SECRET_PASSPHRASE, key_body):
        assert not any(secret in text for text in haystacks), "a secret leaked"
    assert "Connecting to" in "".join(haystacks), "the scan must have seen the task's log lines"
