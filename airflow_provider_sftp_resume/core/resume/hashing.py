"""
The sha256 of the local file, computed while the file is still being written.

A thread follows the highest offset written so far (the *watermark*) from offset 0 and feeds
``hashlib``, which releases the GIL on large buffers. Blocks the writer hands over are hashed from
memory; anything else (kept bytes of a resumed try, blocks written by other connections) is read
back from the ``.part``. On a resumed try the
kept bytes are hashed alongside the new transfer instead of before it, so resuming starts moving
bytes at once, and when the last block lands only the unhashed remainder is left.

``hashlib`` objects cannot be saved and restored, so a resumed try has to read the kept bytes once;
doing that in the background is the cheapest place for it.
"""

from __future__ import annotations

import collections
import hashlib
import os
import threading
from typing import TYPE_CHECKING

from airflow_provider_sftp_resume.core.errors import IntegrityError
from airflow_provider_sftp_resume.core.resume.localfiles import os_error_to_local

if TYPE_CHECKING:
    from pathlib import Path

CHUNK = 1024 * 1024  # 1 MiB
#: ``_final`` once the transfer failed: stop hashing.
ABANDONED = -1
#: Seconds :meth:`TrailingHasher.abandon` waits for the thread (one chunk takes milliseconds).
ABANDON_WAIT = 0.2
#: Blocks kept for hashing from memory; beyond this the hasher reads the file instead (bounded RAM).
MAX_QUEUED_BLOCKS = 64
#: The thread is woken once this many bytes (or half of :data:`MAX_QUEUED_BLOCKS`) wait to be hashed,
#: and at :meth:`TrailingHasher.finish`, not for every block: a wake-up per 256 KiB block cost more
#: CPU in futex calls than it saved (``strace -c``).
WAKE_BYTES = 4 * 1024 * 1024


class TrailingHasher:
    """
    Hash a file that is being appended to, following a watermark.

    :param path: the file to hash (opened read-only here)
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        self._digest = hashlib.sha256()
        self._hashed = 0
        self._watermark = 0
        self._blocks: collections.deque[tuple[int, bytes]] = collections.deque()
        self._final: int | None = None
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="sftp-resume-sha256", daemon=True)
        self._thread.start()

    def advance(self, watermark: int, block: tuple[int, bytes] | None = None) -> None:
        """
        Tell the hasher that bytes ``[0, watermark)`` are written.

        :param watermark: end of the contiguous written prefix
        :param block: the ``(offset, data)`` just written, if the caller has it in memory: hashed from
            memory when it is next in line, which saves reading it back from the file
        """
        with self._cond:
            if block is not None and len(self._blocks) < MAX_QUEUED_BLOCKS:
                self._blocks.append(block)
            if watermark > self._watermark:
                self._watermark = watermark
                if watermark - self._hashed >= WAKE_BYTES or len(self._blocks) >= MAX_QUEUED_BLOCKS // 2:
                    self._cond.notify()

    def finish(self, size: int) -> str:
        """
        Wait until ``size`` bytes are hashed and return the hex digest.

        :raises LocalPathError: the file could not be read back
        :raises IntegrityError: the file is shorter than ``size`` (something else truncated it)
        """
        with self._cond:
            self._watermark = max(self._watermark, size)
            self._final = size
            self._cond.notify()
        self._thread.join()
        if isinstance(self._error, OSError):
            raise os_error_to_local(self._error, self._path, "reading") from self._error
        if self._error is not None:
            raise self._error
        if self._hashed != size:
            raise IntegrityError(
                f"Read back only {self._hashed} of {size} bytes of {self._path}: something else "
                "shortened it during the transfer. The next try finds it shorter than its resume state "
                "and starts over."
            )
        return self._digest.hexdigest()

    def abandon(self) -> None:
        """
        Stop hashing (the transfer failed) and release the file, without waiting for the kept prefix.

        The thread stops after the chunk in hand (at most :data:`CHUNK` bytes) and closes the file
        itself, so a failure path (``on_kill`` included) never waits for gigabytes to be hashed.
        """
        with self._cond:
            self._final = ABANDONED
            self._cond.notify()
        self._thread.join(ABANDON_WAIT)

    def _from_memory(self, limit: int) -> bytes:
        """The next bytes to hash if a queued block holds them; blocks already hashed are dropped."""
        with self._cond:
            for _ in range(len(self._blocks)):
                offset, data = self._blocks.popleft()
                end = offset + len(data)
                if end <= self._hashed:
                    continue  # already hashed (read back from the file meanwhile)
                if offset <= self._hashed and end <= limit:
                    return data[self._hashed - offset :]
                self._blocks.append((offset, data))  # not its turn yet: keep it
        return b""

    def _abandoned(self) -> bool:
        return self._final == ABANDONED  # one int read: no lock needed to notice it

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while self._hashed >= self._watermark and self._final is None:
                        self._cond.wait()
                    if self._abandoned():
                        return
                    limit = self._watermark
                    final = self._final
                while self._hashed < limit:
                    if self._abandoned():
                        return
                    data = self._from_memory(limit) or os.pread(
                        self._fd, min(CHUNK, limit - self._hashed), self._hashed
                    )
                    if not data:
                        return
                    self._digest.update(data)
                    self._hashed += len(data)
                if final is not None and self._hashed >= final:
                    return
        except BaseException as exc:  # reported by finish()
            self._error = exc
        finally:
            os.close(self._fd)  # the thread owns the descriptor: abandon() does not wait for it
