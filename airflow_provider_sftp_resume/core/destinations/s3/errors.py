"""
Errors of the S3 destination, in the tree of :mod:`airflow_provider_sftp_resume.core.errors`::

    RetriableTransferError
    ├── UploadAborted          the multipart upload is gone (NoSuchUpload): the next try restarts from 0
    ├── UploadBusy             another live try owns the upload (carries its owner)
    ├── OwnershipLost          another try took the upload over while this one ran (carries it)
    └── S3RequestFailed        any other S3 failure a retry may fix (network, 5xx, throttling)
    PermanentTransferError
    ├── S3BucketNotFound       the bucket does not exist
    ├── S3AccessDenied         the credentials may not do what the transfer needs
    ├── S3KeyInvalid           the key is empty or ends in "/"
    ├── PartSizeOutOfRange     the part_size knob is outside S3's limits
    └── SourceTooLarge         the source is over S3's 5 TiB object limit
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_sftp_resume.core.errors import PermanentTransferError, RetriableTransferError

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.destinations.s3.owner import Owner


class UploadAborted(RetriableTransferError):
    """S3 no longer has the multipart upload (a lifecycle rule or a clean-up aborted it); restart from 0."""


class UploadBusy(RetriableTransferError):
    """
    Another try holds a live claim on the same key.

    :param message: what happened and what to do
    :param owner: the other try
    """

    def __init__(self, message: str, *, owner: Owner) -> None:
        super().__init__(message)
        self.owner = owner


class OwnershipLost(RetriableTransferError):
    """
    Another try took the upload over (this try's lease had expired); this try stops without publishing.

    :param message: what happened
    :param owner: the try that holds the upload now, if it could be read
    """

    def __init__(self, message: str, *, owner: Owner | None) -> None:
        super().__init__(message)
        self.owner = owner


class S3RequestFailed(RetriableTransferError):
    """An S3 request failed in a way a later try may not see (network, server error, throttling)."""


class S3BucketNotFound(PermanentTransferError):
    """The bucket does not exist (or the endpoint is not the one that has it)."""


class S3AccessDenied(PermanentTransferError):
    """The connection's credentials are not allowed to do what the transfer needs."""


class S3KeyInvalid(PermanentTransferError):
    """The object key is empty or ends in ``/`` (a "folder", not a file)."""


class PartSizeOutOfRange(PermanentTransferError):
    """The ``part_size`` knob is outside S3's limits (5 MiB..5 GiB, at most 10,000 parts)."""


class SourceTooLarge(PermanentTransferError):
    """The source file is larger than S3's 5 TiB limit for one object."""
