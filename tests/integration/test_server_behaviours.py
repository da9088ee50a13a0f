"""Servers and networks that behave badly: short reads, wrong passwords, refusals, read-only disks."""

from __future__ import annotations

import asyncio
import itertools
import os
import stat
import subprocess
from typing import TYPE_CHECKING, Any

import asyncssh
import pytest

from airflow_provider_sftp_resume.core.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    LocalPathError,
    RemotePathError,
    RetriableTransferError,
    TransferInterrupted,
)
from airflow_provider_sftp_resume.core.transfers.download import DownloadOptions, download_file
from tests.conftest import endpoint_for, session_factory, sha256_file, write_random
from tests.integration.test_hostile_environment import small_disk  # noqa: F401 - fixture
from tests.support.faultproxy import FaultProxy
from tests.support.ports import free_port
from tests.support.servers import AsyncsshServer, ServerInfo

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.keys import KeyPair

MiB = 1024 * 1024
SHORT_READ = 7_000  # bytes: far below what the client asks for, and not a power of two


class ShortReadServer(asyncssh.SFTPServer):
    """Answers every read with at most SHORT_READ bytes, as some appliances do; refuses "forbidden"."""

    def read(self, file_obj: object, offset: int, size: int) -> Any:
        return super().read(file_obj, offset, min(size, SHORT_READ))

    def open(self, path: bytes, pflags: int, attrs: Any) -> Any:
        if b"forbidden" in path:
            raise asyncssh.SFTPPermissionDenied("permission denied")
        return super().open(path, pflags, attrs)


@pytest.fixture(scope="module")
def odd_server(tmp_path_factory: pytest.TempPathFactory, client_key: KeyPair) -> Iterator[ServerInfo]:
    server = AsyncsshServer(
        tmp_path_factory.mktemp("odd"), client_key, sftp_factory=ShortReadServer, password="right-pass"
    )
    yield server.info
    server.stop()


def fetch(server: ServerInfo, source: Path, target: Path, port: int | None = None, **endpoint: Any) -> Any:
    opener = session_factory(endpoint_for(server, port, **endpoint))
    return asyncio.run(download_file(opener, str(source), target, DownloadOptions(checkpoint_interval=0.05)))


def test_short_reads_are_byte_exact_and_resumable(odd_server: ServerInfo, tmp_path: Path) -> None:
    source = tmp_path / "src.bin"
    digest = write_random(source, 3 * MiB + 1, seed=81)
    target = tmp_path / "dst.bin"
    proxy = FaultProxy(odd_server.port)
    try:
        proxy.cut_after(2 * MiB)
        with pytest.raises(TransferInterrupted):
            fetch(odd_server, source, target, port=proxy.port)
        result = fetch(odd_server, source, target, port=proxy.port)
    finally:
        proxy.stop()
    assert result.resumed_from > 0
    assert sha256_file(target) == digest == result.sha256


def test_wrong_password_is_permanent_and_says_what_to_fix(odd_server: ServerInfo, tmp_path: Path) -> None:
    source = tmp_path / "src.bin"
    write_random(source, 1000)
    with pytest.raises(AuthenticationFailed, match="password or private key"):
        fetch(odd_server, source, tmp_path / "dst.bin", client_keys=(), password="wrong-pass")
    assert fetch(odd_server, source, tmp_path / "ok.bin", client_keys=(), password="right-pass").size == 1000


def test_connection_refused_is_retriable_and_names_the_server(
    openssh_server: ServerInfo, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(ConnectionFailed, match=f"127.0.0.1:{port}") as caught:
        fetch(openssh_server, tmp_path / "x", tmp_path / "y", port=port)
    assert caught.value.retriable


def test_server_closing_the_session_at_login_is_retriable(openssh_server: ServerInfo, tmp_path: Path) -> None:
    source = tmp_path / "src.bin"
    write_random(source, 1000)
    proxy = FaultProxy(openssh_server.port)
    try:
        proxy.cut_after(200)  # inside the key exchange
        with pytest.raises(RetriableTransferError):
            fetch(openssh_server, source, tmp_path / "dst.bin", port=proxy.port)
    finally:
        proxy.stop()
    assert not (tmp_path / "dst.bin").exists()


def test_read_only_local_file_system_is_permanent(
    openssh_server: ServerInfo,
    tmp_path: Path,
    small_disk: Path,  # noqa: F811 - fixture
) -> None:
    source = tmp_path / "src.bin"
    write_random(source, 1000)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    with pytest.raises(LocalPathError, match="write"):
        fetch(openssh_server, source, small_disk / "dst.bin")


def test_remote_permission_denied_is_permanent(odd_server: ServerInfo, tmp_path: Path) -> None:
    source = tmp_path / "forbidden.bin"
    write_random(source, 1000)
    with pytest.raises(RemotePathError, match="owner for access"):
        fetch(odd_server, source, tmp_path / "dst.bin")
    assert not (tmp_path / "dst.bin").exists()


def test_files_are_created_with_the_umask(openssh_server: ServerInfo, tmp_path: Path) -> None:
    source = tmp_path / "src.bin"
    write_random(source, 1000)
    previous = os.umask(0o077)
    try:
        fetch(openssh_server, source, tmp_path / "dst.bin")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "dst.bin").stat().st_mode) == 0o600


