"""The knobs of an upload and what one try reports (the operator's XCom value)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_sftp_resume.core.options import TransferOptions

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.checksums.rule import ChecksumRule

DEFAULT_TEMP_SUFFIX = ".part"


@dataclass(frozen=True)
class UploadOptions(TransferOptions):
    """
    How one upload behaves: the shared knobs of :class:`~.options.TransferOptions` (for an upload,
    ``create_intermediate_dirs`` creates remote directories, ``preserve_mtime`` is tried and a server
    that refuses only costs a warning, ``skip_unchanged`` compares the remote file), and these.

    :param temp_suffix: appended to the remote path for the temporary file (``.part``)
    :param state_dir: local directory for the resume sidecar; the source file's directory if ``None``
    :param checksums: proof before the rename: ``checksum_file`` is a local checksum file of the
        source, ``source_checksum`` asks the server for its digest of the temporary file
    """

    temp_suffix: str = DEFAULT_TEMP_SUFFIX
    state_dir: str | None = None
    checksums: ChecksumRule | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        suffix = self.temp_suffix
        if not isinstance(suffix, str) or not suffix or "/" in suffix or suffix in (".", ".."):
            raise ValueError(
                f"temp_suffix must be a non-empty file name suffix without '/', got {suffix!r} "
                f"(for example {DEFAULT_TEMP_SUFFIX!r})"
            )


@dataclass(frozen=True)
class UploadResult:
    """
    What one upload try did; :meth:`to_dict` is the operator's XCom value.

    :param local_path: the local file sent
    :param remote_path: the remote file written
    :param size: bytes in the remote file
    :param sha256: hex sha256 of what was sent (the whole local file)
    :param remote_size: size of the remote file after the rename, as the server reports it
    :param resumed_from: bytes kept on the server from earlier tries
    :param bytes_transferred: bytes of file content sent in this try
    :param verification_bytes: bytes read back from the server to prove the copy
    :param seconds: wall time of this try
    :param rename: how the file was put in place (``posix-rename``, ``rename``, ``rename-aside``)
    :param mtime_preserved: whether the server accepted the modification time (``None``: not asked)
    :param restart_reason: why kept bytes were discarded, or ``None``
    :param skipped: the remote file already matched; nothing was sent
    :param checkpoints: sidecar updates during this try
    :param source_checksum: the local checksum file that proved the file sent, or ``None``
    :param remote_checksum: the server's digest of what it received (``sha256 via check-file``), or ``None``
    """

    local_path: str
    remote_path: str
    size: int
    sha256: str
    remote_size: int
    resumed_from: int
    bytes_transferred: int
    verification_bytes: int
    seconds: float
    rename: str | None = None
    mtime_preserved: bool | None = None
    restart_reason: str | None = None
    skipped: bool = False
    checkpoints: int = 0
    source_checksum: str | None = None
    remote_checksum: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return asdict(self)
