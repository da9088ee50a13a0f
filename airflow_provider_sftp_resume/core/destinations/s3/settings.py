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
from typing import Any

from airflow_provider_sftp_resume.core.destinations.s3.claim import DEFAULT_LEASE_SECONDS
from airflow_provider_sftp_resume.core.destinations.s3.manifest import CHECKSUMS
from airflow_provider_sftp_resume.core.destinations.s3.owner import Owner


def pool_connections(max_in_flight: int) -> int:
    """
    Return ``max_pool_connections`` for ``max_in_flight`` parts: those, one queued, the manifest, a spare.

    botocore's default of 10 already covers the default of 4 parts in flight.
    """
    return max(10, max_in_flight + 3)


def client_config_kwargs(checksum: str, max_in_flight: int = 4) -> dict[str, Any]:
    """
    Return botocore ``Config`` arguments for the ``checksum`` knob, for the client given to the writer.

    boto3 >= 1.36 sends CRC checksums on every upload by default, which many S3-compatible stores
    reject; with ``"off"`` the client sends them only where an operation requires one (UploadPart
    and PutObject require none, so no CRC is computed either).

    With ``"SHA256"`` the payload is not signed (``UNSIGNED-PAYLOAD``): every part already carries
    ``x-amz-checksum-sha256``, a signed header that the store checks against the body and refuses a
    part whose bytes differ, so a SigV4 payload hash (which botocore otherwise computes for every
    plain-``http`` endpoint: moto, in-cluster MinIO) would hash every byte a third time for no
    added protection. With ``"CRC32"`` and ``"off"`` the payload stays signed on ``http``: a CRC
    is no defence against bytes altered on purpose, and without a checksum the signature is the
    only check of the body (over ``https`` botocore itself skips it when a checksum is sent).

    :param checksum: ``"SHA256"``, ``"CRC32"`` or ``"off"``
    :param max_in_flight: parts uploading at once (sizes the connection pool)
    """
    if checksum not in CHECKSUMS:
        raise ValueError(f"checksum={checksum!r} is not one of {CHECKSUMS}")
    kwargs: dict[str, Any] = {"max_pool_connections": pool_connections(max_in_flight)}
    if checksum == "off":
        kwargs["request_checksum_calculation"] = "when_required"
        kwargs["response_checksum_validation"] = "when_required"
    if checksum == "SHA256":
        kwargs["s3"] = {"payload_signing_enabled": False}
    return kwargs


def merged_client_config(configured: Any, checksum: str, max_in_flight: int = 4) -> Any:
    """
    Return a botocore ``Config``: the connection's own (``configured``, may be ``None``) with ours on top.

    The ``s3`` options are merged key by key (``Config.merge`` would replace the connection's whole
    ``s3`` dict, dropping e.g. ``addressing_style: path`` that MinIO needs); a larger pool or a
    ``payload_signing_enabled`` the connection sets itself is kept.

    :param configured: the connection's ``botocore.config.Config``, or ``None``
    :param checksum: ``"SHA256"``, ``"CRC32"`` or ``"off"``
    :param max_in_flight: parts uploading at once
    """
    from botocore.config import Config

    ours = client_config_kwargs(checksum, max_in_flight)
    if configured is None:
        return Config(**ours)
    theirs = getattr(configured, "_user_provided_options", {})
    if "max_pool_connections" in theirs:
        ours["max_pool_connections"] = max(ours["max_pool_connections"], int(theirs["max_pool_connections"]))
    s3 = {**ours.pop("s3", {}), **(configured.s3 or {})}
    if s3:
        ours["s3"] = s3
    return configured.merge(Config(**ours))


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
