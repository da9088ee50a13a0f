"""
Proof against the source's own checksum, against real servers: a checksum file beside the data (any
server), the SFTP ``check-file`` extension (ProFTPD's mod_sftp), ``sha256sum`` run over SSH (OpenSSH
with a shell), and the asyncssh server, which has neither (``auto`` goes on without it).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import TYPE_CHECKING

import pytest

from airflow_provider_sftp_resume.core.checksums.rule import ChecksumRule
from airflow_provider_sftp_resume.core.errors import (
    ChecksumFileInvalid,
    ChecksumFileMissing,
    ChecksumMismatch,
    SourceChecksumUnavailable,
)
from airflow_provider_sftp_resume.core.transfers.batch import download_selection
from airflow_provider_sftp_resume.core.transfers.download import (
    DownloadOptions,
    DownloadResult,
    download_file,
)
from airflow_provider_sftp_resume.core.transfers.selection import RemoteSelection
from airflow_provider_sftp_resume.core.transfers.upload import UploadOptions, UploadResult, upload_file
from tests.conftest import endpoint_for, session_factory, write_random

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.servers import ServerInfo

MiB = 1024 * 1024


def _download(server: ServerInfo, remote: Path, local: Path, **rule: object) -> DownloadResult:
    options = DownloadOptions(checkpoint_interval=0.05, checksums=ChecksumRule(**rule))  # type: ignore[arg-type]
    return asyncio.run(download_file(session_factory(endpoint_for(server)), str(remote), local, options))


def _upload(server: ServerInfo, local: Path, remote: Path, **rule: object) -> UploadResult:
    options = UploadOptions(checkpoint_interval=0.05, checksums=ChecksumRule(**rule))  # type: ignore[arg-type]
    return asyncio.run(upload_file(session_factory(endpoint_for(server)), local, str(remote), options))


def _leftovers(directory: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name not in keep)


# -- checksum files (every server) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "content"),
    [
        (".sha256", "{sha256}  data.csv\n"),
        (".sha256", "{other}  other.csv\n{sha256} *./export/data.csv\n"),  # many lines, binary mark, a path
        (".sha256", "SHA256 (data.csv) = {sha256}\n"),  # BSD
        (".md5", "{md5}\n"),  # bare digest
        (".sha512", "{sha512}  data.csv\r\n"),  # CRLF
        (".sha1", "SHA1 (data.csv) = {sha1}"),
    ],
    ids=["sha256sum", "many-lines", "bsd", "bare-md5", "sha512-crlf", "bsd-sha1"],
)
def test_checksum_file_formats_prove_the_download(
    sftp_server: ServerInfo, remote_dir: Path, local_dir: Path, suffix: str, content: str
) -> None:
    data = os.urandom(300_000)
    (remote_dir / "data.csv").write_bytes(data)
    digests = {name: hashlib.new(name, data).hexdigest() for name in ("md5", "sha1", "sha256", "sha512")}
    (remote_dir / f"data.csv{suffix}").write_text(content.format(other="0" * 64, **digests))
    result = _download(
        sftp_server,
        remote_dir / "data.csv",
        local_dir / "data.csv",
        checksum_file=str(remote_dir / f"data.csv{suffix}"),
    )
    algorithm = suffix.lstrip(".")
    assert result.source_checksum == f"{algorithm} via checksum file"
    assert (local_dir / "data.csv").read_bytes() == data
    assert _leftovers(local_dir, {"data.csv"}) == []


def test_wrong_checksum_file_fails_without_retry_and_keeps_the_previous_target(
    sftp_server: ServerInfo, remote_dir: Path, local_dir: Path
) -> None:
    write_random(remote_dir / "data.csv", 200_000, seed=1)
    target = local_dir / "data.csv"
    target.write_bytes(b"yesterday's good copy")
    (remote_dir / "data.csv.sha256").write_text(f"{'ab' * 32}  data.csv\n")
    with pytest.raises(ChecksumMismatch, match="checksum file says abab") as caught:
        _download(
            sftp_server, remote_dir / "data.csv", target, checksum_file=str(remote_dir / "data.csv.sha256")
        )
    assert caught.value.retriable is False
    assert target.read_bytes() == b"yesterday's good copy"
    assert _leftovers(local_dir, {"data.csv"}) == []  # the bad .part and its sidecar are gone


def test_bad_format_and_missing_line_are_clear_errors(
    sftp_server: ServerInfo, remote_dir: Path, local_dir: Path
) -> None:
    write_random(remote_dir / "data.csv", 10_000, seed=2)
    checksum = remote_dir / "data.csv.sha256"
    checksum.write_text("this is not a checksum\n")
    with pytest.raises(ChecksumFileInvalid, match=r"line 1 .* is neither") as caught:
        _download(sftp_server, remote_dir / "data.csv", local_dir / "a.csv", checksum_file=str(checksum))
    assert caught.value.retriable is False
    checksum.write_text(f"{'0' * 64}  other.csv\n")
    with pytest.raises(ChecksumFileInvalid, match=r"no line for 'data.csv' \(it lists 'other.csv'\)"):
        _download(sftp_server, remote_dir / "data.csv", local_dir / "b.csv", checksum_file=str(checksum))
    checksum.write_text(f"{'0' * 32}  data.csv\n")  # an md5 in a .sha256 file
    with pytest.raises(
        ChecksumFileInvalid, match="its name says sha256 but the digest has the length of md5"
    ):
        _download(sftp_server, remote_dir / "data.csv", local_dir / "c.csv", checksum_file=str(checksum))
    assert not (local_dir / "a.csv").exists()
    assert not (local_dir / "b.csv").exists()


def test_missing_checksum_file_is_retriable_then_resumes_with_nothing_to_fetch_or_skips(
    sftp_server: ServerInfo, remote_dir: Path, local_dir: Path
) -> None:
    digest = write_random(remote_dir / "data.csv", 400_000, seed=3)
    checksum = str(remote_dir / "data.csv.sha256")
    with pytest.raises(ChecksumFileMissing, match="does not exist \\(yet\\)") as caught:
        _download(sftp_server, remote_dir / "data.csv", local_dir / "data.csv", checksum_file=checksum)
    assert caught.value.retriable is True
    assert not (local_dir / "data.csv").exists()
    (remote_dir / "data.csv.sha256").write_text(f"{digest}  data.csv\n")  # the partner publishes it late
    result = _download(sftp_server, remote_dir / "data.csv", local_dir / "data.csv", checksum_file=checksum)
    assert (result.resumed_from, result.bytes_transferred) == (400_000, 0)
    assert result.source_checksum == "sha256 via checksum file"
    skipped = _download(
        sftp_server,
        remote_dir / "data.csv",
        local_dir / "other.csv",
        checksum_file=checksum + ".gone",
        checksum_file_missing="skip",
    )
    assert skipped.source_checksum is None
    assert skipped.sha256 == digest


def test_directory_rule_checks_each_file_beside_its_checksum(
    sftp_server: ServerInfo, remote_dir: Path, local_dir: Path
) -> None:
    for name, seed in (("a.csv", 4), ("b.csv", 5)):
        digest = write_random(remote_dir / name, 50_000, seed=seed)
        (remote_dir / f"{name}.sha256").write_text(f"{digest}  {name}\n")
    options = DownloadOptions(checksums=ChecksumRule(checksum_file_suffix=".sha256"))
    result = asyncio.run(
        download_selection(
            session_factory(endpoint_for(sftp_server)),
            RemoteSelection.parse(str(remote_dir)),
            local_dir,
            options,
        )
    )
    proofs = {f.relative: f.source_checksum for f in result.files}
    assert proofs == {
        "a.csv": "sha256 via checksum file",
        "b.csv": "sha256 via checksum file",
        "a.csv.sha256": None,  # a checksum file itself is mirrored, not checked against another
        "b.csv.sha256": None,
    }


# -- check-file (ProFTPD) ------------------------------------------------------------------------------


def _proftpd_remote(proftpd_server: ServerInfo, tmp_path: Path) -> Path:
    directory = tmp_path / "proftpd-remote"
    directory.mkdir()
    return directory


def test_check_file_on_proftpd(proftpd_server: ServerInfo, tmp_path: Path, local_dir: Path) -> None:
    remote_dir = _proftpd_remote(proftpd_server, tmp_path)
    write_random(remote_dir / "data.bin", 3 * MiB, seed=6)
    for how in ("check-file", "auto"):
        result = _download(
            proftpd_server, remote_dir / "data.bin", local_dir / f"{how}.bin", source_checksum=how
        )
        assert result.source_checksum == "sha256 via check-file"


def test_checksum_file_and_check_file_together_on_proftpd(
    proftpd_server: ServerInfo, tmp_path: Path, local_dir: Path
) -> None:
    """Both proofs are asked for: an md5 checksum file (hashed here, in a thread) and the server's sha256."""
    remote_dir = _proftpd_remote(proftpd_server, tmp_path)
    write_random(remote_dir / "data.bin", 100_000, seed=7)
    (remote_dir / "data.bin.md5").write_text(hashlib.md5((remote_dir / "data.bin").read_bytes()).hexdigest())
    result = _download(
        proftpd_server,
        remote_dir / "data.bin",
        local_dir / "data.bin",
        checksum_file=str(remote_dir / "data.bin.md5"),
        source_checksum="check-file",
    )
    assert result.source_checksum == "md5 via checksum file, sha256 via check-file"


