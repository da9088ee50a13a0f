"""
A whole-file SHA-256 whose state can be saved at a 64-byte boundary and continued in another process.

An S3 multipart upload cannot read its kept bytes back before it is complete, so a resumed try on
another worker must continue the whole-file hash where the last try left it. ``hashlib`` objects
cannot be serialised. Libraries looked at (PyPI): ``rehash`` refuses OpenSSL 3 (it copies OpenSSL's
private structures out of CPython's objects); ``rehashes`` (Rust, 0.3.0 beta) has Linux wheels only
and saves an undocumented, library-specific byte layout; ``hashstate`` is unmaintained since 2018.
So this small piece is hand-written, and its saved state is the standard one (FIPS 180-4): at an
offset that is a multiple of the 64-byte block, SHA-256's whole state is the eight 32-bit chaining
words plus the number of bytes hashed. Any worker, whatever its Python or OpenSSL, can continue it.

The hashing itself runs in OpenSSL's libcrypto (the library Python's own ``_hashlib`` links), through
``ctypes`` on its public ``SHA256_CTX`` and ``SHA256_Init/Update/Final`` (deprecated in OpenSSL 3
but still exported, with the same struct layout since 0.9.8), at C speed with the GIL released. If
libcrypto cannot be loaded, a pure-Python compression function takes over: slow, but correct.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import re
import struct
from dataclasses import dataclass
from typing import Any

from airflow_provider_sftp_resume.core.resume.state import UnusableState

BLOCK = 64  # bytes per SHA-256 block
_INITIAL = (
    0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
)  # fmt: skip
_HEX_WORDS = re.compile(r"[0-9a-f]{64}")
#: SHA-256 hashes at most 2**64 - 1 bits.
MAX_LENGTH = (2**64 - 1) // 8


@dataclass(frozen=True)
class Sha256State:
    """
    The SHA-256 state after ``length`` bytes, ``length`` a multiple of 64.

    :param words: the eight 32-bit chaining words
    :param length: bytes hashed so far
    """

    words: tuple[int, ...]
    length: int

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready object: ``{"h": <64 hex digits>, "length": n}``."""
        return {"h": struct.pack(">8I", *self.words).hex(), "length": self.length}

    @classmethod
    def from_json(cls, obj: object) -> Sha256State:
        """
        Validate and parse what :meth:`to_json` wrote.

        :raises UnusableState: not an object of that shape, or a length that is not a block multiple
        """
        if not isinstance(obj, dict):
            raise UnusableState("hash state is not a JSON object")
        words, length = obj.get("h"), obj.get("length")
        if not isinstance(words, str) or not _HEX_WORDS.fullmatch(words):
            raise UnusableState("hash state 'h' is not 64 lowercase hex digits")
        if not isinstance(length, int) or isinstance(length, bool) or not 0 <= length <= MAX_LENGTH:
            raise UnusableState("hash state 'length' is missing or out of range")
        if length % BLOCK:
            raise UnusableState(f"hash state length {length} is not a multiple of {BLOCK}")
        return cls(words=struct.unpack(">8I", bytes.fromhex(words)), length=length)


