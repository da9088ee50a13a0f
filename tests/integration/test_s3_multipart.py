"""The S3 destination's building blocks against a real S3 endpoint (moto in server mode, its own process)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sftp_resume.core.destinations.s3.calls import S3Target, list_parts
from airflow_provider_sftp_resume.core.destinations.s3.claim import META_FINGERPRINT, META_SHA256
from airflow_provider_sftp_resume.core.destinations.s3.errors import (
    OwnershipLost,
    S3BucketNotFound,
    S3KeyInvalid,
    UploadAborted,
    UploadBusy,
)
from airflow_provider_sftp_resume.core.destinations.s3.manifest import Manifest, fingerprint_digest
from airflow_provider_sftp_resume.core.destinations.s3.multipart import S3MultipartUpload
from airflow_provider_sftp_resume.core.destinations.s3.settings import UploadSettings, client_config_kwargs
from airflow_provider_sftp_resume.core.resume.state import RemoteFingerprint

MiB = 1024 * 1024
PART = 5 * MiB
ROOT = Path(__file__).resolve().parents[2]
KEY = "data/file.bin"


def fingerprint(path: str, data: bytes) -> RemoteFingerprint:
    return RemoteFingerprint(path=path, size=len(data), mtime=1_700_000_000)


def upload(
    client: Any, bucket: str, data: bytes, *, key: str = "data/file.bin", **knobs: Any
) -> S3MultipartUpload:
    settings = UploadSettings(part_size=knobs.pop("part_size", PART), **knobs)
    return S3MultipartUpload(client, S3Target(bucket, key), fingerprint("/remote/file.bin", data), settings)


def write_all(writer: S3MultipartUpload, data: bytes, start: int = 0, step: int = 1 * MiB + 7) -> None:
    for offset in range(start, len(data), step):
        writer.write(offset, data[offset : offset + step])


def in_progress(client: Any, bucket: str) -> list[Any]:
    return client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def object_sha256(client: Any, bucket: str, key: str) -> str:
    return hashlib.sha256(client.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest()


@pytest.mark.parametrize("size", [0, 1, PART - 1, PART, PART + 1, 2 * PART + 1])
def test_sizes_around_part_boundaries_publish_the_exact_bytes(s3_bucket: tuple[Any, str], size: int) -> None:
    client, bucket = s3_bucket
    data = os.urandom(size)
    writer = upload(client, bucket, data)
    assert writer.load_state().manifest is None
    assert writer.restart(fresh=True) == 0
    write_all(writer, data)
    published = writer.publish()
    assert (
        published.sha256 == hashlib.sha256(data).hexdigest() == object_sha256(client, bucket, "data/file.bin")
    )
    assert published.size == size
    assert published.parts == (-(-size // PART) if size >= PART else 1)
    head = client.head_object(Bucket=bucket, Key="data/file.bin")
    assert head["Metadata"][META_FINGERPRINT] == fingerprint_digest(fingerprint("/remote/file.bin", data))
    if size >= PART:
        tags = client.get_object_tagging(Bucket=bucket, Key="data/file.bin")["TagSet"]
        assert {"Key": META_SHA256, "Value": published.sha256} in tags
    else:
        assert head["Metadata"][META_SHA256] == published.sha256
    assert in_progress(client, bucket) == []
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["data/file.bin"]  # no state object left behind


def test_the_object_appears_only_when_complete(s3_bucket: tuple[Any, str]) -> None:
    client, bucket = s3_bucket
    client.put_object(Bucket=bucket, Key="data/file.bin", Body=b"the user's complete old file")
    data = os.urandom(2 * PART + 3)
    writer = upload(client, bucket, data)
    writer.load_state()
    writer.restart(fresh=True)
    write_all(writer, data[: 2 * PART])
    writer.make_durable()
    assert (
        client.get_object(Bucket=bucket, Key="data/file.bin")["Body"].read()
        == b"the user's complete old file"
    )
    manifest_key = S3Target(bucket, "data/file.bin").manifest_key
    assert manifest_key.startswith("_sftp_resume/")
    manifest = Manifest.from_json(client.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
    assert [p.number for p in manifest.parts] == [1, 2]
    assert manifest.parts[0].sha256 == hashlib.sha256(data[:PART]).hexdigest()
    assert "testing" not in json.dumps(json.loads(manifest.to_json()))  # no credentials in the state
    write_all(writer, data, start=2 * PART)
    writer.publish()
    assert object_sha256(client, bucket, "data/file.bin") == hashlib.sha256(data).hexdigest()


CHILD = """
import json, os, sys
from tests.support.s3 import MotoServer
from airflow_provider_sftp_resume.core.destinations.s3.calls import S3Target
from airflow_provider_sftp_resume.core.destinations.s3.multipart import S3MultipartUpload
from airflow_provider_sftp_resume.core.destinations.s3.settings import UploadSettings, client_config_kwargs
from airflow_provider_sftp_resume.core.resume.state import RemoteFingerprint

