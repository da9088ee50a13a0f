"""
What to do with the remote file once the local copy is complete and verified: delete it, or move it.

Runs in one place, :func:`~.after_download.run_after_publish`, which
:func:`~.download.download_file` calls after the verified publish (for a single file and for each
file of a batch alike), never before. SFTP has no "delete if unchanged", so the file is stat'ed
first and left alone when its size or mtime differ from the version that was downloaded: a partner
who replaced it in the meantime keeps the new file.

**Lost replies.** A REMOVE or RENAME can be carried out by the server while its reply is lost with
the link; the try then fails, and the retry finds no remote file. So just before the request is sent,
a small record (``<local_path>.part.post.json``) notes what is about to be done, to which version
(size, mtime), and the identity of the verified local file. A retry that finds the remote file gone
succeeds only with that proof: the record is there, the local file is the one recorded (same size,
mtime and inode), and for ``move`` the archived file has the recorded size and mtime. It reports
``already deleted`` or ``already moved to ...``. Without the record a missing remote file stays
:class:`~.errors.RemoteFileNotFound`: a complete local file alone does not prove that the remote
file was ever dealt with.

**Never overwrite the archive.** ``move`` does not replace a file of the same name in
``archive_dir``: it takes the first free name of ``<name>.1``, ``<name>.2``, ... and says so.
"""

from __future__ import annotations

import enum
import os
import posixpath
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from airflow_provider_sftp_resume.core.errors import RemoteFileNotFound, RemotePathError
from airflow_provider_sftp_resume.core.resume.localfiles import os_error_to_local
from airflow_provider_sftp_resume.core.transfers.postaction_record import PostActionRecord

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_sftp_resume.core.remote.protocol import RemoteFileSystem

#: How many numbered names ``move`` tries in ``archive_dir`` before it gives up.
MAX_ARCHIVE_NAMES = 1000


class PostAction(enum.StrEnum):
    """A remote post-action after a verified download."""

    DELETE = "delete"
    MOVE = "move"


@dataclass(frozen=True)
class RemotePostAction:
    """
    A post-action and, for ``move``, where the file goes.

    :param action: ``delete`` or ``move``
    :param archive_dir: remote directory for ``move`` (the file keeps its name, or its relative path
        in a directory download; a numbered name when that is taken); created if missing
    """

    action: PostAction
    archive_dir: str | None = None

    @classmethod
    def parse(cls, action: str | None, archive_dir: str | None) -> RemotePostAction | None:
        """
        Validate the operator arguments ``post_action`` and ``archive_dir``.

        :raises ValueError: unknown action, ``move`` without ``archive_dir``, or ``archive_dir``
            without ``move``
        """
        if action is None:
            if archive_dir:
                raise ValueError("archive_dir is set but post_action is not 'move'; set post_action='move'.")
            return None
        try:
            parsed = PostAction(str(action).strip().lower())
        except ValueError:
            raise ValueError(
                f"Unknown post_action {action!r}. Use 'delete', 'move' (with archive_dir) or None."
            ) from None
        if parsed is PostAction.MOVE and not archive_dir:
            raise ValueError("post_action='move' needs archive_dir, the remote directory to move files to.")
        if parsed is PostAction.DELETE and archive_dir:
            raise ValueError("archive_dir is only used with post_action='move'.")
        return cls(parsed, archive_dir)

    def destination(self, remote_path: str, relative: str | None = None) -> str:
        """Where ``move`` puts ``remote_path`` if that name is free (``relative``: its path in the tree)."""
        assert self.archive_dir is not None
        return posixpath.join(self.archive_dir, relative or posixpath.basename(remote_path))

    async def apply(
        self,
        fs: RemoteFileSystem,
        remote_path: str,
        size: int,
        mtime: int,
        relative: str | None = None,
        *,
        local_path: Path,
        sha256: str,
    ) -> str:
        """
        Delete or move ``remote_path`` if it is still the version downloaded (``size``, ``mtime``).

        :param local_path: the verified local copy (its identity goes into the record)
        :param sha256: its digest, for the result of a retry that finds the action already done
        :return: what was done, for the result and the log
        """
        now = await fs.stat(remote_path)
        if (now.size, now.mtime) != (size, mtime):
            return (
                f"kept: the remote file changed after it was downloaded (size {size} -> {now.size}, "
                f"mtime {mtime} -> {now.mtime})"
            )
        try:
            local = os.stat(local_path, follow_symlinks=False)
        except OSError as exc:
            raise os_error_to_local(exc, local_path, "recording the post-action of") from None
        record = PostActionRecord(
            action=self.action.value,
            remote_path=remote_path,
            destination=None,
            size=size,
            mtime=mtime,
            sha256=sha256,
            local_size=local.st_size,
            local_mtime_ns=local.st_mtime_ns,
            local_inode=local.st_ino,
        )
        if self.action is PostAction.DELETE:
            record.write(local_path)
            await fs.remove(remote_path)
            PostActionRecord.clear(local_path)
            return "deleted"
        wanted = self.destination(remote_path, relative)
        await fs.make_dirs(posixpath.dirname(wanted))
        destination = await free_name(fs, wanted)
        replace(record, destination=destination).write(local_path)
        await fs.rename(remote_path, destination)
        PostActionRecord.clear(local_path)
        if destination != wanted:
            return f"moved to {destination} ({wanted} exists)"
        return f"moved to {destination}"

    async def recover(
        self, fs: RemoteFileSystem, remote_path: str, local_path: Path
    ) -> tuple[str, PostActionRecord] | None:
        """
        After the remote file was found missing: was it this post-action of an earlier try?

        :return: what was found done and the record proving it, or ``None`` when that is not proven
        """
        record = PostActionRecord.read(local_path)
        if record is None or record.action != self.action.value or record.remote_path != remote_path:
            return None
        if not record.matches_local(local_path):
            return None
        if self.action is PostAction.DELETE:
            done = "already deleted"
        else:
            assert record.destination is not None
            try:
                moved = await fs.stat(record.destination)
            except RemoteFileNotFound:
                return None
            if (moved.size, moved.mtime) != (record.size, record.mtime):
                return None
            done = f"already moved to {record.destination}"
        PostActionRecord.clear(local_path)
        return done, record


async def free_name(fs: RemoteFileSystem, wanted: str) -> str:
    """``wanted``, or the first of ``wanted.1``, ``wanted.2``, ... that does not exist."""
    for number in range(MAX_ARCHIVE_NAMES):
        candidate = f"{wanted}.{number}" if number else wanted
        try:
            await fs.lstat(candidate)
        except RemoteFileNotFound:
            return candidate
    raise RemotePathError(
        f"archive_dir already holds {wanted} and {MAX_ARCHIVE_NAMES - 1} numbered copies of it; "
        "clean up the archive directory."
    )
