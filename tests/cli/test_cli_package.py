"""The console script is declared, points at the command's ``main``, and its help says the exit codes."""

from __future__ import annotations

import importlib
import tomllib
from typing import TYPE_CHECKING

from airflow_provider_sftp_resume import __version__
from airflow_provider_sftp_resume.cli import ExitCode, main
from tests.cli.conftest import cli_env, run_cli
from tests.conftest import REPO_ROOT

if TYPE_CHECKING:
    from pathlib import Path


def test_pyproject_declares_the_sftp_resume_console_script() -> None:
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, name = scripts["sftp-resume"].partition(":")
    assert getattr(importlib.import_module(module), name) is main


def test_help_lists_the_commands_and_the_exit_codes(home: Path) -> None:
    ran = run_cli("--help", env=cli_env(home))
    assert ran.code == 0
    for word in ("get", "put", "mirror", "75", "65", "--password-env"):
        assert word in ran.stdout
    version = run_cli("--version", env=cli_env(home))
    assert version.stdout.strip() == f"sftp-resume {__version__}"
    assert {int(code) for code in ExitCode} == {0, 1, 2, 65, 75, 130, 143}


def test_download_flags_are_refused_on_put_with_the_reason(home: Path, tmp_path: Path) -> None:
    ran = run_cli("put", str(tmp_path / "a"), "/b", "--host", "h", "--verify", "tail", env=cli_env(home))
    assert ran.code == 2
    assert "sampled blocks back from the server" in ran.stderr
