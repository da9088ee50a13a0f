"""
Publishing: CompleteMultipartUpload with the parts S3 confirms, then HEAD and check the size.

The source fingerprint goes into the object's metadata when the upload is created (S3 fixes
metadata then), so ``skip_unchanged`` can compare it; the whole-file sha256 is known only after the
last byte, so a multipart object gets it as the tag ``sftp-resume-sha256`` (a single ``PutObject``
has it in its metadata too). Tagging needs ``s3:PutObjectTagging``; without it a warning is logged.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from airflow_provider_sftp_resume.core.destinations.s3.calls import call, list_parts
from airflow_provider_sftp_resume.core.destinations.s3.claim import META_SHA256
from airflow_provider_sftp_resume.core.destinations.s3.objects import put_whole
from airflow_provider_sftp_resume.core.destinations.s3.settings import Published
from airflow_provider_sftp_resume.core.destinations.s3.store import save_owned
from airflow_provider_sftp_resume.core.errors import IntegrityError

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.destinations.s3.calls import S3Target
    from airflow_provider_sftp_resume.core.destinations.s3.manifest import Manifest, PartRecord
    from airflow_provider_sftp_resume.core.destinations.s3.store import ManifestStore

log = logging.getLogger(__name__)


def complete(
    client: Any, target: S3Target, upload_id: str, parts: tuple[PartRecord, ...], checksum: str, *, page: int
) -> dict[str, Any]:
    """
    Check S3's parts against ``parts`` and complete the upload.

    :raises IntegrityError: ListParts differs from the parts sent (the next try reconciles and resumes)
    """
    truth = list_parts(client, target, upload_id, page=page)
    real = [(int(p["PartNumber"]), int(p["Size"]), str(p["ETag"])) for p in truth]
    if real != [(p.number, p.size, p.etag) for p in parts]:
        raise IntegrityError(
            f"S3's parts of {target.describe()} differ from the parts sent; the next try resumes"
        )
    entries: list[dict[str, Any]] = []
    for part in parts:
        entry: dict[str, Any] = {"PartNumber": part.number, "ETag": part.etag}
        if part.checksum and checksum != "off":
            entry[f"Checksum{checksum}"] = part.checksum
        entries.append(entry)
    answer: dict[str, Any] = call(
        target,
        "complete the multipart upload",
        client.complete_multipart_upload,
        Bucket=target.bucket,
        Key=target.key,
        UploadId=upload_id,
        MultipartUpload={"Parts": entries},
    )
    return answer


def check_published(client: Any, target: S3Target, size: int, sha256: str) -> dict[str, Any]:
    """
    HEAD the object, check its size, tag it with its sha256; return the HEAD answer.

    :raises IntegrityError: the object's size is not ``size``
    """
    head: dict[str, Any] = call(
        target, "check the object", client.head_object, Bucket=target.bucket, Key=target.key
    )
    if head.get("ContentLength") != size:
        raise IntegrityError(
            f"{target.describe()} has {head.get('ContentLength')} bytes after completing, not {size}"
        )
    try:
        client.put_object_tagging(
            Bucket=target.bucket, Key=target.key, Tagging={"TagSet": [{"Key": META_SHA256, "Value": sha256}]}
        )
    except Exception as exc:  # a tag is a convenience: the sha256 is in the result too
        log.warning("Could not tag %s with its sha256: %s", target.describe(), exc)
    return head


def complete_checked(client: Any, target: S3Target, manifest: Manifest, page: int) -> Published:
    """
    Complete the upload of ``manifest`` (every part recorded, its ``sha256`` set), then HEAD and tag it.

    :raises IntegrityError: S3's parts or the object differ from what was sent
    """
    size = manifest.kept_bytes
    answer = complete(client, target, manifest.upload_id, manifest.parts, manifest.checksum, page=page)
    check_published(client, target, size, manifest.sha256)
    return Published(
        size, manifest.sha256, answer.get("ETag", ""), answer.get("VersionId"), len(manifest.parts)
    )


def published_earlier(client: Any, target: S3Target, manifest: Manifest, size: int) -> Published:
    """The object an earlier try completed (it crashed before cleaning up), checked with HEAD."""
    head = check_published(client, target, size, manifest.sha256)
    return Published(
        size,
        manifest.sha256,
        head.get("ETag", ""),
        head.get("VersionId"),
        len(manifest.parts) or 1,  # a single PutObject's claim lists no parts
        already=True,
    )


def put_claimed(
    client: Any, target: S3Target, store: ManifestStore, manifest: Manifest, data: bytes
) -> Published:
    """
    Put a file smaller than one part under this try's claim, then delete the claim.

    The claim is rewritten first, with the sha256: that write proves this try still holds the key
    (two tries never both put), and a try killed right after the ``PutObject`` leaves a claim the
    retry finishes (:func:`~.claim.load_claim` finds the object).

    :param manifest: this try's claim (:data:`~.manifest.SINGLE_PUT`)
    :param data: every byte of the file
    :raises OwnershipLost: another try took the key over; this one does not put
    """
    save_owned(store, replace(manifest, sha256=hashlib.sha256(data).hexdigest()), target.describe())
    published = put_whole(client, target, data, manifest.source, manifest.checksum)
    store.delete()
    return published
