"""
End to end with real Airflow (dag.test on SQLite) and real sshd: mapped batches, directory mirrors,
uploads, the stability sensor and remote post-actions, with real cuts between tries.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import sha256_file, write_random
from tests.support.airflow_env import run_dag_test, task_instance, xcom_return

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.faultproxy import FaultProxy
    from tests.support.servers import ServerInfo

MiB = 1024 * 1024
pytestmark = pytest.mark.usefixtures("airflow_db")
RETRY = {"retries": 2, "retry_delay": timedelta(seconds=1), "checkpoint_interval": 0.05}


def new_dag(dag_id: str) -> Any:
    from airflow.providers.common.compat.sdk import DAG

    return DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False)


def mapped_tries(dag_run: Any, task_id: str) -> dict[int, int]:
    """map_index -> try_number of a mapped task's instances."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(TaskInstance.map_index, TaskInstance.try_number).filter(
            TaskInstance.dag_id == dag_run.dag_id,
            TaskInstance.run_id == dag_run.run_id,
            TaskInstance.task_id == task_id,
        )
        return {int(index): int(tries) for index, tries in rows}


def test_mapped_batch_retries_only_the_interrupted_file(proxy_conn: FaultProxy, tmp_path: Path) -> None:
    from airflow_provider_sftp_resume.operators import ResumableSFTPDownloadOperator

    sizes = [1 * MiB, 24 * MiB, 1 * MiB]
    remote = [tmp_path / f"part-{i}.bin" for i in range(3)]
    digests = [
        write_random(path, size, seed=40 + i)
        for i, (path, size) in enumerate(zip(remote, sizes, strict=True))
    ]
    local = tmp_path / "in"
    proxy_conn.cut_after(8 * MiB)  # past the small files, in the middle of the big one
    with new_dag("e2e_mapped") as dag:
        ResumableSFTPDownloadOperator.partial(
            task_id="fetch", sftp_conn_id="sftp_test", create_intermediate_dirs=True, **RETRY
        ).expand_kwargs([{"remote_path": str(r), "local_path": str(local / r.name)} for r in remote])

    dag_run = run_dag_test(dag)

    assert str(dag_run.state) == "success"
    assert mapped_tries(dag_run, "fetch") == {0: 1, 1: 2, 2: 1}, "only the cut file needed a retry"
    results = [xcom_return(dag.dag_id, dag_run.run_id, "fetch", map_index=i) for i in range(3)]
    for i, result in enumerate(results):
        assert isinstance(result, dict)
        assert sha256_file(local / remote[i].name) == digests[i] == result["sha256"]
    assert results[1]["resumed_from"] > 0
    assert results[1]["bytes_transferred"] == sizes[1] - results[1]["resumed_from"]
    assert results[0]["bytes_transferred"] == sizes[0]
    assert results[2]["bytes_transferred"] == sizes[2]


def test_directory_mirror_is_interrupted_and_the_retry_fetches_only_what_is_missing(
    proxy_conn: FaultProxy, tmp_path: Path
) -> None:
    from airflow_provider_sftp_resume.operators import ResumableSFTPDirectoryDownloadOperator

    remote = tmp_path / "outgoing"
    sizes = {"a.csv": 4 * MiB, "b.csv": 4 * MiB, "c.csv": 16 * MiB, "skip.txt": 100}
    for i, (name, size) in enumerate(sizes.items()):
        (remote / name).parent.mkdir(parents=True, exist_ok=True)
        write_random(remote / name, size, seed=50 + i)
    local = tmp_path / "mirror"
    proxy_conn.cut_after(14 * MiB)
    with new_dag("e2e_mirror") as dag:
        ResumableSFTPDirectoryDownloadOperator(
            task_id="mirror",
            sftp_conn_id="sftp_test",
            remote_path=f"{remote}/*.csv",
            local_dir=str(local),
            concurrency=2,
            **RETRY,
        )

    dag_run = run_dag_test(dag)

    assert str(dag_run.state) == "success"
    assert task_instance(dag_run, "mirror").try_number == 2
    result = xcom_return(dag.dag_id, dag_run.run_id, "mirror")
    assert isinstance(result, dict)
    files = {f["relative"]: f for f in result["files"]}
    assert sorted(files) == ["a.csv", "b.csv", "c.csv"]
    statuses = [f["status"] for f in files.values()]
    assert "skipped" in statuses, "files completed before the cut are not fetched again"
    assert "resumed" in statuses, "files cut after a checkpoint continue where they stopped"
    assert set(statuses) <= {"skipped", "resumed", "downloaded"}  # downloaded: not started before the cut
    missing = sum(
        sizes[f["relative"]] - f["resumed_from"] for f in files.values() if f["status"] != "skipped"
    )
    assert result["bytes_transferred"] == missing, "the retry moved exactly the missing bytes"
    for name in ("a.csv", "b.csv", "c.csv"):
        assert sha256_file(local / name) == sha256_file(remote / name)
    assert not (local / "skip.txt").exists()


