"""
The knobs and the result of an S3 upload, and the identity of a try.

:func:`client_config_kwargs` gives the botocore ``Config`` arguments that go with the checksum knob
(the writer takes a client made elsewhere, e.g. by the amazon provider's ``S3Hook``).
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass

from airflow_provider_sftp_resume.core.destinations.s3.claim import DEFAULT_LEASE_SECONDS
from airflow_provider_sftp_resume.core.destinations.s3.manifest import CHECKSUMS
from airflow_provider_sftp_resume.core.destinations.s3.owner import Owner


def client_config_kwargs(checksum: str) -> dict[str, str]:
    """
    Return botocore ``Config`` arguments for the ``checksum`` knob, for the client given to the writer.

    boto3 >= 1.36 sends CRC checksums on every upload by default, which many S3-compatible stores
    reject; with ``"off"`` the client sends them only where an operation requires one.

    :param checksum: ``"SHA256"``, ``"CRC32"`` or ``"off"``
    """
    if checksum not in CHECKSUMS:
        raise ValueError(f"checksum={checksum!r} is not one of {CHECKSUMS}")
    if checksum == "off":
        return {
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
        }
    return {}


@dataclass(frozen=True)
class UploadSettings:
    """
    The knobs of an S3 upload.

    :param part_size: bytes per part; ``None`` for automatic (see :func:`.parts.auto_part_size`)
    :param max_in_flight: parts uploading at once
    :param checksum: per-part checksum sent to S3: ``"SHA256"``, ``"CRC32"`` or ``"off"``
    :param lease_seconds: a claim whose heartbeat is older than this may be taken over
    :param list_page: parts per ListParts request
    """

    part_size: int | None = None
    max_in_flight: int = 4
    checksum: str = "SHA256"
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    list_page: int = 1000


@dataclass(frozen=True)
class Published:
    """
    The object as published.

    :param size: bytes in the object
    :param sha256: hex sha256 of the whole object
    :param etag: the object's ETag
    :param version_id: its version, when the bucket is versioned
    :param parts: parts it was assembled from (1 for a single ``PutObject``)
    :param already: the object had been published by an earlier try (a crash right after completing)
    """

    size: int
    sha256: str
    etag: str
    version_id: str | None
    parts: int
    already: bool = False


def new_owner() -> Owner:
    """Return an owner for this try: host, pid, a random token."""
    return Owner(host=socket.gethostname(), pid=os.getpid(), token=secrets.token_hex(16), heartbeat=0.0)
