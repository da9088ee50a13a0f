"""
The S3 writer's fast path against the real moto server: what goes over the wire, and the fill not waiting.

Requests are observed with botocore's own ``before-send`` event on the real client (and one held
there, to keep a part in flight); every request still goes to moto.
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Any

import pytest
from botocore.config import Config

from airflow_provider_sftp_resume.core.destinations.s3.calls import S3Target
from airflow_provider_sftp_resume.core.destinations.s3.multipart import S3MultipartUpload
from airflow_provider_sftp_resume.core.destinations.s3.settings import (
    UploadSettings,
    client_config_kwargs,
    merged_client_config,
)
from airflow_provider_sftp_resume.core.destinations.s3.uploader import QUEUED_PARTS
from airflow_provider_sftp_resume.core.resume.state import RemoteFingerprint

MiB = 1024 * 1024
PART = 5 * MiB
KEY = "data/file.bin"


def writer_for(client: Any, bucket: str, data: bytes, **knobs: Any) -> S3MultipartUpload:
    source = RemoteFingerprint(path="/remote/file.bin", size=len(data), mtime=1_700_000_000)
    writer = S3MultipartUpload(client, S3Target(bucket, KEY), source, UploadSettings(part_size=PART, **knobs))
    writer.load_state()
    writer.restart(fresh=True)
    return writer


def part_headers(client: Any) -> list[dict[str, str]]:
    """Record the headers of every UploadPart the client sends."""
    seen: list[dict[str, str]] = []

    def record(request: Any, **_: Any) -> None:
        seen.append(
            {k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        )

    client.meta.events.register("before-send.s3.UploadPart", record)
    return seen


@pytest.mark.parametrize("checksum", ["SHA256", "CRC32", "off"])
def test_the_payload_is_signed_unless_a_signed_sha256_checksum_covers_it(
    moto_server: Any, checksum: str
) -> None:
    client = moto_server.client(**client_config_kwargs(checksum))
    bucket = f"payload-{checksum.lower()}"
    client.create_bucket(Bucket=bucket)
    seen = part_headers(client)
    data = os.urandom(2 * PART + 5)
    writer = writer_for(client, bucket, data, checksum=checksum)
    writer.write(0, data)
    assert writer.publish().sha256 == hashlib.sha256(data).hexdigest()
    assert len(seen) == 3
    for headers in seen:
        payload = headers["x-amz-content-sha256"]
        if checksum == "SHA256":
            assert payload == "UNSIGNED-PAYLOAD"
            assert "x-amz-checksum-sha256" in headers["authorization"].lower()  # the checksum is signed
        else:
            assert len(payload) == 64  # the hex sha256 of the body, signed
        if checksum == "off":
            assert not any(name.startswith("x-amz-checksum") for name in headers)  # no CRC computed
    body = client.get_object(Bucket=bucket, Key=KEY)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(data).hexdigest()


def test_merged_config_keeps_the_connections_s3_options_and_larger_pool() -> None:
    theirs = Config(s3={"addressing_style": "path"}, max_pool_connections=50, region_name="eu-west-1")
    merged = merged_client_config(theirs, "SHA256", max_in_flight=4)
    assert merged.s3 == {"addressing_style": "path", "payload_signing_enabled": False}
    assert merged.max_pool_connections == 50
    assert merged.region_name == "eu-west-1"
    own = merged_client_config(Config(s3={"payload_signing_enabled": True}), "SHA256", max_in_flight=20)
    assert own.s3 == {"payload_signing_enabled": True}  # the connection's explicit choice wins
    assert own.max_pool_connections == 23
    assert merged_client_config(None, "off").request_checksum_calculation == "when_required"


def test_a_full_part_goes_to_the_uploader_without_the_fill_waiting_until_every_slot_is_busy(
    s3_bucket: tuple[Any, str],
) -> None:
    client, bucket = s3_bucket
    gate, started = threading.Event(), threading.Event()

    def hold(**_: Any) -> None:  # keeps part 1 in flight, as a slow store would
        started.set()
        assert gate.wait(60)

    client.meta.events.register("before-send.s3.UploadPart", hold)
    data = os.urandom((2 + QUEUED_PARTS) * PART + 99)
    writer = writer_for(client, bucket, data, max_in_flight=1)
    offset = 0
    try:
        for _ in range(1 + QUEUED_PARTS):  # one part uploading, QUEUED_PARTS waiting: no wait yet
            assert writer.write(offset, data[offset : offset + PART], block=False)
            offset += PART
        assert started.wait(30)
        assert not writer.write(offset, data[offset : offset + PART], block=False)  # would wait: refused
        assert writer.written == offset  # ... and nothing of it was taken
    finally:
        gate.set()
    writer.write(offset, data[offset:])
    assert writer.publish().sha256 == hashlib.sha256(data).hexdigest()
    body = client.get_object(Bucket=bucket, Key=KEY)["Body"].read()
    assert body == data
