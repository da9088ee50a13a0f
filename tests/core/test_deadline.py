"""Small requests bounded by the stall timeout (``asyncio.timeout`` underneath)."""

from __future__ import annotations

import asyncio

import pytest

from airflow_provider_sftp_resume.core.errors import TransferStalled
from airflow_provider_sftp_resume.core.options import RequestTimer, answer_deadline, answer_within


async def _hang() -> None:
    await asyncio.Event().wait()


def test_a_request_that_never_answers_is_a_stall_naming_the_request_and_the_time() -> None:
    async def main() -> None:
        async with answer_deadline(0.05, "opening /data/big.bin"):
            await _hang()

    with pytest.raises(TransferStalled) as caught:
        asyncio.run(main())
    assert str(caught.value) == "No answer for 0.05 s while opening /data/big.bin; treating the link as dead."
    assert caught.value.retriable


def test_a_hung_awaitable_is_cancelled_when_the_deadline_passes() -> None:
    async def main() -> asyncio.Task[None]:
        hung = asyncio.ensure_future(_hang())
        with pytest.raises(TransferStalled, match="while stat-ing"):
            await answer_within(hung, 0.05, "stat-ing")
        return hung

    assert asyncio.run(main()).cancelled()


def test_an_answer_in_time_is_returned_and_timed() -> None:
    async def main() -> tuple[str, float]:
        timer = RequestTimer(stall_timeout=5.0)
        answer = await timer.timed(asyncio.sleep(0.01, result="ok"), "stat")
        return answer, timer.rtt

    answer, rtt = asyncio.run(main())
    assert answer == "ok"
    assert 0.005 < rtt < 5.0


def test_bounded_raises_the_stall_after_the_stall_timeout() -> None:
    async def main() -> None:
        await RequestTimer(stall_timeout=0.05).bounded(_hang(), "flushing the remote file")

    with pytest.raises(TransferStalled, match=r"No answer for 0\.05 s while flushing the remote file"):
        asyncio.run(main())


def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    async def main() -> None:
        async def bounded() -> None:
            async with answer_deadline(10.0, "listing"):
                await _hang()

        task = asyncio.ensure_future(bounded())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
