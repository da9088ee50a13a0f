"""
The local files of one transfer: the target, its ``.part``, the sidecar and the lock.

Layout for a download to ``local_path = /data/in/dump.tar.gz``::

    /data/in/dump.tar.gz             the target; appears only when complete and checked
    /data/in/dump.tar.gz.part        bytes received so far
    /data/in/dump.tar.gz.part.json   resume state (see :mod:`.state`), replaced atomically
    /data/in/dump.tar.gz.part.lock   held (flock) while a try runs; removed on success

Files are created with mode ``0o666`` filtered by the process umask, as ``open()`` would, and never
through a pre-existing symlink (``O_NOFOLLOW``): a link planted at the ``.part`` or sidecar path is
refused rather than followed.

An upload of ``/data/out/report.csv`` keeps ``report.csv.upload-<digest>.json`` and ``.lock`` next
to it (or in ``state_dir``); the digest names the destination (server identity + remote path).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from airflow_provider_sftp_resume.core.errors import LocalDiskFull, LocalPathError, TransferError
from airflow_provider_sftp_resume.core.resume.state import MAX_SIDECAR_BYTES, ResumeState, UnusableState

PART_SUFFIX = ".part"
SIDECAR_SUFFIX = ".part.json"
LOCK_SUFFIX = ".part.lock"
S = TypeVar("S")
FILE_MODE = 0o666  # filtered by the umask, like open()
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC

if TYPE_CHECKING:
    from collections.abc import Callable


class SidecarDocument(Protocol):
    """A resume state that serialises itself for its sidecar."""

    def to_json(self) -> str:
        """The sidecar's text."""
        ...


@dataclass(frozen=True)
class LocalPaths:
    """
    The local files of one transfer: the local file itself, its resume sidecar and its lock.

    One helper for both directions. A download's sidecar and lock sit next to the target
    (:meth:`for_target`, with the ``.part``); an upload's next to the source or in ``state_dir``,
    named after the destination (:meth:`for_upload`).

    :param target: the local file (written by a download, read by an upload)
    :param sidecar: its resume state
    :param lock: held (flock) while a try runs
    """

    target: Path
    sidecar: Path
    lock: Path

    @classmethod
    def for_target(cls, local_path: str | os.PathLike[str]) -> LocalPaths:
        """Return a download's paths for ``local_path`` (made absolute, not resolved through links)."""
        target = Path(os.path.abspath(local_path))
        return cls(
            target,
            target.with_name(target.name + SIDECAR_SUFFIX),
            target.with_name(target.name + LOCK_SUFFIX),
        )

    @classmethod
    def for_upload(
        cls, source: str | os.PathLike[str], destination: str, state_dir: str | None
    ) -> LocalPaths:
        """
        Return an upload's paths for sending ``source`` to ``destination`` (``user@host:port/path``).

        :param state_dir: directory for the sidecar and lock; the source's own directory if ``None``
        """
        path = Path(os.path.abspath(source))
        digest = hashlib.sha256(destination.encode()).hexdigest()[:12]
        directory = Path(os.path.abspath(state_dir)) if state_dir else path.parent
        stem = f"{path.name}.upload-{digest}"
        return cls(path, directory / f"{stem}.json", directory / f"{stem}.lock")

    @property
    def part(self) -> Path:
        """Where a download writes bytes until the file is complete."""
        return self.target.with_name(self.target.name + PART_SUFFIX)

    def load(self, parse: Callable[[bytes], S]) -> S | None:
        """
        Read and parse the sidecar; ``None`` when there is none.

        :raises UnusableState: unreadable, or ``parse`` rejects it
        """
        try:
            return parse(read_sidecar(self.sidecar))
        except FileNotFoundError:
            return None

    def save(self, state: SidecarDocument) -> None:
        """Replace the sidecar atomically and durably."""
        write_sidecar(self.sidecar, state.to_json())

    def remove_state(self) -> None:
        """Remove the sidecar, and the temporary file a write killed half-way leaves."""
        remove_quietly(self.sidecar.with_name(self.sidecar.name + ".tmp"), self.sidecar)


