"""
The record a post-action writes next to the local file before it sends its request.

A REMOVE or RENAME can be carried out while its reply is lost with the link; the record
(``<local_path>.part.post.json``) lets the retry prove what was done (see :mod:`.postaction`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from airflow_provider_sftp_resume.core.resume.localfiles import read_sidecar, remove_quietly, write_sidecar
from airflow_provider_sftp_resume.core.resume.state import UnusableState
from airflow_provider_sftp_resume.core.transfers.names import POST_ACTION_SUFFIX


@dataclass(frozen=True)
class PostActionRecord:
    """
    What a post-action is about to do, written next to the local file before the request is sent.

    :param action: ``delete`` or ``move``
    :param remote_path: the remote file
    :param destination: where ``move`` puts it (``None`` for ``delete``)
    :param size: the remote file's size, as downloaded
    :param mtime: the remote file's mtime, as downloaded
    :param sha256: hex sha256 of the verified local file
    :param local_size: the local file's size
    :param local_mtime_ns: the local file's mtime in nanoseconds
    :param local_inode: the local file's inode
    """

    action: str
    remote_path: str
    destination: str | None
    size: int
    mtime: int
    sha256: str
    local_size: int
    local_mtime_ns: int
    local_inode: int

    @staticmethod
    def path_for(local_path: Path) -> Path:
        """Where the record of ``local_path`` lives."""
        return local_path.with_name(local_path.name + POST_ACTION_SUFFIX)

    def matches_local(self, local_path: Path) -> bool:
        """Whether ``local_path`` is still the verified file this record was written for."""
        try:
            now = os.stat(local_path, follow_symlinks=False)
        except OSError:
            return False
        return (now.st_size, now.st_mtime_ns, now.st_ino) == (
            self.local_size,
            self.local_mtime_ns,
            self.local_inode,
        )

    def write(self, local_path: Path) -> None:
        """Write the record atomically and durably."""
        write_sidecar(self.path_for(local_path), json.dumps(asdict(self)))

    @classmethod
    def read(cls, local_path: Path) -> PostActionRecord | None:
        """The record next to ``local_path``, or ``None`` when there is none or it is unusable."""
        try:
            data: Any = json.loads(read_sidecar(cls.path_for(local_path)))
            record = cls(**data)
        except (FileNotFoundError, UnusableState, ValueError, TypeError):
            return None
        ints = (record.size, record.mtime, record.local_size, record.local_mtime_ns, record.local_inode)
        texts = (record.action, record.remote_path, record.sha256)
        if not all(type(v) is int for v in ints) or not all(type(v) is str for v in texts):
            return None
        if record.destination is not None and type(record.destination) is not str:
            return None
        return record

    @classmethod
    def clear(cls, local_path: Path) -> None:
        """Remove the record of ``local_path`` (and a temporary file left by a crash)."""
        path = cls.path_for(local_path)
        remove_quietly(path, path.with_name(path.name + ".tmp"))


def pending_records(local_dir: Path) -> list[Path]:
    """Local files under ``local_dir`` that have a post-action record (an earlier try's)."""
    found: list[Path] = []
    for directory, _, names in os.walk(local_dir):
        for name in names:
            if name.endswith(POST_ACTION_SUFFIX):
                found.append(Path(directory, name[: -len(POST_ACTION_SUFFIX)]))
    return found
