"""Argument checking that must happen at DAG parse time, and the verify vocabulary."""

from __future__ import annotations

import pytest

from airflow_provider_sftp_resume.core.resume.verify import VerifyCheck, format_verify, parse_verify
from airflow_provider_sftp_resume.core.transfers.download import DownloadOptions


def test_default_and_order() -> None:
    assert parse_verify("overlap+mtime") == (VerifyCheck.SIZE, VerifyCheck.MTIME, VerifyCheck.OVERLAP)
    assert parse_verify(["TAIL"]) == (VerifyCheck.SIZE, VerifyCheck.TAIL)
    assert format_verify(DownloadOptions().verify) == "size+mtime+tail+overlap"


def test_unknown_check_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"Unknown verify check 'md5'.*size, mtime, tail, overlap"):
        parse_verify("size+md5")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stall_timeout", 0),
        ("stall_timeout", -1),
        ("checkpoint_interval", 0),
        ("progress_interval", -3),
        ("block_size", 0),
        ("max_requests", True),
        ("max_requests", 2.5),
        ("expected_sha256", "abc"),
        ("expected_sha256", "z" * 64),
    ],
)
def test_nonsense_options_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        DownloadOptions(**{field: value})  # type: ignore[arg-type]
