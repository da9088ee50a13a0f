"""
``sftp-resume get|put|mirror`` against the real sshd, cut by the fault proxy: exit 75 with the
``.part`` kept, then a second run (or ``--retries``) resumes to the source's exact bytes.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from tests.cli.conftest import cli_env, run_cli, server_flags
from tests.conftest import sha256_file, write_random

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.faultproxy import FaultProxy
    from tests.support.servers import ServerInfo

MiB = 1024 * 1024


def test_get_cut_exits_75_keeps_the_part_and_the_next_run_resumes(
    openssh_server: ServerInfo, sshd_proxy: FaultProxy, remote_dir: Path, local_dir: Path, home: Path
) -> None:
    source = remote_dir / "dump.bin"
    digest = write_random(source, 12 * MiB)
    target = local_dir / "dump.bin"
    flags = server_flags(openssh_server, sshd_proxy.port)
    env = cli_env(home)

    sshd_proxy.cut_after(5 * MiB)
    first = run_cli("get", str(source), str(target), *flags, "--json", env=env)
    assert first.code == 75, first.stderr
    assert first.json["retriable"] is True
    assert first.json["exit_code"] == 75
    assert "run the same command again" in first.stderr
    part = local_dir / "dump.bin.part"
    assert part.exists()
    assert not target.exists()

    second = run_cli("get", str(source), str(target), *flags, "--json", env=env)
    assert second.code == 0, second.stderr
    result = second.json
    assert result["resumed_from"] > 0
    assert result["resumed_from"] + result["bytes_transferred"] == 12 * MiB
    assert result["sha256"] == digest
    assert sha256_file(target) == digest
    assert not part.exists()


def test_retries_resume_within_one_invocation(
    openssh_server: ServerInfo, sshd_proxy: FaultProxy, remote_dir: Path, local_dir: Path, home: Path
) -> None:
    source = remote_dir / "dump.bin"
    digest = write_random(source, 12 * MiB, seed=1)
    target = local_dir / "dump.bin"
    sshd_proxy.cut_after(5 * MiB)
    ran = run_cli(
        "get",
        str(source),
        str(target),
        *server_flags(openssh_server, sshd_proxy.port),
        "--retries",
        "2",
        "--retry-delay",
        "0.2",
        "--json",
        env=cli_env(home),
    )
    assert ran.code == 0, ran.stderr
    assert ran.json["tries"] == 2
    assert ran.json["resumed_from"] > 0
    assert "Try 1 of 3 failed" in ran.stderr
    assert sshd_proxy.cuts == 1
    assert sha256_file(target) == digest


def test_put_cut_then_resumed(
    openssh_server: ServerInfo, sshd_proxy: FaultProxy, remote_dir: Path, local_dir: Path, home: Path
) -> None:
    source = local_dir / "upload.bin"
    digest = write_random(source, 24 * MiB, seed=2)
    remote = remote_dir / "upload.bin"
    flags = server_flags(openssh_server, sshd_proxy.port)
    env = cli_env(home)

    # 8 MiB/s up, so that checkpoints (every 0.5 s, each after a server fsync, which waits behind the
    # writes in flight) happen before the cut; at loopback speed the first one would come too late.
    sshd_proxy.set_upload_rate(8 * MiB)
    sshd_proxy.cut_after_sent(14 * MiB)
    first = run_cli("put", str(source), str(remote), *flags, "--json", env=env)
    assert first.code == 75, first.stderr
    assert (remote_dir / "upload.bin.part").exists()
    assert not remote.exists()

    sshd_proxy.set_upload_rate(None)
    second = run_cli("put", str(source), str(remote), *flags, "--json", env=env)
    assert second.code == 0, second.stderr
    assert second.json["resumed_from"] > 0, first.stderr + second.stderr
    assert second.json["sha256"] == digest
    assert sha256_file(remote) == digest


def test_mirror_a_glob_cut_then_resumed(
    openssh_server: ServerInfo, sshd_proxy: FaultProxy, remote_dir: Path, tmp_path: Path, home: Path
) -> None:
    names = [f"part{i}.csv" for i in range(3)]
    digests = {name: write_random(remote_dir / name, 3 * MiB, seed=i) for i, name in enumerate(names)}
    (remote_dir / "notes.txt").write_text("not selected")
    local = tmp_path / "mirror"  # created by the command
    flags = server_flags(openssh_server, sshd_proxy.port)
    env = cli_env(home)
    args = ("mirror", f"{remote_dir}/*.csv", str(local), *flags, "--connections", "1", "--json")

    sshd_proxy.cut_after(4 * MiB)
    first = run_cli(*args, env=env)
    assert first.code == 75, first.stderr
    assert first.json["result"]["files_failed"] >= 1

    second = run_cli(*args, env=env)
    assert second.code == 0, second.stderr
    result = second.json
    assert result["files_total"] == 3
    assert result["files_resumed"] >= 1
    assert result["files_skipped"] >= 1  # finished by the first run: proven unchanged, not fetched again
    assert {p.name: sha256_file(p) for p in local.iterdir()} == digests


def test_a_permanent_error_exits_65(
    openssh_server: ServerInfo, remote_dir: Path, local_dir: Path, home: Path
) -> None:
    ran = run_cli(
        "get",
        str(remote_dir),  # a directory, not a file
        str(local_dir / "x"),
        *server_flags(openssh_server, openssh_server.port),
        "--retries",
        "3",
        "--retry-delay",
        "5",
        "--json",
        env=cli_env(home),
    )
    assert ran.code == 65, ran.stderr
    assert ran.json["tries"] == 1  # never retried
    assert ran.json["error_type"] == "RemotePathError"
    assert "is a directory" in ran.json["error"]


def test_sigterm_keeps_the_checkpoint_and_exits_143(
    openssh_server: ServerInfo, sshd_proxy: FaultProxy, remote_dir: Path, local_dir: Path, home: Path
) -> None:
    import subprocess
    import time

    from tests.cli.conftest import COMMAND

    source = remote_dir / "slow.bin"
    digest = write_random(source, 8 * MiB, seed=3)
    target = local_dir / "slow.bin"
    sshd_proxy.set_rate(2 * MiB)
    flags = server_flags(openssh_server, sshd_proxy.port)
    env = cli_env(home)
    process = subprocess.Popen(
        [*COMMAND, "get", str(source), str(target), *flags],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        part = local_dir / "slow.bin.part"
        deadline = time.monotonic() + 30
        while not (part.exists() and part.stat().st_size > MiB) and time.monotonic() < deadline:
            time.sleep(0.05)
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 143, stderr
    assert "Checkpoint kept" in stderr
    sshd_proxy.set_rate(None)
    again = run_cli("get", str(source), str(target), *flags, "--json", env=env)
    assert again.code == 0, again.stderr
    assert again.json["resumed_from"] > 0
    assert hashlib.sha256(target.read_bytes()).hexdigest() == digest
