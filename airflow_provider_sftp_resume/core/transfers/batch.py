"""
Many files in one try: list a remote directory or glob, then download each file resumably.

Up to ``concurrency`` files move at once. A small file with no local state yet takes the small-file
path (:mod:`.small_file`: two round trips, every small file sharing one SFTP session, fetched whole
and checked against its listing); every other file goes through :func:`~.download.download_file`
(its own ``.part``, sidecar, verification and atomic rename) over a pool of reused sessions, one per
file in flight. A file that fails, whatever the error, does not stop the others: it becomes a
``failed`` outcome, and the try fails at the end, naming each failed file, so the retry finds the
finished files complete and unchanged (skipped, nothing transferred) and resumes the rest. When the
batch itself is stopped (cancelled), every file still running is cancelled and awaited before the
sessions are closed.
"""

from __future__ import annotations

import asyncio
import posixpath
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_provider_sftp_resume.core.errors import UnsafeRemoteName
from airflow_provider_sftp_resume.core.logs import Logger, engine_logger
from airflow_provider_sftp_resume.core.progress import format_bytes
from airflow_provider_sftp_resume.core.transfers.after_download import (
    run_after_publish,
    settle_earlier_post_actions,
)
from airflow_provider_sftp_resume.core.transfers.batch_outcomes import (
    STATUSES,
    BatchResult,
    FileOutcome,
    describe_failure,
    raise_for_failures,
)
from airflow_provider_sftp_resume.core.transfers.batch_sessions import SessionPool, SharedSession
from airflow_provider_sftp_resume.core.transfers.download import DownloadOptions, download_file
from airflow_provider_sftp_resume.core.transfers.names import local_path_for
from airflow_provider_sftp_resume.core.transfers.selection import RemoteFile, RemoteSelection, list_selection
from airflow_provider_sftp_resume.core.transfers.small_file import SmallFile, takes_small_path
from airflow_provider_sftp_resume.core.transfers.small_publish import DirectorySync

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.remote.protocol import SessionFactory
    from airflow_provider_sftp_resume.core.transfers.download_types import DownloadResult
    from airflow_provider_sftp_resume.core.transfers.postaction import RemotePostAction

__all__ = ["BatchResult", "FileOutcome", "SessionPool", "download_selection"]

log = engine_logger(__name__)

MAX_CONCURRENCY = 32


async def download_selection(
    open_session: SessionFactory,
    selection: RemoteSelection,
    local_dir: Path,
    options: DownloadOptions | None = None,
    *,
    concurrency: int = 4,
    post_action: RemotePostAction | None = None,
    logger: Logger | None = None,
) -> BatchResult:
    """
    Mirror the selected remote files into ``local_dir``, each resumable on its own.

    :param open_session: opens a session with the remote file system
    :param selection: which remote files
    :param local_dir: where they go (relative paths are kept)
    :param options: per-file download knobs (``create_intermediate_dirs`` applies below ``local_dir``)
    :param concurrency: files transferred at once (small files share one SFTP session, larger ones
        get one each)
    :param post_action: delete or move each remote file once its local copy is complete and verified
    :param logger: where the story is told
    :raises SomeFilesFailed: some files failed and a retry can fix them (the others are complete)
    :raises BatchFailed: some files failed or were refused for good
    """
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ValueError(f"concurrency must be between 1 and {MAX_CONCURRENCY}, got {concurrency}")
    started = time.monotonic()
    logger = logger or log
    # One connection per file: a batch gets its parallelism from files in flight.
    options = replace(options or DownloadOptions(), max_connections=1, create_intermediate_dirs=True)
    batch = _Batch.of(open_session, local_dir, options, concurrency)
    try:
        outcomes, refused = await _download_all(
            batch, selection, concurrency=concurrency, post_action=post_action, logger=logger
        )
        await batch.dirs.sync_all()  # before the result says the files are there
    finally:
        await batch.shared.close()
        await batch.pool.close()
    outcomes += [FileOutcome("", "", "", "refused", error=message) for message in refused]
    result = BatchResult(
        remote_path=selection.root
        if selection.pattern is None
        else posixpath.join(selection.root, selection.pattern),
        local_dir=str(local_dir),
        files=tuple(outcomes),
        seconds=round(time.monotonic() - started, 3),
    )
    logger.info(
        "Batch done in %.1f s: %d downloaded, %d resumed, %d skipped (already complete), %d failed, "
        "%d refused; %s transferred",
        result.seconds,
        *(result.count(s) for s in STATUSES),
        format_bytes(result.bytes_transferred),
    )
    raise_for_failures(result)
    return result


