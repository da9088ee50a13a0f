"""
After a copy to S3: delete or move the source, if it is still the version copied.

The same rule as after a download (:mod:`.postaction`): SFTP has no "delete if unchanged", so the
file is stat'ed first and left alone when its size or mtime differ; ``move`` never overwrites a
file in ``archive_dir``.

**Lost replies.** The server can carry out the REMOVE or RENAME while its reply is lost with the
link; the retry then finds no source. A download proves what happened with a record next to its
local file; a copy to S3 has no local disk between tries, so the record is an object in the bucket
(:mod:`~..destinations.s3.post_record`), written just before the request and deleted once the
reply arrived. A retry that finds the source gone succeeds only with that proof: the record is
there, for this action and source, the object is still the one it follows (ETag, version, size),
and for ``move`` the archived file has the recorded size and mtime. It reports ``already
deleted`` or ``already moved to ...``. Without the record a missing source stays
:class:`~.errors.RemoteFileNotFound`: an object in the bucket alone does not prove that the source
was ever dealt with.
"""

from __future__ import annotations

import posixpath
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from airflow_provider_sftp_resume.core.destinations.s3.post_record import (
    delete_record,
    is_published_as,
    read_record,
    write_record,
)
from airflow_provider_sftp_resume.core.errors import RemoteFileNotFound
from airflow_provider_sftp_resume.core.threads import in_thread
from airflow_provider_sftp_resume.core.transfers.postaction import PostAction, free_name

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.destinations.s3.calls import S3Target
    from airflow_provider_sftp_resume.core.destinations.s3.post_record import PostActionRecord
    from airflow_provider_sftp_resume.core.remote.protocol import RemoteFileSystem, SessionFactory
    from airflow_provider_sftp_resume.core.transfers.postaction import RemotePostAction


async def apply_post_action(
    fs: RemoteFileSystem,
    post_action: RemotePostAction,
    s3_client: Any,
    target: S3Target,
    record: PostActionRecord,
) -> str:
    """
    Delete or move the source if it still has the size and mtime copied; return what was done.

    :param fs: a session with the server
    :param post_action: what to do
    :param s3_client: a boto3 S3 client, for the record in the bucket
    :param target: the published object
    :param record: the source as copied and the object as published (``destination`` is filled in here)
    """
    now = await fs.stat(record.remote_path)
    if (now.size, now.mtime) != (record.size, record.mtime):
        return (
            f"kept: the remote file changed after it was copied (size {record.size} -> {now.size}, "
            f"mtime {record.mtime} -> {now.mtime})"
        )
    if post_action.action is PostAction.DELETE:
        await in_thread(write_record, s3_client, target, record)
        await fs.remove(record.remote_path)
        await in_thread(delete_record, s3_client, target)
        return "deleted"
    wanted = post_action.destination(record.remote_path)
    await fs.make_dirs(posixpath.dirname(wanted))
    destination = await free_name(fs, wanted)
    await in_thread(write_record, s3_client, target, replace(record, destination=destination))
    await fs.rename(record.remote_path, destination)
    await in_thread(delete_record, s3_client, target)
    return f"moved to {destination}" + (f" ({wanted} exists)" if destination != wanted else "")


async def recover_lost_reply(
    open_session: SessionFactory,
    post_action: RemotePostAction,
    remote_path: str,
    s3_client: Any,
    target: S3Target,
) -> tuple[str, PostActionRecord] | None:
    """
    The source is gone: what an earlier try's post-action did (its reply lost), and its record.

    :return: ``already deleted`` / ``already moved to ...`` and the record proving it (deleted
        now), or ``None`` when the bucket holds no such proof
    """
    record = await in_thread(read_record, s3_client, target)
    if record is None or (record.action, record.remote_path) != (post_action.action.value, remote_path):
        return None
    if not await in_thread(is_published_as, s3_client, target, record):
        return None
    if post_action.action is PostAction.DELETE:
        done = "already deleted"
    else:
        if record.destination is None:
            return None
        try:
            async with open_session() as fs:
                moved = await fs.stat(record.destination)
        except RemoteFileNotFound:
            return None
        if (moved.size, moved.mtime) != (record.size, record.mtime):
            return None
        done = f"already moved to {record.destination}"
    await in_thread(delete_record, s3_client, target)
    return done, record
