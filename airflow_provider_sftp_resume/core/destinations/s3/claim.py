"""
Claiming an upload: read the manifest, respect a live owner, reconcile the claim with ListParts.

The manifest is a claim, ListParts is the truth: a part the manifest lists but S3 lacks, or has with
another size or ETag, is dropped, and the kept prefix is the run of good parts from part 1, cut back
to the newest whole-file hash state at or before its end. An owner whose heartbeat is younger than
the lease holds the upload, unless it ran on this host and its process is gone (a task killed with
``kill -9`` and retried on the same worker resumes at once; on another worker it waits the lease).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from airflow_provider_sftp_resume.core.destinations.s3.calls import (
    S3Target,
    head_if_present,
    list_parts,
)
from airflow_provider_sftp_resume.core.destinations.s3.errors import UploadAborted, UploadBusy
from airflow_provider_sftp_resume.core.destinations.s3.manifest import (
    SINGLE_PUT,
    Manifest,
    fingerprint_digest,
)
from airflow_provider_sftp_resume.core.destinations.s3.store import ManifestConflict, ManifestStore
from airflow_provider_sftp_resume.core.resume.state import RemoteFingerprint, UnusableState

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_sftp_resume.core.destinations.s3.owner import Owner

log = logging.getLogger(__name__)

META_FINGERPRINT = "sftp-resume-fingerprint"
META_SHA256 = "sftp-resume-sha256"
#: A claim whose heartbeat is older than this is abandoned and may be taken over. Shorter than
#: Airflow's default retry_delay (300 s), so a retry on another worker after a kill -9 resumes; an
#: owner heartbeats HEARTBEATS_PER_LEASE times a lease, and a taken-over owner stops at its next
#: conditional write, so a short lease costs churn on a stalled link, never a mixed object.
DEFAULT_LEASE_SECONDS = 120.0
HEARTBEATS_PER_LEASE = 4


@dataclass(frozen=True)
class Claim:
    """
    What a try found in the bucket.

    :param manifest: the reconciled state this try now owns, or ``None`` to start fresh
    :param restart_reason: why the try starts from 0 (``""`` when it resumes or nothing was there)
    :param stale_upload_id: an earlier upload to abort before starting fresh
    :param published: the manifest of an upload that was completed but not cleaned up (a crash
        right after CompleteMultipartUpload): the object is there and correct
    """

    manifest: Manifest | None
    restart_reason: str = ""
    stale_upload_id: str | None = None
    published: Manifest | None = None


def load_claim(
    client: Any,
    target: S3Target,
    store: ManifestStore,
    *,
    source: RemoteFingerprint,
    part_size: int,
    checksum: str,
    me: Owner,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    clock: Callable[[], float] = time.time,
    page: int = 1000,
) -> Claim:
    """
    Read the manifest, check its owner and source, reconcile it with ListParts, and take it over.

    :param client: a boto3 S3 client
    :param target: the upload's target
    :param store: the manifest store of ``target``
    :param source: fingerprint of the source file now
    :param part_size: the part size this try would use
    :param checksum: the per-part checksum this try would use
    :param me: this try
    :param lease_seconds: how long an owner's heartbeat keeps its claim
    :param clock: seconds since the epoch (injected for tests)
    :param page: ListParts page size
    :raises UploadBusy: another try's claim is live
    """
    try:
        manifest = store.read()
    except UnusableState as exc:
        return Claim(None, restart_reason=f"the resume state in the bucket is unusable ({exc})")
    if manifest is None:
        return Claim(None)
    owner = manifest.owner
    if owner.token != me.token and is_live(owner, lease_seconds, clock):
        raise busy(target, owner, clock)
    if (manifest.bucket, manifest.key) != (target.bucket, target.key):
        return Claim(None, "the resume state names another object", stale_upload_id=None)
    if manifest.source != source:
        return Claim(None, "the source file changed since the last try", stale_upload_id=manifest.upload_id)
    if (manifest.part_size, manifest.checksum) != (part_size, checksum):
        reason = "the part size or checksum setting changed since the last try"
        return Claim(None, reason, stale_upload_id=manifest.upload_id)
    if manifest.upload_id == SINGLE_PUT:
        if manifest.sha256 and is_published(client, target, manifest.source):
            return Claim(None, published=manifest)
        return Claim(None)  # nothing to resume; store.etag is set, so the fresh claim replaces it
    try:
        truth = list_parts(client, target, manifest.upload_id, page=page)
    except UploadAborted as exc:
        if manifest.sha256 and is_published(client, target, manifest.source):
            return Claim(None, published=manifest)
        return Claim(None, restart_reason=str(exc))
    kept = reconcile(manifest, truth)
    return Claim(
        take_over(store, target, replace(kept, owner=replace(me, heartbeat=clock()), sha256=""), clock)
    )


def take_over(
    store: ManifestStore, target: S3Target, claimed: Manifest, clock: Callable[[], float]
) -> Manifest:
    """
    Replace the manifest that was read with ``claimed`` (this try's); return it.

    :raises UploadBusy: another try wrote the manifest since it was read
    """
    try:
        store.write(claimed)
    except ManifestConflict:
        other = store.read()
        store.etag = None  # the manifest is the other try's: never write or delete it
        raise busy(target, other.owner if other else claimed.owner, clock) from None
    return claimed


def reconcile(manifest: Manifest, truth: list[dict[str, Any]]) -> Manifest:
    """
    Keep the parts of ``manifest`` that ListParts confirms, as a run from part 1 with a hash state at its end.

    :param manifest: the claim
    :param truth: ListParts' parts (``PartNumber``, ``Size``, ``ETag``)
    """
    real = {int(p["PartNumber"]): (int(p["Size"]), str(p["ETag"])) for p in truth}
    run = 0
    for part in manifest.parts:
        if real.get(part.number) != (part.size, part.etag):
            log.info(
                "Part %d of the resume state is not in S3 as recorded; keeping parts 1..%d", part.number, run
            )
            break
        run = part.number
    states = tuple(s for s in manifest.hash_states if s.length <= sum(p.size for p in manifest.parts[:run]))
    if not states:
        return replace(manifest, parts=(), hash_states=())
    parts, offset = [], 0
    for part in manifest.parts:
        if offset + part.size > states[-1].length:
            break
        parts.append(part)
        offset += part.size
    return replace(manifest, parts=tuple(parts), hash_states=states)


def is_live(owner: Owner, lease_seconds: float, clock: Callable[[], float]) -> bool:
    """Whether ``owner`` still holds its claim: its heartbeat is younger than the lease and it is not gone."""
    return clock() - owner.heartbeat < lease_seconds and not is_gone(owner)


def is_gone(owner: Owner) -> bool:
    """Whether ``owner`` ran on this host and its process no longer exists (it cannot hold the upload)."""
    if owner.host != socket.gethostname() or owner.pid == os.getpid():
        return False
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # it exists under another user
    return False


def busy(target: S3Target, owner: Owner, clock: Callable[[], float]) -> UploadBusy:
    """Return the error for a live claim of another try."""
    age = max(0.0, clock() - owner.heartbeat)
    return UploadBusy(
        f"another try is uploading {target.describe()} right now ({owner.describe()}, last heartbeat "
        f"{age:.0f} s ago): this try stops; a retry resumes once that try ends or its lease expires",
        owner=owner,
    )


def is_published(client: Any, target: S3Target, source: RemoteFingerprint) -> bool:
    """Whether the object at ``target`` is complete and was copied from ``source`` (by its metadata)."""
    head = head_if_present(client, target)
    if head is None:
        return False
    metadata = head.get("Metadata", {})
    return bool(
        metadata.get(META_FINGERPRINT) == fingerprint_digest(source)
        and head.get("ContentLength") == source.size
    )
