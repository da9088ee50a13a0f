"""
The small-file path of a batch: a file that fits in one window, fetched in two round trips.

A file of up to :data:`SMALL_FILE_MAX` bytes that has no local state yet (no target, no sidecar) is
not worth resuming: a cut one restarts from byte 0, which costs less than keeping a checkpoint. So
instead of the single-file try (stat, open, tail fingerprint, data, stat, tail re-read, close: seven
round trips one after another) it costs two:

1. open the remote file;
2. in one flight, in this order on the session: the data reads from the end of the file to its
   start, a read at the listed size (it must be the end of the file), a re-read of the last 64 KiB
   (``tail`` in ``verify``) and a stat.

The server answers in order, so the tail was read before and after the other reads, and the stat
was served after the data. The copy is published only if the data is exactly the listed size, ends
there, the stat (size and mtime) still matches the listing, and the tail read first is the tail read
last (the single-file try's fingerprint and re-read, without their two round trips): a file that changed
since the listing, or while it was read, is never published mixed; it goes to the single-file try
instead (:func:`download_small` returns ``None``), which downloads it with every check. The close
of the remote file is not waited for (its round trip overlaps the next file's open).

Locally the bytes go to ``<target>.part`` (no sidecar), are hashed, given the remote mtime,
fsynced and renamed over the target; the directory's fsync is batched (:class:`DirectorySync`, see
``docs/directories.md``).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from typing import TYPE_CHECKING, Any

from airflow_provider_sftp_resume.core.errors import (
    RemoteChanged,
    RemoteFileNotFound,
    RemotePathError,
    TransferError,
)
from airflow_provider_sftp_resume.core.options import RequestTimer
from airflow_provider_sftp_resume.core.resume.localfiles import (
    LocalPaths,
    check_target,
    fsync_directory,
    open_part,
    os_error_to_local,
    pwrite_all,
    remove_quietly,
)
from airflow_provider_sftp_resume.core.resume.locking import TransferLock
from airflow_provider_sftp_resume.core.resume.verify import (
    TAIL_LENGTH,
    VerifyCheck,
    format_verify,
    read_exact,
)
from airflow_provider_sftp_resume.core.threads import in_thread
from airflow_provider_sftp_resume.core.transfers.download_types import DownloadOptions, DownloadResult

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_sftp_resume.core.logs import Logger
    from airflow_provider_sftp_resume.core.remote.protocol import RemoteFileSystem, RemoteReader, RemoteStat
    from airflow_provider_sftp_resume.core.transfers.batch_sessions import SharedSession

#: Largest file taken by the small-file path (at most ``concurrency`` of them are in memory at once).
SMALL_FILE_MAX = 1024 * 1024  # 1 MiB


def takes_small_path(options: DownloadOptions, listed: RemoteStat) -> bool:
    """
    Whether a listed file goes the small-file path under ``options``.

    Checksum proofs, ``expected_sha256`` and a bandwidth cap are the single-file try's (it shapes
    requests to the cap), and so is a file whose size the listing did not give.
    """
    return (
        listed.is_regular
        and listed.size_known
        and listed.size <= SMALL_FILE_MAX
        and options.checksums is None
        and options.expected_sha256 is None
        and options.bandwidth is None
    )


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


async def download_small(
    shared: SharedSession,
    remote_path: str,
    listed: RemoteStat,
    target: Path,
    options: DownloadOptions,
    *,
    dirs: DirectorySync,
    logger: Logger,
) -> DownloadResult | None:
    """
    Download a small file in one pass; ``None``: it needs the single-file try instead.

    That is when local state exists (a target to compare, or a sidecar to resume from), or the
    remote file differs from its listing or changed while it was read, or reading it failed (the
    shared session is then replaced).

    :param shared: the batch's shared session
    :param remote_path: the file on the server
    :param listed: its attributes from the listing
    :param target: the local file to publish
    :param dirs: where the rename's directory is noted for the batched fsync
    :raises TransferError: the copy failed (nothing is published; a retry starts it again)
    """
    started = time.monotonic()
    paths = LocalPaths.for_target(target)
    check_target(paths, create_intermediate_dirs=True)
    if _has_local_state(paths):
        return None
    with TransferLock(paths.lock, paths.target):
        if _has_local_state(paths):  # another process published it since the check
            return None
        fs = await shared.get()
        try:
            fetched = await _fetch(fs, remote_path, listed, options, shared)
        except (RemoteFileNotFound, RemotePathError):
            return None  # the single-file try says why (or finds an earlier try's post-action done)
        except TransferError:
            # The link failed (or stalled): the next small file gets a new shared session, this one
            # the single-file try on a session of its own (which reports the error if it persists).
            await shared.broken(fs)
            return None
        if fetched is None:
            return None
        data, verification = fetched
        digest = await in_thread(_publish, paths, data, listed.mtime if options.preserve_mtime else None)
        dirs.note(paths.target.parent)
    if options.on_progress is not None:
        options.on_progress(remote_path, listed.size, listed.size)
    logger.info("Downloaded %s to %s (%d bytes, sha256 %s)", remote_path, paths.target, listed.size, digest)
    return _result(
        remote_path, listed, paths.target, digest, verification=verification, options=options, started=started
    )


def _result(
    remote_path: str,
    listed: RemoteStat,
    target: Path,
    digest: str,
    *,
    verification: int,
    options: DownloadOptions,
    started: float,
) -> DownloadResult:
    return DownloadResult(
        local_path=str(target),
        remote_path=remote_path,
        size=listed.size,
        sha256=digest,
        resumed_from=0,
        bytes_transferred=listed.size,
        verification_bytes=verification,
        seconds=round(time.monotonic() - started, 3),
        verify=format_verify(options.verify),
        remote_mtime=listed.mtime,
    )


def _has_local_state(paths: LocalPaths) -> bool:
    return os.path.lexists(paths.target) or os.path.lexists(paths.sidecar)


async def _fetch(
    fs: RemoteFileSystem,
    remote_path: str,
    listed: RemoteStat,
    options: DownloadOptions,
    shared: SharedSession,
) -> tuple[bytes, int] | None:
    """The file's bytes and the bytes read to check them; ``None`` when it is not the listed version."""
    requests = RequestTimer(options.stall_timeout)
    reader = await requests.bounded(fs.open_reader(remote_path), f"opening {remote_path}")
    try:
        return await requests.bounded(
            _read_checked(fs, reader, remote_path, listed, options), f"reading {remote_path}"
        )
    except RemoteChanged:
        return None
    finally:
        shared.close_later(reader)