port, bucket, source = int(sys.argv[1]), sys.argv[2], sys.argv[3]
data = open(source, "rb").read()
client = MotoServer(process=None, port=port).client()
writer = S3MultipartUpload(client, S3Target(bucket, "data/file.bin"),
    RemoteFingerprint(path="/remote/file.bin", size=len(data), mtime=1_700_000_000),
    UploadSettings(part_size=5 * 1024 * 1024, lease_seconds=0.0))
claim = writer.load_state()
start = writer.restart(fresh=claim.manifest is None)
moved = 0
for offset in range(start, len(data), 1 << 20):
    writer.write(offset, data[offset:offset + (1 << 20)])
    moved += len(data[offset:offset + (1 << 20)])
published = writer.publish()
print(json.dumps({"resumed_from": start, "moved": moved, "sha256": published.sha256,
                  "home": os.listdir(os.environ["HOME"]), "tmp": os.listdir(os.environ["TMPDIR"])}))
"""


def test_kept_parts_survive_a_process_boundary_with_an_empty_disk(
    s3_bucket: tuple[Any, str], moto_server: Any, tmp_path: Path
) -> None:
    client, bucket = s3_bucket
    data = os.urandom(3 * PART + 12345)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    first = upload(client, bucket, data)
    first.load_state()
    first.restart(fresh=True)
    write_all(first, data[: 2 * PART + 999])  # a partial third part is never durable
    assert first.make_durable() == 2 * PART
    # the first try "dies" here: nothing of it is used again, and the child has its own empty disk
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    env = {**os.environ, "HOME": str(home), "TMPDIR": str(tmp), "PYTHONPATH": str(ROOT)}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(moto_server.port), bucket, str(source)],
        capture_output=True,
        check=True,
        cwd=tmp,
        env=env,
        timeout=120,
    )
    result = json.loads(child.stdout.decode().strip().splitlines()[-1])
    assert result["resumed_from"] == 2 * PART
    assert result["moved"] == len(data) - 2 * PART
    assert (
        result["sha256"] == hashlib.sha256(data).hexdigest() == object_sha256(client, bucket, "data/file.bin")
    )
    assert result["home"] == []
    assert result["tmp"] == []
    assert in_progress(client, bucket) == []


def test_an_aborted_upload_between_tries_restarts_from_zero(s3_bucket: tuple[Any, str]) -> None:
    client, bucket = s3_bucket
    data = os.urandom(2 * PART + 1)
    first = upload(client, bucket, data, lease_seconds=0.0)
    first.load_state()
    first.restart(fresh=True)
    write_all(first, data[:PART])
    first.make_durable()
    (stale,) = in_progress(client, bucket)
    client.abort_multipart_upload(Bucket=bucket, Key="data/file.bin", UploadId=stale["UploadId"])  # lifecycle
    second = upload(client, bucket, data, lease_seconds=0.0)
    claim = second.load_state()
    assert claim.manifest is None
    assert "no longer exists" in claim.restart_reason
    assert second.restart(fresh=True) == 0
    write_all(second, data)
    assert second.publish().sha256 == hashlib.sha256(data).hexdigest()


def test_a_live_owner_makes_the_second_try_fail_retriably_naming_it(s3_bucket: tuple[Any, str]) -> None:
    client, bucket = s3_bucket
    data = os.urandom(2 * PART)
    first = upload(client, bucket, data)
    first.load_state()
    first.restart(fresh=True)
    write_all(first, data[:PART])
    first.make_durable()
    second = upload(client, bucket, data)
    with pytest.raises(UploadBusy, match=f"pid {os.getpid()}") as caught:
        second.load_state()
    assert caught.value.retriable
    assert caught.value.owner.token == first.owner.token
    write_all(first, data, start=PART)
    assert first.publish().sha256 == object_sha256(client, bucket, "data/file.bin")


def test_an_expired_lease_is_taken_over_and_the_old_owner_stops(s3_bucket: tuple[Any, str]) -> None:
    client, bucket = s3_bucket
    data = os.urandom(3 * PART)
    zombie = upload(client, bucket, data)
    zombie.load_state()
    zombie.restart(fresh=True)
    write_all(zombie, data[:PART])
    zombie.make_durable()
    taker = upload(client, bucket, data, lease_seconds=0.0)
    claim = taker.load_state()
    assert claim.manifest is not None
    assert claim.manifest.kept_bytes == PART
    assert taker.restart(fresh=False) == PART
    # The zombie learns at its next manifest write (its next part, heartbeat or publish; a
    # checkpoint with nothing new writes nothing):
    zombie.write(PART, data[PART : 2 * PART])
    with pytest.raises(OwnershipLost, match="another try took over") as caught:
        zombie.make_durable()
    assert caught.value.retriable
    assert caught.value.owner is not None
    assert caught.value.owner.token == taker.owner.token
    write_all(taker, data, start=PART)
    assert (
        taker.publish().sha256
        == hashlib.sha256(data).hexdigest()
        == object_sha256(client, bucket, "data/file.bin")
    )
    write_all(zombie, data, start=2 * PART)
    # the taker published (its upload is complete, its state deleted): the zombie fails retriably
    with pytest.raises((OwnershipLost, UploadAborted)) as late:
        zombie.publish()
    assert late.value.retriable
    assert object_sha256(client, bucket, "data/file.bin") == hashlib.sha256(data).hexdigest()


def test_a_part_the_manifest_claims_but_listparts_lacks_is_dropped(s3_bucket: tuple[Any, str]) -> None:
    client, bucket = s3_bucket
    data = os.urandom(4 * PART)
    first = upload(client, bucket, data, lease_seconds=0.0)
    first.load_state()
    first.restart(fresh=True)
    write_all(first, data[:PART])
    first.make_durable()
    write_all(first, data[: 3 * PART], start=PART)
    first.make_durable()
    store = first.store
    manifest = store.read()
    assert manifest is not None
    assert len(manifest.parts) == 3
    broken = replace(
        manifest, parts=(manifest.parts[0], replace(manifest.parts[1], etag='"bogus"'), manifest.parts[2])
    )
    store.write(broken)
    second = upload(client, bucket, data, lease_seconds=0.0)
    claim = second.load_state()
    assert claim.manifest is not None
    assert [p.number for p in claim.manifest.parts] == [1]  # part 2 is wrong, so part 3 cannot count either
    assert second.restart(fresh=False) == PART
    write_all(second, data, start=PART)
    assert (
        second.publish().sha256
        == hashlib.sha256(data).hexdigest()
        == object_sha256(client, bucket, "data/file.bin")
    )


def test_listparts_is_followed_across_pages(s3_bucket: tuple[Any, str]) -> None:
    client, bucket = s3_bucket
    target = S3Target(bucket, "paged")
    upload_id = client.create_multipart_upload(Bucket=bucket, Key="paged")["UploadId"]
    for number in range(1, 8):
        client.upload_part(
            Bucket=bucket, Key="paged", UploadId=upload_id, PartNumber=number, Body=b"x" * number
        )
    parts = list_parts(client, target, upload_id, page=2)
    assert [p["PartNumber"] for p in parts] == list(range(1, 8))
    assert [p["Size"] for p in parts] == list(range(1, 8))
    client.abort_multipart_upload(Bucket=bucket, Key="paged", UploadId=upload_id)


def test_a_crash_right_after_complete_is_recognised_as_published(
    s3_bucket: tuple[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, bucket = s3_bucket
    data = os.urandom(PART + 10)
    first = upload(client, bucket, data, lease_seconds=0.0)
    first.load_state()
    first.restart(fresh=True)
    write_all(first, data)
    monkeypatch.setattr(first.store, "delete", lambda: None)  # the try dies before its clean-up
    first.publish()
    assert client.head_object(Bucket=bucket, Key=first.target.manifest_key)  # the state is still there
    second = upload(client, bucket, data, lease_seconds=0.0)
    claim = second.load_state()
    assert claim.published is not None
    published = second.finish_published()
    assert published.already
    assert published.sha256 == hashlib.sha256(data).hexdigest()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["data/file.bin"]


def test_a_changed_source_restarts_and_aborts_the_stale_upload(s3_bucket: tuple[Any, str]) -> None:
    client, bucket = s3_bucket
    data = os.urandom(2 * PART)
    first = upload(client, bucket, data, lease_seconds=0.0)
    first.load_state()
    first.restart(fresh=True)
    write_all(first, data[:PART])
    first.make_durable()
    changed = S3MultipartUpload(
        client,
        S3Target(bucket, "data/file.bin"),
        replace(fingerprint("/remote/file.bin", data), mtime=1_800_000_000),
        UploadSettings(part_size=PART, lease_seconds=0.0),
    )
    claim = changed.load_state()
    assert claim.manifest is None
    assert "changed" in claim.restart_reason
    changed.restart(fresh=True)
    assert [u["UploadId"] for u in in_progress(client, bucket)] != [first.claim.stale_upload_id]
    assert len(in_progress(client, bucket)) == 1
    changed.discard()
    assert in_progress(client, bucket) == []


def test_bad_inputs_are_clear_errors(s3_bucket: tuple[Any, str]) -> None:
    client, _ = s3_bucket
    with pytest.raises(S3KeyInvalid, match="folder"):
        S3Target("bucket", "incoming/")
    writer = upload(client, "no-such-bucket-here", os.urandom(PART + 1))
    with pytest.raises(S3BucketNotFound, match="does not exist") as caught:
        writer.load_state()
    assert not caught.value.retriable


def test_an_unusable_manifest_restarts_never_crashes(s3_bucket: tuple[Any, str]) -> None:
    client, bucket = s3_bucket
    data = os.urandom(PART + 1)
    key = S3Target(bucket, "data/file.bin").manifest_key
    client.put_object(Bucket=bucket, Key=key, Body=b'{"format": "something else"}')
    writer = upload(client, bucket, data)
    claim = writer.load_state()
    assert claim.manifest is None
    assert "unusable" in claim.restart_reason
    writer.restart(fresh=True)
    write_all(writer, data)
    assert writer.publish().sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("checksum", ["SHA256", "CRC32", "off"])
def test_each_checksum_setting_publishes_the_exact_bytes(moto_server: Any, checksum: str) -> None:
    client = moto_server.client(**client_config_kwargs(checksum))
    bucket = f"checksum-{checksum.lower()}"
    client.create_bucket(Bucket=bucket)
    data = os.urandom(PART + 77)
    writer = upload(client, bucket, data, checksum=checksum)
    writer.load_state()
    writer.restart(fresh=True)
    write_all(writer, data)
    assert (
        writer.publish().sha256
        == object_sha256(client, bucket, "data/file.bin")
        == hashlib.sha256(data).hexdigest()
    )
    if checksum == "off":
        assert client.meta.config.request_checksum_calculation == "when_required"


def test_a_checkpoint_with_no_new_part_writes_the_manifest_only_as_a_heartbeat(
    s3_bucket: tuple[Any, str],
) -> None:
    client, bucket = s3_bucket
    data = os.urandom(2 * PART)
    now = [1_000_000.0]
    writer = S3MultipartUpload(
        client, S3Target(bucket, "data/file.bin"), fingerprint("/remote/file.bin", data),
        UploadSettings(part_size=PART, lease_seconds=120.0), clock=lambda: now[0],
    )  # fmt: skip
    writer.load_state()
    writer.restart(fresh=True)
    writer.write(0, data[: PART + 10])
    writer.make_durable()
    etag = writer.store.etag
    now[0] += 10.0
    writer.make_durable()  # nothing new, heartbeat fresh: no request
    assert writer.store.etag == etag
    now[0] += 30.0  # a quarter of the lease since the last write: a heartbeat
    writer.make_durable()
    assert writer.store.etag != etag
    manifest = writer.store.read()
    assert manifest is not None
    assert manifest.owner.heartbeat == now[0]


def holding_last_part(
    client: Any, bucket: str, parts: int = 2
) -> tuple[S3MultipartUpload, threading.Event, bytes]:
    """
    A writer of ``parts`` parts and 1 byte, every part cut and uploading, the last one held until the
    event is set.
    """
    data, release = os.urandom(parts * PART + 1), threading.Event()

    def hold_the_last(params: dict[str, Any], **_: Any) -> None:
        if params.get("PartNumber") == parts:
            assert release.wait(30), f"part {parts} was never released"

    client.meta.events.register("before-parameter-build.s3.UploadPart", hold_the_last)
    writer = upload(client, bucket, data, max_in_flight=parts)
    writer.load_state()
    writer.restart(fresh=True)
    writer.write(0, data)
    return writer, release, data


def wait_for_parts_in_s3(client: Any, bucket: str, count: int) -> None:
    upload_id = in_progress(client, bucket)[0]["UploadId"]
    deadline = time.monotonic() + 30
    while len(client.list_parts(Bucket=bucket, Key=KEY, UploadId=upload_id).get("Parts", [])) < count:
        assert time.monotonic() < deadline, f"{count} parts never reached S3"
        time.sleep(0.02)


def test_a_checkpoint_records_a_finished_part_while_a_later_one_still_uploads(
    s3_bucket: tuple[Any, str],
) -> None:
    client, bucket = s3_bucket
    writer, release, data = holding_last_part(client, bucket)
    checkpoint = ThreadPoolExecutor(1).submit(writer.make_durable)
    try:
        deadline = time.monotonic() + 30
        while not ((m := writer.store.read()) and m.parts):
            assert time.monotonic() < deadline, "part 1 never reached the manifest while part 2 uploaded"
            assert not checkpoint.done(), checkpoint.result()
            time.sleep(0.02)
        assert [p.number for p in m.parts] == [1]
        assert m.kept_bytes == PART
    finally:
        release.set()
    assert checkpoint.result(30) == 2 * PART
    manifest = writer.store.read()
    assert manifest is not None
    assert [p.number for p in manifest.parts] == [1, 2]
    assert writer.publish().sha256 == hashlib.sha256(data).hexdigest() == object_sha256(client, bucket, KEY)


def test_a_checkpoint_writes_the_manifest_at_most_once_a_spacing_while_it_waits(
    s3_bucket: tuple[Any, str],
) -> None:
    client, bucket = s3_bucket
    writer, release, _ = holding_last_part(client, bucket)
    checkpoint = ThreadPoolExecutor(1).submit(writer.make_durable, 3600.0)
    try:
        wait_for_parts_in_s3(client, bucket, 1)
        time.sleep(0.3)  # time for a write that must not come
        manifest = writer.store.read()
        assert manifest is not None
        assert manifest.parts == ()
    finally:
        release.set()
    assert checkpoint.result(30) == 2 * PART


def test_parts_done_before_a_checkpoint_are_written_before_it_waits_for_the_rest(
    s3_bucket: tuple[Any, str],
) -> None:
    client, bucket = s3_bucket
    writer, release, _ = holding_last_part(client, bucket, parts=3)
    try:
        wait_for_parts_in_s3(client, bucket, 2)
        time.sleep(0.1)  # the last manifest write (the fresh claim) is older than the spacing
        checkpoint = ThreadPoolExecutor(1).submit(writer.make_durable, 0.05)
        deadline = time.monotonic() + 10
        while not ((m := writer.store.read()) and m.parts):
            assert time.monotonic() < deadline, "parts 1-2 waited for part 3 to reach the manifest"
            time.sleep(0.02)
        assert [p.number for p in m.parts] == [1, 2]
    finally:
        release.set()
    assert checkpoint.result(30) == 3 * PART
