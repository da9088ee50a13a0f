"""
The bytes of the part being filled, kept as the chunks they arrived in: one copy per part, not three.

Growing a ``bytearray`` copies every byte once on the way in, slicing a part off copies it twice more
(slice, then ``bytes``), and deleting the slice moves the rest. Keeping the chunks the SFTP reader
handed over (immutable ``bytes``) and joining them once, off the event loop, when the part goes up,
copies each byte once.
"""

from __future__ import annotations

from collections import deque


class ChunkBuffer:
    """Bytes in file order, as a list of chunks; ``bytes(buffer)`` joins them, ``len`` counts them."""

    def __init__(self) -> None:
        self._chunks: deque[bytes | memoryview] = deque()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def __bytes__(self) -> bytes:
        return b"".join(self._chunks)

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes at the end (``bytes`` are kept as they are; anything mutable is copied first)."""
        if data:
            self._chunks.append(data if isinstance(data, bytes) else bytes(data))
            self._size += len(data)

    def take(self, length: int) -> list[bytes | memoryview]:
        """
        Remove the first ``length`` bytes and return them as chunks (a chunk across the cut is split
        without copying: both halves are views of it).

        :param length: at most ``len(self)``
        """
        if not 0 <= length <= self._size:
            raise ValueError(f"cannot take {length} of {self._size} buffered bytes")
        taken: list[bytes | memoryview] = []
        left = length
        while left:
            chunk = self._chunks.popleft()
            if len(chunk) > left:
                view = memoryview(chunk)
                taken.append(view[:left])
                self._chunks.appendleft(view[left:])
                left = 0
            else:
                taken.append(chunk)
                left -= len(chunk)
        self._size -= length
        return taken

    def clear(self) -> None:
        """Drop every byte."""
        self._chunks.clear()
        self._size = 0
