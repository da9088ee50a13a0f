"""
The transfer engine: plain Python, no Airflow import.

Folders are layers, each importing only from the ones before it (``tests/core/test_layers.py``
enforces it, with no import circles):

- the base, directly here: :mod:`.errors` (the error tree), :mod:`.logs`, :mod:`.progress`,
  :mod:`.options` (knobs every transfer shares, requests bounded by the stall timeout),
  :mod:`.bandwidth` (the token bucket behind ``max_bytes_per_second``),
  :mod:`.runner` (one transfer on a private event loop, stoppable by ``on_kill`` and signals),
  :mod:`.threads` (blocking file work off the event loop);
- :mod:`.remote`: the remote side. :mod:`~.remote.protocol` is what the engine needs from a remote
  file system; :mod:`~.remote.ssh` opens the SSH connection (host keys, client keys, algorithms as
  the stock hook reads them); :mod:`~.remote.sftp` is the file system over asyncssh;
  :mod:`~.remote.failures` maps SSH and SFTP errors onto the error tree;
- :mod:`.resume`: what survives a try. Sidecar documents (:mod:`~.resume.state`,
  :mod:`~.resume.upload_state`), local files and their safe creation (:mod:`~.resume.localfiles`),
  one try per path (:mod:`~.resume.locking`), one checkpointer for both directions
  (:mod:`~.resume.checkpoint`), every comparison that proves bytes (:mod:`~.resume.verify`), sha256
  while writing (:mod:`~.resume.hashing`);
- :mod:`.destinations`: where a download's bytes go, how they become durable and are published.
  :mod:`~.destinations.protocol` is the seam and what a destination must guarantee;
  :mod:`~.destinations.local` is the ``.part`` + sidecar next to the target;
- :mod:`.io`: moving bytes fast. Pipelined reads and writes (:mod:`~.io.pipeline`), bytes in
  flight (:mod:`~.io.tuning`), segments and worker processes for several connections
  (:mod:`~.io.segments`, :mod:`~.io.worker`, :mod:`~.io.fill`);
- :mod:`.transfers`: one try from plan to publish. :mod:`~.transfers.download` (steps in
  :mod:`~.transfers.download_steps`), :mod:`~.transfers.upload` (steps in
  :mod:`~.transfers.upload_steps`, the server side in :mod:`~.transfers.upload_remote`), the
  shared counters and log lines (:mod:`~.transfers.story`), many files (:mod:`~.transfers.selection`,
  :mod:`~.transfers.names`, :mod:`~.transfers.batch`, :mod:`~.transfers.batch_outcomes`), remote
  post-actions (:mod:`~.transfers.postaction`, run after the publish by
  :mod:`~.transfers.after_download`);
- :mod:`.checksums`: proof against the source's own checksum (a checksum file, the SFTP
  ``check-file`` extension, ``sha256sum`` over SSH; :class:`~.checksums.rule.ChecksumRule`);
- :mod:`.watch`: waiting until a partner stopped writing (:mod:`~.watch.stability`).

The names below are the public API; everything else may change.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from airflow_provider_sftp_resume.core.errors import (
    AuthenticationFailed,
    BatchFailed,
    ChecksumFileInvalid,
    ChecksumFileMissing,
    ChecksumMismatch,
    ConnectionFailed,
    HostKeyRejected,
    IntegrityError,
    LocalDiskFull,
    LocalPathError,
    PermanentTransferError,
    RemoteChanged,
    RemoteDiskFull,
    RemoteFileNotFound,
    RemotePathError,
    RetriableTransferError,
    SomeFilesFailed,
    SourceChanged,
    SourceChecksumUnavailable,
    TransferError,
    TransferInterrupted,
    TransferLocked,
    TransferStalled,
    UnsafeRemoteName,
)

#: Where each name below the base layer lives. They are imported on first use (PEP 562), not with
#: the package: a segment worker process imports only the remote side and the pipeline, and every
#: transfer module on top cost it 0.14 s of its start (``python -X importtime``), on a CPU the
#: running transfer needs.
_LAZY = {
    "RemoteFileSystem": "remote.protocol",
    "RemoteReader": "remote.protocol",
    "RemoteStat": "remote.protocol",
    "open_sftp_session": "remote.sftp",
    "SSHEndpoint": "remote.ssh",
    "DEFAULT_VERIFY": "resume.verify",
    "VerifyCheck": "resume.verify",
    "parse_verify": "resume.verify",
    "AbortableRun": "runner",
    "BatchResult": "transfers.batch",
    "download_selection": "transfers.batch",
    "DownloadOptions": "transfers.download",
    "DownloadResult": "transfers.download",
    "download_file": "transfers.download",
    "RemoteSelection": "transfers.selection",
    "UploadOptions": "transfers.upload",
    "UploadResult": "transfers.upload",
    "upload_file": "transfers.upload",
    "ChecksumRule": "checksums.rule",
}

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.checksums.rule import ChecksumRule
    from airflow_provider_sftp_resume.core.remote.protocol import RemoteFileSystem, RemoteReader, RemoteStat
    from airflow_provider_sftp_resume.core.remote.sftp import open_sftp_session
    from airflow_provider_sftp_resume.core.remote.ssh import SSHEndpoint
    from airflow_provider_sftp_resume.core.resume.verify import DEFAULT_VERIFY, VerifyCheck, parse_verify
    from airflow_provider_sftp_resume.core.runner import AbortableRun
    from airflow_provider_sftp_resume.core.transfers.batch import BatchResult, download_selection
    from airflow_provider_sftp_resume.core.transfers.download import (
        DownloadOptions,
        DownloadResult,
        download_file,
    )
    from airflow_provider_sftp_resume.core.transfers.selection import RemoteSelection
    from airflow_provider_sftp_resume.core.transfers.upload import UploadOptions, UploadResult, upload_file


def __getattr__(name: str) -> Any:
    """Import a public name of a higher layer on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "DEFAULT_VERIFY",
    "AbortableRun",
    "AuthenticationFailed",
    "BatchFailed",
    "BatchResult",
    "ChecksumFileInvalid",
    "ChecksumFileMissing",
    "ChecksumMismatch",
    "ChecksumRule",
    "ConnectionFailed",
    "DownloadOptions",
    "DownloadResult",
    "HostKeyRejected",
    "IntegrityError",
    "LocalDiskFull",
    "LocalPathError",
    "PermanentTransferError",
    "RemoteChanged",
    "RemoteDiskFull",
    "RemoteFileNotFound",
    "RemoteFileSystem",
    "RemotePathError",
    "RemoteReader",
    "RemoteSelection",
    "RemoteStat",
    "RetriableTransferError",
    "SSHEndpoint",
    "SomeFilesFailed",
    "SourceChanged",
    "SourceChecksumUnavailable",
    "TransferError",
    "TransferInterrupted",
    "TransferLocked",
    "TransferStalled",
    "UnsafeRemoteName",
    "UploadOptions",
    "UploadResult",
    "VerifyCheck",
    "download_file",
    "download_selection",
    "open_sftp_session",
    "parse_verify",
    "upload_file",
]
