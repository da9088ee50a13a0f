"""
What the engine calls: gather the source's own digests of a file, and compare a copy with them.

A download asks :func:`source_digests` for the remote file once every byte is in and the file is
proven unchanged, then :func:`compare` checks the ``.part`` before it is published; an upload asks
the server about its temporary file before the rename (:func:`server_digest`) and reads the local
checksum file with :func:`local_checksum_file`. sha256 costs nothing extra: the engine computes it
while the bytes stream; another algorithm hashes the finished copy once, in a thread.
"""

from __future__ import annotations

import asyncio
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_provider_sftp_resume.core.checksums.algorithms import hash_file
from airflow_provider_sftp_resume.core.checksums.checkfile import check_file
from airflow_provider_sftp_resume.core.checksums.command import run_sha256sum
from airflow_provider_sftp_resume.core.checksums.formats import Digest, parse_checksum_file
from airflow_provider_sftp_resume.core.checksums.rule import MAX_CHECKSUM_FILE, ChecksumRule, SourceChecksum
from airflow_provider_sftp_resume.core.errors import (
    ChecksumFileInvalid,
    ChecksumFileMissing,
    ChecksumMismatch,
    IntegrityError,
    RemoteFileNotFound,
    SourceChecksumUnavailable,
    TransferError,
)
from airflow_provider_sftp_resume.core.options import answer_within
from airflow_provider_sftp_resume.core.remote.protocol import close_quietly
from airflow_provider_sftp_resume.core.remote.sftp import AsyncsshFileSystem
from airflow_provider_sftp_resume.core.threads import in_thread

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.logs import Logger
    from airflow_provider_sftp_resume.core.remote.protocol import RemoteFileSystem

#: Slowest rate assumed for a server hashing a file it holds: its answer may take size / this.
SERVER_HASH_RATE = 20 * 1024 * 1024  # 20 MiB/s


@dataclass(frozen=True)
class Verdict:
    """
    How a copy compares with the source's digests.

    :param proof: what proved it, for the result (``sha256 via checksum file``); ``None``: nothing did
    :param mismatch: what differs, when something does
    """

    proof: str | None = None
    mismatch: str | None = None


def _missing(path: str, rule: ChecksumRule, log: Logger) -> None:
    if rule.missing_fails:
        raise ChecksumFileMissing(
            f"The checksum file {path} does not exist (yet). Partners often publish it after the data, "
            "so the try is retried: the next one looks again (a download keeps its complete .part and "
            "fetches nothing more). Fix checksum_file if the name is wrong, or set "
            "checksum_file_missing='skip' to go on without it."
        )
    log.warning(
        "The checksum file %s does not exist; going on without it (checksum_file_missing='skip')", path
    )


def _parse(data: bytes, file_name: str, path: str) -> Digest:
    if len(data) > MAX_CHECKSUM_FILE:
        raise ChecksumFileInvalid(
            f"The checksum file {path} has over {MAX_CHECKSUM_FILE} bytes, too large for a checksum file; "
            "check checksum_file."
        )
    try:
        return parse_checksum_file(data.decode("utf-8-sig"), file_name, path)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ChecksumFileInvalid(
            f"The checksum file {path} cannot be used: {exc}. Give the checksum file of this file "
            "(sha256sum/md5sum output, 'SHA256 (name) = hex', or a bare digest)."
        ) from None


async def _read_remote(fs: RemoteFileSystem, path: str) -> bytes:
    """The first :data:`MAX_CHECKSUM_FILE` + 1 bytes of a remote file (enough to tell it is too large)."""
    reader = await fs.open_reader(path)
    try:
        data = b""
        while len(data) <= MAX_CHECKSUM_FILE:
            chunk = await reader.read(len(data), min(fs.max_read_len, MAX_CHECKSUM_FILE + 1 - len(data)))
            if not chunk:
                break
            data += chunk
        return data
    finally:
        await close_quietly(reader)


async def remote_checksum_file(
    fs: RemoteFileSystem, path: str, file_name: str, rule: ChecksumRule, *, stall_timeout: float, log: Logger
) -> Digest | None:
    """The digest the remote checksum file ``path`` gives for ``file_name``; ``None`` when skipped."""
    try:
        data = await answer_within(_read_remote(fs, path), stall_timeout, f"reading the checksum file {path}")
    except RemoteFileNotFound:
        _missing(path, rule, log)
        return None
    return _parse(data, file_name, path)


async def local_checksum_file(path: str, file_name: str, rule: ChecksumRule, log: Logger) -> Digest | None:
    """The digest the local checksum file ``path`` gives for ``file_name``; ``None`` when skipped."""

    def read() -> bytes | None:
        try:
            with open(path, "rb") as handle:
                return handle.read(MAX_CHECKSUM_FILE + 1)
        except FileNotFoundError:
            return None

    data = await asyncio.to_thread(read)
    if data is None:
        _missing(path, rule, log)
        return None
    return _parse(data, file_name, path)


