"""
A bandwidth cap: one token bucket (bytes per second) shared by every stream of one task.

Every pipelined read or write (:mod:`.io.pipeline`) takes tokens for a request's full length when
the request is *issued*, not when its answer arrives, so the requests kept in flight cannot carry
more than the cap. One :class:`BandwidthLimit` is shared by all connections, segments and files of
one task: it travels in the transfer options (:class:`~.options.TransferOptions`), and a batch
copies the options, limit included, for each of its files.

The bucket is the "virtual scheduling" form of a token bucket (GCRA): one timestamp, ``due``, when
every byte granted so far has had its time at the rate. A request is granted once it is at most
``burst_seconds`` ahead of the clock, so after an idle spell at most ``burst_seconds`` of the rate
plus one request goes out at once, and over any longer window the average stays at the cap.

Written here rather than taken from a library: ``aiolimiter`` (the asyncio leaky bucket, checked)
meters acquisitions per period with a burst of one whole period, refuses an amount larger than its
capacity, and parks waiters on futures of the event loop it first ran on, while one task may run
its tries on several event loops (:mod:`.runner` makes one per try). This one keeps no futures and
no loop: the reservation is a few arithmetic operations under a thread lock, then a plain sleep.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

#: The most a capped transfer may run ahead of its rate after a pause (besides one request).
BURST_SECONDS = 0.25  # seconds of the rate
#: A capped request is never larger than this much of the rate, so one request is a small burst.
REQUEST_SECONDS = 0.25  # seconds of the rate
#: ...and never smaller than this: below it, the SFTP header would cost more than the data.
MIN_REQUEST = 1024  # 1 KiB
#: A capped stream keeps at most this much of the rate in flight: data is handed on (written,
#: checkpointed) within about this long of being asked for, however deep the pipeline could be.
IN_FLIGHT_SECONDS = 1.0  # seconds of the rate


class BandwidthLimit:
    """
    At most ``bytes_per_second`` over all requests that take from it, with small bursts.

    :param bytes_per_second: the cap
    :param burst_seconds: how far ahead of the rate a request may be granted
    :param clock: monotonic seconds (injected by tests)
    :param sleep: awaits a number of seconds (injected by tests)
    """

    def __init__(
        self,
        bytes_per_second: int,
        *,
        burst_seconds: float = BURST_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if bytes_per_second <= 0:
            raise ValueError(f"bytes_per_second must be positive, got {bytes_per_second!r}")
        self.rate = bytes_per_second
        self._burst = burst_seconds
        self._clock = clock
        self._sleep = sleep
        self._due = float("-inf")  # when every byte granted so far has had its time at the rate
        self._lock = threading.Lock()  # options, and so the limit, may be shared across threads

    def __repr__(self) -> str:
        return f"BandwidthLimit({self.rate} bytes/s)"

    def __deepcopy__(self, memo: dict[int, object]) -> BandwidthLimit:
        return self  # a copy of the options must still share the one cap

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()  # pickled into another process: a bucket of its own there
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def reserve(self, nbytes: int) -> float:
        """
        Take ``nbytes`` tokens now (they are spent even if the caller never sends); return the wait.

        :param nbytes: the full length of the request about to be issued
        :returns: seconds to wait before issuing it
        """
        with self._lock:
            now = self._clock()
            start = max(self._due, now)
            self._due = start + nbytes / self.rate
            return max(0.0, start - self._burst - now)

    async def take(self, nbytes: int) -> None:
        """Wait until a request of ``nbytes`` may be issued (tokens are taken before waiting)."""
        wait = self.reserve(nbytes)
        if wait > 0:
            await self._sleep(wait)

    def request_size(self, block_size: int) -> int:
        """The block size to use under this cap: at most :data:`REQUEST_SECONDS` of the rate."""
        return max(1, min(block_size, max(MIN_REQUEST, int(self.rate * REQUEST_SECONDS))))

    def requests_in_flight(self, max_requests: int, block_size: int) -> int:
        """Requests to keep in flight under this cap: about :data:`IN_FLIGHT_SECONDS` of the rate."""
        return max(1, min(max_requests, max(2, int(self.rate * IN_FLIGHT_SECONDS) // max(1, block_size))))
