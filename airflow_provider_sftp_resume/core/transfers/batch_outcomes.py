"""What a batch try did, file by file, and how its failures end the try."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from airflow_provider_sftp_resume.core.errors import BatchFailed, SomeFilesFailed, TransferError
from airflow_provider_sftp_resume.core.resume.localfiles import os_error_to_local


@dataclass(frozen=True)
class FileOutcome:
    """
    What happened to one file of a batch.

    :param relative: path relative to the remote root (and to the local directory)
    :param remote_path: the remote file
    :param local_path: the local file
    :param status: ``downloaded``, ``resumed``, ``skipped``, ``failed`` or ``refused``
    :param size: bytes in the file (0 when unknown)
    :param bytes_transferred: bytes of content read from the server in this try
    :param resumed_from: bytes kept from earlier tries
    :param sha256: hex sha256 of the local file, when complete
    :param error: why it failed, when it did
    :param retriable: whether a retry can fix the failure
    :param post_action: what was done with the remote file afterwards
    :param source_checksum: the source's own checksum that proved the file (see the single-file result)
    """

    relative: str
    remote_path: str
    local_path: str
    status: str
    size: int = 0
    bytes_transferred: int = 0
    resumed_from: int = 0
    sha256: str | None = None
    error: str | None = None
    retriable: bool = False
    post_action: str | None = None
    source_checksum: str | None = None


@dataclass(frozen=True)
class BatchResult:
    """
    What a batch try did; :meth:`to_dict` is the operator's XCom value.

    :param remote_path: the directory or glob given
    :param local_dir: the local directory
    :param files: one outcome per selected (or refused) file
    :param seconds: wall time of the try
    """

    remote_path: str
    local_dir: str
    files: tuple[FileOutcome, ...]
    seconds: float

    def count(self, status: str) -> int:
        """Files with ``status``."""
        return sum(1 for f in self.files if f.status == status)

    @property
    def bytes_transferred(self) -> int:
        """Bytes of content read from the server in this try, all files together."""
        return sum(f.bytes_transferred for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict with totals and a per-file list."""
        return {
            "remote_path": self.remote_path,
            "local_dir": self.local_dir,
            "seconds": self.seconds,
            "files_total": len(self.files),
            **{f"files_{status}": self.count(status) for status in STATUSES},
            "bytes_total": sum(f.size for f in self.files),
            "bytes_transferred": self.bytes_transferred,
            "files": [asdict(f) for f in self.files],
        }


STATUSES = ("downloaded", "resumed", "skipped", "failed", "refused")


def describe_failure(exc: Exception, local: Path) -> tuple[str, bool]:
    """The message of what one file raised, and whether a retry can fix it (local OSErrors mapped)."""
    if isinstance(exc, OSError):
        exc = os_error_to_local(exc, Path(exc.filename) if exc.filename else local, "writing")
    if isinstance(exc, TransferError):
        return str(exc), exc.retriable
    # Not a known failure (a bug, most likely): retriable, as Airflow treats any other exception.
    return f"Unexpected {type(exc).__name__} while downloading to {local}: {exc}", True


def raise_for_failures(result: BatchResult) -> None:
    bad = [f for f in result.files if f.status in ("failed", "refused")]
    if not bad:
        return
    lines = "\n".join(f"  {f.relative or '(refused)'}: {f.error}" for f in bad)
    summary = (
        f"{len(bad)} of {len(result.files)} files did not complete "
        f"({result.count('downloaded') + result.count('resumed') + result.count('skipped')} are complete):\n"
        f"{lines}"
    )
    if all(f.retriable for f in bad):
        raise SomeFilesFailed(
            f"{summary}\nA retry resumes these files; complete files are skipped.", result=result
        )
    raise BatchFailed(f"{summary}\nFix the files marked above; a retry will not help them.", result=result)