def test_upload_checked_by_check_file_before_the_rename(proftpd_server: ServerInfo, tmp_path: Path) -> None:
    remote_dir = _proftpd_remote(proftpd_server, tmp_path)
    source = tmp_path / "send.bin"
    digest = write_random(source, 2 * MiB, seed=8)
    (tmp_path / "send.bin.sha256").write_text(f"{digest}  send.bin\n")
    result = _upload(
        proftpd_server,
        source,
        remote_dir / "send.bin",
        checksum_file=str(tmp_path / "send.bin.sha256"),
        source_checksum="check-file",
    )
    assert (result.source_checksum, result.remote_checksum) == (
        "sha256 via checksum file",
        "sha256 via check-file",
    )
    assert hashlib.sha256((remote_dir / "send.bin").read_bytes()).hexdigest() == digest


def test_upload_with_a_wrong_local_checksum_file_is_not_put_in_place(
    proftpd_server: ServerInfo, tmp_path: Path
) -> None:
    remote_dir = _proftpd_remote(proftpd_server, tmp_path)
    (remote_dir / "send.bin").write_bytes(b"the partner's current file")
    source = tmp_path / "send.bin"
    write_random(source, 100_000, seed=9)
    (tmp_path / "send.bin.md5").write_text(f"{'1' * 32}  send.bin\n")
    with pytest.raises(ChecksumMismatch, match="not the file its checksum file vouches for"):
        _upload(proftpd_server, source, remote_dir / "send.bin", checksum_file=str(tmp_path / "send.bin.md5"))
    assert (remote_dir / "send.bin").read_bytes() == b"the partner's current file"
    assert sorted(p.name for p in remote_dir.iterdir()) == ["send.bin"]  # the temporary file was removed


