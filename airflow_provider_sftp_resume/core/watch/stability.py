"""
Waiting until a partner has finished writing: the remote file (or every match of a glob) keeps the
same size and mtime for a quiet period.

SFTP has no "file closed" notification, so an unchanged size and mtime over a quiet period is the
usual, and only portable, signal. The period should exceed the longest pause the writer makes.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_provider_sftp_resume.core.errors import RemoteFileNotFound, UnsafeRemoteName
from airflow_provider_sftp_resume.core.transfers.selection import GLOB_CHARS, RemoteSelection, list_selection

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_sftp_resume.core.logs import Logger
    from airflow_provider_sftp_resume.core.remote.protocol import RemoteFileSystem, SessionFactory

#: What a snapshot records per file: size and mtime.
Snapshot = dict[str, tuple[int, int]]


@dataclass(frozen=True)
class StableSpec:
    """
    What to watch.

    :param path: a remote file, a remote directory (with ``pattern``), or a glob such as ``/in/*.csv``
    :param pattern: ``fnmatch`` pattern for names under a directory
    :param recursive: include subdirectories
    :param min_files: how many matching files must exist before they can be stable (at least 1)
    """

    path: str
    pattern: str | None = None
    recursive: bool = False
    min_files: int = 1


async def take_snapshot(fs: RemoteFileSystem, spec: StableSpec) -> Snapshot:
    """
    Return size and mtime of every watched file that exists now (empty when none does).

    :raises UnsafeRemoteName: a watched name would be refused by the download (not UTF-8, unsafe):
        waiting longer cannot help, and the download after the sensor would fail on it
    """
    try:
        stat = await fs.stat(spec.path)
    except RemoteFileNotFound:
        stat = None
    if stat is not None and stat.is_regular and not spec.pattern:
        return {spec.path: (stat.size, stat.mtime)}
    if stat is None and not GLOB_CHARS & set(spec.path):
        return {}
    try:
        files, refused = await list_selection(
            fs, RemoteSelection.parse(spec.path, spec.pattern, spec.recursive)
        )
    except RemoteFileNotFound:
        return {}
    if refused:
        raise UnsafeRemoteName("\n".join(refused))
    return {f.remote_path: (f.stat.size, f.stat.mtime) for f in files}


class StabilityWatch:
    """
    Decide stability from successive snapshots.

    :param quiet_period: seconds the snapshot must stay the same
    :param min_files: files that must exist
    :param clock: monotonic clock (tests inject one)
    """

    def __init__(self, quiet_period: float, min_files: int = 1, clock: Callable[[], float] = time.monotonic):
        if quiet_period < 0:
            raise ValueError(f"quiet_period must be zero or more seconds, got {quiet_period!r}")
        self.quiet_period = quiet_period
        self.min_files = min_files
        self._clock = clock
        self._last: Snapshot | None = None
        self._since = 0.0

    def observe(self, snapshot: Snapshot) -> bool:
        """Record a snapshot; return whether the files are there and have been quiet long enough."""
        now = self._clock()
        if snapshot != self._last:
            self._last, self._since = snapshot, now
        return len(snapshot) >= self.min_files and now - self._since >= self.quiet_period

    def describe(self) -> str:
        """One line for the log: what is watched and for how long it has been quiet."""
        files = self._last or {}
        total = sum(size for size, _ in files.values())
        return f"{len(files)} file(s), {total} bytes, unchanged for {self._clock() - self._since:.0f} s"


async def wait_until_stable(
    open_session: SessionFactory,
    spec: StableSpec,
    *,
    quiet_period: float,
    poll_interval: float,
    logger: Logger | None = None,
) -> Snapshot:
    """
    Poll until the watched files exist and keep their size and mtime for ``quiet_period`` seconds.

    One SFTP session serves all polls. Time out with ``asyncio.timeout`` around the call.

    :return: the stable snapshot (path -> size, mtime)
    """
    watch = StabilityWatch(quiet_period, spec.min_files)
    async with open_session() as fs:
        while True:
            snapshot = await take_snapshot(fs, spec)
            if watch.observe(snapshot):
                if logger is not None:
                    logger.info("Stable: %s", watch.describe())
                return snapshot
            if logger is not None:
                logger.info(
                    "Waiting for %s to be quiet for %g s: %s", spec.path, quiet_period, watch.describe()
                )
            await asyncio.sleep(poll_interval)