async def _read_checked(
    fs: RemoteFileSystem, reader: RemoteReader, remote_path: str, listed: RemoteStat, options: DownloadOptions
) -> tuple[bytes, int] | None:
    size = listed.size
    block = options.block_size or fs.max_read_len
    # Blocks aligned to the end, read last block first: the first requests hold the tail as it was
    # before every other read, the re-read below the tail after them; the server answers in order.
    ranges = [(max(0, end - block), end - max(0, end - block)) for end in range(size, 0, -block)]
    tail = min(TAIL_LENGTH, size) if VerifyCheck.TAIL in options.verify else 0
    # Tasks run their first step in the order they are created, and each sends its request there.
    reads = [asyncio.ensure_future(reader.read(offset, length)) for offset, length in ranges]
    beyond = asyncio.ensure_future(reader.read(size, 1))
    again = asyncio.ensure_future(reader.read(size - tail, tail) if tail else _empty())
    stat = asyncio.ensure_future(fs.stat(remote_path))
    tasks: list[asyncio.Future[Any]] = [*reads, beyond, again, stat]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
    blocks = [task.result() for task in reads]
    after, tail_again = stat.result(), again.result()
    if any(len(data) < length for data, (_, length) in zip(blocks, ranges, strict=True)):
        # Short reads (a server that answers less than asked): follow them, then check again after.
        for index, (offset, length) in enumerate(ranges):
            blocks[index] += await read_exact(
                reader, offset + len(blocks[index]), length - len(blocks[index])
            )
        after, tail_again = await fs.stat(remote_path), await read_exact(reader, size - tail, tail)
    data = b"".join(reversed(blocks))
    if beyond.result() or (after.size, after.mtime) != (listed.size, listed.mtime) or not after.is_regular:
        return None
    if tail and data[-tail:] != tail_again:
        return None
    return data, tail + len(beyond.result())


async def _empty() -> bytes:
    return b""


def _publish(paths: LocalPaths, data: bytes, mtime: int | None) -> str:
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
