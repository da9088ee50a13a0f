"""
Remote names are untrusted: map them to local paths that cannot leave the target directory.

A listing comes from the server, which may be hostile or simply odd. A name is refused when it is
empty, absolute, has ``.``/``..`` components or a NUL, is not valid UTF-8, or when any of its
components would collide with this package's own working files (``.part``, ``.part.json``,
``.part.lock``, ``.part.post.json``). An existing local component that is a symbolic link is refused
too: following it could write anywhere.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from airflow_provider_sftp_resume.core.errors import UnsafeRemoteName
from airflow_provider_sftp_resume.core.resume.localfiles import LOCK_SUFFIX, PART_SUFFIX, SIDECAR_SUFFIX

#: Record of a post-action in progress (see :mod:`.postaction`), next to the local file.
POST_ACTION_SUFFIX = ".part.post.json"
_RESERVED_SUFFIXES = (
    PART_SUFFIX,
    SIDECAR_SUFFIX,
    SIDECAR_SUFFIX + ".tmp",
    LOCK_SUFFIX,
    POST_ACTION_SUFFIX,
    POST_ACTION_SUFFIX + ".tmp",
)


def _is_utf8(name: str) -> bool:
    """Whether ``name`` came from valid UTF-8 (listings keep other bytes as surrogate escapes)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable_name(relative: str) -> str:
    """``relative`` for a message: quoted, or as escaped bytes (``b'caf\\xe9.csv'``) when not UTF-8."""
    return repr(relative) if _is_utf8(relative) else repr(relative.encode("utf-8", "surrogateescape"))


def check_relative_name(relative: str) -> PurePosixPath:
    """
    Validate a path relative to the remote root, as built from a listing.

    :raises UnsafeRemoteName: the name could escape the target directory or clash with working files
    """
    name = printable_name(relative)
    if not relative or "\0" in relative:
        raise UnsafeRemoteName(f"Refusing the remote name {name}: it is empty or holds a NUL byte.")
    if not _is_utf8(relative):
        raise UnsafeRemoteName(
            f"Refusing the remote name {name}: it is not valid UTF-8, so it has no faithful local "
            "name. Nothing was written for it; rename it on the server or narrow the pattern."
        )
    path = PurePosixPath(relative)
    parts = relative.split("/")
    if path.is_absolute() or any(part in ("", ".", "..") for part in parts):
        raise UnsafeRemoteName(
            f"Refusing the remote name {name}: it is absolute or has '.'/'..' components, so it "
            "could land outside the local directory. Nothing was written for it; rename it on the server "
            "or narrow the pattern."
        )
    if any(part.endswith(_RESERVED_SUFFIXES) for part in parts):
        raise UnsafeRemoteName(
            f"Refusing the remote name {name}: it (or a directory on its way) ends like this package's "
            f"working files ({', '.join(_RESERVED_SUFFIXES)}) and would clash with another file's "
            "resume state. Rename it on the server or narrow the pattern."
        )
    return path


def local_path_for(local_root: Path, relative: str) -> Path:
    """
    Return where ``relative`` goes under ``local_root``, refusing anything that could escape it.

    Existing directories on the way must be real directories, not links.

    :raises UnsafeRemoteName: see :func:`check_relative_name`, or a link on the way
    """
    path = check_relative_name(relative)
    target = local_root.joinpath(*path.parts)
    current = local_root
    for part in path.parts[:-1]:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            break  # created later as a plain directory
        if not stat.S_ISDIR(mode):
            raise UnsafeRemoteName(
                f"Refusing to write {relative!r}: the local path {current} exists and is not a plain "
                "directory (a symbolic link could lead outside the target directory). Remove it."
            )
    if os.path.islink(target):
        raise UnsafeRemoteName(
            f"Refusing to write {relative!r}: the local path {target} is a symbolic link. Remove it; "
            "this package only replaces regular files."
        )
    if not os.path.abspath(target).startswith(os.path.abspath(local_root) + os.sep):
        raise UnsafeRemoteName(f"Refusing the remote name {relative!r}: it resolves outside {local_root}.")
    return target
