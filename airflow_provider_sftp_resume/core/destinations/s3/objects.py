"""
Single requests on the object itself: its metadata, a whole-object ``PutObject``, an abort.

The source fingerprint goes into the object's metadata when the object (or its multipart upload)
is created, because S3 fixes metadata then; ``skip_unchanged`` compares it later.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any

from airflow_provider_sftp_resume.core.destinations.s3.calls import call, error_code
from airflow_provider_sftp_resume.core.destinations.s3.claim import META_FINGERPRINT, META_SHA256
from airflow_provider_sftp_resume.core.destinations.s3.manifest import SINGLE_PUT, fingerprint_digest
from airflow_provider_sftp_resume.core.destinations.s3.settings import Published
from airflow_provider_sftp_resume.core.destinations.s3.uploader import checksum_arguments

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.destinations.s3.calls import S3Target
    from airflow_provider_sftp_resume.core.resume.state import RemoteFingerprint

log = logging.getLogger(__name__)

META_SIZE = "sftp-resume-size"


def object_metadata(source: RemoteFingerprint, sha256: str = "") -> dict[str, str]:
    """Return the object's metadata: the source's fingerprint and size (and the sha256 when known)."""
    metadata = {META_FINGERPRINT: fingerprint_digest(source), META_SIZE: str(source.size)}
    return {**metadata, META_SHA256: sha256} if sha256 else metadata


def put_whole(
    client: Any, target: S3Target, data: bytes, source: RemoteFingerprint, checksum: str
) -> Published:
    """
    Upload a file smaller than one part as one ``PutObject`` (atomic: it appears complete or not at all).

    :param client: a boto3 S3 client
    :param target: the object
    :param data: every byte of the file
    :param source: the source's fingerprint, for the metadata
    :param checksum: ``"SHA256"``, ``"CRC32"`` or ``"off"``
    """
    digest = hashlib.sha256(data).digest()
    answer = call(
        target,
        "put the object",
        client.put_object,
        Bucket=target.bucket,
        Key=target.key,
        Body=data,
        Metadata=object_metadata(source, digest.hex()),
        **checksum_arguments(checksum, digest),
    )
    return Published(len(data), digest.hex(), answer.get("ETag", ""), answer.get("VersionId"), 1)


def create_upload(client: Any, target: S3Target, source: RemoteFingerprint, checksum: str) -> str:
    """Create the multipart upload of ``target`` (its metadata fixed now); return its upload id."""
    answer = call(
        target,
        "create the multipart upload",
        client.create_multipart_upload,
        Bucket=target.bucket,
        Key=target.key,
        Metadata=object_metadata(source),
        **({"ChecksumAlgorithm": checksum} if checksum != "off" else {}),
    )
    return str(answer["UploadId"])


def abort_upload(client: Any, target: S3Target, upload_id: str) -> None:
    """Abort a multipart upload; one that is already gone is fine, any other failure is logged."""
    if upload_id == SINGLE_PUT:  # the claim of a single PutObject: there is no upload
        return
    try:
        client.abort_multipart_upload(Bucket=target.bucket, Key=target.key, UploadId=upload_id)
    except Exception as exc:
        if error_code(exc) not in ("NoSuchUpload", "404"):
            log.warning("Could not abort the old multipart upload of %s: %s", target.describe(), exc)