async def server_digest(
    fs: RemoteFileSystem, path: str, how: SourceChecksum, *, size: int, stall_timeout: float, log: Logger
) -> Digest | None:
    """
    The digest the server computes of ``path``; ``None`` for ``auto`` on a server that cannot.

    :raises SourceChecksumUnavailable: ``check-file`` or ``command`` was asked for and cannot be had
    """
    deadline = stall_timeout + size / SERVER_HASH_RATE
    what = f"waiting for the server's checksum of {path}"
    if not isinstance(fs, AsyncsshFileSystem):
        found = None
    elif how is SourceChecksum.COMMAND:
        if fs.ssh_connection is None:
            raise SourceChecksumUnavailable("This session has no SSH connection to run a command on.")
        return await answer_within(run_sha256sum(fs.ssh_connection, path), deadline, what)
    else:
        found = await answer_within(check_file(fs.sftp_client, path), deadline, what)
    if found is None and how is SourceChecksum.CHECK_FILE:
        raise SourceChecksumUnavailable(
            f"The server does not answer the SFTP check-file extension for {path} (OpenSSH never does; "
            "ProFTPD's mod_sftp and Bitvise do). Use source_checksum='command' where the login has a "
            "shell with sha256sum, a checksum file, or source_checksum='auto' to check only where it can."
        )
    if found is None:
        log.info("The server does not answer check-file; %s is not checked by the server", path)
    return found


async def source_digests(
    fs: RemoteFileSystem,
    remote_path: str,
    rule: ChecksumRule,
    *,
    size: int,
    stall_timeout: float,
    log: Logger,
) -> list[Digest]:
    """Every digest of ``remote_path`` the rule asks for: its checksum file's, the server's."""
    digests = []
    checksum_path = rule.checksum_file_for(remote_path)
    if checksum_path is not None:
        name = posixpath.basename(remote_path)
        found = await remote_checksum_file(
            fs, checksum_path, name, rule, stall_timeout=stall_timeout, log=log
        )
        digests.append(found)
    if rule.server_side is not None:
        digests.append(
            await server_digest(
                fs, remote_path, rule.server_side, size=size, stall_timeout=stall_timeout, log=log
            )
        )
    return [digest for digest in digests if digest is not None]


async def compare(digests: list[Digest], local: str | None, sha256: str) -> Verdict:
    """
    Compare the copy (hex ``sha256`` known; ``local``: where to read it for other algorithms).

    :raises SourceChecksumUnavailable: an algorithm other than sha256 for a copy that cannot be read back
    """
    for digest in digests:
        if digest.algorithm == "sha256":
            actual = sha256
        elif local is None:
            raise SourceChecksumUnavailable(
                f"The source's {digest.describe()} cannot be checked: this destination cannot be read back "
                "to compute it. Use a sha256 checksum."
            )
        else:
            actual = await in_thread(hash_file, Path(local), digest.algorithm)
        if actual != digest.hex:
            return Verdict(mismatch=f"{digest.algorithm} {actual}, but the {digest.via} says {digest.hex}")
    return Verdict(proof=", ".join(d.describe() for d in digests) or None)


async def prove_copy(
    fs: RemoteFileSystem,
    remote_path: str,
    rule: ChecksumRule | None,
    *,
    size: int,
    stall_timeout: float,
    local: str | None,
    sha256: str,
    log: Logger,
) -> Verdict:
    """Compare a download's copy (``local``, of hex ``sha256``) with the source's own checksums."""
    if rule is None:
        return Verdict()
    digests = await source_digests(fs, remote_path, rule, size=size, stall_timeout=stall_timeout, log=log)
    return await compare(digests, local, sha256)


def expected_sha256_error(
    remote_path: str, digest: str, expected: str | None, *, resumed: bool
) -> TransferError | None:
    """The error for a copy whose sha256 is not ``expected_sha256``; ``None`` when it is, or none is set."""
    if not expected or digest == expected:
        return None
    if resumed:
        return IntegrityError(
            f"The finished file has sha256 {digest}, expected {expected}. Part of it was kept from "
            "an earlier try, so the partial copy was discarded; the next try downloads it afresh."
        )
    return ChecksumMismatch(
        f"A complete fresh download of {remote_path} has sha256 {digest}, but "
        f"expected_sha256 is {expected}. The remote file is not the one expected: check the "
        "path and the expected checksum. The existing local file, if any, was left untouched."
    )


def mismatch_error(subject: str, mismatch: str, *, resumed: bool) -> TransferError:
    """
    The error for a copy that differs from the source's checksum.

    A copy partly kept from earlier tries may hold bytes of ours that went bad: retriable, the next
    try starts afresh. A fresh copy that differs is not the file the source vouches for: a retry would
    fetch the same bytes, so it fails without retry.
    """
    if resumed:
        return IntegrityError(
            f"{subject} has {mismatch}. Part of it was kept from an earlier try, so the partial copy "
            "was discarded; the next try transfers it afresh."
        )
    return ChecksumMismatch(
        f"{subject} has {mismatch}: the file is not the one its source vouches for (or the checksum "
        "is stale). The partial copy was discarded and the existing target, if any, left untouched; "
        "check the file and its checksum with the partner."
    )
