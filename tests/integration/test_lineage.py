"""OpenLineage: the same datasets as the stock SFTPOperator, from real operators on real connections."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_sftp_resume.lineage import Direction, hook_transfer_lineage, operator_lineage
from tests.conftest import REPO_ROOT, sha256_file, write_random
from tests.support.airflow_env import connection_json

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.servers import ServerInfo

pytest.importorskip(
    "airflow.providers.openlineage", reason="needs the openlineage extra (scripts/bootstrap.sh installs it)"
)

LOCAL_ADDRESS = socket.gethostbyname(socket.gethostname())


def define_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> str:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "sftp", **fields}))
    return conn_id


def stock_lineage(conn_id: str, remote: str, local: str, operation: str) -> Any:
    from airflow.providers.sftp.operators.sftp import SFTPOperator

    stock = SFTPOperator(
        task_id="stock",
        ssh_conn_id=conn_id,
        remote_filepath=remote,
        local_filepath=local,
        operation=operation,
    )
    return stock.get_openlineage_facets_on_start()


def ours(conn_id: str, remote: str, local: str, **kwargs: Any) -> Any:
    from airflow_provider_sftp_resume.operators import ResumableSFTPDownloadOperator

    return ResumableSFTPDownloadOperator(
        task_id="ours", sftp_conn_id=conn_id, remote_path=remote, local_path=local, **kwargs
    )


def names(datasets: list[Any]) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in datasets]


@pytest.mark.parametrize(
    ("host", "port", "remote_namespace"),
    [
        ("127.0.0.1", 2222, "file://127.0.0.1:2222"),
        ("localhost", None, "file://127.0.0.1:22"),  # resolved, and the default port spelled out
        ("sftp.invalid", 22, "file://sftp.invalid:22"),  # does not resolve: the name as given
    ],
)
def test_download_datasets_equal_the_stock_operators(
    monkeypatch: pytest.MonkeyPatch, host: str, port: int | None, remote_namespace: str
) -> None:
    fields: dict[str, Any] = {"host": host, "login": "partner"}
    if port is not None:
        fields["port"] = port
    conn_id = define_connection(monkeypatch, "lineage_conn", **fields)
    remote, local = "/outgoing/2026-01-01/dump.tar.gz", "/data/in/dump.tar.gz"

    lineage = ours(conn_id, remote, local).get_openlineage_facets_on_start()
    stock = stock_lineage(conn_id, remote, local, "get")

    assert names(lineage.inputs) == [(remote_namespace, remote)]
    assert names(lineage.outputs) == [(f"file://{LOCAL_ADDRESS}:22", local)]
    assert lineage.inputs == stock.inputs
    assert lineage.outputs == stock.outputs


def test_upload_direction_equals_the_stock_put(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared helper, as an upload operator will use it: local input, remote output."""
    from airflow_provider_sftp_resume.hooks import ResumableSFTPHook

    conn_id = define_connection(monkeypatch, "lineage_put", host="127.0.0.1", port=2200, login="u")
    remote, local = "/incoming/report.csv", "/data/out/report.csv"
    hook = ResumableSFTPHook(ssh_conn_id=conn_id)
    lineage = operator_lineage(
        hook_transfer_lineage(hook, remote_paths=remote, local_paths=local, direction=Direction.UPLOAD)
    )
    stock = stock_lineage(conn_id, remote, local, "put")
    assert names(lineage.inputs) == [(f"file://{LOCAL_ADDRESS}:22", local)]
    assert names(lineage.outputs) == [("file://127.0.0.1:2200", remote)]
    assert (lineage.inputs, lineage.outputs) == (stock.inputs, stock.outputs)


