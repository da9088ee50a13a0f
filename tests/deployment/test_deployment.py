"""
The example DAG in a real Airflow 3 deployment, driven only through the public REST API.

One scenario, two deployments:

- LocalExecutor with PostgreSQL as the metadata DB;
- CeleryExecutor with PostgreSQL, Redis as the broker and two Celery workers; the worker that ran
  the failed first try is stopped, so the retry runs on the other one and must resume from the first
  worker's checkpoint in the directory both see.

The fault proxy (in this process) sits between the workers and a real ``sshd``: the connection
created through the API points at it, it carries 8 MiB/s, and it cuts the first try 40 % into a
64 MiB file. The scheduler retries the task after the DAG's ``retry_delay`` (30 s, exponential
back-off: 30-60 s for the first retry); the retry resumes, the run succeeds and the file's sha256
equals the source's. Clearing the task after deleting the target downloads it again.

Set ``SFTP_RESUME_SCREENSHOT=docs/images/airflow-ui-resumed-try.png`` to have the LocalExecutor test
call ``scripts/screenshot_ui.py`` against its deployment once the resumed run has succeeded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_sftp_resume.core.resume.state import ResumeState
from tests.conftest import sha256_file, write_random
from tests.support.deployment import REPO_ROOT, wait_until
from tests.support.faultproxy import FaultProxy
from tests.support.ports import free_port

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.support.deployment import AirflowAPI, AirflowDeployment
    from tests.support.servers import ServerInfo

MiB = 1024 * 1024
DAG_ID = "example_sftp_resume_download"
TASK_ID = "fetch"
CONN_ID = "sftp_resume_example"
FILE_SIZE = 64 * MiB
RATE = 8 * MiB  # bytes per second through the proxy: the first try runs about 3 s before the cut
CUT_AT = int(FILE_SIZE * 0.4)
#: The first retry comes 30-60 s after the failure (retry_delay 30 s, exponential back-off), plus
#: scheduling and start-up on a busy 2-core machine.
RUN_TIMEOUT = 300.0

pytestmark = [pytest.mark.slow, pytest.mark.deployment, pytest.mark.timeout(900)]


@dataclass
class Scenario:
    """What one scenario set up, for the assertions after it."""

    run_id: str
    source_sha256: str
    local_path: Path


def connection_body(server: ServerInfo, port: int, conn_id: str = CONN_ID) -> dict[str, Any]:
    """The stock ``sftp`` connection as a user enters it: key file on the workers, host key pinned."""
    extra = {
        "key_file": str(server.client_key.private),
        "host_key": server.host_key.public_line,
        "look_for_keys": "false",
        "conn_timeout": 10,
    }
    return {
        "connection_id": conn_id,
        "conn_type": "sftp",
        "host": "127.0.0.1",
        "port": port,
        "login": server.username,
        "extra": json.dumps(extra),
    }


def wait_for_dag(api: AirflowAPI) -> None:
    """Wait until the DAG processor has parsed the example DAG, without import errors."""

    def parsed() -> bool | None:
        errors = api.get("/importErrors")
        assert errors["total_entries"] == 0, errors
        return True if api.request("GET", f"/dags/{DAG_ID}", expect=(200, 404)).get("dag_id") else None

    wait_until("the DAG processor to parse the example DAG", parsed, timeout=120)


def ti_state(api: AirflowAPI, run_id: str) -> dict[str, Any]:
    return api.task_instance(DAG_ID, run_id, TASK_ID)


def wait_for_state(
    api: AirflowAPI, run_id: str, wanted: str, *, try_number: int | None = None, bad: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Poll the task instance until it is in state ``wanted`` (at ``try_number``, if given)."""

    def reached() -> dict[str, Any] | None:
        ti = ti_state(api, run_id)
        assert ti["state"] not in bad, f"task instance went to {ti['state']} (try {ti['try_number']})"
        if ti["state"] == wanted and (try_number is None or ti["try_number"] == try_number):
            return ti
        return None

    return wait_until(f"task {TASK_ID} to be {wanted}", reached, timeout=RUN_TIMEOUT)


