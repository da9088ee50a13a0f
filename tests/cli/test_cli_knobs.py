"""
``sftp-resume`` passes the engine's checksum and bandwidth knobs through: a checksum file proves
the finished file (a wrong one fails permanently and publishes nothing), and ``--limit-rate`` caps
what crosses the link (counted at the fault proxy, not timed by a sleep).
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import TYPE_CHECKING

from tests.cli.conftest import Ran, cli_env, run_cli, server_flags
from tests.conftest import sha256_file, write_random

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.faultproxy import FaultProxy
    from tests.support.servers import ServerInfo

MiB = 1024 * 1024


def test_get_with_a_checksum_file_reports_the_proof(
    openssh_server: ServerInfo, sshd_proxy: FaultProxy, remote_dir: Path, local_dir: Path, home: Path
) -> None:
    source = remote_dir / "data.csv"
    digest = write_random(source, 3 * MiB, seed=7)
    (remote_dir / "data.csv.sha256").write_text(f"{digest}  data.csv\n")
    target = local_dir / "data.csv"
    ran = run_cli(
        "get", str(source), str(target), *server_flags(openssh_server, sshd_proxy.port),
        "--checksum-file", str(remote_dir / "data.csv.sha256"), "--json", env=cli_env(home),
    )  # fmt: skip
    assert ran.code == 0, ran.stderr
    assert ran.json["source_checksum"] == "sha256 via checksum file"
    assert sha256_file(target) == digest


def test_get_with_a_wrong_checksum_file_exits_permanent_and_publishes_nothing(
    openssh_server: ServerInfo, sshd_proxy: FaultProxy, remote_dir: Path, local_dir: Path, home: Path
) -> None:
    source = remote_dir / "data.csv"
    write_random(source, 3 * MiB, seed=8)
    wrong = hashlib.sha256(b"another file").hexdigest()
    (remote_dir / "data.csv.sha256").write_text(f"{wrong}  data.csv\n")
    target = local_dir / "data.csv"
    ran = run_cli(
        "get", str(source), str(target), *server_flags(openssh_server, sshd_proxy.port),
        "--checksum-file", str(remote_dir / "data.csv.sha256"), "--json", env=cli_env(home),
    )  # fmt: skip
    assert ran.code == 65, ran.stderr
    assert ran.json["retriable"] is False
    assert wrong in ran.stderr
    assert not target.exists()


def test_mirror_checks_each_file_against_the_checksum_beside_it(
    openssh_server: ServerInfo, sshd_proxy: FaultProxy, remote_dir: Path, local_dir: Path, home: Path
) -> None:
    good = write_random(remote_dir / "a.bin", MiB, seed=9)
    (remote_dir / "a.bin.sha256").write_text(f"{good}  a.bin\n")
    write_random(remote_dir / "b.bin", MiB, seed=10)
    (remote_dir / "b.bin.sha256").write_text(f"{hashlib.sha256(b'x').hexdigest()}  b.bin\n")
    ran = run_cli(
        "mirror", str(remote_dir), str(local_dir / "out"), *server_flags(openssh_server, sshd_proxy.port),
        "--checksum-suffix", ".sha256", "--json", env=cli_env(home),
    )  # fmt: skip
    assert ran.code != 0, ran.stderr
    assert sha256_file(local_dir / "out" / "a.bin") == good
    assert not (local_dir / "out" / "b.bin").exists()


def test_limit_rate_caps_the_bytes_on_the_link(
    openssh_server: ServerInfo, sshd_proxy: FaultProxy, remote_dir: Path, local_dir: Path, home: Path
) -> None:
    size, rate = 8 * MiB, 2_000_000
    digest = write_random(remote_dir / "capped.bin", size, seed=11)
    done: list[Ran] = []
    command = threading.Thread(
        target=lambda: done.append(run_cli(
            "get", str(remote_dir / "capped.bin"), str(local_dir / "capped.bin"),
            *server_flags(openssh_server, sshd_proxy.port), "--limit-rate", str(rate), "--json",
            env=cli_env(home),
        ))
    )  # fmt: skip
    samples: list[tuple[float, int]] = []
    command.start()
    while command.is_alive():
        samples.append((time.monotonic(), sshd_proxy.server_to_client))
        time.sleep(0.25)
    command.join()
    ran = done[0]
    assert ran.code == 0, ran.stderr
    assert ran.json["sha256"] == digest
    # The rate the proxy saw while the file's bytes flowed (after the first MiB: the SSH handshake and
    # the first burst; before the last MiB), measured at the link rather than trusted from the result.
    flowing = [(t, n) for t, n in samples if MiB <= n <= size - MiB]
    assert len(flowing) >= 8, samples
    (t0, n0), (t1, n1) = flowing[0], flowing[-1]
    measured = (n1 - n0) / (t1 - t0)
    assert 0.8 * rate <= measured <= 1.1 * rate, measured
