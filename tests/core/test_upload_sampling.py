"""The upload's proof of a kept prefix without a server fsync, and the sidecar's ``synced`` field."""

from __future__ import annotations

import itertools
import json

import pytest

from airflow_provider_sftp_resume.core.resume.state import UnusableState
from airflow_provider_sftp_resume.core.resume.upload_state import LocalIdentity, UploadState
from airflow_provider_sftp_resume.core.transfers.upload import SAMPLE_BLOCKS, SAMPLE_LENGTH, sample_ranges

MiB = 1024 * 1024


@pytest.mark.parametrize(
    "kept", [1, SAMPLE_LENGTH, SAMPLE_LENGTH + 1, 2 * MiB, 2 * MiB + 1, 24 * MiB, 10**12]
)
def test_sampled_blocks_span_the_kept_prefix_and_leave_no_long_gap(kept: int) -> None:
    ranges = sample_ranges(kept)

    assert ranges[0][0] == 0
    assert sum(ranges[-1]) == kept, "the last block ends at the resume offset"
    assert len(ranges) <= SAMPLE_BLOCKS
    assert all(0 < length <= SAMPLE_LENGTH for _, length in ranges)
    gaps = [later[0] - (start + length) for (start, length), later in itertools.pairwise(ranges)]
    assert all(gap >= 0 for gap in gaps), "blocks do not overlap"
    if kept <= SAMPLE_BLOCKS * SAMPLE_LENGTH:
        assert sum(length for _, length in ranges) == kept, "a small prefix is re-read whole"
    else:
        assert max(gaps) < kept / (SAMPLE_BLOCKS - 1), "any damaged stretch longer than 1/31 is hit"


def test_synced_round_trips_and_older_sidecars_read_as_not_synced() -> None:
    state = UploadState("s", "/t.part", LocalIdentity(10, 1, 2), 5, synced=True)
    assert UploadState.from_json(state.to_json()) == state

    document = json.loads(state.to_json())
    del document["synced"]
    assert UploadState.from_json(json.dumps(document)).synced is False

    document["synced"] = "yes"
    with pytest.raises(UnusableState, match="synced"):
        UploadState.from_json(json.dumps(document))
