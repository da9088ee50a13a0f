"""
``max_bytes_per_second`` on the operators: checked when the DAG is parsed, templated, and passed
through to the engine in a real ``dag.test()`` run against sshd (the fault proxy counts the bytes).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import sha256_file, write_random
from tests.support.airflow_env import run_dag_test, xcom_return

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.faultproxy import FaultProxy

MiB = 1024 * 1024
CAP = 1_000_000  # bytes per second
pytestmark = pytest.mark.usefixtures("airflow_db")


def operators() -> dict[str, tuple[type[Any], dict[str, Any]]]:
    from airflow_provider_sftp_resume.operators import (
        ResumableSFTPDirectoryDownloadOperator,
        ResumableSFTPDownloadOperator,
        ResumableSFTPUploadOperator,
    )

    return {
        "download": (ResumableSFTPDownloadOperator, {"remote_path": "/r", "local_path": "/tmp/l"}),
        "directory": (ResumableSFTPDirectoryDownloadOperator, {"remote_path": "/r", "local_dir": "/tmp/d"}),
        "upload": (ResumableSFTPUploadOperator, {"local_path": "/tmp/l", "remote_path": "/r"}),
    }


@pytest.mark.parametrize("kind", ["download", "directory", "upload"])
@pytest.mark.parametrize("value", [0, -5, 1.5, True, "fast", "-1"])
def test_a_bad_cap_fails_when_the_dag_is_parsed(kind: str, value: object) -> None:
    cls, kwargs = operators()[kind]
    with pytest.raises(ValueError, match=r"max_bytes_per_second must be a positive integer \(bytes per"):
        cls(task_id="t", max_bytes_per_second=value, **kwargs)


@pytest.mark.parametrize("kind", ["download", "directory", "upload"])
def test_the_cap_is_templated_and_checked_once_rendered(kind: str) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    cls, kwargs = operators()[kind]
    assert "max_bytes_per_second" in cls.template_fields
    operator = cls(task_id="t", max_bytes_per_second="{{ params.rate }}", **kwargs)  # not rendered yet
    operator.max_bytes_per_second = "2M"  # what a template could render to
    with pytest.raises(AirflowFailException, match="max_bytes_per_second must be a positive integer"):
        operator.execute({})  # refused before any connection is made


def test_dag_test_passes_the_cap_to_every_operator(proxy_conn: FaultProxy, tmp_path: Path) -> None:
    """Three capped tasks, one templated: each takes about its bytes / cap, not the link's speed."""
    from airflow.providers.common.compat.sdk import DAG

    from airflow_provider_sftp_resume.operators import (
        ResumableSFTPDirectoryDownloadOperator,
        ResumableSFTPDownloadOperator,
        ResumableSFTPUploadOperator,
    )

    remote = tmp_path / "remote"
    remote.mkdir()
    single = write_random(remote / "single.bin", 2 * MiB, seed=950)
    (remote / "dir").mkdir()
    for i in range(2):
        write_random(remote / "dir" / f"f{i}.bin", MiB, seed=951 + i)
    to_send = tmp_path / "send.bin"
    sent = write_random(to_send, 2 * MiB, seed=953)
    common = {"sftp_conn_id": "sftp_test", "checkpoint_interval": 0.1}
    with DAG(
        "e2e_bandwidth", schedule=None, start_date=datetime(2026, 1, 1), catchup=False, params={"rate": CAP}
    ) as dag:
        ResumableSFTPDownloadOperator(
            task_id="download",
            remote_path=str(remote / "single.bin"),
            local_path=str(tmp_path / "single.out"),
            max_bytes_per_second="{{ params.rate }}",
            **common,
        )
        ResumableSFTPDirectoryDownloadOperator(
            task_id="directory",
            remote_path=str(remote / "dir"),
            local_dir=str(tmp_path / "mirror"),
            concurrency=2,
            max_bytes_per_second=CAP,
            **common,
        )
        ResumableSFTPUploadOperator(
            task_id="upload",
            local_path=str(to_send),
            remote_path=str(remote / "sent.bin"),
            max_bytes_per_second=CAP,
            **common,
        )

    dag_run = run_dag_test(dag)

    assert str(dag_run.state) == "success"
    results = {
        task: xcom_return(dag.dag_id, dag_run.run_id, task) for task in ("download", "directory", "upload")
    }
    assert sha256_file(tmp_path / "single.out") == single
    assert sha256_file(remote / "sent.bin") == sent
    # 2 MiB at 1 MB/s is 2.1 s; the cap lets a quarter second of the rate and one request go at
    # once, so no capped try is faster than 1.5 s (uncapped, each takes well under 0.2 s here). The
    # directory's two files share the cap: apart, each 1 MiB would take under 0.8 s.
    for task, result in results.items():
        assert isinstance(result, dict)
        assert result["seconds"] >= 1.5, f"{task} took {result['seconds']} s: the cap was not applied"
    assert results["directory"]["files_total"] == 2
