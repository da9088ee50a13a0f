"""The trailing sha256: correct digests, and an abandon that does not wait for the whole kept prefix."""

from __future__ import annotations

import hashlib
import os
import random
import time
from typing import TYPE_CHECKING

from airflow_provider_sftp_resume.core.resume.hashing import TrailingHasher

if TYPE_CHECKING:
    from pathlib import Path

GiB = 1024**3


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_abandon_returns_promptly_on_a_multi_gib_kept_prefix(tmp_path: Path) -> None:
    """A failed resumed try abandons the hasher while it is still reading the kept bytes back."""
    part = tmp_path / "big.part"
    with open(part, "wb") as handle:
        handle.truncate(4 * GiB)  # sparse: reading it back costs CPU (hashing), not disk
    before = part.stat()
    fds = open_fds()
    hasher = TrailingHasher(part)
    hasher.advance(4 * GiB)  # the whole kept prefix of a resumed try is to be hashed
    time.sleep(0.2)  # the thread is busy hashing now
    started = time.monotonic()
    hasher.abandon()
    elapsed = time.monotonic() - started
    assert elapsed < 0.5, f"abandon() blocked the caller for {elapsed:.2f} s"
    after = part.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    deadline = time.monotonic() + 2
    while open_fds() > fds and time.monotonic() < deadline:
        time.sleep(0.01)
    assert open_fds() == fds, "the hasher must release the .part once it has stopped"


def test_digest_of_a_file_that_grows_while_it_is_hashed(tmp_path: Path) -> None:
    data = random.Random(3).randbytes(5 * 1024 * 1024 + 17)
    part = tmp_path / "f.part"
    part.write_bytes(b"")
    hasher = TrailingHasher(part)
    with open(part, "r+b") as handle:
        for offset in range(0, len(data), 700_001):
            block = data[offset : offset + 700_001]
            handle.seek(offset)
            handle.write(block)
            handle.flush()
            hasher.advance(offset + len(block), (offset, block) if offset % 2 else None)
    assert hasher.finish(len(data)) == hashlib.sha256(data).hexdigest()
