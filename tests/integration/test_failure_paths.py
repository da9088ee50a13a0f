"""
Failure paths found by reading the code (issue 10, items 8, 10, 11, 13), each against real parts.

Lost post-action replies, undecodable remote names, remote and local disk trouble, hostile or
incomplete server attributes, errors inside a batch, and blocking work on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from typing import TYPE_CHECKING, Any, ClassVar

import asyncssh
import pytest

from airflow_provider_sftp_resume.core.errors import (
    BatchFailed,
    LocalPathError,
    PermanentTransferError,
    RemotePathError,
    SomeFilesFailed,
    TransferError,
    TransferInterrupted,
    UnsafeRemoteName,
)
from airflow_provider_sftp_resume.core.resume.hashing import TrailingHasher
from airflow_provider_sftp_resume.core.resume.verify import parse_verify
from airflow_provider_sftp_resume.core.transfers.batch import BatchResult, download_selection
from airflow_provider_sftp_resume.core.transfers.download import DownloadOptions, download_file
from airflow_provider_sftp_resume.core.transfers.names import local_path_for
from airflow_provider_sftp_resume.core.transfers.postaction import RemotePostAction
from airflow_provider_sftp_resume.core.transfers.selection import RemoteSelection
from airflow_provider_sftp_resume.core.transfers.upload import UploadOptions, upload_file
from airflow_provider_sftp_resume.core.watch.stability import StableSpec, take_snapshot
from tests.conftest import endpoint_for, session_factory, sha256_file, write_random
from tests.support.servers import AsyncsshServer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    from tests.support.keys import KeyPair
    from tests.support.servers import ServerInfo

MiB = 1024 * 1024


def mirror(
    server: ServerInfo,
    remote: str,
    local: Path,
    *,
    post_action: RemotePostAction | None = None,
    recursive: bool = False,
    concurrency: int = 3,
    options: DownloadOptions | None = None,
) -> BatchResult:
    return asyncio.run(
        download_selection(
            session_factory(endpoint_for(server)),
            RemoteSelection.parse(remote, None, recursive),
            local,
            options or DownloadOptions(checkpoint_interval=0.05),
            concurrency=concurrency,
            post_action=post_action,
        )
    )


def batch_result(error: pytest.ExceptionInfo[Any]) -> BatchResult:
    result = error.value.result
    assert isinstance(result, BatchResult)
    return result


def start_asyncssh(
    tmp_path_factory: pytest.TempPathFactory, client_key: KeyPair, factory: type[asyncssh.SFTPServer]
) -> Iterator[ServerInfo]:
    server = AsyncsshServer(tmp_path_factory.mktemp(factory.__name__), client_key, sftp_factory=factory)
    try:
        yield server.info
    finally:
        server.stop()


# -- item 8: a post-action whose reply is lost ----------------------------------------------------


class LostReplySFTPServer(asyncssh.SFTPServer):
    """Performs REMOVE / RENAME, then drops the connection before the reply (once per armed op)."""

    armed: ClassVar[set[str]] = set()
    lost: ClassVar[list[str]] = []

    def _lose_reply(self, op: str) -> None:
        if op in self.armed:
            self.armed.discard(op)
            self.lost.append(op)
            self.connection.abort()

    def remove(self, path: bytes) -> None:
        super().remove(path)
        self._lose_reply("remove")

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        super().rename(oldpath, newpath)
        self._lose_reply("rename")

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        super().posix_rename(oldpath, newpath)
        self._lose_reply("rename")


@pytest.fixture
def lost_reply_server(tmp_path_factory: pytest.TempPathFactory, client_key: KeyPair) -> Iterator[ServerInfo]:
    LostReplySFTPServer.armed.clear()
    LostReplySFTPServer.lost.clear()
    yield from start_asyncssh(tmp_path_factory, client_key, LostReplySFTPServer)


def test_a_delete_whose_reply_was_lost_succeeds_on_the_retry(
    lost_reply_server: ServerInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_sftp_resume.hooks import ResumableSFTPHook
    from tests.support.airflow_env import connection_json

    monkeypatch.setenv("AIRFLOW_CONN_SFTP_LOST_REPLY", connection_json(lost_reply_server))
    remote = tmp_path / "remote.bin"
    digest = write_random(remote, 300_000, seed=8)
    local = tmp_path / "local.bin"
    delete = RemotePostAction.parse("delete", None)
    LostReplySFTPServer.armed.add("remove")

    with pytest.raises(TransferInterrupted):
        ResumableSFTPHook(ssh_conn_id="sftp_lost_reply").download_resumable(
            str(remote), str(local), post_action=delete
        )
    assert LostReplySFTPServer.lost == ["remove"], "the server removed the file and dropped the reply"
    assert not remote.exists()

    retry = ResumableSFTPHook(ssh_conn_id="sftp_lost_reply").download_resumable(
        str(remote), str(local), post_action=delete
    )

    assert retry.post_action == "already deleted"
    assert retry.skipped
    assert retry.bytes_transferred == 0
    assert retry.sha256 == digest == sha256_file(local)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local.bin"], "no record left behind"


def test_a_move_whose_reply_was_lost_succeeds_on_the_retry_of_a_batch(
    lost_reply_server: ServerInfo, tmp_path: Path
) -> None:
    remote_dir = tmp_path / "remote"
    remote_dir.mkdir()
    digest = write_random(remote_dir / "a.csv", 200_000, seed=81)
    write_random(remote_dir / "b.csv", 100_000, seed=82)
    archive = tmp_path / "archive"
    local = tmp_path / "local"
    local.mkdir()
    move = RemotePostAction.parse("move", str(archive))
    LostReplySFTPServer.armed.add("rename")

    with pytest.raises(SomeFilesFailed) as failure:
        mirror(lost_reply_server, str(remote_dir), local, post_action=move, concurrency=1)
    first = {f.relative: f for f in batch_result(failure).files}
    assert LostReplySFTPServer.lost == ["rename"]
    assert first["a.csv"].status == "failed"
    assert first["b.csv"].post_action == f"moved to {archive}/b.csv"
    assert sha256_file(archive / "a.csv") == digest, "the server did move the file"

    retry = mirror(lost_reply_server, str(remote_dir), local, post_action=move, concurrency=1)

    # a.csv is no longer listed (it is in the archive); its record proves what happened
    assert [(f.relative, f.status, f.post_action) for f in retry.files] == [
        ("a.csv", "skipped", f"already moved to {archive}/a.csv")
    ]
    assert retry.files[0].sha256 == digest
    assert sorted(p.name for p in archive.iterdir()) == ["a.csv", "b.csv"]
    assert list(remote_dir.iterdir()) == []
    assert sorted(p.name for p in local.iterdir()) == ["a.csv", "b.csv"]


def test_a_missing_remote_file_is_not_mistaken_for_a_lost_reply(
    openssh_server: ServerInfo, tmp_path: Path
) -> None:
    """Without the record of an earlier post-action, a complete local file proves nothing."""
    local = tmp_path / "local.bin"
    write_random(local, 1000)

    async def run() -> None:
        await download_file(
            session_factory(endpoint_for(openssh_server)),
            str(tmp_path / "never-there.bin"),
            local,
            DownloadOptions(),
            post_action=RemotePostAction.parse("delete", None),
        )

    with pytest.raises(TransferError, match="not found"):
        asyncio.run(run())


# -- item 10: a remote name that is not UTF-8 -----------------------------------------------------

BAD_NAME = b"caf\xe9-latin1.csv"


def test_an_undecodable_remote_name_is_refused_and_the_others_download(
    openssh_server: ServerInfo, tmp_path: Path
) -> None:
    remote_dir = tmp_path / "remote"
    remote_dir.mkdir()
    good = write_random(remote_dir / "good.csv", 50_000, seed=10)
    fd = os.open(os.fsencode(remote_dir) + b"/" + BAD_NAME, os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"latin-1 named")
    os.close(fd)
    local = tmp_path / "local"
    local.mkdir()

    with pytest.raises(BatchFailed) as failure:
        mirror(openssh_server, str(remote_dir), local)

    assert not failure.value.retriable
    assert repr(BAD_NAME) in str(failure.value), "the name is shown as escaped bytes"
    result = batch_result(failure)
    assert {f.status for f in result.files} == {"downloaded", "refused"}
    assert sha256_file(local / "good.csv") == good
    assert [p.name for p in local.iterdir()] == ["good.csv"]


def test_a_watched_undecodable_name_fails_the_trigger_instead_of_retrying_forever(
    openssh_server: ServerInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_sftp_resume.triggers import SFTPFileStableTrigger
    from tests.support.airflow_env import connection_json

    monkeypatch.setenv("AIRFLOW_CONN_SFTP_NAMES", connection_json(openssh_server))
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "fine.csv").write_bytes(b"ok")
    os.close(os.open(os.fsencode(drop) + b"/" + BAD_NAME, os.O_WRONLY | os.O_CREAT, 0o644))
    (drop / "upload.csv.part").write_bytes(b"a partner's temporary file, not watched")
    trigger = SFTPFileStableTrigger("sftp_names", f"{drop}/*.csv", quiet_period=0.2, poll_interval=0.1)

    async def first_event() -> Any:
        async for event in trigger.run():
            return event.payload
        return None

    payload = asyncio.run(asyncio.wait_for(first_event(), 15))
    assert payload["status"] == "error"
    assert payload["retriable"] is False
    assert repr(BAD_NAME) in payload["message"]

    async def snapshot(spec: StableSpec) -> dict[str, tuple[int, int]]:
        async with session_factory(endpoint_for(openssh_server))() as fs:
            return await take_snapshot(fs, spec)

    os.unlink(os.fsencode(drop) + b"/" + BAD_NAME)
    assert list(asyncio.run(snapshot(StableSpec(f"{drop}/*.csv")))) == [str(drop / "fine.csv")], (
        "a name the glob does not select (upload.csv.part) never fails the watch"
    )


def test_the_sensor_fails_without_retry_on_a_permanent_trigger_error() -> None:
    from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

    from airflow_provider_sftp_resume.sensors import SFTPFileStableSensor

    sensor = SFTPFileStableSensor(task_id="s", path="/x/*.csv", deferrable=True)
    with pytest.raises(AirflowFailException, match="Refusing"):
        sensor.execute_complete({}, {"status": "error", "message": "Refusing x", "retriable": False})
    with pytest.raises(AirflowException) as retriable:
        sensor.execute_complete({}, {"status": "error", "message": "lost", "retriable": True})
    assert not isinstance(retriable.value, AirflowFailException)


# -- item 11: error mapping --------------------------------------------------------------------


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "1m") -> Iterator[Path]:
    """A real, tiny file system (tmpfs) mounted at ``path``; unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs", str(path)],
        check=False,
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_full_remote_disk_is_named_as_such(sftp_server: ServerInfo, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    write_random(source, 3 * MiB, seed=11)
    with small_tmpfs(tmp_path / "remote-disk") as disk:

        async def run() -> None:
            await upload_file(
                session_factory(endpoint_for(sftp_server)),
                source,
                str(disk / "big.bin"),
                UploadOptions(state_dir=str(tmp_path)),
            )

        with pytest.raises(TransferError) as failure:
            asyncio.run(run())
    message = str(failure.value)
    assert "SSH/SFTP error" not in message
    assert "disk" in message, message
    assert "quota" in message, message
    assert failure.value.retriable, "once space is freed on the server, the retry resumes"


def test_a_read_only_local_file_system_is_not_called_a_permission_problem(
    openssh_server: ServerInfo, tmp_path: Path
) -> None:
    remote = tmp_path / "remote.bin"
    write_random(remote, 10_000)
    with small_tmpfs(tmp_path / "ro") as disk:
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)

        async def run() -> None:
            await download_file(session_factory(endpoint_for(openssh_server)), str(remote), disk / "x.bin")

        with pytest.raises(LocalPathError) as failure:
            asyncio.run(run())
    assert "read-only file system" in str(failure.value)
    assert "permission" not in str(failure.value).lower()


