"""Directory and glob downloads against real servers: resume per file, hostile names, post-actions."""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

import asyncssh
import pytest

from airflow_provider_sftp_resume.core.errors import BatchFailed, SomeFilesFailed
from airflow_provider_sftp_resume.core.transfers.batch import BatchResult, download_selection
from airflow_provider_sftp_resume.core.transfers.download import DownloadOptions
from airflow_provider_sftp_resume.core.transfers.postaction import RemotePostAction
from airflow_provider_sftp_resume.core.transfers.selection import RemoteSelection
from tests.conftest import endpoint_for, session_factory, sha256_file, write_random

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    from tests.support.faultproxy import FaultProxy
    from tests.support.keys import KeyPair
    from tests.support.servers import ServerInfo

MiB = 1024 * 1024


def mirror(
    server: ServerInfo,
    remote: str,
    local: Path,
    port: int | None = None,
    *,
    pattern: str | None = None,
    recursive: bool = False,
    concurrency: int = 3,
    post_action: RemotePostAction | None = None,
) -> BatchResult:
    opener = session_factory(endpoint_for(server, port))
    selection = RemoteSelection.parse(remote, pattern, recursive)
    return asyncio.run(
        download_selection(
            opener,
            selection,
            local,
            DownloadOptions(checkpoint_interval=0.05),
            concurrency=concurrency,
            post_action=post_action,
        )
    )


def make_tree(root: Path, sizes: dict[str, int]) -> dict[str, str]:
    digests = {}
    for seed, (name, size) in enumerate(sorted(sizes.items())):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        digests[name] = write_random(path, size, seed=seed + 100)
    return digests


def test_recursive_mirror_then_a_rerun_transfers_nothing(
    sftp_server: ServerInfo, remote_dir: Path, local_dir: Path
) -> None:
    digests = make_tree(remote_dir, {"a.csv": 1000, "b.bin": 2 * MiB, "sub/c.csv": 3000, "sub/deep/d.csv": 0})

    first = mirror(sftp_server, str(remote_dir), local_dir, recursive=True)

    assert {f.relative: f.status for f in first.files} == dict.fromkeys(digests, "downloaded")
    for name, digest in digests.items():
        assert sha256_file(local_dir / name) == digest
    again = mirror(sftp_server, str(remote_dir), local_dir, recursive=True)
    assert {f.status for f in again.files} == {"skipped"}
    assert again.bytes_transferred == 0
    summary = again.to_dict()
    assert summary["files_skipped"] == 4
    assert summary["bytes_total"] == sum((remote_dir / n).stat().st_size for n in digests)


def test_glob_and_pattern_select_only_matching_files(
    openssh_server: ServerInfo, remote_dir: Path, local_dir: Path
) -> None:
    make_tree(remote_dir, {"x.csv": 10, "y.csv": 20, "z.txt": 30, "sub/w.csv": 40})

    by_glob = mirror(openssh_server, f"{remote_dir}/*.csv", local_dir / "glob")
    by_pattern = mirror(
        openssh_server, str(remote_dir), local_dir / "pattern", pattern="*.csv", recursive=True
    )

    assert sorted(f.relative for f in by_glob.files) == ["x.csv", "y.csv"]
    assert sorted(f.relative for f in by_pattern.files) == ["sub/w.csv", "x.csv", "y.csv"]
    assert not (local_dir / "glob" / "z.txt").exists()


def test_interrupted_batch_retry_transfers_only_what_was_missing(
    sftp_server: ServerInfo, proxy: FaultProxy, remote_dir: Path, local_dir: Path
) -> None:
    sizes = {"f1.bin": 6 * MiB, "f2.bin": 6 * MiB, "f3.bin": 12 * MiB, "f4.bin": 12 * MiB}
    digests = make_tree(remote_dir, sizes)
    total = sum(sizes.values())

    proxy.cut_after(20 * MiB)
    with pytest.raises(SomeFilesFailed) as failure:
        mirror(sftp_server, str(remote_dir), local_dir, port=proxy.port, concurrency=2)
    first = failure.value.result
    assert isinstance(first, BatchResult)
    complete_first = {f.relative for f in first.files if f.status == "downloaded"}
    failed_first = {f.relative for f in first.files if f.status == "failed"}
    assert complete_first, "the files finished before the cut are complete"
    assert failed_first, "the cut failed at least one file"
    assert all(f.retriable for f in first.files if f.status == "failed")

    second = mirror(sftp_server, str(remote_dir), local_dir, port=proxy.port, concurrency=2)

    statuses = {f.relative: f.status for f in second.files}
    assert {n for n, s in statuses.items() if s == "skipped"} == complete_first
    assert all(statuses[n] in {"resumed", "downloaded"} for n in failed_first)
    assert any(statuses[n] == "resumed" for n in failed_first), "a file cut after a checkpoint resumes"
    for name, digest in digests.items():
        assert sha256_file(local_dir / name) == digest
    fetched_first = sum(f.bytes_transferred for f in first.files if f.status == "downloaded")
    assert second.bytes_transferred < total - fetched_first, "the retry does not fetch kept bytes again"


