"""
An upload's recorded offset means durable on the server where it can, and is proved harder where not.

Both servers are Debian's real OpenSSH ``sftp-server`` behind sshd, through
``tests/support/sftp_server_wrapper.py``: one logs every request at ``DEBUG3`` (so the test sees each
write and each ``fsync@openssh.com`` in the order the server handled them), the other denies fsync
with ``sftp-server -P fsync`` (OpenSSH 9.2 then stops advertising it: a server without fsync).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from typing import TYPE_CHECKING

import pytest

from airflow_provider_sftp_resume.core.errors import TransferInterrupted
from airflow_provider_sftp_resume.core.transfers.upload import (
    SAMPLE_BLOCKS,
    UploadOptions,
    UploadResult,
    upload_file,
)
from tests.conftest import endpoint_for, session_factory, sha256_file, write_random
from tests.support.faultproxy import FaultProxy
from tests.support.servers import OpenSSHServer, find_sshd, wrapped_sftp_server

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.keys import KeyPair
    from tests.support.servers import ServerInfo

MiB = 1024 * 1024
WRITE = re.compile(
    r'request \d+: write "(?P<path>[^"]+)" \(handle (?P<handle>\d+)\) off (?P<off>\d+) len (?P<len>\d+)'
)
FSYNC = re.compile(r"request \d+: fsync \(handle (?P<handle>\d+)\)")


def _server(workdir: Path, client_key: KeyPair, **wrapper: object) -> OpenSSHServer:
    if find_sshd() is None:
        pytest.skip("OpenSSH sshd is not installed (apt-get install openssh-server)")
    log = workdir / "sftp-server.log"
    server = OpenSSHServer(workdir, client_key, subsystem=wrapped_sftp_server(log=log, **wrapper))  # type: ignore[arg-type]
    server.info.extra["log"] = log
    return server


@pytest.fixture(scope="module")
def logging_openssh(tmp_path_factory: pytest.TempPathFactory, client_key: KeyPair) -> Iterator[ServerInfo]:
    """sftp-server with fsync, logging every request (DEBUG3)."""
    server = _server(tmp_path_factory.mktemp("fsync-log"), client_key, level="DEBUG3")
    try:
        yield server.info
    finally:
        server.stop()


@pytest.fixture(scope="module")
def openssh_without_fsync(
    tmp_path_factory: pytest.TempPathFactory, client_key: KeyPair
) -> Iterator[ServerInfo]:
    """sftp-server -P fsync: OpenSSH 9.2 does not advertise it, so the client has no fsync."""
    server = _server(tmp_path_factory.mktemp("no-fsync"), client_key, deny=("fsync",))
    try:
        yield server.info
    finally:
        server.stop()


def _upload(server: ServerInfo, port: int, source: Path, target: Path, **options: object) -> UploadResult:
    merged: dict[str, object] = {"checkpoint_interval": 0.05, "max_requests": 4, **options}
    return asyncio.run(
        upload_file(
            session_factory(endpoint_for(server, port)),
            source,
            str(target),
            UploadOptions(**merged),  # type: ignore[arg-type]
            server=endpoint_for(server).describe(),
        )
    )


def _cut_try(server: ServerInfo, source: Path, target: Path, cut: int) -> list[dict[str, object]]:
    """
    One upload try through a 20 ms link, cut after ``cut`` bytes sent; return every sidecar seen.

    A thread reads the sidecar (replaced atomically, so always whole) every millisecond meanwhile.
    """
    seen: list[dict[str, object]] = []
    done = threading.Event()

    def look() -> None:
        for sidecar in source.parent.glob(f"{source.name}.upload-*.json"):
            try:
                state = json.loads(sidecar.read_text())
            except (OSError, ValueError):
                continue
            if not seen or seen[-1] != state:
                seen.append(state)

    def watch() -> None:
        while not done.is_set():
            look()
            done.wait(0.001)
        look()  # the last one, written as the try failed

    proxy = FaultProxy(server.port)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        proxy.set_rtt(0.02)
        proxy.cut_after_sent(cut)
        with pytest.raises(TransferInterrupted):
            _upload(server, proxy.port, source, target)
    finally:
        done.set()
        watcher.join(timeout=5)
        proxy.stop()
    return seen


def _durable_prefixes(log: Path, temp: Path) -> list[int]:
    """For each fsync of ``temp`` in the server's log: how far the bytes written before it reached."""
    handle: str | None = None
    written: dict[int, int] = {}
    covered = 0
    durable: list[int] = []
    for line in log.read_text().splitlines():
        if (write := WRITE.search(line)) and write["path"] == str(temp):
            handle = write["handle"]
            written[int(write["off"])] = int(write["off"]) + int(write["len"])
            while covered in written:
                covered = written.pop(covered)
        elif (fsync := FSYNC.search(line)) and fsync["handle"] == handle:
            durable.append(covered)
    return durable


