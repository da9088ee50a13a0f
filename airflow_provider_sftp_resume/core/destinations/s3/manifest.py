"""
The S3 resume state: a small JSON manifest object in the bucket, next to no worker's disk.

A try on any worker reads it to resume. It is a *claim*: the parts that really exist are read back
with ListParts (:mod:`.claim` reconciles the two). It is data, never code: a manifest that is too
big, not JSON, of another format or version, or that claims impossible parts is rejected as a whole
(:class:`~airflow_provider_sftp_resume.core.resume.state.UnusableState`) and the upload restarts.
It holds no credentials: bucket, key, upload id, part size, the source fingerprint, the kept parts
(number, size, ETag, sha256 of the part's bytes), whole-file hash states at part boundaries, and the
try that owns the upload (host, pid, a random token, a heartbeat time).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, replace

from airflow_provider_sftp_resume.core.destinations.s3.owner import Owner
from airflow_provider_sftp_resume.core.destinations.s3.parts import MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE
from airflow_provider_sftp_resume.core.resume.resumable_sha256 import Sha256State
from airflow_provider_sftp_resume.core.resume.state import (
    RemoteFingerprint,
    UnusableState,
    load_document,
    parse_fingerprint,
    require_field,
    require_offset,
)

MANIFEST_FORMAT = "airflow-provider-sftp-resume/s3-upload"
MANIFEST_VERSION = 1
#: 10,000 parts of ~200 bytes each fit comfortably; anything larger is hostile or corrupt.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # 4 MiB
#: Whole-file hash states kept (the newest ones): where a shortened kept prefix can resume hashing.
MAX_HASH_STATES = 32
CHECKSUMS = ("SHA256", "CRC32", "off")
#: The upload id in the claim of a file small enough for one ``PutObject`` (no multipart upload).
SINGLE_PUT = ""
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class PartRecord:
    """
    One uploaded part, as this package recorded it.

    :param number: part number, 1-based
    :param size: bytes in the part
    :param etag: the ETag S3 answered for it
    :param sha256: hex sha256 of the part's bytes (the overlap check compares re-read source bytes)
    :param checksum: the per-part checksum S3 stored (base64), empty when checksums are off
    :param tail_sha256: hex sha256 of the part's last :data:`~.resume.verify.OVERLAP_LENGTH` bytes
        (the overlap check's window before a durable offset); empty when not recorded
    """

    number: int
    size: int
    etag: str
    sha256: str
    checksum: str = ""
    tail_sha256: str = ""


@dataclass(frozen=True)
class Manifest:
    """
    The resume state of one upload.

    :param bucket: target bucket
    :param key: target key
    :param upload_id: the multipart upload being filled (empty for the claim of a single PutObject)
    :param part_size: size of every part but the last
    :param checksum: per-part checksum algorithm: ``"SHA256"``, ``"CRC32"`` or ``"off"``
    :param source: fingerprint of the source file
    :param owner: the try that holds the upload
    :param parts: kept parts, numbers 1..n without gaps
    :param hash_states: whole-file SHA-256 states at part boundaries, ascending, at most
        :data:`MAX_HASH_STATES`; the last is at the end of ``parts``
    :param sha256: the whole-file sha256 once every byte is uploaded (set just before completing)
    """

    bucket: str
    key: str
    upload_id: str
    part_size: int
    checksum: str
    source: RemoteFingerprint
    owner: Owner
    parts: tuple[PartRecord, ...] = ()
    hash_states: tuple[Sha256State, ...] = field(default_factory=tuple)
    sha256: str = ""

    @property
    def kept_bytes(self) -> int:
        """Bytes covered by :attr:`parts`."""
        return sum(part.size for part in self.parts)

    def with_parts(self, parts: tuple[PartRecord, ...], state: Sha256State) -> Manifest:
        """Return a copy that keeps ``parts`` with the whole-file hash ``state`` at their end."""
        earlier = tuple(s for s in self.hash_states if s.length < state.length)
        return replace(self, parts=parts, hash_states=(*earlier, state)[-MAX_HASH_STATES:])

    def checkpoint(
        self, parts: tuple[PartRecord, ...], state: Sha256State, owner: Owner, now: float, heartbeat: float
    ) -> Manifest | None:
        """
        Return the manifest a checkpoint writes, or ``None`` when no write is due.

        A write per new part, else a heartbeat every ``heartbeat`` seconds: not one per checkpoint.

        :param parts: the parts kept now, with the whole-file hash ``state`` at their end
        :param owner: this try, whose heartbeat becomes ``now``
        """
        if parts == self.parts and now - self.owner.heartbeat < heartbeat:
            return None
        return replace(self.with_parts(parts, state), owner=replace(owner, heartbeat=now))

    def to_json(self) -> bytes:
        """Serialise for the manifest object."""
        document = {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            **asdict(self),
            "hash_states": [state.to_json() for state in self.hash_states],
        }
        return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_json(cls, text: bytes | str) -> Manifest:
        """
        Parse and validate a manifest.

        :raises UnusableState: the text is not a valid manifest of this version
        """
        document = load_document(
            text, MANIFEST_FORMAT, MANIFEST_VERSION, what="manifest", max_bytes=MAX_MANIFEST_BYTES
        )
        source = parse_fingerprint(document.get("source"))
        manifest = cls(
            bucket=require_field(document, "bucket", str),
            key=require_field(document, "key", str),
            upload_id=require_field(document, "upload_id", str),
            part_size=require_offset(document, "part_size"),
            checksum=require_field(document, "checksum", str),
            source=source,
            owner=_owner(document.get("owner")),
            parts=_parts(document.get("parts")),
            hash_states=_hash_states(document.get("hash_states")),
            sha256=require_field(document, "sha256", str),
        )
        _check(manifest)
        return manifest


def fingerprint_digest(source: RemoteFingerprint) -> str:
    """Return a hex sha256 of the fingerprint: ASCII, so it fits in S3 object metadata."""
    canonical = json.dumps(asdict(source), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _owner(obj: object) -> Owner:
    if not isinstance(obj, dict):
        raise UnusableState("manifest has no owner")
    heartbeat = obj.get("heartbeat")
    if not isinstance(heartbeat, int | float) or isinstance(heartbeat, bool):
        raise UnusableState("manifest owner has no heartbeat time")
    return Owner(
        host=require_field(obj, "host", str)[:255],
        pid=require_offset(obj, "pid"),
        token=require_field(obj, "token", str)[:64],
        heartbeat=float(heartbeat),
    )


def _parts(obj: object) -> tuple[PartRecord, ...]:
    if not isinstance(obj, list) or len(obj) > MAX_PARTS:
        raise UnusableState("manifest parts are not a list of at most 10,000")
    parts = []
    for item in obj:
        if not isinstance(item, dict):
            raise UnusableState("manifest part is not an object")
        parts.append(
            PartRecord(
                number=require_offset(item, "number"),
                size=require_offset(item, "size"),
                etag=require_field(item, "etag", str),
                sha256=require_field(item, "sha256", str),
                checksum=require_field(item, "checksum", str),
                tail_sha256=str(item.get("tail_sha256", "")),
            )
        )
    return tuple(parts)


def _hash_states(obj: object) -> tuple[Sha256State, ...]:
    if not isinstance(obj, list) or len(obj) > MAX_HASH_STATES:
        raise UnusableState("manifest hash states are not a short list")
    return tuple(Sha256State.from_json(item) for item in obj)


def _check(manifest: Manifest) -> None:
    if manifest.checksum not in CHECKSUMS:
        raise UnusableState(f"manifest checksum {manifest.checksum!r} is not one of {CHECKSUMS}")
    if not MIN_PART_SIZE <= manifest.part_size <= MAX_PART_SIZE or manifest.part_size % 64:
        raise UnusableState(f"manifest part size {manifest.part_size} is outside S3's limits")
    if manifest.sha256 and not _SHA256_HEX.fullmatch(manifest.sha256):
        raise UnusableState("manifest sha256 is not 64 lowercase hex digits")
    for index, part in enumerate(manifest.parts, start=1):
        if part.number != index:
            raise UnusableState(f"manifest part {part.number} is out of order (expected {index})")
        if part.size != manifest.part_size and index != len(manifest.parts):
            raise UnusableState(f"manifest part {index} has size {part.size}, not the part size")
        if not 0 < part.size <= manifest.part_size or not _SHA256_HEX.fullmatch(part.sha256):
            raise UnusableState(f"manifest part {index} has an impossible size or sha256")
        if part.tail_sha256 and not _SHA256_HEX.fullmatch(part.tail_sha256):
            raise UnusableState(f"manifest part {index} has an impossible size or sha256")
        if not 0 < len(part.etag) <= 1024:
            raise UnusableState(f"manifest part {index} has no ETag")
    if manifest.kept_bytes > manifest.source.size:
        raise UnusableState("manifest parts are larger than the source")
    lengths = [state.length for state in manifest.hash_states]
    publishing = bool(manifest.sha256)  # every part is up; the last may end off a 64-byte boundary
    if lengths != sorted(set(lengths)) or (lengths and lengths[-1] != manifest.kept_bytes and not publishing):
        raise UnusableState("manifest hash states do not end at the kept parts")
    if manifest.parts and not lengths and not publishing:
        raise UnusableState("manifest keeps parts but no hash state")