class ResumableSha256:
    """
    SHA-256 that can be saved (:meth:`state`) at a 64-byte boundary and continued from that state.

    :param state: continue from this state; ``None`` to start at byte 0
    :param backend: ``"auto"`` (libcrypto if it loads, else Python), ``"libcrypto"`` or ``"python"``
    """

    def __init__(self, state: Sha256State | None = None, *, backend: str = "auto") -> None:
        state = state or Sha256State(words=_INITIAL, length=0)
        lib = _libcrypto() if backend in ("auto", "libcrypto") else None
        if backend == "libcrypto" and lib is None:
            raise RuntimeError("OpenSSL's libcrypto with SHA256_Init could not be loaded")
        self._impl: _CSha256 | _PySha256 = _CSha256(lib, state) if lib else _PySha256(state)

    @property
    def backend(self) -> str:
        """``"libcrypto"`` or ``"python"``."""
        return "libcrypto" if isinstance(self._impl, _CSha256) else "python"

    @property
    def length(self) -> int:
        """Bytes hashed so far."""
        return self._impl.length()

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Hash more bytes."""
        self._impl.update(bytes(data) if not isinstance(data, bytes) else data)

    def state(self) -> Sha256State:
        """
        Return the state to save.

        :raises ValueError: the bytes hashed are not a multiple of 64 (the state is not just the words)
        """
        if self.length % BLOCK:
            raise ValueError(f"the state can be saved only at a multiple of {BLOCK} bytes, not {self.length}")
        return self._impl.state()

    def hexdigest(self) -> str:
        """Return the hex digest of the bytes so far (hashing may go on afterwards)."""
        return self._impl.hexdigest()


class _Ctx(ctypes.Structure):
    # struct SHA256state_st in openssl/sha.h; SHA_LONG is a 32-bit unsigned int.
    _fields_ = (
        ("h", ctypes.c_uint32 * 8),
        ("Nl", ctypes.c_uint32),
        ("Nh", ctypes.c_uint32),
        ("data", ctypes.c_uint32 * 16),
        ("num", ctypes.c_uint),
        ("md_len", ctypes.c_uint),
    )


class _CSha256:
    def __init__(self, lib: ctypes.CDLL, state: Sha256State) -> None:
        self._lib = lib
        self._ctx = _Ctx()
        lib.SHA256_Init(ctypes.byref(self._ctx))
        bits = state.length * 8
        self._ctx.h[:] = state.words
        self._ctx.Nl, self._ctx.Nh = bits & 0xFFFFFFFF, bits >> 32

    def length(self) -> int:
        bits: int = (self._ctx.Nh << 32) | self._ctx.Nl
        return bits // 8

    def update(self, data: bytes) -> None:
        self._lib.SHA256_Update(ctypes.byref(self._ctx), data, ctypes.c_size_t(len(data)))

    def state(self) -> Sha256State:
        return Sha256State(words=tuple(self._ctx.h), length=self.length())

    def hexdigest(self) -> str:
        copy = _Ctx()
        ctypes.pointer(copy)[0] = self._ctx
        out = ctypes.create_string_buffer(32)
        self._lib.SHA256_Final(out, ctypes.byref(copy))
        return out.raw.hex()


_LIBCRYPTO: list[ctypes.CDLL | None] = []


def _libcrypto() -> ctypes.CDLL | None:
    """Load libcrypto once: the copy this process already maps for ``_hashlib``, else by name."""
    if not _LIBCRYPTO:
        _LIBCRYPTO.append(_load_libcrypto())
    return _LIBCRYPTO[0]


def _load_libcrypto() -> ctypes.CDLL | None:
    import hashlib  # noqa: F401  (maps _hashlib's libcrypto into this process)

    candidates: list[str] = []
    with contextlib.suppress(OSError), open("/proc/self/maps") as maps:
        candidates += sorted({line.split()[-1] for line in maps if "/libcrypto" in line})
    found = ctypes.util.find_library("crypto")
    candidates += [found] if found else []
    candidates += ["libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.dylib"]
    for name in candidates:
        try:
            lib = ctypes.CDLL(name)
            for function in (lib.SHA256_Init, lib.SHA256_Update, lib.SHA256_Final):
                function.restype = ctypes.c_int
        except (OSError, AttributeError):
            continue
        lib.SHA256_Update.argtypes = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t)
        if _works(lib):
            return lib
    return None


def _works(lib: ctypes.CDLL) -> bool:
    probe = _CSha256(lib, Sha256State(words=_INITIAL, length=0))
    probe.update(b"abc")
    return probe.hexdigest() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


_K = (
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4, 0xAB1C5ED5,
    0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE, 0x9BDC06A7, 0xC19BF174,
    0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F, 0x4A7484AA, 0x5CB0A9DC, 0x76F988DA,
    0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7, 0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967,
    0x27B70A85, 0x2E1B2138, 0x4D2C6DFC, 0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85,
    0xA2BFE8A1, 0xA81A664B, 0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070,
    0x19A4C116, 0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
    0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7, 0xC67178F2,
)  # fmt: skip
_M = 0xFFFFFFFF


def _rotr(x: int, n: int) -> int:
    return ((x >> n) | (x << (32 - n))) & _M


def _compress(words: list[int], block: bytes) -> None:
    w = list(struct.unpack(">16I", block))
    for i in range(16, 64):
        s0 = _rotr(w[i - 15], 7) ^ _rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
        s1 = _rotr(w[i - 2], 17) ^ _rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
        w.append((w[i - 16] + s0 + w[i - 7] + s1) & _M)
    a, b, c, d, e, f, g, h = words
    for i in range(64):
        t1 = (h + (_rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)) + ((e & f) ^ (~e & g)) + _K[i] + w[i]) & _M
        t2 = ((_rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) & _M
        a, b, c, d, e, f, g, h = (t1 + t2) & _M, a, b, c, (d + t1) & _M, e, f, g
    for i, value in enumerate((a, b, c, d, e, f, g, h)):
        words[i] = (words[i] + value) & _M


class _PySha256:
    def __init__(self, state: Sha256State) -> None:
        self._words = list(state.words)
        self._length = state.length
        self._pending = b""

    def length(self) -> int:
        return self._length

    def update(self, data: bytes) -> None:
        self._length += len(data)
        data = self._pending + data
        cut = len(data) - len(data) % BLOCK
        for start in range(0, cut, BLOCK):
            _compress(self._words, data[start : start + BLOCK])
        self._pending = data[cut:]

    def state(self) -> Sha256State:
        return Sha256State(words=tuple(self._words), length=self._length)

    def hexdigest(self) -> str:
        words = list(self._words)
        tail = self._pending + b"\x80" + b"\0" * ((55 - len(self._pending)) % BLOCK)
        tail += struct.pack(">Q", self._length * 8)
        for start in range(0, len(tail), BLOCK):
            _compress(words, tail[start : start + BLOCK])
        return struct.pack(">8I", *words).hex()
