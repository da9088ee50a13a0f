"""
SFTP straight into S3 through the download engine: a real sshd, the fault proxy, a real moto server.

Each test has a bucket of its own. After every success: the object's sha256 is the source's, no
multipart upload is in progress for the key, and no state object is left.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_sftp_resume.core.destinations.s3.calls import S3Target
from airflow_provider_sftp_resume.core.destinations.s3.errors import (
    PartSizeOutOfRange,
    S3BucketNotFound,
    S3KeyInvalid,
    SourceTooLarge,
)
from airflow_provider_sftp_resume.core.destinations.s3.parts import PartPlan
from airflow_provider_sftp_resume.core.destinations.s3.settings import UploadSettings
from airflow_provider_sftp_resume.core.errors import TransferInterrupted
from airflow_provider_sftp_resume.core.transfers.download_types import DownloadOptions
from airflow_provider_sftp_resume.core.transfers.to_s3 import S3CopyResult, copy_to_s3
from tests.conftest import endpoint_for, session_factory, write_random

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.faultproxy import FaultProxy
    from tests.support.servers import ServerInfo

MiB = 1024 * 1024
PART = 5 * MiB
KEY = "incoming/data.bin"


def copy(
    server: ServerInfo, source: Path, client: Any, bucket: str, port: int | None = None, **settings: Any
) -> S3CopyResult:
    opener = session_factory(endpoint_for(server, port))
    options = DownloadOptions(checkpoint_interval=0.05, stall_timeout=10.0)
    upload = UploadSettings(**{"part_size": PART, **settings})
    target = S3Target(bucket, KEY)
    return asyncio.run(copy_to_s3(opener, str(source), client, target, options, settings=upload))


def object_sha256(client: Any, bucket: str, key: str = KEY) -> str:
    return hashlib.sha256(client.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest()


def assert_clean(client: Any, bucket: str) -> None:
    """No multipart upload in progress, no state object: nothing left that costs money."""
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert uploads == []
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert [k for k in keys if k.startswith("_sftp_resume/")] == []


@pytest.mark.parametrize("size", [0, 1000, PART - 1, PART, PART + 1, 2 * PART + 7])
def test_sizes_around_a_part_boundary_copy_the_exact_bytes(
    openssh_server: ServerInfo, remote_dir: Path, s3_bucket: tuple[Any, str], size: int
) -> None:
    client, bucket = s3_bucket
    source = remote_dir / "data.bin"
    digest = write_random(source, size, seed=size)

    result = copy(openssh_server, source, client, bucket)

    assert object_sha256(client, bucket) == digest == result.sha256
    assert (result.size, result.resumed_from, result.bytes_transferred) == (size, 0, size)
    assert result.parts == PartPlan.for_size(size, PART).count
    assert result.etag
    assert not result.skipped
    assert_clean(client, bucket)


def test_a_cut_try_resumes_from_the_parts_in_the_bucket(
    sftp_server: ServerInfo, proxy: FaultProxy, remote_dir: Path, s3_bucket: tuple[Any, str]
) -> None:
    client, bucket = s3_bucket
    source = remote_dir / "data.bin"
    size = 4 * PART + 123
    digest = write_random(source, size, seed=1)
    proxy.cut_after(3 * PART)
    with pytest.raises(TransferInterrupted):
        copy(sftp_server, source, client, bucket, port=proxy.port)
    assert "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix=KEY)  # nothing partial

    result = copy(sftp_server, source, client, bucket, port=proxy.port)

    assert result.resumed_from > 0
    assert result.resumed_from % PART == 0
    assert result.bytes_transferred <= size - result.resumed_from + PART
    assert result.checks_passed == ("size", "mtime", "tail", "overlap")
    assert object_sha256(client, bucket) == digest == result.sha256
    assert_clean(client, bucket)


def test_an_unchanged_object_is_skipped(
    openssh_server: ServerInfo, remote_dir: Path, s3_bucket: tuple[Any, str]
) -> None:
    client, bucket = s3_bucket
    source = remote_dir / "data.bin"
    digest = write_random(source, PART + 5, seed=2)
    first = copy(openssh_server, source, client, bucket)

    again = copy(openssh_server, source, client, bucket)

    assert again.skipped
    assert again.bytes_transferred == 0
    assert again.sha256 == digest
    assert again.etag == first.etag


def test_bad_inputs_are_clear_errors_and_leave_nothing(
    openssh_server: ServerInfo, remote_dir: Path, s3_bucket: tuple[Any, str]
) -> None:
    client, bucket = s3_bucket
    source = remote_dir / "data.bin"
    write_random(source, PART + 5, seed=3)
    with pytest.raises(S3BucketNotFound, match="does not exist"):
        copy(openssh_server, source, client, "no-such-bucket-here")
    with pytest.raises(PartSizeOutOfRange, match="between"):
        copy(openssh_server, source, client, bucket, part_size=MiB)
    with pytest.raises(S3KeyInvalid, match="names a folder"):
        S3Target(bucket, "incoming/")
    with pytest.raises(SourceTooLarge, match="5 TiB"):
        PartPlan.for_size(5 * 1024**4 + 1)
    assert_clean(client, bucket)
    assert "Contents" not in client.list_objects_v2(Bucket=bucket)


def test_a_source_over_5_tib_is_refused_before_any_request(
    openssh_server: ServerInfo, remote_dir: Path, s3_bucket: tuple[Any, str]
) -> None:
    client, bucket = s3_bucket
    source = remote_dir / "huge.bin"
    with open(source, "wb") as handle:  # sparse: no disk used
        handle.truncate(5 * 1024**4 + 1)
    try:
        with pytest.raises(SourceTooLarge, match="5 TiB"):
            copy(openssh_server, source, client, bucket, part_size=None)
    finally:
        os.unlink(source)
    assert "Contents" not in client.list_objects_v2(Bucket=bucket)
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_single_put_file_is_claimed_with_three_requests_more(
    openssh_server: ServerInfo, remote_dir: Path, s3_bucket: tuple[Any, str]
) -> None:
    client, bucket = s3_bucket
    calls: list[str] = []
    client.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))
    source = remote_dir / "data.bin"
    digest = write_random(source, 1000, seed=5)

    result = copy(openssh_server, source, client, bucket)

    # HEAD (skip_unchanged), GET the claim (none), PUT the claim (If-None-Match), PUT it again with
    # the sha256 (If-Match: still ours), PUT the object, DELETE the claim. Without the claim it was
    # HEAD, GET, PUT: the claim costs two small PUTs and a DELETE per file.
    assert calls == ["HeadObject", "GetObject", "PutObject", "PutObject", "PutObject", "DeleteObject"]
    assert result.parts == 1
    assert object_sha256(client, bucket) == digest == result.sha256
    assert_clean(client, bucket)