def test_the_hasher_reports_a_short_read_back_as_a_transfer_error(tmp_path: Path) -> None:
    part = tmp_path / "x.part"
    part.write_bytes(b"x" * 100_000)
    hasher = TrailingHasher(part)
    os.truncate(part, 50_000)  # something else cut the file under the transfer

    with pytest.raises(TransferError, match=r"50000 of 100000 bytes") as failure:
        hasher.finish(100_000)
    assert failure.value.retriable, "the next try finds the .part shorter than its state and restarts"


@pytest.mark.parametrize("bad", [None, 3, ["mtime", None]])
def test_a_verify_value_of_the_wrong_type_is_a_value_error(bad: Any) -> None:
    from airflow_provider_sftp_resume.operators import ResumableSFTPDownloadOperator

    with pytest.raises(ValueError, match="verify"):
        parse_verify(bad)
    with pytest.raises(ValueError, match="verify"):
        ResumableSFTPDownloadOperator(task_id="t", remote_path="/r", local_path="/l", verify=bad)


def test_a_local_os_error_in_one_file_of_a_batch_is_a_per_file_outcome(
    openssh_server: ServerInfo, tmp_path: Path
) -> None:
    remote_dir = tmp_path / "remote"
    remote_dir.mkdir()
    digests = {name: write_random(remote_dir / name, 4 * MiB, seed=i) for i, name in enumerate("bcd")}
    write_random(remote_dir / "a.bin", 1000, seed=99)
    local = tmp_path / "local"
    local.mkdir()
    # a.bin is complete locally, but a directory sits where its .part would go: removing the stale
    # .part raises IsADirectoryError, an OSError, while b, c and d are being downloaded.
    os.link(remote_dir / "a.bin", local / "a.bin")
    (local / "a.bin.part").mkdir()
    leftovers: list[asyncio.Task[Any]] = []

    async def run() -> BatchResult:
        try:
            return await download_selection(
                session_factory(endpoint_for(openssh_server)),
                RemoteSelection.parse(str(remote_dir)),
                local,
                DownloadOptions(checkpoint_interval=0.05),
                concurrency=4,
            )
        finally:
            leftovers.extend(t for t in asyncio.all_tasks() if t is not asyncio.current_task())

    with pytest.raises(BatchFailed) as failure:
        asyncio.run(run())

    assert leftovers == [], "no sibling download is left running when the batch returns"
    outcomes = {f.relative: f for f in batch_result(failure).files}
    assert outcomes["a.bin"].status == "failed"
    assert "a.bin.part" in (outcomes["a.bin"].error or "")
    for name, digest in digests.items():
        assert outcomes[name].status == "downloaded"
        assert sha256_file(local / name) == digest