def wait_for_run(api: AirflowAPI, run_id: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        run: dict[str, Any] = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}")
        assert run["state"] != "failed", run
        return run if run["state"] == "success" else None

    return wait_until(f"DAG run {run_id} to succeed", finished, timeout=RUN_TIMEOUT)


def check_connection_test_button(api: AirflowAPI, server: ServerInfo, proxy: FaultProxy) -> None:
    """The UI's "Test" button (``POST /connections/test``) runs the hook's inherited ``test_connection``."""
    result = api.post("/connections/test", connection_body(server, proxy.port))
    assert result["status"] is True, result
    # A connection to a port where nothing listens must be reported as failing, not as working.
    nowhere = connection_body(server, free_port(), conn_id="sftp_resume_nowhere")
    failing = api.post("/connections/test", nowhere)
    assert failing["status"] is False, failing


def run_interrupted_download(
    api: AirflowAPI,
    server: ServerInfo,
    proxy: FaultProxy,
    tmp_path: Path,
    *,
    after_first_try: Callable[[dict[str, Any]], None] | None = None,
) -> Scenario:
    """
    Create the connection, unpause and trigger the example DAG with the link cut during the first
    try; wait until the run has succeeded.

    :param after_first_try: called with the task instance once the first try has failed
    """
    remote = tmp_path / "remote" / "dump.bin"
    remote.parent.mkdir()
    source_sha256 = write_random(remote, FILE_SIZE, seed=61)
    local_path = tmp_path / "shared" / "in" / "dump.bin"

    api.post("/connections", connection_body(server, proxy.port), expect=201)
    check_connection_test_button(api, server, proxy)
    wait_for_dag(api)
    api.patch(f"/dags/{DAG_ID}", {"is_paused": False})

    proxy.cut_after(CUT_AT)
    run = api.post(
        f"/dags/{DAG_ID}/dagRuns",
        {"logical_date": None, "conf": {"remote_path": str(remote), "local_path": str(local_path)}},
    )
    run_id = run["dag_run_id"]
    first = wait_for_state(api, run_id, "up_for_retry", try_number=1, bad=("failed", "success"))
    assert proxy.cuts == 1
    # Between the tries the first one's checkpoint is on disk: kept bytes, and a sidecar saying so.
    sidecar = local_path.with_name(local_path.name + ".part.json")
    kept = ResumeState.from_json(sidecar.read_text()).durable_bytes
    assert 0 < kept <= CUT_AT
    assert not local_path.exists()
    if after_first_try is not None:
        after_first_try(first)
    wait_for_run(api, run_id)
    return Scenario(run_id, source_sha256, local_path)


def check_resumed(api: AirflowAPI, scenario: Scenario) -> list[dict[str, Any]]:
    """Two tries: the first failed on the cut, the second resumed; the file equals the source."""
    run_id = scenario.run_id
    tries = api.tries(DAG_ID, run_id, TASK_ID)
    assert [t["try_number"] for t in tries] == [1, 2]
    assert tries[0]["state"] in ("failed", "up_for_retry"), tries[0]
    assert tries[1]["state"] == "success", tries[1]

    result = api.xcom_return(DAG_ID, run_id, TASK_ID)
    assert 0 < result["resumed_from"] <= CUT_AT, result
    assert result["bytes_transferred"] == FILE_SIZE - result["resumed_from"], result
    assert result["size"] == FILE_SIZE
    assert result["sha256"] == scenario.source_sha256
    assert "overlap" in result["checks_passed"], result

    first_log = api.log_text(DAG_ID, run_id, TASK_ID, 1)
    second_log = api.log_text(DAG_ID, run_id, TASK_ID, 2)
    assert f"Starting download of {FILE_SIZE} bytes" in first_log, first_log[-3000:]
    assert "TransferInterrupted" in first_log, first_log[-3000:]
    assert f"Resuming at {result['resumed_from']} of {FILE_SIZE} bytes" in second_log, second_log[-3000:]

    assert sha256_file(scenario.local_path) == scenario.source_sha256
    assert sorted(p.name for p in scenario.local_path.parent.iterdir()) == [scenario.local_path.name]
    return tries


