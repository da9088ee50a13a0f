"""
One download try as small steps, written once for every destination: plan, fill, prove, publish.

:class:`DownloadTry` never touches a file itself: the bytes, their durability and the publish are
the destination's (:mod:`~.destinations.protocol`); what it decides is whether kept bytes may be
used, when the copy is complete and provably of one version, and what the result says.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from airflow_provider_sftp_resume.core.errors import (
    LocalDiskFull,
    RemoteChanged,
    TransferError,
)
from airflow_provider_sftp_resume.core.io.fill import SegmentFiller, worker_job
from airflow_provider_sftp_resume.core.io.prefetch import PrefetchingReader, first_window
from airflow_provider_sftp_resume.core.io.segments import segment_boundaries
from airflow_provider_sftp_resume.core.io.tuning import choose_connections, requests_in_flight
from airflow_provider_sftp_resume.core.remote.protocol import close_quietly
from airflow_provider_sftp_resume.core.resume.checkpoint import Checkpointer
from airflow_provider_sftp_resume.core.resume.state import ResumeState, UnusableState
from airflow_provider_sftp_resume.core.resume.verify import (
    TAIL_LENGTH,
    VerifyCheck,
    format_verify,
    take_fingerprint,
    verify_kept_bytes,
)
from airflow_provider_sftp_resume.core.threads import in_thread
from airflow_provider_sftp_resume.core.transfers.download_proof import (
    CopyChecks,
    check_complete,
    check_unchanged,
    checked_and_flushed,
)
from airflow_provider_sftp_resume.core.transfers.download_types import DownloadOptions, DownloadResult

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.destinations.protocol import Destination, StreamHasher
    from airflow_provider_sftp_resume.core.remote.protocol import (
        RemoteFileSystem,
        RemoteReader,
        RemoteStat,
        SessionFactory,
    )
    from airflow_provider_sftp_resume.core.transfers.story import TryStory

Plan = tuple[ResumeState, "str | None", tuple[VerifyCheck, ...]]


class DownloadTry:
    """
    The state of one try; :meth:`run` is the whole story, into a destination.

    :param remote_fs: the try's session
    :param remote_path: the file on the server
    :param target: the published name, for results and log lines
    :param options: the knobs
    :param story: counters and log lines
    :param open_session: opens extra sessions (and names the server in the state)
    :param lock_fd: the transfer lock's descriptor, shared with segment worker processes
    """

    def __init__(
        self,
        remote_fs: RemoteFileSystem,
        remote_path: str,
        target: str,
        options: DownloadOptions,
        story: TryStory,
        *,
        open_session: SessionFactory,
        lock_fd: int | None = None,
    ) -> None:
        self.fs = remote_fs
        self.remote_path = remote_path
        self.target = target
        self.options = options
        self.story = story
        self.open_session = open_session
        self.lock_fd = lock_fd
        self.dest: Destination  # set by run()
        self.checks = CopyChecks(remote_fs, remote_path, options, story.log)
        #: the reader's close, started once nothing more is read from it (its answer is not needed)
        self.closing: asyncio.Future[None] | None = None
        self._prefetched_shape: tuple[int, int] | None = None  # (block, requests) of the first window

    async def run(self, reader: RemoteReader, remote: RemoteStat, destination: Destination) -> DownloadResult:
        """Skip an unchanged target, or plan, fill, prove and publish."""
        self.dest = destination
        if self.options.skip_unchanged and (skipped := await self._skip_unchanged(reader, remote)):
            return skipped
        reader = early = PrefetchingReader(reader)
        try:
            state, reason, passed = await self._plan(early, remote)
            self.story.planned(
                state.durable_bytes,
                remote.size,
                destination.description,
                reason,
                f"kept bytes verified by: {format_verify(passed)}",
            )
            await destination.resume(state)
            digest, checkpoints = await self._fill_and_prove(reader, remote, state)
            proof = await self.checks.before_publish(
                self.dest, remote, digest, resumed=bool(state.durable_bytes)
            )
            await destination.publish(remote.mtime if self.options.preserve_mtime else None)
        except RemoteChanged:
            await destination.discard()  # the kept bytes belong to a version that no longer exists
            raise
        finally:
            early.finish()
        self.story.done(self.target, remote.size, digest)
        return self._result(
            remote,
            digest,
            resumed_from=state.durable_bytes,
            restart_reason=reason,
            checks_passed=tuple(c.value for c in passed),
            checkpoints=checkpoints,
            proof=proof,
        )

    async def _skip_unchanged(self, reader: RemoteReader, remote: RemoteStat) -> DownloadResult | None:
        """The result of skipping when the target provably is the remote file (and its checksums hold)."""
        digest, read = await self.story.requests.bounded(
            self.dest.existing_copy(remote, reader), "comparing the existing target"
        )
        self.story.verification_bytes += read
        if digest is None:
            return None
        if self.options.expected_sha256 not in (None, digest):
            self.story.log.info("Existing %s does not match expected_sha256; downloading again", self.target)
            return None
        verdict = await self.checks.source(remote, self.target, digest)
        if verdict.mismatch is not None:
            self.story.log.info("Existing %s has %s; downloading again", self.target, verdict.mismatch)
            return None
        await self.dest.discard()
        self.story.skipping(self.target, self.remote_path, min(TAIL_LENGTH, remote.size), digest)
        return self._result(remote, digest, resumed_from=remote.size, skipped=True, proof=verdict.proof)

    # -- plan: resume or restart ------------------------------------------------------------------

    async def _plan(self, reader: PrefetchingReader, remote: RemoteStat) -> Plan:
        """Return the state to continue from, why kept bytes were dropped, and the checks that passed."""
        reason: str | None = None
        try:
            state = await self.dest.load_state()
        except UnusableState as exc:
            state, reason = None, str(exc)
        if state is not None and (recorded := state.remote.path) != self.remote_path:
            state, reason = None, f"the .part file was filled from another remote path ({recorded})"
        if state is not None and state.durable_bytes > 0:
            if (state.remote.size, state.remote.mtime) == (remote.size, remote.mtime):  # else no use
                todo = [(s.done, s.end) for s in state.segments if not s.complete]
                # sent with the checks; dropped if they fail
                self._prefetch(reader, remote.size - state.durable_bytes, *todo[:1])
            verdict = await self.story.requests.bounded(
                verify_kept_bytes(state, remote, reader, self.dest.kept_digest, self.options.verify),
                "verifying kept bytes",
            )
            self.story.verification_bytes += verdict.bytes_read
            if verdict.ok:
                return state, None, verdict.passed
            reason = verdict.failure
        # Nothing usable is kept: fingerprint the remote file as it is now and start at byte 0, the
        # first data window on its way alongside the fingerprint's tail read.
        reader.drop()
        self._prefetch(reader, remote.size, (0, remote.size))
        fingerprint, read = await self.story.requests.bounded(
            take_fingerprint(
                reader, self.remote_path, remote, self.options.verify, server=self.open_session.identity
            ),
            "fingerprinting the remote file",
        )
        self.story.verification_bytes += read
        connections = self._connections(remote.size)
        boundaries = segment_boundaries(remote.size, connections, self.options.min_segment_size)
        fresh = ResumeState.fresh(fingerprint, boundaries)
        await self.dest.restart(fresh)
        return fresh, reason, ()

    def _prefetch(self, reader: PrefetchingReader, left: int, *ranges: tuple[int, int]) -> None:
        """Send the reads a single-stream fill of ``[start, end)`` begins with (none under a cap)."""
        if ranges and self._connections(left) == 1 and self.options.bandwidth is None:
            self._prefetched_shape = self._pipeline_shape(1)
            reader.prefetch(first_window(*ranges[0], *self._prefetched_shape))

    def _connections(self, left: int) -> int:
        """Connections for ``left`` bytes still to read (:func:`.choose_connections`)."""
        workers = worker_job(self.options, self.open_session, self.dest) is not None
        asked, rtt = self.options.max_connections, self.story.requests.rtt
        return choose_connections(asked, left, rtt, random_access=self.dest.random_access, workers=workers)

    # -- fill and prove ---------------------------------------------------------------------------

    async def _fill_and_prove(
        self, reader: RemoteReader, remote: RemoteStat, state: ResumeState
    ) -> tuple[str, int]:
        """Fill every missing byte, checkpointing; prove the copy complete and of one version."""
        checkpointer = Checkpointer(state, self.dest.make_durable, interval=self.options.checkpoint_interval)
        hasher = self.dest.start_hash(state)
        try:
            checkpointer.start()
            await self._fill(reader, checkpointer, hasher)
            check_complete(self.dest, checkpointer.written)
            unchanged = check_unchanged(self.fs, self.remote_path, reader, remote, state.remote)
            self.story.verification_bytes += await checked_and_flushed(
                self.story.requests.bounded(unchanged, "re-checking the remote file"), checkpointer.flush()
            )
            # Nothing more is read: the close's round trip runs while the copy is proven and published.
            self.closing = asyncio.ensure_future(close_quietly(reader))
        except RemoteChanged:
            hasher.abandon()
            await checkpointer.stop()
            raise
        except BaseException as exc:
            hasher.abandon()
            await self._keep_checkpoint(checkpointer, exc, remote.size)
            raise
        # Not under the handlers above: finish() has released the hasher, even when it raises.
        return await in_thread(hasher.finish, remote.size), checkpointer.count

    async def _fill(
        self, reader: RemoteReader, checkpointer: Checkpointer[ResumeState], hasher: StreamHasher
    ) -> None:
        filler = SegmentFiller(
            destination=self.dest,
            remote_path=self.remote_path,
            open_session=self.open_session,
            options=self.options,
            log=self.story.log,
            checkpointer=checkpointer,
            hasher=hasher,
            lock_fd=self.lock_fd,
        )
        left = checkpointer.written.remote.size - checkpointer.written.durable_bytes
        await filler.run(reader, self._connections(left), self._pipeline_shape)
        self.story.transferred, self.story.first_byte_at = filler.transferred, filler.first_byte_at

    def _pipeline_shape(self, streams: int) -> tuple[int, int]:
        """Block size and requests per stream, sized to the round trip; one stream's as prefetched."""
        if streams == 1 and self._prefetched_shape is not None:
            return self._prefetched_shape  # to claim its answers (a refused probe: blocks are split)
        block = self.options.block_size or self.fs.max_read_len
        requests = self.options.max_requests or requests_in_flight(block, self.story.requests.rtt, streams)
        return block, requests

    async def _keep_checkpoint(
        self, checkpointer: Checkpointer[ResumeState], exc: BaseException, size: int
    ) -> None:
        """The try failed: make durable what was written (after a full disk, minus room for the sidecar)."""
        if isinstance(exc, LocalDiskFull):
            await checkpointer.stop()
            checkpointer.advance(self.dest.make_room(checkpointer.written))
        with contextlib.suppress(TransferError):
            durable = await checkpointer.flush()
            self.story.kept(durable.durable_bytes, size)

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
        proof: str | None = None,
    ) -> DownloadResult:
        story = self.story
        return DownloadResult(
            local_path=self.target,
            remote_path=self.remote_path,
            size=remote.size,
            sha256=digest,
            resumed_from=resumed_from,
            bytes_transferred=story.transferred,
            verification_bytes=story.verification_bytes,
            seconds=story.seconds(),
            verify=format_verify(self.options.verify),
            checks_passed=checks_passed,
            restart_reason=restart_reason,
            skipped=skipped,
            checkpoints=checkpoints,
            first_byte_seconds=(
                None if story.first_byte_at is None else round(story.first_byte_at - story.started, 3)
            ),
            remote_mtime=remote.mtime,
            source_checksum=proof,
        )
