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
    assert {
        "example_sftp_resume_download",
        "example_sftp_resume_mapped",
        "example_sftp_resume_directory",
        "example_sftp_resume_upload",
        "example_sftp_to_s3",
        "example_sftp_resume_asset_producer",
        "example_sftp_resume_asset_consumer",
    } <= set(bag.dag_ids)


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


def test_asset_example_records_the_event_and_queues_the_downstream_dag(
    openssh_server: ServerInfo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tests.support.airflow_env import asset_events, connection_json, queued_dag_ids, run_dag_test

    source = tmp_path / "outgoing" / "dump.tar.gz"
    source.parent.mkdir()
    digest = write_random(source, 3 * 1024 * 1024, seed=42)
    target = tmp_path / "landing" / "dump.tar.gz"
    monkeypatch.setenv("AIRFLOW_CONN_SFTP_RESUME_EXAMPLE", connection_json(openssh_server))
    bag = load_example_dags()
    producer = bag.get_dag("example_sftp_resume_asset_producer")
    consumer = bag.get_dag("example_sftp_resume_asset_consumer")
    fetch = producer.get_task("fetch")
    fetch.local_path = str(target)  # the example lands in /tmp/sftp-resume-example; the test in tmp_path
    (asset,) = fetch.outlets
    before = len(asset_events(asset.uri))

    dag_run = run_dag_test(producer, with_dags=(consumer,), run_conf={"remote_path": str(source)})

    assert str(dag_run.state) == "success"
    assert sha256_file(target) == digest
    events = asset_events(asset.uri)
    assert len(events) == before + 1
    event = events[-1]
    assert (event["dag_id"], event["run_id"], event["task_id"]) == (producer.dag_id, dag_run.run_id, "fetch")
    assert event["extra"] == {"local_path": str(target), "size": 3 * 1024 * 1024, "sha256": digest}
    assert consumer.dag_id in queued_dag_ids(asset.uri)

    # The consumer's check, fed the recorded event as the scheduler would pass it.
    from types import SimpleNamespace

    check = consumer.get_task("check_landed_file").python_callable
    recorded = {asset.uri: [SimpleNamespace(extra=event["extra"])]}
    assert check(triggering_asset_events=recorded) == {str(target): digest}
    target.write_bytes(b"changed after the download")
    with pytest.raises(ValueError, match="changed since it was downloaded"):
        check(triggering_dataset_events=recorded)  # the Airflow 2.11 name


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


def test_example_sftp_to_s3_dag_runs_end_to_end_with_a_cut(
    openssh_server: ServerInfo, moto_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Through an AWS connection whose extra has ``endpoint_url``, as a user points Airflow at MinIO."""
    import hashlib
    import secrets

    from tests.support.airflow_env import connection_json

    client = moto_server.client()
    bucket = f"landing-{secrets.token_hex(4)}"
    client.create_bucket(Bucket=bucket)
    source = tmp_path / "outgoing" / "dump.tar.gz"
    source.parent.mkdir()
    digest = write_random(source, 17 * 1024 * 1024, seed=43)
    aws = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": moto_server.endpoint_url, "region_name": "us-east-1"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_AWS_RESUME_EXAMPLE", json.dumps(aws))
    proxy = FaultProxy(openssh_server.port)
    try:
        monkeypatch.setenv(
            "AIRFLOW_CONN_SFTP_RESUME_EXAMPLE", connection_json(openssh_server, port=proxy.port)
        )
        dag = load_example_dags().get_dag("example_sftp_to_s3")
        task = dag.get_task("copy")
        task.retry_delay = timedelta(seconds=1)
        task.part_size = 5 * 1024 * 1024
        proxy.cut_after(12 * 1024 * 1024)
        dag_run = dag.test(
            run_conf={"sftp_path": str(source), "s3_bucket": bucket, "s3_key": "partner/dump.tar.gz"}
        )
    finally:
        proxy.stop()
    assert str(dag_run.state) == "success"
    result = xcom_return(dag.dag_id, dag_run.run_id, "copy")
    assert isinstance(result, dict), json.dumps(result)
    assert result["resumed_from"] > 0
    assert result["bytes_transferred"] <= result["size"] - result["resumed_from"] + result["part_size"]
    body = client.get_object(Bucket=bucket, Key="partner/dump.tar.gz")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == digest == result["sha256"]
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]] == ["partner/dump.tar.gz"]
    assert "testing" not in json.dumps(result)
