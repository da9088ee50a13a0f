"""Progress lines for a task log: percent, MB/s and ETA, at most one line per interval."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_sftp_resume.core.logs import Logger
    from airflow_provider_sftp_resume.core.options import ProgressCallback, TransferOptions

MB = 1_000_000


def format_bytes(count: float) -> str:
    """Return ``count`` as a short human size (``12.3 MB``)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{int(count)} B"


def format_duration(seconds: float) -> str:
    """Return ``seconds`` as ``1h02m03s`` / ``2m03s`` / ``3s``."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class ProgressReporter:
    """
    Log transfer progress at a bounded rate.

    :param log: where to write
    :param total: size of the file in bytes
    :param start_offset: bytes already on disk when this try started
    :param interval: seconds between two progress lines
    :param clock: monotonic clock (injected by tests)
    :param name: the file, for ``on_progress``
    :param on_progress: told ``(name, done, total)`` on every update, not only once per interval
    """

    def __init__(
        self,
        log: Logger,
        total: int,
        start_offset: int,
        *,
        interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        name: str = "",
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self._log = log
        self._total = total
        self._start_offset = start_offset
        self._interval = interval
        self._clock = clock
        self._started = clock()
        self._last_report = self._started
        self._name = name
        self._on_progress = on_progress

    @classmethod
    def for_transfer(
        cls, options: TransferOptions, log: Logger, total: int, start_offset: int, name: str
    ) -> ProgressReporter:
        """A reporter with the transfer's ``progress_interval`` and ``on_progress``, for the file ``name``."""
        return cls(
            log,
            total,
            start_offset,
            interval=options.progress_interval,
            name=name,
            on_progress=options.on_progress,
        )

    def update(self, done: int) -> None:
        """Report ``done`` bytes of ``total`` if the interval has passed since the last line."""
        if self._on_progress is not None:
            self._on_progress(self._name, done, self._total)
        now = self._clock()
        if now - self._last_report < self._interval:
            return
        self._last_report = now
        elapsed = max(now - self._started, 1e-9)
        rate = (done - self._start_offset) / elapsed
        percent = 100.0 * done / self._total if self._total else 100.0
        eta = (self._total - done) / rate if rate > 0 else float("inf")
        self._log.info(
            "Progress: %.1f%% (%s of %s) at %.1f MB/s, ETA %s",
            percent,
            format_bytes(done),
            format_bytes(self._total),
            rate / MB,
            format_duration(eta) if eta != float("inf") else "unknown",
        )
