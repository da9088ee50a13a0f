"""A real Airflow deployment per test: PostgreSQL, (Redis,) API server, scheduler, DAG processor, workers."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.deployment import AirflowAPI, AirflowDeployment, deployment_context, find_postgres_bindir

#: The DAGs of the S3 scale-out deployment (a DAG with a short retry delay, see its docstring).
DEPLOYMENT_DAGS = Path(__file__).resolve().parent / "dags"

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    """Remember each phase's report on the test item, so fixtures can tell whether the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


def _require(what: str, present: bool, package: str) -> None:
    if present:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing on CI: .ci/run must install Debian's {package}")
    pytest.skip(f"{what} is not installed (apt-get install {package})")


@pytest.fixture
def local_deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AirflowDeployment]:
    """LocalExecutor + PostgreSQL."""
    _require("PostgreSQL", find_postgres_bindir() is not None, "postgresql")
    with deployment_context(tmp_path / "deployment", executor="LocalExecutor") as deployment:
        yield deployment
        _print_report_on_failure(request, deployment)


@pytest.fixture
def celery_deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AirflowDeployment]:
    """CeleryExecutor + PostgreSQL + Redis, two Celery workers ``worker-a`` and ``worker-b``."""
    _require("PostgreSQL", find_postgres_bindir() is not None, "postgresql")
    _require("redis-server", shutil.which("redis-server") is not None, "redis-server")
    with deployment_context(
        tmp_path / "deployment", executor="CeleryExecutor", celery_workers=("worker-a", "worker-b")
    ) as deployment:
        yield deployment
        _print_report_on_failure(request, deployment)


@pytest.fixture
def celery_s3_deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AirflowDeployment]:
    """
    CeleryExecutor + PostgreSQL + Redis, two Celery workers ``worker-a`` and ``worker-b`` that share
    no disk: each has its own HOME, TMPDIR and working directory (``tmp_path/worker-a``, ...), as
    workers on separate hosts or pods have. DAGs: ``tests/deployment/dags``.

    A worker killed with SIGKILL stops heartbeating; the scheduler fails its try after 15 s
    (``task_instance_heartbeat_timeout``, 300 s by default) so that the retry comes within the test.
    """
    _require("PostgreSQL", find_postgres_bindir() is not None, "postgresql")
    _require("redis-server", shutil.which("redis-server") is not None, "redis-server")
    workers = ("worker-a", "worker-b")
    with deployment_context(
        tmp_path / "deployment",
        executor="CeleryExecutor",
        celery_workers=workers,
        dags_folder=DEPLOYMENT_DAGS,
        extra_env={
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "15",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "3",
        },
        worker_roots={name: tmp_path / name for name in workers},
    ) as deployment:
        yield deployment
        _print_report_on_failure(request, deployment)


def _print_report_on_failure(request: pytest.FixtureRequest, deployment: AirflowDeployment) -> None:
    report = getattr(request.node, "report_call", None)
    if report is None or report.failed:
        print(deployment.report())


@pytest.fixture
def api(request: pytest.FixtureRequest) -> Iterator[AirflowAPI]:
    """The REST API of whichever deployment the test uses."""
    names = ("celery_s3_deployment", "celery_deployment")
    name = next((n for n in names if n in request.fixturenames), "local_deployment")
    deployment: AirflowDeployment = request.getfixturevalue(name)
    client = deployment.api()
    yield client
    client.close()
