"""
An exclusive, non-blocking lock on a local target, so two tries never interleave their writes.

``fcntl.flock`` is released by the kernel when the holder dies (SIGKILL included), so a killed try
never leaves a stale lock. The lock file is removed on release; because another process may have
opened the old file just before that, :meth:`TransferLock.acquire` re-checks after locking that the
path still names the file it locked.
"""

from __future__ import annotations

import fcntl
import os
from typing import TYPE_CHECKING, Self

from airflow_provider_sftp_resume.core.errors import TransferLocked
from airflow_provider_sftp_resume.core.resume.localfiles import FILE_MODE, os_error_to_local

if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType


class TransferLock:
    """
    Hold ``<local_path>.part.lock`` for the duration of a ``with`` block.

    :param path: the lock file
    :param target: the local path it protects (for the message)
    """

    def __init__(self, path: Path, target: Path) -> None:
        self._path = path
        self._target = target
        self._fd: int | None = None

    def acquire(self) -> None:
        """
        Take the lock or fail at once.

        :raises TransferLocked: another process holds it
        """
        while True:
            try:
                fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
            except OSError as exc:
                raise os_error_to_local(exc, self._path, "creating the lock") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise TransferLocked(
                    f"Another transfer to {self._target} is running (it holds {self._path}). Two "
                    "tries must not write the same local_path at once; this try stops without "
                    "touching the file. Wait for the other one, or give the tasks different local paths."
                ) from None
            try:
                same_file = os.path.samestat(os.fstat(fd), os.stat(self._path, follow_symlinks=False))
            except FileNotFoundError:
                same_file = False
            if same_file:
                self._fd = fd
                return
            os.close(fd)  # the holder removed the file between our open and our lock: try again

    def fileno(self) -> int | None:
        """The descriptor holding the lock while it is held (a child that inherits it holds it too)."""
        return self._fd

    def release(self) -> None:
        """Remove the lock file and release the lock."""
        if self._fd is None:
            return
        try:
            os.unlink(self._path)
        except FileNotFoundError:
            pass
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
