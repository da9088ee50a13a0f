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

Locally the file is published whole (:mod:`.small_publish`).
"""

from __future__ import annotations

import asyncio
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
from airflow_provider_sftp_resume.core.transfers.small_publish import DirectorySync, publish_whole

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


class SmallFile:
    """
    One small file of a batch, in two steps: :meth:`open` (ahead of its turn), then :meth:`fetch`.

    Between the two it holds the target's lock and an open remote file; :meth:`release` (always
    called, more than once is fine) closes both.

    :param shared: the batch's shared session
    :param remote_path: the file on the server
    :param listed: its attributes from the listing
    :param target: the local file to publish
    :param options: the knobs
    """

    def __init__(
        self,
        shared: SharedSession,
        remote_path: str,
        listed: RemoteStat,
        target: Path,
        options: DownloadOptions,
    ) -> None:
        self.shared = shared
        self.remote_path = remote_path
        self.listed = listed
        self.paths = LocalPaths.for_target(target)
        self.options = options
        self.requests = RequestTimer(options.stall_timeout)
        self.started = time.monotonic()
        self._lock: TransferLock | None = None
        self._open: tuple[RemoteFileSystem, RemoteReader] | None = None

    async def open(self) -> bool:
        """
        Take the lock and open the remote file; ``False``: the file needs the single-file try.

        :raises TransferError: the target cannot be written, or another try holds it
        """
        check_target(self.paths, create_intermediate_dirs=True)
        if _has_local_state(self.paths):
            return False
        lock = TransferLock(self.paths.lock, self.paths.target)
        lock.acquire()
        self._lock = lock
        if _has_local_state(self.paths):  # another process published it since the check
            return False
        fs = await self.shared.get()
        try:
            reader = await self.requests.bounded(
                fs.open_reader(self.remote_path), f"opening {self.remote_path}"
            )
        except TransferError as exc:
            await self._failed(fs, exc)
            return False
        self._open = (fs, reader)
        return True

    async def fetch(self, dirs: DirectorySync, logger: Logger) -> DownloadResult | None:
        """Read, check and publish the opened file; ``None``: it needs the single-file try instead."""
        if self._open is None:
            return None
        fs, reader = self._open
        try:
            fetched = await _read_checked(fs, reader, self.remote_path, self.listed, self.options)
        except TransferError as exc:
            await self._failed(fs, exc)
            return None
        finally:
            self._close_remote()
        if fetched is None:
            return None
        data, verification = fetched
        listed, paths = self.listed, self.paths
        digest = await in_thread(
            publish_whole, paths, data, listed.mtime if self.options.preserve_mtime else None
        )
        dirs.note(paths.target.parent)
        if self.options.on_progress is not None:
            self.options.on_progress(self.remote_path, listed.size, listed.size)
        logger.info(
            "Downloaded %s to %s (%d bytes, sha256 %s)", self.remote_path, paths.target, listed.size, digest
        )
        return _result(self, digest, verification)

    def _close_remote(self) -> None:
        """Close the remote file, not waiting for the answer (it overlaps the next file's requests)."""
        if self._open is not None:
            self.shared.close_later(self._open[1])
            self._open = None

    async def _failed(self, fs: RemoteFileSystem, exc: TransferError) -> None:
        """
        A failed request: the single-file try will say why (or find an earlier post-action done).

        After a link failure (or a stall) the next small file gets a new shared session, and this
        one the single-file try on a session of its own.
        """
        self.release()
        if not isinstance(exc, RemoteChanged | RemoteFileNotFound | RemotePathError):
            await self.shared.broken(fs)

    def release(self) -> None:
        """Close the remote file and release the lock."""
        self._close_remote()
        if self._lock is not None:
            self._lock.release()
            self._lock = None


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
    Download a small file in one pass (:class:`SmallFile`'s two steps); ``None``: it needs the
    single-file try instead.

    That is when local state exists (a target to compare, or a sidecar to resume from), or the
    remote file differs from its listing or changed while it was read, or reading it failed (the
    shared session is then replaced).

    :raises TransferError: the copy failed (nothing is published; a retry starts it again)
    """
    small = SmallFile(shared, remote_path, listed, target, options)
    try:
        return await small.fetch(dirs, logger) if await small.open() else None
    finally:
        small.release()


def _result(small: SmallFile, digest: str, verification: int) -> DownloadResult:
    return DownloadResult(
        local_path=str(small.paths.target),
        remote_path=small.remote_path,
        size=small.listed.size,
        sha256=digest,
        resumed_from=0,
        bytes_transferred=small.listed.size,
        verification_bytes=verification,
        seconds=round(time.monotonic() - small.started, 3),
        verify=format_verify(small.options.verify),
        remote_mtime=small.listed.mtime,
    )


def _has_local_state(paths: LocalPaths) -> bool:
    return os.path.lexists(paths.target) or os.path.lexists(paths.sidecar)


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
    requests = RequestTimer(options.stall_timeout)
    try:
        # The answers come in order: each within the stall timeout of the one before (a slow link
        # that keeps answering is not a stall, however long the whole file takes).
        for task in tasks:
            await requests.bounded(asyncio.shield(task), f"reading {remote_path}")
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # each one's error is retrieved
        raise
    blocks = [task.result() for task in reads]
    after, tail_again = stat.result(), again.result()
    if any(len(data) < length for data, (_, length) in zip(blocks, ranges, strict=True)):
        # Short reads (a server that answers less than asked): follow them, then check again after.
        refill = _refill(fs, reader, remote_path, blocks=blocks, ranges=ranges, tail=tail)
        blocks, after, tail_again = await requests.bounded(refill, f"reading {remote_path}")
    data = b"".join(reversed(blocks))
    if beyond.result() or (after.size, after.mtime) != (listed.size, listed.mtime) or not after.is_regular:
        return None
    if tail and data[-tail:] != tail_again:
        return None
    return data, tail + len(beyond.result())


async def _refill(
    fs: RemoteFileSystem,
    reader: RemoteReader,
    remote_path: str,
    *,
    blocks: list[bytes],
    ranges: list[tuple[int, int]],
    tail: int,
) -> tuple[list[bytes], RemoteStat, bytes]:
    """Complete short blocks; the stat and the tail as they are after that (raises RemoteChanged early)."""
    size = sum(length for _, length in ranges)
    full = [
        data + await read_exact(reader, offset + len(data), length - len(data))
        for data, (offset, length) in zip(blocks, ranges, strict=True)
    ]
    return full, await fs.stat(remote_path), await read_exact(reader, size - tail, tail)


async def _empty() -> bytes:
    return b""
