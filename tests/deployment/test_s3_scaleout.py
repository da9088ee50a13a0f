"""
Scale-out without a shared disk: SFTP straight into S3, the retry resumes on another Celery worker.

A real Airflow 3 deployment (PostgreSQL, Redis, API server, scheduler, DAG processor) with two
Celery workers that share no local directory: each has its own HOME, TMPDIR and working directory.
S3 is a moto server on 127.0.0.1, reached through an Airflow AWS connection with ``endpoint_url``;
the SFTP side is a real ``sshd`` behind the fault proxy, throttled so the copy takes seconds.

The worker running try 1 is killed mid-transfer (SIGKILL of every process of that worker, the
task's own process among them, each by its PID), after some parts are in the bucket. The scheduler
fails the silent try once its heartbeat times out and retries it; the retry can only run on the
other worker, whose disk has never seen the file, and resumes from the state in the bucket. Checked
through the REST API: the two tries' hostnames differ and try 2's XCom has ``resumed_from > 0``;
checked in the bucket: the object's sha256 is the source's, no multipart upload is left in
progress, no resume state is left under the state prefix; checked on disk: no worker directory
(and nothing in ``AIRFLOW_HOME``) holds any of the file's data.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import time
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from tests.conftest import write_random
from tests.support.deployment import wait_until
from tests.support.faultproxy import FaultProxy
from tests.support.s3 import REGION, TEST_CREDENTIALS, MotoServer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.deployment import AirflowAPI, AirflowDeployment, Service
    from tests.support.servers import ServerInfo

MiB = 1024 * 1024
DAG_ID = "deployment_sftp_to_s3"
TASK_ID = "copy"
SFTP_CONN_ID = "sftp_resume_s3_source"
S3_CONN_ID = "s3_resume_target"
BUCKET = "landing"
KEY = "incoming/dump.bin"
STATE_PREFIX = "_sftp_resume/"  # the operator's default state prefix
FILE_SIZE = 48 * MiB
RATE = 4 * MiB  # bytes per second through the proxy during try 1: the copy would take 12 s
#: Kill try 1 once this many parts are in the bucket (and well before the end of the file).
PARTS_BEFORE_KILL = 2
#: Try 1 is failed 15 s after its last heartbeat, retried 5 s later (see the fixture and the DAG).
RUN_TIMEOUT = 240.0

pytestmark = [pytest.mark.slow, pytest.mark.deployment, pytest.mark.timeout(900)]


@pytest.fixture
def moto() -> Iterator[MotoServer]:
    server = MotoServer.start()
    yield server
    server.stop()


def sftp_connection(server: ServerInfo, port: int) -> dict[str, Any]:
    """The stock ``sftp`` connection with the key inline: no worker needs a key file on its disk."""
    extra = {
        "private_key": server.client_key.private.read_text(),
        "host_key": server.host_key.public_line,
        "look_for_keys": "false",
        "conn_timeout": 10,
    }
    return {
        "connection_id": SFTP_CONN_ID,
        "conn_type": "sftp",
        "host": "127.0.0.1",
        "port": port,
        "login": server.username,
        "extra": json.dumps(extra),
    }


def aws_connection(moto: MotoServer) -> dict[str, Any]:
    """An ordinary Airflow AWS connection pointed at an S3-compatible endpoint, as for MinIO."""
    return {
        "connection_id": S3_CONN_ID,
        "conn_type": "aws",
        "login": TEST_CREDENTIALS["aws_access_key_id"],
        "password": TEST_CREDENTIALS["aws_secret_access_key"],
        "extra": json.dumps({"endpoint_url": moto.endpoint_url, "region_name": REGION}),
    }


def wait_for_dag(api: AirflowAPI) -> None:
    def parsed() -> bool | None:
        errors = api.get("/importErrors")
        assert errors["total_entries"] == 0, errors
        return True if api.request("GET", f"/dags/{DAG_ID}", expect=(200, 404)).get("dag_id") else None

    wait_until("the DAG processor to parse the S3 DAG", parsed, timeout=120)


def parts_in_bucket(s3: Any) -> int:
    """How many parts the key's multipart upload(s) in progress hold (0 if none has started)."""
    uploads = s3.list_multipart_uploads(Bucket=BUCKET, Prefix=KEY).get("Uploads", [])
    return sum(
        len(s3.list_parts(Bucket=BUCKET, Key=KEY, UploadId=u["UploadId"]).get("Parts", [])) for u in uploads
    )


def worker_pids(worker: Service) -> list[int]:
    """Every process of a Celery worker: its own session holds the worker, its pool process, the
    task supervisor and the task process."""
    pids = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getsid(process.pid) == worker.pid:
                pids.append(process.pid)
    return pids


def kill_worker(worker: Service, task_pid: int | None) -> list[int]:
    """SIGKILL the worker and every process it started, each by its PID, as a host that dies does."""
    pids = worker_pids(worker)
    assert worker.pid in pids
    assert task_pid in pids, f"the task's process {task_pid} is not one of {worker.name}'s {pids}"
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    worker.process.wait(timeout=30)
    wait_until("the killed worker's processes to be gone", lambda: None if worker_pids(worker) else True, 30)
    return pids


