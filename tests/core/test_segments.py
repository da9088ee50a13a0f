"""How a large file is split for several connections: aligned, covering, never below the minimum,
and shrinking towards the end so that no connection is left alone with a large last segment."""

from __future__ import annotations

import itertools

import pytest

from airflow_provider_sftp_resume.core.io.segments import (
    SEGMENT_ALIGNMENT,
    SEGMENTS_PER_CONNECTION,
    segment_boundaries,
)

MiB = 1024 * 1024
CASES = [
    (1024 * MiB, 2, 16 * MiB),
    (2048 * MiB + 12345, 4, 16 * MiB),
    (256 * MiB, 2, 16 * MiB),
    (12 * MiB, 3, MiB),
    (7 * MiB + 333, 3, MiB),
    (100 * MiB, 2, 16 * MiB),
    (40 * MiB, 2, 16 * MiB),
]


@pytest.mark.parametrize(("size", "connections", "minimum"), CASES)
def test_segments_cover_the_file_aligned_and_never_below_the_minimum(
    size: int, connections: int, minimum: int
) -> None:
    edges = segment_boundaries(size, connections, minimum)
    sizes = [b - a for a, b in itertools.pairwise((0, *edges, size))]
    assert all(edge % SEGMENT_ALIGNMENT == 0 for edge in edges)
    assert list(edges) == sorted(set(edges))
    assert all(0 < edge < size for edge in edges)
    assert sum(sizes) == size
    assert min(sizes) >= minimum
    assert 2 <= len(sizes) <= connections * SEGMENTS_PER_CONNECTION


@pytest.mark.parametrize(("size", "connections", "minimum"), CASES)
def test_segments_shrink_towards_the_end(size: int, connections: int, minimum: int) -> None:
    sizes = [b - a for a, b in itertools.pairwise((0, *segment_boundaries(size, connections, minimum), size))]
    # non-increasing, and the last at most half the first or else the minimum (up to the alignment)
    assert all(later <= earlier + SEGMENT_ALIGNMENT for earlier, later in itertools.pairwise(sizes))
    assert sizes[-1] <= max(minimum, sizes[0] // 2) + SEGMENT_ALIGNMENT


def test_a_large_file_ends_in_small_segments() -> None:
    sizes = [b - a for a, b in itertools.pairwise((0, *segment_boundaries(1024 * MiB, 2), 1024 * MiB))]
    assert len(sizes) == 8  # four per connection
    assert sizes[-1] <= 1024 * MiB // 32  # the last a thirty-second of the file, not an eighth


def test_a_file_too_small_to_split_keeps_one_segment() -> None:
    assert segment_boundaries(31 * MiB, 2, 16 * MiB) == ()
    assert segment_boundaries(10 * MiB, 4, 16 * MiB) == ()
    assert segment_boundaries(10 * 1024 * MiB, 1, 16 * MiB) == ()