def os_error_to_local(exc: OSError, path: Path, doing: str) -> TransferError:
    """
    Turn an ``OSError`` on a local path into the engine's error, with a hint how to fix it.

    :param exc: the error
    :param path: the path involved
    :param doing: what was being done (``"writing"``)
    """
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return LocalDiskFull(
            f"Local disk full while {doing} {path}. Free space on that file system; the next try "
            "resumes from the last checkpoint."
        )
    if exc.errno == errno.ELOOP:
        return LocalPathError(
            f"Refusing to follow the symbolic link at {path} while {doing} it. Remove the link; "
            "this package only writes regular files it creates itself."
        )
    if exc.errno == errno.EROFS:
        return LocalPathError(
            f"{path} is on a read-only file system ({exc.strerror}) while {doing} it. Remount that "
            "file system read-write or choose a local_path on a writable one."
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return LocalPathError(
            f"No permission to write {path} ({exc.strerror}). Give the Airflow worker's user write "
            "access to that directory or choose another local_path."
        )
    return LocalPathError(f"Cannot use local path {path} while {doing} it: {exc.strerror or exc}.")


def check_target(paths: LocalPaths, *, create_intermediate_dirs: bool) -> None:
    """
    Make sure the target can be written, creating its parent directories if asked to.

    :raises LocalPathError: ``local_path`` is a directory, or its parent is missing or unusable
    """
    target = paths.target
    if target.is_dir():
        raise LocalPathError(
            f"local_path {target} is a directory. Give the full path of the file to write, "
            f"for example {target / 'file.bin'}."
        )
    parent = target.parent
    if not parent.exists():
        if not create_intermediate_dirs:
            raise LocalPathError(
                f"The directory {parent} does not exist. Create it, or set create_intermediate_dirs=True."
            )
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise os_error_to_local(exc, parent, "creating") from None
    elif not parent.is_dir():
        raise LocalPathError(f"{parent} is not a directory, so {target.name} cannot be written there.")
    if not os.access(parent, os.W_OK | os.X_OK):
        if os.statvfs(parent).f_flag & os.ST_RDONLY:
            raise LocalPathError(
                f"{parent} is on a read-only file system, so {target.name} cannot be written there. "
                "Remount it read-write or choose a local_path on a writable file system."
            )
        raise LocalPathError(
            f"No permission to write in {parent}. Give the Airflow worker's user write access to "
            "that directory or choose another local_path."
        )


def open_part(paths: LocalPaths) -> int:
    """
    Open (or create) the ``.part`` file for writing and return its descriptor.

    :raises LocalPathError: the path is a symlink, a directory, or not writable
    """
    try:
        fd = os.open(paths.part, (_WRITE_FLAGS & ~os.O_WRONLY) | os.O_RDWR, FILE_MODE)
    except OSError as exc:
        raise os_error_to_local(exc, paths.part, "opening") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LocalPathError(f"{paths.part} exists and is not a regular file. Remove it and retry.")
    return fd


def pwrite_all(fd: int, data: bytes | memoryview, offset: int, path: Path) -> None:
    """
    Write all of ``data`` at ``offset`` (``os.pwrite`` may write less than asked).

    :raises LocalDiskFull: no space left
    :raises LocalPathError: any other failure to write ``path``
    """
    view = memoryview(data)
    try:
        while view:
            written = os.pwrite(fd, view, offset)
            view, offset = view[written:], offset + written
    except OSError as exc:
        raise os_error_to_local(exc, path, "writing") from None


def fsync_directory(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_sidecar(path: Path) -> bytes:
    """
    Read a sidecar file without following links or reading more than a sidecar can hold.

    :raises UnusableState: unreadable or not a regular file
    :raises FileNotFoundError: there is no sidecar
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise UnusableState(f"sidecar cannot be opened ({exc.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnusableState("sidecar is not a regular file")
        return os.read(fd, MAX_SIDECAR_BYTES + 1)
    finally:
        os.close(fd)


def write_sidecar(path: Path, text: str) -> None:
    """Replace a sidecar atomically: write a temporary file, fsync it, rename it over."""
    temporary = path.with_name(path.name + ".tmp")
    data = text.encode()
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    try:
        fd = os.open(temporary, _WRITE_FLAGS | os.O_EXCL | os.O_TRUNC, FILE_MODE)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except OSError as exc:
        raise os_error_to_local(exc, path, "writing") from None


def read_state(paths: LocalPaths) -> ResumeState:
    """
    Load a download's sidecar (for tests and tools; the engine goes through its destination).

    :raises UnusableState: unreadable or invalid
    :raises FileNotFoundError: there is no sidecar
    """
    return ResumeState.from_json(read_sidecar(paths.sidecar))


def write_state(paths: LocalPaths, state: ResumeState) -> None:
    """Replace a download's sidecar atomically."""
    paths.save(state)


def sha256_of_file(path: os.PathLike[str] | str) -> str:
    """Return the hex sha256 of a local file."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def remove_quietly(*files: Path) -> None:
    """Unlink files that may or may not exist."""
    for path in files:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def discard_partial(paths: LocalPaths) -> None:
    """Remove the ``.part`` and its sidecar (never the target)."""
    paths.remove_state()
    remove_quietly(paths.part)
