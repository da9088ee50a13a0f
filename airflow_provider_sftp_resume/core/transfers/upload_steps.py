"""One upload try as small steps: plan, send (pipelined writes, shared checkpoints), prove, publish."""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_provider_sftp_resume.core.errors import IntegrityError, SourceChanged, TransferInterrupted
from airflow_provider_sftp_resume.core.io.pipeline import pipelined_write
from airflow_provider_sftp_resume.core.io.tuning import requests_in_flight
from airflow_provider_sftp_resume.core.progress import ProgressReporter, format_bytes
from airflow_provider_sftp_resume.core.remote.protocol import close_quietly
from airflow_provider_sftp_resume.core.resume.checkpoint import Checkpointer
from airflow_provider_sftp_resume.core.resume.hashing import TrailingHasher
from airflow_provider_sftp_resume.core.resume.localfiles import sha256_of_file
from airflow_provider_sftp_resume.core.resume.state import UnusableState
from airflow_provider_sftp_resume.core.resume.upload_state import LocalIdentity, UploadState
from airflow_provider_sftp_resume.core.resume.verify import OVERLAP_LENGTH, TAIL_LENGTH, tail_range
from airflow_provider_sftp_resume.core.threads import in_thread
from airflow_provider_sftp_resume.core.transfers.upload_proof import prove_upload
from airflow_provider_sftp_resume.core.transfers.upload_remote import RemoteSide, kept_proof, sample_ranges
from airflow_provider_sftp_resume.core.transfers.upload_types import UploadOptions, UploadResult

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.remote.protocol import RemoteFileSystem, RemoteStat, RemoteWriter
    from airflow_provider_sftp_resume.core.resume.localfiles import LocalPaths
    from airflow_provider_sftp_resume.core.transfers.story import TryStory

STALE_TEMP = "the server does not let the existing {} be opened for writing again (as ProFTPD's \
default AllowOverwrite off does), so it was removed and the upload starts over"


