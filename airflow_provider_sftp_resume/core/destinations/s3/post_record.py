"""
The post-action record in the bucket: what a try is about to do to the source after publishing.

SFTP's REMOVE and RENAME can be carried out by the server while the reply is lost with the link;
the retry then finds no source. A download proves what happened with a record next to the local
file (:mod:`~...transfers.postaction`); a copy to S3 has no local disk between tries, so its record
is a small JSON object in the bucket, next to the manifest: ``<state_prefix><key>.post-action``
(a manifest key always ends in ``.json``, so the two never collide). It is written just before the
request is sent and deleted once the reply arrived. It holds no credentials: the action, the
source (path, size, mtime), where ``move`` puts it, and the object as published (ETag, version,
size, sha256, parts) so that the retry can check the object is still that one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_sftp_resume.core.destinations.s3.calls import (
    MAX_KEY_BYTES,
    call,
    error_code,
    failure,
    head_if_present,
)

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.destinations.s3.calls import S3Target

RECORD_FORMAT = "airflow-provider-sftp-resume/s3-post-action"
RECORD_VERSION = 1
MAX_RECORD_BYTES = 64 * 1024  # 64 KiB: two paths and a few numbers


@dataclass(frozen=True)
class PostActionRecord:
    """
    A post-action about to be sent, and the object it follows.

    :param action: ``delete`` or ``move``
    :param remote_path: the source file
    :param destination: where ``move`` puts it (``None`` for ``delete``)
    :param size: the source's size, as copied
    :param mtime: the source's mtime, as copied
    :param sha256: hex sha256 of the object
    :param etag: the object's ETag, without quotes
    :param version_id: its version, when the bucket is versioned
    :param parts: parts it was assembled from
    :param part_size: bytes per part
    """

    action: str
    remote_path: str
    destination: str | None
    size: int
    mtime: int
    sha256: str
    etag: str
    version_id: str | None
    parts: int
    part_size: int

    @classmethod
    def from_json(cls, body: bytes) -> PostActionRecord | None:
        """Parse a record; ``None`` for anything that is not one this package wrote."""
        if len(body) > MAX_RECORD_BYTES:
            return None
        try:
            document: Any = json.loads(body)
            if document.pop("format") != RECORD_FORMAT or document.pop("version") != RECORD_VERSION:
                return None
            record = cls(**document)
        except (ValueError, TypeError, KeyError, AttributeError):
            return None
        ints = (record.size, record.mtime, record.parts, record.part_size)
        texts = (record.action, record.remote_path, record.sha256, record.etag)
        optional = (record.destination, record.version_id)
        if not all(type(v) is int for v in ints) or not all(type(v) is str for v in texts):
            return None
        return record if all(v is None or type(v) is str for v in optional) else None

    def to_json(self) -> bytes:
        """Serialise for the record object."""
        document = {"format": RECORD_FORMAT, "version": RECORD_VERSION, **asdict(self)}
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def record_key(target: S3Target) -> str:
    """``<state_prefix><key>.post-action``, or a digest of the key when that would be too long."""
    readable = f"{target.state_prefix}{target.key}.post-action"
    if len(readable.encode()) <= MAX_KEY_BYTES:
        return readable
    return f"{target.state_prefix}sha256/{hashlib.sha256(target.key.encode()).hexdigest()}.post-action"


def write_record(client: Any, target: S3Target, record: PostActionRecord) -> None:
    """Write the record (replacing one an earlier try left)."""
    call(
        target,
        "record the post-action",
        client.put_object,
        Bucket=target.bucket,
        Key=record_key(target),
        Body=record.to_json(),
        ContentType="application/json",
    )


def read_record(client: Any, target: S3Target) -> PostActionRecord | None:
    """The record an earlier try left, or ``None`` when there is none or it is not usable."""
    try:
        answer = client.get_object(Bucket=target.bucket, Key=record_key(target))
    except Exception as exc:
        if error_code(exc) in ("NoSuchKey", "404"):
            return None
        raise failure(exc, target, "read the post-action record") from exc
    return PostActionRecord.from_json(answer["Body"].read(MAX_RECORD_BYTES + 1))


def delete_record(client: Any, target: S3Target) -> None:
    """Delete the record (nothing happens if it is gone)."""
    call(
        target,
        "delete the post-action record",
        client.delete_object,
        Bucket=target.bucket,
        Key=record_key(target),
    )


def is_published_as(client: Any, target: S3Target, record: PostActionRecord) -> bool:
    """Whether the object at ``target`` is still the one ``record`` follows (same ETag, version, size)."""
    head = head_if_present(client, target)
    if head is None:
        return False
    # "null" is the version of an object put while versioning is off (some stores say so, HEAD may not)
    same_version = record.version_id in (None, "null") or head.get("VersionId") == record.version_id
    return same_version and (str(head.get("ETag", "")).strip('"'), head.get("ContentLength")) == (
        record.etag,
        record.size,
    )