# -- item 13: smaller ones ----------------------------------------------------------------------


class NoSizeSFTPServer(asyncssh.SFTPServer):
    """Omits the SIZE attribute everywhere (allowed by the protocol: every attribute is optional)."""

    @staticmethod
    def _without_size(attrs: Any) -> asyncssh.SFTPAttrs:
        if not isinstance(attrs, asyncssh.SFTPAttrs):
            attrs = asyncssh.SFTPAttrs.from_local(attrs)
        attrs.size = None
        return attrs

    def stat(self, path: bytes) -> asyncssh.SFTPAttrs:
        return self._without_size(super().stat(path))

    def lstat(self, path: bytes) -> asyncssh.SFTPAttrs:
        return self._without_size(super().lstat(path))

    def fstat(self, file_obj: object) -> asyncssh.SFTPAttrs:
        return self._without_size(super().fstat(file_obj))

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        async for entry in super().scandir(path):
            entry.attrs.size = None
            yield entry


@pytest.fixture
def no_size_server(tmp_path_factory: pytest.TempPathFactory, client_key: KeyPair) -> Iterator[ServerInfo]:
    yield from start_asyncssh(tmp_path_factory, client_key, NoSizeSFTPServer)


def test_a_server_that_omits_the_size_is_refused_not_trusted_as_empty(
    no_size_server: ServerInfo, tmp_path: Path
) -> None:
    remote = tmp_path / "remote.bin"
    write_random(remote, 100_000)
    local = tmp_path / "local.bin"

    async def run() -> None:
        await download_file(session_factory(endpoint_for(no_size_server)), str(remote), local)

    with pytest.raises(RemotePathError, match="size") as failure:
        asyncio.run(run())
    assert isinstance(failure.value, PermanentTransferError)
    assert not local.exists(), "no 0-byte file is published as verified"


