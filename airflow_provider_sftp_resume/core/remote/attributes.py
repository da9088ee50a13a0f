"""What a server says about a file, in the protocol's terms: listed names and attributes."""

from __future__ import annotations

import stat as stat_module

import asyncssh

from airflow_provider_sftp_resume.core.remote.protocol import RemoteStat


def listed_name(entry: asyncssh.SFTPName) -> str:
    """A listed name (bytes, as asked for), with bytes that are not UTF-8 kept as surrogate escapes."""
    name = entry.filename
    return name.decode("utf-8", "surrogateescape") if isinstance(name, bytes) else name


def remote_stat(attrs: asyncssh.SFTPAttrs) -> RemoteStat:
    """The protocol's view of asyncssh's attributes (type from the permissions, else the v4+ type field)."""
    mode = attrs.permissions
    if mode is not None:
        is_dir = stat_module.S_ISDIR(mode)
        is_regular = stat_module.S_ISREG(mode)
    else:
        is_dir = attrs.type == asyncssh.FILEXFER_TYPE_DIRECTORY
        is_regular = attrs.type in (asyncssh.FILEXFER_TYPE_REGULAR, asyncssh.FILEXFER_TYPE_UNKNOWN)
    return RemoteStat(
        size=attrs.size or 0,
        size_known=attrs.size is not None,
        mtime=int(attrs.mtime or 0),
        is_dir=is_dir,
        is_regular=is_regular,
        is_symlink=(
            stat_module.S_ISLNK(mode) if mode is not None else attrs.type == asyncssh.FILEXFER_TYPE_SYMLINK
        ),
    )
