"""
The S3 multipart writer: sequential bytes in, parts up in parallel, resumable from the bucket.

Bytes arrive in file order (``random_access = False``) and are cut into parts; at most
``max_in_flight`` upload at once on threads (boto3 is synchronous) and one more waits, so memory is
bounded by ``(max_in_flight + 2) * part_size``. The whole-file SHA-256 advances one part at a time:
the manifest saves its state at each part boundary. A file under one part goes up as one
``PutObject`` under the same claim. ``write`` and ``make_durable`` may run on two threads at once
(the fill and the checkpointer): a lock keeps the hash state and parts consistent.
:class:`~.destination.S3Destination` maps this writer onto the destination seam.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from airflow_provider_sftp_resume.core.destinations.s3.chunks import ChunkBuffer
from airflow_provider_sftp_resume.core.destinations.s3.claim import HEARTBEATS_PER_LEASE, Claim, load_claim
from airflow_provider_sftp_resume.core.destinations.s3.manifest import CHECKSUMS, Manifest, PartRecord
from airflow_provider_sftp_resume.core.destinations.s3.objects import abort_upload
from airflow_provider_sftp_resume.core.destinations.s3.parts import PartPlan
from airflow_provider_sftp_resume.core.destinations.s3.publish import (
    complete_checked,
    published_earlier,
    put_claimed,
)
from airflow_provider_sftp_resume.core.destinations.s3.settings import Published, UploadSettings, new_owner
from airflow_provider_sftp_resume.core.destinations.s3.start import start_fresh
from airflow_provider_sftp_resume.core.destinations.s3.store import ManifestStore, save_owned
from airflow_provider_sftp_resume.core.destinations.s3.uploader import PartUploader
from airflow_provider_sftp_resume.core.errors import IntegrityError
from airflow_provider_sftp_resume.core.resume.resumable_sha256 import ResumableSha256

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_sftp_resume.core.destinations.s3.calls import S3Target
    from airflow_provider_sftp_resume.core.destinations.s3.owner import Owner
    from airflow_provider_sftp_resume.core.resume.resumable_sha256 import Sha256State
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
        self.description = target.describe()  # s3://bucket/key, for log lines
        self._heartbeat = self.settings.lease_seconds / HEARTBEATS_PER_LEASE
        self.owner = owner or new_owner()
        self.store = ManifestStore(client, target)
        self.claim = Claim(None)
        self._manifest: Manifest | None = None
        self._hash, self._buffer = ResumableSha256(), ChunkBuffer()
        self._written, self._next_part, self._saved_at = 0, 1, -math.inf  # _saved_at: last manifest write
        self._done: dict[int, PartRecord] = {}
        self._parts = PartUploader(client, target, self.settings.checksum, self.settings.max_in_flight)
        self._lock = threading.Lock()

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

    def restart(self, fresh: bool, source: RemoteFingerprint | None = None) -> int:
        """
        Start writing: after the kept parts, or (``fresh``) from byte 0 with a new upload.

        :param fresh: drop what :meth:`load_state` kept (the caller's checks failed, or nothing was kept)
        :param source: the source's fingerprint as the fresh start took it (default: the one given)
        :return: the offset the next :meth:`write` must start at
        """
        if source is not None:
            self.source = source
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
            abort_upload(self._client, self.target, str(upload_id))
        self._done, self._hash, self._written, self._next_part = {}, ResumableSha256(), 0, 1
        self._manifest = start_fresh(  # a single PutObject takes the same claim, without an upload
            self._client,
            self.target,
            self.store,
            source=self.source,
            plan=self.plan,
            checksum=self.settings.checksum,
            owner=replace(self.owner, heartbeat=self._clock()),
            clock=self._clock,
        )
        self._saved_at = time.monotonic()
        return 0

    def write(self, offset: int, data: bytes, *, block: bool = True) -> bool:
        """
        Take the next bytes of the file; full parts start uploading (this waits while all slots are busy).

        :param offset: must be :attr:`written` (bytes arrive in file order)
        :param data: the bytes
        :param block: ``False``: take them only if no slot must be waited for, else return ``False``
        """
        with self._lock:
            cuts = 0 if self.plan.single_put else (len(self._buffer) + len(data)) // self.plan.part_size
            if not block and not self._parts.reserve(cuts):
                return False
            self._take(offset, data)
            return True

    def _take(self, offset: int, data: bytes) -> None:
        if offset != self._written:
            raise ValueError(f"S3 takes bytes in file order: expected offset {self._written}, got {offset}")
        if self._written + len(data) > self.plan.size:
            raise IntegrityError(
                f"more bytes than the source's {self.plan.size} arrived for {self.description}"
            )
        self._parts.raise_failed()
        self._buffer.append(data)
        self._written += len(data)
        while not self.plan.single_put and len(self._buffer) >= self.plan.part_size:
            self._cut(self.plan.part_size)

    def make_durable(self, spacing: float = 0.0) -> int:
        """
        Wait for the parts in flight and record them in the manifest (the checkpoint).

        While it waits, parts already done are written first when the last manifest write is
        ``spacing`` seconds old: a ``kill -9`` loses the parts still in flight, not finished ones
        that waited for a slower one, and the writes stay at a bounded rate.

        :param spacing: seconds from one manifest write to the next in mid-checkpoint (the interval)
        :return: bytes durably kept in S3 (a multiple of the part size)
        :raises OwnershipLost: another try took the upload over
        :raises UploadAborted: S3 no longer has the upload
        """
        with self._lock:  # what was cut so far (the hash state here if no part was cut in this try)
            in_flight, cut = self._parts.take(), self._next_part - 1
            untouched = self._parts.untouched(self._hash)
        for records, more in PartUploader.in_turns(in_flight):
            with self._lock:
                self._done.update((record.number, record) for record in records)
            if more and time.monotonic() - self._saved_at >= spacing:
                self._record(records[-1].number, self._parts.state_after(records[-1].number))
        return self._record(cut, untouched or self._parts.state_after(cut))

    def _record(self, through: int, state: Sha256State) -> int:
        """Write the manifest with parts 1 to ``through`` if they are new or a heartbeat is due."""
        if self._manifest is None:
            return 0
        parts = tuple(self._done[n] for n in range(1, through + 1))
        due = self._manifest.checkpoint(parts, state, self.owner, self._clock(), self._heartbeat)
        if due is not None:
            self._manifest = due
            self._save(due)
        return self._manifest.kept_bytes

    def sha256(self) -> str:
        """Hex sha256 of every byte written so far."""
        self._parts.settle_hash()
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
            assert self._manifest is not None
            published = put_claimed(
                self._client, self.target, self.store, self._manifest, bytes(self._buffer)
            )
            self._buffer.clear()
            self._parts.close()
            return published
        if self._buffer:
            self._cut(len(self._buffer))
        self._done.update((record.number, record) for record in self._parts.wait())
        assert self._manifest is not None
        sha256 = self._hash.hexdigest()
        parts = tuple(self._done[n] for n in sorted(self._done))
        self._manifest = replace(self._manifest, parts=parts, sha256=sha256)
        self._save(self._manifest)  # proves this try still owns the upload, and records the sha256
        published = complete_checked(self._client, self.target, self._manifest, self.settings.list_page)
        self._cleanup()
        return published

    def _cleanup(self) -> None:
        self._parts.close()
        if self.store.etag:
            self.store.delete()

    def finish_published(self) -> Published:
        """Clean up after an earlier try that completed the upload but crashed before cleaning up."""
        manifest = self.claim.published
        if manifest is None:
            raise ValueError("load_state found no published object to finish")
        published = published_earlier(self._client, self.target, manifest, self.plan.size)
        self._cleanup()
        return published

    def discard(self) -> None:
        """Abort the multipart upload and delete the manifest: nothing is left that costs money."""
        self._parts.close(cancel=True)
        mine = self._manifest.upload_id if self._manifest else None
        for upload_id in {mine, self.claim.stale_upload_id} - {None}:
            abort_upload(self._client, self.target, str(upload_id))
        if self.store.etag:
            self.store.delete()

    def release(self) -> None:
        """
        After a failed try: keep the upload and the manifest, but give up the claim (heartbeat 0).

        The next try, on any worker, resumes at once instead of waiting for this try's lease to run
        out. Best effort: a try that cannot write the manifest now leaves its lease to expire.
        """
        self._parts.close(cancel=True)
        if self._manifest is None or not self.store.etag:
            return
        try:
            self._save(replace(self._manifest, owner=replace(self.owner, heartbeat=0.0)))
        except Exception as exc:
            log.info("Could not release the claim on %s (%s); its lease will expire", self.description, exc)

    def _cut(self, length: int) -> None:
        assert self._manifest is not None
        chunks = self._buffer.take(length)
        self._parts.submit(self._manifest.upload_id, self._next_part, chunks, self._hash)
        self._next_part += 1

    def _save(self, manifest: Manifest) -> None:
        save_owned(self.store, manifest, self.description)
        self._saved_at = time.monotonic()
