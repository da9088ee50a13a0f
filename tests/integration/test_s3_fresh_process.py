"""
Every try of an SFTP to S3 copy in a fresh process with a fresh, empty HOME, TMPDIR and working
directory (nothing on local disk shared between tries, as on a new Kubernetes pod): a real sshd,
the fault proxy cutting the SFTP side, real ``kill -9`` at chosen S3 calls, a real moto server.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import write_random
from tests.support.faultproxy import FaultProxy

if TYPE_CHECKING:
    from tests.support.s3 import MotoServer
    from tests.support.servers import ServerInfo

MiB = 1024 * 1024
PART = 5 * MiB
KEY = "incoming/data.bin"
REPO = Path(__file__).resolve().parents[2]


def endpoint(server: ServerInfo, port: int | None = None) -> dict[str, Any]:
    return {
        "host": server.host,
        "port": port or server.port,
        "username": server.username,
        "client_keys": [str(server.client_key.private)],
        "use_default_keys": False,
        "trusted_host_keys": [server.host_key.public_line],
        "connect_timeout": 10.0,
        "keepalive_interval": 0.0,
    }


def start_try(
    tmp_path: Path, moto: MotoServer, bucket: str, server: ServerInfo, source: Path, **extra: Any
) -> subprocess.Popen[str]:
    """Start one try in a new process whose HOME, TMPDIR and cwd are a new, empty directory."""
    home = tmp_path / f"try-{time.monotonic_ns()}"
    home.mkdir()
    spec = {
        "endpoint": endpoint(server, extra.pop("port", None)),
        "endpoint_url": moto.endpoint_url,
        "bucket": bucket,
        "key": KEY,
        "remote_path": str(source),
        "part_size": PART,
        **extra,
    }
    env = {**os.environ, "HOME": str(home), "TMPDIR": str(home), "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.s3_try", json.dumps(spec)],
        cwd=home,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = 120) -> dict[str, Any] | None:
    """The try's JSON line, or ``None`` when it was killed."""
    out, err = process.communicate(timeout=timeout)
    if process.returncode == -9:
        return None
    assert process.returncode == 0, err[-3000:]
    answer: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    answer["log"] = err[-6000:]  # the try's own log lines, shown when an assertion on it fails
    return answer


def one_try(
    tmp_path: Path,
    moto: MotoServer,
    bucket: str,
    server: ServerInfo,
    source: Path,
    *,
    timeout: float = 120,
    **extra: Any,
) -> Any:
    return finish(start_try(tmp_path, moto, bucket, server, source, **extra), timeout)


def object_sha256(client: Any, bucket: str) -> str:
    return hashlib.sha256(client.get_object(Bucket=bucket, Key=KEY)["Body"].read()).hexdigest()


def assert_clean(client: Any, bucket: str) -> None:
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == [KEY]


def test_each_try_in_a_fresh_process_with_an_empty_disk_resumes(
    tmp_path: Path,
    moto_server: MotoServer,
    s3_bucket: tuple[Any, str],
    sftp_server: ServerInfo,
    proxy: FaultProxy,
) -> None:
    client, bucket = s3_bucket
    source = tmp_path / "source.bin"
    size = 5 * PART + 4321
    digest = write_random(source, size, seed=11)
    proxy.cut_after(3 * PART)
    first = one_try(tmp_path, moto_server, bucket, sftp_server, source, port=proxy.port)
    assert first["error"] == "TransferInterrupted"
    assert "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix=KEY)

    second = one_try(tmp_path, moto_server, bucket, sftp_server, source, port=proxy.port)

    assert second["resumed_from"] > 0, second
    assert second["bytes_transferred"] <= size - second["resumed_from"] + PART
    assert second["checks_passed"] == ["size", "mtime", "tail", "overlap"]
    assert second["sha256"] == digest == object_sha256(client, bucket)
    assert_clean(client, bucket)


def test_kill_9_between_parts_then_a_fresh_process_resumes(
    tmp_path: Path, moto_server: MotoServer, s3_bucket: tuple[Any, str], openssh_server: ServerInfo
) -> None:
    client, bucket = s3_bucket
    source = tmp_path / "source.bin"
    size = 6 * PART + 1
    digest = write_random(source, size, seed=12)
    killed = one_try(
        tmp_path, moto_server, bucket, openssh_server, source, kill_after=["UploadPart", 3, True], in_flight=1
    )  # after part 3 and a checkpoint (which a loaded machine may run late): resumed_from is > 0
    assert killed is None
    assert "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix=KEY)

    result = one_try(tmp_path, moto_server, bucket, openssh_server, source)

    assert result["resumed_from"] > 0, result
    assert result["bytes_transferred"] <= size - result["resumed_from"] + PART
    assert result["sha256"] == digest == object_sha256(client, bucket)
    assert_clean(client, bucket)


