"""The chunk buffer of the S3 writer: bytes in order, parts cut without copying until joined."""

from __future__ import annotations

import os

import pytest

from airflow_provider_sftp_resume.core.destinations.s3.chunks import ChunkBuffer


def test_parts_cut_across_chunk_edges_keep_every_byte_in_order() -> None:
    data = os.urandom(10_000)
    buffer = ChunkBuffer()
    for start in range(0, len(data), 777):
        buffer.append(data[start : start + 777])
    assert len(buffer) == len(data)
    first = buffer.take(4096)
    second = buffer.take(4096)
    assert b"".join(first) == data[:4096]
    assert b"".join(second) == data[4096:8192]
    assert any(isinstance(chunk, memoryview) for chunk in first)  # split, not copied
    assert len(buffer) == len(data) - 8192
    assert bytes(buffer) == data[8192:]
    buffer.clear()
    assert not buffer
    assert bytes(buffer) == b""


def test_mutable_input_is_copied_and_empty_input_ignored() -> None:
    buffer = ChunkBuffer()
    source = bytearray(b"abc")
    buffer.append(source)
    buffer.append(b"")
    source[0] = ord("X")  # the caller reuses its buffer: what was written must not change
    assert bytes(buffer) == b"abc"
    assert buffer.take(3) == [b"abc"]


def test_taking_more_than_is_buffered_names_both_numbers() -> None:
    buffer = ChunkBuffer()
    buffer.append(b"12345")
    with pytest.raises(ValueError, match="cannot take 6 of 5 buffered bytes"):
        buffer.take(6)
