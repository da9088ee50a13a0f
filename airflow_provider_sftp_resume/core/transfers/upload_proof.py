"""
An upload's last checks before the rename: the local checksum file, and the server's own digest.

Both run while the bytes are still in the remote temporary file, so a mismatch never needs a
rollback: the temporary file and the resume state are removed, and ``remote_path`` (the old file,
if any) is never touched. A server asked with ``check-file`` or ``sha256sum`` hashes the temporary
file it holds, which is the strongest proof that what landed there is what was sent.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from airflow_provider_sftp_resume.core.checksums.proof import compare, local_checksum_file, server_digest
from airflow_provider_sftp_resume.core.errors import ChecksumMismatch, IntegrityError, TransferError

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.remote.protocol import RemoteFileSystem
    from airflow_provider_sftp_resume.core.resume.localfiles import LocalPaths
    from airflow_provider_sftp_resume.core.transfers.story import TryStory
    from airflow_provider_sftp_resume.core.transfers.upload_types import UploadOptions, UploadResult


@dataclass(frozen=True)
class UploadProofs:
    """
    What proved an upload, for the result.

    :param source_checksum: the local checksum file that proved the file sent (``sha256 via checksum file``)
    :param remote_checksum: the server's digest of what it received (``sha256 via check-file``)
    """

    source_checksum: str | None = None
    remote_checksum: str | None = None

    def apply(self, result: UploadResult) -> UploadResult:
        """``result`` saying what proved it."""
        return replace(result, source_checksum=self.source_checksum, remote_checksum=self.remote_checksum)


async def _discard(fs: RemoteFileSystem, temp_path: str, paths: LocalPaths) -> None:
    paths.remove_state()
    with contextlib.suppress(TransferError):
        await fs.remove(temp_path)


def _server_mismatch(temp_path: str, local: str, mismatch: str, *, resumed: bool) -> TransferError:
    said = f"The local file {local} has {mismatch} for the uploaded copy {temp_path}"
    if resumed:
        return IntegrityError(
            f"{said}. Part of it was kept from an earlier try, so the copy was removed; the next try "
            "uploads it afresh. The existing remote file, if any, was not touched."
        )
    return ChecksumMismatch(
        f"{said}: the server holds other bytes than were sent, even after a fresh upload. The copy was "
        "removed and the existing remote file, if any, not touched; check the server (disk, quota, a "
        "process rewriting uploads)."
    )


class UploadInHand(Protocol):
    """What :func:`prove_upload` needs of the upload try (:class:`~.upload_steps.UploadTry`)."""

    fs: RemoteFileSystem
    options: UploadOptions
    paths: LocalPaths
    temp_path: str
    story: TryStory


async def prove_upload(upload: UploadInHand, sha256: str, *, resumed: bool) -> UploadProofs:
    """
    Check the file sent (hex ``sha256``): its checksum file, the server's digest of the temporary file.

    :raises ChecksumMismatch: the local file differs from its checksum file, or a fresh upload from the
        server's digest (the temporary file and resume state are removed first)
    :raises IntegrityError: a resumed upload differs from the server's digest (the next try starts over)
    """
    fs, rule, paths, temp_path = upload.fs, upload.options.checksums, upload.paths, upload.temp_path
    stall_timeout, log = upload.options.stall_timeout, upload.story.log
    if rule is None:
        return UploadProofs()
    local = str(paths.target)
    source = None
    if rule.checksum_file is not None:
        found = await local_checksum_file(rule.checksum_file, paths.target.name, rule, log)
        verdict = await compare([found] if found else [], local, sha256)
        if verdict.mismatch is not None:
            await _discard(fs, temp_path, paths)
            raise ChecksumMismatch(
                f"The local file {local} has {verdict.mismatch}: it is not the file its checksum file "
                f"vouches for, so it was not put in place (the temporary file {temp_path} was removed). "
                "Check the file and its checksum file."
            )
        source = verdict.proof
    remote = None
    if rule.server_side is not None:
        size = paths.target.stat().st_size
        digest = await server_digest(
            fs, temp_path, rule.server_side, size=size, stall_timeout=stall_timeout, log=log
        )
        verdict = await compare([digest] if digest else [], local, sha256)
        if digest is not None and verdict.mismatch is not None:
            await _discard(fs, temp_path, paths)
            raise _server_mismatch(temp_path, local, verdict.mismatch, resumed=resumed)
        remote = verdict.proof
    return UploadProofs(source, remote)
