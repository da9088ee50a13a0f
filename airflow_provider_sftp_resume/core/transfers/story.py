"""
What every try keeps count of, and the log lines of the phases downloads and uploads share.

One try of either direction tells the same story in the task log: connected, skipped (already
complete) or planned (restarting, resuming, starting), the checkpoint kept when it fails, done.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from airflow_provider_sftp_resume.core.options import RequestTimer

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.core.logs import Logger


class TryStory:
    """
    The counters of one try and its shared log lines.

    :param log: where the story is told (the task log in Airflow)
    :param started: ``time.monotonic()`` when the try began (before locking and connecting: what the
        user waits for)
    :param stall_timeout: seconds a small request may take (see :class:`~.options.RequestTimer`)
    :param direction: ``download`` or ``upload``
    """

    def __init__(self, log: Logger, started: float, stall_timeout: float, direction: str) -> None:
        self.log = log
        self.started = started
        self.direction = direction
        self.requests = RequestTimer(stall_timeout)
        self.transferred = 0  # bytes of file content moved in this try
        self.verification_bytes = 0  # bytes read back to prove kept bytes and the result
        self.first_byte_at: float | None = None

    def seconds(self) -> float:
        """Wall time of the try so far, rounded for the result."""
        return round(time.monotonic() - self.started, 3)

    def skipping(self, target: object, source: object, tail: int, digest: str) -> None:
        self.log.info(
            "%s already has the same size, mtime and last %d bytes as %s; skipping the %s. sha256 %s",
            target,
            tail,
            source,
            self.direction,
            digest,
        )

    def planned(self, resumed_from: int, size: int, into: object, reason: str | None, proof: str) -> None:
        """Say whether the try restarts, resumes (and what proved the kept bytes) or starts."""
        if reason:
            self.log.warning("Restarting the %s from byte 0: %s", self.direction, reason)
        if resumed_from:
            self.log.info(
                "Resuming at %d of %d bytes (%.1f%%); %s",
                resumed_from,
                size,
                100.0 * resumed_from / size,
                proof,
            )
        else:
            self.log.info("Starting %s of %d bytes into %s", self.direction, size, into)

    def kept(self, durable: int, size: int, how: str = "durable") -> None:
        self.log.info("Checkpoint kept: %d of %d bytes %s for the next try", durable, size, how)

    def done(self, target: object, size: int, digest: str, how: str = "") -> None:
        self.log.info(
            "Done: %s (%d bytes, sha256 %s) in %.1f s%s; %d bytes transferred in this try",
            target,
            size,
            digest,
            time.monotonic() - self.started,
            f" via {how}" if how else "",
            self.transferred,
        )
