"""
After a copy to S3: delete or move the source, if it is still the version copied.

The same rule as after a download (:mod:`.postaction`): SFTP has no "delete if unchanged", so the
file is stat'ed first and left alone when its size or mtime differ; ``move`` never overwrites a
file in ``archive_dir``. Unlike a download, a copy to S3 keeps no local record of the request
(there is no local disk to trust), so a retry whose source is gone because an earlier try's
post-action was carried out but its reply lost fails with :class:`~.errors.RemoteFileNotFound`.
"""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING

from airflow_provider_sftp_resume.core.transfers.postaction import PostAction, free_name

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.remote.protocol import RemoteFileSystem
    from airflow_provider_sftp_resume.core.transfers.postaction import RemotePostAction


async def apply_post_action(
    fs: RemoteFileSystem, post_action: RemotePostAction, remote_path: str, size: int, mtime: int
) -> str:
    """
    Delete or move ``remote_path`` if it still has ``size`` and ``mtime``; return what was done.

    :param fs: a session with the server
    :param post_action: what to do
    :param remote_path: the source file
    :param size: its size when copied
    :param mtime: its mtime when copied
    """
    now = await fs.stat(remote_path)
    if (now.size, now.mtime) != (size, mtime):
        return (
            f"kept: the remote file changed after it was copied (size {size} -> {now.size}, "
            f"mtime {mtime} -> {now.mtime})"
        )
    if post_action.action is PostAction.DELETE:
        await fs.remove(remote_path)
        return "deleted"
    wanted = post_action.destination(remote_path)
    await fs.make_dirs(posixpath.dirname(wanted))
    destination = await free_name(fs, wanted)
    await fs.rename(remote_path, destination)
    return f"moved to {destination}" + (f" ({wanted} exists)" if destination != wanted else "")
