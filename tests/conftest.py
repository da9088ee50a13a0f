"""Shared fixtures: real SFTP servers, the fault proxy, test files, and an isolated Airflow home."""

from __future__ import annotations

import atexit
import hashlib
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

# Airflow reads its configuration at import time: point it at a private home before anything
# imports it. Each pytest process gets its own SQLite metadata DB. Processes the tests start (a DAG
# run in a subprocess imports this module too) inherit the variable and use the same home; only the
# process that made the directory removes it, when it exits.
_HOME_VARIABLE = "SFTP_RESUME_TEST_AIRFLOW_HOME"


def _remove_home(path: Path, owner_pid: int) -> None:
    if os.getpid() == owner_pid:  # not in a forked child, which inherits atexit handlers
        shutil.rmtree(path, ignore_errors=True)


if os.environ.get(_HOME_VARIABLE):
    _AIRFLOW_HOME = Path(os.environ[_HOME_VARIABLE])
else:
    _AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="sftp-resume-airflow-"))
    os.environ[_HOME_VARIABLE] = str(_AIRFLOW_HOME)
    atexit.register(_remove_home, _AIRFLOW_HOME, os.getpid())
REPO_ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("AIRFLOW_HOME", str(_AIRFLOW_HOME))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO_ROOT / "example_dags"))
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_AIRFLOW_HOME}/airflow.db")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")

from airflow_provider_sftp_resume.core.remote.protocol import RemoteFileSystem  # noqa: E402
from airflow_provider_sftp_resume.core.remote.sftp import SFTPSessionFactory  # noqa: E402
from airflow_provider_sftp_resume.core.remote.ssh import SSHEndpoint  # noqa: E402
from tests.support.faultproxy import FaultProxy  # noqa: E402
from tests.support.keys import KeyPair, make_key  # noqa: E402
from tests.support.servers import (  # noqa: E402
    AsyncsshServer,
    OpenSSHServer,
    ProFTPDServer,
    ServerInfo,
    find_proftpd,
    find_sshd,
)

SERVER_KINDS = ("openssh", "asyncssh")


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="session")
def client_key(keys_dir: Path) -> KeyPair:
    return make_key(keys_dir / "id_ed25519")


@pytest.fixture(scope="session")
def openssh_server(tmp_path_factory: pytest.TempPathFactory, client_key: KeyPair) -> Iterator[ServerInfo]:
    if find_sshd() is None:
        if os.environ.get("CI"):
            pytest.fail("sshd is missing on CI: .ci/run must install Debian's openssh-server")
        pytest.skip("OpenSSH sshd is not installed (apt-get install openssh-server)")
    server = OpenSSHServer(tmp_path_factory.mktemp("sshd"), client_key)
    yield server.info
    server.stop()


@pytest.fixture(scope="session")
def proftpd_server(tmp_path_factory: pytest.TempPathFactory, client_key: KeyPair) -> Iterator[ServerInfo]:
    """ProFTPD with mod_sftp and its built-in defaults (``AllowOverwrite off``)."""
    if find_proftpd() is None:
        if os.environ.get("CI"):
            pytest.fail("proftpd is missing on CI: .ci/run must install proftpd-core and proftpd-mod-crypto")
        pytest.skip(
            "ProFTPD with mod_sftp is not installed (apt-get install proftpd-core proftpd-mod-crypto)"
        )
    server = ProFTPDServer(tmp_path_factory.mktemp("proftpd"), client_key)
    yield server.info
    server.stop()


@pytest.fixture(scope="session")
def asyncssh_server(tmp_path_factory: pytest.TempPathFactory, client_key: KeyPair) -> Iterator[ServerInfo]:
    server = AsyncsshServer(tmp_path_factory.mktemp("asyncssh"), client_key)
    yield server.info
    server.stop()


@pytest.fixture(params=SERVER_KINDS)
def sftp_server(request: pytest.FixtureRequest) -> ServerInfo:
    """Each test using this runs once against OpenSSH sshd and once against the asyncssh server."""
    info: ServerInfo = request.getfixturevalue(f"{request.param}_server")
    return info


def endpoint_for(server: ServerInfo, port: int | None = None, **overrides: object) -> SSHEndpoint:
    """Client settings for ``server`` (host key pinned), optionally through another port."""
    settings: dict[str, object] = {
        "host": server.host,
        "port": port or server.port,
        "username": server.username,
        "client_keys": (str(server.client_key.private),),
        "use_default_keys": False,
        "trusted_host_keys": (server.host_key.public_line,),
        "connect_timeout": 10.0,
        "keepalive_interval": 0.0,
    }
    settings.update(overrides)
    return SSHEndpoint(**settings)  # type: ignore[arg-type]


SessionOpener = Callable[[], AbstractAsyncContextManager[RemoteFileSystem]]


def session_factory(endpoint: SSHEndpoint, attempts: int = 1) -> SFTPSessionFactory:
    return SFTPSessionFactory(endpoint, attempts=attempts, max_wait=0.2)


@pytest.fixture
def proxy(sftp_server: ServerInfo) -> Iterator[FaultProxy]:
    fault_proxy = FaultProxy(sftp_server.port)
    yield fault_proxy
    fault_proxy.stop()


@pytest.fixture
def sshd_proxy(openssh_server: ServerInfo) -> Iterator[FaultProxy]:
    """The fault proxy in front of the real OpenSSH sshd."""
    fault_proxy = FaultProxy(openssh_server.port)
    try:
        yield fault_proxy
    finally:
        fault_proxy.stop()


@pytest.fixture
def remote_dir(tmp_path: Path) -> Path:
    path = tmp_path / "remote"
    path.mkdir()
    return path


@pytest.fixture
def local_dir(tmp_path: Path) -> Path:
    path = tmp_path / "local"
    path.mkdir()
    return path


def write_random(path: Path, size: int, seed: int = 0) -> str:
    """Write ``size`` pseudo-random bytes to ``path``; return their sha256."""
    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
