"""
The SFTP ``check-file-name`` extension: the server hashes a file it holds and sends the digest.

Specified in draft-ietf-secsh-filexfer-extensions-00 (section 3) and answered by ProFTPD's mod_sftp
(``SFTPExtensions CheckFile``, on by default) and Bitvise; OpenSSH and the asyncssh server answer
"unsupported". Request: the path, a comma-separated list of algorithms (the server takes the first it
has), a byte range (0, 0: the whole file) and a block size (0: one digest). Reply
(``SSH_FXP_EXTENDED_REPLY``): the algorithm used, then the digest's raw bytes.

asyncssh's client has no API for extensions it does not implement, so this module is the one place
that reaches into it: it sends the request through the client's request handler
(``SFTPClient._handler._make_request``, the method asyncssh's own ``statvfs`` uses) after telling
that handler, on this instance only, that ``check-file-name`` is answered by an extended reply (the
class table of expected reply types is left alone). Both names are private; asyncssh 2.21 to 2.24
have them, and the tests run this against ProFTPD on the oldest and newest supported asyncssh.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncssh
from asyncssh.constants import FXP_EXTENDED_REPLY
from asyncssh.packet import PacketDecodeError, SSHPacket, String, UInt32, UInt64

from airflow_provider_sftp_resume.core.checksums.algorithms import HEX_LENGTHS
from airflow_provider_sftp_resume.core.checksums.formats import Digest
from airflow_provider_sftp_resume.core.errors import SourceChecksumUnavailable
from airflow_provider_sftp_resume.core.remote.failures import translated

if TYPE_CHECKING:
    from asyncssh.sftp import SFTPClientHandler

CHECK_FILE_NAME = b"check-file-name"
#: Asked for in this order: sha256 first, as the engine already computes it while the bytes arrive.
REQUESTED = ("sha256", "sha512", "sha1", "md5")
#: The spelling of each algorithm in the draft (and so in ProFTPD's replies).
WIRE_NAMES = {"md5": "md5", "sha1": "sha1", "sha256": "sha256", "sha512": "sha512"}


def _teach(handler: SFTPClientHandler) -> None:
    """Tell this handler (only) that ``check-file-name`` gets an extended reply, not a status."""
    table = handler._return_types
    if CHECK_FILE_NAME not in table:
        handler._return_types = {**table, CHECK_FILE_NAME: FXP_EXTENDED_REPLY}


def _decode(reply: SSHPacket, path: str) -> Digest:
    """The algorithm and digest of a ``check-file`` reply."""
    try:
        algorithm = reply.get_string().decode("ascii").lower()
        digest = reply.get_remaining_payload().hex()
    except (PacketDecodeError, UnicodeDecodeError) as exc:
        raise SourceChecksumUnavailable(
            f"The server's check-file reply for {path} is malformed ({exc})."
        ) from None
    if HEX_LENGTHS.get(algorithm) != len(digest):
        raise SourceChecksumUnavailable(
            f"The server's check-file reply for {path} uses {algorithm!r} with a {len(digest) // 2}-byte "
            f"digest; only {', '.join(REQUESTED)} are understood. Use a checksum file instead."
        )
    return Digest(algorithm, digest, "check-file")


async def check_file(sftp: asyncssh.SFTPClient, path: str) -> Digest | None:
    """
    Ask the server for the digest of the whole of ``path``; ``None`` when it has no ``check-file``.

    :param sftp: the session's asyncssh client
    :param path: the remote file
    :raises SourceChecksumUnavailable: the reply cannot be understood
    :raises TransferError: the request failed otherwise (translated as any SFTP error)
    """
    handler = sftp._handler  # see the module docstring for why the private handler
    _teach(handler)
    algorithms = ",".join(WIRE_NAMES[name] for name in REQUESTED).encode("ascii")
    with translated(f"asking the server for the checksum of {path} (check-file)"):
        try:
            reply = await handler._make_request(
                CHECK_FILE_NAME,
                String(sftp.encode(path)),
                String(algorithms),
                UInt64(0),
                UInt64(0),
                UInt32(0),
            )
        except asyncssh.SFTPOpUnsupported:
            return None
    if not isinstance(reply, SSHPacket):
        raise SourceChecksumUnavailable(f"The server sent no check-file reply for {path}.")
    return _decode(reply, path)
