"""
Proving that kept bytes still belong to the remote file before resuming.

Checks, from cheapest to strongest (each costs at most one small read, whatever the file size):

``size``
    The remote size equals the size recorded when the download started. Always applied.
``mtime``
    The remote modification time is unchanged too.
``tail``
    The sha256 of the remote file's last 64 KiB is unchanged (the classic paramiko recipe).
    Catches a rewrite that changes the end of the file, even with size and mtime restored.
``overlap``
    The last 64 KiB of the kept bytes are read again from the server and compared byte for byte
    with the local ``.part``. Catches a rewrite near the resume point, and a local ``.part`` that
    does not hold what the server sent.

The default is ``mtime+tail+overlap``: three independent witnesses for about 128 KiB of reads.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_provider_sftp_resume.core.errors import RemoteChanged
from airflow_provider_sftp_resume.core.resume.state import RemoteFingerprint, ResumeState

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.remote.protocol import RemoteReader, RemoteStat

TAIL_LENGTH = 64 * 1024  # 64 KiB
OVERLAP_LENGTH = 64 * 1024  # 64 KiB


class VerifyCheck(enum.StrEnum):
    """One way of proving the remote file has not changed since the kept bytes were written."""

    SIZE = "size"
    MTIME = "mtime"
    TAIL = "tail"
    OVERLAP = "overlap"


DEFAULT_VERIFY = "mtime+tail+overlap"
_ORDER = list(VerifyCheck)


def parse_verify(spec: str | Iterable[str]) -> tuple[VerifyCheck, ...]:
    """
    Parse a ``verify`` argument: check names joined by ``+`` or given as a list.

    ``size`` is always included. The result is ordered cheapest first.

    :raises ValueError: a name is not a known check, or ``spec`` is neither a string nor a list
    """
    if isinstance(spec, str):
        names: list[object] = list(spec.split("+"))
    elif isinstance(spec, Iterable):
        names = list(spec)
    else:
        raise ValueError(
            f"verify must be check names joined by '+' or a list of them, got {spec!r} "
            f"(for example {DEFAULT_VERIFY!r})."
        )
    checks = {VerifyCheck.SIZE}
    for raw in names:
        name = str(raw).strip().lower()
        try:
            checks.add(VerifyCheck(name))
        except ValueError:
            known = ", ".join(c.value for c in VerifyCheck)
            raise ValueError(
                f"Unknown verify check {raw!r}. Use one or more of {known}, joined by '+' "
                f"(for example {DEFAULT_VERIFY!r})."
            ) from None
    return tuple(sorted(checks, key=_ORDER.index))


def format_verify(checks: Iterable[VerifyCheck]) -> str:
    """Return the canonical ``a+b+c`` spelling."""
    return "+".join(c.value for c in checks)


async def read_exact(reader: RemoteReader, offset: int, length: int) -> bytes:
    """
    Read exactly ``length`` bytes at ``offset``, following short reads.

    :raises RemoteChanged: the file ends before ``offset + length``
    """
    chunks: list[bytes] = []
    position, end = offset, offset + length
    while position < end:
        data = await reader.read(position, end - position)
        if not data:
            raise RemoteChanged(
                f"The remote file ended at byte {position}, before the expected {end}.", what="size"
            )
        chunks.append(data)
        position += len(data)
    return b"".join(chunks)


async def take_fingerprint(
    reader: RemoteReader, path: str, remote: RemoteStat, checks: Iterable[VerifyCheck]
) -> tuple[RemoteFingerprint, int]:
    """
    Record the identity of the remote file at the start of a fresh download.

    :return: the fingerprint and the number of bytes read to take it
    """
    tail_length = min(TAIL_LENGTH, remote.size) if VerifyCheck.TAIL in checks else 0
    digest = ""
    if tail_length:
        digest = hashlib.sha256(await read_exact(reader, remote.size - tail_length, tail_length)).hexdigest()
    fingerprint = RemoteFingerprint(
        path=path, size=remote.size, mtime=remote.mtime, tail_length=tail_length, tail_sha256=digest
    )
    return fingerprint, tail_length


@dataclass(frozen=True)
class Verdict:
    """
    Outcome of checking kept bytes against the remote file.

    :param passed: checks that ran and passed, in order
    :param failure: why the kept bytes cannot be used, or ``None`` when all passed
    :param bytes_read: bytes read from the server to decide
    """

    passed: tuple[VerifyCheck, ...]
    failure: str | None
    bytes_read: int

    @property
    def ok(self) -> bool:
        """Whether the kept bytes may be resumed from."""
        return self.failure is None


def _read_local(fd: int, offset: int, length: int) -> bytes:
    chunks: list[bytes] = []
    while length > 0:
        data = os.pread(fd, length, offset)
        if not data:
            break
        chunks.append(data)
        offset += len(data)
        length -= len(data)
    return b"".join(chunks)


async def verify_kept_bytes(
    state: ResumeState,
    remote: RemoteStat,
    reader: RemoteReader,
    local_fd: int,
    checks: Iterable[VerifyCheck],
) -> Verdict:
    """
    Decide whether the durable bytes in ``state`` still match the remote file.

    :param state: the resume state from the sidecar
    :param remote: the remote file's attributes now
    :param reader: the remote file, open
    :param local_fd: the ``.part`` file, readable
    :param checks: which checks to run (``size`` always runs)
    """
    checks = tuple(checks)
    recorded = state.remote
    passed: list[VerifyCheck] = []
    bytes_read = 0

    def fail(reason: str) -> Verdict:
        return Verdict(tuple(passed), reason, bytes_read)

    if remote.size != recorded.size:
        return fail(f"remote size changed from {recorded.size} to {remote.size} bytes")
    passed.append(VerifyCheck.SIZE)
    if VerifyCheck.MTIME in checks:
        if remote.mtime != recorded.mtime:
            return fail(f"remote mtime changed from {recorded.mtime} to {remote.mtime}")
        passed.append(VerifyCheck.MTIME)
    if VerifyCheck.TAIL in checks:
        if recorded.tail_length == 0 and remote.size > 0:
            return fail("the sidecar has no tail digest to compare (written with other verify settings)")
        tail = await read_exact(reader, remote.size - recorded.tail_length, recorded.tail_length)
        bytes_read += len(tail)
        if hashlib.sha256(tail).hexdigest() != recorded.tail_sha256:
            return fail(f"the last {recorded.tail_length} bytes of the remote file changed")
        passed.append(VerifyCheck.TAIL)
    if VerifyCheck.OVERLAP in checks:
        windows = [
            (max(s.start, s.done - OVERLAP_LENGTH), s.done) for s in state.segments if s.done > s.start
        ]
        remote_windows = await asyncio.gather(*(read_exact(reader, a, b - a) for a, b in windows))
        for (start, end), remote_bytes in zip(windows, remote_windows, strict=True):
            bytes_read += len(remote_bytes)
            if _read_local(local_fd, start, end - start) != remote_bytes:
                return fail(f"kept bytes {start}-{end} differ from the remote file")
        passed.append(VerifyCheck.OVERLAP)
    return Verdict(tuple(passed), None, bytes_read)