def check_clear_downloads_again(api: AirflowAPI, scenario: Scenario) -> dict[str, Any]:
    """Delete the target, clear the task through the API: the next try downloads the whole file."""
    scenario.local_path.unlink()
    cleared = api.post(
        f"/dags/{DAG_ID}/clearTaskInstances",
        {
            "dry_run": False,
            "dag_run_id": scenario.run_id,
            "task_ids": [TASK_ID],
            "only_failed": False,
            "reset_dag_runs": True,
        },
    )
    assert cleared["total_entries"] == 1, cleared
    ti = wait_for_state(api, scenario.run_id, "success", try_number=3, bad=("failed",))
    wait_for_run(api, scenario.run_id)
    result = api.xcom_return(DAG_ID, scenario.run_id, TASK_ID)
    assert result["resumed_from"] == 0, result
    assert result["bytes_transferred"] == FILE_SIZE, result
    assert result["skipped"] is False
    assert sha256_file(scenario.local_path) == scenario.source_sha256
    return ti


def check_no_secrets(deployment: AirflowDeployment, server: ServerInfo) -> None:
    """No log or file the deployment wrote holds a password, a secret key or the client's private key."""
    key_lines = server.client_key.private.read_text().splitlines()[1:-1]
    leaks = deployment.files_containing([*deployment.secrets(), *key_lines])
    assert not leaks, leaks


def take_screenshot(deployment: AirflowDeployment, run_id: str) -> None:
    """Run ``scripts/screenshot_ui.py`` against this deployment when ``SFTP_RESUME_SCREENSHOT`` asks."""
    target = os.environ.get("SFTP_RESUME_SCREENSHOT")
    if not target:
        return
    env = dict(os.environ, AIRFLOW_UI_USERNAME=deployment.username, AIRFLOW_UI_PASSWORD=deployment.password)
    subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "screenshot_ui.py"),
            "--base-url",
            deployment.base_url,
            "--dag-id",
            DAG_ID,
            "--run-id",
            run_id,
            "--task-id",
            TASK_ID,
            "--out",
            str(REPO_ROOT / target),
        ],
        check=True,
        env=env,
        timeout=180,
    )


def test_local_executor_retry_resumes(
    local_deployment: AirflowDeployment, api: AirflowAPI, openssh_server: ServerInfo, tmp_path: Path
) -> None:
    started = time.monotonic()
    proxy = FaultProxy(openssh_server.port, rate=RATE)
    try:
        scenario = run_interrupted_download(api, openssh_server, proxy, tmp_path)
        check_resumed(api, scenario)
        take_screenshot(local_deployment, scenario.run_id)
        check_clear_downloads_again(api, scenario)
        check_no_secrets(local_deployment, openssh_server)
    finally:
        proxy.stop()
    print(f"LocalExecutor scenario: {time.monotonic() - started:.0f} s after the deployment was up")


def test_celery_retry_resumes_on_the_other_worker(
    celery_deployment: AirflowDeployment, api: AirflowAPI, openssh_server: ServerInfo, tmp_path: Path
) -> None:
    started = time.monotonic()
    stopped: list[str] = []

    def stop_first_worker(first_try: dict[str, Any]) -> None:
        # The try that was cut ran on one of the two workers; stop that one (by PID) so the
        # scheduler's retry can only run on the other.
        name = first_try["hostname"]
        assert name in celery_deployment.workers, first_try
        celery_deployment.workers[name].stop()
        stopped.append(name)

    proxy = FaultProxy(openssh_server.port, rate=RATE)
    try:
        scenario = run_interrupted_download(
            api, openssh_server, proxy, tmp_path, after_first_try=stop_first_worker
        )
        tries = check_resumed(api, scenario)
        assert tries[0]["hostname"] == stopped[0]
        assert tries[1]["hostname"] in celery_deployment.workers
        assert tries[1]["hostname"] != tries[0]["hostname"], "the retry must run on the other worker"
        check_clear_downloads_again(api, scenario)
        check_no_secrets(celery_deployment, openssh_server)
    finally:
        proxy.stop()
    print(f"CeleryExecutor scenario: {time.monotonic() - started:.0f} s after the deployment was up")
