"""
The S3 multipart writer: sequential bytes in, parts up in parallel, resumable from the bucket.

Bytes arrive in file order (``random_access = False``) and are cut into parts of
:attr:`PartPlan.part_size`; at most ``max_in_flight`` parts upload at once on threads (boto3 is
synchronous), so memory is bounded by ``(max_in_flight + 1) * part_size``. Each part's ETag and
sha256 are recorded; the whole-file SHA-256 advances one complete part at a time, so its state is
always at a part boundary and :meth:`S3MultipartUpload.make_durable` can save it in the manifest.

The lifecycle maps onto the destination seam: :meth:`~S3MultipartUpload.load_state` (the claim of
earlier tries, reconciled with ListParts), :meth:`~S3MultipartUpload.restart` (continue from the
kept parts, or start fresh), :meth:`~S3MultipartUpload.write`,
:meth:`~S3MultipartUpload.make_durable` (the checkpoint), :meth:`~S3MultipartUpload.publish`
(CompleteMultipartUpload, checked with HEAD) and :meth:`~S3MultipartUpload.discard` (abort). A
file smaller than one part is buffered and goes up as a single ``PutObject`` at publish.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from airflow_provider_sftp_resume.core.destinations.s3_calls import call, error_code
from airflow_provider_sftp_resume.core.destinations.s3_claim import (
    META_FINGERPRINT,
    META_SHA256,
    Claim,
    ManifestConflict,
    ManifestStore,
    load_claim,
)
from airflow_provider_sftp_resume.core.destinations.s3_errors import OwnershipLost
from airflow_provider_sftp_resume.core.destinations.s3_manifest import (
    CHECKSUMS,
    Manifest,
    PartRecord,
    fingerprint_digest,
)
from airflow_provider_sftp_resume.core.destinations.s3_parts import PartPlan
from airflow_provider_sftp_resume.core.destinations.s3_publish import check_published, complete
from airflow_provider_sftp_resume.core.destinations.s3_settings import Published, UploadSettings, new_owner
from airflow_provider_sftp_resume.core.destinations.s3_uploader import PartUploader, checksum_arguments
from airflow_provider_sftp_resume.core.errors import IntegrityError
from airflow_provider_sftp_resume.core.resume.resumable_sha256 import ResumableSha256

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_sftp_resume.core.destinations.s3_calls import S3Target
    from airflow_provider_sftp_resume.core.destinations.s3_owner import Owner
    from airflow_provider_sftp_resume.core.resume.state import RemoteFingerprint

log = logging.getLogger(__name__)


class S3MultipartUpload:
    """
    One try's upload of one source file to one S3 object.

    :param client: a boto3 S3 client (create it with :func:`client_config_kwargs` for the checksum knob)
    :param target: bucket, key and state prefix
    :param source: fingerprint of the source file
    :param settings: the knobs
    :param owner: this try (default: :func:`new_owner`)
    :param clock: seconds since the epoch, for heartbeats (injected for tests)
    """

    random_access = False

    def __init__(
        self,
        client: Any,
        target: S3Target,
        source: RemoteFingerprint,
        settings: UploadSettings | None = None,
        *,
        owner: Owner | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings or UploadSettings()
        if self.settings.checksum not in CHECKSUMS:
            raise ValueError(f"checksum={self.settings.checksum!r} is not one of {CHECKSUMS}")
        self.plan = PartPlan.for_size(source.size, self.settings.part_size)
        self.target, self.source, self._client, self._clock = target, source, client, clock
        self.owner = owner or new_owner()
        self.store = ManifestStore(client, target)
        self.claim = Claim(None)
        self._manifest: Manifest | None = None
        self._hash = ResumableSha256()
        self._buffer = bytearray()
        self._written = 0
        self._next_part = 1
        self._done: dict[int, PartRecord] = {}
        self._parts = PartUploader(client, target, self.settings.checksum, self.settings.max_in_flight)

    @property
    def description(self) -> str:
        """``s3://bucket/key``, for log lines."""
        return self.target.describe()

    @property
    def written(self) -> int:
        """Bytes handed to :meth:`write` so far (from offset 0, kept parts included)."""
        return self._written

    def load_state(self) -> Claim:
        """
        Read what earlier tries left in the bucket (the manifest, reconciled with ListParts) and claim it.

        :raises UploadBusy: another try's claim is live
        """
        self.claim = load_claim(
            self._client,
            self.target,
            self.store,
            source=self.source,
            part_size=self.plan.part_size,
            checksum=self.settings.checksum,
            me=self.owner,
            lease_seconds=self.settings.lease_seconds,
            clock=self._clock,
            page=self.settings.list_page,
        )
        return self.claim

    @property
    def kept_parts(self) -> tuple[PartRecord, ...]:
        """The parts :meth:`load_state` kept (for the overlap check against re-read source bytes)."""
        return self.claim.manifest.parts if self.claim.manifest else ()

    def restart(self, fresh: bool) -> int:
        """
        Start writing: after the kept parts, or (``fresh``) from byte 0 with a new upload.

        :param fresh: drop what :meth:`load_state` kept (the caller's checks failed, or nothing was kept)
        :return: the offset the next :meth:`write` must start at
        """
        manifest = self.claim.manifest
        if manifest is not None and not fresh and not self.plan.single_put:
            self._manifest = manifest
            self._done = {part.number: part for part in manifest.parts}
            state = manifest.hash_states[-1] if manifest.hash_states else None
            self._hash = ResumableSha256(state)
            self._written = manifest.kept_bytes
            self._next_part = len(manifest.parts) + 1
            return self._written
        for upload_id in {self.claim.stale_upload_id, manifest.upload_id if manifest else None} - {None}:
            self._abort(str(upload_id))
        self._done, self._hash, self._written, self._next_part = {}, ResumableSha256(), 0, 1
        if self.plan.single_put:
            if self.store.etag:
                self.store.delete()
            return 0
        answer = call(
            self.target,
            "create the multipart upload",
            self._client.create_multipart_upload,
            Bucket=self.target.bucket,
            Key=self.target.key,
            Metadata=self._metadata(),
            **({"ChecksumAlgorithm": self.settings.checksum} if self.settings.checksum != "off" else {}),
        )
        self._manifest = Manifest(
            bucket=self.target.bucket,
            key=self.target.key,
            upload_id=answer["UploadId"],
            part_size=self.plan.part_size,
            checksum=self.settings.checksum,
            source=self.source,
            owner=replace(self.owner, heartbeat=self._clock()),
        )
        self._save(self._manifest)
        return 0

    def write(self, offset: int, data: bytes) -> None:
        """
        Take the next bytes of the file; full parts start uploading (this blocks while all slots are busy).

        :param offset: must be :attr:`written` (bytes arrive in file order)
        :param data: the bytes
        """
        if offset != self._written:
            raise ValueError(f"S3 takes bytes in file order: expected offset {self._written}, got {offset}")
        if self._written + len(data) > self.plan.size:
            raise IntegrityError(
                f"more bytes than the source's {self.plan.size} arrived for {self.description}"
            )
        self._parts.raise_failed()
        self._buffer += data
        self._written += len(data)
        while not self.plan.single_put and len(self._buffer) >= self.plan.part_size:
            self._cut(self.plan.part_size)

    def make_durable(self) -> int:
        """
        Wait for the parts in flight and record them in the manifest (the checkpoint).

        :return: bytes durably kept in S3 (a multiple of the part size)
        :raises OwnershipLost: another try took the upload over
        :raises UploadAborted: S3 no longer has the upload
        """
        self._wait()
        if self._manifest is None:
            return 0
        parts = tuple(self._done[n] for n in sorted(self._done))
        self._manifest = replace(
            self._manifest.with_parts(parts, self._hash.state()),
            owner=replace(self.owner, heartbeat=self._clock()),
        )
        self._save(self._manifest)
        return self._manifest.kept_bytes

    def sha256(self) -> str:
        """Hex sha256 of every byte written so far."""
        digest = ResumableSha256(self._hash.state())  # the hash is at a part boundary: its state copies
        digest.update(bytes(self._buffer))
        return digest.hexdigest()

    def publish(self) -> Published:
        """
        Make the object appear: CompleteMultipartUpload (or the single PutObject), check it, clean up.

        :raises IntegrityError: bytes are missing, or S3's parts or object differ from what was sent
        :raises OwnershipLost: another try took the upload over; this one does not publish
        """
        if self._written != self.plan.size:
            raise IntegrityError(f"only {self._written} of {self.plan.size} bytes reached {self.description}")
        if self.plan.single_put:
            return self._put_whole()
        if self._buffer:
            self._cut(len(self._buffer))
        self._wait()
        assert self._manifest is not None
        sha256 = self._hash.hexdigest()
        parts = tuple(self._done[n] for n in sorted(self._done))
        self._manifest = replace(self._manifest, parts=parts, sha256=sha256)
        self._save(self._manifest)  # proves this try still owns the upload, and records the sha256
        answer = complete(
            self._client,
            self.target,
            self._manifest.upload_id,
            parts,
            self.settings.checksum,
            page=self.settings.list_page,
        )
        check_published(self._client, self.target, self.plan.size, sha256)
        self._cleanup()
        return Published(self.plan.size, sha256, answer.get("ETag", ""), answer.get("VersionId"), len(parts))

    def _cleanup(self) -> None:
        self._parts.close()
        if self.store.etag:
            self.store.delete()

    def finish_published(self) -> Published:
        """Clean up after an earlier try that completed the upload but crashed before cleaning up."""
        manifest = self.claim.published
        if manifest is None:
            raise ValueError("load_state found no published object to finish")
        head = check_published(self._client, self.target, self.plan.size, manifest.sha256)
        self._cleanup()
        return Published(
            self.plan.size,
            manifest.sha256,
            head.get("ETag", ""),
            head.get("VersionId"),
            len(manifest.parts),
            True,
        )

    def discard(self) -> None:
        """Abort the multipart upload and delete the manifest: nothing is left that costs money."""
        self._parts.close(cancel=True)
        for upload_id in {
            self._manifest.upload_id if self._manifest else None,
            self.claim.stale_upload_id,
        } - {None}:
            self._abort(str(upload_id))
        if self.store.etag:
            self.store.delete()

    # -- helpers ---------------------------------------------------------------------------------

    def _cut(self, length: int) -> None:
        assert self._manifest is not None
        data = bytes(self._buffer[:length])
        del self._buffer[:length]
        self._hash.update(data)
        self._parts.submit(self._manifest.upload_id, self._next_part, data)
        self._next_part += 1

    def _wait(self) -> None:
        for record in self._parts.wait():
            self._done[record.number] = record

    def _metadata(self, sha256: str = "") -> dict[str, str]:
        metadata = {
            META_FINGERPRINT: fingerprint_digest(self.source),
            "sftp-resume-size": str(self.source.size),
        }
        return {**metadata, META_SHA256: sha256} if sha256 else metadata

    def _save(self, manifest: Manifest) -> None:
        try:
            self.store.write(manifest)
        except ManifestConflict:
            try:
                other = self.store.read()
            except Exception:
                other = None
            who = other.owner.describe() if other else "unknown (the state was deleted)"
            raise OwnershipLost(
                f"another try took over the upload of {self.description} ({who}) after this try's lease "
                "expired: this try stops without publishing",
                owner=other.owner if other else None,
            ) from None

    def _abort(self, upload_id: str) -> None:
        try:
            self._client.abort_multipart_upload(
                Bucket=self.target.bucket, Key=self.target.key, UploadId=upload_id
            )
        except Exception as exc:
            if error_code(exc) not in ("NoSuchUpload", "404"):
                log.warning("Could not abort the old multipart upload of %s: %s", self.description, exc)

    def _put_whole(self) -> Published:
        data = bytes(self._buffer)
        digest = hashlib.sha256(data).digest()
        answer = call(
            self.target,
            "put the object",
            self._client.put_object,
            Bucket=self.target.bucket,
            Key=self.target.key,
            Body=data,
            Metadata=self._metadata(digest.hex()),
            **checksum_arguments(self.settings.checksum, digest),
        )
        self._buffer.clear()
        self._parts.close()
        return Published(len(data), digest.hex(), answer.get("ETag", ""), answer.get("VersionId"), 1)
