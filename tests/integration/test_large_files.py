"""Offsets past 2**32: a sparse remote file larger than 4 GiB, against both real servers."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import random
from typing import TYPE_CHECKING

import pytest

from airflow_provider_sftp_resume.core.resume.localfiles import LocalPaths, write_state
from airflow_provider_sftp_resume.core.resume.state import RemoteFingerprint, ResumeState
from airflow_provider_sftp_resume.core.resume.verify import TAIL_LENGTH
from airflow_provider_sftp_resume.core.transfers.download import DownloadOptions, download_file
from tests.conftest import endpoint_for, session_factory

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.servers import ServerInfo

MiB = 1024 * 1024
GiB = 1024 * MiB
HOLE = 4 * GiB + 3 * MiB  # past 2**32
KEPT = HOLE + 2 * MiB
SIZE = HOLE + 8 * MiB


def sparse_remote(path: Path) -> tuple[bytes, str]:
    """A file of SIZE bytes: zeros (a hole) up to HOLE, then 8 MiB of random data."""
    tail = random.Random(7).randbytes(SIZE - HOLE)
    with open(path, "wb") as handle:
        handle.truncate(HOLE)
        handle.seek(HOLE)
        handle.write(tail)
    return tail, expected_digest(tail)


@functools.cache
def expected_digest(tail: bytes) -> str:
    digest = hashlib.sha256()
    zeros = bytes(64 * MiB)
    for _ in range(HOLE // len(zeros)):
        digest.update(zeros)
    digest.update(bytes(HOLE % len(zeros)))
    digest.update(tail)
    return digest.hexdigest()


def test_resume_past_4_gib(sftp_server: ServerInfo, tmp_path: Path) -> None:
    source = tmp_path / "huge.bin"
    tail, digest = sparse_remote(source)
    target = tmp_path / "huge.out"
    paths = LocalPaths.for_target(target)
    # An earlier try kept everything up to KEPT (past 2**32): a sparse .part with the same bytes.
    with open(paths.part, "wb") as handle:
        handle.truncate(HOLE)
        handle.seek(HOLE)
        handle.write(tail[: KEPT - HOLE])
    stat = source.stat()
    fingerprint = RemoteFingerprint(
        path=str(source),
        size=SIZE,
        mtime=int(stat.st_mtime),
        tail_length=TAIL_LENGTH,
        tail_sha256=hashlib.sha256(tail[-TAIL_LENGTH:]).hexdigest(),
    )
    write_state(paths, ResumeState.fresh(fingerprint).with_progress(0, KEPT))

    opener = session_factory(endpoint_for(sftp_server))
    result = asyncio.run(download_file(opener, str(source), target, DownloadOptions(preserve_mtime=False)))

    assert result.resumed_from == KEPT > 2**32
    assert result.checks_passed == ("size", "mtime", "tail", "overlap")
    assert result.bytes_transferred == SIZE - KEPT
    assert os.path.getsize(target) == SIZE
    assert result.sha256 == digest
    with open(target, "rb") as handle:
        handle.seek(HOLE)
        assert handle.read() == tail


@pytest.mark.slow
def test_full_download_of_a_5_gib_sparse_file(openssh_server: ServerInfo, tmp_path: Path) -> None:
    source = tmp_path / "huge.bin"
    _, digest = sparse_remote(source)
    target = tmp_path / "huge.out"
    opener = session_factory(endpoint_for(openssh_server))
    result = asyncio.run(download_file(opener, str(source), target))
    assert result.size == SIZE
    assert result.sha256 == digest
