"""
Many files in one try: list a remote directory or glob, then download each file resumably.

Every file goes through :func:`~.download.download_file` (its own ``.part``, sidecar, verification
and atomic rename), up to ``concurrency`` at once over a small pool of reused SFTP sessions. A file
that fails, whatever the error, does not stop the others: it becomes a ``failed`` outcome, and the
try fails at the end, naming each failed file, so the retry finds the finished files complete and
unchanged (skipped, nothing transferred) and resumes the rest. When the batch itself is stopped
(cancelled), every file still running is cancelled and awaited before the sessions are closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_sftp_resume.core.errors import UnsafeRemoteName
from airflow_provider_sftp_resume.core.logs import Logger, engine_logger
from airflow_provider_sftp_resume.core.progress import format_bytes
from airflow_provider_sftp_resume.core.transfers.after_download import settle_earlier_post_actions
from airflow_provider_sftp_resume.core.transfers.batch_outcomes import (
    STATUSES,
    BatchResult,
    FileOutcome,
    describe_failure,
    raise_for_failures,
)
from airflow_provider_sftp_resume.core.transfers.download import DownloadOptions, download_file
from airflow_provider_sftp_resume.core.transfers.names import local_path_for
from airflow_provider_sftp_resume.core.transfers.selection import RemoteFile, RemoteSelection, list_selection

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow_provider_sftp_resume.core.remote.protocol import RemoteFileSystem, SessionFactory
    from airflow_provider_sftp_resume.core.transfers.postaction import RemotePostAction

__all__ = ["BatchResult", "FileOutcome", "SessionPool", "download_selection"]

log = engine_logger(__name__)

MAX_CONCURRENCY = 32


class SessionPool:
    """
    Reuse SFTP sessions across the files of a batch (a new SSH handshake per small file is slow).

    A session is returned to the pool after a file that succeeded; after an error it is closed, since
    the link may be broken. The pool is a session factory itself, with the identity of the one it
    wraps.

    :param open_session: opens a new session
    """

    def __init__(self, open_session: SessionFactory) -> None:
        self._open = open_session
        self._idle: list[tuple[contextlib.AsyncExitStack, RemoteFileSystem]] = []

    @property
    def identity(self) -> str:
        return self._open.identity

    def process_spec(self) -> dict[str, Any] | None:
        return self._open.process_spec()

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[RemoteFileSystem]:
        if self._idle:
            stack, fs = self._idle.pop()
        else:
            async with contextlib.AsyncExitStack() as opening:
                fs = await opening.enter_async_context(self._open())
                stack = opening.pop_all()
        healthy = False
        try:
            yield fs
            healthy = True
        finally:
            if healthy:
                self._idle.append((stack, fs))
            else:
                with contextlib.suppress(Exception):
                    await stack.aclose()

    async def close(self) -> None:
        """Close every idle session."""
        while self._idle:
            stack, _ = self._idle.pop()
            with contextlib.suppress(Exception):
                await stack.aclose()


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
    :param concurrency: files transferred at once (one SFTP session each)
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
    pool = SessionPool(open_session)
    try:
        outcomes, refused = await _download_all(
            pool,
            selection,
            local_dir,
            options,
            concurrency=concurrency,
            post_action=post_action,
            logger=logger,
        )
    finally:
        await pool.close()
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


async def _download_all(
    pool: SessionPool,
    selection: RemoteSelection,
    local_dir: Path,
    options: DownloadOptions,
    *,
    concurrency: int,
    post_action: RemotePostAction | None,
    logger: Logger,
) -> tuple[list[FileOutcome], list[str]]:
    """List the selection, download every file (``concurrency`` at once); return outcomes and refusals."""
    async with pool() as fs:
        files, refused = await list_selection(fs, selection)
    total = sum(f.stat.size for f in files)
    logger.info(
        "Found %d files (%s) under %s%s; downloading up to %d at once into %s",
        len(files),
        format_bytes(total),
        selection.root,
        f" matching {selection.pattern}" if selection.pattern else "",
        concurrency,
        local_dir,
    )
    gate = asyncio.Semaphore(concurrency)

    async def one(remote: RemoteFile) -> FileOutcome:
        async with gate:
            return await _download_one(
                pool, remote, local_dir=local_dir, options=options, post_action=post_action, logger=logger
            )

    # Every per-file error is an outcome; what escapes (cancellation) stops and awaits the rest.
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(f)) for f in files]
    outcomes = [task.result() for task in tasks]
    if post_action is not None:
        outcomes += await settle_earlier_post_actions(
            pool,
            selection,
            local_dir=local_dir,
            listed={f.relative for f in files},
            post_action=post_action,
            logger=logger,
        )
    return outcomes, refused


async def _download_one(
    pool: SessionPool,
    remote: RemoteFile,
    *,
    local_dir: Path,
    options: DownloadOptions,
    post_action: RemotePostAction | None,
    logger: Logger,
) -> FileOutcome:
    local = str(local_dir / remote.relative)
    try:
        target = local_path_for(local_dir, remote.relative)
        result = await download_file(
            pool,
            remote.remote_path,
            target,
            options,
            post_action=post_action,
            relative=remote.relative,
            logger=logger,
        )
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
