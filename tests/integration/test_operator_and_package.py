"""The public surface: import paths, parse-time validation, provider registration."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from airflow_provider_sftp_resume import core
from airflow_provider_sftp_resume.hooks import ResumableSFTPHook
from airflow_provider_sftp_resume.operators import ResumableSFTPDownloadOperator


def make(**kwargs: object) -> ResumableSFTPDownloadOperator:
    return ResumableSFTPDownloadOperator(task_id="t", remote_path="/r", local_path="/l", **kwargs)  # type: ignore[arg-type]


def test_public_names_are_pinned() -> None:
    assert importlib.import_module("airflow_provider_sftp_resume.hooks").__all__ == ["ResumableSFTPHook"]
    assert importlib.import_module("airflow_provider_sftp_resume.operators").__all__ == [
        "ResumableSFTPDownloadOperator"
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
    ],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(**kwargs)


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
    for kind in ("hooks", "operators"):
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
