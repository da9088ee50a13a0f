"""The engine's options from the command line's flags; flags the engine cannot honour are refused."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_sftp_resume.core.checksums.rule import ChecksumRule
from airflow_provider_sftp_resume.core.resume.verify import (
    DEFAULT_VERIFY,
    TAIL_LENGTH,
    VerifyCheck,
    parse_verify,
)
from airflow_provider_sftp_resume.core.transfers.download_types import DownloadOptions
from airflow_provider_sftp_resume.core.transfers.upload_types import UploadOptions

if TYPE_CHECKING:
    import argparse

    from airflow_provider_sftp_resume.core.options import ProgressCallback

OptionsT = TypeVar("OptionsT", DownloadOptions, UploadOptions)

#: The seed script's names for the engine's checks.
VERIFY_ALIASES = {"timestamp": VerifyCheck.MTIME.value}
#: ``progress_interval`` while a progress bar is drawn: the bar replaces the engine's progress lines.
NO_PROGRESS_LINES = float("inf")


class UsageError(ValueError):
    """A flag's value cannot be used; the message names the flag and the fix (exit code 2)."""


def verify_checks(spec: str) -> tuple[VerifyCheck, ...]:
    """
    Parse ``--verify``: the engine's check names joined by ``+`` or ``,``; ``timestamp`` means ``mtime``.

    :raises UsageError: an unknown name
    """
    names = [VERIFY_ALIASES.get(name.strip().lower(), name.strip()) for name in re.split(r"[+,]", spec)]
    try:
        return parse_verify([name for name in names if name])
    except ValueError as exc:
        raise UsageError(f"--verify {spec!r}: {exc} 'timestamp' is accepted for mtime.") from None


def _shared(args: argparse.Namespace, on_progress: ProgressCallback | None) -> dict[str, Any]:
    """Keyword arguments of :class:`~...core.options.TransferOptions` both directions take."""
    shared: dict[str, Any] = {
        "stall_timeout": args.stall_timeout,
        "skip_unchanged": args.skip_unchanged,
        "create_intermediate_dirs": args.create_dirs,
        "block_size": args.chunk_size,
        "progress_interval": args.progress_interval if on_progress is None else NO_PROGRESS_LINES,
        "on_progress": on_progress,
    }
    if args.limit_rate is not None:
        shared["max_bytes_per_second"] = args.limit_rate
    return shared


def download_options(args: argparse.Namespace, on_progress: ProgressCallback | None) -> DownloadOptions:
    """
    The options of ``get`` and ``mirror``.

    :raises UsageError: a flag the engine cannot honour, or a value it refuses
    """
    knobs = _shared(args, on_progress)
    knobs["verify"] = verify_checks(args.verify or DEFAULT_VERIFY)
    if args.tail_size is not None and args.tail_size != TAIL_LENGTH:
        raise UsageError(
            f"--tail-size {args.tail_size}: the tail check always compares the last {TAIL_LENGTH} bytes "
            f"(64 KiB); this cannot be changed. Leave --tail-size out (or give {TAIL_LENGTH})."
        )
    if args.command == "get":
        knobs["max_connections"] = args.connections
        knobs["expected_sha256"] = args.sha256
    knobs["checksums"] = checksum_rule(args)
    return _build(DownloadOptions, knobs)


def checksum_rule(args: argparse.Namespace) -> ChecksumRule | None:
    """
    ``--checksum-file`` / ``--checksum-suffix`` / ``--checksum-missing`` / ``--source-checksum``.

    :raises UsageError: a value the engine refuses
    """
    try:
        return ChecksumRule.of(
            getattr(args, "checksum_file", None),
            checksum_file_suffix=getattr(args, "checksum_suffix", None),
            checksum_file_missing=args.checksum_missing,
            source_checksum=args.source_checksum,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def upload_options(args: argparse.Namespace, on_progress: ProgressCallback | None) -> UploadOptions:
    """
    The options of ``put``.

    :raises UsageError: a value the engine refuses
    """
    knobs = _shared(args, on_progress)
    knobs["temp_suffix"] = args.temp_suffix
    knobs["state_dir"] = args.state_dir
    knobs["checksums"] = checksum_rule(args)
    return _build(UploadOptions, knobs)


def _build(options: type[OptionsT], knobs: dict[str, Any]) -> OptionsT:
    try:
        return options(**knobs)
    except ValueError as exc:  # the engine's own validation names the knob
        raise UsageError(str(exc)) from None
