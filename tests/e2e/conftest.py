"""Real Airflow for end-to-end tests: a migrated SQLite metadata DB and connections from env vars."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support.servers import ServerInfo


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Create the metadata DB once per test session (``airflow db migrate``)."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )


def connection_json(server: ServerInfo, port: int | None = None, **extra: object) -> str:
    """The stock ``sftp`` connection, as a user would configure it, in Airflow's JSON env format."""
    extras: dict[str, object] = {
        "key_file": str(server.client_key.private),
        "host_key": server.host_key.public_line,
        "look_for_keys": "false",
        "conn_timeout": 10,
    }
    extras.update(extra)
    return json.dumps(
        {
            "conn_type": "sftp",
            "host": server.host,
            "port": port or server.port,
            "login": server.username,
            "extra": extras,
        }
    )


@pytest.fixture
def sftp_conn(monkeypatch: pytest.MonkeyPatch) -> Iterator[callable]:  # type: ignore[valid-type]
    """Return a function that (re)defines connection ``sftp_test`` for the test's duration."""

    def define(
        server: ServerInfo, port: int | None = None, conn_id: str = "sftp_test", **extra: object
    ) -> str:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", connection_json(server, port, **extra))
        return conn_id

    return define


def xcom_return(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> object:
    """Read a task's return value from the metadata DB."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(
                run_id=run_id, key="return_value", task_ids=task_id, dag_ids=dag_id, map_indexes=map_index
            )
        ).first()
        return XComModel.deserialize_value(row) if row is not None else None


def task_instance(dag_run: object, task_id: str) -> object:
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = dag_run.get_task_instance(task_id, session=session)  # type: ignore[attr-defined]
        session.expunge(ti)
        return ti


EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"


def run_dag_test(dag: Any, **kwargs: Any) -> Any:
    """
    Serialise ``dag`` into the metadata DB, as the DAG processor would, then run ``dag.test()``.

    Airflow 3 only runs DAGs it has serialised; test DAGs live in test modules, not in a bundle.
    """
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=str(EMPTY_DAGS))
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)
    return dag.test(**kwargs)


EMPTY_DAGS = Path(__file__).resolve().parent / "no_dags"
