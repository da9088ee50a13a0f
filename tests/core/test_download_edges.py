"""Download edge cases against the in-memory remote: local paths, symlinks, truncation, abort."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import random
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

import pytest

from airflow_provider_sftp_resume.core.errors import LocalPathError, RemoteChanged, TransferInterrupted
from airflow_provider_sftp_resume.core.progress import ProgressReporter
from airflow_provider_sftp_resume.core.resume.hashing import TrailingHasher
from airflow_provider_sftp_resume.core.resume.localfiles import LocalPaths
from airflow_provider_sftp_resume.core.resume.locking import TransferLock
from airflow_provider_sftp_resume.core.resume.state import ResumeState
from airflow_provider_sftp_resume.core.resume.verify import TAIL_LENGTH, parse_verify
from airflow_provider_sftp_resume.core.runner import AbortableRun
from airflow_provider_sftp_resume.core.transfers.download import DownloadOptions, download_file
from tests.core.memory_remote import Behaviour, MemoryFile, MemoryFileSystem

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

DATA = random.Random(2).randbytes(700_001)
DIGEST = hashlib.sha256(DATA).hexdigest()


def fetch(fs: MemoryFileSystem, local: Path, **options: object):  # type: ignore[no-untyped-def]
    merged: dict[str, object] = {"checkpoint_interval": 0.01, **options}
    if "verify" in merged:
        merged["verify"] = parse_verify(merged["verify"])  # type: ignore[arg-type]
    return asyncio.run(download_file(fs.opener(), "/f", local, DownloadOptions(**merged)))  # type: ignore[arg-type]


def test_local_path_that_is_a_directory(tmp_path: Path) -> None:
    fs = MemoryFileSystem({"/f": MemoryFile(DATA)})
    with pytest.raises(LocalPathError, match="is a directory"):
        fetch(fs, tmp_path)


def test_missing_parent_needs_create_intermediate_dirs(tmp_path: Path) -> None:
    fs = MemoryFileSystem({"/f": MemoryFile(DATA)})
    target = tmp_path / "a" / "b" / "f.bin"
    with pytest.raises(LocalPathError, match="create_intermediate_dirs=True"):
        fetch(fs, target)
    assert not (tmp_path / "a").exists()
    assert fetch(fs, target, create_intermediate_dirs=True).sha256 == DIGEST


def test_planted_symlink_at_part_path_is_not_followed(tmp_path: Path) -> None:
    fs = MemoryFileSystem({"/f": MemoryFile(DATA)})
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    target = tmp_path / "f.bin"
    LocalPaths.for_target(target).part.symlink_to(victim)
    with pytest.raises(LocalPathError, match="symbolic link"):
        fetch(fs, target)
    assert victim.read_text() == "precious"


def test_remote_truncated_while_reading_discards_partial(tmp_path: Path) -> None:
    files = {"/f": MemoryFile(DATA)}

    def truncate(offset: int, length: int) -> None:
        if offset > 300_000:
            files["/f"] = MemoryFile(DATA[:400_000])

    fs = MemoryFileSystem(files, Behaviour(on_read=truncate))
    target = tmp_path / "f.bin"
    with pytest.raises(RemoteChanged):
        fetch(fs, target)
    assert sorted(os.listdir(tmp_path)) == []


def test_remote_mtime_touched_during_transfer_is_not_published(tmp_path: Path) -> None:
    files = {"/f": MemoryFile(DATA)}

    def touch(offset: int, length: int) -> None:
        if offset > 300_000:
            files["/f"].mtime = 1_800_000_000

    fs = MemoryFileSystem(files, Behaviour(on_read=touch))
    with pytest.raises(RemoteChanged, match="changed while it was downloaded"):
        fetch(fs, tmp_path / "f.bin")
    assert not (tmp_path / "f.bin").exists()


def test_absurd_offsets_in_sidecar_restart_without_seeking_past_the_file(tmp_path: Path) -> None:
    fs = MemoryFileSystem({"/f": MemoryFile(DATA)})
    target = tmp_path / "f.bin"
    paths = LocalPaths.for_target(target)
    paths.part.write_bytes(b"x" * 10)
    paths.sidecar.write_text(
        json.dumps(
            {
                "format": "airflow-provider-sftp-resume/part",
                "version": 1,
                "remote": {"path": "/f", "size": 2**62, "mtime": 1, "tail_length": 0, "tail_sha256": ""},
                "segments": [{"start": 0, "end": 2**62, "done": 2**61}],
            }
        )
    )
    result = fetch(fs, target)
    assert result.resumed_from == 0
    assert result.restart_reason
    assert max(offset + length for offset, length in fs.behaviour.reads) <= len(DATA)
    assert result.sha256 == DIGEST


def test_interrupted_then_resumed_in_memory(tmp_path: Path) -> None:
    behaviour = Behaviour(drop_at=400_000)
    fs = MemoryFileSystem({"/f": MemoryFile(DATA)}, behaviour)
    target = tmp_path / "f.bin"
    with pytest.raises(TransferInterrupted):
        fetch(fs, target, verify=("mtime", "overlap"))  # no tail read: the fake drops reads past 400 kB
    state = ResumeState.from_json(LocalPaths.for_target(target).sidecar.read_text())
    assert 0 < state.durable_bytes <= 400_000 + 32 * 1024  # the block that started before the drop
    behaviour.drop_at = None
    result = fetch(fs, target, verify=("mtime", "overlap"))
    assert result.resumed_from == state.durable_bytes
    assert result.sha256 == DIGEST


def test_abort_from_another_thread_keeps_a_checkpoint(tmp_path: Path) -> None:
    fs = MemoryFileSystem({"/f": MemoryFile(DATA)}, Behaviour(hang_at=500_000))
    target = tmp_path / "f.bin"
    run = AbortableRun(
        lambda: download_file(
            fs.opener(),
            "/f",
            target,
            DownloadOptions(checkpoint_interval=0.01, stall_timeout=600, verify=parse_verify("mtime")),
        )
    )
    timer = threading.Timer(0.5, run.abort)
    timer.start()
    started = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        run.run()
    assert time.monotonic() - started < 5
    state = ResumeState.from_json(LocalPaths.for_target(target).sidecar.read_text())
    assert state.durable_bytes > 0
    assert not LocalPaths.for_target(target).lock.exists()


def test_lock_is_exclusive_and_removed(tmp_path: Path) -> None:
    paths = LocalPaths.for_target(tmp_path / "f.bin")
    first = TransferLock(paths.lock, paths.target)
    first.acquire()
    with pytest.raises(Exception, match="Another transfer"):
        TransferLock(paths.lock, paths.target).acquire()
    first.release()
    assert not paths.lock.exists()
    with TransferLock(paths.lock, paths.target):
        assert paths.lock.exists()


def test_trailing_hasher_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"")
    hasher = TrailingHasher(path)
    with open(path, "ab") as handle:
        for start in range(0, len(DATA), 65_537):
            handle.write(DATA[start : start + 65_537])
            handle.flush()
            hasher.advance(min(len(DATA), start + 65_537))
    assert hasher.finish(len(DATA)) == DIGEST


def test_progress_lines_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    reporter = ProgressReporter(logging.getLogger("t"), 1000, 0, interval=10, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="t"):
        for step in range(1, 101):
            now[0] = step * 0.5
            reporter.update(step * 10)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 5
    assert lines[0].startswith("Progress: 20.0% (200 B of 1.0 kB) at 0.0 MB/s, ETA 40s")


def test_core_imports_without_airflow() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'airflow' or name.startswith('airflow.'):\n"
        "            raise ImportError('airflow is blocked in this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import airflow_provider_sftp_resume.core as core\n"
        "assert not any(m == 'airflow' or m.startswith('airflow.') for m in sys.modules)\n"
        "print(len(core.__all__))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 10


def _interrupt_at_400k(armed: list[bool]) -> Callable[[int, int], None]:
    def on_read(offset: int, length: int) -> None:
        # drop the link mid-transfer, but let the fingerprint's tail read (last 64 KiB) through
        if armed[0] and 400_000 <= offset < len(DATA) - TAIL_LENGTH:
            raise TransferInterrupted("fake link dropped", offset=offset)

    return on_read


def test_rewrite_far_from_resume_point_with_new_mtime_restarts(tmp_path: Path) -> None:
    armed = [True]
    files = {"/f": MemoryFile(DATA)}
    fs = MemoryFileSystem(files, Behaviour(on_read=_interrupt_at_400k(armed)))
    target = tmp_path / "f.bin"
    with pytest.raises(TransferInterrupted):
        fetch(fs, target)  # default verify: mtime+tail+overlap
    assert ResumeState.from_json(LocalPaths.for_target(target).sidecar.read_text()).durable_bytes > 0
    # Same size, same last 64 KiB, same bytes just before the resume point; only the head and mtime change.
    new = b"\x00" * 1000 + DATA[1000:]
    files["/f"] = MemoryFile(new, mtime=1_700_000_100)
    armed[0] = False
    result = fetch(fs, target)
    assert result.resumed_from == 0
    assert result.restart_reason
    assert "mtime" in result.restart_reason
    assert result.sha256 == hashlib.sha256(new).hexdigest()
    assert hashlib.sha256(target.read_bytes()).hexdigest() == hashlib.sha256(new).hexdigest()


def test_bytes_past_the_checkpoint_are_cut_off_on_resume(tmp_path: Path) -> None:
    behaviour = Behaviour(drop_at=400_000)
    fs = MemoryFileSystem({"/f": MemoryFile(DATA)}, behaviour)
    target = tmp_path / "f.bin"
    with pytest.raises(TransferInterrupted):
        fetch(fs, target, verify=("mtime", "overlap"))
    paths = LocalPaths.for_target(target)
    done = ResumeState.from_json(paths.sidecar.read_text()).durable_bytes
    # Untrusted bytes past the checkpoint, reaching beyond the end of the remote file.
    with open(paths.part, "r+b") as part:
        part.seek(done)
        part.write(b"\xff" * (len(DATA) - done + 5000))
    behaviour.drop_at = None
    result = fetch(fs, target, verify=("mtime", "overlap"))
    assert result.resumed_from == done
    assert os.path.getsize(target) == len(DATA)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == DIGEST == result.sha256


def test_tail_rewritten_during_transfer_with_size_and_mtime_kept_is_not_published(tmp_path: Path) -> None:
    files = {"/f": MemoryFile(DATA)}
    rewritten = DATA[:-10] + b"0123456789"

    def rewrite_tail(offset: int, length: int) -> None:
        if 200_000 < offset < 400_000:
            files["/f"] = MemoryFile(rewritten)  # same size, same mtime

    fs = MemoryFileSystem(files, Behaviour(on_read=rewrite_tail))
    with pytest.raises(RemoteChanged, match="end of the remote file changed"):
        fetch(fs, tmp_path / "f.bin")
    assert sorted(os.listdir(tmp_path)) == []


def test_trailing_hasher_uses_blocks_in_memory_and_the_file_for_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_bytes(DATA[:100_000])  # "kept" bytes, only on disk
    hasher = TrailingHasher(path)
    hasher.advance(100_000)
    with open(path, "ab") as handle:
        for start in range(100_000, len(DATA), 50_000):
            block = DATA[start : start + 50_000]
            handle.write(block)
            handle.flush()
            # a block from further on first, as a second connection would hand it over
            later = start + 50_000
            hasher.advance(start, (later, DATA[later : later + 50_000]))
            hasher.advance(start + len(block), (start, block))
    assert hasher.finish(len(DATA)) == DIGEST
