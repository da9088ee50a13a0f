"""ResumableSFTPHook reads the stock sftp connection the way SFTPHook does, and verifies host keys."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pytest
from airflow.providers.sftp.hooks.sftp import SFTPHook

from airflow_provider_sftp_resume.core.errors import HostKeyRejected
from airflow_provider_sftp_resume.hooks import ResumableSFTPHook
from tests.conftest import sha256_file, write_random
from tests.support.airflow_env import connection_json
from tests.support.keys import make_key

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.servers import ServerInfo


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME without ~/.ssh, so nothing outside the connection is trusted by accident."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("HOME", str(path))
    return path


def define(monkeypatch: pytest.MonkeyPatch, server: ServerInfo, **extra: Any) -> str:
    monkeypatch.setenv("AIRFLOW_CONN_SFTP_HOOK_TEST", connection_json(server, **extra))
    return "sftp_hook_test"


def fetch(hook: ResumableSFTPHook, tmp_path: Path) -> str:
    source = tmp_path / "src.bin"
    digest = write_random(source, 300_000, seed=31)
    hook.download_resumable(str(source), str(tmp_path / "dst.bin"))
    assert sha256_file(tmp_path / "dst.bin") == digest
    return digest


def test_is_an_sftp_hook_with_the_stock_connection_type() -> None:
    assert issubclass(ResumableSFTPHook, SFTPHook)
    assert ResumableSFTPHook.conn_type == "sftp"
    assert ResumableSFTPHook.default_conn_name == "sftp_default"


def test_key_file_and_pinned_host_key(
    openssh_server: ServerInfo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, home: Path
) -> None:
    hook = ResumableSFTPHook(ssh_conn_id=define(monkeypatch, openssh_server))
    fetch(hook, tmp_path)
    ok, message = hook.test_connection()  # inherited: the UI's "Test" button
    assert ok, message


def test_private_key_text_with_passphrase(
    openssh_server: ServerInfo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, home: Path
) -> None:
    # Same key material, encrypted with a passphrase and given inline as the UI's private_key extra.
    encrypted = tmp_path / "enc_key"
    encrypted.write_bytes(openssh_server.client_key.private.read_bytes())
    encrypted.chmod(0o600)
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-p", "-N", "s3cret-Pass", "-f", str(encrypted)], check=True)
    conn_id = define(
        monkeypatch,
        openssh_server,
        key_file=None,
        private_key=encrypted.read_text(),
        private_key_passphrase="s3cret-Pass",
    )
    hook = ResumableSFTPHook(ssh_conn_id=conn_id)
    endpoint = hook.ssh_endpoint()
    assert "s3cret-Pass" not in repr(endpoint)
    assert "PRIVATE KEY" not in repr(endpoint)
    fetch(hook, tmp_path)


def test_host_key_is_verified_by_default(
    openssh_server: ServerInfo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, home: Path
) -> None:
    conn_id = define(monkeypatch, openssh_server, host_key=None)
    hook = ResumableSFTPHook(ssh_conn_id=conn_id)
    assert hook.ssh_endpoint().verify_host_key
    with pytest.raises(HostKeyRejected):
        fetch(hook, tmp_path)


def test_known_hosts_file_is_honoured(
    openssh_server: ServerInfo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, home: Path
) -> None:
    (home / ".ssh").mkdir()
    (home / ".ssh" / "known_hosts").write_text(
        f"[127.0.0.1]:{openssh_server.port} {openssh_server.host_key.public_line}\n"
    )
    hook = ResumableSFTPHook(ssh_conn_id=define(monkeypatch, openssh_server, host_key=None))
    fetch(hook, tmp_path)


def test_wrong_pinned_host_key_is_rejected(
    openssh_server: ServerInfo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, home: Path
) -> None:
    impostor = make_key(tmp_path / "impostor")
    hook = ResumableSFTPHook(ssh_conn_id=define(monkeypatch, openssh_server, host_key=impostor.public_line))
    with pytest.raises(HostKeyRejected):
        fetch(hook, tmp_path)


def test_no_host_key_check_is_explicit_and_logged(
    openssh_server: ServerInfo,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    home: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn_id = define(monkeypatch, openssh_server, host_key=None, no_host_key_check="true")
    hook = ResumableSFTPHook(ssh_conn_id=conn_id)
    logger = logging.getLogger("hook-test")
    with caplog.at_level(logging.INFO, logger="hook-test"):
        source = tmp_path / "src.bin"
        write_random(source, 1000)
        hook.download_resumable(str(source), str(tmp_path / "dst.bin"), logger=logger)
    warnings = [r.getMessage() for r in caplog.records if "verification is OFF" in r.getMessage()]
    assert len(warnings) == 1


def test_the_connection_is_read_once(
    openssh_server: ServerInfo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, home: Path
) -> None:
    reads: list[str] = []

    class CountingHook(ResumableSFTPHook):
        @classmethod
        def get_connection(cls, conn_id: str) -> Any:
            reads.append(conn_id)
            return super().get_connection(conn_id)

    conn_id = define(monkeypatch, openssh_server, host_key=None, no_host_key_check="true")
    hook = CountingHook(ssh_conn_id=conn_id)
    assert reads == [conn_id]  # the stock __init__'s read, shared with the extras this hook reads
    assert hook.no_host_key_check  # from the extras of that one read
    assert not hook.ssh_endpoint().verify_host_key
    assert reads == [conn_id]
    assert CountingHook.get_connection(conn_id).conn_id == conn_id  # still the classmethod afterwards
    assert hook.get_connection(conn_id).conn_id == conn_id
    assert reads == [conn_id] * 3
    fetch(hook, tmp_path)
