"""
After a download: the remote post-action, run in this one place for single files and batches.

:func:`~.download.download_file` calls :func:`run_after_publish` once the local copy is published and
verified, and :func:`recover_lost_reply` when the remote file is gone (see :mod:`.postaction`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_provider_sftp_resume.core.resume.verify import format_verify
from airflow_provider_sftp_resume.core.transfers.download_types import DownloadOptions, DownloadResult

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.logs import Logger
    from airflow_provider_sftp_resume.core.remote.protocol import SessionFactory
    from airflow_provider_sftp_resume.core.transfers.postaction import RemotePostAction


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
