"""
The S3 destination: the seam's :class:`~..protocol.Destination` over :class:`~.multipart.S3MultipartUpload`.

How the seam's words map onto S3:

- *state*: the manifest in the bucket, reconciled with ListParts, as a one-segment
  :class:`~...resume.state.ResumeState` whose durable offset is the end of the kept parts;
- *kept digest*: S3 cannot read back the bytes of an upload before it is complete, so each part's
  record carries the sha256 of its last :data:`~...resume.verify.OVERLAP_LENGTH` bytes, taken when
  it was sent (for an object already completed, its last bytes are read back with a ranged GET);
- *durable*: the parts in flight are done and the manifest records them (conditional write);
- *publish*: CompleteMultipartUpload (or the single PutObject), then HEAD checks the size;
- *discard*: abort the upload, delete the manifest;
- *existing copy*: the object's metadata carries the same source fingerprint (``skip_unchanged``).

A try that crashed right after CompleteMultipartUpload left a manifest whose upload is gone but
whose object is there: :meth:`S3Destination.load_state` claims the whole file as kept, the engine
proves it against the source as usual, and :meth:`S3Destination.publish` only cleans up.
Blocking boto3 calls run in a thread (:func:`~...threads.in_thread`).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from airflow_provider_sftp_resume.core.destinations.s3.calls import call, error_code, failure
from airflow_provider_sftp_resume.core.destinations.s3.claim import META_SHA256, is_published
from airflow_provider_sftp_resume.core.destinations.s3.multipart import S3MultipartUpload
from airflow_provider_sftp_resume.core.destinations.s3.tidy import drop_abandoned
from airflow_provider_sftp_resume.core.resume.state import ResumeState, Segment, UnusableState
from airflow_provider_sftp_resume.core.resume.verify import OVERLAP_LENGTH
from airflow_provider_sftp_resume.core.threads import in_thread

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.destinations.s3.calls import S3Target
    from airflow_provider_sftp_resume.core.destinations.s3.manifest import Manifest
    from airflow_provider_sftp_resume.core.destinations.s3.settings import Published, UploadSettings
    from airflow_provider_sftp_resume.core.logs import Logger
    from airflow_provider_sftp_resume.core.remote.protocol import RemoteReader, RemoteStat
    from airflow_provider_sftp_resume.core.resume.state import RemoteFingerprint


class WriterHash:
    """The whole-file sha256 as the writer computes it (it hashes each part as it cuts it)."""

    def __init__(self, upload: S3MultipartUpload, known: str | None = None) -> None:
        self._upload = upload
        self._known = known

    def advance(self, watermark: int, block: tuple[int, bytes] | None = None) -> None:
        """Nothing to do: the writer hashed the bytes it was given."""

    def finish(self, size: int) -> str:
        """Return the hex sha256 of the ``size`` bytes written (or of the object already published)."""
        return self._known or self._upload.sha256()

    def abandon(self) -> None:
        """Nothing to release."""


class S3Destination:
    """
    A download into a multipart upload of ``target``, published when the upload completes.

    :param client: a boto3 S3 client
    :param target: bucket, key and state prefix
    :param source: the source's fingerprint as this try found it
    :param settings: part size, checksum, parts in flight, lease
    :param log: where the story of the try is told
    :param checkpoint_interval: seconds between manifest writes while a checkpoint waits for parts
    """

    random_access = False
    worker_path = None

    def __init__(
        self,
        client: Any,
        target: S3Target,
        source: RemoteFingerprint,
        settings: UploadSettings,
        log: Logger,
        *,
        checkpoint_interval: float = 0.0,
    ) -> None:
        self.upload = S3MultipartUpload(client, target, source, settings)
        self._checkpoint_interval = checkpoint_interval
        self.target = target
        self._client = client
        self._log = log
        self._published_earlier: Manifest | None = None
        self._published_tail: tuple[tuple[int, int], str] | None = None
        self._started = self._loaded = False
        self._finished = False
        #: the object as published, once :meth:`publish` returned
        self.published: Published | None = None
        #: ETag and version of an existing object found to be this source already (``skip_unchanged``)
        self.existing_etag, self.existing_version = "", None

    @property
    def description(self) -> str:
        return self.target.describe()

    async def existing_copy(self, remote: RemoteStat, reader: RemoteReader) -> tuple[str | None, int]:
        source = self.upload.source
        if not await in_thread(is_published, self._client, self.target, source):
            return None, 0
        digest = await in_thread(self._recorded_sha256)
        if digest is None:
            self._log.info(
                "%s was copied from this source, but carries no sha256 to report; copying again",
                self.description,
            )
        return digest, 0

    def _recorded_sha256(self) -> str | None:
        """The sha256 this package recorded for the object: its metadata, or its tag (multipart)."""
        bucket, key = self.target.bucket, self.target.key
        head = call(self.target, "check the object", self._client.head_object, Bucket=bucket, Key=key)
        self.existing_etag, self.existing_version = str(head.get("ETag", "")), head.get("VersionId")
        digest = head.get("Metadata", {}).get(META_SHA256)
        if digest:
            return str(digest)
        try:
            tags = self._client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
        except Exception as exc:
            if error_code(exc) in ("AccessDenied", "403"):
                return None
            raise failure(exc, self.target, "read the object's tags") from exc
        return next((str(t["Value"]) for t in tags if t.get("Key") == META_SHA256), None)

    async def load_state(self) -> ResumeState | None:
        self._loaded = True
        claim = await in_thread(self.upload.load_state)
        size = self.upload.plan.size
        if claim.published is not None:
            self._published_earlier = claim.published
            self._published_tail = await in_thread(self._read_back_tail, size)
            self._log.info("An earlier try completed %s before it stopped; checking it", self.description)
            return ResumeState(claim.published.source, (Segment(0, size, size),))
        if claim.manifest is None:
            if claim.restart_reason:
                raise UnusableState(claim.restart_reason)
            return None
        return ResumeState(claim.manifest.source, (Segment(0, size, claim.manifest.kept_bytes),))

    def _read_back_tail(self, size: int) -> tuple[tuple[int, int], str]:
        window = (max(0, size - OVERLAP_LENGTH), size)
        answer = call(
            self.target,
            "read back the object's last bytes",
            self._client.get_object,
            Bucket=self.target.bucket,
            Key=self.target.key,
            Range=f"bytes={window[0]}-{window[1] - 1}",
        )
        return window, hashlib.sha256(answer["Body"].read()).hexdigest()

    def kept_digest(self, start: int, end: int) -> str | None:
        if self._published_tail is not None:
            window, digest = self._published_tail
            return digest if (start, end) == window else None
        offset = 0
        for part in self.upload.kept_parts:
            offset += part.size
            if offset == end and end - start == min(OVERLAP_LENGTH, part.size):
                return part.tail_sha256 or None
        return None

    async def restart(self, fresh: ResumeState) -> None:
        self._published_earlier = self._published_tail = None
        await in_thread(self.upload.restart, True, fresh.remote)
        self._started = True

    async def resume(self, state: ResumeState) -> None:
        if self._started or self._published_earlier is not None:
            return
        offset = await in_thread(self.upload.restart, False)
        if offset != state.durable_bytes:
            raise UnusableState(f"the upload keeps {offset} bytes, not the {state.durable_bytes} verified")
        self._started = True

    def start_hash(self, state: ResumeState) -> WriterHash:
        return WriterHash(self.upload, self._published_earlier.sha256 if self._published_earlier else None)

    async def write(self, offset: int, data: bytes) -> None:
        # Into the buffer, or a cut part handed to the uploader's threads: cheap, on the loop. Only
        # a cut that must wait for a free slot waits in a thread.
        if not self.upload.write(offset, data, block=False):
            await in_thread(self.upload.write, offset, data)

    async def make_durable(self, state: ResumeState) -> ResumeState:
        if self._published_earlier is not None:
            return state
        kept = await in_thread(self.upload.make_durable, self._checkpoint_interval)
        return state.with_progress(0, kept)

    def make_room(self, written: ResumeState) -> ResumeState:
        return written  # S3 has no full disk

    def stored_size(self) -> int:
        return self.upload.plan.size if self._published_earlier is not None else self.upload.written

    async def publish(self, mtime: int | None) -> None:
        # S3 keeps no modification time of ours: the source's mtime is in the fingerprint metadata.
        if self._published_earlier is not None:
            self.published = await in_thread(self.upload.finish_published)
            self._log.info("%s was completed by an earlier try; cleaned up after it", self.description)
        else:
            self.published = await in_thread(self.upload.publish)
        self._finished = True

    async def discard(self) -> None:
        await in_thread(self.upload.discard)
        if not self._loaded:  # skip_unchanged: the object is this source; a dead try's claim is waste
            lease = self.upload.settings.lease_seconds
            await in_thread(drop_abandoned, self._client, self.target, self.upload.store, lease)
        self._finished = True

    async def close(self) -> None:
        if not self._finished:
            await in_thread(self.upload.release)
