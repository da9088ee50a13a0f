"""
SFTP straight into S3: the download engine's try (:class:`~.download_steps.DownloadTry`) into the S3
destination, resumable from any worker because the state lives in the bucket.

One call of :func:`copy_to_s3` is one try. It either publishes the complete object (checked, from
one unchanged version of the source) or raises a :class:`~.errors.TransferError`, leaving the
upload and its manifest for the next try on any worker. No local file is written: memory is bounded
by the parts in flight times the part size. The post-action (delete or move the source) follows a
published or skipped copy; a retry that finds the source gone because an earlier try's post-action
was done but its reply lost succeeds on the record that try left in the bucket (:mod:`.s3_after`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from airflow_provider_sftp_resume.core.destinations.s3.destination import S3Destination
from airflow_provider_sftp_resume.core.destinations.s3.post_record import PostActionRecord
from airflow_provider_sftp_resume.core.destinations.s3.settings import UploadSettings
from airflow_provider_sftp_resume.core.errors import RemoteFileNotFound
from airflow_provider_sftp_resume.core.logs import Logger, engine_logger
from airflow_provider_sftp_resume.core.remote.protocol import close_quietly
from airflow_provider_sftp_resume.core.resume.verify import take_fingerprint
from airflow_provider_sftp_resume.core.transfers.download import _stat_and_open
from airflow_provider_sftp_resume.core.transfers.download_steps import DownloadTry
from airflow_provider_sftp_resume.core.transfers.download_types import DownloadOptions
from airflow_provider_sftp_resume.core.transfers.s3_after import apply_post_action, recover_lost_reply
from airflow_provider_sftp_resume.core.transfers.story import TryStory

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.destinations.s3.calls import S3Target
    from airflow_provider_sftp_resume.core.remote.protocol import RemoteReader, RemoteStat, SessionFactory
    from airflow_provider_sftp_resume.core.transfers.download_types import DownloadResult
    from airflow_provider_sftp_resume.core.transfers.postaction import RemotePostAction

__all__ = ["S3CopyResult", "copy_to_s3"]

log = engine_logger(__name__)


@dataclass(frozen=True)
class S3CopyResult:
    """
    What one try of an SFTP to S3 copy did; :meth:`to_dict` is the operator's XCom value.

    :param bucket: the target bucket
    :param key: the target key
    :param remote_path: the source file on the SFTP server
    :param size: bytes in the object
    :param sha256: hex sha256 of the whole object
    :param resumed_from: bytes kept in S3 from earlier tries (0 for a fresh start)
    :param bytes_transferred: bytes of file content read from the SFTP server in this try
    :param verification_bytes: bytes read from the server to verify kept parts and the result
    :param parts: parts the object was assembled from (1 for a single ``PutObject``)
    :param part_size: bytes per part
    :param seconds: wall time of this try
    :param checks_passed: checks that proved the kept parts (empty for a fresh start)
    :param restart_reason: why kept parts were dropped, or ``None``
    :param skipped: the object already was this source (``skip_unchanged``); nothing was copied
    :param etag: the object's ETag
    :param version_id: its version, when the bucket is versioned
    :param post_action: what was done with the source afterwards (``deleted``, ``moved to ...``)
    """

    bucket: str
    key: str
    remote_path: str
    size: int
    sha256: str
    resumed_from: int
    bytes_transferred: int
    verification_bytes: int
    parts: int
    part_size: int
    seconds: float
    checks_passed: tuple[str, ...] = ()
    restart_reason: str | None = None
    skipped: bool = False
    etag: str = ""
    version_id: str | None = None
    post_action: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        result = asdict(self)
        result["checks_passed"] = list(self.checks_passed)
        return result


async def copy_to_s3(
    open_session: SessionFactory,
    remote_path: str,
    s3_client: Any,
    target: S3Target,
    options: DownloadOptions | None = None,
    *,
    settings: UploadSettings | None = None,
    post_action: RemotePostAction | None = None,
    logger: Logger | None = None,
) -> S3CopyResult:
    """
    Copy ``remote_path`` into the S3 object ``target``, resuming the upload of an earlier try.

    :param open_session: opens a session with the SFTP server
    :param remote_path: file on the server
    :param s3_client: a boto3 S3 client (see :func:`~..destinations.s3.settings.client_config_kwargs`)
    :param target: bucket, key and the prefix of the resume state
    :param options: the download knobs (verify, timeouts, ``skip_unchanged``, ``expected_sha256``);
        ``max_connections``, ``preserve_mtime`` and ``create_intermediate_dirs`` do not apply
    :param settings: the S3 knobs (part size, per-part checksum, parts in flight)
    :param post_action: delete or move the source once the object is published and checked
    :param logger: where the story of the try is told (the task log in Airflow)
    :raises TransferError: see :mod:`.errors` and :mod:`..destinations.s3.errors`
    """
    options = options or DownloadOptions()
    story = TryStory(logger or log, time.monotonic(), options.stall_timeout, "copy")
    try:
        result, destination = await _copy(
            open_session,
            remote_path,
            s3_client,
            target=target,
            options=options,
            settings=settings,
            story=story,
        )
    except RemoteFileNotFound:
        if post_action is None:
            raise
        recovered = await _recover(
            open_session, post_action, remote_path, s3_client, target=target, story=story
        )
        if recovered is None:
            raise
        return recovered
    copied = _result(result, destination, target)
    if post_action is None:
        return copied
    # Also after a skip: the object is this source, and an earlier try may have died before its
    # post-action (or left the record of one that never reached the server).
    record = _record(copied, post_action, result.remote_mtime or 0)
    async with open_session() as remote_fs:
        done = await apply_post_action(remote_fs, post_action, s3_client, target, record)
    story.log.info("%s: %s", remote_path, done)
    return replace(copied, post_action=done)


async def _copy(
    open_session: SessionFactory,
    remote_path: str,
    s3_client: Any,
    *,
    target: S3Target,
    options: DownloadOptions,
    settings: UploadSettings | None,
    story: TryStory,
) -> tuple[DownloadResult, S3Destination]:
    """One try of the copy itself: stat and open the source, then run the engine into S3."""
    async with open_session() as remote_fs:
        try_ = DownloadTry(
            remote_fs, remote_path, target.describe(), options, story, open_session=open_session
        )
        remote, reader = await _stat_and_open(remote_fs, remote_path, story)
        try:
            return await _run(try_, reader, remote, s3_client, target=target, settings=settings)
        finally:
            await close_quietly(reader)


async def _run(
    try_: DownloadTry,
    reader: RemoteReader,
    remote: RemoteStat,
    s3_client: Any,
    *,
    target: S3Target,
    settings: UploadSettings | None,
) -> tuple[DownloadResult, S3Destination]:
    """Fingerprint the source, then run the try into the S3 destination."""
    fingerprint, read = await try_.story.requests.bounded(
        take_fingerprint(
            reader, try_.remote_path, remote, try_.options.verify, server=try_.open_session.identity
        ),
        "fingerprinting the remote file",
    )
    try_.story.verification_bytes += read
    destination = S3Destination(
        s3_client,
        target,
        fingerprint,
        settings or UploadSettings(),
        try_.story.log,
        checkpoint_interval=try_.options.checkpoint_interval,
    )
    try:
        return await try_.run(reader, remote, destination), destination
    finally:
        await destination.close()


def _result(result: DownloadResult, destination: S3Destination, target: S3Target) -> S3CopyResult:
    published, plan = destination.published, destination.upload.plan
    return S3CopyResult(
        bucket=target.bucket,
        key=target.key,
        remote_path=result.remote_path,
        size=result.size,
        sha256=result.sha256,
        resumed_from=result.resumed_from,
        bytes_transferred=result.bytes_transferred,
        verification_bytes=result.verification_bytes,
        parts=published.parts if published else plan.count,
        part_size=plan.part_size,
        seconds=result.seconds,
        checks_passed=result.checks_passed,
        restart_reason=result.restart_reason,
        skipped=result.skipped,
        etag=(published.etag if published else destination.existing_etag).strip('"'),
        version_id=published.version_id if published else destination.existing_version,
    )


async def _recover(
    open_session: SessionFactory,
    post_action: RemotePostAction,
    remote_path: str,
    s3_client: Any,
    *,
    target: S3Target,
    story: TryStory,
) -> S3CopyResult | None:
    """The source is gone: the result of an earlier try whose post-action was done, or ``None``."""
    found = await recover_lost_reply(open_session, post_action, remote_path, s3_client, target)
    if found is None:
        return None
    done, record = found
    story.log.info(
        "%s: %s by an earlier try whose reply was lost; %s is complete (sha256 %s)",
        remote_path,
        done,
        target.describe(),
        record.sha256,
    )
    seconds = story.seconds()
    return S3CopyResult(
        bucket=target.bucket,
        key=target.key,
        remote_path=record.remote_path,
        size=record.size,
        sha256=record.sha256,
        resumed_from=record.size,
        bytes_transferred=0,
        verification_bytes=0,
        parts=record.parts,
        part_size=record.part_size,
        seconds=seconds,
        skipped=True,
        etag=record.etag,
        version_id=record.version_id,
        post_action=done,
    )


def _record(copied: S3CopyResult, post_action: RemotePostAction, mtime: int) -> PostActionRecord:
    """What the post-action record in the bucket says about the source and the object."""
    return PostActionRecord(
        action=post_action.action.value,
        remote_path=copied.remote_path,
        destination=None,
        size=copied.size,
        mtime=mtime,
        sha256=copied.sha256,
        etag=copied.etag,
        version_id=copied.version_id,
        parts=copied.parts,
        part_size=copied.part_size,
    )
