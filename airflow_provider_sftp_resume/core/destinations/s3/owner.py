"""The identity of one try that holds an upload: host, pid, a random token, a heartbeat time."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Owner:
    """
    The try that holds the upload.

    :param host: host name of the worker
    :param pid: process id on that host
    :param token: random id of the try (two tries never share one)
    :param heartbeat: when the owner last wrote the manifest, seconds since the epoch
    """

    host: str
    pid: int
    token: str
    heartbeat: float

    def describe(self) -> str:
        """Return ``host pid N`` for messages."""
        return f"{self.host} pid {self.pid}"
