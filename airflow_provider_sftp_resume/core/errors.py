"""
Errors raised by the transfer engine.

Every error says what went wrong and what to do about it. ``retriable`` tells the Airflow layer
whether a new try can succeed (the link, the server or the remote file may behave differently next
time) or whether a person has to fix something first::

    TransferError                      base; never raised itself
    ├── RetriableTransferError         a new try resumes or restarts by itself
    │   ├── ConnectionFailed           could not connect / open the SFTP session
    │   ├── TransferInterrupted        the link dropped mid-transfer (carries offset reached)
    │   │   └── TransferStalled        no bytes for ``stall_timeout`` seconds
    │   ├── RemoteChanged              the remote file changed while we read it (the message says how)
    │   ├── RemoteFileNotFound         the remote path does not exist (yet)
    │   ├── TransferLocked             another try holds the lock on the same local path
    │   ├── LocalDiskFull              no space left for the ``.part`` file
    │   ├── RemoteDiskFull             the server's disk is full or the user's quota is exceeded
    │   ├── SourceChanged              the local file changed while it was uploaded
    │   ├── IntegrityError             finished file failed its checksum after a *resumed* try
    │   ├── ChecksumFileMissing        the source's checksum file is not there (yet)
    │   └── SomeFilesFailed            a batch finished with some files failed (retriable ones)
    └── PermanentTransferError         retrying will not help; a person has to act
        ├── AuthenticationFailed       the credentials were refused, or cannot be used (key file, passphrase)
        ├── HostKeyRejected            the host key is unknown, or CHANGED (shows the SHA256 fingerprint)
        ├── RemotePathError            remote path is a directory, or permission denied
        ├── LocalPathError             local path unusable (a directory, parent missing, not writable)
        ├── ChecksumMismatch           a fresh full copy differs from expected_sha256/the source's checksum
        ├── ChecksumFileInvalid        the source's checksum file cannot be read as a checksum of this file
        ├── SourceChecksumUnavailable  the server cannot give the checksum asked for (no check-file/shell)
        ├── UnsafeRemoteName           a remote name would land outside the local directory
        └── BatchFailed                a batch finished with some files failed for good
"""

from __future__ import annotations

from typing import Any, Protocol


class BatchReport(Protocol):
    """The per-file outcomes a failed batch carries, for the operator to publish."""

    def to_dict(self) -> dict[str, Any]:
        """The outcomes as the operator's XCom value."""
        ...


class TransferError(Exception):
    """Base class of all errors raised by the transfer engine."""

    retriable: bool = False


class RetriableTransferError(TransferError):
    """A new try can succeed: it resumes from the last checkpoint or restarts."""

    retriable = True


class PermanentTransferError(TransferError):
    """A new try cannot succeed until a person fixes the cause named in the message."""

    retriable = False


class ConnectionFailed(RetriableTransferError):
    """Could not connect to the server or open the SFTP session."""


class TransferInterrupted(RetriableTransferError):
    """
    The connection dropped in the middle of a transfer.

    :param message: what happened
    :param offset: bytes of the file durably kept when the transfer stopped
    """

    def __init__(self, message: str, *, offset: int = 0) -> None:
        super().__init__(message)
        self.offset = offset


class TransferStalled(TransferInterrupted):
    """No byte arrived for ``stall_timeout`` seconds; the link is treated as dead."""


class RemoteChanged(RetriableTransferError):
    """The remote file changed while it was being read; the kept bytes cannot be trusted."""


class RemoteFileNotFound(RetriableTransferError):
    """The remote file does not exist (it may appear later, so a retry can help)."""


class TransferLocked(RetriableTransferError):
    """Another process is transferring to the same local path right now."""


class LocalDiskFull(RetriableTransferError):
    """The local file system ran out of space; the next try resumes once space is freed."""


class RemoteDiskFull(RetriableTransferError):
    """The server's disk is full or the login's quota is exceeded; the next try resumes once there is room."""


class SourceChanged(RetriableTransferError):
    """The local file changed while it was uploaded; the next try starts over from byte 0."""


class IntegrityError(RetriableTransferError):
    """The finished file failed its checksum after a resumed try; the next try starts fresh."""


class ChecksumFileMissing(RetriableTransferError):
    """The checksum file beside the source is missing; partners often publish it after the data."""


class AuthenticationFailed(PermanentTransferError):
    """
    The server refused the credentials of the connection, or they cannot be used.

    Also a ``key_file`` that is missing, unreadable or not a private key, and a private key that the
    passphrase (or, as paramiko does, the password) does not decrypt: the message names the extra.
    """


class HostKeyRejected(PermanentTransferError):
    """The server's host key is unknown or differs from the one the connection trusts."""


class RemotePathError(PermanentTransferError):
    """The remote path cannot be downloaded: it is a directory, or access is denied."""


class LocalPathError(PermanentTransferError):
    """The local path cannot be written: it is a directory, its parent is missing, or not writable."""


class ChecksumMismatch(PermanentTransferError):
    """A fresh, complete copy does not match ``expected_sha256`` or the source's own checksum."""


class ChecksumFileInvalid(PermanentTransferError):
    """The checksum file is too large, in no known format, or names no digest for this file."""


class SourceChecksumUnavailable(PermanentTransferError):
    """The server cannot compute the checksum asked for (no ``check-file``, no shell, no ``sha256sum``)."""


class UnsafeRemoteName(PermanentTransferError):
    """A remote name (``..``, absolute, a link escaping the tree) would write outside the target directory."""


class SomeFilesFailed(RetriableTransferError):
    """Some files of a batch failed with retriable errors; a retry redoes only those."""

    def __init__(self, message: str, *, result: BatchReport | None = None) -> None:
        super().__init__(message)
        #: the batch's result (per-file outcomes), for the operator to publish
        self.result = result


class BatchFailed(PermanentTransferError):
    """Some files of a batch failed with errors a retry cannot fix; the message lists them."""

    def __init__(self, message: str, *, result: BatchReport | None = None) -> None:
        super().__init__(message)
        #: the batch's result (per-file outcomes), for the operator to publish
        self.result = result
