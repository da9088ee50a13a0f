"""
Publishing: CompleteMultipartUpload with the parts S3 confirms, then HEAD and check the size.

The source fingerprint goes into the object's metadata when the upload is created (S3 fixes
metadata then), so ``skip_unchanged`` can compare it; the whole-file sha256 is known only after the
last byte, so a multipart object gets it as the tag ``sftp-resume-sha256`` (a single ``PutObject``
has it in its metadata too). Tagging needs ``s3:PutObjectTagging``; without it a warning is logged.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow_provider_sftp_resume.core.destinations.s3_calls import call, list_parts
from airflow_provider_sftp_resume.core.destinations.s3_claim import META_SHA256
from airflow_provider_sftp_resume.core.errors import IntegrityError

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.destinations.s3_calls import S3Target
    from airflow_provider_sftp_resume.core.destinations.s3_manifest import PartRecord

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
