"""End to end with real Airflow: dag.test() on SQLite, real task retries, real sshd, real faults."""

from __future__ import annotations

import os
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


def make_dag(dag_id: str, **operator_kwargs: Any) -> Any:
    from airflow.providers.common.compat.sdk import DAG

    from airflow_provider_sftp_resume.operators import ResumableSFTPDownloadOperator

    settings: dict[str, Any] = {
        "sftp_conn_id": "sftp_test",
        "retries": 2,
        "retry_delay": timedelta(seconds=1),
        "checkpoint_interval": 0.05,
    }
    settings.update(operator_kwargs)
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        ResumableSFTPDownloadOperator(task_id="fetch", **settings)
    return dag


def test_interrupted_try_is_retried_and_resumes(proxy_conn: FaultProxy, tmp_path: Path) -> None:
    source = tmp_path / "remote.bin"
    digest = write_random(source, 16 * MiB, seed=21)
    target = tmp_path / "out" / "local.bin"
    proxy_conn.cut_after(6 * MiB)
    dag = make_dag(
        "e2e_retry", remote_path=str(source), local_path=str(target), create_intermediate_dirs=True
    )
    dag_run = run_dag_test(dag)

    assert str(dag_run.state) == "success"
    ti = task_instance(dag_run, "fetch")
    assert ti.try_number == 2, "the first try must fail on the cut and the retry must succeed"
    result = xcom_return(dag.dag_id, dag_run.run_id, "fetch")
    assert isinstance(result, dict)
    assert result["resumed_from"] > 0
    assert result["bytes_transferred"] < result["size"] == 16 * MiB
    assert result["bytes_transferred"] == result["size"] - result["resumed_from"]
    assert result["sha256"] == digest == sha256_file(target)
    assert result["restart_reason"] is None
    assert sorted(os.listdir(target.parent)) == ["local.bin"]


def _rewrite_same_size_keep_mtime(path: Path, seed: int) -> str:
    before = path.stat()
    digest = write_random(path, before.st_size, seed=seed)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    return digest


def test_remote_replaced_between_tries_restarts_and_gets_new_content(
    proxy_conn: FaultProxy, tmp_path: Path
) -> None:
    source = tmp_path / "remote.bin"
    write_random(source, 12 * MiB, seed=22)
    target = tmp_path / "local.bin"
    new_digest: dict[str, str] = {}

    def replace_remote(context: Any) -> None:  # runs between the failed try and the retry
        new_digest["value"] = _rewrite_same_size_keep_mtime(source, seed=23)

    proxy_conn.cut_after(5 * MiB)
    dag = make_dag(
        "e2e_replaced", remote_path=str(source), local_path=str(target), on_retry_callback=replace_remote
    )
    dag_run = run_dag_test(dag)

    assert str(dag_run.state) == "success"
    assert "value" in new_digest, "the retry callback must have replaced the remote file"
    result = xcom_return(dag.dag_id, dag_run.run_id, "fetch")
    assert isinstance(result, dict)
    assert result["resumed_from"] == 0
    assert result["restart_reason"]
    assert sha256_file(target) == new_digest["value"] == result["sha256"]


def test_sigkilled_task_is_resumed_by_the_next_run(proxy_conn: FaultProxy, tmp_path: Path) -> None:
    import json
    import signal
    import subprocess
    import sys
    import time

    from airflow_provider_sftp_resume.core.resume.localfiles import LocalPaths

    source = tmp_path / "remote.bin"
    digest = write_random(source, 24 * MiB, seed=24)
    target = tmp_path / "local.bin"
    sidecar = LocalPaths.for_target(target).sidecar
    proxy_conn.stall_after(7 * MiB)  # the victim hangs mid-file, as on a dead link, until killed
    kwargs = {"remote_path": str(source), "local_path": str(target), "retries": 0, "stall_timeout": 600}
    victim_log = open(tmp_path / "victim.log", "wb")  # noqa: SIM115 - closed below
    victim = subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.dag_in_subprocess", "e2e_kill_victim", json.dumps(kwargs)],
        env=os.environ.copy(),
        start_new_session=True,
        stdout=victim_log,
        stderr=subprocess.STDOUT,
    )
    kept = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and victim.poll() is None:
        if sidecar.exists():
            kept = json.loads(sidecar.read_text())["segments"][0]["done"]
            if kept >= 6 * MiB:
                break
        time.sleep(0.1)
    victim_log.close()
    assert victim.poll() is None, (tmp_path / "victim.log").read_text()[-3000:]
    assert kept > 0
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    assert not target.exists()

    proxy_conn.heal()
    dag = make_dag("e2e_kill_next", remote_path=str(source), local_path=str(target))
    dag_run = run_dag_test(dag)

    assert str(dag_run.state) == "success"
    result = xcom_return(dag.dag_id, dag_run.run_id, "fetch")
    assert isinstance(result, dict)
    assert result["resumed_from"] >= kept > 0
    assert result["bytes_transferred"] == 24 * MiB - result["resumed_from"]
    assert sha256_file(target) == digest == result["sha256"]


