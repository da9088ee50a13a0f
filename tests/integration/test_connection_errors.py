"""Connection errors say what is wrong and how to fix it: host keys, key files, passphrases."""

from __future__ import annotations

import logging
import shutil
import subprocess
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_sftp_resume.core.errors import AuthenticationFailed, HostKeyRejected, TransferError
from airflow_provider_sftp_resume.hooks import ResumableSFTPHook
from tests.conftest import write_random
from tests.support.airflow_env import connection_json
from tests.support.keys import make_key

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.servers import ServerInfo


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home"
    (path / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(path))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return path


def fetch(monkeypatch: pytest.MonkeyPatch, server: ServerInfo, tmp_path: Path, **extra: Any) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SFTP_ERRORS", connection_json(server, **extra))
    hook = ResumableSFTPHook(ssh_conn_id="sftp_errors", connect_attempts=1)
    source = tmp_path / "src.bin"
    write_random(source, 1000)
    hook.download_resumable(str(source), str(tmp_path / "dst.bin"))


def fingerprint(public_key: Path) -> str:
    """The SHA256 fingerprint as ``ssh-keygen -lf`` prints it."""
    out = subprocess.run(["ssh-keygen", "-lf", str(public_key)], capture_output=True, text=True, check=True)
    return out.stdout.split()[1]


def test_changed_host_key_is_told_apart_from_an_unknown_host(
    openssh_server: ServerInfo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, home: Path
) -> None:
    impostor = make_key(tmp_path / "impostor")
    (home / ".ssh" / "known_hosts").write_text(f"[127.0.0.1]:{openssh_server.port} {impostor.public_line}\n")
    with pytest.raises(HostKeyRejected) as caught:
        fetch(monkeypatch, openssh_server, tmp_path, host_key=None)
    message = str(caught.value)
    assert "CHANGED" in message
    assert "man-in-the-middle" in message
    assert fingerprint(openssh_server.host_key.public) in message  # the key the server offered
    assert fingerprint(impostor.public) in message  # the key known_hosts expects
    assert str(home / ".ssh" / "known_hosts") in message
    assert not caught.value.retriable


def test_unknown_host_names_the_offered_fingerprint(
    openssh_server: ServerInfo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, home: Path
) -> None:
    with pytest.raises(HostKeyRejected) as caught:
        fetch(monkeypatch, openssh_server, tmp_path, host_key=None)
    message = str(caught.value)
    assert "unknown" in message
    assert "CHANGED" not in message
    assert fingerprint(openssh_server.host_key.public) in message
    assert "host_key" in message


def test_wrong_pinned_host_key_names_both_fingerprints(
    openssh_server: ServerInfo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, home: Path
) -> None:
    impostor = make_key(tmp_path / "impostor")
    with pytest.raises(HostKeyRejected) as caught:
        fetch(monkeypatch, openssh_server, tmp_path, host_key=impostor.public_line)
    message = str(caught.value)
    assert "CHANGED" in message
    assert "`host_key` extra" in message
    assert fingerprint(openssh_server.host_key.public) in message
    assert fingerprint(impostor.public) in message


@pytest.fixture
def encrypted_key(openssh_server: ServerInfo, tmp_path: Path) -> Path:
    path = tmp_path / "encrypted_key"
    shutil.copy(openssh_server.client_key.private, path)
    path.chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-p", "-N", "right-Pass", "-f", str(path)], check=True)
    return path


@pytest.mark.usefixtures("home")
@pytest.mark.parametrize("passphrase", ["wrong-Pass", None])
def test_wrong_or_missing_key_passphrase_is_a_permanent_authentication_error(
    passphrase: str | None,
    openssh_server: ServerInfo,
    encrypted_key: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        fetch(
            monkeypatch,
            openssh_server,
            tmp_path,
            key_file=str(encrypted_key),
            private_key_passphrase=passphrase,
        )
    message = str(caught.value)
    assert "private_key_passphrase" in message
    assert "key_file" in message
    assert str(encrypted_key) in message
    assert "right-Pass" not in message
    assert passphrase is None or passphrase not in message
    assert not caught.value.retriable


def test_wrong_private_key_text_passphrase_is_a_permanent_authentication_error(
    openssh_server: ServerInfo, encrypted_key: Path, tmp_path: Path
) -> None:
    # The hook's __init__ (inherited) already refuses it; the engine refuses it the same way.
    import asyncio

    from airflow_provider_sftp_resume.core.remote.sftp import SFTPSessionFactory
    from tests.conftest import endpoint_for

    endpoint = endpoint_for(openssh_server, client_keys=(encrypted_key.read_text(),), passphrase="nope")

    async def connect() -> None:
        async with SFTPSessionFactory(endpoint, attempts=3, max_wait=0.1)():
            pass

    with pytest.raises(AuthenticationFailed, match="private_key_passphrase") as caught:
        asyncio.run(connect())
    assert "PRIVATE KEY" not in str(caught.value)


@pytest.mark.parametrize("problem", ["missing", "a directory", "not a key"])
def test_unusable_key_file_is_permanent_and_names_the_extra_and_path(
    problem: str, openssh_server: ServerInfo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, home: Path
) -> None:
    path = tmp_path / "no_such_key"
    if problem == "a directory":
        path.mkdir()
    elif problem == "not a key":
        path.write_text("this is not a private key\n")
    with pytest.raises(TransferError) as caught:
        fetch(monkeypatch, openssh_server, tmp_path, key_file=str(path))
    assert isinstance(caught.value, AuthenticationFailed), repr(caught.value)
    message = str(caught.value)
    assert "`key_file` extra" in message
    assert str(path) in message
    assert not caught.value.retriable


@pytest.mark.usefixtures("home")
@pytest.mark.parametrize("named", ["no_host_key_check", "allow_host_key_change"])
def test_the_warning_names_the_extra_that_relaxed_verification(
    named: str,
    openssh_server: ServerInfo,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    extra = {named: "true"}
    monkeypatch.setenv("AIRFLOW_CONN_SFTP_ERRORS", connection_json(openssh_server, host_key=None, **extra))
    hook = ResumableSFTPHook(ssh_conn_id="sftp_errors", connect_attempts=1)
    source = tmp_path / "src.bin"
    write_random(source, 1000)
    logger = logging.getLogger("errors-test")
    with caplog.at_level(logging.INFO, logger="errors-test"):
        hook.download_resumable(str(source), str(tmp_path / "dst.bin"), logger=logger)
    warnings = [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "errors-test"
    ]
    assert len(warnings) == 1, warnings
    assert f"`{named}` extra" in warnings[0]
    other = ({"no_host_key_check", "allow_host_key_change"} - {named}).pop()
    assert other not in warnings[0]


def test_default_connection_verifies_host_keys_whatever_the_ssh_provider(
    openssh_server: ServerInfo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, home: Path
) -> None:
    """apache-airflow-providers-ssh < 7.0.0 defaults ``no_host_key_check`` to True: not here."""
    monkeypatch.setenv("AIRFLOW_CONN_SFTP_ERRORS", connection_json(openssh_server, host_key=None))
    hook = ResumableSFTPHook(ssh_conn_id="sftp_errors", connect_attempts=1)
    assert hook.no_host_key_check is False  # also what the inherited paramiko methods use
    with pytest.raises(HostKeyRejected, match="unknown"):
        fetch(monkeypatch, openssh_server, tmp_path, host_key=None)
    # The inherited (paramiko) methods, such as the UI's Test button, refuse it too.
    ok, message = hook.test_connection()
    assert not ok, message
