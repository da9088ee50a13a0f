"""
The destination seam: where a download's bytes go, how they become durable, how they are published.

The download engine (:mod:`~.transfers.download`) plans, fills, proves and publishes; a destination
holds the bytes. :class:`~.destinations.local.LocalPart` (``<target>.part`` + sidecar, published by
rename) is the first implementation; an object store's multipart upload fits the same protocol
(sequential writes only, state kept remotely, published by completing the upload).

**What a destination must guarantee**

- *Never a partial object at the target.* Until :meth:`Destination.publish` returns, the target
  (the final file or key) is untouched: an existing one stays as it was; a reader never sees a
  short or mixed copy. ``publish`` makes the complete bytes the target atomically.
- *Durable means it survives ``kill -9`` of this process* (and, for the local file, a crash of the
  machine): every byte a state returned by :meth:`Destination.make_durable` claims is kept, and a
  later :meth:`Destination.load_state`, in a fresh process, returns that state or a later one.
  A claim never runs ahead of the bytes: record the state only after the bytes it covers are synced.
- *A claim is verified before use.* :meth:`Destination.load_state` returns what earlier tries claim
  (or raises :class:`~.resume.state.UnusableState` with the reason, never another error for bad
  state). The engine proves the claim against the source (size, mtime, tail, and the overlap check
  through :meth:`Destination.kept_digest`) before continuing from it; otherwise it calls
  :meth:`Destination.restart`.
- *Writes follow the state.* With ``random_access`` several segments (and worker processes, through
  ``worker_path``) write at any offsets; without it, :meth:`Destination.write` is called with
  consecutive offsets from the resume point only (one segment, one stream).
- *Discard leaves nothing behind* that a later try could mistake for its own, or that costs money
  (a local ``.part``; an aborted multipart upload). It never touches the published target.

Blocking work (``fsync``, sidecar writes, hashing) runs in a thread (:func:`~.threads.in_thread`);
:meth:`Destination.write` may be called for every block and should be cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.remote.protocol import RemoteReader, RemoteStat
    from airflow_provider_sftp_resume.core.resume.state import ResumeState


class StreamHasher(Protocol):
    """The whole file's sha256, computed while the bytes are written (see :mod:`~.resume.hashing`)."""

    def advance(self, watermark: int, block: tuple[int, bytes] | None = None) -> None:
        """Bytes ``[0, watermark)`` are written; ``block`` is the one just written, if in memory."""
        ...

    def finish(self, size: int) -> str:
        """Wait until ``size`` bytes are hashed; return the hex digest (blocking: call in a thread)."""
        ...

    def abandon(self) -> None:
        """Stop hashing: the try failed."""
        ...


class Destination(Protocol):
    """Where one download's bytes go; see the module docstring for what it must guarantee."""

    @property
    def description(self) -> str:
        """Where the bytes go, for log lines (no secrets)."""
        ...

    @property
    def random_access(self) -> bool:
        """Whether several segments may be written at once, at any offsets."""
        ...

    @property
    def worker_path(self) -> str | None:
        """A local file segment worker processes may write into; ``None``: writes go through :meth:`write`."""
        ...

    async def existing_copy(self, remote: RemoteStat, reader: RemoteReader) -> tuple[str | None, int]:
        """
        Whether the published target provably is the source already (``skip_unchanged``).

        :return: its hex sha256 (``None``: it is not), and bytes read from the source to decide
        """
        ...

    async def load_state(self) -> ResumeState | None:
        """
        The claim of earlier tries, not yet verified; ``None`` when there is none.

        :raises UnusableState: the state cannot be used; its message is the reason to restart
        """
        ...

    def kept_digest(self, start: int, end: int) -> str | None:
        """
        Hex sha256 of kept bytes ``[start, end)``, read back or recorded when they became durable.

        Asked for the last :data:`~.resume.verify.OVERLAP_LENGTH` bytes before each segment's durable
        offset; ``None`` when it cannot tell (the overlap check then fails, and the try restarts).
        """
        ...

    async def restart(self, fresh: ResumeState) -> None:
        """Drop every kept byte and record ``fresh`` (durably) as the state to fill."""
        ...

    async def resume(self, state: ResumeState) -> None:
        """Continue from the verified ``state``: drop bytes past what it claims."""
        ...

    def start_hash(self, state: ResumeState) -> StreamHasher:
        """A hasher of the whole file, already told about the kept bytes of ``state``."""
        ...

    async def write(self, offset: int, data: bytes) -> None:
        """
        Write ``data`` at ``offset`` (not durable yet).

        :raises LocalDiskFull: no room (the engine calls :meth:`make_room`, then checkpoints)
        """
        ...

    async def make_durable(self, state: ResumeState) -> ResumeState:
        """Make the bytes ``state`` claims durable, then record it; return what was recorded."""
        ...

    def make_room(self, written: ResumeState) -> ResumeState:
        """After a full disk: give back bytes so the checkpoint fits; return the reduced state."""
        ...

    def stored_size(self) -> int:
        """Bytes the destination holds now (a complete copy holds exactly the file's size)."""
        ...

    async def publish(self, mtime: int | None) -> None:
        """Make the complete, checked bytes the target, atomically; ``mtime`` when asked to keep it."""
        ...

    async def discard(self) -> None:
        """Drop the kept bytes and the state (never the published target)."""
        ...

    async def close(self) -> None:
        """Release what the destination holds open (kept bytes and state stay)."""
        ...
