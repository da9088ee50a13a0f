"""
The SFTP sessions of a batch: a pool of exclusive sessions for large files, one shared for small ones.

A large file's try holds a session of its own (:class:`SessionPool`); small files are a couple of
requests each, so any number of them share one session (:class:`SharedSession`): SFTP multiplexes
requests on one channel, and on a small machine every extra session is an sshd process and a
cipher stream competing for the same cores.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from airflow_provider_sftp_resume.core.remote.protocol import close_quietly

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow_provider_sftp_resume.core.remote.protocol import (
        RemoteFileSystem,
        RemoteReader,
        SessionFactory,
    )


class SessionPool:
    """
    Reuse SFTP sessions across the files of a batch (a new SSH handshake per small file is slow).

    A session is returned to the pool after a file that succeeded; after an error it is closed, since
    the link may be broken. The pool is a session factory itself, with the identity of the one it
    wraps.

    :param open_session: opens a new session
    """

    def __init__(self, open_session: SessionFactory) -> None:
        self._open = open_session
        self._idle: list[tuple[contextlib.AsyncExitStack, RemoteFileSystem]] = []

    @property
    def identity(self) -> str:
        return self._open.identity

    def process_spec(self) -> dict[str, Any] | None:
        return self._open.process_spec()

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[RemoteFileSystem]:
        if self._idle:
            stack, fs = self._idle.pop()
        else:
            async with contextlib.AsyncExitStack() as opening:
                fs = await opening.enter_async_context(self._open())
                stack = opening.pop_all()
        healthy = False
        try:
            yield fs
            healthy = True
        finally:
            if healthy:
                self._idle.append((stack, fs))
            else:
                with contextlib.suppress(Exception):
                    await stack.aclose()

    async def close(self) -> None:
        """Close every idle session."""
        while self._idle:
            stack, _ = self._idle.pop()
            with contextlib.suppress(Exception):
                await stack.aclose()


class SharedSession:
    """
    One session that many files use at once (their requests interleave on it), reopened when broken.

    :param open_session: opens the session (and a new one after :meth:`broken`)
    """

    def __init__(self, open_session: SessionFactory) -> None:
        self._open = open_session
        self._current: tuple[contextlib.AsyncExitStack, RemoteFileSystem] | None = None
        self._opening = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()

    async def get(self) -> RemoteFileSystem:
        """The shared session, opened on first use (concurrent callers wait for the same opening)."""
        async with self._opening:
            if self._current is None:
                async with contextlib.AsyncExitStack() as opening:
                    fs = await opening.enter_async_context(self._open())
                    self._current = (opening.pop_all(), fs)
            return self._current[1]

    async def broken(self, fs: RemoteFileSystem) -> None:
        """``fs`` failed as a link: close it, so the next :meth:`get` opens a new session."""
        if self._current is not None and self._current[1] is fs:
            stack, _ = self._current
            self._current = None
            with contextlib.suppress(Exception):
                await stack.aclose()

    def close_later(self, reader: RemoteReader) -> None:
        """
        Close a remote file without waiting for the answer: its round trip overlaps the next file's.

        :meth:`close` waits for every close still pending.
        """
        task = asyncio.get_running_loop().create_task(close_quietly(reader))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Wait for pending closes of remote files, then close the session."""
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        if self._current is not None:
            stack, _ = self._current
            self._current = None
            with contextlib.suppress(Exception):
                await stack.aclose()
