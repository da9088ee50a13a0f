"""
What to do with the remote file once the local copy is complete and verified: delete it, or move it.

Runs only after :func:`~.download.download_file` returned (the local file is published and checked),
never before. SFTP has no "delete if unchanged", so the file is stat'ed first and left alone when
its size or mtime differ from the version that was downloaded: a partner who replaced it in the
meantime keeps the new file.
"""

from __future__ import annotations

import enum
import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.remote import RemoteFileSystem


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
        in a directory download); created if missing
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
        """Where ``move`` puts ``remote_path`` (``relative``: its path inside a downloaded directory)."""
        assert self.archive_dir is not None
        return posixpath.join(self.archive_dir, relative or posixpath.basename(remote_path))

    async def apply(
        self, fs: RemoteFileSystem, remote_path: str, size: int, mtime: int, relative: str | None = None
    ) -> str:
        """
        Delete or move ``remote_path`` if it is still the version downloaded (``size``, ``mtime``).

        :return: what was done, for the result and the log
        """
        now = await fs.stat(remote_path)
        if (now.size, now.mtime) != (size, mtime):
            return (
                f"kept: the remote file changed after it was downloaded (size {size} -> {now.size}, "
                f"mtime {mtime} -> {now.mtime})"
            )
        if self.action is PostAction.DELETE:
            await fs.remove(remote_path)
            return "deleted"
        destination = self.destination(remote_path, relative)
        await fs.make_dirs(posixpath.dirname(destination))
        await fs.replace(remote_path, destination)
        return f"moved to {destination}"
