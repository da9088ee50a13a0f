"""
A seeded, randomized fault campaign against the real download engine.

Each scenario downloads one file over several tries. Before a try the remote file may change
(same-size rewrite with or without its mtime restored, append, truncate, delete, replaced by a
directory); during a try the link may be cut at a random byte, stall past the stall timeout, or the
process doing the try may be killed with SIGKILL at a random moment, or at a chosen point of the
durability path: just before or after the n-th ``os.replace`` (sidecar writes and the final rename),
``os.fsync`` or ``os.unlink`` (sidecar and lock removal). The try runs in a child process for that;
the child sends the SIGKILL to itself at that point. A last, undisturbed try follows.

After every try the campaign checks the promise: the try either succeeded and ``local_path`` holds
exactly the remote file as it stood during that try, or it failed and ``local_path`` holds nothing
new (absent, or the last complete file an earlier try published). Anything else is *failed badly*.

Run it as a script for a table: ``.venv/bin/python -m tests.support.campaign --scenarios 200``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_sftp_resume.core.download import DownloadOptions, download_file
from airflow_provider_sftp_resume.core.errors import TransferError
from airflow_provider_sftp_resume.core.sftp import SFTPSessionFactory, SSHEndpoint
from tests.support.faultproxy import FaultProxy

KiB, MiB = 1024, 1024 * 1024
#: Sizes at the edges of reads, packets and windows, plus random ones.
EDGE_SIZES = (0, 1, 32 * KiB - 1, 32 * KiB, 32 * KiB + 1, 256 * KiB - 1, 256 * KiB, 256 * KiB + 1, 2 * MiB)
REMOTE_CHANGES = ("rewrite_same_size", "rewrite_keep_mtime", "append", "truncate", "delete", "make_dir")
FAULTS = ("none", "cut", "cut", "stall", "kill", "kill_at")
#: Where a ``kill_at`` fault strikes: these calls carry the sidecar writes, fsyncs and the final rename.
KILL_POINTS = ("replace", "fsync", "unlink")
STALL_TIMEOUT = 1.0


@dataclass
class Tally:
    """What the campaign saw."""

    scenarios: int = 0
    succeeded: int = 0
    failed_cleanly: int = 0
    failed_badly: int = 0
    tries: int = 0
    wire_bytes: int = 0  # server-to-client bytes on the link, SSH overhead and failed tries included
    bytes_needed: int = 0  # the size of every distinct version delivered, once
    bad: list[str] = field(default_factory=list)

    def table(self) -> str:
        overhead = self.wire_bytes / self.bytes_needed if self.bytes_needed else 1.0
        rows = [
            ("scenarios run", self.scenarios),
            ("tries", self.tries),
            ("succeeded", self.succeeded),
            ("failed cleanly", self.failed_cleanly),
            ("failed badly (must be 0)", self.failed_badly),
            ("bytes on the wire (all tries, SSH overhead included)", self.wire_bytes),
            ("minimum bytes needed (each delivered version once)", self.bytes_needed),
            ("wire / minimum", f"{overhead:.2f}"),
        ]
        return "\n".join(
            f"| {name} | {value} |" for name, value in [("what", "count"), ("---", "---"), *rows]
        )


def _digest(path: Path) -> str | None:
    if not path.is_file():
        return None
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _kill_self_at(name: str, nth: int, after: bool) -> None:
    """
    Make the ``nth`` call of ``os.<name>`` in this process SIGKILL the process (before or after it).

    Fault injection for the campaign's child process only: the engine calls these through the ``os``
    module, so wrapping the module attribute reaches every call site.
    """
    real = getattr(os, name)
    calls = 0

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == nth and not after:
            os.kill(os.getpid(), signal.SIGKILL)
        try:
            return real(*args, **kwargs)
        finally:  # also when the call raised (an unlink of a file that is not there)
            if calls == nth and after:
                os.kill(os.getpid(), signal.SIGKILL)

    setattr(os, name, wrapper)


def _child_try(job_text: str) -> None:
    """Body of a child process that runs one try and prints its result (killed at random)."""
    job = json.loads(job_text)
    if job.get("kill_at"):
        _kill_self_at(*job["kill_at"])
    session = SFTPSessionFactory.from_dict(job["session"])
    options = DownloadOptions(checkpoint_interval=0.02, stall_timeout=STALL_TIMEOUT)
    try:
        result = asyncio.run(download_file(session, job["remote"], job["local"], options))
        print(json.dumps({"ok": result.to_dict()}), flush=True)
    except TransferError as exc:
        print(json.dumps({"error": type(exc).__name__}), flush=True)


class Campaign:
    """
    Runs scenarios against one server.

    :param endpoint: how to reach the server directly
    :param workdir: where remote and local files live
    :param seed: makes the campaign repeatable
    """

    def __init__(self, endpoint: SSHEndpoint, workdir: Path, seed: int) -> None:
        self.endpoint = endpoint
        self.workdir = workdir
        self.random = random.Random(seed)
        self.tally = Tally()
        self.proxy = FaultProxy(endpoint.port)

    def close(self) -> None:
        self.proxy.stop()

    def _factory(self) -> SFTPSessionFactory:
        proxied = SSHEndpoint(**{**self.endpoint.__dict__, "port": self.proxy.port})
        return SFTPSessionFactory(proxied, attempts=1, max_wait=0.1)

    def _write_remote(self, path: Path, size: int) -> None:
        path.write_bytes(self.random.randbytes(size))

    def _change_remote(self, remote: Path, change: str) -> None:
        if remote.is_dir():
            shutil.rmtree(remote)
            self._write_remote(remote, self.random.randrange(0, 3 * MiB))
            return
        if not remote.exists():
            self._write_remote(remote, self.random.randrange(0, 3 * MiB))
            return
        before = remote.stat()
        if change in ("rewrite_same_size", "rewrite_keep_mtime"):
            self._write_remote(remote, before.st_size)
            if change == "rewrite_keep_mtime":
                os.utime(remote, ns=(before.st_atime_ns, before.st_mtime_ns))
        elif change == "append":
            with open(remote, "ab") as handle:
                handle.write(self.random.randbytes(self.random.randrange(1, 200 * KiB)))
        elif change == "truncate":
            os.truncate(remote, self.random.randrange(0, max(1, before.st_size)))
        elif change == "delete":
            remote.unlink()
        elif change == "make_dir":
            remote.unlink()
            remote.mkdir()

    def scenario(self, number: int) -> None:
        base = self.workdir / f"s{number}"
        base.mkdir()
        remote, local = base / "remote.bin", base / "local" / "file.bin"
        local.parent.mkdir()
        size = (
            self.random.choice(EDGE_SIZES)
            if self.random.random() < 0.4
            else self.random.randrange(0, 12 * MiB)
        )
        self._write_remote(remote, size)
        published: set[str | None] = {None}
        wire_before = self.proxy.server_to_client
        tries = self.random.randrange(1, 5)
        for attempt in range(tries + 1):
            last = attempt == tries
            if attempt and self.random.random() < 0.3:
                self._change_remote(remote, self.random.choice(REMOTE_CHANGES))
            fault = "none" if last else self.random.choice(FAULTS)
            self.one_try(remote, local, fault, published, final=last)
        self.tally.wire_bytes += self.proxy.server_to_client - wire_before
        self.tally.scenarios += 1
        shutil.rmtree(base, ignore_errors=True)

    def one_try(
        self,
        remote: Path,
        local: Path,
        fault: str,
        published: set[str | None],
        *,
        final: bool,
        kill_at: tuple[str, int, bool] | None = None,
    ) -> dict[str, Any]:
        """
        Run one try with ``fault`` and check the promise; the tally records what happened.

        :param published: digests ``local_path`` may hold (``None``: absent); updated on success
        :param final: the last, undisturbed try of a scenario (it must succeed or fail cleanly)
        :param kill_at: for ``kill_at`` faults, ``(call, nth, after)``; random when ``None``
        :return: what the try reported (``{"error": "killed"}`` when it was killed before reporting)
        """
        self.tally.tries += 1
        self.proxy.heal()
        expected = _digest(remote)
        size = remote.stat().st_size if remote.is_file() else 0
        if fault == "cut":
            self.proxy.cut_after(self.random.randrange(0, max(1, size) + 64 * KiB))
        elif fault == "stall":
            self.proxy.stall_after(self.random.randrange(0, max(1, size) + 64 * KiB))
        if fault == "kill":
            outcome = self._killed_try(remote, local)
        elif fault == "kill_at":
            point = kill_at or (
                self.random.choice(KILL_POINTS),
                self.random.randrange(1, 8),
                self.random.random() < 0.5,
            )
            outcome = self._killed_try(remote, local, kill_at=point)
        else:
            outcome = self._in_process_try(remote, local)
        now = _digest(local)
        if "ok" in outcome:
            result = outcome["ok"]
            if now == expected == result["sha256"]:
                if now not in published:
                    self.tally.bytes_needed += result["size"]
                published.add(now)
                if final:
                    self.tally.succeeded += 1
                return outcome
            self._bad(f"{remote}: success reported but local {now} != remote {expected}")
            return outcome
        if now == expected and now not in published:
            # Killed after publishing and before reporting: a complete, correct file is no harm.
            self.tally.bytes_needed += remote.stat().st_size
            published.add(now)
        if now not in published:
            self._bad(f"{remote}: failed try ({outcome}) left an unpublished file at local_path")
        elif final:
            if outcome.get("error") in ("RemoteFileNotFound", "RemotePathError"):
                self.tally.failed_cleanly += 1
            else:
                self._bad(f"{remote}: undisturbed last try failed: {outcome}")
        return outcome

    def _bad(self, message: str) -> None:
        self.tally.failed_badly += 1
        self.tally.bad.append(message)

    def _in_process_try(self, remote: Path, local: Path) -> dict[str, Any]:
        options = DownloadOptions(checkpoint_interval=0.02, stall_timeout=STALL_TIMEOUT)
        try:
            result = asyncio.run(download_file(self._factory(), str(remote), local, options))
        except TransferError as exc:
            return {"error": type(exc).__name__}
        return {"ok": result.to_dict()}

    def _killed_try(
        self, remote: Path, local: Path, kill_at: tuple[str, int, bool] | None = None
    ) -> dict[str, Any]:
        self.proxy.set_rtt(0.004)  # slow enough that a kill lands mid-transfer
        job = {
            "session": self._factory().to_dict(),
            "remote": str(remote),
            "local": str(local),
            "kill_at": kill_at,
        }
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from tests.support.campaign import _child_try; _child_try(sys.stdin.read())",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert child.stdin is not None
        child.stdin.write(json.dumps(job))
        child.stdin.close()
        if kill_at is None:
            time.sleep(self.random.uniform(0.3, 1.5))  # interpreter start-up is about 0.3 s
            child.send_signal(signal.SIGKILL)
        assert child.stdout is not None
        out = child.stdout.read()
        try:
            child.wait(timeout=120)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        self.proxy.set_rtt(0.0)
        if out.strip():
            outcome: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
            return outcome
        return {"error": "killed"}


def run_campaign(endpoint: SSHEndpoint, scenarios: int, seed: int) -> Tally:
    """Run ``scenarios`` scenarios and return the tally."""
    with tempfile.TemporaryDirectory(prefix="sftp-resume-campaign-") as workdir:
        campaign = Campaign(endpoint, Path(workdir), seed)
        try:
            for number in range(scenarios):
                campaign.scenario(number)
        finally:
            campaign.close()
        return campaign.tally


def main() -> int:
    """Start a private sshd, run the campaign, print the table."""
    from tests.support.keys import make_key
    from tests.support.servers import OpenSSHServer

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenarios", type=int, default=200)
    parser.add_argument("--seed", type=int, default=20261125)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sftp-resume-sshd-") as workdir:
        key = make_key(Path(workdir) / "id_ed25519")
        server = OpenSSHServer(Path(workdir) / "sshd", key)
        try:
            endpoint = SSHEndpoint(
                host="127.0.0.1",
                port=server.info.port,
                username=server.info.username,
                client_keys=(str(key.private),),
                use_default_keys=False,
                trusted_host_keys=(server.info.host_key.public_line,),
                connect_timeout=10,
                keepalive_interval=0,
            )
            started = time.monotonic()
            tally = run_campaign(endpoint, args.scenarios, args.seed)
        finally:
            server.stop()
    print(f"Fault campaign, seed {args.seed}, {time.monotonic() - started:.0f} s\n")
    print(tally.table())
    for line in tally.bad[:20]:
        print("BAD:", line)
    return 0 if tally.failed_badly == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
