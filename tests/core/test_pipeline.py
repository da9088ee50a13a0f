"""Pipelined reads: order, short reads, early EOF, stalls, bounded requests."""

from __future__ import annotations

import asyncio
import random

import pytest

from airflow_provider_sftp_resume.core.errors import RemoteChanged, TransferStalled
from airflow_provider_sftp_resume.core.io.pipeline import pipelined_read
from tests.core.memory_remote import Behaviour, MemoryFile, MemoryFileSystem

DATA = random.Random(1).randbytes(1_000_003)


async def collect(fs: MemoryFileSystem, start: int = 0, end: int = len(DATA), **kwargs: object) -> bytes:
    reader = await fs.open_reader("/f")
    out = bytearray()
    position = start
    async for offset, data in pipelined_read(
        reader, start, end, **{"block_size": 32768, "max_requests": 8, "stall_timeout": 5, **kwargs}
    ):  # type: ignore[arg-type]
        assert offset == position, "blocks must come in file order"
        out += data
        position += len(data)
    return bytes(out)


def test_reordered_completions_are_yielded_in_order() -> None:
    fs = MemoryFileSystem({"/f": MemoryFile(DATA)}, Behaviour(jitter=0.002))
    assert asyncio.run(collect(fs)) == DATA


def test_short_reads_are_completed() -> None:
    fs = MemoryFileSystem({"/f": MemoryFile(DATA)}, Behaviour(max_read=1000, jitter=0.001))
    assert asyncio.run(collect(fs)) == DATA


def test_range_in_the_middle() -> None:
    fs = MemoryFileSystem({"/f": MemoryFile(DATA)})
    assert asyncio.run(collect(fs, 12345, 543210)) == DATA[12345:543210]


def test_file_shorter_than_expected_is_a_remote_change() -> None:
    fs = MemoryFileSystem({"/f": MemoryFile(DATA[:500_000])})
    with pytest.raises(RemoteChanged, match="ended at byte 500000"):
        asyncio.run(collect(fs))


def test_no_answer_is_a_stall() -> None:
    fs = MemoryFileSystem({"/f": MemoryFile(DATA)}, Behaviour(hang_at=300_000))
    with pytest.raises(TransferStalled) as caught:
        asyncio.run(collect(fs, stall_timeout=0.3))
    assert caught.value.offset >= 294_912


def test_requests_in_flight_are_bounded() -> None:
    in_flight = 0
    peak = 0

    class Counting(MemoryFileSystem):
        pass

    fs = Counting({"/f": MemoryFile(DATA)})
    original = fs.open_reader

    async def open_reader(path: str):  # type: ignore[no-untyped-def]
        reader = await original(path)
        read = reader.read

        async def counted(offset: int, length: int) -> bytes:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                await asyncio.sleep(0.001)
                return await read(offset, length)
            finally:
                in_flight -= 1

        reader.read = counted  # type: ignore[method-assign]
        return reader

    fs.open_reader = open_reader  # type: ignore[method-assign]
    assert asyncio.run(collect(fs, max_requests=5)) == DATA
    assert peak == 5