def test_permanent_error_fails_without_retry(
    openssh_server: ServerInfo, sftp_conn: Any, tmp_path: Path
) -> None:
    sftp_conn(openssh_server)
    target = tmp_path / "local.bin"
    dag = make_dag("e2e_permanent", remote_path=str(tmp_path), local_path=str(target))  # a directory
    dag_run = run_dag_test(dag)
    assert str(dag_run.state) == "failed"
    ti = task_instance(dag_run, "fetch")
    assert ti.try_number == 1, "a remote directory cannot be fixed by retrying"
    assert not target.exists()


def test_wrong_host_key_in_connection_fails_without_retry(
    openssh_server: ServerInfo, sftp_conn: Any, tmp_path: Path
) -> None:
    from tests.support.keys import make_key

    source = tmp_path / "remote.bin"
    write_random(source, 1000)
    impostor = make_key(tmp_path / "impostor")
    sftp_conn(openssh_server, host_key=impostor.public_line)
    dag = make_dag("e2e_hostkey", remote_path=str(source), local_path=str(tmp_path / "x.bin"))
    dag_run = run_dag_test(dag)
    assert str(dag_run.state) == "failed"
    assert task_instance(dag_run, "fetch").try_number == 1
    assert not (tmp_path / "x.bin").exists()


def test_openlineage_events_of_a_real_run_carry_the_datasets(
    openssh_server: ServerInfo, tmp_path: Path
) -> None:
    """Airflow's OpenLineage listener (file transport) calls the operator's lineage methods."""
    import json
    import socket
    import subprocess
    import sys

    pytest.importorskip("airflow.providers.openlineage", reason="needs the openlineage extra")
    from tests.support.airflow_env import connection_json

    source = tmp_path / "remote.bin"
    digest = write_random(source, 2 * MiB, seed=25)
    target = tmp_path / "local.bin"
    events_file = tmp_path / "openlineage.jsonl"
    env = {
        **os.environ,
        "AIRFLOW_CONN_SFTP_TEST": connection_json(openssh_server),
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events_file), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "sftp-resume-tests",
    }
    kwargs = {"remote_path": str(source), "local_path": str(target)}
    done = subprocess.run(  # its own process: the OpenLineage settings are read once per process
        [sys.executable, "-m", "tests.e2e.dag_in_subprocess", "e2e_lineage", json.dumps(kwargs)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert sha256_file(target) == digest

    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    task_events = {e["eventType"]: e for e in events if e["job"]["name"] == "e2e_lineage.fetch"}
    assert {"START", "COMPLETE"} <= set(task_events), [e["eventType"] for e in events]
    remote = (f"file://{openssh_server.host}:{openssh_server.port}", str(source))
    local = (f"file://{socket.gethostbyname(socket.gethostname())}:22", str(target))
    for kind in ("START", "COMPLETE"):
        event = task_events[kind]
        assert [(d["namespace"], d["name"]) for d in event["inputs"]] == [remote]
        assert [(d["namespace"], d["name"]) for d in event["outputs"]] == [local]
    statistics = task_events["COMPLETE"]["outputs"][0]["outputFacets"]["outputStatistics"]
    assert (statistics["size"], statistics["fileCount"]) == (2 * MiB, 1)
