"""
The S3 requests the destination makes, with S3's errors turned into this package's error tree.

The client is a boto3 S3 client passed in (the Airflow layer gets it from the amazon provider's
``S3Hook``); boto3 is an optional extra, so botocore is imported only inside functions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_sftp_resume.core.destinations.s3.errors import (
    S3AccessDenied,
    S3BucketNotFound,
    S3KeyInvalid,
    S3RequestFailed,
    UploadAborted,
)

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.errors import TransferError

#: Where manifests go by default: outside any data prefix, and a name Hive-style engines (Spark, Hive,
#: Athena, Trino) skip because it starts with "_".
DEFAULT_STATE_PREFIX = "_sftp_resume/"
MAX_KEY_BYTES = 1024
#: Part numbers per ListParts page (S3's maximum).
LIST_PAGE = 1000
_DENIED = frozenset(
    {"AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"}
)
_NOT_IMPLEMENTED = frozenset({"NotImplemented", "501"})


@dataclass(frozen=True)
class S3Target:
    """
    Where an object goes, and where its resume state lives.

    :param bucket: target bucket
    :param key: target key (not empty, not ending in ``/``)
    :param state_prefix: prefix of the manifest objects, :data:`DEFAULT_STATE_PREFIX` by default
    """

    bucket: str
    key: str
    state_prefix: str = DEFAULT_STATE_PREFIX

    def __post_init__(self) -> None:
        if not self.bucket:
            raise S3BucketNotFound("no bucket given: set s3_bucket to the name of an existing bucket")
        if not self.key or self.key.endswith("/"):
            raise S3KeyInvalid(
                f"s3_key {self.key!r} names a folder, not an object: end it with the file name, "
                "e.g. 'incoming/report.csv'"
            )
        if len(self.key.encode()) > MAX_KEY_BYTES:
            raise S3KeyInvalid(f"s3_key is longer than S3's {MAX_KEY_BYTES} bytes: shorten it")

    @property
    def manifest_key(self) -> str:
        """The manifest's key: ``<state_prefix><key>.json``, or a digest when that would be too long."""
        readable = f"{self.state_prefix}{self.key}.json"
        if len(readable.encode()) <= MAX_KEY_BYTES:
            return readable
        return f"{self.state_prefix}sha256/{hashlib.sha256(self.key.encode()).hexdigest()}.json"

    def describe(self) -> str:
        """Return ``s3://bucket/key``."""
        return f"s3://{self.bucket}/{self.key}"


def error_code(exc: BaseException) -> str:
    """Return S3's error code of a botocore ``ClientError`` (its HTTP status if there is none), or ``""``."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    code = response.get("Error", {}).get("Code")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(code or status or "")


def is_s3_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from botocore (a request that failed, rather than a bug)."""
    return type(exc).__module__.startswith(("botocore", "boto3", "urllib3")) or bool(error_code(exc))


def is_not_implemented(exc: BaseException) -> bool:
    """Whether the store refused a feature it does not have (e.g. conditional writes)."""
    return error_code(exc) in _NOT_IMPLEMENTED


def translate(exc: BaseException, target: S3Target, action: str) -> TransferError:
    """
    Turn a failed request into this package's error, naming the fix.

    :param exc: what boto3 raised
    :param target: the object the request was about
    :param action: what was being done, for the message ("upload part 3")
    """
    code = error_code(exc)
    where = target.describe()
    if code == "NoSuchBucket":
        return S3BucketNotFound(
            f"bucket {target.bucket!r} does not exist ({action}): create it, or fix s3_bucket or the "
            "connection's endpoint_url/region"
        )
    if code in _DENIED:
        return S3AccessDenied(
            f"access denied to {where} ({action}, {code}): grant the connection's credentials s3:PutObject, "
            "s3:GetObject, s3:DeleteObject, s3:ListBucketMultipartUploads, s3:ListMultipartUploadParts and "
            "s3:AbortMultipartUpload on the key and the state prefix"
        )
    if code == "NoSuchUpload":
        return UploadAborted(
            f"the multipart upload of {where} no longer exists ({action}): S3 aborted it (a lifecycle rule "
            "AbortIncompleteMultipartUpload, or a clean-up); the next try restarts from byte 0"
        )
    return S3RequestFailed(f"S3 request failed for {where} ({action}): {code or type(exc).__name__}: {exc}")


def failure(exc: BaseException, target: S3Target, action: str) -> BaseException:
    """Return the error to raise for ``exc``: ours for a failed request, ``exc`` itself for a bug."""
    return translate(exc, target, action) if is_s3_error(exc) else exc


def call(target: S3Target, action: str, function: Any, **kwargs: Any) -> Any:
    """
    Make one request; a botocore failure becomes this package's error.

    :param target: the object the request is about (for messages)
    :param action: what is being done, for messages
    :param function: the bound client method, e.g. ``client.upload_part``
    """
    try:
        return function(**kwargs)
    except Exception as exc:
        raise failure(exc, target, action) from exc


def head_if_present(client: Any, target: S3Target) -> dict[str, Any] | None:
    """HEAD the object at ``target``: its answer, or ``None`` when there is no object there."""
    try:
        head: dict[str, Any] = client.head_object(Bucket=target.bucket, Key=target.key)
    except Exception as exc:
        if error_code(exc) in ("NoSuchKey", "404"):
            return None
        raise failure(exc, target, "check the published object") from exc
    return head


def list_parts(
    client: Any, target: S3Target, upload_id: str, *, page: int = LIST_PAGE
) -> list[dict[str, Any]]:
    """
    Return every part S3 has for the upload, following ListParts' pages.

    :param client: a boto3 S3 client
    :param target: the object being uploaded
    :param upload_id: the multipart upload
    :param page: parts per request (S3 answers at most 1,000)
    :raises UploadAborted: the upload no longer exists
    """
    parts: list[dict[str, Any]] = []
    marker = 0
    while True:
        answer = call(
            target,
            "list parts",
            client.list_parts,
            Bucket=target.bucket,
            Key=target.key,
            UploadId=upload_id,
            MaxParts=page,
            PartNumberMarker=marker,
        )
        parts.extend(answer.get("Parts", []))
        if not answer.get("IsTruncated"):
            return parts
        next_marker = int(answer.get("NextPartNumberMarker", 0))
        if next_marker <= marker:  # a store that says "truncated" but does not move on
            raise S3RequestFailed(f"ListParts for {target.describe()} did not advance past part {marker}")
        marker = next_marker
