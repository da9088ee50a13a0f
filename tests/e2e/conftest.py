"""Real Airflow for end-to-end tests: a migrated SQLite metadata DB and connections from env vars."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.integration.conftest import moto_server  # noqa: F401 - the S3 endpoint, shared fixture
from tests.support.airflow_env import connection_json
from tests.support.faultproxy import FaultProxy

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support.servers import ServerInfo

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"
DefineConnection = Callable[..., str]


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Create the metadata DB once per test session (``airflow db migrate``)."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )


@pytest.fixture
def sftp_conn(monkeypatch: pytest.MonkeyPatch) -> DefineConnection:
    """Return a function that (re)defines an sftp connection (default ``sftp_test``) for the test."""

    def define(
        server: ServerInfo, port: int | None = None, conn_id: str = "sftp_test", **extra: object
    ) -> str:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", connection_json(server, port, **extra))
        return conn_id

    return define


@pytest.fixture
def proxy_conn(openssh_server: ServerInfo, sftp_conn: DefineConnection) -> Iterator[FaultProxy]:
    """The ``sftp_test`` connection, routed through a fault proxy; stopped after the test."""
    proxy = FaultProxy(openssh_server.port)
    sftp_conn(openssh_server, port=proxy.port)
    try:
        yield proxy
    finally:
        proxy.stop()