def test_hostile_names_fail_the_mirror_without_retry(
    openssh_server: ServerInfo, sftp_conn: Any, tmp_path: Path
) -> None:
    from airflow_provider_sftp_resume.operators import ResumableSFTPDirectoryDownloadOperator

    remote = tmp_path / "outgoing"
    remote.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    (remote / "link.txt").symlink_to(secret)
    digest = write_random(remote / "ok.txt", 1000)
    sftp_conn(openssh_server)
    with new_dag("e2e_hostile") as dag:
        ResumableSFTPDirectoryDownloadOperator(
            task_id="mirror",
            sftp_conn_id="sftp_test",
            remote_path=str(remote),
            local_dir=str(tmp_path / "in"),
            **RETRY,
        )

    dag_run = run_dag_test(dag)

    assert str(dag_run.state) == "failed"
    assert task_instance(dag_run, "mirror").try_number == 1, "a refused name cannot be fixed by retrying"
    assert sha256_file(tmp_path / "in" / "ok.txt") == digest
    assert not (tmp_path / "in" / "link.txt").exists()
    summary = xcom_return(dag.dag_id, dag_run.run_id, "mirror")
    assert summary is None, "a failed try has no return value; its summary is under batch_result"


def test_upload_is_interrupted_and_resumed(proxy_conn: FaultProxy, tmp_path: Path) -> None:
    from airflow_provider_sftp_resume.operators import ResumableSFTPUploadOperator

    source = tmp_path / "export.bin"
    digest = write_random(source, 20 * MiB, seed=60)
    target = tmp_path / "incoming" / "export.bin"
    target.parent.mkdir()
    # 8 MB/s upstream: the cut comes a second in, after durable checkpoints (each waits for the
    # server's fsync); at loopback speed all 8 MiB could be sent before the first fsync answers.
    proxy_conn.set_upload_rate(8_000_000)
    proxy_conn.cut_after_sent(8 * MiB)
    with new_dag("e2e_upload") as dag:
        ResumableSFTPUploadOperator(
            task_id="send", sftp_conn_id="sftp_test", local_path=str(source), remote_path=str(target), **RETRY
        )

    dag_run = run_dag_test(dag)

    assert str(dag_run.state) == "success"
    assert task_instance(dag_run, "send").try_number == 2
    result = xcom_return(dag.dag_id, dag_run.run_id, "send")
    assert isinstance(result, dict)
    assert result["resumed_from"] > 0
    assert result["resumed_from"] + result["bytes_transferred"] == 20 * MiB == result["remote_size"]
    assert sha256_file(target) == digest == result["sha256"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["export.bin"]


def test_sensor_waits_for_a_growing_file_then_download_and_post_action_run(
    openssh_server: ServerInfo, sftp_conn: Any, tmp_path: Path
) -> None:
    from airflow_provider_sftp_resume.operators import ResumableSFTPDownloadOperator
    from airflow_provider_sftp_resume.sensors import SFTPFileStableSensor

    remote = tmp_path / "drop" / "feed.csv"
    remote.parent.mkdir()
    remote.write_bytes(b"header\n")
    archive = tmp_path / "archive"
    local = tmp_path / "in" / "feed.csv"
    sftp_conn(openssh_server)
    stop_growing_at: list[float] = []

    def partner_writes() -> None:  # appends for about 3 s, then closes the file
        with remote.open("ab") as handle:
            for i in range(15):
                handle.write(f"row {i}\n".encode() * 2000)
                handle.flush()
                time.sleep(0.2)
        stop_growing_at.append(time.monotonic())

    with new_dag("e2e_stable") as dag:
        wait = SFTPFileStableSensor(
            task_id="wait",
            sftp_conn_id="sftp_test",
            path=str(remote),
            quiet_period=1.5,
            poke_interval=0.3,
            timeout=120,
            deferrable=True,
        )
        fetch = ResumableSFTPDownloadOperator(
            task_id="fetch",
            sftp_conn_id="sftp_test",
            remote_path=str(remote),
            local_path=str(local),
            create_intermediate_dirs=True,
            post_action="move",
            archive_dir=str(archive),
        )
        wait >> fetch
    writer = threading.Thread(target=partner_writes)
    writer.start()
    try:
        dag_run = run_dag_test(dag)
    finally:
        writer.join()

    assert str(dag_run.state) == "success"
    stable = xcom_return(dag.dag_id, dag_run.run_id, "wait")
    assert isinstance(stable, dict)
    final_size = (archive / "feed.csv").stat().st_size
    assert stable[str(remote)][0] == final_size, "the sensor let go only once the file stopped growing"
    result = xcom_return(dag.dag_id, dag_run.run_id, "fetch")
    assert isinstance(result, dict)
    assert result["size"] == final_size
    assert result["post_action"] == f"moved to {archive}/feed.csv"
    assert sha256_file(local) == sha256_file(archive / "feed.csv")
    assert not remote.exists()


def test_post_action_delete_does_not_run_when_the_download_fails(
    openssh_server: ServerInfo, sftp_conn: Any, tmp_path: Path
) -> None:
    from airflow_provider_sftp_resume.operators import ResumableSFTPDownloadOperator

    remote = tmp_path / "keep.bin"
    write_random(remote, 2 * MiB, seed=61)
    sftp_conn(openssh_server)
    with new_dag("e2e_delete_guard") as dag:
        ResumableSFTPDownloadOperator(
            task_id="fetch",
            sftp_conn_id="sftp_test",
            remote_path=str(remote),
            local_path=str(tmp_path / "in" / "keep.bin"),
            create_intermediate_dirs=True,
            expected_sha256="0" * 64,  # the download cannot be verified: nothing may be deleted
            post_action="delete",
        )

    dag_run = run_dag_test(dag)

    assert str(dag_run.state) == "failed"
    assert remote.exists()
    assert not (tmp_path / "in" / "keep.bin").exists()
