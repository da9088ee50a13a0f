"""
The transfer engine: plain Python, no Airflow import.

Folders map to jobs: :mod:`.state` (resume state and its sidecar), :mod:`.localfiles` and
:mod:`.locking` (local files), :mod:`.verify` (proving kept bytes), :mod:`.pipeline` (pipelined
reads), :mod:`.tuning` (bytes in flight), :mod:`.segments`, :mod:`.fill` and :mod:`.worker` (one or
several connections), :mod:`.checkpoint` (durability), :mod:`.hashing` (sha256 while writing),
:mod:`.download` (one try from plan to publish), :mod:`.sftp` (the remote over asyncssh),
:mod:`.errors`.
"""

from __future__ import annotations

from airflow_provider_sftp_resume.core.download import DownloadOptions, DownloadResult, download_file
from airflow_provider_sftp_resume.core.errors import (
    AuthenticationFailed,
    ChecksumMismatch,
    ConnectionFailed,
    HostKeyRejected,
    IntegrityError,
    LocalDiskFull,
    LocalPathError,
    PermanentTransferError,
    RemoteChanged,
    RemoteFileNotFound,
    RemotePathError,
    RetriableTransferError,
    TransferError,
    TransferInterrupted,
    TransferLocked,
    TransferStalled,
)
from airflow_provider_sftp_resume.core.remote import RemoteFileSystem, RemoteReader, RemoteStat
from airflow_provider_sftp_resume.core.runner import AbortableRun
from airflow_provider_sftp_resume.core.sftp import SSHEndpoint, open_sftp_session
from airflow_provider_sftp_resume.core.verify import DEFAULT_VERIFY, VerifyCheck, parse_verify

__all__ = [
    "DEFAULT_VERIFY",
    "AbortableRun",
    "AuthenticationFailed",
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
    "RemoteFileNotFound",
    "RemoteFileSystem",
    "RemotePathError",
    "RemoteReader",
    "RemoteStat",
    "RetriableTransferError",
    "SSHEndpoint",
    "TransferError",
    "TransferInterrupted",
    "TransferLocked",
    "TransferStalled",
    "VerifyCheck",
    "download_file",
    "open_sftp_session",
    "parse_verify",
]
