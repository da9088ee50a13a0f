"""
The resumable upload: plan (resume or restart), send, prove, rename into place on the server.

One call of :func:`upload_file` is one try. Bytes go to ``<remote_path><temp_suffix>`` on the
server; the target name appears only when the temporary file is complete and checked, by one rename
(``posix-rename@openssh.com`` where the server has it). A later try resumes at the recorded offset
after re-reading kept bytes from the server, so it never duplicates or skips a byte. Checkpoints go
through the same :class:`~.resume.checkpoint.Checkpointer` as a download's; here *durable* means
``fsync@openssh.com`` of the remote file (writes stay in flight meanwhile), then the local sidecar.
Where the server has no fsync, the next try re-reads sampled blocks across the whole kept prefix,
not only its end.
"""

from __future__ import annotations

import os
import stat
import time
from typing import TYPE_CHECKING

from airflow_provider_sftp_resume.core.errors import LocalPathError
from airflow_provider_sftp_resume.core.logs import Logger, engine_logger
from airflow_provider_sftp_resume.core.resume.localfiles import LocalPaths
from airflow_provider_sftp_resume.core.resume.locking import TransferLock
from airflow_provider_sftp_resume.core.resume.upload_state import LocalIdentity
from airflow_provider_sftp_resume.core.transfers.story import TryStory
from airflow_provider_sftp_resume.core.transfers.upload_remote import (
    SAMPLE_BLOCKS,
    SAMPLE_LENGTH,
    sample_ranges,
)
from airflow_provider_sftp_resume.core.transfers.upload_steps import UploadTry
from airflow_provider_sftp_resume.core.transfers.upload_types import (
    DEFAULT_TEMP_SUFFIX,
    UploadOptions,
    UploadResult,
)

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.remote.protocol import SessionFactory

__all__ = [
    "DEFAULT_TEMP_SUFFIX",
    "SAMPLE_BLOCKS",
    "SAMPLE_LENGTH",
    "UploadOptions",
    "UploadResult",
    "sample_ranges",
    "upload_file",
]

log = engine_logger(__name__)


async def upload_file(
    open_session: SessionFactory,
    local_path: str | os.PathLike[str],
    remote_path: str,
    options: UploadOptions | None = None,
    *,
    server: str | None = None,
    logger: Logger | None = None,
) -> UploadResult:
    """
    Upload ``local_path`` to ``remote_path``, resuming from an earlier try where that is provably safe.

    :param open_session: opens a session with the remote file system
    :param local_path: the file to send
    :param remote_path: where it goes on the server
    :param options: behaviour knobs; defaults when ``None``
    :param server: the server's identity in the resume state, so that state for one server is never
        used for another; ``None`` takes the session factory's ``identity`` (give it only when one
        server is reached under several names, e.g. through a proxy)
    :param logger: where the story of the try is told (the task log in Airflow)
    :raises TransferError: see :mod:`.errors` for which are retriable
    """
    started = time.monotonic()
    options = options or UploadOptions()
    server = open_session.identity if server is None else server
    paths = LocalPaths.for_upload(local_path, f"{server}{remote_path}", options.state_dir)
    try:
        fd = os.open(paths.target, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise LocalPathError(
            f"Cannot read the local file {paths.target}: {exc.strerror}. Check local_path and the "
            "Airflow worker's permissions."
        ) from None
    try:
        source_stat = os.fstat(fd)
        _check_local(paths, source_stat)
        with TransferLock(paths.lock, paths.target):
            async with open_session() as remote_fs:
                upload = UploadTry(
                    remote_fs,
                    fd,
                    identity=LocalIdentity.of(source_stat),
                    remote_path=remote_path,
                    paths=paths,
                    options=options,
                    server=server,
                    story=TryStory(logger or log, started, options.stall_timeout, "upload"),
                )
                return await upload.run()
    finally:
        os.close(fd)


def _check_local(paths: LocalPaths, source: os.stat_result) -> None:
    if not stat.S_ISREG(source.st_mode):
        raise LocalPathError(f"local_path {paths.target} is not a regular file; give the path of a file.")
    if not paths.sidecar.parent.is_dir() or not os.access(paths.sidecar.parent, os.W_OK | os.X_OK):
        raise LocalPathError(
            f"Cannot keep upload resume state in {paths.sidecar.parent} (not a writable directory). "
            "Give the operator a writable state_dir."
        )
