"""An in-memory remote file system for edge cases a real server will not produce on demand."""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_sftp_resume.core.errors import RemoteFileNotFound, TransferInterrupted
from airflow_provider_sftp_resume.core.remote.protocol import RemoteStat

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable


@dataclass
class MemoryFile:
    data: bytes
    mtime: int = 1_700_000_000


@dataclass
class Behaviour:
    """How the fake server misbehaves."""

    max_read: int | None = None  # short reads: never return more than this
    jitter: float = 0.0  # random delay per read, reorders completions
    hang_at: int | None = None  # reads at or past this offset never answer
    drop_at: int | None = None  # reads at or past this offset raise TransferInterrupted
    on_read: Callable[[int, int], None] | None = None  # called before each read
    reads: list[tuple[int, int]] = field(default_factory=list)


class MemoryReader:
    def __init__(self, fs: MemoryFileSystem, path: str) -> None:
        self.fs = fs
        self.path = path

    async def read(self, offset: int, length: int) -> bytes:
        behaviour = self.fs.behaviour
        behaviour.reads.append((offset, length))
        if behaviour.on_read:
            behaviour.on_read(offset, length)
        if behaviour.jitter:
            await asyncio.sleep(random.random() * behaviour.jitter)
        if behaviour.hang_at is not None and offset >= behaviour.hang_at:
            await asyncio.Event().wait()
        if behaviour.drop_at is not None and offset >= behaviour.drop_at:
            raise TransferInterrupted("fake link dropped", offset=offset)
        if behaviour.max_read:
            length = min(length, behaviour.max_read)
        return self.fs.files[self.path].data[offset : offset + length]

    async def close(self) -> None:
        return None


class MemoryFileSystem:
    def __init__(
        self, files: dict[str, MemoryFile] | None = None, behaviour: Behaviour | None = None
    ) -> None:
        self.files = files or {}
        self.behaviour = behaviour or Behaviour()
        self.dirs: set[str] = {"/"}

    @property
    def max_read_len(self) -> int:
        return 32 * 1024

    async def stat(self, path: str) -> RemoteStat:
        if path in self.dirs:
            return RemoteStat(size=4096, mtime=0, is_dir=True, is_regular=False)
        if path not in self.files:
            raise RemoteFileNotFound(f"no such file: {path}")
        item = self.files[path]
        return RemoteStat(size=len(item.data), mtime=item.mtime)

    async def open_reader(self, path: str) -> MemoryReader:
        await self.stat(path)
        return MemoryReader(self, path)

    def opener(self) -> MemorySessions:
        return MemorySessions(self)


class MemorySessions:
    """Sessions with one in-memory file system: no identity to speak of, no worker processes."""

    identity = "memory"

    def __init__(self, fs: MemoryFileSystem) -> None:
        self.fs = fs

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[MemoryFileSystem]:
        yield self.fs

    def process_spec(self) -> dict[str, Any] | None:
        return None