def test_kill_9_right_after_complete_then_the_retry_reports_success(
    tmp_path: Path, moto_server: MotoServer, s3_bucket: tuple[Any, str], openssh_server: ServerInfo
) -> None:
    client, bucket = s3_bucket
    source = tmp_path / "source.bin"
    size = 2 * PART + 99
    digest = write_random(source, size, seed=13)
    killed = one_try(
        tmp_path, moto_server, bucket, openssh_server, source, kill_after=["CompleteMultipartUpload", 1]
    )
    assert killed is None
    assert object_sha256(client, bucket) == digest  # completed, but the manifest is still there

    result = one_try(tmp_path, moto_server, bucket, openssh_server, source)

    assert "error" not in result, result
    assert result["sha256"] == digest
    assert result["resumed_from"] == size
    assert result["bytes_transferred"] == 0
    assert_clean(client, bucket)


def test_two_concurrent_tries_exactly_one_publishes(
    tmp_path: Path,
    moto_server: MotoServer,
    s3_bucket: tuple[Any, str],
    sftp_server: ServerInfo,
    proxy: FaultProxy,
) -> None:
    client, bucket = s3_bucket
    source = tmp_path / "source.bin"
    digest = write_random(source, 3 * PART + 5, seed=14)
    proxy.set_rate(4 * MiB)  # the first try takes a few seconds
    first = start_try(tmp_path, moto_server, bucket, sftp_server, source, port=proxy.port)
    deadline = time.monotonic() + 60
    while "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix="_sftp_resume/"):
        assert time.monotonic() < deadline, "the first try never wrote its state"
        time.sleep(0.1)

    second = one_try(tmp_path, moto_server, bucket, sftp_server, source)
    winner = finish(first)

    assert second["error"] == "UploadBusy", second
    assert second["retriable"] is True
    assert f"pid {first.pid}" in second["message"]
    assert winner is not None
    assert winner["sha256"] == digest == object_sha256(client, bucket)
    assert_clean(client, bucket)


def test_a_lifecycle_abort_between_tries_restarts_from_zero_saying_why(
    tmp_path: Path, moto_server: MotoServer, s3_bucket: tuple[Any, str], openssh_server: ServerInfo
) -> None:
    client, bucket = s3_bucket
    source = tmp_path / "source.bin"
    size = 4 * PART
    digest = write_random(source, size, seed=15)
    assert (
        one_try(tmp_path, moto_server, bucket, openssh_server, source, kill_after=["UploadPart", 2]) is None
    )
    for upload in client.list_multipart_uploads(Bucket=bucket)["Uploads"]:  # what the lifecycle rule does
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])

    result = one_try(tmp_path, moto_server, bucket, openssh_server, source)

    assert result["resumed_from"] == 0
    assert "no longer exists" in result["restart_reason"]
    assert result["sha256"] == digest == object_sha256(client, bucket)
    assert_clean(client, bucket)


def test_a_source_rewritten_between_tries_restarts_and_aborts_the_stale_upload(
    tmp_path: Path, moto_server: MotoServer, s3_bucket: tuple[Any, str], openssh_server: ServerInfo
) -> None:
    client, bucket = s3_bucket
    source = tmp_path / "source.bin"
    size = 4 * PART
    write_random(source, size, seed=16)
    assert (
        one_try(tmp_path, moto_server, bucket, openssh_server, source, kill_after=["UploadPart", 2]) is None
    )
    stale = {u["UploadId"] for u in client.list_multipart_uploads(Bucket=bucket)["Uploads"]}
    before = source.stat()
    digest = write_random(source, size, seed=17)  # same size, mtime restored: only the bytes say so
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))

    result = one_try(tmp_path, moto_server, bucket, openssh_server, source)

    assert result["resumed_from"] == 0
    assert result["restart_reason"]
    assert result["sha256"] == digest == object_sha256(client, bucket)
    assert stale
    assert_clean(client, bucket)


def test_an_existing_object_stays_until_the_new_one_is_complete(
    tmp_path: Path, moto_server: MotoServer, s3_bucket: tuple[Any, str], openssh_server: ServerInfo
) -> None:
    client, bucket = s3_bucket
    client.put_object(Bucket=bucket, Key=KEY, Body=b"the old object")
    source = tmp_path / "source.bin"
    digest = write_random(source, 3 * PART, seed=18)
    assert (
        one_try(tmp_path, moto_server, bucket, openssh_server, source, kill_after=["UploadPart", 2]) is None
    )
    assert client.get_object(Bucket=bucket, Key=KEY)["Body"].read() == b"the old object"

    result = one_try(tmp_path, moto_server, bucket, openssh_server, source)

    assert result["sha256"] == digest == object_sha256(client, bucket)
    assert_clean(client, bucket)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 4 GiB through sshd and moto: about 2 minutes alone, more under load
