"""The post-action record of a copy to S3: what it accepts, where it lives."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from airflow_provider_sftp_resume.core.destinations.s3.calls import S3Target
from airflow_provider_sftp_resume.core.destinations.s3.post_record import (
    MAX_RECORD_BYTES,
    PostActionRecord,
    record_key,
)

RECORD = PostActionRecord(
    action="move",
    remote_path="/out/a.csv",
    destination="/archive/a.csv",
    size=10,
    mtime=1700000000,
    sha256="ab" * 32,
    etag="0123-2",
    version_id=None,
    parts=2,
    part_size=5 * 1024 * 1024,
)


def test_a_record_round_trips() -> None:
    assert PostActionRecord.from_json(RECORD.to_json()) == RECORD
    assert PostActionRecord.from_json(replace(RECORD, destination=None).to_json()) == replace(
        RECORD, destination=None
    )


@pytest.mark.parametrize(
    "change",
    [
        {"format": "something else"},
        {"version": 2},
        {"size": "10"},
        {"size": True},
        {"etag": None},
        {"destination": 3},
        {"unknown": 1},
    ],
)
def test_a_record_this_package_did_not_write_is_ignored(change: dict[str, object]) -> None:
    document = {**json.loads(RECORD.to_json()), **change}
    assert PostActionRecord.from_json(json.dumps(document).encode()) is None


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b"{}", b"x" * (MAX_RECORD_BYTES + 1)])
def test_junk_is_no_record(body: bytes) -> None:
    assert PostActionRecord.from_json(body) is None


def test_the_record_never_shares_a_key_with_a_manifest() -> None:
    target = S3Target("b", "in/a.csv")
    assert record_key(target) == "_sftp_resume/in/a.csv.post-action"
    other = S3Target("b", "in/a.csv.post-action")  # whose manifest ends in .json, never in .post-action
    assert other.manifest_key != record_key(target)
    long = S3Target("b", "k" * 1020)
    assert record_key(long).startswith("_sftp_resume/sha256/")
    assert record_key(long).endswith(".post-action")
    assert len(record_key(long).encode()) <= 1024
