"""
A fresh start: create the multipart upload (unless one ``PutObject`` will do) and claim the key.

The claim is the manifest, written conditionally (see :mod:`.store`): created when there was none,
replacing the one :func:`~.claim.load_claim` read otherwise. A try that loses the race to another
try starting at the same moment aborts the upload it created and stops retriably, naming the other
try; a file smaller than one part gets the same claim without an upload
(:data:`~.manifest.SINGLE_PUT`), so two tries never both put it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_sftp_resume.core.destinations.s3.claim import busy
from airflow_provider_sftp_resume.core.destinations.s3.errors import OwnershipLost
from airflow_provider_sftp_resume.core.destinations.s3.manifest import SINGLE_PUT, Manifest
from airflow_provider_sftp_resume.core.destinations.s3.objects import abort_upload, create_upload
from airflow_provider_sftp_resume.core.destinations.s3.store import ManifestConflict

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_sftp_resume.core.destinations.s3.calls import S3Target
    from airflow_provider_sftp_resume.core.destinations.s3.owner import Owner
    from airflow_provider_sftp_resume.core.destinations.s3.parts import PartPlan
    from airflow_provider_sftp_resume.core.destinations.s3.store import ManifestStore
    from airflow_provider_sftp_resume.core.resume.state import RemoteFingerprint


def start_fresh(
    client: Any,
    target: S3Target,
    store: ManifestStore,
    *,
    source: RemoteFingerprint,
    plan: PartPlan,
    checksum: str,
    owner: Owner,
    clock: Callable[[], float],
) -> Manifest:
    """
    Create the upload of ``target`` (none for a single ``PutObject``) and write its claim; return it.

    :param client: a boto3 S3 client
    :param target: the object
    :param store: its manifest store (its ``etag`` is the manifest this try read, if any)
    :param source: the source's fingerprint (it goes into the object's metadata)
    :param plan: the part plan (``plan.single_put``: no multipart upload)
    :param checksum: the per-part checksum setting
    :param owner: this try, with its heartbeat time
    :param clock: seconds since the epoch, for the message about another try
    :raises UploadBusy: another try claimed the key first (the upload created here is aborted)
    """
    upload_id = SINGLE_PUT if plan.single_put else create_upload(client, target, source, checksum)
    manifest = Manifest(
        bucket=target.bucket,
        key=target.key,
        upload_id=upload_id,
        part_size=plan.part_size,
        checksum=checksum,
        source=source,
        owner=owner,
    )
    try:
        store.write(manifest)
    except ManifestConflict:
        abort_upload(client, target, upload_id)
        other = store.read()
        store.etag = None  # the manifest is the other try's: never write or delete it
        if other is None:  # the other try published and cleaned up in between
            raise OwnershipLost(
                f"another try uploaded {target.describe()} while this one started: this try stops "
                "without publishing; a retry finds the object",
                owner=None,
            ) from None
        raise busy(target, other.owner, clock) from None
    return manifest