def files_with_data(root: Path, min_size: int) -> list[str]:
    """Files under ``root`` of at least ``min_size`` bytes (a part of the file, a temp copy)."""
    return [str(p) for p in root.rglob("*") if p.is_file() and p.stat().st_size >= min_size]


def test_celery_s3_retry_resumes_on_another_worker_without_shared_disk(
    celery_s3_deployment: AirflowDeployment,
    api: AirflowAPI,
    openssh_server: ServerInfo,
    moto: MotoServer,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    deployment = celery_s3_deployment
    s3 = moto.client()
    s3.create_bucket(Bucket=BUCKET)
    remote = tmp_path / "remote" / "dump.bin"
    remote.parent.mkdir()
    source_sha256 = write_random(remote, FILE_SIZE, seed=71)

    proxy = FaultProxy(openssh_server.port, rate=RATE)
    try:
        api.post("/connections", sftp_connection(openssh_server, proxy.port), expect=201)
        api.post("/connections", aws_connection(moto), expect=201)
        wait_for_dag(api)
        api.patch(f"/dags/{DAG_ID}", {"is_paused": False})
        run = api.post(
            f"/dags/{DAG_ID}/dagRuns",
            {"logical_date": None, "conf": {"sftp_path": str(remote), "s3_bucket": BUCKET, "s3_key": KEY}},
        )
        run_id = run["dag_run_id"]

        # Try 1 runs on one of the workers; once parts are in the bucket, that worker dies.
        def first_try_mid_transfer() -> dict[str, Any] | None:
            ti = api.task_instance(DAG_ID, run_id, TASK_ID)
            assert ti["state"] not in ("success", "failed", "up_for_retry"), ti
            if ti["state"] != "running" or ti["try_number"] != 1 or not ti["hostname"]:
                return None
            return ti if parts_in_bucket(s3) >= PARTS_BEFORE_KILL else None

        first = wait_until("try 1 to have parts in the bucket", first_try_mid_transfer, RUN_TIMEOUT, 0.2)
        victim = first["hostname"]
        assert victim in deployment.workers, first
        # Mid-transfer, the worker's own disk holds none of the file (no temp copy, no .part).
        assert files_with_data(tmp_path / victim, 1 * MiB) == []
        killed = kill_worker(deployment.workers[victim], first["pid"])
        moved_by_first_try = proxy.server_to_client
        assert moved_by_first_try < FILE_SIZE, "try 1 was not mid-transfer when its worker died"
        assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix=KEY), "no object before completion"
        proxy.set_rate(None)  # the retry may go at full speed

        def finished() -> dict[str, Any] | None:
            dag_run: dict[str, Any] = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}")
            assert dag_run["state"] != "failed", dag_run
            return dag_run if dag_run["state"] == "success" else None

        wait_until(f"DAG run {run_id} to succeed", finished, RUN_TIMEOUT)
    finally:
        proxy.stop()

    # Through the REST API: two tries, on two different workers; the second resumed.
    tries = api.tries(DAG_ID, run_id, TASK_ID)
    assert [t["try_number"] for t in tries] == [1, 2], tries
    assert tries[0]["state"] in ("failed", "up_for_retry"), tries[0]
    assert tries[1]["state"] == "success", tries[1]
    assert tries[0]["hostname"] == victim
    survivor = tries[1]["hostname"]
    assert survivor in deployment.workers
    assert survivor != victim, "the retry must run on the other worker"
    result = api.xcom_return(DAG_ID, run_id, TASK_ID)
    assert (result["bucket"], result["key"]) == (BUCKET, KEY), result
    assert result["size"] == FILE_SIZE, result
    assert result["resumed_from"] > 0, result
    assert result["resumed_from"] % result["part_size"] == 0, result
    assert result["bytes_transferred"] <= FILE_SIZE - result["resumed_from"] + result["part_size"], result
    assert result["sha256"] == source_sha256, result

    # In the bucket: the whole object, right bytes; nothing in progress, no state left.
    body = s3.get_object(Bucket=BUCKET, Key=KEY)["Body"]
    digest = hashlib.sha256()
    for chunk in iter(lambda: body.read(MiB), b""):
        digest.update(chunk)
    assert digest.hexdigest() == source_sha256
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix=STATE_PREFIX)["KeyCount"] == 0

    # On disk: the data went from SFTP to S3 without touching any worker's directories or the
    # deployment's shared AIRFLOW_HOME (its logs and config only).
    for root in (tmp_path / "worker-a", tmp_path / "worker-b", deployment.home):
        assert files_with_data(root, 1 * MiB) == [], root
    print(
        f"S3 scale-out scenario: {time.monotonic() - started:.0f} s after the deployment was up; "
        f"killed {victim} ({len(killed)} processes) after {moved_by_first_try / MiB:.1f} MiB over SFTP; "
        f"{survivor} resumed at {result['resumed_from'] / MiB:.1f} MiB"
    )
