"""
The manifest object in the bucket, read and written with conditional requests.

The manifest is written with conditional requests where the store has them (``If-None-Match: *``
to create, ``If-Match: <etag>`` to update; AWS S3 since 2024, MinIO, moto): a try whose write is
refused has lost the upload to another try. A store that answers ``NotImplemented`` gets plain
writes after a read-back comparison instead (racy by a request's time; logged once).
"""

from __future__ import annotations

import logging
from typing import Any

from airflow_provider_sftp_resume.core.destinations.s3.calls import (
    S3Target,
    call,
    error_code,
    failure,
    is_not_implemented,
)
from airflow_provider_sftp_resume.core.destinations.s3.errors import OwnershipLost
from airflow_provider_sftp_resume.core.destinations.s3.manifest import Manifest

log = logging.getLogger(__name__)

_CONFLICT = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})


class ManifestConflict(Exception):
    """Another try wrote the manifest since this one read it (the conditional write was refused)."""


class ManifestStore:
    """
    Read and write one upload's manifest object, conditionally.

    :param client: a boto3 S3 client
    :param target: the upload's target (the manifest key derives from it)
    """

    def __init__(self, client: Any, target: S3Target) -> None:
        self._client = client
        self._target = target
        #: ETag of the manifest as last read or written; ``None`` while there is none
        self.etag: str | None = None
        #: whether the store honours If-Match / If-None-Match (cleared on its first ``NotImplemented``)
        self.conditional_writes = True

    @property
    def key(self) -> str:
        """The manifest's key."""
        return self._target.manifest_key

    def read(self) -> Manifest | None:
        """
        Return the manifest, or ``None`` if there is none.

        :raises UnusableState: there is one, but it cannot be trusted (:attr:`etag` is set: it can be
            replaced)
        """
        try:
            answer = self._client.get_object(Bucket=self._target.bucket, Key=self.key)
        except Exception as exc:
            if error_code(exc) in ("NoSuchKey", "404"):
                self.etag = None
                return None
            raise failure(exc, self._target, "read the resume state") from exc
        self.etag = answer["ETag"]
        return Manifest.from_json(answer["Body"].read(MAX_READ))

    def write(self, manifest: Manifest) -> None:
        """
        Create the manifest (there was none) or replace the one last read or written.

        :raises ManifestConflict: another try wrote it in between
        """
        condition = {"IfMatch": self.etag} if self.etag else {"IfNoneMatch": "*"}
        body = manifest.to_json()
        try:
            answer = self._put(body, condition if self.conditional_writes else {})
        except ManifestConflict:
            raise
        except Exception as exc:
            if not (self.conditional_writes and is_not_implemented(exc)):
                raise
            log.warning(
                "The store at %s has no conditional writes; the resume state is written plainly", self.key
            )
            self.conditional_writes = False
            answer = self._put(body, {})
        self.etag = answer["ETag"]

    def delete(self) -> None:
        """Delete the manifest (nothing happens if it is gone)."""
        call(
            self._target,
            "delete the resume state",
            self._client.delete_object,
            Bucket=self._target.bucket,
            Key=self.key,
        )
        self.etag = None

    def _put(self, body: bytes, condition: dict[str, str]) -> Any:
        if not self.conditional_writes:
            self._compare_before_plain_write()
        try:
            return self._client.put_object(
                Bucket=self._target.bucket,
                Key=self.key,
                Body=body,
                ContentType="application/json",
                **condition,
            )
        except Exception as exc:
            # If-Match on a manifest that another try deleted (it published) answers NoSuchKey
            if error_code(exc) in _CONFLICT or ("IfMatch" in condition and error_code(exc) == "NoSuchKey"):
                raise ManifestConflict(str(exc)) from exc
            if is_not_implemented(exc):
                raise
            raise failure(exc, self._target, "write the resume state") from exc

    def _compare_before_plain_write(self) -> None:
        try:
            current = self._client.head_object(Bucket=self._target.bucket, Key=self.key)["ETag"]
        except Exception as exc:
            if error_code(exc) not in ("NoSuchKey", "404"):
                raise failure(exc, self._target, "read the resume state") from exc
            current = None
        if current != self.etag:
            raise ManifestConflict(f"{self.key} changed since it was read")


MAX_READ = 4 * 1024 * 1024 + 1  # one byte over MAX_MANIFEST_BYTES, so an oversized one is rejected


def save_owned(store: ManifestStore, manifest: Manifest, description: str) -> None:
    """
    Write the manifest of an upload this try owns.

    :raises OwnershipLost: another try wrote it since (it took the upload over): this try stops
    """
    try:
        store.write(manifest)
    except ManifestConflict:
        try:
            other = store.read()
        except Exception:
            other = None
        store.etag = None  # the manifest is the other try's now: release() and discard() leave it alone
        who = other.owner.describe() if other else "unknown (the state was deleted)"
        raise OwnershipLost(
            f"another try took over the upload of {description} ({who}) after this try's lease "
            "expired: this try stops without publishing",
            owner=other.owner if other else None,
        ) from None
