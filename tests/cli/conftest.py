"""Run the real ``sftp-resume`` command (``python -m airflow_provider_sftp_resume.cli``) as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import REPO_ROOT
from tests.support.servers import AsyncsshServer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.keys import KeyPair
    from tests.support.servers import ServerInfo

COMMAND = (sys.executable, "-m", "airflow_provider_sftp_resume.cli")
PASSWORD = "correct horse battery staple"


@dataclass
class Ran:
    """One finished run of the command."""

    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.stdout)
        return document


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a run: an empty HOME (no known_hosts, no default keys), this checkout first."""
    dropped = ("AIRFLOW_CONN_", "SFTP_PASSWORD", "SSH_AUTH_SOCK")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env.update(HOME=str(home), PYTHONPATH=str(REPO_ROOT), **extra)
    return env


def run_cli(*args: str, env: dict[str, str], timeout: float = 120) -> Ran:
    """Run ``sftp-resume ARGS`` to the end."""
    done = subprocess.run(
        [*COMMAND, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def server_flags(server: ServerInfo, port: int) -> list[str]:
    """Explicit connection flags for ``server`` reached on ``port`` (its host key pinned)."""
    return [
        "--host",
        server.host,
        "--port",
        str(port),
        "--user",
        server.username,
        "--key",
        str(server.client_key.private),
        "--host-key",
        server.host_key.public_line,
        "--connect-timeout",
        "10",
    ]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def password_server(tmp_path_factory: pytest.TempPathFactory, client_key: KeyPair) -> Iterator[ServerInfo]:
    """The embedded asyncssh server, also accepting :data:`PASSWORD` (sshd would need a system password)."""
    server = AsyncsshServer(tmp_path_factory.mktemp("password-sshd"), client_key, password=PASSWORD)
    yield server.info
    server.stop()
