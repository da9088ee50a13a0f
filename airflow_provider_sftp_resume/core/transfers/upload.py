"""
The resumable upload: plan (resume or restart), send, prove, rename into place on the server.

One call of :func:`upload_file` is one try. Bytes go to ``<remote_path><temp_suffix>`` on the
server; the target name appears only when the temporary file is complete and checked, by one rename
(``posix-rename@openssh.com`` where the server has it). A later try resumes at the recorded offset
after re-reading kept bytes from the server, so it never duplicates or skips a byte. Where the server
has ``fsync@openssh.com`` each checkpoint asks for an fsync of the remote file first (off the data
path: writes stay in flight meanwhile), so the recorded offset is durable on the server; where it
has not, the next try re-reads sampled blocks across the whole kept prefix, not only its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import stat
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_sftp_resume.core.errors import (
    IntegrityError,
    LocalPathError,
    RemoteFileNotFound,
    RemotePathError,
    SourceChanged,
    TransferError,
    TransferInterrupted,
)
from airflow_provider_sftp_resume.core.io.pipeline import pipelined_write
from airflow_provider_sftp_resume.core.io.tuning import requests_in_flight
from airflow_provider_sftp_resume.core.logs import Logger, engine_logger
from airflow_provider_sftp_resume.core.options import RequestTimer, TransferOptions
from airflow_provider_sftp_resume.core.progress import ProgressReporter, format_bytes
from airflow_provider_sftp_resume.core.remote.protocol import close_quietly
from airflow_provider_sftp_resume.core.resume.hashing import TrailingHasher
from airflow_provider_sftp_resume.core.resume.localfiles import (
    read_sidecar,
    remove_quietly,
    sha256_of_file,
    write_sidecar,
)
from airflow_provider_sftp_resume.core.resume.locking import TransferLock
from airflow_provider_sftp_resume.core.resume.state import UnusableState
from airflow_provider_sftp_resume.core.resume.upload_state import LocalIdentity, UploadPaths, UploadState
from airflow_provider_sftp_resume.core.resume.verify import OVERLAP_LENGTH, TAIL_LENGTH, read_exact

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.remote.protocol import (
        RemoteFileSystem,
        RemoteReader,
        RemoteStat,
        RemoteWriter,
        SessionFactory,
    )


log = engine_logger(__name__)

DEFAULT_TEMP_SUFFIX = ".part"
#: Without a server fsync, a resumed upload compares this many blocks spread evenly across the kept
#: prefix (the last one ends at the resume offset), so any damaged stretch longer than about 1/31
#: of the kept bytes is found; a kept prefix of at most ``SAMPLE_BLOCKS * SAMPLE_LENGTH`` is re-read
#: whole.
SAMPLE_BLOCKS = 32
SAMPLE_LENGTH = 64 * 1024  # 64 KiB: at most 2 MiB read back


@dataclass(frozen=True)
class UploadOptions(TransferOptions):
    """
    How one upload behaves: the shared knobs of :class:`~.options.TransferOptions` (for an upload,
    ``create_intermediate_dirs`` creates remote directories, ``preserve_mtime`` is tried and a server
    that refuses only costs a warning, ``skip_unchanged`` compares the remote file), and these.

    :param temp_suffix: appended to the remote path for the temporary file (``.part``)
    :param state_dir: local directory for the resume sidecar; the source file's directory if ``None``
    """

    temp_suffix: str = DEFAULT_TEMP_SUFFIX
    state_dir: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        suffix = self.temp_suffix
        if not isinstance(suffix, str) or not suffix or "/" in suffix or suffix in (".", ".."):
            raise ValueError(
                f"temp_suffix must be a non-empty file name suffix without '/', got {suffix!r} "
                f"(for example {DEFAULT_TEMP_SUFFIX!r})"
            )


@dataclass(frozen=True)
class UploadResult:
    """
    What one upload try did; :meth:`to_dict` is the operator's XCom value.

    :param local_path: the local file sent
    :param remote_path: the remote file written
    :param size: bytes in the remote file
    :param sha256: hex sha256 of what was sent (the whole local file)
    :param remote_size: size of the remote file after the rename, as the server reports it
    :param resumed_from: bytes kept on the server from earlier tries
    :param bytes_transferred: bytes of file content sent in this try
    :param verification_bytes: bytes read back from the server to prove the copy
    :param seconds: wall time of this try
    :param rename: how the file was put in place (``posix-rename``, ``rename``, ``rename-aside``)
    :param mtime_preserved: whether the server accepted the modification time (``None``: not asked)
    :param restart_reason: why kept bytes were discarded, or ``None``
    :param skipped: the remote file already matched; nothing was sent
    :param checkpoints: sidecar updates during this try
    """

    local_path: str
    remote_path: str
    size: int
    sha256: str
    remote_size: int
    resumed_from: int
    bytes_transferred: int
    verification_bytes: int
    seconds: float
    rename: str | None = None
    mtime_preserved: bool | None = None
    restart_reason: str | None = None
    skipped: bool = False
    checkpoints: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return asdict(self)


async def upload_file(
    open_session: SessionFactory,
    local_path: str | os.PathLike[str],
    remote_path: str,
    options: UploadOptions | None = None,
    *,
    server: str = "",
    logger: Logger | None = None,
) -> UploadResult:
    """
    Upload ``local_path`` to ``remote_path``, resuming from an earlier try where that is provably safe.

    :param open_session: opens a session with the remote file system
    :param local_path: the file to send
    :param remote_path: where it goes on the server
    :param options: behaviour knobs; defaults when ``None``
    :param server: ``user@host:port`` of the server, so that state for one server is never used
        for another
    :param logger: where the story of the try is told (the task log in Airflow)
    :raises TransferError: see :mod:`.errors` for which are retriable
    """
    started = time.monotonic()
    options = options or UploadOptions()
    paths = UploadPaths.for_upload(local_path, f"{server}{remote_path}", options.state_dir)
    try:
        fd = os.open(paths.source, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise LocalPathError(
            f"Cannot read the local file {paths.source}: {exc.strerror}. Check local_path and the "
            "Airflow worker's permissions."
        ) from None
    try:
        source_stat = os.fstat(fd)
        if not stat.S_ISREG(source_stat.st_mode):
            raise LocalPathError(f"local_path {paths.source} is not a regular file; give the path of a file.")
        if not paths.sidecar.parent.is_dir() or not os.access(paths.sidecar.parent, os.W_OK | os.X_OK):
            raise LocalPathError(
                f"Cannot keep upload resume state in {paths.sidecar.parent} (not a writable directory). "
                "Give the operator a writable state_dir."
            )
        with TransferLock(paths.lock, paths.source):
            async with open_session() as remote_fs:
                upload = _UploadTry(
                    remote_fs,
                    fd,
                    identity=LocalIdentity.of(source_stat),
                    remote_path=remote_path,
                    paths=paths,
                    options=options,
                    server=server,
                    logger=logger or log,
                    started=started,
                )
                return await upload.run()
    finally:
        os.close(fd)


class _UploadTry:
    """The state of one upload try; :meth:`run` is the whole story."""

    def __init__(
        self,
        remote_fs: RemoteFileSystem,
        fd: int,
        *,
        identity: LocalIdentity,
        remote_path: str,
        paths: UploadPaths,
        options: UploadOptions,
        server: str,
        logger: Logger,
        started: float,
    ) -> None:
        self.fs = remote_fs
        self.fd = fd
        self.identity = identity
        self.remote_path = remote_path
        self.temp_path = remote_path + options.temp_suffix
        self.paths = paths
        self.options = options
        self.server = server
        self.log = logger
        self.started = started
        self.transferred = 0
        self.verification_bytes = 0
        self.checkpoints = 0
        self.requests = RequestTimer(options.stall_timeout)
        self.saved = UploadState(self.server, self.temp_path, identity, 0)  # what the sidecar says
        self.syncs = False  # the server confirms fsync@openssh.com on the remote file

    def _resolved_source(self) -> Path:
        """The source with links resolved (the hasher never follows a link itself)."""
        return Path(os.path.realpath(self.paths.source))

    async def _stat_or_none(self, path: str, what: str) -> RemoteStat | None:
        try:
            return await self.requests.timed(self.fs.stat(path), what)
        except RemoteFileNotFound:
            return None

    async def run(self) -> UploadResult:
        size = self.identity.size
        target = await self._check_remote_directory()
        self.log.info(
            "Connected. Uploading %s (%d bytes, %s) to %s",
            self.paths.source,
            size,
            format_bytes(size),
            self.remote_path,
        )
        if target is not None and self.options.skip_unchanged and await self._target_matches(target):
            return await self._skipped()
        state, reason = await self._plan()
        writer, state, reason = await self._open_temp(state, reason)
        resumed_from = state.acknowledged
        if reason:
            self.log.warning("Restarting the upload from byte 0: %s", reason)
        if resumed_from:
            self.log.info(
                "Resuming at %d of %d bytes (%.1f%%); %s",
                resumed_from,
                size,
                100.0 * resumed_from / size,
                (
                    f"the server had fsynced them and the last {min(OVERLAP_LENGTH, resumed_from)} "
                    "kept bytes were re-read and match"
                    if state.synced
                    else f"the server had not fsynced them, so {len(sample_ranges(resumed_from))} "
                    "blocks across the kept bytes were re-read and match"
                ),
            )
        else:
            self.log.info("Starting upload of %d bytes into %s", size, self.temp_path)
        try:
            hasher = TrailingHasher(self._resolved_source())
        except BaseException:
            await close_quietly(writer)
            raise
        try:
            hasher.advance(size)  # the whole file is there: hash it alongside the upload
            await self._send(writer, state)
            await self._prove_complete()
            digest = hasher.finish(size)
        except BaseException:
            hasher.abandon()
            raise
        mtime_preserved = None
        if self.options.preserve_mtime:
            mtime_preserved = await self.requests.bounded(
                self.fs.set_mtime(self.temp_path, self.identity.mtime), "setting mtime"
            )
            if not mtime_preserved:
                self.log.warning(
                    "The server refused to set the modification time of %s (common on object-storage "
                    "backed SFTP); the upload goes on without it.",
                    self.temp_path,
                )
        rename = await self.requests.bounded(
            self.fs.replace(self.temp_path, self.remote_path), "renaming into place"
        )
        remote_size = (
            await self.requests.bounded(self.fs.stat(self.remote_path), "checking the result")
        ).size
        if remote_size != size:
            raise IntegrityError(
                f"After the rename the server reports {remote_size} bytes for {self.remote_path}, "
                f"expected {size}; another writer may have replaced it."
            )
        remove_quietly(self.paths.sidecar)
        self.log.info(
            "Done: %s (%d bytes, sha256 %s) in %.1f s via %s; %d bytes sent in this try",
            self.remote_path,
            size,
            digest,
            time.monotonic() - self.started,
            rename,
            self.transferred,
        )
        return self._result(
            digest,
            remote_size,
            resumed_from=resumed_from,
            rename=rename,
            mtime_preserved=mtime_preserved,
            restart_reason=reason,
        )

    # -- before sending ---------------------------------------------------------------------------

    async def _check_remote_directory(self) -> RemoteStat | None:
        """Check the remote parent directory (creating it if asked); return the target's attributes."""
        parent = posixpath.dirname(self.remote_path) or "."
        directory = await self._stat_or_none(parent, "reading the remote directory")
        if directory is None:
            if not self.options.create_intermediate_dirs:
                raise RemotePathError(
                    f"The remote directory {parent} does not exist. Create it, or set "
                    "create_intermediate_dirs=True."
                )
            await self.requests.bounded(self.fs.make_dirs(parent), "creating the remote directory")
        elif not directory.is_dir:
            raise RemotePathError(f"{parent} on the server is not a directory; fix remote_path.")
        target = await self._stat_or_none(self.remote_path, "reading the remote file's attributes")
        if target is not None and target.is_dir:
            raise RemotePathError(
                f"Remote path {self.remote_path} is a directory. Give the full path of the file to write."
            )
        return target

    async def _target_matches(self, target: RemoteStat) -> bool:
        size = self.identity.size
        if target.size != size or target.mtime != self.identity.mtime:
            return False
        return await self._same_tail(self.remote_path)

    async def _same_tail(self, remote: str) -> bool:
        """Compare the last 64 KiB of ``remote`` with the local file's."""
        length = min(TAIL_LENGTH, self.identity.size)
        start = self.identity.size - length
        return await self._same_bytes(remote, start, length)

    async def _same_bytes(self, remote: str, start: int, length: int) -> bool:
        return await self._first_difference(remote, [(start, length)]) is None

    async def _first_difference(self, remote: str, ranges: list[tuple[int, int]]) -> tuple[int, int] | None:
        """Re-read ``ranges`` (``(start, length)``, all in flight at once); return the first that differs."""
        reader: RemoteReader = await self.requests.bounded(self.fs.open_reader(remote), f"opening {remote}")
        try:
            blocks = await self.requests.bounded(
                asyncio.gather(*(read_exact(reader, start, length) for start, length in ranges)),
                f"reading back {remote}",
            )
        finally:
            await close_quietly(reader)
        for (start, length), remote_bytes in zip(ranges, blocks, strict=True):
            self.verification_bytes += len(remote_bytes)
            if remote_bytes != os.pread(self.fd, length, start):
                return start, start + length
        return None

    async def _skipped(self) -> UploadResult:
        size = self.identity.size
        digest = sha256_of_file(self.paths.source)
        self.log.info(
            "%s already has the same size, mtime and last %d bytes as %s; skipping the upload. sha256 %s",
            self.remote_path,
            min(TAIL_LENGTH, size),
            self.paths.source,
            digest,
        )
        return self._result(digest, size, resumed_from=size, skipped=True)

    async def _plan(self) -> tuple[UploadState, str | None]:
        """Return the state to continue from and why kept bytes were dropped (``None``: kept or none)."""
        fresh = UploadState(self.server, self.temp_path, self.identity, 0)
        reason: str | None = None
        try:
            state: UploadState | None = UploadState.from_json(read_sidecar(self.paths.sidecar))
        except FileNotFoundError:
            state = None
        except UnusableState as exc:
            state, reason = None, f"the upload resume state is unusable ({exc})"
        if state is not None:
            if state.local != self.identity:
                reason, state = "the local file changed since the earlier try", None
            elif (state.server, state.remote_temp) != (self.server, self.temp_path):
                reason, state = "the resume state belongs to another destination", None
        kept = 0
        if state is not None and state.acknowledged > 0:
            temp = await self._stat_or_none(self.temp_path, "reading the remote temporary file")
            if temp is None:
                reason = f"the remote temporary file {self.temp_path} is gone"
            else:
                kept = min(temp.size, state.acknowledged)
                # An fsynced prefix is on the server's disk: its last bytes show it is still ours.
                # Without fsync a server crash can leave holes anywhere in it: sample all of it.
                window = min(OVERLAP_LENGTH, kept)
                ranges = [(kept - window, window)] if state.synced else sample_ranges(kept)
                differs = await self._first_difference(self.temp_path, ranges) if kept else None
                if differs is not None:
                    reason, kept = (
                        f"kept bytes {differs[0]}-{differs[1]} on the server differ from the local file",
                        0,
                    )
        synced = state is not None and state.synced and kept > 0
        self.saved = fresh.with_acknowledged(kept, synced=synced)
        write_sidecar(self.paths.sidecar, self.saved.to_json())
        return self.saved, reason

    # -- sending ----------------------------------------------------------------------------------

    async def _open_temp(
        self, state: UploadState, reason: str | None
    ) -> tuple[RemoteWriter, UploadState, str | None]:
        """
        Open the remote temporary file, to continue at ``state.acknowledged`` or afresh.

        ProFTPD's built-in ``AllowOverwrite off`` refuses to open an existing file for writing at all
        (truncating or continuing; with its ``AllowStoreRestart off`` appending too), so the file an
        interrupted try left behind can never be written again. Then it is removed and the upload
        starts over: the file has this package's temporary name, and removing it loses only bytes
        the restart sends again. Appending (which ``AllowStoreRestart on`` would allow) is not used:
        SFTP's APPEND flag makes servers ignore write offsets, so pipelined writes would land right
        only as long as every one of them succeeds.

        :returns: the open file, the state to continue from, and why kept bytes were dropped
        """
        what = "opening the remote temporary file"
        try:
            writer = await self.requests.timed(
                self.fs.open_writer(self.temp_path, truncate=state.acknowledged == 0), what
            )
            return writer, state, reason
        except RemotePathError as refused:
            temp = await self._stat_or_none(self.temp_path, "reading the remote temporary file")
            if temp is None or not temp.is_regular:
                raise  # nothing of ours in the way: a real permission problem
            try:
                await self.requests.bounded(
                    self.fs.remove(self.temp_path), "removing the stale remote temporary file"
                )
                writer = await self.requests.timed(self.fs.open_writer(self.temp_path, truncate=True), what)
            except TransferError:
                raise refused from None
        self.saved = self.saved.with_acknowledged(0, synced=False)
        write_sidecar(self.paths.sidecar, self.saved.to_json())
        reason = (
            f"the server does not let the existing {self.temp_path} be opened for writing again (as "
            "ProFTPD's default AllowOverwrite off does), so it was removed and the upload starts over"
        )
        return writer, self.saved, reason

    async def _send(self, writer: RemoteWriter, state: UploadState) -> None:
        size = self.identity.size
        block = self.options.block_size or self.fs.max_write_len
        requests = self.options.max_requests or requests_in_flight(block, self.requests.rtt, 1)
        progress = ProgressReporter(
            self.log, size, state.acknowledged, interval=self.options.progress_interval
        )
        pending: asyncio.Task[None] | None = None
        saved_at = time.monotonic()
        try:
            # One fsync of the file just opened tells whether the server has it (and refuses
            # nothing): then every checkpoint is durable on the server, or none can be.
            self.syncs = await self.requests.bounded(writer.flush(), "flushing the remote file")
            async for acknowledged in pipelined_write(
                writer,
                self.fd,
                state.acknowledged,
                size,
                block_size=block,
                max_requests=requests,
                stall_timeout=self.options.stall_timeout,
            ):
                self.transferred = acknowledged - state.acknowledged
                progress.update(acknowledged)
                if pending is not None and pending.done():
                    finished, pending = pending, None
                    finished.result()  # a failed fsync fails the try
                if pending is None and time.monotonic() - saved_at >= self.options.checkpoint_interval:
                    # Writes stay in flight while the server fsyncs; one checkpoint at a time.
                    pending = asyncio.ensure_future(self._durable_checkpoint(writer, acknowledged))
                    saved_at = time.monotonic()
            if pending is not None:
                finished, pending = pending, None
                await self.requests.bounded(finished, "flushing the remote file")
            synced = await self.requests.bounded(writer.flush(), "flushing the remote file")
        except BaseException:
            if pending is not None:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)
            if not self.syncs:
                # Nothing can be made durable on this server: record what it acknowledged, and the
                # next try samples the whole kept prefix before trusting it.
                with contextlib.suppress(Exception):
                    self._checkpoint(state.acknowledged + self.transferred, synced=False)
            self.log.info(
                "Checkpoint kept: %d of %d bytes %s for the next try",
                self.saved.acknowledged,
                size,
                "acknowledged and fsynced by the server" if self.saved.synced else "acknowledged",
            )
            raise
        finally:
            await close_quietly(writer)
        self._checkpoint(size, synced=synced)

    async def _durable_checkpoint(self, writer: RemoteWriter, acknowledged: int) -> None:
        """Record ``[0, acknowledged)`` in the sidecar, after the server fsynced it where it can."""
        synced = self.syncs and await writer.flush()
        self.syncs = synced
        self._checkpoint(acknowledged, synced=synced)

    def _checkpoint(self, acknowledged: int, *, synced: bool) -> None:
        saved = self.saved
        if (acknowledged, synced) == (saved.acknowledged, saved.synced):
            return
        state = saved.with_acknowledged(acknowledged, synced=synced)
        write_sidecar(self.paths.sidecar, state.to_json())
        self.checkpoints += 1
        self.saved = state

    # -- proving ----------------------------------------------------------------------------------

    async def _prove_complete(self) -> None:
        """The local file is as it was, the server holds all of it, and its last bytes are ours."""
        now = LocalIdentity.of(os.stat(self.paths.source))
        if now != self.identity:
            remove_quietly(self.paths.sidecar)
            raise SourceChanged(
                f"The local file {self.paths.source} changed while it was uploaded; the remote "
                "temporary file may mix two versions, so the next try starts over from byte 0."
            )
        size = self.identity.size
        temp = await self.requests.bounded(self.fs.stat(self.temp_path), "checking the remote temporary file")
        if temp.size != size:
            raise TransferInterrupted(
                f"The remote temporary file {self.temp_path} has {temp.size} bytes after the upload, "
                f"expected {size}; the next try resumes from the acknowledged offset.",
                offset=min(temp.size, size),
            )
        if not await self._same_tail(self.temp_path):
            remove_quietly(self.paths.sidecar)
            raise IntegrityError(
                f"The last bytes of {self.temp_path} on the server differ from the local file; "
                "something else wrote to it. The next try uploads afresh."
            )

    def _result(
        self,
        digest: str,
        remote_size: int,
        *,
        resumed_from: int,
        rename: str | None = None,
        mtime_preserved: bool | None = None,
        restart_reason: str | None = None,
        skipped: bool = False,
    ) -> UploadResult:
        return UploadResult(
            local_path=str(self.paths.source),
            remote_path=self.remote_path,
            size=self.identity.size,
            sha256=digest,
            remote_size=remote_size,
            resumed_from=resumed_from,
            bytes_transferred=self.transferred,
            verification_bytes=self.verification_bytes,
            seconds=round(time.monotonic() - self.started, 3),
            rename=rename,
            mtime_preserved=mtime_preserved,
            restart_reason=restart_reason,
            skipped=skipped,
            checkpoints=self.checkpoints,
        )


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