class UploadTry:
    """The state of one upload try; :meth:`run` is the whole story."""

    def __init__(
        self,
        remote_fs: RemoteFileSystem,
        fd: int,
        *,
        identity: LocalIdentity,
        remote_path: str,
        paths: LocalPaths,
        options: UploadOptions,
        server: str,
        story: TryStory,
    ) -> None:
        self.fs = remote_fs
        self.fd = fd
        self.identity = identity
        self.remote_path = remote_path
        self.temp_path = remote_path + options.temp_suffix
        self.paths = paths
        self.options = options
        self.server = server
        self.story = story
        self.remote = RemoteSide(remote_fs, story.requests, fd)
        self.checkpoints = 0
        self.syncs = False  # the server confirms fsync@openssh.com on the remote file

    async def run(self) -> UploadResult:
        size = self.identity.size
        target = await self.remote.check_directory(
            self.remote_path, create=self.options.create_intermediate_dirs
        )
        self.story.log.info(
            "Connected. Uploading %s (%d bytes, %s) to %s",
            self.paths.target,
            size,
            format_bytes(size),
            self.remote_path,
        )
        if target is not None and self.options.skip_unchanged and await self._target_matches(target):
            digest = await in_thread(sha256_of_file, self.paths.target)
            self.story.skipping(self.remote_path, self.paths.target, min(TAIL_LENGTH, size), digest)
            return self._result(digest, size, resumed_from=size, skipped=True)
        state, reason = await self._plan()
        writer, removed = await self.remote.open_temp(self.temp_path, truncate=state.acknowledged == 0)
        if removed:
            state, reason = state.with_acknowledged(0, synced=False), STALE_TEMP.format(self.temp_path)
            await in_thread(self.paths.save, state)
        self.story.planned(state.acknowledged, size, self.temp_path, reason, kept_proof(state))
        digest = await self._send_and_prove(writer, state)
        proofs = await prove_upload(self, digest, resumed=state.acknowledged > 0)
        return proofs.apply(await self._publish(digest, state.acknowledged, reason))

    async def _target_matches(self, target: RemoteStat) -> bool:
        if target.size != self.identity.size or target.mtime != self.identity.mtime:
            return False
        return await self.remote.first_difference(self.remote_path, [tail_range(self.identity.size)]) is None

    # -- plan -------------------------------------------------------------------------------------

    async def _plan(self) -> tuple[UploadState, str | None]:
        """Return the state to continue from and why kept bytes were dropped (``None``: kept or none)."""
        reason: str | None = None
        try:
            state = self.paths.load(UploadState.from_json)
        except UnusableState as exc:
            state, reason = None, f"the upload resume state is unusable ({exc})"
        if state is not None and state.local != self.identity:
            reason, state = "the local file changed since the earlier try", None
        elif state is not None and (state.server, state.remote_temp) != (self.server, self.temp_path):
            reason, state = "the resume state belongs to another destination", None
        kept = 0
        if state is not None and state.acknowledged > 0:
            kept, reason = await self._prove_kept(state)
        synced = state is not None and state.synced and kept > 0
        saved = UploadState(self.server, self.temp_path, self.identity, kept, synced)
        await in_thread(self.paths.save, saved)
        return saved, reason

    async def _prove_kept(self, state: UploadState) -> tuple[int, str | None]:
        """How many kept bytes on the server are provably the source's, and why not more."""
        temp = await self.remote.stat_or_none(self.temp_path, "reading the remote temporary file")
        if temp is None:
            return 0, f"the remote temporary file {self.temp_path} is gone"
        kept = min(temp.size, state.acknowledged)
        # An fsynced prefix is on the server's disk: its last bytes show it is still ours.
        # Without fsync a server crash can leave holes anywhere in it: sample all of it.
        if state.synced:
            ranges = [(kept - min(OVERLAP_LENGTH, kept), kept)]
        else:
            ranges = [(start, start + length) for start, length in sample_ranges(kept)]
        differs = await self.remote.first_difference(self.temp_path, ranges) if kept else None
        if differs is not None:
            return 0, f"kept bytes {differs[0]}-{differs[1]} on the server differ from the local file"
        return kept, None

    # -- send and prove ---------------------------------------------------------------------------

    async def _send_and_prove(self, writer: RemoteWriter, state: UploadState) -> str:
        size = self.identity.size
        try:
            # The source with links resolved: the hasher never follows a link itself.
            hasher = TrailingHasher(Path(os.path.realpath(self.paths.target)))
        except BaseException:
            await close_quietly(writer)
            raise
        try:
            hasher.advance(size)  # the whole file is there: hash it alongside the upload
            await self._send(writer, state)
            await self._prove_complete()
        except BaseException:
            hasher.abandon()
            raise
        return await in_thread(hasher.finish, size)

    async def _send(self, writer: RemoteWriter, state: UploadState) -> None:
        size = self.identity.size
        block = self.options.block_size or self.fs.max_write_len
        requests = self.options.max_requests or requests_in_flight(block, self.story.requests.rtt, 1)
        progress = ProgressReporter.for_transfer(
            self.options, self.story.log, size, state.acknowledged, self.remote_path
        )
        make_durable = functools.partial(self._make_durable, writer)
        checkpointer = Checkpointer(state, make_durable, interval=self.options.checkpoint_interval)
        flushing = "flushing the remote file"
        try:
            # One fsync of the file just opened tells whether the server has it (and refuses
            # nothing): then every checkpoint is durable on the server, or none can be.
            self.syncs = await self.story.requests.bounded(writer.flush(), flushing)
            checkpointer.start()
            async for acknowledged in pipelined_write(
                writer,
                self.fd,
                state.acknowledged,
                size,
                block_size=block,
                max_requests=requests,
                stall_timeout=self.options.stall_timeout,
                limit=self.options.bandwidth,
            ):
                self.story.transferred = acknowledged - state.acknowledged
                progress.update(acknowledged)
                checkpointer.advance(state.with_acknowledged(acknowledged, synced=False))
            await self.story.requests.bounded(checkpointer.flush(), flushing)
        except BaseException:
            await self._keep_checkpoint(checkpointer)
            raise
        finally:
            self.checkpoints = checkpointer.count
            await close_quietly(writer)

    async def _keep_checkpoint(self, checkpointer: Checkpointer[UploadState]) -> None:
        if self.syncs:
            await checkpointer.stop()  # the link may be dead: what the server fsynced is what counts
        else:
            # Nothing can be made durable on this server: record what it acknowledged, and the
            # next try samples the whole kept prefix before trusting it.
            with contextlib.suppress(Exception):
                await checkpointer.flush()
        durable = checkpointer.durable
        how = "acknowledged and fsynced by the server" if durable.synced else "acknowledged"
        self.story.kept(durable.acknowledged, self.identity.size, how)

    async def _make_durable(self, writer: RemoteWriter, state: UploadState) -> UploadState:
        """Record ``[0, acknowledged)`` in the sidecar, after the server fsynced it where it can."""
        synced = self.syncs and await writer.flush()
        self.syncs = synced
        recorded = state.with_acknowledged(state.acknowledged, synced=synced)
        await in_thread(self.paths.save, recorded)
        return recorded

    async def _prove_complete(self) -> None:
        """The local file is as it was, the server holds all of it, and its last bytes are ours."""
        if LocalIdentity.of(os.stat(self.paths.target)) != self.identity:
            self.paths.remove_state()
            raise SourceChanged(
                f"The local file {self.paths.target} changed while it was uploaded; the remote "
                "temporary file may mix two versions, so the next try starts over from byte 0."
            )
        size = self.identity.size
        temp = await self.story.requests.bounded(
            self.fs.stat(self.temp_path), "checking the remote temporary file"
        )
        if temp.size != size:
            raise TransferInterrupted(
                f"The remote temporary file {self.temp_path} has {temp.size} bytes after the upload, "
                f"expected {size}; the next try resumes from the acknowledged offset.",
                offset=min(temp.size, size),
            )
        if await self.remote.first_difference(self.temp_path, [tail_range(size)]) is not None:
            self.paths.remove_state()
            raise IntegrityError(
                f"The last bytes of {self.temp_path} on the server differ from the local file; "
                "something else wrote to it. The next try uploads afresh."
            )

    # -- publish ----------------------------------------------------------------------------------

    async def _publish(self, digest: str, resumed_from: int, reason: str | None) -> UploadResult:
        size = self.identity.size
        requests = self.story.requests
        mtime_preserved = None
        if self.options.preserve_mtime:
            mtime_preserved = await requests.bounded(
                self.fs.set_mtime(self.temp_path, self.identity.mtime), "setting mtime"
            )
            if not mtime_preserved:
                self.story.log.warning(
                    "The server refused to set the modification time of %s (common on object-storage "
                    "backed SFTP); the upload goes on without it.",
                    self.temp_path,
                )
        rename = await requests.bounded(
            self.fs.replace(self.temp_path, self.remote_path), "renaming into place"
        )
        remote_size = (await requests.bounded(self.fs.stat(self.remote_path), "checking the result")).size
        if remote_size != size:
            raise IntegrityError(
                f"After the rename the server reports {remote_size} bytes for {self.remote_path}, "
                f"expected {size}; another writer may have replaced it."
            )
        self.paths.remove_state()
        self.story.done(self.remote_path, size, digest, rename)
        return self._result(
            digest,
            remote_size,
            resumed_from=resumed_from,
            rename=rename,
            mtime_preserved=mtime_preserved,
            restart_reason=reason,
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
            local_path=str(self.paths.target),
            remote_path=self.remote_path,
            size=self.identity.size,
            sha256=digest,
            remote_size=remote_size,
            resumed_from=resumed_from,
            bytes_transferred=self.story.transferred,
            verification_bytes=self.story.verification_bytes + self.remote.verification_bytes,
            seconds=self.story.seconds(),
            rename=rename,
            mtime_preserved=mtime_preserved,
            restart_reason=restart_reason,
            skipped=skipped,
            checkpoints=self.checkpoints,
        )