def test_a_sparse_source_over_4_gib_copies_exactly(
    tmp_path: Path, moto_server: MotoServer, s3_bucket: tuple[Any, str], openssh_server: ServerInfo
) -> None:
    client, bucket = s3_bucket
    source = tmp_path / "sparse.bin"
    size = 2**32 + 3 * MiB + 17
    with open(source, "wb") as handle:
        handle.truncate(size)
        handle.seek(size - 5)
        handle.write(b"tail!")
    expected = hashlib.sha256()
    with open(source, "rb") as handle:
        while chunk := handle.read(16 * MiB):
            expected.update(chunk)

    result = one_try(tmp_path, moto_server, bucket, openssh_server, source, part_size=None, timeout=1800)

    assert "error" not in result, result
    assert result["size"] == size
    assert result["sha256"] == expected.hexdigest()
    head = client.head_object(Bucket=bucket, Key=KEY)
    assert head["ContentLength"] == size
    assert_clean(client, bucket)


def test_two_concurrent_tries_on_a_single_put_file_exactly_one_publishes(
    tmp_path: Path,
    moto_server: MotoServer,
    s3_bucket: tuple[Any, str],
    openssh_server: ServerInfo,
) -> None:
    client, bucket = s3_bucket
    source = tmp_path / "small.bin"
    digest = write_random(source, 3 * MiB, seed=21)  # under one part: one PutObject
    slow = FaultProxy(openssh_server.port)
    try:
        slow.set_rate(1 * MiB)  # the first try takes a few seconds
        first = start_try(tmp_path, moto_server, bucket, openssh_server, source, port=slow.port)
        wait_for_state(client, bucket)

        second = one_try(tmp_path, moto_server, bucket, openssh_server, source)
        winner = finish(first)
    finally:
        slow.stop()

    assert second["error"] == "UploadBusy", second
    assert second["retriable"] is True
    assert f"pid {first.pid}" in second["message"]
    assert winner is not None
    assert "error" not in winner, winner
    assert winner["parts"] == 1
    assert winner["sha256"] == digest == object_sha256(client, bucket)
    assert_clean(client, bucket)


def test_a_failed_single_put_try_releases_its_claim_for_the_next_try(
    tmp_path: Path,
    moto_server: MotoServer,
    s3_bucket: tuple[Any, str],
    openssh_server: ServerInfo,
) -> None:
    client, bucket = s3_bucket
    source = tmp_path / "small.bin"
    digest = write_random(source, 3 * MiB, seed=22)
    cut = FaultProxy(openssh_server.port)
    try:
        cut.cut_after(1 * MiB)
        first = one_try(tmp_path, moto_server, bucket, openssh_server, source, port=cut.port)
    finally:
        cut.stop()
    assert first["error"] == "TransferInterrupted", first
    claim = json.loads(client.get_object(Bucket=bucket, Key=f"_sftp_resume/{KEY}.json")["Body"].read())
    assert claim["upload_id"] == ""  # a single PutObject's claim: no multipart upload behind it
    assert claim["owner"]["heartbeat"] == 0  # released: the next try need not wait for the lease
    assert "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix=KEY)

    second = one_try(tmp_path, moto_server, bucket, openssh_server, source)

    assert "error" not in second, second
    assert second["sha256"] == digest == object_sha256(client, bucket)
    assert_clean(client, bucket)


def test_kill_9_right_after_the_single_put_then_the_retry_reports_success(
    tmp_path: Path, moto_server: MotoServer, s3_bucket: tuple[Any, str], openssh_server: ServerInfo
) -> None:
    client, bucket = s3_bucket
    source = tmp_path / "small.bin"
    size = 2 * MiB + 3
    digest = write_random(source, size, seed=23)
    # PutObject 1 claims the key, 2 records the sha256 (and proves the claim), 3 is the object itself
    killed = one_try(tmp_path, moto_server, bucket, openssh_server, source, kill_after=["PutObject", 3])
    assert killed is None
    assert object_sha256(client, bucket) == digest  # put, but the claim is still there
    assert "Contents" in client.list_objects_v2(Bucket=bucket, Prefix="_sftp_resume/")

    result = one_try(tmp_path, moto_server, bucket, openssh_server, source)

    assert "error" not in result, result
    assert result["sha256"] == digest
    assert result["resumed_from"] == size
    assert result["bytes_transferred"] == 0
    assert result["parts"] == 1
    assert_clean(client, bucket)


def wait_for_state(client: Any, bucket: str) -> None:
    """Wait until a try has written its claim under the state prefix."""
    deadline = time.monotonic() + 60
    while "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix="_sftp_resume/"):
        assert time.monotonic() < deadline, "the first try never wrote its state"
        time.sleep(0.05)


RECORD = f"_sftp_resume/{KEY}.post-action"


