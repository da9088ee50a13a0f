"""The digests a source may publish (md5, sha1, sha256, sha512), told apart by their length."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import os

#: Hex digest length of each algorithm a checksum may use; the lengths are all different.
HEX_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}
#: The names of :data:`HEX_LENGTHS` by digest length.
BY_LENGTH = {length: name for name, length in HEX_LENGTHS.items()}
#: How the algorithm is spelt in BSD-style lines and file suffixes (``SHA256 (x) = ...``, ``.sha256``).
ALIASES = {
    "md5": "md5",
    "sha1": "sha1",
    "sha-1": "sha1",
    "sha256": "sha256",
    "sha-256": "sha256",
    "sha2-256": "sha256",
    "sha512": "sha512",
    "sha-512": "sha512",
    "sha2-512": "sha512",
}
HEX_DIGITS = frozenset("0123456789abcdef")


def is_hex_digest(text: str) -> bool:
    """Whether ``text`` is a hex digest of one of the known algorithms (lower or upper case)."""
    return len(text) in BY_LENGTH and set(text.lower()) <= HEX_DIGITS


def algorithm_of(digest: str, named: str | None = None) -> str:
    """
    The algorithm of a hex ``digest``, from its length; ``named`` (from a BSD line) must agree.

    :raises ValueError: not a hex digest of md5, sha1, sha256 or sha512, or not of ``named``
    """
    if not is_hex_digest(digest):
        raise ValueError(
            f"{digest[:140]!r} is not a hex digest of md5, sha1, sha256 or sha512 "
            "(32, 40, 64 or 128 hexadecimal characters)"
        )
    algorithm = BY_LENGTH[len(digest)]
    if named is not None and ALIASES.get(named.lower()) != algorithm:
        raise ValueError(f"the line says {named} but its digest has the length of {algorithm}")
    return algorithm


def algorithm_of_suffix(path: str) -> str | None:
    """The algorithm a checksum file's name announces (``data.csv.md5``: md5), or ``None``."""
    suffix = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    name = suffix.removesuffix("sum").removesuffix("sums")  # .sha256sum, SHA256SUMS
    return ALIASES.get(name)


def hash_file(path: os.PathLike[str] | str, algorithm: str) -> str:
    """Hex digest of a local file (blocking: call in a thread; ``hashlib`` releases the GIL)."""
    with open(path, "rb") as handle:
        # md5 and sha1 are not for security here: they check against the digest the source published.
        return hashlib.file_digest(handle, lambda: hashlib.new(algorithm, usedforsecurity=False)).hexdigest()
