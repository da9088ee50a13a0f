"""
The server side of an upload: the remote directory, the remote temporary file, proving kept bytes.

Kept bytes are proven with :func:`~.resume.verify.first_mismatch`, the same comparison the download
uses: ranges re-read from the server against the local source's bytes.
"""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING

from airflow_provider_sftp_resume.core.errors import RemoteFileNotFound, RemotePathError, TransferError
from airflow_provider_sftp_resume.core.remote.protocol import close_quietly
from airflow_provider_sftp_resume.core.resume.verify import (
    OVERLAP_LENGTH,
    Range,
    first_mismatch,
    local_digests,
)

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.options import RequestTimer
    from airflow_provider_sftp_resume.core.remote.protocol import RemoteFileSystem, RemoteStat, RemoteWriter
    from airflow_provider_sftp_resume.core.resume.upload_state import UploadState

#: Without a server fsync, a resumed upload compares this many blocks spread evenly across the kept
#: prefix (the last one ends at the resume offset), so any damaged stretch longer than about 1/31
#: of the kept bytes is found; a kept prefix of at most ``SAMPLE_BLOCKS * SAMPLE_LENGTH`` is re-read
#: whole.
SAMPLE_BLOCKS = 32
SAMPLE_LENGTH = 64 * 1024  # 64 KiB: at most 2 MiB read back


def sample_ranges(kept: int) -> list[tuple[int, int]]:
    """
    Blocks ``(start, length)`` that prove a kept prefix of ``kept`` bytes without a server fsync.

    :data:`SAMPLE_BLOCKS` blocks of :data:`SAMPLE_LENGTH` spread evenly over ``[0, kept)``, the first
    at 0 and the last ending at ``kept``; the whole prefix (in blocks, read at once) when it is no
    longer than those blocks.
    """
    if kept <= SAMPLE_BLOCKS * SAMPLE_LENGTH:
        return [(start, min(SAMPLE_LENGTH, kept - start)) for start in range(0, kept, SAMPLE_LENGTH)]
    step = (kept - SAMPLE_LENGTH) / (SAMPLE_BLOCKS - 1)
    return [(round(index * step), SAMPLE_LENGTH) for index in range(SAMPLE_BLOCKS)]


def kept_proof(state: UploadState) -> str:
    """How the kept bytes of ``state`` were proven, for the log."""
    kept = state.acknowledged
    if state.synced:
        return f"the server had fsynced them and the last {min(OVERLAP_LENGTH, kept)} kept bytes match"
    sampled = len(sample_ranges(kept))
    return f"the server had not fsynced them, so {sampled} sampled blocks were re-read and match"


class RemoteSide:
    """
    The remote file system as one upload uses it.

    :param fs: the try's session
    :param requests: bounds each request by the stall timeout
    :param source_fd: the local file being sent (what kept bytes must equal)
    """

    def __init__(self, fs: RemoteFileSystem, requests: RequestTimer, source_fd: int) -> None:
        self.fs = fs
        self.requests = requests
        self.source_fd = source_fd
        self.verification_bytes = 0

    async def stat_or_none(self, path: str, what: str) -> RemoteStat | None:
        try:
            return await self.requests.timed(self.fs.stat(path), what)
        except RemoteFileNotFound:
            return None

    async def check_directory(self, remote_path: str, *, create: bool) -> RemoteStat | None:
        """Check the remote parent directory (creating it if asked); return the target's attributes."""
        parent = posixpath.dirname(remote_path) or "."
        directory = await self.stat_or_none(parent, "reading the remote directory")
        if directory is None:
            if not create:
                raise RemotePathError(
                    f"The remote directory {parent} does not exist. Create it, or set "
                    "create_intermediate_dirs=True."
                )
            await self.requests.bounded(self.fs.make_dirs(parent), "creating the remote directory")
        elif not directory.is_dir:
            raise RemotePathError(f"{parent} on the server is not a directory; fix remote_path.")
        target = await self.stat_or_none(remote_path, "reading the remote file's attributes")
        if target is not None and target.is_dir:
            raise RemotePathError(
                f"Remote path {remote_path} is a directory. Give the full path of the file to write."
            )
        return target

    async def first_difference(self, remote: str, ranges: list[Range]) -> Range | None:
        """Re-read ``ranges`` (``(start, end)``) of ``remote``; return the first that differs from ours."""
        reader = await self.requests.bounded(self.fs.open_reader(remote), f"opening {remote}")
        try:
            differs, read = await self.requests.bounded(
                first_mismatch(reader, ranges, local_digests(self.source_fd)), f"reading back {remote}"
            )
        finally:
            await close_quietly(reader)
        self.verification_bytes += read
        return differs

    async def open_temp(self, temp_path: str, *, truncate: bool) -> tuple[RemoteWriter, bool]:
        """
        Open the remote temporary file, to continue (``truncate=False``) or afresh.

        ProFTPD's built-in ``AllowOverwrite off`` refuses to open an existing file for writing at all
        (truncating or continuing; with its ``AllowStoreRestart off`` appending too), so the file an
        interrupted try left behind can never be written again. Then it is removed and the upload
        starts over: the file has this package's temporary name, and removing it loses only bytes
        the restart sends again. Appending (which ``AllowStoreRestart on`` would allow) is not used:
        SFTP's APPEND flag makes servers ignore write offsets, so pipelined writes would land right
        only as long as every one of them succeeds.

        :returns: the open file, and whether the stale file had to be removed (kept bytes are gone)
        """
        what = "opening the remote temporary file"
        try:
            return await self.requests.timed(self.fs.open_writer(temp_path, truncate=truncate), what), False
        except RemotePathError as refused:
            temp = await self.stat_or_none(temp_path, "reading the remote temporary file")
            if temp is None or not temp.is_regular:
                raise  # nothing of ours in the way: a real permission problem
            try:
                await self.requests.bounded(
                    self.fs.remove(temp_path), "removing the stale remote temporary file"
                )
                writer = await self.requests.timed(self.fs.open_writer(temp_path, truncate=True), what)
            except TransferError:
                raise refused from None
        return writer, True
