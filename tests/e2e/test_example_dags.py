"""Example DAGs double as tests: they import cleanly and one runs end to end against a real sshd."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import sha256_file, write_random
from tests.e2e.conftest import EXAMPLE_DAGS
from tests.support.airflow_env import dag_bag, xcom_return
from tests.support.faultproxy import FaultProxy

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.servers import ServerInfo

pytestmark = pytest.mark.usefixtures("airflow_db")


def load_example_dags() -> Any:
    return dag_bag(EXAMPLE_DAGS)


def test_example_dags_import_without_errors() -> None:
    bag = load_example_dags()
    assert bag.import_errors == {}
    assert "example_sftp_resume_download" in bag.dag_ids


def test_example_download_dag_runs_end_to_end_with_a_cut(
    openssh_server: ServerInfo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tests.support.airflow_env import connection_json

    source = tmp_path / "outgoing" / "dump.tar.gz"
    source.parent.mkdir()
    digest = write_random(source, 10 * 1024 * 1024, seed=41)
    target = tmp_path / "in" / "dump.tar.gz"
    proxy = FaultProxy(openssh_server.port)
    try:
        monkeypatch.setenv(
            "AIRFLOW_CONN_SFTP_RESUME_EXAMPLE", connection_json(openssh_server, port=proxy.port)
        )
        dag = load_example_dags().get_dag("example_sftp_resume_download")
        dag.get_task("fetch").retry_delay = timedelta(seconds=1)  # the example waits 30 s; tests don't
        proxy.cut_after(4 * 1024 * 1024)
        dag_run = dag.test(run_conf={"remote_path": str(source), "local_path": str(target)})
    finally:
        proxy.stop()
    assert str(dag_run.state) == "success"
    result = xcom_return(dag.dag_id, dag_run.run_id, "fetch")
    assert isinstance(result, dict), json.dumps(result)
    assert result["resumed_from"] > 0
    assert sha256_file(target) == digest == result["sha256"]