class HostileSFTPServer(asyncssh.SFTPServer):
    """Lists names that try to climb out of the target directory, next to honest files."""

    HOSTILE = (b"../escaped.bin", b"/tmp/absolute.bin", b"sub/../../climb.bin", b"innocent.bin.part")

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        async for entry in super().scandir(path):
            yield entry
        attrs = asyncssh.SFTPAttrs(
            type=asyncssh.FILEXFER_TYPE_REGULAR, size=10, permissions=0o100644, mtime=1
        )
        for name in self.HOSTILE:
            yield asyncssh.SFTPName(name, attrs=attrs)


@pytest.fixture
def hostile_server(tmp_path_factory: pytest.TempPathFactory, client_key: KeyPair) -> Iterator[ServerInfo]:
    from tests.support.servers import AsyncsshServer

    server = AsyncsshServer(tmp_path_factory.mktemp("hostile"), client_key, sftp_factory=HostileSFTPServer)
    try:
        yield server.info
    finally:
        server.stop()


def test_hostile_remote_names_are_refused_and_nothing_lands_outside(
    hostile_server: ServerInfo, tmp_path: Path
) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    digest = write_random(remote / "good.bin", 5000)
    local = tmp_path / "deep" / "local"
    local.mkdir(parents=True)
    before = {p for p in tmp_path.rglob("*") if not p.is_relative_to(remote)}

    with pytest.raises(BatchFailed, match="Refusing the remote name") as failure:
        mirror(hostile_server, str(remote), local)

    result = failure.value.result
    assert isinstance(result, BatchResult)
    assert result.count("refused") == len(HostileSFTPServer.HOSTILE)
    assert sha256_file(local / "good.bin") == digest, "honest files are still downloaded"
    after = {p for p in tmp_path.rglob("*") if not p.is_relative_to(remote)}
    assert after - before == {local / "good.bin"}, "nothing else was written anywhere"
    assert not (tmp_path / "escaped.bin").exists()
    assert not os.path.exists("/tmp/absolute.bin")


def test_remote_links_are_followed_only_inside_the_tree(
    openssh_server: ServerInfo, tmp_path: Path, local_dir: Path
) -> None:
    remote = tmp_path / "remote-tree"
    remote.mkdir()
    secret = tmp_path / "outside-secret.txt"
    secret.write_text("not for you")
    digest = write_random(remote / "real.bin", 4000)
    (remote / "inside-link.bin").symlink_to(remote / "real.bin")
    (remote / "escape-link.txt").symlink_to(secret)

    with pytest.raises(BatchFailed, match="outside"):
        mirror(openssh_server, str(remote), local_dir)

    assert sha256_file(local_dir / "real.bin") == digest
    assert sha256_file(local_dir / "inside-link.bin") == digest
    assert not (local_dir / "escape-link.txt").exists()


def test_a_local_symlink_on_the_way_is_refused(
    openssh_server: ServerInfo, remote_dir: Path, local_dir: Path, tmp_path: Path
) -> None:
    make_tree(remote_dir, {"sub/file.bin": 100})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (local_dir / "sub").symlink_to(elsewhere)

    with pytest.raises(BatchFailed, match="not a plain directory"):
        mirror(openssh_server, str(remote_dir), local_dir, recursive=True)

    assert list(elsewhere.iterdir()) == []


def test_post_actions_run_only_after_a_verified_download(
    sftp_server: ServerInfo, proxy: FaultProxy, remote_dir: Path, local_dir: Path, tmp_path: Path
) -> None:
    digests = make_tree(remote_dir, {"one.bin": 2 * MiB, "two.bin": 16 * MiB})
    archive = tmp_path / "archive"

    proxy.cut_after(10 * MiB)
    with pytest.raises(SomeFilesFailed):
        mirror(
            sftp_server,
            str(remote_dir),
            local_dir,
            port=proxy.port,
            concurrency=1,
            post_action=RemotePostAction.parse("move", str(archive)),
        )
    assert (remote_dir / "two.bin").exists(), "a file not yet complete locally stays on the server"
    assert (archive / "one.bin").exists()
    assert not (remote_dir / "one.bin").exists()

    result = mirror(
        sftp_server,
        str(remote_dir),
        local_dir,
        port=proxy.port,
        post_action=RemotePostAction.parse("move", str(archive)),
    )
    assert [f.post_action for f in result.files] == [f"moved to {archive}/two.bin"]
    for name, digest in digests.items():
        assert sha256_file(local_dir / name) == digest
        assert sha256_file(archive / name) == digest
    assert list(remote_dir.iterdir()) == []


def test_post_action_delete_and_argument_checks(
    sftp_server: ServerInfo, remote_dir: Path, local_dir: Path
) -> None:
    digests = make_tree(remote_dir, {"gone.csv": 3000})
    result = mirror(
        sftp_server, str(remote_dir), local_dir, post_action=RemotePostAction.parse("delete", None)
    )
    assert result.files[0].post_action == "deleted"
    assert sha256_file(local_dir / "gone.csv") == digests["gone.csv"]
    assert not (remote_dir / "gone.csv").exists()
    with pytest.raises(ValueError, match="archive_dir"):
        RemotePostAction.parse("move", None)
    with pytest.raises(ValueError, match="Unknown post_action"):
        RemotePostAction.parse("shred", None)
    with pytest.raises(ValueError, match="already a glob"):
        RemoteSelection.parse("/x/*.csv", "*.txt")
