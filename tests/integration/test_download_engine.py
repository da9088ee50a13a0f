"""The transfer engine against real SFTP servers (OpenSSH sshd and asyncssh), with real faults."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import TYPE_CHECKING

import pytest

from airflow_provider_sftp_resume.core.errors import (
    AuthenticationFailed,
    ChecksumMismatch,
    HostKeyRejected,
    RemoteFileNotFound,
    RemotePathError,
    TransferInterrupted,
    TransferLocked,
    TransferStalled,
)
from airflow_provider_sftp_resume.core.resume.localfiles import LocalPaths
from airflow_provider_sftp_resume.core.resume.locking import TransferLock
from airflow_provider_sftp_resume.core.resume.verify import parse_verify
from airflow_provider_sftp_resume.core.transfers.download import (
    DownloadOptions,
    DownloadResult,
    download_file,
)
from tests.conftest import endpoint_for, session_factory, sha256_file, write_random
from tests.support.keys import make_key

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.faultproxy import FaultProxy
    from tests.support.servers import ServerInfo

MiB = 1024 * 1024
FAST = {"checkpoint_interval": 0.05}


def run(
    server: ServerInfo, remote: Path, local: Path, port: int | None = None, **options: object
) -> DownloadResult:
    opener = session_factory(endpoint_for(server, port))
    merged = {**FAST, **options}
    return asyncio.run(download_file(opener, str(remote), local, DownloadOptions(**merged)))  # type: ignore[arg-type]


def interrupted_try(
    server: ServerInfo, proxy: FaultProxy, source: Path, target: Path, cut: int, **options: object
) -> list[dict[str, int]]:
    """
    Run one try that the proxy cuts after ``cut`` bytes; return the segments its sidecar kept.

    The cut is a TCP reset, which discards whatever the client's kernel had received but the client
    had not read yet; on a loaded machine that can be every byte before the cut. Such a try keeps
    nothing, so it is cut again (a few times at most) until one kept bytes to resume from.
    """
    for _ in range(5):
        proxy.cut_after(cut)
        with pytest.raises(TransferInterrupted):
            run(server, source, target, port=proxy.port, **options)
        sidecar = json.loads(LocalPaths.for_target(target).sidecar.read_text())
        segments: list[dict[str, int]] = sidecar["segments"]
        if any(segment["done"] > segment["start"] for segment in segments):
            return segments
    raise AssertionError(f"five tries cut after {cut} bytes kept nothing: {segments}")


def leftovers(local: Path) -> list[str]:
    return sorted(p.name for p in local.parent.iterdir() if p.name != local.name)


def test_fresh_download_is_byte_exact_and_leaves_only_the_target(
    sftp_server: ServerInfo, remote_dir: Path, local_dir: Path
) -> None:
    source = remote_dir / "data.bin"
    digest = write_random(source, 3 * MiB + 12345)
    target = local_dir / "data.bin"

    result = run(sftp_server, source, target)

    assert sha256_file(target) == digest
    assert result.sha256 == digest
    assert result.size == source.stat().st_size
    assert result.resumed_from == 0
    assert result.bytes_transferred == result.size
    assert result.restart_reason is None
    assert leftovers(target) == []
    assert int(target.stat().st_mtime) == int(source.stat().st_mtime)
    json.dumps(result.to_dict())


def test_empty_file(sftp_server: ServerInfo, remote_dir: Path, local_dir: Path) -> None:
    source = remote_dir / "empty"
    digest = write_random(source, 0)
    result = run(sftp_server, source, local_dir / "empty")
    assert result.sha256 == digest
    assert (local_dir / "empty").stat().st_size == 0
    assert leftovers(local_dir / "empty") == []


def test_cut_then_resume_transfers_only_the_rest(
    sftp_server: ServerInfo, proxy: FaultProxy, remote_dir: Path, local_dir: Path
) -> None:
    source = remote_dir / "big.bin"
    digest = write_random(source, 8 * MiB, seed=1)
    target = local_dir / "big.bin"
    paths = LocalPaths.for_target(target)

    kept = interrupted_try(sftp_server, proxy, source, target, 5 * MiB)[0]["done"]
    assert not target.exists()
    assert 0 < kept < 8 * MiB
    assert paths.part.stat().st_size >= kept

    result = run(sftp_server, source, target, port=proxy.port)

    assert sha256_file(target) == digest
    assert result.resumed_from == kept
    assert result.bytes_transferred == 8 * MiB - kept
    assert result.checks_passed == ("size", "mtime", "tail", "overlap")
    assert result.restart_reason is None
    assert leftovers(target) == []


def test_same_size_rewrite_with_restored_mtime_restarts(
    sftp_server: ServerInfo, proxy: FaultProxy, remote_dir: Path, local_dir: Path
) -> None:
    source = remote_dir / "f.bin"
    write_random(source, 6 * MiB, seed=2)
    target = local_dir / "f.bin"
    interrupted_try(sftp_server, proxy, source, target, 3 * MiB)

    before = source.stat()
    new_digest = write_random(source, 6 * MiB, seed=3)
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))

    result = run(sftp_server, source, target, port=proxy.port)

    assert result.resumed_from == 0
    assert result.restart_reason is not None
    assert "tail" in result.restart_reason or "last" in result.restart_reason
    assert sha256_file(target) == new_digest


def test_rewrite_only_near_resume_point_is_caught_by_overlap(
    sftp_server: ServerInfo, proxy: FaultProxy, remote_dir: Path, local_dir: Path
) -> None:
    source = remote_dir / "f.bin"
    write_random(source, 6 * MiB, seed=4)
    target = local_dir / "f.bin"
    kept = interrupted_try(sftp_server, proxy, source, target, 3 * MiB)[0]["done"]

    before = source.stat()
    with open(source, "r+b") as handle:  # change 100 bytes just before the resume point
        handle.seek(kept - 200)
        handle.write(b"\xff" * 100)
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    new_digest = sha256_file(source)

    result = run(sftp_server, source, target, port=proxy.port)
    assert result.resumed_from == 0
    assert result.restart_reason is not None
    assert "differ" in result.restart_reason
    assert sha256_file(target) == new_digest

    # With only size+mtime the same change would go unnoticed: that is the trade-off README states.


def test_append_between_tries_restarts(
    sftp_server: ServerInfo, proxy: FaultProxy, remote_dir: Path, local_dir: Path
) -> None:
    source = remote_dir / "grow.bin"
    write_random(source, 12 * MiB, seed=5)
    target = local_dir / "grow.bin"
    interrupted_try(sftp_server, proxy, source, target, 6 * MiB)
    with open(source, "ab") as handle:
        handle.write(b"more" * 1000)
    result = run(sftp_server, source, target)
    assert result.resumed_from == 0
    assert result.restart_reason is not None
    assert "size" in result.restart_reason
    assert sha256_file(target) == sha256_file(source)


def test_stall_fails_within_the_stall_timeout(
    sftp_server: ServerInfo, proxy: FaultProxy, remote_dir: Path, local_dir: Path
) -> None:
    source = remote_dir / "s.bin"
    write_random(source, 6 * MiB, seed=6)
    target = local_dir / "s.bin"
    proxy.stall_after(2 * MiB)
    started = time.monotonic()
    with pytest.raises(TransferStalled):
        run(sftp_server, source, target, port=proxy.port, stall_timeout=1.5)
    assert time.monotonic() - started < 10
    proxy.heal()
    result = run(sftp_server, source, target, port=proxy.port)
    assert result.resumed_from > 0
    assert sha256_file(target) == sha256_file(source)


def test_missing_remote_file_names_the_path_and_writes_nothing(
    sftp_server: ServerInfo, remote_dir: Path, local_dir: Path
) -> None:
    target = local_dir / "x.bin"
    with pytest.raises(RemoteFileNotFound, match=r"nope\.bin"):
        run(sftp_server, remote_dir / "nope.bin", target)
    assert list(local_dir.iterdir()) == []


def test_remote_directory_is_refused(sftp_server: ServerInfo, remote_dir: Path, local_dir: Path) -> None:
    with pytest.raises(RemotePathError, match="directory"):
        run(sftp_server, remote_dir, local_dir / "x.bin")
    assert list(local_dir.iterdir()) == []


def test_rerun_over_complete_target_skips(sftp_server: ServerInfo, remote_dir: Path, local_dir: Path) -> None:
    source = remote_dir / "a.bin"
    digest = write_random(source, MiB, seed=7)
    target = local_dir / "a.bin"
    run(sftp_server, source, target)
    again = run(sftp_server, source, target)
    assert again.skipped
    assert again.bytes_transferred == 0
    assert again.sha256 == digest


def test_rerun_with_changed_remote_replaces_target(
    sftp_server: ServerInfo, remote_dir: Path, local_dir: Path
) -> None:
    source = remote_dir / "a.bin"
    write_random(source, MiB, seed=8)
    target = local_dir / "a.bin"
    run(sftp_server, source, target)
    new_digest = write_random(source, MiB, seed=9)
    os.utime(source, (1_700_000_000, 1_700_000_000))
    result = run(sftp_server, source, target)
    assert not result.skipped
    assert sha256_file(target) == new_digest


def test_failed_try_never_destroys_existing_target(
    sftp_server: ServerInfo, proxy: FaultProxy, remote_dir: Path, local_dir: Path
) -> None:
    source = remote_dir / "a.bin"
    write_random(source, 4 * MiB, seed=10)
    target = local_dir / "a.bin"
    target.write_bytes(b"yesterday's complete file")
    interrupted_try(sftp_server, proxy, source, target, MiB)
    assert target.read_bytes() == b"yesterday's complete file"


def test_checksum_mismatch_on_fresh_download_is_permanent(
    sftp_server: ServerInfo, remote_dir: Path, local_dir: Path
) -> None:
    source = remote_dir / "a.bin"
    write_random(source, MiB, seed=11)
    target = local_dir / "a.bin"
    with pytest.raises(ChecksumMismatch, match="expected_sha256"):
        run(sftp_server, source, target, expected_sha256="0" * 64)
    assert not target.exists()
    assert leftovers(target) == []


def test_expected_sha256_match_succeeds(sftp_server: ServerInfo, remote_dir: Path, local_dir: Path) -> None:
    source = remote_dir / "a.bin"
    digest = write_random(source, MiB, seed=12)
    result = run(sftp_server, source, local_dir / "a.bin", expected_sha256=digest.upper())
    assert result.sha256 == digest


def test_corrupt_sidecar_restarts(sftp_server: ServerInfo, remote_dir: Path, local_dir: Path) -> None:
    source = remote_dir / "a.bin"
    digest = write_random(source, 2 * MiB, seed=13)
    target = local_dir / "a.bin"
    paths = LocalPaths.for_target(target)
    paths.part.write_bytes(b"x" * 1000)
    paths.sidecar.write_text('{"format": "airflow-provider-sftp-resume/part", "version": 1, "remote": 5}')
    result = run(sftp_server, source, target)
    assert result.resumed_from == 0
    assert result.restart_reason is not None
    assert "unusable" in result.restart_reason
    assert sha256_file(target) == digest


def test_part_without_sidecar_restarts(sftp_server: ServerInfo, remote_dir: Path, local_dir: Path) -> None:
    source = remote_dir / "a.bin"
    digest = write_random(source, 2 * MiB, seed=14)
    target = local_dir / "a.bin"
    LocalPaths.for_target(target).part.write_bytes(b"\0" * (3 * MiB))  # longer than the remote file
    result = run(sftp_server, source, target)
    assert result.resumed_from == 0
    assert result.restart_reason is not None
    assert sha256_file(target) == digest


def test_locally_corrupted_kept_bytes_are_caught(
    sftp_server: ServerInfo, proxy: FaultProxy, remote_dir: Path, local_dir: Path
) -> None:
    source = remote_dir / "a.bin"
    digest = write_random(source, 6 * MiB, seed=15)
    target = local_dir / "a.bin"
    kept = interrupted_try(sftp_server, proxy, source, target, 3 * MiB)[0]["done"]
    paths = LocalPaths.for_target(target)
    with open(paths.part, "r+b") as handle:
        handle.seek(kept - 10)
        handle.write(b"garbage!!!")
    result = run(sftp_server, source, target)
    assert result.resumed_from == 0
    assert sha256_file(target) == digest


def test_wrong_host_key_is_rejected(
    sftp_server: ServerInfo, remote_dir: Path, local_dir: Path, tmp_path: Path
) -> None:
    source = remote_dir / "a.bin"
    write_random(source, 1000)
    other = make_key(tmp_path / "other_host_key")
    opener = session_factory(endpoint_for(sftp_server, trusted_host_keys=(other.public_line,)))
    with pytest.raises(HostKeyRejected, match="host_key"):
        asyncio.run(download_file(opener, str(source), local_dir / "a.bin"))
    assert list(local_dir.iterdir()) == []


def test_unknown_client_key_fails_authentication(
    sftp_server: ServerInfo, remote_dir: Path, local_dir: Path, tmp_path: Path
) -> None:
    source = remote_dir / "a.bin"
    write_random(source, 1000)
    stranger = make_key(tmp_path / "stranger")
    opener = session_factory(endpoint_for(sftp_server, client_keys=(str(stranger.private),)))
    with pytest.raises(AuthenticationFailed, match="Authentication failed"):
        asyncio.run(download_file(opener, str(source), local_dir / "a.bin"))


def test_second_concurrent_try_is_locked_out(
    sftp_server: ServerInfo, remote_dir: Path, local_dir: Path
) -> None:
    source = remote_dir / "a.bin"
    write_random(source, 1000)
    target = local_dir / "a.bin"
    paths = LocalPaths.for_target(target)
    with TransferLock(paths.lock, paths.target), pytest.raises(TransferLocked, match="Another transfer"):
        run(sftp_server, source, target)
    assert not target.exists()


def test_verify_size_only_resumes_without_content_reads(
    sftp_server: ServerInfo, proxy: FaultProxy, remote_dir: Path, local_dir: Path
) -> None:
    source = remote_dir / "a.bin"
    digest = write_random(source, 12 * MiB, seed=16)
    target = local_dir / "a.bin"
    proxy.cut_after(6 * MiB)
    with pytest.raises(TransferInterrupted):
        run(sftp_server, source, target, port=proxy.port, verify=parse_verify("size"))
    result = run(sftp_server, source, target, verify=parse_verify("size"))
    assert result.resumed_from > 0
    assert result.checks_passed == ("size",)
    assert result.verification_bytes == 0
    assert sha256_file(target) == digest


PARALLEL = {"max_connections": 3, "min_segment_size": MiB}


def test_parallel_segments_are_byte_exact(sftp_server: ServerInfo, remote_dir: Path, local_dir: Path) -> None:
    source = remote_dir / "p.bin"
    digest = write_random(source, 7 * MiB + 333, seed=60)
    target = local_dir / "p.bin"
    result = run(sftp_server, source, target, **PARALLEL)
    assert result.sha256 == digest == sha256_file(target)
    assert result.bytes_transferred == result.size
    assert leftovers(target) == []


def test_parallel_cut_resumes_every_segment(
    sftp_server: ServerInfo, proxy: FaultProxy, remote_dir: Path, local_dir: Path
) -> None:
    source = remote_dir / "p.bin"
    digest = write_random(source, 12 * MiB, seed=61)
    target = local_dir / "p.bin"
    segments = interrupted_try(sftp_server, proxy, source, target, 8 * MiB, **PARALLEL)
    assert len(segments) == 12  # four per connection
    started = [s for s in segments if s["done"] > s["start"]]
    assert len(started) >= 2, f"segments must progress side by side before the cut: {segments}"
    kept = sum(s["done"] - s["start"] for s in segments)

    result = run(sftp_server, source, target, port=proxy.port, **PARALLEL)
    assert result.resumed_from == kept
    assert result.bytes_transferred == 12 * MiB - kept
    assert result.checks_passed == ("size", "mtime", "tail", "overlap")
    assert sha256_file(target) == digest


def test_parallel_change_inside_a_later_segment_is_caught(
    sftp_server: ServerInfo, proxy: FaultProxy, remote_dir: Path, local_dir: Path
) -> None:
    source = remote_dir / "p.bin"
    write_random(source, 12 * MiB, seed=62)
    target = local_dir / "p.bin"
    segments = interrupted_try(sftp_server, proxy, source, target, 8 * MiB, **PARALLEL)
    later = [s for s in segments[1:] if s["done"] - s["start"] >= 50]
    assert later, f"a later segment must have kept bytes: {segments}"
    before = source.stat()
    with open(source, "r+b") as handle:  # kept bytes just before a later segment's resume point
        handle.seek(later[0]["done"] - 50)
        handle.write(b"\x00" * 20)
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    result = run(sftp_server, source, target, **PARALLEL)
    assert result.resumed_from == 0
    assert sha256_file(target) == sha256_file(source)


def test_server_refusing_extra_connections_still_downloads(
    sftp_server: ServerInfo,
    proxy: FaultProxy,
    remote_dir: Path,
    local_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = remote_dir / "p.bin"
    digest = write_random(source, 6 * MiB, seed=63)
    target = local_dir / "p.bin"
    proxy.limit_connections(1)
    with caplog.at_level("WARNING"):
        result = run(sftp_server, source, target, port=proxy.port, **PARALLEL)
    assert result.sha256 == digest
    assert proxy.refused >= 1
    assert any("max_connections=1" in r.getMessage() for r in caplog.records)
