"""Run one coroutine to completion on a private event loop, abortable from another thread or a signal."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import threading
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Iterator
    from types import FrameType

T = TypeVar("T")
#: Signals whose Python handlers raise to stop a task: Airflow's SIGTERM handler (2.x: ``on_kill``,
#: then ``AirflowTaskTerminated``) and its ``execution_timeout`` (SIGALRM: ``AirflowTaskTimeout``).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGALRM)


class AbortableRun(Generic[T]):
    """
    Run a coroutine synchronously; :meth:`abort` cancels it from any thread or a signal handler.

    Airflow calls ``on_kill`` from outside the running ``execute``; cancelling the task unwinds the
    transfer through its normal error path, which writes a last checkpoint and closes the
    connection and the segment workers.

    A signal handler that *raises* (Airflow's SIGTERM handler on 2.x, ``execution_timeout``) would
    raise wherever the main thread happens to be: mostly inside the event loop's own code, which
    leaves the transfer's task pending, or inside a protocol callback, which swallows the
    exception. While the coroutine runs in the main thread, those handlers are therefore wrapped:
    the handler still runs at once, but its exception cancels the transfer, which unwinds, and is
    then raised by :meth:`run` (a second one is raised at once). :class:`asyncio.Runner` does the
    same for Ctrl-C, and on close cancels and awaits whatever is still pending.

    :param make_coroutine: builds the coroutine to run (called once, inside :meth:`run`)
    """

    def __init__(self, make_coroutine: Callable[[], Coroutine[Any, Any, T]]) -> None:
        self._make_coroutine = make_coroutine
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[T] | None = None
        # Reentrant: abort() and the signal wrapper may run in a signal handler on the very thread
        # that holds the lock.
        self._lock = threading.RLock()
        self._aborted = False
        self._stopped_by: BaseException | None = None

    def run(self) -> T:
        """Run the coroutine and return its result (or raise its error, or the stopping signal's)."""
        with asyncio.Runner() as runner, self._signals_cancel():
            try:
                result = runner.run(self._main())
            except BaseException as exc:
                stopped_by = self._stopped_by
                if stopped_by is None or stopped_by is exc:
                    raise
                raise stopped_by from (None if isinstance(exc, asyncio.CancelledError) else exc)
            if self._stopped_by is not None:  # the coroutine finished just as the signal came
                raise self._stopped_by
            return result

    def abort(self) -> None:
        """Cancel the running coroutine (safe to call at any time, from any thread)."""
        with self._lock:
            self._aborted = True
            if self._loop is not None and self._task is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._task.cancel)

    async def _main(self) -> T:
        with self._lock:
            if self._aborted:
                raise asyncio.CancelledError("aborted before start")
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.current_task()
        try:
            return await self._make_coroutine()
        finally:
            with self._lock:
                self._loop = None

    @contextlib.contextmanager
    def _signals_cancel(self) -> Iterator[None]:
        """Wrap the raising handlers of :data:`STOP_SIGNALS` while the coroutine runs (main thread only)."""
        wrapped: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                handler = signal.getsignal(signum)
                if callable(handler):
                    wrapper = functools.partial(self._on_signal, handler)
                    signal.signal(signum, wrapper)
                    wrapped[signum] = (handler, wrapper)
        try:
            yield
        finally:
            for wrapped_signum, (handler, wrapper) in wrapped.items():
                if signal.getsignal(wrapped_signum) is wrapper:  # leave a handler set meanwhile alone
                    signal.signal(wrapped_signum, handler)

    def _on_signal(
        self, handler: Callable[[int, FrameType | None], Any], signum: int, frame: FrameType | None
    ) -> None:
        try:
            handler(signum, frame)
        except BaseException as exc:
            with self._lock:
                loop, task = self._loop, self._task
                if self._stopped_by is not None or loop is None or task is None or task.done():
                    raise  # a second signal, or nothing left to unwind: raise it where we are
                self._stopped_by = exc
                loop.call_soon_threadsafe(task.cancel)  # wakes the loop; the try unwinds, then run() raises
