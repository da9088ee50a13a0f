"""Helpers for driving a real Airflow in tests and in the demo: connections, XComs, test DAG runs."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.version import Version

if TYPE_CHECKING:
    from tests.support.servers import ServerInfo

EMPTY_DAGS = Path(__file__).resolve().parent / "no_dags"
# The test helpers branch on the Airflow line (2.11 or 3.x); the package itself goes through
# ``airflow.providers.common.compat`` instead. Read from the distribution: importing airflow here
# would happen before tests/conftest.py has pointed AIRFLOW_HOME at its private directory.
AIRFLOW_VERSION = Version(version("apache-airflow"))
AIRFLOW_3 = AIRFLOW_VERSION.major >= 3


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
            "extra": {k: v for k, v in extras.items() if v is not None},
        }
    )


def xcom_return(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> object:
    """Read a task's return value from the metadata DB."""
    from airflow.utils.session import create_session

    if not AIRFLOW_3:
        from airflow.models.xcom import XCom

        return XCom.get_one(
            run_id=run_id, key="return_value", task_id=task_id, dag_id=dag_id, map_index=map_index
        )
    from airflow.models.xcom import XComModel

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(
                run_id=run_id, key="return_value", task_ids=task_id, dag_ids=dag_id, map_indexes=map_index
            )
        ).first()
        return XComModel.deserialize_value(row) if row is not None else None


def task_instance(dag_run: Any, task_id: str) -> Any:
    """The task instance of ``task_id`` in ``dag_run``, detached from its DB session."""
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = dag_run.get_task_instance(task_id, session=session)
        session.expunge(ti)
        return ti


def sync_dags(*dags: Any) -> None:
    """Write ``dags`` to the metadata DB as the DAG processor would (DAG rows, assets, schedules)."""
    if not AIRFLOW_3:
        from airflow.models.dagbag import DagBag as DagBag2

        bag2 = DagBag2(dag_folder=str(EMPTY_DAGS))
        for dag in dags:
            bag2.bag_dag(dag, root_dag=dag)
        bag2.sync_to_db()
        return
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=str(EMPTY_DAGS))
    for dag in dags:
        bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)


def run_dag_test(dag: Any, *, with_dags: tuple[Any, ...] = (), **kwargs: Any) -> Any:
    """
    Serialise ``dag`` (and ``with_dags``) into the metadata DB, then run ``dag.test()``.

    Airflow 3 only runs DAGs it has serialised; test DAGs live in test modules, not in a bundle.
    Airflow 2.11 runs the DAG object it is given, but asset events too need the DAGs in the DB.
    ``with_dags`` are unpaused (new DAGs start paused, and a paused DAG is not queued by an asset).
    """
    if AIRFLOW_3 or with_dags:
        sync_dags(dag, *with_dags)
    if with_dags:
        from airflow.models.dag import DagModel
        from airflow.utils.session import create_session

        with create_session() as session:
            session.query(DagModel).filter(DagModel.dag_id.in_([d.dag_id for d in with_dags])).update(
                {DagModel.is_paused: False}, synchronize_session=False
            )
    return dag.test(**kwargs)


def asset_events(uri: str) -> list[dict[str, Any]]:
    """The events of the asset (Dataset on Airflow 2.11) ``uri``: source task and ``extra``."""
    from airflow.utils.session import create_session

    if AIRFLOW_3:
        from airflow.models.asset import AssetEvent as Event
        from airflow.models.asset import AssetModel as Model

        link = Event.asset_id
    else:
        from airflow.models.dataset import DatasetEvent as Event
        from airflow.models.dataset import DatasetModel as Model

        link = Event.dataset_id
    with create_session() as session:
        rows = session.query(Event).join(Model, Model.id == link).filter(Model.uri == uri).all()
        return [
            {
                "dag_id": row.source_dag_id,
                "run_id": row.source_run_id,
                "task_id": row.source_task_id,
                "extra": dict(row.extra or {}),
            }
            for row in rows
        ]


def queued_dag_ids(uri: str) -> set[str]:
    """DAGs queued to run because the asset ``uri`` changed (not yet picked up by a scheduler)."""
    from airflow.utils.session import create_session

    if AIRFLOW_3:
        from airflow.models.asset import AssetDagRunQueue as Queue
        from airflow.models.asset import AssetModel as Model

        link = Queue.asset_id
    else:
        from airflow.models.dataset import DatasetDagRunQueue as Queue
        from airflow.models.dataset import DatasetModel as Model

        link = Queue.dataset_id
    with create_session() as session:
        rows = session.query(Queue).join(Model, Model.id == link).filter(Model.uri == uri).all()
        return {row.target_dag_id for row in rows}


def dag_bag(dag_folder: Path | str) -> Any:
    """A ``DagBag`` of ``dag_folder`` (the class moved in Airflow 3)."""
    if AIRFLOW_3:
        from airflow.dag_processing.dagbag import DagBag
    else:
        from airflow.models.dagbag import DagBag
    return DagBag(dag_folder=str(dag_folder))
