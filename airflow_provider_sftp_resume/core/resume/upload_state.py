"""
Resume state of an upload: which local file version went where, and how much the server acknowledged.

The server keeps the bytes (in the remote temporary file); this small local sidecar keeps what the
server cannot tell us: that the local file has not changed since those bytes were sent, and how far
the *acknowledged* prefix reaches (a server's file size may count a write that was still in flight
when the link dropped, past a gap an earlier write left). Where the server has
``fsync@openssh.com`` the recorded prefix is also *durable*: it is only advanced after the server
confirmed an fsync of the remote file (``synced``), so a server crash cannot leave zeros in it.
Where it has not, a later try proves the kept prefix by re-reading sampled blocks across it as well
as its last bytes. A later try resumes at the smaller of the recorded offset and the remote size.

Sidecar layout for ``local_path = /data/out/report.csv`` sent to ``/in/report.csv``::

    /data/out/report.csv.upload-<digest>.json   resume state (digest: server identity + remote path)
    /data/out/report.csv.upload-<digest>.lock   held (flock) while a try runs

(:meth:`~.localfiles.LocalPaths.for_upload`). The directory can be changed (``state_dir``) when the
source directory is read-only. Like a download's state, it records the server identity the session
factory gives (:attr:`~.remote.protocol.SessionFactory.identity`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

from airflow_provider_sftp_resume.core.resume.state import (
    UnusableState,
    load_document,
    require_field,
    require_offset,
)

if TYPE_CHECKING:
    import os

UPLOAD_FORMAT = "airflow-provider-sftp-resume/upload"
UPLOAD_VERSION = 1


@dataclass(frozen=True)
class LocalIdentity:
    """
    Which version of the local file is being sent.

    :param size: size in bytes
    :param mtime_ns: modification time, nanoseconds
    :param inode: inode number (a replaced file gets a new one)
    """

    size: int
    mtime_ns: int
    inode: int

    @property
    def mtime(self) -> int:
        """Modification time in whole seconds, as SFTP v3 carries it."""
        return self.mtime_ns // 1_000_000_000

    @classmethod
    def of(cls, stat: os.stat_result) -> LocalIdentity:
        """Identity of a file from its ``os.stat`` result."""
        return cls(size=stat.st_size, mtime_ns=stat.st_mtime_ns, inode=stat.st_ino)


@dataclass(frozen=True)
class UploadState:
    """
    Everything a later upload try needs to resume.

    :param server: ``user@host:port`` the bytes were sent to
    :param remote_temp: the remote temporary file holding them
    :param local: identity of the local file they came from
    :param acknowledged: bytes ``[0, acknowledged)`` were acknowledged by the server
    :param synced: the server also confirmed an fsync of them (``fsync@openssh.com``); ``False``
        where it has none (or refuses it): the next try then proves them more thoroughly
    """

    server: str
    remote_temp: str
    local: LocalIdentity
    acknowledged: int
    synced: bool = False

    def with_acknowledged(self, offset: int, *, synced: bool) -> UploadState:
        """
        Return a copy acknowledging ``[0, offset)``.

        :param synced: the server confirmed an fsync covering them
        """
        return replace(self, acknowledged=offset, synced=synced)

    def to_json(self) -> str:
        """Serialise for the sidecar file."""
        document = {"format": UPLOAD_FORMAT, "version": UPLOAD_VERSION, **asdict(self)}
        return json.dumps(document, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> UploadState:
        """
        Parse and validate a sidecar.

        :raises UnusableState: the text is not a valid upload sidecar of this version
        """
        document = load_document(text, UPLOAD_FORMAT, UPLOAD_VERSION)
        local = document.get("local")
        if not isinstance(local, dict):
            raise UnusableState("sidecar has no local file identity")
        state = cls(
            server=require_field(document, "server", str),
            remote_temp=require_field(document, "remote_temp", str),
            local=LocalIdentity(
                size=require_offset(local, "size"),
                mtime_ns=require_field(local, "mtime_ns", int),
                inode=require_offset(local, "inode"),
            ),
            acknowledged=require_offset(document, "acknowledged"),
            # Absent in sidecars written before fsync checkpoints: not synced, the safe reading.
            synced=require_field(document, "synced", bool) if "synced" in document else False,
        )
        if state.acknowledged > state.local.size:
            raise UnusableState("sidecar acknowledges more bytes than the local file has")
        return state
