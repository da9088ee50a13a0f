"""
What ``sftp-resume`` prints: a progress bar (rich) when stderr is a terminal, plain lines without a
carriage return otherwise, JSON alone on stdout with ``--json``.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from typing import TYPE_CHECKING

from tests.cli.conftest import COMMAND, PASSWORD, cli_env, run_cli, server_flags
from tests.conftest import sha256_file, write_random

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.faultproxy import FaultProxy
    from tests.support.servers import ServerInfo

MiB = 1024 * 1024


def test_without_a_terminal_progress_is_plain_lines_without_carriage_returns(
    openssh_server: ServerInfo, sshd_proxy: FaultProxy, remote_dir: Path, local_dir: Path, home: Path
) -> None:
    source = remote_dir / "plain.bin"
    digest = write_random(source, 6 * MiB, seed=6)
    sshd_proxy.set_rate(4 * MiB)  # about 1.5 s: several progress lines at 0.2 s
    ran = run_cli(
        "get",
        str(source),
        str(local_dir / "plain.bin"),
        *server_flags(openssh_server, sshd_proxy.port),
        "--progress-interval",
        "0.2",
        "--json",
        env=cli_env(home),
    )
    assert ran.code == 0, ran.stderr
    progress = [line for line in ran.stderr.splitlines() if " INFO Progress: " in line]
    assert len(progress) >= 3, ran.stderr
    assert "\r" not in ran.stderr
    assert "\r" not in ran.stdout
    assert "\x1b[" not in ran.stderr  # no terminal control sequences either
    assert ran.json["sha256"] == digest == sha256_file(local_dir / "plain.bin")


def run_in_terminal(
    args: list[str], env: dict[str, str], timeout: float = 60, answer: tuple[str, str] | None = None
) -> tuple[int, str]:
    """
    Run the command with stdin, stdout and stderr on a pseudo-terminal; return its code and output.

    :param answer: ``(prompt, reply)``: type ``reply`` and Enter once ``prompt`` has been printed
    """
    leader, follower = pty.openpty()
    process = subprocess.Popen([*COMMAND, *args], stdin=follower, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    data = os.read(leader, 65536)
                except OSError:  # EIO: the terminal's last writer has gone
                    break
                if not data:
                    break
                chunks.append(data)
                if answer is not None and answer[0].encode() in b"".join(chunks):
                    os.write(leader, answer[1].encode() + b"\n")
                    answer = None
            elif process.poll() is not None:
                break
        code = process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(leader)
    return code, b"".join(chunks).decode("utf-8", "replace")


def plain(output: str) -> str:
    """``output`` without terminal control sequences (colours, cursor moves)."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output)


def test_on_a_terminal_a_progress_bar_is_drawn(
    openssh_server: ServerInfo, sshd_proxy: FaultProxy, remote_dir: Path, local_dir: Path, home: Path
) -> None:
    source = remote_dir / "bar.bin"
    digest = write_random(source, 6 * MiB, seed=7)
    sshd_proxy.set_rate(4 * MiB)
    env = cli_env(home, TERM="xterm-256color", COLUMNS="100")
    env.pop("NO_COLOR", None)
    code, output = run_in_terminal(
        ["get", str(source), str(local_dir / "bar.bin"), *server_flags(openssh_server, sshd_proxy.port)], env
    )
    assert code == 0, output
    assert "bar.bin" in output
    assert "━" in output  # rich's bar
    assert "100.0%" in output
    assert "MB/s" in output
    assert "\r" in output or "\x1b[" in output  # redrawn in place
    assert " INFO Progress: " not in output  # the bar replaces the engine's progress lines
    assert sha256_file(local_dir / "bar.bin") == digest


def test_a_refused_login_at_a_terminal_asks_for_the_password_once(
    password_server: ServerInfo, remote_dir: Path, local_dir: Path, home: Path
) -> None:
    source = remote_dir / "asked.bin"
    digest = write_random(source, 100_000, seed=8)
    args = ["get", str(source), str(local_dir / "asked.bin"), "--host", password_server.host]
    args += ["--port", str(password_server.port), "--user", "alice"]
    args += ["--host-key", password_server.host_key.public_line]
    code, output = run_in_terminal(args, cli_env(home, TERM="xterm"), answer=("Password for", PASSWORD))
    assert code == 0, output
    assert "Password for alice@127.0.0.1" in plain(output), output
    assert PASSWORD not in output  # getpass does not echo
    assert sha256_file(local_dir / "asked.bin") == digest
