"""
The resumable download: plan (resume or restart), fill, prove, publish, then the post-action.

One call of :func:`download_file` is one try. It either publishes a complete file whose bytes came
from one unchanged version of the remote file, or raises a :class:`~.errors.TransferError` and
leaves the destination (``.part`` and sidecar) consistent for the next try. The existing target is
never touched until the replacement is complete and checked. The bytes go through a
:class:`~.destinations.protocol.Destination`; :func:`download_file` uses the local ``.part``.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from airflow_provider_sftp_resume.core.destinations.local import LocalPart
from airflow_provider_sftp_resume.core.errors import RemoteFileNotFound, RemotePathError
from airflow_provider_sftp_resume.core.logs import Logger, engine_logger
from airflow_provider_sftp_resume.core.progress import format_bytes
from airflow_provider_sftp_resume.core.remote.protocol import close_quietly
from airflow_provider_sftp_resume.core.resume.localfiles import LocalPaths, check_target
from airflow_provider_sftp_resume.core.resume.locking import TransferLock
from airflow_provider_sftp_resume.core.transfers.after_download import recover_lost_reply, run_after_publish
from airflow_provider_sftp_resume.core.transfers.download_steps import DownloadTry
from airflow_provider_sftp_resume.core.transfers.download_types import DownloadOptions, DownloadResult
from airflow_provider_sftp_resume.core.transfers.story import TryStory

if TYPE_CHECKING:
    import os

    from airflow_provider_sftp_resume.core.remote.protocol import (
        RemoteFileSystem,
        RemoteReader,
        RemoteStat,
        SessionFactory,
    )
    from airflow_provider_sftp_resume.core.transfers.postaction import RemotePostAction

__all__ = ["DownloadOptions", "DownloadResult", "download_file"]

log = engine_logger(__name__)


async def download_file(
    open_session: SessionFactory,
    remote_path: str,
    local_path: str | os.PathLike[str],
    options: DownloadOptions | None = None,
    *,
    post_action: RemotePostAction | None = None,
    relative: str | None = None,
    logger: Logger | None = None,
) -> DownloadResult:
    """
    Download ``remote_path`` to ``local_path``, resuming from an earlier try where that is provably safe.

    Once the local copy is published and verified (never before), ``post_action`` deletes or moves
    the remote file. A retry whose remote file is gone because an earlier try's post-action was
    carried out (its reply lost) succeeds, with ``post_action`` saying ``already deleted`` /
    ``already moved to ...``.

    :param open_session: opens a session with the remote file system
    :param remote_path: file on the server
    :param local_path: file to write
    :param options: behaviour knobs; defaults when ``None``
    :param post_action: what to do with the remote file afterwards; ``None`` leaves it
    :param relative: the file's path in a directory download (where ``move`` puts it)
    :param logger: where the story of the try is told (the task log in Airflow)
    :raises TransferError: see :mod:`.errors` for which are retriable
    """
    started = time.monotonic()
    options = options or DownloadOptions()
    logger = logger or log
    paths = LocalPaths.for_target(local_path)
    check_target(paths, create_intermediate_dirs=options.create_intermediate_dirs)
    story = TryStory(logger, started, options.stall_timeout, "download")
    try:
        result = await _locked_try(open_session, remote_path, paths, options, story)
    except RemoteFileNotFound:
        if post_action is None:
            raise
        recovered = await recover_lost_reply(
            open_session,
            remote_path,
            paths.target,
            post_action,
            options=options,
            seconds=story.seconds(),
            logger=logger,
        )
        if recovered is None:
            raise
        return recovered
    if post_action is None:
        return result
    return await run_after_publish(open_session, result, post_action, relative=relative, logger=logger)


async def _locked_try(
    open_session: SessionFactory,
    remote_path: str,
    paths: LocalPaths,
    options: DownloadOptions,
    story: TryStory,
) -> DownloadResult:
    """One try into the local ``.part``, holding the lock on the target."""
    with TransferLock(paths.lock, paths.target) as lock:
        async with open_session() as remote_fs:
            try_ = DownloadTry(
                remote_fs,
                remote_path,
                str(paths.target),
                options,
                story,
                open_session=open_session,
                lock_fd=lock.fileno(),  # shared with segment workers: none outlives the lock
            )
            remote, reader = await _stat_and_open(remote_fs, remote_path, story)
            try:
                destination = LocalPart(paths, story.log)
                try:
                    return await try_.run(reader, remote, destination)
                finally:
                    await destination.close()
            finally:
                if try_.closing is None:  # else the close is on its way; the session's end settles it
                    await close_quietly(reader)


async def _stat_and_open(
    fs: RemoteFileSystem, remote_path: str, story: TryStory
) -> tuple[RemoteStat, RemoteReader]:
    """
    The remote file's attributes and an open reader, asked for together: one round trip, not two.

    The stat's verdict comes first: a missing file, a directory or a file without a size is refused
    by what the stat says, whatever the open answered, and a reader opened meanwhile is closed.
    """
    stat, opened = await asyncio.gather(
        story.requests.timed(fs.stat(remote_path), "reading the remote file's attributes"),
        story.requests.timed(fs.open_reader(remote_path), "opening the remote file"),
        return_exceptions=True,
    )
    try:
        if isinstance(stat, BaseException):
            raise stat
        _check_source(stat, remote_path)
        if isinstance(opened, BaseException):
            raise opened
    except BaseException:
        if not isinstance(opened, BaseException):
            await close_quietly(opened)
        raise
    story.log.info(
        "Connected. Remote file %s: %d bytes (%s), mtime %d",
        remote_path,
        stat.size,
        format_bytes(stat.size),
        stat.mtime,
    )
    return stat, opened


def _check_source(remote: RemoteStat, remote_path: str) -> None:
    """Refuse what cannot be downloaded and proven complete."""
    if remote.is_dir:
        raise RemotePathError(
            f"Remote path {remote_path} is a directory. Give the path of a file; "
            "to fetch many files, map the operator over a listing."
        )
    if not remote.is_regular:
        raise RemotePathError(f"Remote path {remote_path} is not a regular file.")
    if not remote.size_known:
        raise RemotePathError(
            f"The server did not report the size of {remote_path} (the SFTP size attribute "
            "is missing), so a download could not be proven complete. Use a server that reports "
            "file sizes; nothing was written."
        )
