"""
The resumable download: plan (resume or restart), transfer, prove, publish.

One call of :func:`download_file` is one try. It either publishes a complete file whose bytes came
from one unchanged version of the remote file, or raises a :class:`~.errors.TransferError` and
leaves the ``.part`` and its sidecar consistent for the next try. The existing target is never
touched until the replacement is complete and checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_sftp_resume.core.errors import (
    ChecksumMismatch,
    IntegrityError,
    LocalDiskFull,
    RemoteChanged,
    RemotePathError,
    TransferError,
    TransferInterrupted,
)
from airflow_provider_sftp_resume.core.io.fill import SegmentFiller
from airflow_provider_sftp_resume.core.io.segments import (
    MIN_SEGMENT_SIZE,
    segment_boundaries,
)
from airflow_provider_sftp_resume.core.io.tuning import requests_in_flight
from airflow_provider_sftp_resume.core.logs import Logger, engine_logger
from airflow_provider_sftp_resume.core.options import RequestTimer, TransferOptions
from airflow_provider_sftp_resume.core.progress import format_bytes
from airflow_provider_sftp_resume.core.remote.protocol import close_quietly
from airflow_provider_sftp_resume.core.resume.checkpoint import Checkpointer
from airflow_provider_sftp_resume.core.resume.hashing import TrailingHasher
from airflow_provider_sftp_resume.core.resume.localfiles import (
    LocalPaths,
    check_target,
    discard_partial,
    fsync_directory,
    open_part,
    os_error_to_local,
    read_state,
    remove_quietly,
    sha256_of_file,
    write_state,
)
from airflow_provider_sftp_resume.core.resume.locking import TransferLock
from airflow_provider_sftp_resume.core.resume.state import ResumeState, UnusableState
from airflow_provider_sftp_resume.core.resume.verify import (
    DEFAULT_VERIFY,
    TAIL_LENGTH,
    VerifyCheck,
    format_verify,
    parse_verify,
    read_exact,
    take_fingerprint,
    verify_kept_bytes,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_sftp_resume.core.remote.protocol import (
        RemoteFileSystem,
        RemoteReader,
        RemoteStat,
        SessionFactory,
    )

MAX_CONNECTIONS = 16
#: Bytes given back on a full disk so that the checkpoint can still be written.
DISK_FULL_GIVE_BACK = 1024 * 1024  # 1 MiB

log = engine_logger(__name__)
T = TypeVar("T")


async def in_thread(func: Callable[..., T], *args: Any) -> T:
    """
    Run blocking file work (hashing, fsync) in a thread, off the event loop.

    A cancelled caller still waits for the thread to finish before the cancellation goes on: the
    work may use a descriptor that the caller closes next.
    """
    work = asyncio.ensure_future(asyncio.to_thread(func, *args))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        while not work.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({work})
        if not work.cancelled():
            work.exception()  # retrieved: the cancellation is what the caller sees
        raise


@dataclass(frozen=True)
class DownloadOptions(TransferOptions):
    """
    How one download behaves: the shared knobs of :class:`~.options.TransferOptions`, and these.

    :param verify: checks that prove kept bytes are still valid before resuming (see :mod:`.verify`)
    :param expected_sha256: hex sha256 the finished file must have; a fresh download that does not
        match fails without retry
    :param max_connections: connections used for one large file (split into that many segments,
        each resumed on its own, the extra ones read by worker processes, one CPU each); ``None``
        means 1, the fastest on the benchmark machine; 1 also suits servers that dislike several
        connections
    :param min_segment_size: smallest segment tracked on its own (a file is split into up to four
        segments per connection)
    """

    verify: tuple[VerifyCheck, ...] = field(default_factory=lambda: parse_verify(DEFAULT_VERIFY))
    expected_sha256: str | None = None
    max_connections: int | None = None
    min_segment_size: int = MIN_SEGMENT_SIZE

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_counts("max_connections", "min_segment_size")
        if self.max_connections is not None and self.max_connections > MAX_CONNECTIONS:
            raise ValueError(f"max_connections must be at most {MAX_CONNECTIONS}, got {self.max_connections}")
        if self.expected_sha256 is not None:
            digest = self.expected_sha256.strip().lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(
                    f"expected_sha256 must be 64 hexadecimal characters, got {self.expected_sha256!r}"
                )
            object.__setattr__(self, "expected_sha256", digest)


@dataclass(frozen=True)
class DownloadResult:
    """
    What one try did; :meth:`to_dict` is the operator's XCom value.

    :param local_path: the final file
    :param remote_path: the remote file
    :param size: bytes in the final file
    :param sha256: hex sha256 of the final local file
    :param resumed_from: bytes kept from earlier tries (0 for a fresh start)
    :param bytes_transferred: bytes of file content read from the server in this try
    :param verification_bytes: bytes read from the server to verify kept bytes and the result
    :param seconds: wall time of this try
    :param verify: the verify checks in force (``mtime+tail+overlap``)
    :param checks_passed: checks that passed before resuming (empty for a fresh start)
    :param restart_reason: why kept bytes were discarded, or ``None``
    :param skipped: the target already matched the remote file; nothing was transferred
    :param checkpoints: checkpoints written during this try
    :param first_byte_seconds: seconds from the start of this try until the first new byte was
        written (``None`` when nothing was transferred)
    :param remote_mtime: the downloaded version's modification time on the server
    :param post_action: what was done with the remote file afterwards (``deleted``, ``moved to ...``)
    """

    local_path: str
    remote_path: str
    size: int
    sha256: str
    resumed_from: int
    bytes_transferred: int
    verification_bytes: int
    seconds: float
    verify: str
    checks_passed: tuple[str, ...] = ()
    restart_reason: str | None = None
    skipped: bool = False
    checkpoints: int = 0
    first_byte_seconds: float | None = None
    remote_mtime: int | None = None
    post_action: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        result = asdict(self)
        result["checks_passed"] = list(self.checks_passed)
        return result


async def download_file(
    open_session: SessionFactory,
    remote_path: str,
    local_path: str | os.PathLike[str],
    options: DownloadOptions | None = None,
    *,
    logger: Logger | None = None,
) -> DownloadResult:
    """
    Download ``remote_path`` to ``local_path``, resuming from an earlier try where that is provably safe.

    :param open_session: opens a session with the remote file system
    :param remote_path: file on the server
    :param local_path: file to write
    :param options: behaviour knobs; defaults when ``None``
    :param logger: where the story of the try is told (the task log in Airflow)
    :raises TransferError: see :mod:`.errors` for which are retriable
    """
    started = time.monotonic()
    options = options or DownloadOptions()
    paths = LocalPaths.for_target(local_path)
    check_target(paths, create_intermediate_dirs=options.create_intermediate_dirs)
    with TransferLock(paths.lock, paths.target) as lock:
        async with open_session() as remote_fs:
            try_ = _DownloadTry(
                remote_fs,
                remote_path,
                paths,
                options,
                logger or log,
                open_session=open_session,
                started=started,
                lock_fd=lock.fileno(),
            )
            return await try_.run()


class _DownloadTry:
    """The state of one try; :meth:`run` is the whole story."""

    def __init__(
        self,
        remote_fs: RemoteFileSystem,
        remote_path: str,
        paths: LocalPaths,
        options: DownloadOptions,
        logger: Logger,
        *,
        open_session: SessionFactory,
        started: float,
        lock_fd: int | None = None,
    ) -> None:
        self.fs = remote_fs
        self.lock_fd = lock_fd  # shared with segment workers: none outlives the lock
        self.open_session = open_session  # for extra connections
        self.remote_path = remote_path
        self.paths = paths
        self.options = options
        self.log = logger
        self.started = started  # before locking and connecting: what the user waits for
        self.verification_bytes = 0
        self.transferred = 0
        self.first_byte_at: float | None = None
        self.requests = RequestTimer(options.stall_timeout)

    async def run(self) -> DownloadResult:
        remote = await self.requests.timed(
            self.fs.stat(self.remote_path), "reading the remote file's attributes"
        )
        if remote.is_dir:
            raise RemotePathError(
                f"Remote path {self.remote_path} is a directory. Give the path of a file; "
                "to fetch many files, map the operator over a listing."
            )
        if not remote.is_regular:
            raise RemotePathError(f"Remote path {self.remote_path} is not a regular file.")
        if not remote.size_known:
            raise RemotePathError(
                f"The server did not report the size of {self.remote_path} (the SFTP size attribute "
                "is missing), so a download could not be proven complete. Use a server that reports "
                "file sizes; nothing was written."
            )
        self.log.info(
            "Connected. Remote file %s: %d bytes (%s), mtime %d",
            self.remote_path,
            remote.size,
            format_bytes(remote.size),
            remote.mtime,
        )
        reader = await self.requests.timed(self.fs.open_reader(self.remote_path), "opening the remote file")
        try:
            if self.options.skip_unchanged and await self.requests.bounded(
                self._target_matches(reader, remote), "comparing the existing target"
            ):
                # Hashing a large file takes seconds: in a thread, so sibling transfers keep moving.
                digest = await in_thread(sha256_of_file, self.paths.target)
                if self.options.expected_sha256 in (None, digest):
                    return self._skipped(remote, digest)
                self.log.info(
                    "Existing %s does not match expected_sha256; downloading again", self.paths.target
                )
            return await self._transfer(reader, remote)
        finally:
            await close_quietly(reader)

    # -- skipping a complete target ---------------------------------------------------------------

    async def _target_matches(self, reader: RemoteReader, remote: RemoteStat) -> bool:
        try:
            local = os.stat(self.paths.target)
        except FileNotFoundError:
            return False
        if local.st_size != remote.size or int(local.st_mtime) != remote.mtime:
            self.log.info(
                "Existing %s differs from the remote file in size or mtime; downloading a fresh copy "
                "(the current file stays in place until the new one is complete)",
                self.paths.target,
            )
            return False
        tail_length = min(TAIL_LENGTH, remote.size)
        remote_tail = await read_exact(reader, remote.size - tail_length, tail_length)
        self.verification_bytes += tail_length
        with open(self.paths.target, "rb") as handle:
            handle.seek(remote.size - tail_length)
            same_tail = handle.read(tail_length) == remote_tail
        if not same_tail:
            self.log.info(
                "Existing %s differs in its last %d bytes; downloading again", self.paths.target, tail_length
            )
            return False
        return True

    def _skipped(self, remote: RemoteStat, digest: str) -> DownloadResult:
        discard_partial(self.paths)
        self.log.info(
            "%s is already complete and unchanged (same size, mtime and last %d bytes as the remote "
            "file); skipping the transfer. sha256 %s",
            self.paths.target,
            min(TAIL_LENGTH, remote.size),
            digest,
        )
        return self._result(remote, digest, resumed_from=remote.size, skipped=True)

    # -- planning: resume or restart --------------------------------------------------------------

    async def _plan(
        self, reader: RemoteReader, remote: RemoteStat, fd: int
    ) -> tuple[ResumeState, str | None, tuple[VerifyCheck, ...]]:
        """Return the state to continue from, why kept bytes were dropped, and the checks that passed."""
        reason: str | None = None
        try:
            state: ResumeState | None = read_state(self.paths)
        except FileNotFoundError:
            state = None
            if os.fstat(fd).st_size > 0:
                reason = "a .part file without resume state was found"
        except UnusableState as exc:
            state, reason = None, f"the resume state is unusable ({exc})"

        if state is not None:
            part_size = os.fstat(fd).st_size
            if state.remote.path != self.remote_path:
                reason = f"the .part file was filled from another remote path ({state.remote.path})"
                state = None
            elif part_size < max(s.done for s in state.segments):
                state, reason = None, "the .part file is shorter than its resume state says"

        if state is not None and state.durable_bytes > 0:
            verdict = await self.requests.bounded(
                verify_kept_bytes(state, remote, reader, fd, self.options.verify), "verifying kept bytes"
            )
            self.verification_bytes += verdict.bytes_read
            if verdict.ok:
                return state, None, verdict.passed
            reason = verdict.failure

        # Nothing usable is kept: fingerprint the remote file as it is now and start at byte 0.
        fingerprint, read = await self.requests.bounded(
            take_fingerprint(reader, self.remote_path, remote, self.options.verify),
            "fingerprinting the remote file",
        )
        self.verification_bytes += read
        fresh = ResumeState.fresh(
            fingerprint,
            segment_boundaries(remote.size, self._connections(), self.options.min_segment_size),
        )
        os.ftruncate(fd, 0)
        write_state(self.paths, fresh)
        return fresh, reason, ()

    # -- the transfer -----------------------------------------------------------------------------

    async def _transfer(self, reader: RemoteReader, remote: RemoteStat) -> DownloadResult:
        fd = open_part(self.paths)
        try:
            state, restart_reason, passed = await self._plan(reader, remote, fd)
            resumed_from = state.durable_bytes
            self._log_plan(state, remote, restart_reason, passed)
            last = state.segments[-1]
            # Bytes past the last checkpoint are not trusted, nor any past the end of the file.
            os.ftruncate(fd, last.done if not last.complete else last.end)
            checkpointer = Checkpointer(fd, self.paths, state, interval=self.options.checkpoint_interval)
            hasher = TrailingHasher(self.paths.part)
            try:
                hasher.advance(state.contiguous_prefix)
                checkpointer.start()
                filler = SegmentFiller(
                    fd=fd,
                    paths=self.paths,
                    remote_path=self.remote_path,
                    open_session=self.open_session,
                    options=self.options,
                    log=self.log,
                    checkpointer=checkpointer,
                    hasher=hasher,
                    lock_fd=self.lock_fd,
                )
                await filler.run(reader, self._connections(), self._pipeline_shape)
                self.transferred, self.first_byte_at = filler.transferred, filler.first_byte_at
                self._check_complete(fd, checkpointer.written)
                await self.requests.bounded(
                    self._check_unchanged(reader, remote, state), "re-checking the remote file"
                )
                await checkpointer.flush()
            except RemoteChanged:
                hasher.abandon()
                await checkpointer.stop()
                raise
            except BaseException as exc:
                hasher.abandon()
                if isinstance(exc, LocalDiskFull):
                    await checkpointer.stop()
                    self._make_room(fd, checkpointer)
                with contextlib.suppress(TransferError):
                    durable = await checkpointer.flush()
                    self.log.info(
                        "Checkpoint kept: %d of %d bytes are durable for the next try",
                        durable.durable_bytes,
                        remote.size,
                    )
                raise
            # Not under the handlers above: finish() has released the hasher, even when it raises.
            digest = await in_thread(hasher.finish, remote.size)
            self._check_digest(digest, resumed_from)
            await in_thread(self._publish, fd, remote)
        except RemoteChanged:
            discard_partial(self.paths)  # the kept bytes belong to a version that no longer exists
            raise
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.log.info(
            "Done: %s (%d bytes, sha256 %s) in %.1f s; %d bytes transferred in this try",
            self.paths.target,
            remote.size,
            digest,
            time.monotonic() - self.started,
            self.transferred,
        )
        return self._result(
            remote,
            digest,
            resumed_from=resumed_from,
            restart_reason=restart_reason,
            checks_passed=tuple(c.value for c in passed),
            checkpoints=checkpointer.count,
        )

    def _make_room(self, fd: int, checkpointer: Checkpointer) -> None:
        """
        On a full disk, give back the last MiB received so the checkpoint itself can be written.

        The sidecar needs a few hundred bytes; without them the try would end with no record of
        what it kept. Dropping up to 1 MiB of the last segment's tail frees that room and costs the
        next try one MiB.
        """
        written = checkpointer.written
        index = len(written.segments) - 1
        last = written.segments[index]
        if last.complete:
            return
        keep = max(last.start, last.done - DISK_FULL_GIVE_BACK)
        with contextlib.suppress(OSError):
            os.ftruncate(fd, keep)
            checkpointer.advance(index, keep)

    def _log_plan(
        self,
        state: ResumeState,
        remote: RemoteStat,
        restart_reason: str | None,
        passed: tuple[VerifyCheck, ...],
    ) -> None:
        if restart_reason:
            self.log.warning("Restarting from byte 0: %s", restart_reason)
        if state.durable_bytes:
            self.log.info(
                "Resuming at %d of %d bytes (%.1f%%); kept bytes verified by: %s",
                state.durable_bytes,
                remote.size,
                100.0 * state.durable_bytes / remote.size,
                format_verify(passed),
            )
        else:
            self.log.info("Starting download of %d bytes into %s", remote.size, self.paths.part)

    def _connections(self) -> int:
        """
        Connections to use: as asked, else one.

        Measured on a 2-core machine whose sshd shares those cores, one connection was fastest at
        every round trip (0, 20 and 100 ms): a second client process and a second sshd session fight
        over the same two cores. Where the server is remote and the worker has cores to spare, or
        the server throttles each connection, ``max_connections`` of 2-4 pays off.
        """
        return self.options.max_connections or 1

    def _pipeline_shape(self, streams: int) -> tuple[int, int]:
        """Block size and requests in flight per stream, sized to the measured round trip."""
        block = self.options.block_size or self.fs.max_read_len
        requests = self.options.max_requests or requests_in_flight(block, self.requests.rtt, streams)
        return block, requests

    def _check_complete(self, fd: int, state: ResumeState) -> None:
        """Never publish a short or overlong file, whatever went wrong above."""
        size = os.fstat(fd).st_size
        if not state.complete or size != state.remote.size:
            raise TransferInterrupted(
                f"The transfer ended with {state.durable_bytes} of {state.remote.size} bytes written "
                f"and a .part of {size} bytes; the next try resumes from the last checkpoint.",
                offset=state.durable_bytes,
            )

    async def _check_unchanged(self, reader: RemoteReader, before: RemoteStat, state: ResumeState) -> None:
        """Refuse a file whose source changed while it was read: it could mix two versions."""
        after = await self.fs.stat(self.remote_path)
        if (after.size, after.mtime) != (before.size, before.mtime):
            raise RemoteChanged(
                f"The remote file changed while it was downloaded (size {before.size} -> {after.size}, "
                f"mtime {before.mtime} -> {after.mtime}); the partial copy was discarded and the "
                "next try starts over.",
                what="size/mtime",
            )
        fingerprint = state.remote
        if fingerprint.tail_length:
            tail = await read_exact(reader, before.size - fingerprint.tail_length, fingerprint.tail_length)
            self.verification_bytes += len(tail)
            if hashlib.sha256(tail).hexdigest() != fingerprint.tail_sha256:
                raise RemoteChanged(
                    "The end of the remote file changed while it was downloaded; the partial copy "
                    "was discarded and the next try starts over.",
                    what="tail",
                )

    def _check_digest(self, digest: str, resumed_from: int) -> None:
        expected = self.options.expected_sha256
        if not expected or digest == expected:
            return
        discard_partial(self.paths)
        if resumed_from:
            raise IntegrityError(
                f"The finished file has sha256 {digest}, expected {expected}. Part of it was kept from "
                "an earlier try, so the partial copy was discarded; the next try downloads it afresh."
            )
        raise ChecksumMismatch(
            f"A complete fresh download of {self.remote_path} has sha256 {digest}, but "
            f"expected_sha256 is {expected}. The remote file is not the one expected: check the "
            "path and the expected checksum. The existing local file, if any, was left untouched."
        )

    def _publish(self, fd: int, remote: RemoteStat) -> None:
        """Make the complete ``.part`` the target, atomically and durably."""
        try:
            if self.options.preserve_mtime:
                os.utime(fd, (remote.mtime, remote.mtime))
            os.fsync(fd)
            os.replace(self.paths.part, self.paths.target)
            fsync_directory(self.paths.target.parent)
        except OSError as exc:
            raise os_error_to_local(exc, self.paths.target, "publishing") from None
        remove_quietly(self.paths.sidecar)

    def _result(
        self,
        remote: RemoteStat,
        digest: str,
        *,
        resumed_from: int,
        restart_reason: str | None = None,
        checks_passed: tuple[str, ...] = (),
        skipped: bool = False,
        checkpoints: int = 0,
    ) -> DownloadResult:
        return DownloadResult(
            local_path=str(self.paths.target),
            remote_path=self.remote_path,
            size=remote.size,
            sha256=digest,
            resumed_from=resumed_from,
            bytes_transferred=self.transferred,
            verification_bytes=self.verification_bytes,
            seconds=round(time.monotonic() - self.started, 3),
            verify=format_verify(self.options.verify),
            checks_passed=checks_passed,
            restart_reason=restart_reason,
            skipped=skipped,
            checkpoints=checkpoints,
            first_byte_seconds=(
                None if self.first_byte_at is None else round(self.first_byte_at - self.started, 3)
            ),
            remote_mtime=remote.mtime,
        )
