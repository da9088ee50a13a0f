"""The small-file path of a batch: what it publishes, and every case where it must decline."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import time
from typing import TYPE_CHECKING

from airflow_provider_sftp_resume.core.remote.protocol import RemoteStat
from airflow_provider_sftp_resume.core.transfers.batch_sessions import SharedSession
from airflow_provider_sftp_resume.core.transfers.download_types import DownloadOptions, DownloadResult
from airflow_provider_sftp_resume.core.transfers.small_file import (
    SMALL_FILE_MAX,
    download_small,
    takes_small_path,
)
from airflow_provider_sftp_resume.core.transfers.small_publish import DirectorySync
from tests.core.memory_remote import Behaviour, MemoryFile, MemoryFileSystem

if TYPE_CHECKING:
    from pathlib import Path

MTIME = 1_700_000_000
log = logging.getLogger(__name__)


def data_of(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def run_small(
    fs: MemoryFileSystem,
    target: Path,
    listed: RemoteStat | None = None,
    options: DownloadOptions | None = None,
) -> DownloadResult | None:
    listed = listed or asyncio.run(fs.stat("/f.bin"))

    async def go() -> DownloadResult | None:
        shared = SharedSession(fs.opener())
        dirs = DirectorySync()
        try:
            return await download_small(
                shared, "/f.bin", listed, target, options or DownloadOptions(), dirs=dirs, logger=log
            )
        finally:
            await dirs.sync_all()
            await shared.close()

    return asyncio.run(go())


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_a_small_file_is_published_whole_with_its_mtime_and_no_state_files(tmp_path: Path) -> None:
    data = data_of(100_000)
    fs = MemoryFileSystem({"/f.bin": MemoryFile(data, MTIME)})

    result = run_small(fs, tmp_path / "f.bin")

    assert result is not None
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "f.bin").read_bytes() == data
    assert int(os.stat(tmp_path / "f.bin").st_mtime) == MTIME
    assert leftovers(tmp_path) == ["f.bin"], "no .part, sidecar or lock is left"
    assert (result.size, result.bytes_transferred, result.resumed_from) == (100_000, 100_000, 0)
    # the tail (64 KiB) is read first and again last; the reads go from the end to the start
    reads = fs.behaviour.reads
    assert reads[0] == (100_000 - 32 * 1024, 32 * 1024)
    assert reads[-2:] == [(100_000, 1), (100_000 - 64 * 1024, 64 * 1024)]


def test_short_reads_are_followed(tmp_path: Path) -> None:
    data = data_of(70_000)
    fs = MemoryFileSystem({"/f.bin": MemoryFile(data, MTIME)}, Behaviour(max_read=5000))

    result = run_small(fs, tmp_path / "f.bin")

    assert result is not None
    assert (tmp_path / "f.bin").read_bytes() == data


def test_an_empty_file_is_published(tmp_path: Path) -> None:
    fs = MemoryFileSystem({"/f.bin": MemoryFile(b"", MTIME)})

    result = run_small(fs, tmp_path / "f.bin")

    assert result is not None
    assert (tmp_path / "f.bin").read_bytes() == b""


def test_a_file_changed_since_the_listing_is_left_to_the_single_file_try(tmp_path: Path) -> None:
    fs = MemoryFileSystem({"/f.bin": MemoryFile(data_of(50_000), MTIME + 5)})

    declined = run_small(fs, tmp_path / "f.bin", RemoteStat(size=50_000, mtime=MTIME))

    assert declined is None
    assert leftovers(tmp_path) == []


def test_a_file_longer_than_listed_is_left_to_the_single_file_try(tmp_path: Path) -> None:
    fs = MemoryFileSystem({"/f.bin": MemoryFile(data_of(50_001), MTIME)})

    declined = run_small(fs, tmp_path / "f.bin", RemoteStat(size=50_000, mtime=MTIME))

    assert declined is None
    assert leftovers(tmp_path) == []


def test_a_tail_rewritten_during_the_reads_is_never_published_mixed(tmp_path: Path) -> None:
    """Same size, same mtime second, new last bytes after the first (tail) read: declined."""
    data = data_of(200_000)
    fs = MemoryFileSystem({"/f.bin": MemoryFile(data, MTIME)})

    def rewrite(offset: int, length: int) -> None:
        if offset == 0:  # the last data read: the tail was read before it
            fs.files["/f.bin"] = MemoryFile(data[:-10] + b"X" * 10, MTIME)

    fs.behaviour.on_read = rewrite

    declined = run_small(fs, tmp_path / "f.bin")

    assert declined is None
    assert leftovers(tmp_path) == []


def test_local_state_sends_the_file_to_the_single_file_try(tmp_path: Path) -> None:
    fs = MemoryFileSystem({"/f.bin": MemoryFile(data_of(1000), MTIME)})
    (tmp_path / "f.bin.part.json").write_text("{}")

    assert run_small(fs, tmp_path / "f.bin") is None
    assert fs.behaviour.reads == [], "nothing was read for it"
    (tmp_path / "f.bin.part.json").unlink()
    (tmp_path / "f.bin").write_bytes(b"the user's file")
    assert run_small(fs, tmp_path / "f.bin") is None
    assert (tmp_path / "f.bin").read_bytes() == b"the user's file"


def test_a_leftover_part_without_sidecar_is_replaced(tmp_path: Path) -> None:
    """What a kill -9 of the small-file path leaves: a .part with no sidecar (nothing to resume)."""
    data = data_of(3000)
    fs = MemoryFileSystem({"/f.bin": MemoryFile(data, MTIME)})
    (tmp_path / "f.bin.part").write_bytes(b"half of an earlier try" * 1000)

    assert run_small(fs, tmp_path / "f.bin") is not None
    assert (tmp_path / "f.bin").read_bytes() == data
    assert leftovers(tmp_path) == ["f.bin"]


def test_which_files_take_the_small_path() -> None:
    small = RemoteStat(size=SMALL_FILE_MAX, mtime=MTIME)
    assert takes_small_path(DownloadOptions(), small)
    assert not takes_small_path(DownloadOptions(), RemoteStat(size=SMALL_FILE_MAX + 1, mtime=MTIME))
    assert not takes_small_path(DownloadOptions(), RemoteStat(size=0, mtime=MTIME, size_known=False))
    assert not takes_small_path(DownloadOptions(max_bytes_per_second=10_000), small)
    assert not takes_small_path(DownloadOptions(expected_sha256="0" * 64), small)


def test_a_stalled_read_is_declined_within_the_stall_timeout(tmp_path: Path) -> None:
    """The single-file try then gets the file on a session of its own; nothing is published."""
    fs = MemoryFileSystem({"/f.bin": MemoryFile(data_of(100_000), MTIME)}, Behaviour(hang_at=0))
    started = time.monotonic()

    declined = run_small(fs, tmp_path / "f.bin", options=DownloadOptions(stall_timeout=0.3))

    assert declined is None
    assert time.monotonic() - started < 5
    assert leftovers(tmp_path) == []
