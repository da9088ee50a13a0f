"""Example DAGs double as tests: they import cleanly and one runs end to end against a real sshd."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import sha256_file, write_random
from tests.e2e.conftest import EXAMPLE_DAGS
from tests.support.airflow_env import xcom_return
from tests.support.faultproxy import FaultProxy

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.servers import ServerInfo

pytestmark = pytest.mark.usefixtures("airflow_db")


def load_example_dags() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(EXAMPLE_DAGS))


def test_example_dags_import_without_errors() -> None:
    bag = load_example_dags()
    assert bag.import_errors == {}
    assert set(bag.dag_ids) >= {
        "example_sftp_resume_download",
        "example_sftp_resume_mapped",
        "example_sftp_resume_directory",
        "example_sftp_resume_upload",
    }


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


def test_example_mapped_directory_and_upload_dags_run(
    openssh_server: ServerInfo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tests.support.airflow_env import connection_json

    monkeypatch.setenv("AIRFLOW_CONN_SFTP_RESUME_EXAMPLE", connection_json(openssh_server))
    outgoing = tmp_path / "outgoing"
    outgoing.mkdir()
    digests = {
        name: write_random(outgoing / name, 200_000, seed=i) for i, name in enumerate(["a.csv", "b.csv"])
    }
    (outgoing / "notes.txt").write_text("not matched")
    bag = load_example_dags()

    mapped = bag.get_dag("example_sftp_resume_mapped")
    run = mapped.test(
        run_conf={"remote_dir": str(outgoing), "pattern": "*.csv", "local_dir": str(tmp_path / "mapped")}
    )
    assert str(run.state) == "success"
    for name, digest in digests.items():
        assert sha256_file(tmp_path / "mapped" / name) == digest
    assert not (tmp_path / "mapped" / "notes.txt").exists()

    directory = bag.get_dag("example_sftp_resume_directory")
    sensor = directory.get_task("wait_until_written")
    sensor.quiet_period, sensor.poke_interval = 0.5, 0.2  # the example waits a minute; tests don't
    run = directory.test(
        run_conf={
            "remote_glob": f"{outgoing}/*.csv",
            "local_dir": str(tmp_path / "mirror"),
            "archive_dir": str(tmp_path / "archive"),
        }
    )
    assert str(run.state) == "success"
    for name, digest in digests.items():
        assert sha256_file(tmp_path / "mirror" / name) == digest
        assert sha256_file(tmp_path / "archive" / name) == digest
    assert sorted(p.name for p in outgoing.iterdir()) == ["notes.txt"]

    upload = bag.get_dag("example_sftp_resume_upload")
    remote = tmp_path / "incoming" / "a.csv"
    run = upload.test(run_conf={"local_path": str(tmp_path / "mirror" / "a.csv"), "remote_path": str(remote)})
    assert str(run.state) == "success"
    assert sha256_file(remote) == digests["a.csv"]