def test_the_sidecar_offset_only_advances_after_a_server_fsync(
    logging_openssh: ServerInfo, tmp_path: Path
) -> None:
    source = tmp_path / "durable.bin"
    digest = write_random(source, 24 * MiB, seed=50)
    target = tmp_path / "remote" / "durable.bin"
    target.parent.mkdir()
    log: Path = logging_openssh.extra["log"]
    log.write_text("")

    seen = _cut_try(logging_openssh, source, target, 12 * MiB)

    offsets = [int(state["acknowledged"]) for state in seen if int(state["acknowledged"]) > 0]  # type: ignore[call-overload]
    assert offsets, "durable checkpoints were recorded before the cut"
    durable = _durable_prefixes(log, target.with_name("durable.bin.part"))
    # Each recorded offset needs its own fsync, handled by the server after the writes it covers
    # (matched in order: offset i to a later fsync than offset i-1's).
    position = 0
    for offset in offsets:
        while position < len(durable) and durable[position] < offset:
            position += 1
        assert position < len(durable), (
            f"offset {offset} recorded without a server fsync covering it: {durable}"
        )
        position += 1
    assert all(state.get("synced") is True for state in seen if state["acknowledged"]), seen

    result = _upload(logging_openssh, logging_openssh.port, source, target)

    assert result.resumed_from == offsets[-1]
    assert sha256_file(target) == digest


def test_without_server_fsync_zeros_in_the_kept_prefix_are_found_and_the_upload_restarts(
    openssh_without_fsync: ServerInfo, tmp_path: Path
) -> None:
    source = tmp_path / "crashed.bin"
    digest = write_random(source, 24 * MiB, seed=51)
    target = tmp_path / "remote" / "crashed.bin"
    target.parent.mkdir()

    seen = _cut_try(openssh_without_fsync, source, target, 12 * MiB)

    last = seen[-1]
    kept = int(last["acknowledged"])  # type: ignore[call-overload]
    assert kept > 4 * MiB, last
    assert last.get("synced", False) is False, last
    # What a server crash without fsync can leave: a stretch of zeros in the middle of the kept
    # bytes (here 1 MiB, far from the last 64 KiB, longer than 1/31 of the kept prefix).
    assert MiB > kept / (SAMPLE_BLOCKS - 1)
    with target.with_name("crashed.bin.part").open("r+b") as handle:
        handle.seek(kept // 2)
        handle.write(b"\0" * MiB)

    result = _upload(openssh_without_fsync, openssh_without_fsync.port, source, target)

    assert sha256_file(target) == digest, "the published file holds the zeros"
    assert result.resumed_from == 0
    assert result.restart_reason is not None
    assert "differ" in result.restart_reason


def test_without_server_fsync_an_intact_kept_prefix_is_resumed(
    openssh_without_fsync: ServerInfo, tmp_path: Path
) -> None:
    source = tmp_path / "intact.bin"
    digest = write_random(source, 24 * MiB, seed=52)
    target = tmp_path / "remote" / "intact.bin"
    target.parent.mkdir()
    kept = int(_cut_try(openssh_without_fsync, source, target, 12 * MiB)[-1]["acknowledged"])  # type: ignore[call-overload]

    result = _upload(openssh_without_fsync, openssh_without_fsync.port, source, target)

    assert result.resumed_from == kept > 0
    assert result.verification_bytes >= SAMPLE_BLOCKS * 64 * 1024, "sampled blocks were re-read"
    assert sha256_file(target) == digest
