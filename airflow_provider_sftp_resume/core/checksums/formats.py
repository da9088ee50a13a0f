"""
Reading a checksum file: which digest it gives for one file name.

The formats partners publish, all hand-parsed here because no library in the dependency tree reads
them (``hashlib`` computes digests, it does not parse ``sha256sum`` output):

- GNU coreutils (``sha256sum``, ``md5sum``, ...): ``<hex> <space><mark><name>`` per line, the mark
  ``*`` (binary) or a space (text); a line starting with ``\\`` has ``\\\\`` and ``\\n`` escaped in the
  name. One line, or one per file (``SHA256SUMS``).
- BSD (``sha256 -r`` aside, ``shasum --tag``, ``openssl dgst``): ``SHA256 (<name>) = <hex>``, also
  ``SHA2-256(<name>)= <hex>``.
- A bare digest, alone on the only line: it is this file's.

The algorithm is the digest's length (32 md5, 40 sha1, 64 sha256, 128 sha512); a BSD name or the
checksum file's suffix (``.md5``) must agree with it. Names are matched on their last component
(``./out/data.csv`` is ``data.csv``), as checksum files are usually made in another directory.
"""

from __future__ import annotations

import ntpath
import posixpath
import re
from dataclasses import dataclass

from airflow_provider_sftp_resume.core.checksums.algorithms import (
    algorithm_of,
    algorithm_of_suffix,
    is_hex_digest,
)

_BSD = re.compile(r"^(?P<algorithm>[A-Za-z0-9-]+) ?\((?P<name>.*)\) ?= ?(?P<digest>[0-9A-Fa-f]+)$")
_GNU = re.compile(r"^(?P<digest>[0-9A-Fa-f]+) [ *](?P<name>.+)$")


@dataclass(frozen=True)
class Digest:
    """
    A digest the source published or computed.

    :param algorithm: ``md5``, ``sha1``, ``sha256`` or ``sha512``
    :param hex: the digest, lower case
    :param via: how it was obtained, for the result (``checksum file``, ``check-file``, ``sha256sum``)
    """

    algorithm: str
    hex: str
    via: str

    def describe(self) -> str:
        """``sha256 via checksum file``, as the result says it."""
        return f"{self.algorithm} via {self.via}"


def _unescape(name: str) -> str:
    """Undo coreutils' escaping of ``\\`` and newlines in a name (lines starting with ``\\``)."""
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), name)


def _entries(text: str) -> list[tuple[str | None, str | None, str]]:
    """``(algorithm name or None, file name or None, digest)`` per line; raises ``ValueError``."""
    lines = [line.rstrip("\r") for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if len(lines) == 1 and is_hex_digest(lines[0].strip()):
        return [(None, None, lines[0].strip())]
    entries: list[tuple[str | None, str | None, str]] = []
    for number, line in enumerate(lines, 1):
        escaped = line.startswith("\\")
        body = line[1:] if escaped else line
        if match := _BSD.match(body):
            name = match["name"]
            entries.append((match["algorithm"], _unescape(name) if escaped else name, match["digest"]))
        elif match := _GNU.match(body):
            name = match["name"]
            entries.append((None, _unescape(name) if escaped else name, match["digest"]))
        else:
            raise ValueError(
                f"line {number} ({line[:80]!r}) is neither '<hex>  <name>' (sha256sum), "
                "'SHA256 (<name>) = <hex>' (BSD) nor a bare digest"
            )
    if not entries:
        raise ValueError("it is empty")
    return entries


def _same_file(listed: str, file_name: str) -> bool:
    """Whether a listed name is ``file_name``: itself, or the last component of a POSIX or Windows path."""
    return file_name in (listed, posixpath.basename(listed), ntpath.basename(listed))


def parse_checksum_file(text: str, file_name: str, checksum_path: str) -> Digest:
    """
    The digest ``text`` (a checksum file's content) gives for the file named ``file_name``.

    :param text: the checksum file, decoded
    :param file_name: the data file's name (its last path component)
    :param checksum_path: the checksum file's path, for its suffix and for messages
    :raises ValueError: no known format, no line for ``file_name``, contradicting lines, or a
        digest of an unknown algorithm; the message says which
    """
    found: set[tuple[str, str]] = set()
    names = []
    for named, listed, digest in _entries(text):
        if listed is not None and not _same_file(listed, file_name):
            names.append(listed)
            continue
        found.add((algorithm_of(digest, named), digest.lower()))
    if not found:
        shown = ", ".join(repr(n) for n in names[:5]) + (" ..." if len(names) > 5 else "")
        raise ValueError(f"it has no line for {file_name!r} (it lists {shown})")
    if len(found) > 1:
        raise ValueError(f"it gives {len(found)} different digests for {file_name!r}")
    ((algorithm, digest),) = found
    announced = algorithm_of_suffix(checksum_path)
    if announced is not None and announced != algorithm:
        raise ValueError(f"its name says {announced} but the digest has the length of {algorithm}")
    return Digest(algorithm, digest, "checksum file")