#: Request ids of reads and writes, in the order the reordering server answered them.
ANSWER_ORDER: list[int] = []


@pytest.fixture
def bare_reordering_server(
    tmp_path_factory: pytest.TempPathFactory, client_key: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ServerInfo]:
    """
    An asyncssh SFTP server unlike OpenSSH: it advertises no extensions at all (no limits, no
    posix-rename, no fsync, no statvfs), and answers reads and writes out of order (each after a
    random delay of up to 3 ms, so later requests overtake earlier ones).
    """
    import random

    handler = asyncssh.sftp.SFTPServerHandler
    monkeypatch.setattr(handler, "_extensions", [])
    original = handler._process_packet
    reordered = (asyncssh.sftp.FXP_READ, asyncssh.sftp.FXP_WRITE)
    pending: set[asyncio.Task[None]] = set()

    async def out_of_order(self: Any, pkttype: int, pktid: int, packet: Any) -> None:
        if pkttype not in reordered:
            await original(self, pkttype, pktid, packet)
            return

        async def later() -> None:
            await asyncio.sleep(random.random() * 0.003)
            await original(self, pkttype, pktid, packet)
            ANSWER_ORDER.append(pktid)

        task = asyncio.ensure_future(later())
        pending.add(task)
        task.add_done_callback(pending.discard)

    monkeypatch.setattr(handler, "_process_packet", out_of_order)
    ANSWER_ORDER.clear()
    server = AsyncsshServer(tmp_path_factory.mktemp("bare"), client_key)
    try:
        yield server.info
    finally:
        server.stop()


def test_bare_reordering_server_download_and_upload_resume_byte_exact(
    bare_reordering_server: ServerInfo, tmp_path: Path
) -> None:
    from airflow_provider_sftp_resume.core.transfers.upload import UploadOptions, upload_file

    source = tmp_path / "src.bin"
    digest = write_random(source, 6 * MiB + 5, seed=82)
    target = tmp_path / "dst.bin"
    proxy = FaultProxy(bare_reordering_server.port)
    try:
        # Past the first window of reads (sent with the open, about 4 MiB): a cut inside it can come
        # before the fill has recorded a block, and then there is nothing to resume from.
        proxy.cut_after(5 * MiB)
        with pytest.raises(TransferInterrupted):
            fetch(bare_reordering_server, source, target, port=proxy.port)
        result = fetch(bare_reordering_server, source, target, port=proxy.port)

        uploaded = tmp_path / "remote" / "up.bin"
        uploaded.parent.mkdir()
        uploaded.write_bytes(b"an older version")
        opener = session_factory(endpoint_for(bare_reordering_server, proxy.port))
        options = UploadOptions(checkpoint_interval=0.05)
        proxy.cut_after_sent(3 * MiB)
        with pytest.raises(TransferInterrupted):
            asyncio.run(upload_file(opener, target, str(uploaded), options, server="bare"))
        sent = asyncio.run(upload_file(opener, target, str(uploaded), options, server="bare"))
    finally:
        proxy.stop()
    overtaken = sum(1 for a, b in itertools.pairwise(ANSWER_ORDER) if b < a)
    assert overtaken > 100, "the server must really answer out of order"
    assert result.resumed_from > 0
    assert sha256_file(target) == digest == result.sha256
    assert sent.resumed_from > 0
    assert sent.rename == "rename-aside", "no posix-rename@openssh.com: the documented fallback"
    assert sha256_file(uploaded) == digest == sent.sha256
    assert sorted(p.name for p in uploaded.parent.iterdir()) == ["up.bin"]
