"""The .part writer thread: a block counts as written only once it is, in order, bounded, and a failed
write stops everything after it. Real files, a real full device (``/dev/full``), real threads."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from airflow_provider_sftp_resume.core.destinations.writebehind import WriteBehind
from airflow_provider_sftp_resume.core.errors import LocalDiskFull

BLOCK = 64 * 1024


def _writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "part-writer"]


def test_blocks_are_reported_written_in_order_only_after_their_bytes_are_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "f.part"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    blocks = [os.urandom(BLOCK) for _ in range(64)]
    reported: list[int] = []

    def written(index: int) -> None:
        # The bytes are in the file when the loop hears of them.
        assert os.pread(fd, BLOCK, index * BLOCK) == blocks[index]
        reported.append(index)

    async def main() -> None:
        behind = WriteBehind(fd, path, max_bytes=4 * BLOCK)
        for index, data in enumerate(blocks):
            await behind.submit(index * BLOCK, data, functools.partial(written, index))
            assert behind.queued_bytes <= 4 * BLOCK  # bounded: the hand-over waits when full
        await behind.wait()
        assert behind.queued_bytes == 0
        assert _writer_threads()
        await asyncio.to_thread(behind.stop)

    try:
        asyncio.run(main())
    finally:
        os.close(fd)
    assert reported == list(range(64))
    assert path.read_bytes() == b"".join(blocks)
    assert not _writer_threads()  # the thread ends with the try


def test_blocks_of_a_batch_that_never_fills_are_written_and_reported_while_the_loop_waits(
    tmp_path: Path,
) -> None:
    # A stalled link: a few blocks, then nothing more to hand over. They must still reach the file
    # and be reported (so the next checkpoint covers them) without another submit or wait.
    path = tmp_path / "f.part"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    reported: list[int] = []

    async def main() -> None:
        behind = WriteBehind(fd, path)
        for index in range(3):
            await behind.submit(
                index * BLOCK, bytes([index + 1]) * BLOCK, functools.partial(reported.append, index)
            )
        assert reported == []
        deadline = asyncio.get_running_loop().time() + 5
        while len(reported) < 3 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(behind.stop)

    try:
        asyncio.run(main())
    finally:
        os.close(fd)
    assert reported == [0, 1, 2]
    assert path.read_bytes() == b"".join(bytes([i + 1]) * BLOCK for i in range(3))


def test_a_failed_write_is_raised_and_nothing_after_it_is_reported() -> None:
    fd = os.open("/dev/full", os.O_WRONLY)  # every write: ENOSPC
    reported: list[int] = []

    async def main() -> None:
        behind = WriteBehind(fd, Path("/dev/full"))
        for index in range(100):
            # the error surfaces on a later hand-over or at the end
            with contextlib.suppress(LocalDiskFull):
                await behind.submit(index * BLOCK, b"x" * BLOCK, functools.partial(reported.append, index))
        with pytest.raises(LocalDiskFull, match="disk full"):
            await behind.wait()
        with pytest.raises(LocalDiskFull):  # and again: the failure sticks
            await behind.wait()
        await asyncio.to_thread(behind.stop)

    try:
        asyncio.run(main())
    finally:
        os.close(fd)
    assert reported == []
    assert not _writer_threads()


def test_stop_drops_the_blocks_not_yet_written(tmp_path: Path) -> None:
    path = tmp_path / "f.part"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    reported: list[int] = []

    async def main() -> None:
        behind = WriteBehind(fd, path, max_bytes=1 << 30)
        for index in range(256):
            await behind.submit(index * BLOCK, b"y" * BLOCK, functools.partial(reported.append, index))
        await asyncio.to_thread(behind.stop)
        assert behind.queued_bytes == 0

    try:
        asyncio.run(main())
    finally:
        os.close(fd)
    assert not _writer_threads()
    # Whatever reached the file is a prefix of whole blocks in order; nothing was reported after stop.
    size = path.stat().st_size
    assert size % BLOCK == 0
    assert size <= 256 * BLOCK
    assert reported == list(range(len(reported)))


SHORT_WRITE_CHILD = """
import asyncio, functools, os, resource, signal, sys
from pathlib import Path
from airflow_provider_sftp_resume.core.destinations.writebehind import WriteBehind
from airflow_provider_sftp_resume.core.errors import TransferError

path, block = Path(sys.argv[1]), int(sys.argv[2])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (block + block // 2, resource.RLIM_INFINITY))
fd = os.open(path, os.O_RDWR | os.O_CREAT)
reported = []

async def main():
    behind = WriteBehind(fd, path, max_bytes=64 * block)
    for index in range(4):  # one run of contiguous blocks: one pwritev, which the limit cuts short
        data = bytes([index + 1]) * block
        await behind.submit(index * block, data, functools.partial(reported.append, index))
    try:
        await behind.wait()
    except TransferError as exc:
        print(type(exc).__name__, reported, flush=True)
    await asyncio.to_thread(behind.stop)

asyncio.run(main())
"""


def test_a_short_write_inside_a_batch_reports_only_the_whole_blocks_before_it(tmp_path: Path) -> None:
    # The kernel writes up to RLIMIT_FSIZE and returns a short count, then EFBIG: the batch's one
    # pwritev stops inside block 1; block 0 counts as written, block 1 and later never do.
    path = tmp_path / "f.part"
    done = subprocess.run(
        [sys.executable, "-c", SHORT_WRITE_CHILD, str(path), str(BLOCK)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "LocalPathError [0]"
    assert path.read_bytes()[:BLOCK] == b"\x01" * BLOCK
    assert path.stat().st_size == BLOCK + BLOCK // 2  # the kernel's short write, nothing beyond
