"""
Segment workers in their own processes: a second CPU for a CPU-bound Python SSH client.

One asyncssh connection keeps one core busy at a few hundred MB/s (decoding SSH packets in Python);
on a fast path that core, not the network, is the limit. Extra segments of a large file are
therefore read by child processes (running :func:`main` of this module), each
with its own connection, writing straight into the shared ``.part`` at the segment's offsets. The
parent stays in charge: it hands out segments, records the progress the children report, and
checkpoints (its fsync covers the children's writes: they share the file).

The protocol is JSON lines. Parent to child on stdin: first the session (connection settings,
secrets included: a pipe is never visible in ``ps``, unlike arguments or the environment) and the
job, then ``{"segment": [index, start, end]}`` or ``{"stop": true}``. Child to parent on stdout:
``{"progress": [index, offset]}`` (bytes ``[start, offset)`` are written), ``{"finished": index}``,
``{"error": [type, message]}``.

The standard library's ``multiprocessing`` would re-import the parent's ``__main__`` (Airflow's task
runner) in the child; a plain subprocess with an explicit module avoids that.

A child never outlives its parent, and never writes into a ``.part`` its parent no longer owns. A
parent killed with ``kill -9`` while a child waits on a stalled link must not leave a child that
wakes up later and writes bytes of an old version into the file the next try is filling (or has
published). Hence:

- the child inherits the parent's transfer lock (its descriptor): the next try cannot take the lock,
  and so cannot touch the ``.part``, while any child of the old try is alive;
- on Linux the kernel kills the child when its parent dies (``PR_SET_PDEATHSIG``);
- the child watches its stdin: end-of-file means the parent is gone, and stops it at once, also in
  the middle of a stalled read;
- before every write the child checks that the parent that started it is still its parent.
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
#: Seconds a child may take to start and connect before it counts as refused.
START_TIMEOUT = 60.0
#: ``prctl`` option: the signal the kernel sends a process when its parent dies (Linux).
PR_SET_PDEATHSIG = 1


def error_from_report(kind: str, message: str) -> errors.TransferError:
    """Rebuild an engine error reported by a child (unknown kinds become retriable interruptions)."""
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, errors.TransferError):
        return cls(message)  # every engine error takes its message as the only positional argument
    return errors.TransferInterrupted(f"segment worker failed: {kind}: {message}")


class SegmentWorker:
    """
    The parent's handle on one child process.

    :param session: how the child connects (a session factory's ``process_spec()``, sent down its stdin)
    :param remote_path: the remote file
    :param part_path: the ``.part`` file, which must exist
    :param block_size: bytes per read request
    :param max_requests: requests in flight
    :param stall_timeout: seconds without data before the child gives up
    :param lock_fd: the descriptor holding the transfer lock; the child inherits it, so the lock is
        held for as long as any child lives (``None``: no lock to share)
    """

    def __init__(
        self,
        session: dict[str, Any],
        remote_path: str,
        part_path: str,
        *,
        block_size: int,
        max_requests: int,
        stall_timeout: float,
        lock_fd: int | None = None,
    ) -> None:
        self._job = {
            "session": session,
            "remote_path": remote_path,
            "part_path": part_path,
            "block_size": block_size,
            "max_requests": max_requests,
            "stall_timeout": stall_timeout,
        }
        self._lock_fd = lock_fd
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start the child and wait until it is connected."""
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            f"from {__name__} import main; main()",
            str(os.getpid()),  # the parent it must die with (not a secret: visible in ps anyway)
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            pass_fds=() if self._lock_fd is None else (self._lock_fd,),
        )
        await self._send(self._job)
        message = await asyncio.wait_for(self._receive(), START_TIMEOUT)
        if "ready" not in message:
            raise self._error(message)

    async def fill(self, index: int, start: int, end: int, on_progress: Callable[[int, int], None]) -> None:
        """Have the child read ``[start, end)`` of segment ``index``; report progress as it comes."""
        await self._send({"segment": [index, start, end]})
        while True:
            message = await self._receive()
            if "progress" in message:
                on_progress(*message["progress"])
            elif message.get("finished") == index:
                return
            else:
                raise self._error(message)

    async def stop(self) -> None:
        """Ask the child to leave; kill it if it does not."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(OSError, ConnectionError):
            await self._send({"stop": True})
        try:
            await asyncio.wait_for(process.wait(), 2)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def close(self) -> None:
        """Kill the child if it still runs, and reap it (also when the try is being cancelled)."""
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            process.kill()
        if process.stdin is not None:
            process.stdin.close()
        await asyncio.shield(process.wait())

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._process is not None
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(message).encode() + b"\n")
        await self._process.stdin.drain()

    async def _receive(self) -> dict[str, Any]:
        assert self._process is not None
        assert self._process.stdout is not None
        line = await self._process.stdout.readline()
        if not line:
            await self._process.wait()
            return {"error": ["TransferInterrupted", f"segment worker exited ({self._process.returncode})"]}
        message: dict[str, Any] = json.loads(line)
        return message

    @staticmethod
    def _error(message: dict[str, Any]) -> errors.TransferError:
        kind, text = message.get("error", ["TransferInterrupted", f"unexpected message {message!r}"])
        return error_from_report(str(kind), str(text))


# -- the child ----------------------------------------------------------------------------------------


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
