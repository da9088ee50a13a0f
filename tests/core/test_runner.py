"""AbortableRun: signals that raise, abort from a signal handler, and pending tasks at the end."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_sftp_resume.core.runner import AbortableRun

if TYPE_CHECKING:
    from collections.abc import Iterator


class Stopped(Exception):
    """What Airflow's handlers raise (AirflowTaskTimeout, AirflowTaskTerminated)."""


@pytest.fixture
def alarm_handler() -> Iterator[list[Any]]:
    """Install a SIGALRM handler as Airflow's execution_timeout does; restore the old one after."""
    calls: list[Any] = []
    previous = signal.getsignal(signal.SIGALRM)

    def handler(signum: int, frame: Any) -> None:
        calls.append(signum)
        raise Stopped("Timeout")

    signal.signal(signal.SIGALRM, handler)
    try:
        yield calls
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_exception_raised_by_a_signal_handler_unwinds_the_coroutine_first(alarm_handler: list[Any]) -> None:
    events: list[str] = []

    async def transfer() -> None:
        try:
            await asyncio.sleep(30)  # the loop sits in select(): where a signal usually lands
        except asyncio.CancelledError:
            events.append("cancelled")
            raise
        finally:
            await asyncio.sleep(0.05)  # the last checkpoint: needs the loop
            events.append("checkpoint written")

    installed = signal.getsignal(signal.SIGALRM)
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    started = time.monotonic()
    with pytest.raises(Stopped, match="Timeout"):
        AbortableRun(transfer).run()
    assert time.monotonic() - started < 5
    assert alarm_handler == [signal.SIGALRM], "Airflow's handler itself must still run"
    assert events == ["cancelled", "checkpoint written"]
    assert signal.getsignal(signal.SIGALRM) is installed, "the handler must be restored"


def test_signal_after_the_coroutine_finished_is_not_lost(alarm_handler: list[Any]) -> None:
    async def quick() -> int:
        return 7

    assert AbortableRun(quick).run() == 7
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    with pytest.raises(Stopped):  # raised where the main thread is, as without the wrapper
        time.sleep(2)


def test_abort_from_a_signal_handler_on_the_running_thread(alarm_handler: list[Any]) -> None:
    """Airflow 3's SIGTERM handler calls on_kill (abort) in the main thread, between bytecodes."""
    cleaned: list[bool] = []

    async def transfer() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            await asyncio.sleep(0)
            cleaned.append(True)

    run = AbortableRun(transfer)
    signal.signal(signal.SIGALRM, lambda *_: run.abort())
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    with pytest.raises(asyncio.CancelledError):
        run.run()
    assert cleaned == [True]


def test_tasks_left_pending_are_cancelled_and_awaited() -> None:
    background_done: list[str] = []
    left_behind: list[asyncio.Future[None]] = []

    async def straggler() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            await asyncio.sleep(0.01)  # a worker being reaped
            background_done.append("closed")

    async def transfer() -> str:
        left_behind.append(asyncio.ensure_future(straggler()))  # never awaited by the coroutine
        await asyncio.sleep(0.01)
        return "done"

    assert AbortableRun(transfer).run() == "done"
    assert background_done == ["closed"]
