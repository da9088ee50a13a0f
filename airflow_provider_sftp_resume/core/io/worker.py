"""
Segment workers in their own processes: a second CPU for a CPU-bound Python SSH client.

One asyncssh connection keeps one core busy at a few hundred MB/s (decoding SSH packets in Python);
on a fast path that core, not the network, is the limit. Extra segments of a large file are
therefore read by child processes (running :func:`.worker_child.main`), each
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
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from airflow_provider_sftp_resume.core import errors

if TYPE_CHECKING:
    from collections.abc import Callable


#: Seconds a child may take to start and connect before it counts as refused.
START_TIMEOUT = 60.0
#: The module a child process runs (its ``main``).
CHILD_MODULE = "airflow_provider_sftp_resume.core.io.worker_child"


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
            f"from {CHILD_MODULE} import main; main()",
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