def bucket_keys(client: Any, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_a_lost_reply_to_the_move_then_a_fresh_retry_reports_it_already_moved(
    tmp_path: Path, moto_server: MotoServer, s3_bucket: tuple[Any, str], openssh_server: ServerInfo
) -> None:
    client, bucket = s3_bucket
    source, archive = tmp_path / "outgoing" / "data.bin", tmp_path / "archive"
    source.parent.mkdir()
    size = 2 * PART + 5
    digest = write_random(source, size, seed=31)
    move = {"post_action": "move", "archive_dir": str(archive)}
    killed = one_try(tmp_path, moto_server, bucket, openssh_server, source, lost_reply="rename", **move)
    assert killed is None
    assert not source.exists()  # the server moved it; the try never read the reply
    assert (archive / "data.bin").stat().st_size == size
    assert bucket_keys(client, bucket) == sorted([KEY, RECORD])

    result = one_try(tmp_path, moto_server, bucket, openssh_server, source, **move)

    assert "error" not in result, result
    assert result["post_action"] == f"already moved to {archive}/data.bin"
    assert result["skipped"] is True
    assert (result["size"], result["resumed_from"], result["bytes_transferred"]) == (size, size, 0)
    assert result["parts"] == 3
    assert result["sha256"] == digest == object_sha256(client, bucket)
    assert result["etag"] == client.head_object(Bucket=bucket, Key=KEY)["ETag"].strip('"')
    assert_clean(client, bucket)  # nothing but the object: the record is gone


def test_a_lost_reply_to_the_delete_then_a_fresh_retry_reports_it_already_deleted(
    tmp_path: Path, moto_server: MotoServer, s3_bucket: tuple[Any, str], openssh_server: ServerInfo
) -> None:
    client, bucket = s3_bucket
    source = tmp_path / "data.bin"
    digest = write_random(source, 1000, seed=32)
    killed = one_try(
        tmp_path, moto_server, bucket, openssh_server, source, post_action="delete", lost_reply="remove"
    )
    assert killed is None
    assert not source.exists()

    result = one_try(tmp_path, moto_server, bucket, openssh_server, source, post_action="delete")

    assert "error" not in result, result
    assert result["post_action"] == "already deleted"
    assert result["sha256"] == digest == object_sha256(client, bucket)
    assert_clean(client, bucket)


def test_a_missing_source_without_the_record_still_fails_not_found(
    tmp_path: Path, moto_server: MotoServer, s3_bucket: tuple[Any, str], openssh_server: ServerInfo
) -> None:
    client, bucket = s3_bucket
    source = tmp_path / "data.bin"
    write_random(source, 1000, seed=33)
    assert "error" not in one_try(tmp_path, moto_server, bucket, openssh_server, source)
    source.unlink()  # gone, but no try of ours did it: the object alone proves nothing

    result = one_try(tmp_path, moto_server, bucket, openssh_server, source, post_action="delete")

    assert result["error"] == "RemoteFileNotFound", result
    assert bucket_keys(client, bucket) == [KEY]


def test_a_kill_before_the_move_is_sent_then_the_retry_skips_the_copy_and_moves(
    tmp_path: Path, moto_server: MotoServer, s3_bucket: tuple[Any, str], openssh_server: ServerInfo
) -> None:
    client, bucket = s3_bucket
    source, archive = tmp_path / "data.bin", tmp_path / "archive"
    digest = write_random(source, 1000, seed=34)
    move = {"post_action": "move", "archive_dir": str(archive)}
    # PutObject 1-3: the claim, the claim with the sha256, the object; 4: the post-action record
    assert (
        one_try(tmp_path, moto_server, bucket, openssh_server, source, kill_after=["PutObject", 4], **move)
        is None
    )
    assert source.exists()
    assert RECORD in bucket_keys(client, bucket)

    result = one_try(tmp_path, moto_server, bucket, openssh_server, source, **move)

    assert "error" not in result, result
    assert result["skipped"] is True
    assert result["post_action"] == f"moved to {archive}/data.bin"
    assert not source.exists()
    assert (archive / "data.bin").stat().st_size == 1000
    assert object_sha256(client, bucket) == digest
    assert_clean(client, bucket)


def test_post_action_delete_after_a_copy_leaves_only_the_object(
    tmp_path: Path, moto_server: MotoServer, s3_bucket: tuple[Any, str], openssh_server: ServerInfo
) -> None:
    client, bucket = s3_bucket
    source = tmp_path / "data.bin"
    digest = write_random(source, PART + 1, seed=35)

    result = one_try(tmp_path, moto_server, bucket, openssh_server, source, post_action="delete")

    assert result["post_action"] == "deleted"
    assert not source.exists()
    assert result["sha256"] == digest == object_sha256(client, bucket)
    assert_clean(client, bucket)
