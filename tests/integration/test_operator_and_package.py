"""The public surface: import paths, parse-time validation, provider registration."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import subprocess
import sys
import threading
import time
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_sftp_resume import core
from airflow_provider_sftp_resume.core.resume.localfiles import LocalPaths
from airflow_provider_sftp_resume.hooks import ResumableSFTPHook
from airflow_provider_sftp_resume.operators import (
    ResumableSFTPDirectoryDownloadOperator,
    ResumableSFTPDownloadOperator,
    ResumableSFTPUploadOperator,
)
from tests.conftest import sha256_file, write_random
from tests.support.faultproxy import FaultProxy

if TYPE_CHECKING:
    from pathlib import Path


def make(**kwargs: object) -> ResumableSFTPDownloadOperator:
    return ResumableSFTPDownloadOperator(task_id="t", remote_path="/r", local_path="/l", **kwargs)  # type: ignore[arg-type]


def test_public_names_are_pinned() -> None:
    assert importlib.import_module("airflow_provider_sftp_resume.hooks").__all__ == ["ResumableSFTPHook"]
    assert importlib.import_module("airflow_provider_sftp_resume.operators").__all__ == [
        "ResumableSFTPDirectoryDownloadOperator",
        "ResumableSFTPDownloadOperator",
        "ResumableSFTPUploadOperator",
    ]
    assert {"download_file", "DownloadOptions", "DownloadResult", "TransferError", "SSHEndpoint"} <= set(
        core.__all__
    )


def test_templated_fields() -> None:
    assert set(ResumableSFTPDownloadOperator.template_fields) >= {
        "remote_path",
        "local_path",
        "expected_sha256",
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"verify": "crc32"}, "Unknown verify check 'crc32'"),
        ({"verify": ["size", "nope"]}, "Unknown verify check 'nope'"),
        ({"stall_timeout": 0}, "stall_timeout"),
        ({"checkpoint_interval": -1}, "checkpoint_interval"),
        ({"connect_attempts": 0}, "connect_attempts"),
        ({"transfer_attempts": 1.5}, "transfer_attempts"),
        ({"max_connections": 0}, "max_connections"),
        ({"max_connections": 99}, "max_connections"),
    ],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temp_suffix": ""}, "temp_suffix"),
        ({"temp_suffix": "../x"}, "temp_suffix"),
        ({"stall_timeout": -5}, "stall_timeout"),
        ({"progress_interval": 0}, "progress_interval"),
        ({"connect_attempts": True}, "connect_attempts"),
    ],
)
def test_upload_operator_checks_its_arguments_at_parse_time(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ResumableSFTPUploadOperator(task_id="u", local_path="/l", remote_path="/r", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 1000}, "concurrency"),
        ({"verify": "md5"}, "Unknown verify check"),
        ({"post_action": "move"}, "archive_dir"),
        ({"post_action": "shred"}, "Unknown post_action"),
        ({"archive_dir": "/archive"}, "post_action"),
        ({"checkpoint_interval": 0}, "checkpoint_interval"),
    ],
)
def test_directory_operator_checks_its_arguments_at_parse_time(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ResumableSFTPDirectoryDownloadOperator(task_id="d", remote_path="/r", local_dir="/l", **kwargs)  # type: ignore[arg-type]


def test_download_operator_checks_post_action_at_parse_time() -> None:
    with pytest.raises(ValueError, match="archive_dir"):
        make(post_action="move")
    assert make(post_action="move", archive_dir="{{ params.archive }}").archive_dir == "{{ params.archive }}"


def test_hook_is_not_built_at_parse_time(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise AssertionError("the hook must be built in execute(), not in __init__")

    monkeypatch.setattr(ResumableSFTPHook, "__init__", explode)
    operator = make(sftp_conn_id="does_not_exist")
    assert operator.sftp_conn_id == "does_not_exist"


def test_provider_entry_point_lists_every_module() -> None:
    points = [
        ep
        for ep in entry_points(group="apache_airflow_provider")
        if ep.value.startswith("airflow_provider_sftp_resume")
    ]
    assert len(points) == 1
    info = points[0].load()()
    assert info["package-name"] == "airflow-provider-sftp-resume"
    for kind in ("hooks", "operators", "sensors", "triggers"):
        for group in info[kind]:
            for module in group["python-modules"]:
                importlib.import_module(module)


def test_airflow_providers_list_shows_the_package() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "list", "-o", "plain"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "airflow-provider-sftp-resume" in done.stdout


def _operator_fixture(monkeypatch: pytest.MonkeyPatch, server: object, port: int) -> None:
    from tests.support.airflow_env import connection_json

    monkeypatch.setenv("AIRFLOW_CONN_SFTP_OP_TEST", connection_json(server, port=port))  # type: ignore[arg-type]


def test_on_kill_aborts_a_stalled_transfer_and_keeps_a_checkpoint(
    openssh_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source = tmp_path / "src.bin"
    write_random(source, 8 * 1024 * 1024, seed=51)
    target = tmp_path / "dst.bin"
    proxy = FaultProxy(openssh_server.port)
    try:
        _operator_fixture(monkeypatch, openssh_server, proxy.port)
        proxy.stall_after(3 * 1024 * 1024)
        operator = make(sftp_conn_id="sftp_op_test", stall_timeout=600, checkpoint_interval=0.05)
        operator.remote_path, operator.local_path = str(source), str(target)
        sidecar = LocalPaths.for_target(target).sidecar
        seen: dict[str, float | bool] = {}

        def kill_after_first_checkpoint() -> None:
            # on_kill comes from another thread, as in Airflow; execute() stays on the main thread
            # (Airflow 2.11's execute guard keeps its state in a thread-local of the main thread).
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if sidecar.exists() and json.loads(sidecar.read_text())["segments"][0]["done"] > 0:
                    seen["checkpoint"] = True
                    break
                time.sleep(0.05)
            seen["killed_at"] = time.monotonic()
            operator.on_kill()  # also when no checkpoint came, so the test cannot hang

        killer = threading.Thread(target=kill_after_first_checkpoint, daemon=True)
        killer.start()
        with pytest.raises(asyncio.CancelledError):
            operator.execute({})  # type: ignore[arg-type]
        ended_at = time.monotonic()
        killer.join(timeout=60)
    finally:
        proxy.stop()
    assert seen.get("checkpoint"), "no checkpoint before the stall"
    assert ended_at - float(seen["killed_at"]) < 10, "on_kill must end the transfer promptly"
    assert json.loads(sidecar.read_text())["segments"][0]["done"] > 0
    assert not target.exists()


def test_transfer_attempts_resume_within_one_try(
    openssh_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source = tmp_path / "src.bin"
    # The cut comes well after the first window (4 MiB in flight at loopback), so bytes are written
    # before it whatever the scheduling.
    digest = write_random(source, 32 * 1024 * 1024, seed=52)
    target = tmp_path / "dst.bin"
    proxy = FaultProxy(openssh_server.port)
    try:
        _operator_fixture(monkeypatch, openssh_server, proxy.port)
        proxy.cut_after(12 * 1024 * 1024)
        operator = make(sftp_conn_id="sftp_op_test", transfer_attempts=2, checkpoint_interval=0.05)
        operator.remote_path, operator.local_path = str(source), str(target)
        result = operator.execute({})  # type: ignore[arg-type]
    finally:
        proxy.stop()
    assert proxy.cuts == 1
    assert result["resumed_from"] > 0
    assert result["sha256"] == digest == sha256_file(target)


def test_default_is_one_attempt_per_try(
    openssh_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from airflow_provider_sftp_resume.core.errors import TransferInterrupted

    source = tmp_path / "src.bin"
    write_random(source, 4 * 1024 * 1024, seed=53)
    proxy = FaultProxy(openssh_server.port)
    try:
        _operator_fixture(monkeypatch, openssh_server, proxy.port)
        proxy.cut_after(1024 * 1024)
        operator = make(sftp_conn_id="sftp_op_test")
        operator.remote_path, operator.local_path = str(source), str(tmp_path / "dst.bin")
        with pytest.raises(TransferInterrupted):
            operator.execute({})  # type: ignore[arg-type]
    finally:
        proxy.stop()


def test_permanent_errors_become_airflow_fail_exception(
    openssh_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    _operator_fixture(monkeypatch, openssh_server, openssh_server.port)
    operator = make(sftp_conn_id="sftp_op_test")
    operator.remote_path, operator.local_path = str(tmp_path), str(tmp_path / "dst.bin")  # a directory
    with pytest.raises(AirflowFailException, match="is a directory"):
        operator.execute({})  # type: ignore[arg-type]
