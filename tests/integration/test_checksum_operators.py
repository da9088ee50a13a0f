"""The checksum knobs of the operators: checked at parse time, templated, and in the XCom value."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_sftp_resume.core.errors import ChecksumFileMissing
from airflow_provider_sftp_resume.operators import (
    ResumableSFTPDirectoryDownloadOperator,
    ResumableSFTPDownloadOperator,
    ResumableSFTPUploadOperator,
)
from tests.conftest import write_random

if TYPE_CHECKING:
    from pathlib import Path


def test_checksum_file_is_templated_on_both_single_file_operators() -> None:
    assert "checksum_file" in ResumableSFTPDownloadOperator.template_fields
    assert "checksum_file" in ResumableSFTPUploadOperator.template_fields


@pytest.mark.parametrize(
    ("operator", "kwargs", "message"),
    [
        (ResumableSFTPDownloadOperator, {"source_checksum": "md5sum"}, "source_checksum must be one of"),
        (
            ResumableSFTPDownloadOperator,
            {"checksum_file_missing": "no"},
            "checksum_file_missing must be one of",
        ),
        (ResumableSFTPUploadOperator, {"source_checksum": True}, "source_checksum must be one of"),
        (ResumableSFTPDirectoryDownloadOperator, {"checksum_file_suffix": "md5"}, "must start with"),
    ],
)
def test_bad_checksum_knobs_fail_when_the_dag_is_parsed(
    operator: Any, kwargs: dict[str, Any], message: str
) -> None:
    ends = (
        {"remote_path": "/r", "local_path": "/l"}
        if operator is not ResumableSFTPDirectoryDownloadOperator
        else {
            "remote_path": "/r",
            "local_dir": "/l",
        }
    )
    with pytest.raises(ValueError, match=message):
        operator(task_id="t", **ends, **kwargs)


def _connection(monkeypatch: pytest.MonkeyPatch, server: Any) -> None:
    from tests.support.airflow_env import connection_json

    monkeypatch.setenv("AIRFLOW_CONN_SFTP_SUM_TEST", connection_json(server, port=server.port))


def test_download_operator_reports_the_proof_and_fails_a_mismatch_without_retry(
    openssh_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    _connection(monkeypatch, openssh_server)
    source = tmp_path / "feed.csv"
    digest = write_random(source, 100_000, seed=61)
    (tmp_path / "feed.csv.sha256").write_text(f"{digest}  feed.csv\n")
    operator = ResumableSFTPDownloadOperator(
        task_id="t",
        sftp_conn_id="sftp_sum_test",
        remote_path=str(source),
        local_path=str(tmp_path / "out.csv"),
        checksum_file=f"{source}.sha256",
        source_checksum="command",
    )
    result = operator.execute({})  # type: ignore[arg-type]
    assert result["source_checksum"] == "sha256 via checksum file, sha256 via sha256sum"
    (tmp_path / "feed.csv.sha256").write_text(f"{'0' * 64}  feed.csv\n")
    operator.local_path = str(tmp_path / "again.csv")
    with pytest.raises(AirflowFailException, match="checksum file says 0000"):
        operator.execute({})  # type: ignore[arg-type]
    operator.checksum_file = f"{source}.missing.sha256"
    with pytest.raises(ChecksumFileMissing):  # retriable: propagates for Airflow's retries
        operator.execute({})  # type: ignore[arg-type]


def test_upload_operator_reports_the_servers_digest(
    openssh_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _connection(monkeypatch, openssh_server)
    source = tmp_path / "send.bin"
    write_random(source, 50_000, seed=62)
    operator = ResumableSFTPUploadOperator(
        task_id="t",
        sftp_conn_id="sftp_sum_test",
        local_path=str(source),
        remote_path=str(tmp_path / "remote.bin"),
        source_checksum="command",
    )
    result = operator.execute({})  # type: ignore[arg-type]
    assert (result["source_checksum"], result["remote_checksum"]) == (None, "sha256 via sha256sum")
