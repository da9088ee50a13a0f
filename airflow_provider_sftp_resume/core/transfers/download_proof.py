"""
A download's last checks before publishing: one version only, ``expected_sha256`` and the source's
own checksums.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from airflow_provider_sftp_resume.core.checksums.command import command_for
from airflow_provider_sftp_resume.core.checksums.proof import (
    expected_sha256_error,
    mismatch_error,
    prove_copy,
)
from airflow_provider_sftp_resume.core.checksums.rule import SourceChecksum
from airflow_provider_sftp_resume.core.errors import RemoteChanged, TransferInterrupted
from airflow_provider_sftp_resume.core.resume.verify import recheck_tail

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from airflow_provider_sftp_resume.core.checksums.proof import Verdict
    from airflow_provider_sftp_resume.core.destinations.protocol import Destination
    from airflow_provider_sftp_resume.core.logs import Logger
    from airflow_provider_sftp_resume.core.remote.protocol import RemoteFileSystem, RemoteReader, RemoteStat
    from airflow_provider_sftp_resume.core.resume.state import RemoteFingerprint, ResumeState
    from airflow_provider_sftp_resume.core.transfers.download_types import DownloadOptions


async def checked_and_flushed(unchanged: Awaitable[int], flush: Awaitable[object]) -> int:
    """
    The remote re-check (one round trip) and the local flush (an fsync), overlapped.

    :return: bytes the re-check read
    :raises RemoteChanged: the re-check's verdict, before any error of the flush
    """
    checked, flushed = await asyncio.gather(unchanged, flush, return_exceptions=True)
    if isinstance(checked, BaseException):
        raise checked
    if isinstance(flushed, BaseException):
        raise flushed
    return checked


async def check_unchanged(
    fs: RemoteFileSystem,
    remote_path: str,
    reader: RemoteReader,
    before: RemoteStat,
    fingerprint: RemoteFingerprint,
) -> int:
    """
    Refuse a file whose source changed while it was read: it could mix two versions.

    The stat and the tail re-read are sent together (one round trip); the stat's verdict is
    reported first, as it says more (the new size and mtime).

    :return: bytes read
    :raises RemoteChanged: the size, the mtime or the last bytes differ from the try's start
    """
    after, tail = await asyncio.gather(
        fs.stat(remote_path), recheck_tail(reader, fingerprint), return_exceptions=True
    )
    if isinstance(after, BaseException):
        raise after
    if (after.size, after.mtime) != (before.size, before.mtime):
        raise RemoteChanged(
            f"The remote file changed while it was downloaded (size {before.size} -> {after.size}, "
            f"mtime {before.mtime} -> {after.mtime}); the partial copy was discarded and the "
            "next try starts over."
        )
    if isinstance(tail, BaseException):
        raise tail
    return tail


def check_complete(dest: Destination, state: ResumeState) -> None:
    """Never publish a short or overlong file, whatever went wrong before."""
    size = dest.stored_size()
    if not state.complete or size != state.remote.size:
        raise TransferInterrupted(
            f"The transfer ended with {state.durable_bytes} of {state.remote.size} bytes written "
            f"and a .part of {size} bytes; the next try resumes from the last checkpoint.",
            offset=state.durable_bytes,
        )


class CopyChecks:
    """
    The checksums a download's copy must match.

    :param fs: the try's session (a checksum file is read, the server asked, on it)
    :param remote_path: the file on the server
    :param options: the knobs (``expected_sha256``, ``checksums``, ``stall_timeout``)
    :param log: where the story of the try is told
    :raises SourceChecksumUnavailable: the rule cannot work for this file, whatever is transferred
    """

    def __init__(self, fs: RemoteFileSystem, remote_path: str, options: DownloadOptions, log: Logger) -> None:
        self.fs = fs
        self.remote_path = remote_path
        self.options = options
        self.log = log
        self.preflight()  # before anything is written

    def preflight(self) -> None:
        """Refuse at once what cannot work whatever is transferred (a path ``sha256sum`` cannot be given)."""
        rule = self.options.checksums
        if rule is not None and rule.server_side is SourceChecksum.COMMAND:
            command_for(self.remote_path)

    async def source(self, remote: RemoteStat, local: str | None, sha256: str) -> Verdict:
        """Compare a copy (``local``, of hex ``sha256``) with the source's own checksums, if asked for."""
        options = self.options
        return await prove_copy(
            self.fs,
            self.remote_path,
            options.checksums,
            size=remote.size,
            stall_timeout=options.stall_timeout,
            local=local,
            sha256=sha256,
            log=self.log,
        )

    async def before_publish(
        self, dest: Destination, remote: RemoteStat, digest: str, *, resumed: bool
    ) -> str | None:
        """
        Check the complete copy in ``dest``; return what proved it against the source (``None``: nothing).

        On a mismatch the copy is discarded (never the published target) and the error raised:
        retriable when bytes were kept from earlier tries, else :class:`~.errors.ChecksumMismatch`.
        """
        error = expected_sha256_error(self.remote_path, digest, self.options.expected_sha256, resumed=resumed)
        verdict = None if error is not None else await self.source(remote, dest.worker_path, digest)
        if verdict is not None and verdict.mismatch is not None:
            subject = f"The complete copy of {self.remote_path}"
            error = mismatch_error(subject, verdict.mismatch, resumed=resumed)
        if error is not None:
            await dest.discard()
            raise error
        return verdict.proof if verdict else None
