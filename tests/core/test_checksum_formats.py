"""Reading checksum files and the checksum knobs: every format, and a clear error for each bad input."""

from __future__ import annotations

import pytest

from airflow_provider_sftp_resume.core.checksums.command import command_for
from airflow_provider_sftp_resume.core.checksums.formats import parse_checksum_file
from airflow_provider_sftp_resume.core.checksums.rule import ChecksumRule, SourceChecksum
from airflow_provider_sftp_resume.core.errors import SourceChecksumUnavailable

SHA256 = "a" * 64


def test_escaped_gnu_line_and_path_prefix_match_the_name() -> None:
    text = f"\\{SHA256}  dir/back\\\\slash.csv\n"
    assert parse_checksum_file(text, "back\\slash.csv", "x.sha256").hex == SHA256
    assert parse_checksum_file(f"{SHA256.upper()} *./out/data.csv\n", "data.csv", "SUMS").hex == SHA256


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "it is empty"),
        (f"{SHA256}  data.csv\n{'b' * 64}  data.csv\n", "2 different digests"),
        (f"MD5 (data.csv) = {SHA256}\n", "says MD5 but its digest has the length of sha256"),
        ("abc  data.csv\n", "is not a hex digest"),
    ],
)
def test_bad_checksum_files_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_checksum_file(text, "data.csv", "data.csv.txt")


def test_rule_knobs_are_checked() -> None:
    assert ChecksumRule.of() is None
    rule = ChecksumRule.of(checksum_file_suffix=".sha256", source_checksum="auto")
    assert rule is not None
    assert rule.server_side is SourceChecksum.AUTO
    assert rule.checksum_file_for("/in/a.csv") == "/in/a.csv.sha256"
    assert rule.checksum_file_for("/in/a.csv.sha256") is None
    with pytest.raises(ValueError, match=r"source_checksum must be one of 'auto', 'check-file', 'command'"):
        ChecksumRule.of(source_checksum="ssh")
    with pytest.raises(ValueError, match=r"checksum_file_missing must be one of 'fail', 'skip'"):
        ChecksumRule.of("x.sha256", checksum_file_missing="ignore")
    with pytest.raises(ValueError, match=r"checksum_file_suffix must start with '\.'"):
        ChecksumRule.of(checksum_file_suffix="sha256")


@pytest.mark.parametrize(
    ("path", "command"),
    [
        ("/in/a b.csv", "sha256sum -- '/in/a b.csv'"),
        ("/in/it's $x.csv", "sha256sum -- '/in/it'\"'\"'s $x.csv'"),
        ("-n", "sha256sum -- -n"),
    ],
)
def test_command_is_a_fixed_template_with_the_path_quoted(path: str, command: str) -> None:
    assert command_for(path) == command


@pytest.mark.parametrize(
    ("path", "what"), [("a\nb", "a newline"), ("a\rb", "a carriage return"), ("a\0b", "a NUL")]
)
def test_command_refuses_paths_it_cannot_quote_safely(path: str, what: str) -> None:
    with pytest.raises(SourceChecksumUnavailable, match=what):
        command_for(path)
