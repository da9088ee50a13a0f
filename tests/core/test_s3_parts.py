"""Part arithmetic of the S3 multipart upload: S3's limits, the automatic size, offsets past 2**32."""

from __future__ import annotations

import pytest

from airflow_provider_sftp_resume.core.destinations.s3.errors import PartSizeOutOfRange, SourceTooLarge
from airflow_provider_sftp_resume.core.destinations.s3.parts import (
    DEFAULT_MIN_PART_SIZE,
    MAX_OBJECT_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    GiB,
    MiB,
    PartPlan,
    TiB,
    auto_part_size,
)
from airflow_provider_sftp_resume.core.errors import PermanentTransferError


@pytest.mark.parametrize("size", [0, 1, 5 * MiB, 80 * GiB, 100 * GiB, 1 * TiB + 1, MAX_OBJECT_SIZE])
def test_auto_part_size_covers_the_file_in_at_most_10000_parts_of_whole_mib(size: int) -> None:
    part = auto_part_size(size)
    assert part >= DEFAULT_MIN_PART_SIZE >= MIN_PART_SIZE
    assert part % MiB == 0
    assert -(-size // part) <= MAX_PARTS
    assert part <= 5 * GiB


def test_auto_part_size_grows_only_when_needed() -> None:
    assert auto_part_size(10 * GiB) == DEFAULT_MIN_PART_SIZE
    assert auto_part_size(MAX_PARTS * DEFAULT_MIN_PART_SIZE + 1) == DEFAULT_MIN_PART_SIZE + MiB


def test_a_source_over_5_tib_is_refused_with_a_clear_error() -> None:
    with pytest.raises(SourceTooLarge, match="5 TiB") as caught:
        PartPlan.for_size(MAX_OBJECT_SIZE + 1)
    assert isinstance(caught.value, PermanentTransferError)


@pytest.mark.parametrize("knob", [MIN_PART_SIZE - 1, 5 * GiB + 64, 0, -1, MIN_PART_SIZE + 1])
def test_a_part_size_outside_s3_limits_names_the_range(knob: int) -> None:
    with pytest.raises(PartSizeOutOfRange, match="5 MiB") as caught:
        PartPlan.for_size(100 * MiB, knob)
    assert not caught.value.retriable


def test_a_part_size_too_small_for_10000_parts_names_the_least_that_fits() -> None:
    with pytest.raises(PartSizeOutOfRange, match="at least") as caught:
        PartPlan.for_size(MAX_PARTS * MIN_PART_SIZE + 1, MIN_PART_SIZE)
    least = int(str(caught.value).split("at least ")[1].split(",")[0])
    assert PartPlan.for_size(MAX_PARTS * MIN_PART_SIZE + 1, least).count <= MAX_PARTS


def test_knob_limits_themselves_are_accepted() -> None:
    assert PartPlan.for_size(100 * MiB, MIN_PART_SIZE).part_size == MIN_PART_SIZE
    assert PartPlan.for_size(100 * MiB, 5 * GiB).single_put


@pytest.mark.parametrize(
    ("size", "single", "count"),
    [(0, True, 1), (1, True, 1), (8 * MiB - 1, True, 1), (8 * MiB, False, 1), (8 * MiB + 1, False, 2)],
)
def test_files_under_one_part_are_a_single_put(size: int, single: bool, count: int) -> None:
    plan = PartPlan.for_size(size)
    assert plan.single_put is single
    assert plan.count == count


def test_offsets_and_numbers_past_2_to_the_32() -> None:
    size = 5 * 2**32 + 12345  # ~20 GiB
    plan = PartPlan.for_size(size, 64 * MiB)
    assert plan.count == -(-size // (64 * MiB))
    last = plan.count
    assert plan.start(last) == (last - 1) * 64 * MiB > 2**32
    assert plan.end(last) == size
    assert plan.length(last) == size - plan.start(last)
    assert plan.number_at(2**32) == 2**32 // (64 * MiB) + 1
    assert plan.number_at(size - 1) == last
    assert sum(plan.length(n) for n in range(1, last + 1)) == size
    with pytest.raises(ValueError, match="outside"):
        plan.start(last + 1)
    with pytest.raises(ValueError, match="outside"):
        plan.number_at(size)
