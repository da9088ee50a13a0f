"""
Debian's real OpenSSH ``sftp-server`` as sshd's sftp subsystem, its advertised extensions controlled.

sshd starts this script (``Subsystem sftp <python> <this file> ...``). It runs
``/usr/lib/openssh/sftp-server`` with the client's stdin, optionally denying requests with ``-P``,
logs the server's own log lines (``-e -l LEVEL``) to a file, and passes every byte the server sends
through untouched except the first packet, ``SSH_FXP_VERSION``, into which it can put extension
names back. That reproduces OpenSSH 6.5-8.5, which kept advertising ``fsync@openssh.com``,
``posix-rename@openssh.com`` and ``limits@openssh.com`` after ``sftp-server -P`` denied them and then
answered ``SSH2_FX_PERMISSION_DENIED`` (OpenSSH 8.6 and later, Debian 12's 9.2 among them, stop
advertising denied extensions).

It imports nothing from the project, since sshd runs it as a plain program.
"""

from __future__ import annotations

import argparse
import os
import struct
import subprocess
import sys

SFTP_SERVER = "/usr/lib/openssh/sftp-server"
FXP_VERSION = 2


def _read_exact(fd: int, length: int) -> bytes:
    data = b""
    while len(data) < length:
        chunk = os.read(fd, length - len(data))
        if not chunk:
            raise EOFError("sftp-server closed its output")
        data += chunk
    return data


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _string(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def _advertised(body: bytes) -> set[bytes]:
    """Extension names in an ``SSH_FXP_VERSION`` packet body (type byte, uint32 version, pairs)."""
    names: set[bytes] = set()
    position = 5
    while position < len(body):
        for index in range(2):
            (length,) = struct.unpack_from(">I", body, position)
            if index == 0:
                names.add(body[position + 4 : position + 4 + length])
            position += 4 + length
    return names


def rewrite_version(body: bytes, advertise: list[bytes]) -> bytes:
    """
    Return the ``SSH_FXP_VERSION`` body with each of ``advertise`` added (version ``"1"``) if missing.

    :param body: the packet without its length prefix
    :param advertise: extension names to (re)advertise
    """
    if not body or body[0] != FXP_VERSION:
        return body
    present = _advertised(body)
    return body + b"".join(_string(name) + _string(b"1") for name in advertise if name not in present)


def main(argv: list[str] | None = None) -> int:
    """Run sftp-server; filter its first reply; return its exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--deny", default="", help="comma-separated requests for sftp-server -P")
    parser.add_argument("--advertise", default="", help="comma-separated extension names to put back")
    parser.add_argument("--log", default=None, help="file for sftp-server's own log lines")
    parser.add_argument("--level", default="ERROR", help="sftp-server -l log level (DEBUG3 shows fsync)")
    args = parser.parse_args(argv)
    command = [SFTP_SERVER, "-e", "-l", args.level]
    if args.deny:
        command += ["-P", args.deny]
    log = open(args.log, "ab") if args.log else subprocess.DEVNULL  # noqa: SIM115 - lives as long as the server
    server = subprocess.Popen(command, stdin=0, stdout=subprocess.PIPE, stderr=log)
    assert server.stdout is not None
    source = server.stdout.fileno()
    advertise = [name.encode() for name in args.advertise.split(",") if name]
    try:
        (length,) = struct.unpack(">I", _read_exact(source, 4))
        body = rewrite_version(_read_exact(source, length), advertise)
        _write_all(1, struct.pack(">I", len(body)) + body)
        while chunk := os.read(source, 1 << 20):
            _write_all(1, chunk)
    except (EOFError, BrokenPipeError):
        pass
    finally:
        server.stdout.close()
    return server.wait()


if __name__ == "__main__":
    sys.exit(main())
