"""The checksum knobs of a transfer, checked once, and which checksum file belongs to which file."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class SourceChecksum(enum.Enum):
    """
    Whether, and how, the server computes a digest of the file itself.

    ``CHECK_FILE``: the SFTP ``check-file-name`` extension (ProFTPD's mod_sftp, Bitvise), refused
    when the server does not answer it; ``COMMAND``: ``sha256sum -- <path>`` run over the SSH
    connection (needs a shell account: OpenSSH, SFTPGo); ``AUTO``: check-file where the server answers
    it, else nothing (a command is never run unless asked for).
    """

    AUTO = "auto"
    CHECK_FILE = "check-file"
    COMMAND = "command"


class MissingChecksumFile(enum.Enum):
    """What a missing checksum file does: fail the try (retriable: it may be published later), or skip."""

    FAIL = "fail"
    SKIP = "skip"


#: Largest checksum file read: a ``SHA256SUMS`` of thousands of files fits; anything larger is not one.
MAX_CHECKSUM_FILE = 1024 * 1024  # 1 MiB


def _choice(enum_type: type[enum.Enum], name: str, value: object) -> enum.Enum:
    try:
        return enum_type(value.value if isinstance(value, enum.Enum) else value)
    except ValueError:
        allowed = ", ".join(repr(member.value) for member in enum_type)
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}") from None


@dataclass(frozen=True)
class ChecksumRule:
    """
    How a transfer proves its copy against the source's own checksum.

    :param checksum_file: path of the checksum file (remote for a download, local for an upload)
    :param checksum_file_suffix: for a directory: each file's checksum file is the file's path plus
        this suffix (``".sha256"``); files whose names end with it are checksum files themselves and
        are not checked against another
    :param checksum_file_missing: ``"fail"`` (default; retriable) or ``"skip"`` (go on unproven)
    :param source_checksum: ``"auto"``, ``"check-file"``, ``"command"`` or ``None`` (see
        :class:`SourceChecksum`)
    """

    checksum_file: str | None = None
    checksum_file_suffix: str | None = None
    checksum_file_missing: MissingChecksumFile | str = MissingChecksumFile.FAIL
    source_checksum: SourceChecksum | str | None = None

    def __post_init__(self) -> None:
        if self.checksum_file is not None and not (
            isinstance(self.checksum_file, str) and self.checksum_file
        ):
            raise ValueError(f"checksum_file must be a non-empty path or None, got {self.checksum_file!r}")
        suffix = self.checksum_file_suffix
        if suffix is not None and (
            not isinstance(suffix, str) or not suffix.startswith(".") or "/" in suffix
        ):
            raise ValueError(
                f"checksum_file_suffix must start with '.' and hold no '/', such as '.sha256'; got {suffix!r}"
            )
        if self.checksum_file is not None and suffix is not None:
            raise ValueError("give checksum_file or checksum_file_suffix, not both")
        missing = _choice(MissingChecksumFile, "checksum_file_missing", self.checksum_file_missing)
        object.__setattr__(self, "checksum_file_missing", missing)
        if self.source_checksum is not None:
            how = _choice(SourceChecksum, "source_checksum", self.source_checksum)
            object.__setattr__(self, "source_checksum", how)

    @classmethod
    def of(
        cls,
        checksum_file: str | None = None,
        *,
        checksum_file_suffix: str | None = None,
        checksum_file_missing: str = "fail",
        source_checksum: str | None = None,
    ) -> ChecksumRule | None:
        """The rule for these knobs, ``None`` when they ask for nothing; raises ``ValueError``."""
        rule = cls(
            checksum_file or None, checksum_file_suffix or None, checksum_file_missing, source_checksum
        )
        return rule if rule.checksum_file or rule.checksum_file_suffix or rule.source_checksum else None

    @property
    def missing_fails(self) -> bool:
        """Whether a missing checksum file fails the try."""
        return self.checksum_file_missing is MissingChecksumFile.FAIL

    @property
    def server_side(self) -> SourceChecksum | None:
        """How the server is asked for a digest, if at all."""
        how = self.source_checksum
        return how if isinstance(how, SourceChecksum) else None

    def checksum_file_for(self, path: str) -> str | None:
        """The checksum file of ``path``; ``None`` when there is none (or ``path`` is one itself)."""
        if self.checksum_file is not None:
            return self.checksum_file
        suffix = self.checksum_file_suffix
        if suffix is None or path.endswith(suffix):
            return None
        return path + suffix
