"""
The transfer engine: plain Python, no Airflow import.

Folders map to jobs: :mod:`.state` (resume state and its sidecar), :mod:`.localfiles` and
:mod:`.locking` (local files), :mod:`.verify` (proving kept bytes), :mod:`.pipeline` (pipelined
reads), :mod:`.tuning` (bytes in flight), :mod:`.segments`, :mod:`.fill` and :mod:`.worker` (one or
several connections), :mod:`.checkpoint` (durability), :mod:`.hashing` (sha256 while writing),
:mod:`.download` (one try from plan to publish), :mod:`.upload` and :mod:`.upload_state` (the
other direction), :mod:`.batch` and :mod:`.names` (directories and globs, untrusted names),
:mod:`.postaction` (delete or move after a verified download), :mod:`.stability` (waiting until a
partner stopped writing), :mod:`.sftp` (the remote over asyncssh), :mod:`.errors`.
"""

from __future__ import annotations

from airflow_provider_sftp_resume.core.batch import BatchResult, RemoteSelection, download_selection
from airflow_provider_sftp_resume.core.download import DownloadOptions, DownloadResult, download_file
from airflow_provider_sftp_resume.core.errors import (
    AuthenticationFailed,
    BatchFailed,
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
    TransferError,
    TransferInterrupted,
    TransferLocked,
    TransferStalled,
    UnsafeRemoteName,
)
from airflow_provider_sftp_resume.core.remote import RemoteFileSystem, RemoteReader, RemoteStat
from airflow_provider_sftp_resume.core.runner import AbortableRun
from airflow_provider_sftp_resume.core.sftp import SSHEndpoint, open_sftp_session
from airflow_provider_sftp_resume.core.upload import UploadOptions, UploadResult, upload_file
from airflow_provider_sftp_resume.core.verify import DEFAULT_VERIFY, VerifyCheck, parse_verify

__all__ = [
    "DEFAULT_VERIFY",
    "AbortableRun",
    "AuthenticationFailed",
    "BatchFailed",
    "BatchResult",
    "ChecksumMismatch",
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
