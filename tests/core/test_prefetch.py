"""PrefetchingReader: early answers for exactly the prefetched ranges, nothing else changed."""

from __future__ import annotations

import asyncio

import pytest

from airflow_provider_sftp_resume.core.errors import TransferInterrupted
from airflow_provider_sftp_resume.core.io.pipeline import pipelined_read
from airflow_provider_sftp_resume.core.io.prefetch import PrefetchingReader, first_window
from tests.core.memory_remote import Behaviour, MemoryFile, MemoryFileSystem

DATA = bytes(range(256)) * 4096  # 1 MiB


def _fs(behaviour: Behaviour | None = None) -> MemoryFileSystem:
    return MemoryFileSystem({"/f": MemoryFile(DATA)}, behaviour)


def test_first_window_is_what_the_pipeline_asks_for_first() -> None:
    fs = _fs()

    async def run() -> list[tuple[int, int]]:
        reader = await fs.open_reader("/f")
        blocks = pipelined_read(reader, 1000, len(DATA), block_size=65536, max_requests=5, stall_timeout=5)
        async for _ in blocks:
            break
        await blocks.aclose()
        return fs.behaviour.reads[:5]

    assert asyncio.run(run()) == first_window(1000, len(DATA), 65536, 5)
    assert first_window(0, 10, 4, 8) == [(0, 4), (4, 4), (8, 2)]
    assert first_window(5, 5, 4, 8) == []


def test_prefetched_ranges_are_read_once_and_give_the_same_bytes() -> None:
    fs = _fs()

    async def run() -> bytes:
        early = PrefetchingReader(await fs.open_reader("/f"))
        early.prefetch(first_window(0, len(DATA), 65536, 4))
        assert len(fs.behaviour.reads) == 0  # sent once the loop runs, not before
        await asyncio.sleep(0)
        assert len(fs.behaviour.reads) == 4  # all four on their way before anyone asks
        parts = []
        async for _, data in pipelined_read(
            early, 0, len(DATA), block_size=65536, max_requests=4, stall_timeout=5
        ):
            parts.append(data)
        await early.close()
        return b"".join(parts)

    assert asyncio.run(run()) == DATA
    reads = fs.behaviour.reads
    assert len(reads) == len(set(reads)) == len(DATA) // 65536  # no range asked twice


def test_other_ranges_go_to_the_server_and_unclaimed_errors_are_dropped() -> None:
    fs = _fs(Behaviour(drop_at=512 * 1024))

    async def run() -> bytes:
        early = PrefetchingReader(await fs.open_reader("/f"))
        early.prefetch([(600 * 1024, 1024)])  # fails: nobody asks for it
        data = await early.read(10, 20)  # not prefetched: asked now
        await asyncio.sleep(0.01)
        early.drop()  # the failed early read is retrieved, no "never retrieved" warning
        with pytest.raises(TransferInterrupted):
            await early.read(600 * 1024, 1024)  # after drop: a real read, which fails the same way
        return data

    assert asyncio.run(run()) == DATA[10:30]


def test_a_read_in_another_shape_drops_the_early_reads_at_once() -> None:
    fs = _fs()

    async def run() -> tuple[bytes, PrefetchingReader]:
        early = PrefetchingReader(await fs.open_reader("/f"))
        early.prefetch(first_window(0, len(DATA), 65536, 4))
        tail = await early.read(len(DATA) - 1000, 1000)  # another range (the tail): nothing dropped
        assert (early.claimed, early.unclaimed) == (0, 0)
        parts = [tail]
        async for _, data in pipelined_read(
            early, 0, len(DATA), block_size=32768, max_requests=8, stall_timeout=5
        ):
            if early.unclaimed == 0:
                raise AssertionError("the first read at the window's offset in 32 KiB should drop the window")
            parts.append(data)
        await early.close()
        return b"".join(parts), early

    data, early = asyncio.run(run())
    assert data == DATA[-1000:] + DATA
    assert (early.sent, early.claimed, early.unclaimed) == (4, 0, 4)


def test_the_pipeline_claims_every_prefetched_read() -> None:
    fs = _fs()

    async def run() -> PrefetchingReader:
        early = PrefetchingReader(await fs.open_reader("/f"))
        early.prefetch(first_window(4096, len(DATA), 65536, 6))
        async for _ in pipelined_read(
            early, 4096, len(DATA), block_size=65536, max_requests=6, stall_timeout=5
        ):
            pass
        await early.close()
        return early

    early = asyncio.run(run())
    assert (early.sent, early.claimed, early.unclaimed) == (6, 6, 0)
