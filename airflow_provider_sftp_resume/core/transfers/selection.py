"""
Which remote files a batch or a stability watch covers: a directory or glob, listed safely.

Listing refuses untrusted names (see :mod:`.names`) for the files the selection would include; it
knows nothing of downloading, so the stability watch can use it without loading the transfer engine.
"""

from __future__ import annotations

import fnmatch
import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_provider_sftp_resume.core.errors import RemotePathError, UnsafeRemoteName
from airflow_provider_sftp_resume.core.transfers.names import check_relative_name

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.remote.protocol import RemoteFileSystem, RemoteStat

#: Characters that make a remote path a glob.
GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class RemoteSelection:
    """
    Which remote files a batch covers.

    :param root: remote directory the relative names are taken from
    :param pattern: ``fnmatch`` pattern; matched against the file name, or against the path relative
        to ``root`` when it contains ``/``; ``None`` matches everything
    :param recursive: descend into subdirectories
    """

    root: str
    pattern: str | None = None
    recursive: bool = False

    @classmethod
    def parse(cls, remote_path: str, pattern: str | None = None, recursive: bool = False) -> RemoteSelection:
        """
        Build a selection from a directory (plus optional ``pattern``) or a glob such as ``/out/*.csv``.

        :raises ValueError: both a glob in ``remote_path`` and a ``pattern``, or an empty path
        """
        if not remote_path:
            raise ValueError("remote_path must name a remote directory or a glob such as /outgoing/*.csv")
        parts = remote_path.rstrip("/").split("/") if remote_path != "/" else [""]
        first_glob = next((i for i, part in enumerate(parts) if GLOB_CHARS & set(part)), None)
        if first_glob is None:
            return cls(remote_path.rstrip("/") or "/", pattern or None, recursive)
        if pattern:
            raise ValueError(
                f"remote_path {remote_path!r} is already a glob; give either a glob or a directory "
                "plus pattern."
            )
        root = "/".join(parts[:first_glob]) or ("/" if remote_path.startswith("/") else ".")
        return cls(root, "/".join(parts[first_glob:]), recursive or first_glob < len(parts) - 1)

    def matches(self, relative: str) -> bool:
        """Whether the file at ``relative`` (to ``root``) is selected."""
        if self.pattern is None:
            return True
        if "/" in self.pattern:
            return fnmatch.fnmatchcase(relative, self.pattern)
        return fnmatch.fnmatchcase(posixpath.basename(relative), self.pattern)


@dataclass(frozen=True)
class RemoteFile:
    """
    One selected remote file.

    :param relative: its path relative to the selection's root
    :param remote_path: its full remote path
    :param stat: its attributes at listing time
    """

    relative: str
    remote_path: str
    stat: RemoteStat


async def list_selection(
    fs: RemoteFileSystem, selection: RemoteSelection
) -> tuple[list[RemoteFile], list[str]]:
    """
    List the files a selection covers.

    Symbolic links on the server are followed only when they resolve inside ``root``; a link that
    leads out of it is refused, as is a name that could escape the local directory or is not UTF-8
    (when the selection would include it: a partner's ``upload.csv.part`` next to ``*.csv`` is no
    reason to fail).

    :return: the files, sorted by relative path; and the refusals, one message each
    :raises RemotePathError: ``root`` is not a directory
    """
    root_stat = await fs.stat(selection.root)
    if not root_stat.is_dir:
        raise RemotePathError(
            f"Remote path {selection.root} is not a directory. Give a directory or a glob; for one file "
            "use ResumableSFTPDownloadOperator."
        )
    real_root = (await fs.realpath(selection.root)).rstrip("/") + "/"
    files: list[RemoteFile] = []
    refused: list[str] = []
    pending = [""]
    while pending:
        prefix = pending.pop()
        directory = posixpath.join(selection.root, prefix) if prefix else selection.root
        for entry in await fs.list_dir(directory):
            relative = f"{prefix}/{entry.name}" if prefix else entry.name
            try:
                check_relative_name(relative)
            except UnsafeRemoteName as exc:
                if selection.recursive if entry.stat.is_dir else selection.matches(relative):
                    refused.append(str(exc))
                continue
            full = posixpath.join(selection.root, relative)
            stat = entry.stat
            if stat.is_symlink:
                resolved = await fs.realpath(full)
                if not resolved.startswith(real_root):
                    if selection.matches(relative):
                        refused.append(
                            f"Refusing the remote link {relative!r}: it points to {resolved}, outside "
                            f"{selection.root}. Nothing was written for it."
                        )
                    continue
                stat = await fs.stat(full)
            if stat.is_dir:
                if selection.recursive and not entry.stat.is_symlink:
                    pending.append(relative)
                continue
            if stat.is_regular and selection.matches(relative):
                files.append(RemoteFile(relative, full, stat))
    files.sort(key=lambda f: f.relative)
    return files, refused
