"""The knobs of a download and what one try reports (the operator's XCom value)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_sftp_resume.core.io.segments import MIN_SEGMENT_SIZE
from airflow_provider_sftp_resume.core.options import TransferOptions
from airflow_provider_sftp_resume.core.resume.verify import DEFAULT_VERIFY, VerifyCheck, parse_verify

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.checksums.rule import ChecksumRule

MAX_CONNECTIONS = 16


@dataclass(frozen=True)
class DownloadOptions(TransferOptions):
    """
    How one download behaves: the shared knobs of :class:`~.options.TransferOptions`, and these.

    :param verify: checks that prove kept bytes are still valid before resuming (see :mod:`.verify`)
    :param expected_sha256: hex sha256 the finished file must have; a fresh download that does not
        match fails without retry
    :param max_connections: connections used for one large file (split into segments, each resumed
        on its own, the extra connections read by worker processes, one CPU each); ``None`` chooses
        (:func:`~.io.tuning.choose_connections`: 2 for a large file on a fast path with four
        CPUs or more, else 1); 1 suits servers that dislike several connections
    :param min_segment_size: smallest segment tracked on its own (a file is split into up to four
        segments per connection)
    :param checksums: proof against the source's own checksum (a checksum file beside the remote
        file, or the server's digest), checked before publishing; ``None``: none
    """

    verify: tuple[VerifyCheck, ...] = field(default_factory=lambda: parse_verify(DEFAULT_VERIFY))
    expected_sha256: str | None = None
    max_connections: int | None = None
    min_segment_size: int = MIN_SEGMENT_SIZE
    checksums: ChecksumRule | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_counts("max_connections", "min_segment_size")
        if self.max_connections is not None and self.max_connections > MAX_CONNECTIONS:
            raise ValueError(f"max_connections must be at most {MAX_CONNECTIONS}, got {self.max_connections}")
        if self.expected_sha256 is not None:
            digest = self.expected_sha256.strip().lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(
                    f"expected_sha256 must be 64 hexadecimal characters, got {self.expected_sha256!r}"
                )
            object.__setattr__(self, "expected_sha256", digest)


@dataclass(frozen=True)
class DownloadResult:
    """
    What one try did; :meth:`to_dict` is the operator's XCom value.

    :param local_path: the final file
    :param remote_path: the remote file
    :param size: bytes in the final file
    :param sha256: hex sha256 of the final local file
    :param resumed_from: bytes kept from earlier tries (0 for a fresh start)
    :param bytes_transferred: bytes of file content read from the server in this try
    :param verification_bytes: bytes read from the server to verify kept bytes and the result
    :param seconds: wall time of this try
    :param verify: the verify checks in force (``mtime+tail+overlap``)
    :param checks_passed: checks that passed before resuming (empty for a fresh start)
    :param restart_reason: why kept bytes were discarded, or ``None``
    :param skipped: the target already matched the remote file; nothing was transferred
    :param checkpoints: checkpoints written during this try
    :param first_byte_seconds: seconds from the start of this try until the first new byte was
        written (``None`` when nothing was transferred)
    :param remote_mtime: the downloaded version's modification time on the server
    :param post_action: what was done with the remote file afterwards (``deleted``, ``moved to ...``)
    :param source_checksum: the source's own checksum that proved the file (``sha256 via checksum
        file``, ``sha256 via check-file``, ``sha256 via sha256sum``), or ``None``
    """

    local_path: str
    remote_path: str
    size: int
    sha256: str
    resumed_from: int
    bytes_transferred: int
    verification_bytes: int
    seconds: float
    verify: str
    checks_passed: tuple[str, ...] = ()
    restart_reason: str | None = None
    skipped: bool = False
    checkpoints: int = 0
    first_byte_seconds: float | None = None
    remote_mtime: int | None = None
    post_action: str | None = None
    source_checksum: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        result = asdict(self)
        result["checks_passed"] = list(self.checks_passed)
        return result
