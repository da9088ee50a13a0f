"""Run one coroutine to completion on a private event loop, abortable from another thread."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

T = TypeVar("T")


class AbortableRun(Generic[T]):
    """
    Run a coroutine synchronously; :meth:`abort` cancels it from any thread or a signal handler.

    Airflow calls ``on_kill`` from outside the running ``execute``; cancelling the task unwinds the
    transfer through its normal error path, which writes a last checkpoint and closes the
    connection.

    :param make_coroutine: builds the coroutine to run (called once, inside :meth:`run`)
    """

    def __init__(self, make_coroutine: Callable[[], Coroutine[Any, Any, T]]) -> None:
        self._make_coroutine = make_coroutine
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[T] | None = None
        self._lock = threading.Lock()
        self._aborted = False

    def run(self) -> T:
        """Run the coroutine and return its result (or raise its error)."""
        loop = asyncio.new_event_loop()
        try:
            with self._lock:
                if self._aborted:
                    raise asyncio.CancelledError("aborted before start")
                self._loop = loop
                self._task = loop.create_task(self._make_coroutine())
            return loop.run_until_complete(self._task)
        finally:
            with self._lock:
                self._loop = None
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()

    def abort(self) -> None:
        """Cancel the running coroutine (safe to call at any time, from any thread)."""
        with self._lock:
            self._aborted = True
            if self._loop is not None and self._task is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._task.cancel)
