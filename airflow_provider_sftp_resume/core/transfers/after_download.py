"""
After a download: the remote post-action, run in this one place for single files and batches.

:func:`~.download.download_file` calls :func:`run_after_publish` once the local copy is published and
verified, and :func:`recover_lost_reply` when the remote file is gone (see :mod:`.postaction`); a
batch reports the earlier tries' lost replies of files no longer listed with
:func:`settle_earlier_post_actions`.
"""

from __future__ import annotations

import asyncio
import posixpath
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_provider_sftp_resume.core.errors import TransferError
from airflow_provider_sftp_resume.core.resume.verify import format_verify
from airflow_provider_sftp_resume.core.transfers.batch_outcomes import FileOutcome
from airflow_provider_sftp_resume.core.transfers.download_types import DownloadOptions, DownloadResult
from airflow_provider_sftp_resume.core.transfers.postaction_record import PostActionRecord, pending_records

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.logs import Logger
    from airflow_provider_sftp_resume.core.remote.protocol import SessionFactory
    from airflow_provider_sftp_resume.core.transfers.postaction import RemotePostAction
    from airflow_provider_sftp_resume.core.transfers.selection import RemoteSelection


async def run_after_publish(
    open_session: SessionFactory,
    result: DownloadResult,
    post_action: RemotePostAction,
    *,
    relative: str | None,
    logger: Logger,
) -> DownloadResult:
    """
    Run the post-action on the remote file of a published, verified download.

    :param relative: the file's path in a directory download (where ``move`` puts it)
    """
    async with open_session() as fs:
        done = await post_action.apply(
            fs,
            result.remote_path,
            result.size,
            result.remote_mtime or 0,
            relative,
            local_path=Path(result.local_path),
            sha256=result.sha256,
        )
    logger.info("%s: %s", result.remote_path, done)
    return replace(result, post_action=done)


async def recover_lost_reply(
    open_session: SessionFactory,
    remote_path: str,
    target: Path,
    post_action: RemotePostAction,
    *,
    options: DownloadOptions,
    seconds: float,
    logger: Logger,
) -> DownloadResult | None:
    """
    The remote file is gone: the result of an earlier try whose post-action was done but whose
    reply was lost, or ``None`` when its record does not prove that.
    """
    async with open_session() as fs:
        found = await post_action.recover(fs, remote_path, target)
    if found is None:
        return None
    done, record = found
    logger.info(
        "%s: %s by an earlier try whose reply was lost; %s is complete (sha256 %s)",
        remote_path,
        done,
        target,
        record.sha256,
    )
    return DownloadResult(
        local_path=str(target),
        remote_path=remote_path,
        size=record.size,
        sha256=record.sha256,
        resumed_from=record.size,
        bytes_transferred=0,
        verification_bytes=0,
        seconds=seconds,
        verify=format_verify(options.verify),
        skipped=True,
        remote_mtime=record.mtime,
        post_action=done,
    )


async def settle_earlier_post_actions(
    pool: SessionFactory,
    selection: RemoteSelection,
    *,
    local_dir: Path,
    listed: set[str],
    post_action: RemotePostAction,
    logger: Logger,
) -> list[FileOutcome]:
    """
    Report (and clear) post-actions of an earlier try whose reply was lost.

    Such a file is no longer on the server, so the listing does not show it; its record next to the
    local file proves what was done (see :mod:`.postaction`).
    """
    outcomes = []
    for local in await asyncio.to_thread(pending_records, local_dir):
        relative = local.relative_to(local_dir).as_posix()
        if relative in listed or not selection.matches(relative):
            continue
        remote_path = posixpath.join(selection.root, relative)
        try:
            async with pool() as fs:
                found = await post_action.recover(fs, remote_path, local)
        except TransferError as exc:
            logger.warning("Could not check the earlier post-action of %s: %s", remote_path, exc)
            continue
        if found is None:
            logger.warning(
                "%s has the record of an earlier post-action on %s, which cannot be confirmed (the remote "
                "file, the archived copy or the local file differ from it); the record was removed",
                local,
                remote_path,
            )
            PostActionRecord.clear(local)
            continue
        done, record = found
        logger.info("%s: %s by an earlier try whose reply was lost", remote_path, done)
        outcomes.append(
            FileOutcome(
                relative,
                remote_path,
                str(local),
                "skipped",
                size=record.size,
                resumed_from=record.size,
                sha256=record.sha256,
                post_action=done,
            )
        )
    return outcomes