def test_move_never_overwrites_a_file_already_in_the_archive(sftp_server: ServerInfo, tmp_path: Path) -> None:
    remote_dir = tmp_path / "remote"
    remote_dir.mkdir()
    archive = tmp_path / "archive"
    archive.mkdir()
    yesterday = write_random(archive / "feed.csv", 5000, seed=1)
    (archive / "feed.csv.1").write_bytes(b"the day before")
    today = write_random(remote_dir / "feed.csv", 6000, seed=2)
    local = tmp_path / "local"
    local.mkdir()

    result = mirror(
        sftp_server, str(remote_dir), local, post_action=RemotePostAction.parse("move", str(archive))
    )

    assert sha256_file(archive / "feed.csv") == yesterday, "the archived file is untouched"
    assert (archive / "feed.csv.1").read_bytes() == b"the day before"
    assert sha256_file(archive / "feed.csv.2") == today
    assert result.files[0].post_action == f"moved to {archive}/feed.csv.2 ({archive}/feed.csv exists)"


def test_a_remote_directory_named_like_a_working_file_is_refused(
    openssh_server: ServerInfo, tmp_path: Path
) -> None:
    remote_dir = tmp_path / "remote"
    (remote_dir / "data.part").mkdir(parents=True)
    write_random(remote_dir / "data.part" / "inner.bin", 100)
    write_random(remote_dir / "data", 100)
    local = tmp_path / "local"
    local.mkdir()

    with pytest.raises(BatchFailed, match=r"data\.part"):
        mirror(openssh_server, str(remote_dir), local, recursive=True)

    assert not (local / "data.part").exists()
    with pytest.raises(UnsafeRemoteName, match=r"x\.part"):
        local_path_for(local, "x.part/inner.bin")


