"""
The child side of a segment worker (:mod:`.worker` describes the protocol and the safety rules).

A child reads the segments its parent hands out over its own connection and writes them straight
into the shared ``.part``; it never outlives its parent, and never writes once the parent is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_sftp_resume.core import errors
from airflow_provider_sftp_resume.core.io.pipeline import pipelined_read
from airflow_provider_sftp_resume.core.remote.sftp import SFTPSessionFactory
from airflow_provider_sftp_resume.core.resume.localfiles import os_error_to_local, pwrite_all

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

#: How often a child reports progress (the parent checkpoints what is reported).
REPORT_EVERY = 0.1  # seconds
#: ``prctl`` option: the signal the kernel sends a process when its parent dies (Linux).
PR_SET_PDEATHSIG = 1


class ParentGone(Exception):
    """The parent that started this child has died or closed the pipe: stop, and write nothing more."""


def die_with_parent(parent: int) -> None:
    """
    Have the kernel kill this process when ``parent`` dies (Linux); exit now if it already has.

    :param parent: the PID of the process that started this one
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # failure: the checks below remain
    if os.getppid() != parent:  # it died before the request above took effect
        os._exit(0)


class ParentLink:
    """
    The child's side of the pipes: commands in, and whether the parent is still there.

    :param reader: the child's stdin
    :param parent: the PID of the parent
    """

    def __init__(self, reader: asyncio.StreamReader, parent: int) -> None:
        self._parent = parent
        self._commands: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._gone = asyncio.Event()
        self._listener = asyncio.ensure_future(self._listen(reader))

    async def _listen(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                self._commands.put_nowait(json.loads(line))
        finally:
            self._gone.set()  # end of file (or a broken pipe): the parent is gone
            self._commands.put_nowait(None)

    async def command(self) -> dict[str, Any]:
        """The next command; ``{"stop": true}`` once the parent is gone."""
        return await self._commands.get() or {"stop": True}

    def check(self) -> None:
        """
        Make sure the parent still owns the transfer: call before every write.

        :raises ParentGone: the pipe is closed, or this process was re-parented
        """
        if self._gone.is_set() or os.getppid() != self._parent:
            raise ParentGone

    async def while_present(self, work: Awaitable[None]) -> None:
        """
        Run ``work``, cancelling it as soon as the parent is gone (also while it waits on a stalled link).

        :raises ParentGone: the parent went away first
        """
        task = asyncio.ensure_future(work)
        gone = asyncio.ensure_future(self._gone.wait())
        try:
            await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if task.cancelled():
            raise ParentGone
        task.result()

    async def close(self) -> None:
        """Stop listening."""
        self._listener.cancel()
        await asyncio.gather(self._listener, return_exceptions=True)


async def _child(parent: ParentLink, write: Callable[[dict[str, Any]], None]) -> None:
    job = await parent.command()
    if "session" not in job:
        return
    session = SFTPSessionFactory.from_dict(job["session"])
    part = Path(job["part_path"])
    try:
        fd = os.open(part, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise os_error_to_local(exc, part, "opening") from None

    async def fill(reader: Any, index: int, start: int, end: int) -> None:
        last_report = time.monotonic()
        blocks = pipelined_read(
            reader,
            start,
            end,
            block_size=job["block_size"],
            max_requests=job["max_requests"],
            stall_timeout=job["stall_timeout"],
        )
        async with contextlib.aclosing(blocks):
            async for offset, data in blocks:
                parent.check()  # never write into a .part whose try has ended
                pwrite_all(fd, data, offset, part)
                position = offset + len(data)
                if time.monotonic() - last_report >= REPORT_EVERY or position >= end:
                    write({"progress": [index, position]})
                    last_report = time.monotonic()

    try:
        async with session() as fs:
            reader = await fs.open_reader(job["remote_path"])
            write({"ready": True})
            while True:
                command = await parent.command()
                if "segment" not in command:
                    return
                index, start, end = command["segment"]
                await parent.while_present(fill(reader, index, start, end))
                write({"finished": index})
    finally:
        os.close(fd)


def main() -> None:
    """Entry point of a child process (``sys.argv[1]``: the parent's PID)."""
    parent_pid = int(sys.argv[1])
    die_with_parent(parent_pid)
    loop = asyncio.new_event_loop()
    out = sys.stdout.buffer

    def write(message: dict[str, Any]) -> None:
        out.write(json.dumps(message).encode() + b"\n")
        out.flush()

    async def run() -> None:
        reader = asyncio.StreamReader(limit=1024 * 1024)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        parent = ParentLink(reader, parent_pid)
        try:
            await _child(parent, write)
        except ParentGone:
            return  # nobody to tell
        except errors.TransferError as exc:
            write({"error": [type(exc).__name__, str(exc)]})
        except OSError as exc:  # local write errors are mapped above; anything else is the link
            write({"error": ["TransferInterrupted", str(exc)]})
        finally:
            await parent.close()

    try:
        loop.run_until_complete(run())
    except (ParentGone, BrokenPipeError):
        pass  # the parent is gone: exit quietly
    finally:
        loop.close()