@dataclass(frozen=True)
class _Batch:
    """What every file of a batch shares: sessions, pending directory syncs, destination, knobs."""

    pool: SessionPool
    shared: SharedSession
    dirs: DirectorySync
    local_dir: Path
    options: DownloadOptions
    turns: asyncio.Semaphore  # files moving bytes
    ahead: asyncio.Semaphore  # small files opened ahead of their turn

    @classmethod
    def of(
        cls, open_session: SessionFactory, local_dir: Path, options: DownloadOptions, concurrency: int
    ) -> _Batch:
        return cls(
            SessionPool(open_session),
            SharedSession(open_session),
            DirectorySync(),
            local_dir,
            options,
            turns=asyncio.Semaphore(concurrency),
            ahead=asyncio.Semaphore(concurrency),
        )


async def _download_all(
    batch: _Batch,
    selection: RemoteSelection,
    *,
    concurrency: int,
    post_action: RemotePostAction | None,
    logger: Logger,
) -> tuple[list[FileOutcome], list[str]]:
    """List the selection, download every file (``concurrency`` at once); return outcomes and refusals."""
    # The listing's session is the one small files share afterwards.
    files, refused = await list_selection(await batch.shared.get(), selection)
    total = sum(f.stat.size for f in files)
    logger.info(
        "Found %d files (%s) under %s%s; downloading up to %d at once into %s",
        len(files),
        format_bytes(total),
        selection.root,
        f" matching {selection.pattern}" if selection.pattern else "",
        concurrency,
        batch.local_dir,
    )
    # Every per-file error is an outcome; what escapes (cancellation) stops and awaits the rest.
    async with asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(_download_one(batch, f, post_action=post_action, logger=logger)) for f in files
        ]
    outcomes = [task.result() for task in tasks]
    if post_action is not None:
        outcomes += await settle_earlier_post_actions(
            batch.pool,
            selection,
            local_dir=batch.local_dir,
            listed={f.relative for f in files},
            post_action=post_action,
            logger=logger,
        )
    return outcomes, refused


async def _download_one(
    batch: _Batch,
    remote: RemoteFile,
    *,
    post_action: RemotePostAction | None,
    logger: Logger,
) -> FileOutcome:
    local = str(batch.local_dir / remote.relative)
    try:
        target = local_path_for(batch.local_dir, remote.relative)
        result = await _small_or_single(batch, remote, target, post_action=post_action, logger=logger)
    except UnsafeRemoteName as exc:
        logger.warning("%s", exc)
        return FileOutcome(remote.relative, remote.remote_path, local, "refused", error=str(exc))
    except Exception as exc:  # every error of one file is that file's outcome, never the batch's
        error, retriable = describe_failure(exc, Path(local))
        logger.warning("%s failed: %s", remote.remote_path, error)
        return FileOutcome(
            remote.relative,
            remote.remote_path,
            local,
            "failed",
            size=remote.stat.size,
            error=error,
            retriable=retriable,
        )
    status = "skipped" if result.skipped else "resumed" if result.resumed_from else "downloaded"
    return FileOutcome(
        remote.relative,
        remote.remote_path,
        str(target),
        status,
        size=result.size,
        bytes_transferred=result.bytes_transferred,
        resumed_from=result.resumed_from,
        sha256=result.sha256,
        post_action=result.post_action,
        source_checksum=result.source_checksum,
    )


async def _small_or_single(
    batch: _Batch,
    remote: RemoteFile,
    target: Path,
    *,
    post_action: RemotePostAction | None,
    logger: Logger,
) -> DownloadResult:
    """
    The small-file path where it applies, else (or when it declines) the single-file try.

    A small file is opened while it waits for its turn (at most ``concurrency`` files wait so), so its
    open's round trip overlaps the reads of the files before it.
    """
    if not takes_small_path(batch.options, remote.stat):
        async with batch.turns:
            return await _single(batch, remote, target, post_action=post_action, logger=logger)
    small = SmallFile(batch.shared, remote.remote_path, remote.stat, target, batch.options)
    try:
        async with batch.ahead:
            opened = await small.open()
            await batch.turns.acquire()
        try:
            result = await small.fetch(batch.dirs, logger) if opened else None
            small.release()  # the single-file try takes the lock itself
            if result is None:
                return await _single(batch, remote, target, post_action=post_action, logger=logger)
            if post_action is None:
                return result
            await batch.dirs.sync(target.parent)  # the rename is durable before the remote file goes
            # On a pooled session, as for every other file: a failed post-action closes only its own.
            return await run_after_publish(
                batch.pool, result, post_action, relative=remote.relative, logger=logger
            )
        finally:
            batch.turns.release()
    finally:
        small.release()


async def _single(
    batch: _Batch,
    remote: RemoteFile,
    target: Path,
    *,
    post_action: RemotePostAction | None,
    logger: Logger,
) -> DownloadResult:
    return await download_file(
        batch.pool,
        remote.remote_path,
        target,
        batch.options,
        post_action=post_action,
        relative=remote.relative,
        logger=logger,
    )
