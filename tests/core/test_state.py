"""The sidecar is data, never code: anything odd is rejected as a whole."""

from __future__ import annotations

import json

import pytest

from airflow_provider_sftp_resume.core.resume.state import (
    RemoteFingerprint,
    ResumeState,
    Segment,
    UnusableState,
)

FINGERPRINT = RemoteFingerprint(path="/a", size=1000, mtime=5, tail_length=10, tail_sha256="ab")


def document(**changes: object) -> str:
    base = json.loads(ResumeState.fresh(FINGERPRINT).with_progress(0, 400).to_json())
    base.update(changes)
    return json.dumps(base)


def test_round_trip() -> None:
    state = ResumeState.fresh(FINGERPRINT, boundaries=(300, 700)).with_progress(1, 500)
    assert ResumeState.from_json(state.to_json()) == state
    assert state.segments == (Segment(0, 300, 0), Segment(300, 700, 500), Segment(700, 1000, 700))
    assert state.durable_bytes == 200
    assert state.contiguous_prefix == 0


def test_contiguous_prefix_spans_complete_segments() -> None:
    state = ResumeState.fresh(FINGERPRINT, boundaries=(300,)).with_progress(0, 300).with_progress(1, 450)
    assert state.contiguous_prefix == 450


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        "{}",
        document(version=2),
        document(format="something-else"),
        document(remote={"path": "/a", "size": True, "mtime": 5, "tail_length": 0, "tail_sha256": ""}),
        document(remote={"path": "/a", "size": -1, "mtime": 5, "tail_length": 0, "tail_sha256": ""}),
        document(remote={"path": "/a", "size": 2**70, "mtime": 5, "tail_length": 0, "tail_sha256": ""}),
        document(remote={"path": 7, "size": 1000, "mtime": 5, "tail_length": 0, "tail_sha256": ""}),
        document(remote={"path": "/a", "size": 10, "mtime": 5, "tail_length": 11, "tail_sha256": ""}),
        document(segments=[{"start": 0, "end": 1000, "done": 1001}]),
        document(segments=[{"start": 0, "end": 1000, "done": -5}]),
        document(segments=[{"start": 0, "end": 500, "done": 0}]),
        document(segments=[{"start": 0, "end": 500, "done": 0}, {"start": 600, "end": 1000, "done": 600}]),
        document(segments=[]),
        document(segments=[{"start": 0, "end": 1, "done": 0}] * 2000),
        document(segments="lots"),
        "[" * 100_000,
        " " * 70_000 + "{}",
    ],
)
def test_hostile_or_corrupt_sidecars_are_rejected(text: str) -> None:
    with pytest.raises(UnusableState):
        ResumeState.from_json(text)