def test_upload_and_directory_operators_name_their_datasets_like_the_stock_operator(
    openssh_server: ServerInfo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from airflow_provider_sftp_resume.operators import (
        ResumableSFTPDirectoryDownloadOperator,
        ResumableSFTPUploadOperator,
    )

    monkeypatch.setenv("AIRFLOW_CONN_LINEAGE_UP", connection_json(openssh_server))
    local = tmp_path / "report.csv"
    write_random(local, 12_345, seed=62)
    remote = tmp_path / "remote" / "report.csv"
    upload = ResumableSFTPUploadOperator(
        task_id="up",
        sftp_conn_id="lineage_up",
        local_path=str(local),
        remote_path=str(remote),
        create_intermediate_dirs=True,
    )
    stock = stock_lineage("lineage_up", str(remote), str(local), "put")
    start = upload.get_openlineage_facets_on_start()
    assert (start.inputs, start.outputs) == (stock.inputs, stock.outputs)
    upload.execute({})  # type: ignore[arg-type]
    statistics = upload.get_openlineage_facets_on_complete(None).outputs[0].outputFacets["outputStatistics"]
    assert (statistics.size, statistics.fileCount) == (12_345, 1)

    mirror = ResumableSFTPDirectoryDownloadOperator(
        task_id="dir",
        sftp_conn_id="lineage_up",
        remote_path=str(remote.parent),
        local_dir=str(tmp_path / "in"),
    )
    mirror.execute({"ti": None})  # type: ignore[arg-type]
    after = mirror.get_openlineage_facets_on_complete(None)
    assert names(after.inputs) == [(f"file://127.0.0.1:{openssh_server.port}", str(remote.parent))]
    assert names(after.outputs) == [(f"file://{LOCAL_ADDRESS}:22", str(tmp_path / "in"))]
    statistics = after.outputs[0].outputFacets["outputStatistics"]
    assert (statistics.size, statistics.fileCount) == (12_345, 1)


def test_on_complete_adds_the_size_written_after_a_real_download(
    openssh_server: ServerInfo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source = tmp_path / "remote.bin"
    digest = write_random(source, 300_000, seed=61)
    target = tmp_path / "local.bin"
    monkeypatch.setenv("AIRFLOW_CONN_LINEAGE_REAL", connection_json(openssh_server))
    operator = ours("lineage_real", str(source), str(target))

    before = operator.get_openlineage_facets_on_complete(None)
    result = operator.execute({})  # type: ignore[arg-type]
    after = operator.get_openlineage_facets_on_complete(None)

    assert sha256_file(target) == digest == result["sha256"]
    assert names(after.inputs) == [(f"file://127.0.0.1:{openssh_server.port}", str(source))]
    assert names(after.outputs) == [(f"file://{LOCAL_ADDRESS}:22", str(target))]
    statistics = after.outputs[0].outputFacets["outputStatistics"]
    assert (statistics.size, statistics.fileCount) == (300_000, 1)
    assert not getattr(before.outputs[0], "outputFacets", None), "no size before the transfer ran"
    start = operator.get_openlineage_facets_on_start()
    assert names(start.outputs) == names(after.outputs)


def test_operator_works_without_the_openlineage_provider(openssh_server: ServerInfo, tmp_path: Path) -> None:
    """
    A real download in a process where OpenLineage cannot be imported; lineage is simply None.

    The process hides the OpenLineage client and the provider's code (ModuleNotFoundError, as when
    they are not installed); only the provider's metadata stays visible, because Airflow's provider
    discovery reads it from the installed distribution.
    """
    source = tmp_path / "remote.bin"
    digest = write_random(source, 100_000, seed=62)
    target = tmp_path / "local.bin"
    script = f"""
import importlib.abc, sys

VISIBLE = ("airflow.providers.openlineage", "airflow.providers.openlineage.get_provider_info")

class NoOpenLineage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        hidden = name == "openlineage" or name.startswith(("openlineage.", "airflow.providers.openlineage."))
        if hidden and name not in VISIBLE:
            raise ModuleNotFoundError(f"No module named {{name!r}} (hidden by the test)", name=name)
        return None

sys.meta_path.insert(0, NoOpenLineage())
try:
    import airflow.providers.openlineage.extractors
    raise SystemExit("OpenLineage is not hidden")
except ModuleNotFoundError:
    pass
from airflow_provider_sftp_resume.operators import ResumableSFTPDownloadOperator

op = ResumableSFTPDownloadOperator(
    task_id="t", sftp_conn_id="lineage_none", remote_path={str(source)!r}, local_path={str(target)!r}
)
assert op.get_openlineage_facets_on_start() is None
print("sha256=" + op.execute({{}})["sha256"])
assert op.get_openlineage_facets_on_complete(None) is None
assert not [m for m in sys.modules if m.startswith("openlineage") or m.endswith("extractors")]
"""
    env = {**os.environ, "AIRFLOW_CONN_LINEAGE_NONE": connection_json(openssh_server)}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed = [line[7:] for line in done.stdout.splitlines() if line.startswith("sha256=")]
    assert printed == [digest], done.stdout[-3000:]
    assert sha256_file(target) == digest
