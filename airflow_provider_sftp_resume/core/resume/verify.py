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
    The last 64 KiB of the kept bytes are read again from the server and compared with what the
    destination kept (the local ``.part`` is read back; a destination that cannot read its kept
    bytes gives the digest it recorded when they became durable). Catches a rewrite near the
    resume point, and a destination that does not hold what the server sent.

The default is ``mtime+tail+overlap``: three independent witnesses for about 128 KiB of reads.

Every comparison of remote bytes with what they should be, in both directions (kept bytes, the
tail after a transfer, an existing target, an upload's kept prefix), goes through
:func:`first_mismatch`: read the ranges from the server, all in flight, and compare their sha256
with an :data:`Expected` (a digest read from local bytes, or one recorded earlier).
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_provider_sftp_resume.core.errors import RemoteChanged
from airflow_provider_sftp_resume.core.resume.state import RemoteFingerprint, ResumeState

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.remote.protocol import RemoteReader, RemoteStat

TAIL_LENGTH = 64 * 1024  # 64 KiB
OVERLAP_LENGTH = 64 * 1024  # 64 KiB

#: ``(start, end)`` -> hex sha256 the bytes ``[start, end)`` should have; ``None`` when unknown
#: (a mismatch).
Expected = Callable[[int, int], "str | None"]
Range = tuple[int, int]


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
            raise RemoteChanged(f"The remote file ended at byte {position}, before the expected {end}.")
        chunks.append(data)
        position += len(data)
    return b"".join(chunks)


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def tail_range(size: int, length: int = TAIL_LENGTH) -> Range:
    """The last ``length`` bytes of a file of ``size`` bytes (all of a smaller one)."""
    return size - min(length, size), size


def local_digests(fd: int) -> Expected:
    """What a range should hold according to a local file open at ``fd`` (read back, 64 KiB-sized)."""

    def digest(start: int, end: int) -> str | None:
        data = _read_local(fd, start, end - start)
        return sha256_hex(data) if len(data) == end - start else None

    return digest


def recorded_digest(window: Range, digest: str) -> Expected:
    """What a range should hold according to a digest recorded for ``window`` (only that window)."""
    return lambda start, end: digest if (start, end) == window else None


async def first_mismatch(
    reader: RemoteReader, ranges: Sequence[Range], expected: Expected
) -> tuple[Range | None, int]:
    """
    Read ``ranges`` from the server (all in flight) and compare each with ``expected``.

    :return: the first range that differs (``None``: all match), and the bytes read
    :raises RemoteChanged: the remote file is shorter than a range
    """
    ranges = [(start, end) for start, end in ranges if end > start]
    blocks = await asyncio.gather(*(read_exact(reader, start, end - start) for start, end in ranges))
    read = sum(len(block) for block in blocks)
    for (start, end), block in zip(ranges, blocks, strict=True):
        if sha256_hex(block) != expected(start, end):
            return (start, end), read
    return None, read


async def take_fingerprint(
    reader: RemoteReader, path: str, remote: RemoteStat, checks: Iterable[VerifyCheck], *, server: str
) -> tuple[RemoteFingerprint, int]:
    """
    Record the identity of the remote file at the start of a fresh download.

    :param server: the session factory's identity (who serves ``path``)

    :return: the fingerprint and the number of bytes read to take it
    """
    tail_length = min(TAIL_LENGTH, remote.size) if VerifyCheck.TAIL in checks else 0
    digest = ""
    if tail_length:
        digest = sha256_hex(await read_exact(reader, remote.size - tail_length, tail_length))
    fingerprint = RemoteFingerprint(
        path=path,
        size=remote.size,
        mtime=remote.mtime,
        tail_length=tail_length,
        tail_sha256=digest,
        server=server,
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
    kept: Expected,
    checks: Iterable[VerifyCheck],
) -> Verdict:
    """
    Decide whether the durable bytes in ``state`` still match the remote file.

    :param state: the resume state the destination holds
    :param remote: the remote file's attributes now
    :param reader: the remote file, open
    :param kept: what the destination kept (its ``kept_digest``)
    :param checks: which checks to run (``size`` always runs)
    """
    checks = tuple(checks)
    recorded = state.remote
    passed: list[VerifyCheck] = []
    if remote.size != recorded.size:
        return Verdict((), f"remote size changed from {recorded.size} to {remote.size} bytes", 0)
    passed.append(VerifyCheck.SIZE)
    if VerifyCheck.MTIME in checks:
        if remote.mtime != recorded.mtime:
            return Verdict(tuple(passed), f"remote mtime changed from {recorded.mtime} to {remote.mtime}", 0)
        passed.append(VerifyCheck.MTIME)
    bytes_read = 0
    if VerifyCheck.TAIL in checks:
        if recorded.tail_length == 0 and remote.size > 0:
            reason = "the sidecar has no tail digest to compare (written with other verify settings)"
            return Verdict(tuple(passed), reason, 0)
        window = tail_range(remote.size, recorded.tail_length)
        differs, bytes_read = await first_mismatch(
            reader, [window], recorded_digest(window, recorded.tail_sha256)
        )
        if differs is not None:
            return Verdict(
                tuple(passed), f"the last {recorded.tail_length} bytes of the remote file changed", bytes_read
            )
        passed.append(VerifyCheck.TAIL)
    if VerifyCheck.OVERLAP in checks:
        windows = [(max(s.start, s.done - OVERLAP_LENGTH), s.done) for s in state.segments]
        differs, read = await first_mismatch(reader, windows, kept)
        bytes_read += read
        if differs is not None:
            reason = f"kept bytes {differs[0]}-{differs[1]} differ from the remote file"
            return Verdict(tuple(passed), reason, bytes_read)
        passed.append(VerifyCheck.OVERLAP)
    return Verdict(tuple(passed), None, bytes_read)


async def recheck_tail(reader: RemoteReader, fingerprint: RemoteFingerprint) -> int:
    """
    After a transfer: the remote file's last bytes are still those fingerprinted at its start.

    :return: bytes read
    :raises RemoteChanged: they differ (the copy could mix two versions)
    """
    if not fingerprint.tail_length:
        return 0
    window = tail_range(fingerprint.size, fingerprint.tail_length)
    differs, read = await first_mismatch(reader, [window], recorded_digest(window, fingerprint.tail_sha256))
    if differs is not None:
        raise RemoteChanged(
            "The end of the remote file changed while it was downloaded; the partial copy "
            "was discarded and the next try starts over."
        )
    return read
