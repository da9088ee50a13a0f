"""
A seeded, randomized fault campaign against the real download and upload engines.

Each scenario transfers one file over several tries (a download, or with ``--upload`` an upload).
Before a try the source file (remote for a download, local for an upload) may change
(same-size rewrite with or without its mtime restored, append, truncate, delete, replaced by a
directory); during a try the link may be cut at a random byte, stall past the stall timeout, or the
process doing the try may be killed with SIGKILL at a random moment, or at a chosen point of the
durability path: just before or after the n-th ``os.replace`` (sidecar writes and the final rename),
``os.fsync`` or ``os.unlink`` (sidecar and lock removal). The try runs in a child process for that;
the child sends the SIGKILL to itself at that point. A last, undisturbed try follows.

After every try the campaign checks the promise: the try either succeeded and the destination holds
exactly the source as it stood during that try, or it failed and the destination holds nothing new
(absent, or the last complete file an earlier try published). Anything else is *failed badly*.

Run it as a script for a table: ``.venv/bin/python -m tests.support.campaign --scenarios 200``
(add ``--upload`` for uploads).
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

from airflow_provider_sftp_resume.core.errors import TransferError
from airflow_provider_sftp_resume.core.remote.sftp import SFTPSessionFactory
from airflow_provider_sftp_resume.core.remote.ssh import SSHEndpoint
from airflow_provider_sftp_resume.core.transfers.download import DownloadOptions, download_file
from airflow_provider_sftp_resume.core.transfers.upload import UploadOptions, upload_file
from tests.support.faultproxy import FaultProxy

KiB, MiB = 1024, 1024 * 1024
#: Sizes at the edges of reads, packets and windows, plus random ones.
EDGE_SIZES = (0, 1, 32 * KiB - 1, 32 * KiB, 32 * KiB + 1, 256 * KiB - 1, 256 * KiB, 256 * KiB + 1, 2 * MiB)
SOURCE_CHANGES = ("rewrite_same_size", "rewrite_keep_mtime", "append", "truncate", "delete", "make_dir")
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
    print(json.dumps(_transfer(session, job["source"], job["dest"], job["server"])), flush=True)


def _transfer(session: SFTPSessionFactory, source: str, dest: str, server: str | None) -> dict[str, Any]:
    """One try: a download, or an upload when ``server`` (the destination's identity) is given."""
    try:
        if server is None:
            options = DownloadOptions(checkpoint_interval=0.02, stall_timeout=STALL_TIMEOUT)
            result: Any = asyncio.run(download_file(session, source, dest, options))
        else:
            sending = UploadOptions(checkpoint_interval=0.02, stall_timeout=STALL_TIMEOUT)
            result = asyncio.run(upload_file(session, source, dest, sending, server=server))
    except TransferError as exc:
        return {"error": type(exc).__name__}
    return {"ok": result.to_dict()}


class Campaign:
    """
    Runs scenarios against one server.

    :param endpoint: how to reach the server directly
    :param workdir: where remote and local files live
    :param seed: makes the campaign repeatable
    :param upload: run uploads (local source, remote destination) instead of downloads
    """

    def __init__(self, endpoint: SSHEndpoint, workdir: Path, seed: int, *, upload: bool = False) -> None:
        self.endpoint = endpoint
        self.upload = upload
        self.workdir = workdir
        self.random = random.Random(seed)
        self.tally = Tally()
        self.proxy = FaultProxy(endpoint.port)

    def close(self) -> None:
        self.proxy.stop()

    def _factory(self) -> SFTPSessionFactory:
        proxied = SSHEndpoint(**{**self.endpoint.__dict__, "port": self.proxy.port})
        return SFTPSessionFactory(proxied, attempts=1, max_wait=0.1)

    def _write_source(self, path: Path, size: int) -> None:
        path.write_bytes(self.random.randbytes(size))

    def _change_source(self, source: Path, change: str) -> None:
        if source.is_dir():
            shutil.rmtree(source)
            self._write_source(source, self.random.randrange(0, 3 * MiB))
            return
        if not source.exists():
            self._write_source(source, self.random.randrange(0, 3 * MiB))
            return
        before = source.stat()
        if change in ("rewrite_same_size", "rewrite_keep_mtime"):
            self._write_source(source, before.st_size)
            if change == "rewrite_keep_mtime":
                os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
        elif change == "append":
            with open(source, "ab") as handle:
                handle.write(self.random.randbytes(self.random.randrange(1, 200 * KiB)))
        elif change == "truncate":
            os.truncate(source, self.random.randrange(0, max(1, before.st_size)))
        elif change == "delete":
            source.unlink()
        elif change == "make_dir":
            source.unlink()
            source.mkdir()

    def scenario(self, number: int) -> None:
        base = self.workdir / f"s{number}"
        base.mkdir()
        source, dest = base / "source.bin", base / "destination" / "file.bin"
        dest.parent.mkdir()
        size = (
            self.random.choice(EDGE_SIZES)
            if self.random.random() < 0.4
            else self.random.randrange(0, 12 * MiB)
        )
        self._write_source(source, size)
        published: set[str | None] = {None}
        wire_before = self._wire()
        tries = self.random.randrange(1, 5)
        for attempt in range(tries + 1):
            last = attempt == tries
            if attempt and self.random.random() < 0.3:
                self._change_source(source, self.random.choice(SOURCE_CHANGES))
            fault = "none" if last else self.random.choice(FAULTS)
            self.one_try(source, dest, fault, published, final=last)
        self.tally.wire_bytes += self._wire() - wire_before
        self.tally.scenarios += 1
        shutil.rmtree(base, ignore_errors=True)

    def _wire(self) -> int:
        """Bytes that carried file content so far: server-to-client for downloads, the reverse for uploads."""
        return self.proxy.client_to_server if self.upload else self.proxy.server_to_client

    def one_try(
        self,
        source: Path,
        dest: Path,
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
        expected = _digest(source)
        size = source.stat().st_size if source.is_file() else 0
        if fault == "cut" and self.upload:
            self.proxy.cut_after_sent(self.random.randrange(0, max(1, size) + 64 * KiB))
        elif fault == "cut":
            self.proxy.cut_after(self.random.randrange(0, max(1, size) + 64 * KiB))
        elif fault == "stall":
            self.proxy.stall_after(self.random.randrange(0, max(1, size) + 64 * KiB))
        if fault == "kill":
            outcome = self._killed_try(source, dest)
        elif fault == "kill_at":
            point = kill_at or (
                self.random.choice(KILL_POINTS),
                self.random.randrange(1, 8),
                self.random.random() < 0.5,
            )
            outcome = self._killed_try(source, dest, kill_at=point)
        else:
            outcome = self._in_process_try(source, dest)
        now = _digest(dest)
        if "ok" in outcome:
            result = outcome["ok"]
            if now == expected == result["sha256"]:
                if now not in published:
                    self.tally.bytes_needed += result["size"]
                published.add(now)
                if final:
                    self.tally.succeeded += 1
                return outcome
            self._bad(f"{source}: success reported but destination {now} != source {expected}")
            return outcome
        if now == expected and now not in published:
            # Killed after publishing and before reporting: a complete, correct file is no harm.
            self.tally.bytes_needed += source.stat().st_size
            published.add(now)
        if now not in published:
            self._bad(f"{source}: failed try ({outcome}) left an unpublished file at the destination")
        elif final:
            if outcome.get("error") in ("RemoteFileNotFound", "RemotePathError", "LocalPathError"):
                self.tally.failed_cleanly += 1
            else:
                self._bad(f"{source}: undisturbed last try failed: {outcome}")
        return outcome

    def _bad(self, message: str) -> None:
        self.tally.failed_badly += 1
        self.tally.bad.append(message)

    def _server(self) -> str | None:
        """The destination's identity for uploads (the direct endpoint, whichever port the proxy has)."""
        return self.endpoint.describe() if self.upload else None

    def _in_process_try(self, source: Path, dest: Path) -> dict[str, Any]:
        return _transfer(self._factory(), str(source), str(dest), self._server())

    def _killed_try(
        self, source: Path, dest: Path, kill_at: tuple[str, int, bool] | None = None
    ) -> dict[str, Any]:
        self.proxy.set_rtt(0.004)  # slow enough that a kill lands mid-transfer
        job = {
            "session": self._factory().to_dict(),
            "source": str(source),
            "dest": str(dest),
            "server": self._server(),
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


def run_campaign(endpoint: SSHEndpoint, scenarios: int, seed: int, *, upload: bool = False) -> Tally:
    """Run ``scenarios`` scenarios (downloads, or uploads) and return the tally."""
    with tempfile.TemporaryDirectory(prefix="sftp-resume-campaign-") as workdir:
        campaign = Campaign(endpoint, Path(workdir), seed, upload=upload)
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
    parser.add_argument("--upload", action="store_true", help="uploads instead of downloads")
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
            tally = run_campaign(endpoint, args.scenarios, args.seed, upload=args.upload)
        finally:
            server.stop()
    kind = "uploads" if args.upload else "downloads"
    print(f"Fault campaign ({kind}), seed {args.seed}, {time.monotonic() - started:.0f} s\n")
    print(tally.table())
    for line in tally.bad[:20]:
        print("BAD:", line)
    return 0 if tally.failed_badly == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
