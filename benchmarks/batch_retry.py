"""
Figures for a batch retry: how many bytes each try moves when a directory download is cut.

Starts a throwaway OpenSSH sshd and a fault proxy, mirrors a directory of files (mixed sizes) with
``download_selection``, cuts the link partway, then runs the retry and prints a table: per try, the
files downloaded / resumed / skipped and the bytes transferred, against the bytes that were still
missing. The retry must move exactly the missing bytes (complete files are skipped, cut files
resume at their last checkpoint).

    .venv/bin/python benchmarks/batch_retry.py [--files 12] [--cut-mib 60]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MiB = 1024 * 1024


def main() -> int:
    from airflow_provider_sftp_resume.core.errors import SomeFilesFailed
    from airflow_provider_sftp_resume.core.remote.sftp import SFTPSessionFactory
    from airflow_provider_sftp_resume.core.remote.ssh import SSHEndpoint
    from airflow_provider_sftp_resume.core.transfers.batch import BatchResult, download_selection
    from airflow_provider_sftp_resume.core.transfers.download import DownloadOptions
    from airflow_provider_sftp_resume.core.transfers.selection import RemoteSelection
    from tests.conftest import write_random
    from tests.support.faultproxy import FaultProxy
    from tests.support.keys import make_key
    from tests.support.servers import OpenSSHServer

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=12, help="files in the directory")
    parser.add_argument("--cut-mib", type=int, default=60, help="cut the link after this many MiB")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="batch-retry-"))
    client_key = make_key(workdir / "keys" / "id_ed25519")
    server = OpenSSHServer(workdir / "sshd", client_key)
    proxy = FaultProxy(server.info.port)
    try:
        remote = workdir / "outgoing"
        remote.mkdir()
        sizes = {f"file-{i:02d}.bin": (1 + (i * 7) % 16) * MiB for i in range(args.files)}
        for i, (name, size) in enumerate(sizes.items()):
            write_random(remote / name, size, seed=i)
        total = sum(sizes.values())
        endpoint = SSHEndpoint(
            host="127.0.0.1",
            port=proxy.port,
            username=server.info.username,
            client_keys=(str(client_key.private),),
            trusted_host_keys=(server.info.host_key.public_line,),
            use_default_keys=False,
        )
        selection = RemoteSelection.parse(str(remote))
        local = workdir / "mirror"

        def run_try() -> BatchResult:
            return asyncio.run(
                download_selection(
                    SFTPSessionFactory(endpoint, attempts=1),
                    selection,
                    local,
                    DownloadOptions(checkpoint_interval=0.1),
                    concurrency=args.concurrency,
                )
            )

        proxy.cut_after(args.cut_mib * MiB)
        try:
            first = run_try()
        except SomeFilesFailed as exc:
            if not isinstance(exc.result, BatchResult):
                raise
            first = exc.result
        missing = (
            total
            - sum(f.size for f in first.files if f.status == "downloaded")
            - sum(_kept(local / f.relative) for f in first.files if f.status == "failed")
        )
        second = run_try()
    finally:
        proxy.stop()
        server.stop()
    print(f"{args.files} files, {total / MiB:.0f} MiB in all; link cut after {args.cut_mib} MiB\n")
    print("| try | downloaded | resumed | skipped | failed | MiB transferred |")
    print("|---|---|---|---|---|---|")
    for label, result in (("1 (cut)", first), ("2 (retry)", second)):
        counts = " | ".join(str(result.count(s)) for s in ("downloaded", "resumed", "skipped", "failed"))
        print(f"| {label} | {counts} | {result.bytes_transferred / MiB:.1f} |")
    print(
        f"\nMissing after try 1 (not complete, not checkpointed): {missing / MiB:.1f} MiB; the retry "
        f"transferred {second.bytes_transferred / MiB:.1f} MiB "
        f"({'exactly' if second.bytes_transferred == missing else 'NOT'} the missing bytes)."
    )
    shutil.rmtree(workdir, ignore_errors=True)
    return 0 if second.bytes_transferred == missing and second.count("failed") == 0 else 1


def _kept(local: Path) -> int:
    """Durable bytes a cut file kept (from its sidecar), 0 without one."""
    from airflow_provider_sftp_resume.core.resume.localfiles import LocalPaths, read_state

    try:
        return read_state(LocalPaths.for_target(local)).durable_bytes
    except FileNotFoundError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
