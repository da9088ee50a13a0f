"""
Part arithmetic of an S3 multipart upload: how big each part is and where it starts.

S3's limits (the AWS documentation "Amazon S3 multipart upload limits"): at most 10,000 parts, each
5 MiB to 5 GiB except the last, which may be smaller; an object is at most 5 TiB. A file smaller
than one part goes up as a single ``PutObject``. The automatic part size grows with the file so that
10,000 parts cover it, rounded up to a whole MiB (which keeps every part boundary a multiple of
64 bytes, where :mod:`~airflow_provider_sftp_resume.core.resume.resumable_sha256` can save its
state). Python integers do not overflow, so offsets past 2**32 need no care beyond not truncating.
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow_provider_sftp_resume.core.destinations.s3.errors import PartSizeOutOfRange, SourceTooLarge

MiB = 1024 * 1024
GiB = 1024 * MiB
TiB = 1024 * GiB
MIN_PART_SIZE = 5 * MiB  # 5 MiB: S3's smallest part (but the last)
MAX_PART_SIZE = 5 * GiB  # 5 GiB
MAX_PARTS = 10_000
MAX_OBJECT_SIZE = 5 * TiB  # 5 TiB
#: The automatic part size is a multiple of this (a multiple of the 64-byte SHA-256 block too).
PART_SIZE_STEP = MiB
#: The automatic part size never goes below this: fewer requests, and still little memory per part.
DEFAULT_MIN_PART_SIZE = 8 * MiB  # 8 MiB, the AWS CLI's and s3transfer's default chunk size


def auto_part_size(size: int, *, minimum: int = DEFAULT_MIN_PART_SIZE) -> int:
    """
    Return the part size for a file of ``size`` bytes: 10,000 parts cover it, whole MiB, >= ``minimum``.

    :param size: size of the source file in bytes
    :param minimum: the smallest part size to pick (clamped into S3's limits)
    :raises SourceTooLarge: the file is larger than S3's 5 TiB object limit
    """
    check_source_size(size)
    needed = -(-size // MAX_PARTS)  # ceil
    steps = -(-max(needed, minimum, MIN_PART_SIZE) // PART_SIZE_STEP)
    return min(steps * PART_SIZE_STEP, MAX_PART_SIZE)


def check_source_size(size: int) -> None:
    """
    Refuse a source S3 cannot store as one object.

    :raises SourceTooLarge: ``size`` is over 5 TiB
    """
    if size > MAX_OBJECT_SIZE:
        raise SourceTooLarge(
            f"the source is {size} bytes; S3 stores at most 5 TiB ({MAX_OBJECT_SIZE} bytes) in one object. "
            "Split the file at the source, or copy it to a store without this limit"
        )


@dataclass(frozen=True)
class PartPlan:
    """
    How a file of ``size`` bytes is cut into parts.

    :param size: size of the source file in bytes
    :param part_size: size of every part but the last
    """

    size: int
    part_size: int

    @classmethod
    def for_size(cls, size: int, part_size: int | None = None) -> PartPlan:
        """
        Plan the parts of a file, with the automatic part size or the one asked for.

        :param size: size of the source file in bytes
        :param part_size: the ``part_size`` knob; ``None`` for automatic
        :raises SourceTooLarge: the file is over 5 TiB
        :raises PartSizeOutOfRange: the knob is outside 5 MiB..5 GiB, not a multiple of 64 bytes,
            or too small for the file to fit in 10,000 parts
        """
        check_source_size(size)
        if part_size is None:
            return cls(size=size, part_size=auto_part_size(size))
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE or part_size % 64:
            raise PartSizeOutOfRange(
                f"part_size={part_size} is outside S3's limits: set it to a multiple of 64 bytes (whole MiB "
                f"are simplest) between "
                f"5 MiB ({MIN_PART_SIZE}) and 5 GiB ({MAX_PART_SIZE}), or leave it unset (automatic)"
            )
        if -(-size // part_size) > MAX_PARTS:
            least = auto_part_size(size, minimum=MIN_PART_SIZE)
            raise PartSizeOutOfRange(
                f"part_size={part_size} would cut this {size}-byte file into more than {MAX_PARTS} parts, "
                f"S3's limit: set part_size to at least {least}, or leave it unset (automatic)"
            )
        return cls(size=size, part_size=part_size)

    @property
    def single_put(self) -> bool:
        """Whether the file is smaller than one part and goes up as one ``PutObject``."""
        return self.size < self.part_size

    @property
    def count(self) -> int:
        """Number of parts (1 for an empty file: one empty ``PutObject``)."""
        return max(1, -(-self.size // self.part_size))

    def start(self, number: int) -> int:
        """Offset of the first byte of part ``number`` (1-based)."""
        self._check(number)
        return (number - 1) * self.part_size

    def length(self, number: int) -> int:
        """Size of part ``number`` (the last may be smaller)."""
        return min(self.part_size, self.size - self.start(number))

    def end(self, number: int) -> int:
        """Offset one past the last byte of part ``number``."""
        return self.start(number) + self.length(number)

    def number_at(self, offset: int) -> int:
        """The part that holds byte ``offset``."""
        if not 0 <= offset < max(self.size, 1):
            raise ValueError(f"offset {offset} is outside the file of {self.size} bytes")
        return offset // self.part_size + 1

    def _check(self, number: int) -> None:
        if not 1 <= number <= self.count:
            raise ValueError(f"part {number} is outside 1..{self.count}")
