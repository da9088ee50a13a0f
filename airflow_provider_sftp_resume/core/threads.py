"""Blocking file work (hashing, fsync, sidecar writes) run in a thread, off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")


async def in_thread(func: Callable[..., T], *args: Any) -> T:
    """
    Run ``func(*args)`` in a thread, off the event loop.

    A cancelled caller still waits for the thread to finish before the cancellation goes on: the
    work may use a descriptor that the caller closes next (``asyncio.to_thread`` alone would let the
    caller go on while the thread still runs).
    """
    work = asyncio.ensure_future(asyncio.to_thread(func, *args))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        while not work.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({work})
        if not work.cancelled():
            work.exception()  # retrieved: the cancellation is what the caller sees
        raise