# -- sha256sum over SSH (OpenSSH) and the asyncssh server ---------------------------------------------


@pytest.mark.parametrize("name", ["plain.bin", "with space.bin", 'it\'s "quoted" $HOME `x`.bin', "-dash.bin"])
def test_command_route_quotes_the_path(
    openssh_server: ServerInfo, remote_dir: Path, local_dir: Path, name: str
) -> None:
    digest = write_random(remote_dir / name, 200_000, seed=10)
    result = _download(openssh_server, remote_dir / name, local_dir / "copy.bin", source_checksum="command")
    assert result.source_checksum == "sha256 via sha256sum"
    assert result.sha256 == digest


def test_command_route_refuses_a_newline_in_the_path(
    openssh_server: ServerInfo, remote_dir: Path, local_dir: Path
) -> None:
    write_random(remote_dir / "two\nlines.bin", 1000, seed=11)
    with pytest.raises(SourceChecksumUnavailable, match="holds a newline") as caught:
        _download(
            openssh_server, remote_dir / "two\nlines.bin", local_dir / "copy.bin", source_checksum="command"
        )
    assert caught.value.retriable is False
    assert _leftovers(local_dir, set()) == []


def test_upload_checked_by_sha256sum_on_openssh(
    openssh_server: ServerInfo, tmp_path: Path, remote_dir: Path
) -> None:
    source = tmp_path / "send $x.bin"
    write_random(source, 500_000, seed=12)
    result = _upload(openssh_server, source, remote_dir / "send $x.bin", source_checksum="command")
    assert result.remote_checksum == "sha256 via sha256sum"


def test_openssh_has_no_check_file(openssh_server: ServerInfo, remote_dir: Path, local_dir: Path) -> None:
    """Asked for, not there: fails without retry, nothing published; the complete .part serves the rerun."""
    write_random(remote_dir / "data.bin", 100_000, seed=13)
    with pytest.raises(SourceChecksumUnavailable, match="does not answer the SFTP check-file extension"):
        _download(
            openssh_server, remote_dir / "data.bin", local_dir / "copy.bin", source_checksum="check-file"
        )
    assert not (local_dir / "copy.bin").exists()
    rerun = _download(openssh_server, remote_dir / "data.bin", local_dir / "copy.bin", source_checksum="auto")
    assert (rerun.resumed_from, rerun.bytes_transferred, rerun.source_checksum) == (100_000, 0, None)


def test_asyncssh_server_auto_falls_back_and_command_is_refused_clearly(
    asyncssh_server: ServerInfo, remote_dir: Path, local_dir: Path
) -> None:
    digest = write_random(remote_dir / "data.bin", 100_000, seed=14)
    result = _download(
        asyncssh_server, remote_dir / "data.bin", local_dir / "auto.bin", source_checksum="auto"
    )
    assert (result.source_checksum, result.sha256) == (None, digest)
    with pytest.raises(SourceChecksumUnavailable, match="command"):
        _download(asyncssh_server, remote_dir / "data.bin", local_dir / "cmd.bin", source_checksum="command")
    assert not (local_dir / "cmd.bin").exists()
