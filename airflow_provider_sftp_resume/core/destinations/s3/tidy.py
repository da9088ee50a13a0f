"""
After a skip: the object already is this source, so what a dead try left for it is only cost.

``skip_unchanged`` decides before any claim is read. A try killed right after its single
``PutObject`` (or after CompleteMultipartUpload, once the object is tagged) leaves an object that a
retry rightly skips, and a claim nobody will ever finish: :func:`drop_abandoned` deletes that claim
and aborts its upload, unless a live try holds it (that try finishes or gives up on its own).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from airflow_provider_sftp_resume.core.destinations.s3.claim import is_live
from airflow_provider_sftp_resume.core.destinations.s3.objects import abort_upload
from airflow_provider_sftp_resume.core.resume.state import UnusableState

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_sftp_resume.core.destinations.s3.calls import S3Target
    from airflow_provider_sftp_resume.core.destinations.s3.store import ManifestStore

log = logging.getLogger(__name__)


def drop_abandoned(
    client: Any,
    target: S3Target,
    store: ManifestStore,
    lease_seconds: float,
    clock: Callable[[], float] = time.time,
) -> None:
    """
    Delete the claim on ``target`` (and abort its upload) unless a live try holds it.

    :param client: a boto3 S3 client
    :param target: the object, already found to be a copy of this source
    :param store: its manifest store
    :param lease_seconds: how long an owner's heartbeat keeps its claim
    :param clock: seconds since the epoch (injected for tests)
    """
    try:
        manifest = store.read()
    except UnusableState:
        manifest = None  # unreadable, but there (store.etag is set): nobody can resume from it
    if manifest is not None:
        if is_live(manifest.owner, lease_seconds, clock):
            store.etag = None  # the other try's: leave it alone
            return
        abort_upload(client, target, manifest.upload_id)
    if store.etag:
        log.info("Deleting the resume state an earlier try left for %s", target.describe())
        store.delete()
