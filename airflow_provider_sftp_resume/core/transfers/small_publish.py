"""
The local side of the small-file path: a whole file published at once, renames made durable in batches.

A small file's bytes go to ``<target>.part`` (no sidecar: there is nothing worth resuming), are
hashed, given the remote mtime, fsynced and renamed over the target; the rename is made durable by
an fsync of its directory, once per directory for a batch (:class:`DirectorySync`; what each file
gets is in ``docs/directories.md``).
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

from airflow_provider_sftp_resume.core.errors import TransferError
from airflow_provider_sftp_resume.core.resume.localfiles import (
    fsync_directory,
    open_part,
    os_error_to_local,
    pwrite_all,
    remove_quietly,
)
from airflow_provider_sftp_resume.core.threads import in_thread

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_sftp_resume.core.resume.localfiles import LocalPaths


class DirectorySync:
    """
    The directories whose renames are not durable yet; :meth:`sync_all` fsyncs each once.

    A published small file's data is fsynced before its rename, so after an OS crash its target is
    either absent or complete; the rename itself is made durable by the directory fsync, once per
    directory at the end of the batch (or before a post-action touches the remote file).
    """

    def __init__(self) -> None:
        self._pending: set[Path] = set()

    def note(self, directory: Path) -> None:
        self._pending.add(directory)

    async def sync(self, directory: Path) -> None:
        """Make the renames in ``directory`` durable now."""
        self._pending.discard(directory)
        await in_thread(_fsync_directory, directory)

    async def sync_all(self) -> None:
        """Make every pending rename durable."""
        pending, self._pending = sorted(self._pending), set()
        if pending:
            await in_thread(_fsync_directories, pending)


def publish_whole(paths: LocalPaths, data: bytes, mtime: int | None) -> str:
    """Write ``.part``, hash, fsync, rename over the target (blocking: in a thread); the hex sha256."""
    fd = open_part(paths)
    try:
        try:
            os.ftruncate(fd, 0)
            pwrite_all(fd, data, 0, paths.part)
            digest = hashlib.sha256(data)
            if mtime is not None:
                os.utime(fd, (mtime, mtime))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(paths.part, paths.target)
    except TransferError:
        remove_quietly(paths.part)
        raise
    except OSError as exc:
        remove_quietly(paths.part)
        raise os_error_to_local(exc, paths.target, "publishing") from None
    return digest.hexdigest()


def _fsync_directories(directories: list[Path]) -> None:
    for directory in directories:
        _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    try:
        fsync_directory(directory)
    except OSError as exc:
        raise os_error_to_local(exc, directory, "syncing") from None
