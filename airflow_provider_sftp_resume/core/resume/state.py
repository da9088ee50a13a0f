"""
Resume state: what we know about the remote file and how much of it is durably on disk.

The state lives in a small JSON sidecar next to the ``.part`` file. It is data, never code: a
sidecar that is too big, malformed, of another version, or that claims impossible offsets is
rejected as a whole (:class:`UnusableState`), and the download restarts from byte 0.

The file is divided into *segments* so that several connections can each fill one range and
checkpoint it on their own; a plain download has a single segment ``[0, size)``.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass, replace
from typing import Any

SIDECAR_FORMAT = "airflow-provider-sftp-resume/part"
SIDECAR_VERSION = 1
#: A real sidecar is a few hundred bytes; anything larger is hostile or corrupt.
MAX_SIDECAR_BYTES = 64 * 1024  # 64 KiB
#: Offsets past 2**63 cannot come from any real file.
MAX_OFFSET = 2**63 - 1


class UnusableState(ValueError):
    """The sidecar cannot be trusted; the message says why."""


@dataclass(frozen=True)
class RemoteFingerprint:
    """
    Identity of the remote file the ``.part`` was filled from.

    :param path: remote path
    :param size: size in bytes
    :param mtime: modification time, seconds since the epoch
    :param tail_length: how many bytes at the end of the file ``tail_sha256`` covers
    :param tail_sha256: hex sha256 of the last ``tail_length`` bytes
    :param server: who served it (the session factory's ``identity``, ``user@host:port``); empty in
        sidecars written before it was recorded, which are then trusted on their other checks
    """

    path: str
    size: int
    mtime: int
    tail_length: int = 0
    tail_sha256: str = ""
    server: str = ""


@dataclass(frozen=True)
class Segment:
    """
    A byte range ``[start, end)`` of the file and how much of it is durable.

    :param start: first byte of the range
    :param end: one past the last byte of the range
    :param done: bytes ``[start, done)`` are fsynced in the ``.part`` file
    """

    start: int
    end: int
    done: int

    @property
    def complete(self) -> bool:
        """Whether the whole range is on disk."""
        return self.done >= self.end


@dataclass(frozen=True)
class ResumeState:
    """
    Everything a later try needs to resume.

    :param remote: fingerprint of the remote file
    :param segments: ranges covering ``[0, remote.size)`` in order, without gaps or overlaps
    """

    remote: RemoteFingerprint
    segments: tuple[Segment, ...]

    @classmethod
    def fresh(cls, remote: RemoteFingerprint, boundaries: tuple[int, ...] = ()) -> ResumeState:
        """
        Return the state of a download that has not started.

        :param remote: fingerprint of the remote file
        :param boundaries: inner split points for segments (empty for one segment)
        """
        edges = (0, *sorted(b for b in boundaries if 0 < b < remote.size), remote.size)
        segments = tuple(Segment(start=a, end=b, done=a) for a, b in itertools.pairwise(edges))
        return cls(remote=remote, segments=segments or (Segment(0, 0, 0),))

    @property
    def durable_bytes(self) -> int:
        """Total bytes durably on disk across all segments."""
        return sum(s.done - s.start for s in self.segments)

    @property
    def contiguous_prefix(self) -> int:
        """Length of the durable run of bytes starting at offset 0."""
        prefix = 0
        for segment in self.segments:
            prefix = segment.done
            if not segment.complete:
                break
        return prefix

    @property
    def complete(self) -> bool:
        """Whether every segment is on disk."""
        return all(s.complete for s in self.segments)

    def with_progress(self, index: int, done: int) -> ResumeState:
        """Return a copy where segment ``index`` is durable up to ``done``."""
        segments = list(self.segments)
        segments[index] = replace(segments[index], done=done)
        return replace(self, segments=tuple(segments))

    def to_json(self) -> str:
        """Serialise for the sidecar file."""
        document = {
            "format": SIDECAR_FORMAT,
            "version": SIDECAR_VERSION,
            "remote": asdict(self.remote),
            "segments": [asdict(s) for s in self.segments],
        }
        return json.dumps(document, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> ResumeState:
        """
        Parse and validate a sidecar.

        :raises UnusableState: the text is not a valid sidecar of this version
        """
        document = load_document(text, SIDECAR_FORMAT, SIDECAR_VERSION)
        remote = parse_fingerprint(document.get("remote"))
        segments = _parse_segments(document.get("segments"), remote.size)
        return cls(remote=remote, segments=segments)


def load_document(
    text: str | bytes,
    document_format: str,
    version: int,
    *,
    what: str = "sidecar",
    max_bytes: int = MAX_SIDECAR_BYTES,
) -> dict[str, Any]:
    """
    Parse a state document's JSON (a sidecar, an S3 manifest) and check its size, format and version.

    :param what: the document's name in messages
    :param max_bytes: larger than any real one
    :raises UnusableState: too big, not JSON, not an object, or another format or version
    """
    if len(text) > max_bytes:
        raise UnusableState(f"{what} is {len(text)} bytes, larger than any real one")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise UnusableState(f"{what} is not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise UnusableState(f"{what} is not a JSON object")
    if document.get("format") != document_format:
        raise UnusableState(f"{what} was not written by airflow-provider-sftp-resume")
    if document.get("version") != version:
        raise UnusableState(f"{what} version {document.get('version')!r} is not {version}")
    return document


def require_field(obj: dict[str, Any], name: str, kind: type) -> Any:
    value = obj.get(name)
    # bool is an int subclass; a sidecar with `true` as an offset is not one we wrote.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UnusableState(f"sidecar field {name!r} is missing or not a {kind.__name__}")
    return value


def require_offset(obj: dict[str, Any], name: str) -> int:
    value: int = require_field(obj, name, int)
    if not 0 <= value <= MAX_OFFSET:
        raise UnusableState(f"sidecar field {name!r} = {value} is out of range")
    return value


def parse_fingerprint(obj: object) -> RemoteFingerprint:
    """
    Parse a remote file's fingerprint from a state document (the sidecar's, or the S3 manifest's).

    :raises UnusableState: it is missing or malformed
    """
    if not isinstance(obj, dict):
        raise UnusableState("sidecar has no remote fingerprint")
    fingerprint = RemoteFingerprint(
        path=require_field(obj, "path", str),
        size=require_offset(obj, "size"),
        mtime=require_field(obj, "mtime", int),
        tail_length=require_offset(obj, "tail_length"),
        tail_sha256=require_field(obj, "tail_sha256", str),
        server=require_field(obj, "server", str) if "server" in obj else "",
    )
    if fingerprint.tail_length > fingerprint.size:
        raise UnusableState("sidecar tail is longer than the file")
    return fingerprint


def _parse_segments(obj: object, size: int) -> tuple[Segment, ...]:
    if not isinstance(obj, list) or not obj or len(obj) > 1024:
        raise UnusableState("sidecar segments are missing or absurd")
    segments: list[Segment] = []
    expected_start = 0
    for item in obj:
        if not isinstance(item, dict):
            raise UnusableState("sidecar segment is not an object")
        segment = Segment(
            start=require_offset(item, "start"),
            end=require_offset(item, "end"),
            done=require_offset(item, "done"),
        )
        if segment.start != expected_start or not segment.start <= segment.done <= segment.end:
            raise UnusableState(f"sidecar segment {segment} is inconsistent")
        segments.append(segment)
        expected_start = segment.end
    if expected_start != size:
        raise UnusableState(f"sidecar segments end at {expected_start}, but the file has {size} bytes")
    return tuple(segments)
