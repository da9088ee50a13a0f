"""The bandwidth cap's token bucket on a fake clock, its place in the options, and a capped pipeline."""

from __future__ import annotations

import asyncio
import copy
import pickle
import random
import time
from dataclasses import replace
from typing import Any

import pytest

from airflow_provider_sftp_resume.core.bandwidth import BURST_SECONDS, MIN_REQUEST, BandwidthLimit
from airflow_provider_sftp_resume.core.io.pipeline import pipelined_read
from airflow_provider_sftp_resume.core.transfers.download_types import DownloadOptions
from airflow_provider_sftp_resume.core.transfers.upload_types import UploadOptions
from tests.core.memory_remote import MemoryFile, MemoryFileSystem


class FakeClock:
    """A clock that moves only when the bucket sleeps: the schedule is exact, and no test waits."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def limit_on(clock: FakeClock, rate: int) -> BandwidthLimit:
    return BandwidthLimit(rate, clock=clock, sleep=clock.sleep)


def test_steady_requests_keep_to_the_rate() -> None:
    clock = FakeClock()
    limit = limit_on(clock, 1_000_000)

    async def send(count: int) -> None:
        for _ in range(count):
            await limit.take(100_000)

    asyncio.run(send(100))  # 10 MB at 1 MB/s
    # The first BURST_SECONDS of the rate go at once, the rest at the rate: 10 s less the burst.
    assert clock.now - 100.0 == pytest.approx(10.0 - 0.1 - BURST_SECONDS, abs=1e-9)


def test_tokens_are_taken_when_reserved_for_the_full_length() -> None:
    clock = FakeClock()
    limit = limit_on(clock, 1000)
    assert limit.reserve(1000) == 0.0  # the first request goes at once...
    assert limit.reserve(1000) == pytest.approx(1.0 - BURST_SECONDS)  # ...the next waits for its turn
    assert limit.reserve(10) == pytest.approx(2.0 - BURST_SECONDS)  # in flight counts, not arrival


def test_concurrent_takers_share_one_rate() -> None:
    limit = BandwidthLimit(1_000_000)  # the real clock: three streams, one cap

    async def stream() -> None:
        for _ in range(10):
            await limit.take(20_000)

    async def main() -> None:
        await asyncio.gather(*(stream() for _ in range(3)))

    started = time.monotonic()
    asyncio.run(main())
    # 600 kB at 1 MB/s, less the burst and one request, is 0.33 s in all; with a cap per stream
    # each 200 kB would fit in its own burst and the whole would take no time.
    assert time.monotonic() - started >= 0.6 - BURST_SECONDS - 0.02 - 0.005


def test_an_idle_spell_earns_at_most_one_burst() -> None:
    clock = FakeClock()
    limit = limit_on(clock, 1000)
    limit.reserve(1000)
    clock.now += 3600  # an hour of silence
    granted_at_once = 0
    while limit.reserve(100) == 0.0:
        granted_at_once += 100
    # a burst of BURST_SECONDS of the rate, plus the request that crossed it
    assert granted_at_once <= 1000 * BURST_SECONDS + 100


def test_requests_shrink_to_a_quarter_second_of_a_small_cap() -> None:
    assert BandwidthLimit(2_000_000).request_size(255 * 1024) == 255 * 1024
    assert BandwidthLimit(100_000).request_size(255 * 1024) == 25_000
    assert BandwidthLimit(10).request_size(255 * 1024) == MIN_REQUEST
    assert BandwidthLimit(2_000_000).requests_in_flight(64, 256 * 1024) == 7  # about 1 s of the rate
    assert BandwidthLimit(1000).requests_in_flight(64, MIN_REQUEST) == 2  # never fewer than 2


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2000000", "2M"])
def test_a_bad_cap_is_refused_with_the_fix(value: Any) -> None:
    with pytest.raises(ValueError, match=r"max_bytes_per_second must be a positive integer .* or None"):
        DownloadOptions(max_bytes_per_second=value)
    with pytest.raises(ValueError, match="max_bytes_per_second"):
        UploadOptions(max_bytes_per_second=value)


def test_copies_of_the_options_share_one_limiter() -> None:
    options = DownloadOptions(max_bytes_per_second=2_000_000)
    assert options.bandwidth is not None
    assert options.bandwidth.rate == 2_000_000
    batch_copy = replace(options, max_connections=1, create_intermediate_dirs=True)  # as a batch does
    assert batch_copy.bandwidth is options.bandwidth
    recapped = replace(options, max_bytes_per_second=1000).bandwidth
    assert recapped is not None
    assert recapped.rate == 1000
    assert replace(options, max_bytes_per_second=None).bandwidth is None
    assert DownloadOptions().bandwidth is None
    shared = BandwidthLimit(5000)
    upload = UploadOptions(max_bytes_per_second=5000, bandwidth=shared)
    assert upload.bandwidth is shared
    assert DownloadOptions(max_bytes_per_second=5000, bandwidth=shared) == DownloadOptions(
        max_bytes_per_second=5000
    )  # the limiter is not part of what the options compare
    assert copy.deepcopy(options).bandwidth is options.bandwidth
    assert pickle.loads(pickle.dumps(options)).bandwidth.rate == 2_000_000


def test_a_capped_pipelined_read_keeps_to_the_cap_and_returns_every_byte() -> None:
    data = random.Random(3).randbytes(600_000)
    fs = MemoryFileSystem({"/f": MemoryFile(data)})
    limit = BandwidthLimit(1_000_000)

    async def read_all() -> bytes:
        reader = await fs.open_reader("/f")
        out = bytearray()
        async for _, block in pipelined_read(
            reader, 0, len(data), block_size=64 * 1024, max_requests=16, stall_timeout=5, limit=limit
        ):
            out += block
        return bytes(out)

    started = time.monotonic()
    assert asyncio.run(read_all()) == data
    # 0.6 MB at 1 MB/s, less the burst and the first request: a slower loop only adds time.
    assert time.monotonic() - started >= 0.6 - BURST_SECONDS - 0.066 - 0.02