def test_hashing_a_large_complete_file_does_not_stall_the_event_loop(
    openssh_server: ServerInfo, tmp_path: Path
) -> None:
    remote_dir = tmp_path / "remote"
    remote_dir.mkdir()
    big = remote_dir / "big.bin"
    with open(big, "wb") as handle:
        block = os.urandom(MiB)
        for _ in range(384):
            handle.write(block)
    local = tmp_path / "local"
    local.mkdir()
    os.link(big, local / "big.bin")  # complete and unchanged: skipped, but hashed for the result
    gaps: list[float] = []

    async def run() -> BatchResult:
        done = asyncio.Event()

        async def heartbeat() -> None:
            last = time.monotonic()
            while not done.is_set():
                await asyncio.sleep(0.005)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        beat = asyncio.ensure_future(heartbeat())
        try:
            return await download_selection(
                session_factory(endpoint_for(openssh_server)),
                RemoteSelection.parse(str(remote_dir)),
                local,
                DownloadOptions(checkpoint_interval=0.05),
            )
        finally:
            done.set()
            await beat

    result = asyncio.run(run())

    assert result.files[0].status == "skipped"
    print(f"longest event-loop gap: {max(gaps):.3f} s")
    assert max(gaps) < 0.1, f"the event loop was blocked for {max(gaps):.3f} s"
