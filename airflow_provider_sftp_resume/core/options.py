"""What every transfer shares: the timing and behaviour knobs, and requests bounded by the stall timeout."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from airflow_provider_sftp_resume.core.bandwidth import BandwidthLimit
from airflow_provider_sftp_resume.core.errors import TransferStalled

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable

T = TypeVar("T")
#: Told how far a transfer is, after every block: ``(name, done, total)``, bytes of the file; ``name``
#: is the remote path. Called on the transfer's event loop thread: it must be quick and not raise.
ProgressCallback = Callable[[str, int, int], None]


@contextlib.asynccontextmanager
async def answer_deadline(seconds: float, what: str) -> AsyncIterator[None]:
    """
    Give the block ``seconds`` to finish (:func:`asyncio.timeout`): a dead link must not hang the try.

    This is a deadline, for requests that move a bounded, small amount of data (a stat, an open, a
    64 KiB read). Work that can legitimately take longer on a slow link (a whole segment) is guarded
    by ``stall_watchdog`` (:mod:`.io.fill`) instead, which only fires when progress stops.

    :param seconds: the deadline
    :param what: what the block does, for the message (``"opening the remote file"``)
    :raises TransferStalled: the block did not finish in time
    """
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise TransferStalled(
            f"No answer for {seconds:g} s while {what}; treating the link as dead."
        ) from None


async def answer_within(awaitable: Awaitable[T], seconds: float, what: str) -> T:
    """
    Await one small request within ``seconds`` (:func:`answer_deadline` around one awaitable).

    :raises TransferStalled: no answer in time
    """
    async with answer_deadline(seconds, what):
        return await awaitable


def is_count(value: object, maximum: int | None = None) -> bool:
    """Whether ``value`` is a whole number from 1 to ``maximum`` (``True`` is a bool, not a count)."""
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and value >= 1
        and (maximum is None or value <= maximum)
    )


@dataclass(frozen=True)
class TransferOptions:
    """
    Knobs shared by downloads and uploads.

    :param create_intermediate_dirs: create missing parent directories of the destination
    :param stall_timeout: seconds without any progress before the link is treated as dead
    :param checkpoint_interval: seconds between checkpoints during the transfer
    :param progress_interval: seconds between progress lines in the log
    :param skip_unchanged: leave a destination alone when it provably matches the source (same size,
        same mtime, same last 64 KiB)
    :param preserve_mtime: give the destination the source's modification time
    :param block_size: bytes per request; ``None`` uses the server's advertised maximum
    :param max_requests: requests in flight per connection; ``None`` sizes it to the round trip
    :param max_bytes_per_second: bandwidth cap over every connection, segment and file that shares
        these options (a batch shares them across its files); ``None`` for no cap
    :param bandwidth: the limiter that enforces the cap, made from ``max_bytes_per_second`` when not
        given; give several transfers' options the same one (of the same rate) to share one cap
    :param on_progress: told ``(remote path, done, total)`` after every block (a progress bar);
        ``None``: only the log lines
    """

    create_intermediate_dirs: bool = False
    stall_timeout: float = 60.0
    checkpoint_interval: float = 0.5
    progress_interval: float = 30.0
    skip_unchanged: bool = True
    preserve_mtime: bool = True
    block_size: int | None = None
    max_requests: int | None = None
    max_bytes_per_second: int | None = None
    bandwidth: BandwidthLimit | None = field(default=None, repr=False, compare=False)
    on_progress: ProgressCallback | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("stall_timeout", "checkpoint_interval", "progress_interval"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {getattr(self, name)!r}")
        self._check_counts("block_size", "max_requests")
        self._share_bandwidth()

    def _share_bandwidth(self) -> None:
        """Check ``max_bytes_per_second``; keep the limiter given (or copied) for it, or make one."""
        cap, limit = self.max_bytes_per_second, self.bandwidth
        if cap is not None and not is_count(cap):
            raise ValueError(
                f"max_bytes_per_second must be a positive integer (bytes per second, e.g. 2000000 for "
                f"2 MB/s) or None for no cap, got {cap!r}"
            )
        if cap is None:
            object.__setattr__(self, "bandwidth", None)
        elif limit is None or limit.rate != cap:
            # A new cap; also dataclasses.replace() with another cap, which copied the old limiter.
            object.__setattr__(self, "bandwidth", BandwidthLimit(cap))

    def _check_counts(self, *names: str) -> None:
        for name in names:
            value = getattr(self, name)
            if value is not None and not is_count(value):
                raise ValueError(f"{name} must be a positive integer or None (automatic), got {value!r}")


class RequestTimer:
    """
    Await small requests within the stall timeout, and learn the round-trip time from them.

    :param stall_timeout: seconds a request may take before the link counts as dead
    """

    def __init__(self, stall_timeout: float) -> None:
        self.stall_timeout = stall_timeout
        self.rtt = float("inf")  # seconds; the smallest duration of a small request seen so far

    async def bounded(self, awaitable: Awaitable[T], what: str) -> T:
        """Await a request that must answer within ``stall_timeout``; a dead link must not hang the try."""
        async with answer_deadline(self.stall_timeout, what):
            return await awaitable

    async def timed(self, awaitable: Awaitable[T], what: str) -> T:
        """Await a small request, and take its duration as a sample of the round-trip time."""
        sent = time.monotonic()
        result = await self.bounded(awaitable, what)
        self.rtt = min(self.rtt, time.monotonic() - sent)
        return result
