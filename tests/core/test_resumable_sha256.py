"""The resumable SHA-256: equal to hashlib's, saved at 64-byte boundaries, continued in another process."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import time

import pytest

from airflow_provider_sftp_resume.core.resume.resumable_sha256 import ResumableSha256, Sha256State
from airflow_provider_sftp_resume.core.resume.state import UnusableState

MiB = 1024 * 1024
BACKENDS = ["libcrypto", "python"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("size", [0, 1, 55, 56, 63, 64, 65, 127, 128, 1000])
def test_digest_equals_hashlib(backend: str, size: int) -> None:
    data = random.Random(size).randbytes(size)
    digest = ResumableSha256(backend=backend)
    digest.update(data)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert digest.length == size


def test_digest_of_5_mib_plus_1_on_libcrypto() -> None:
    data = os.urandom(5 * MiB + 1)
    digest = ResumableSha256(backend="libcrypto")
    digest.update(data)
    assert digest.backend == "libcrypto"
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()


def test_the_pure_python_fallback_over_a_block_boundary_state() -> None:
    data = os.urandom(64 * 40 + 17)
    first = ResumableSha256(backend="python")
    first.update(data[:640])
    second = ResumableSha256(first.state(), backend="python")
    second.update(data[640:])
    assert second.hexdigest() == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("seed", range(6))
def test_random_splits_saved_and_restored_across_backends(seed: int) -> None:
    rng = random.Random(seed)
    data = rng.randbytes(rng.randrange(1, 300_000))
    cuts = sorted(rng.randrange(0, len(data) // 64 + 1) * 64 for _ in range(3))
    digest = ResumableSha256(backend=rng.choice(BACKENDS))
    done = 0
    for cut in cuts:
        digest.update(data[done:cut])
        done = cut
        state = Sha256State.from_json(json.loads(json.dumps(digest.state().to_json())))
        digest = ResumableSha256(state, backend=rng.choice(BACKENDS) if len(data) < 50_000 else "libcrypto")
    digest.update(data[done:])
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()


def test_hexdigest_does_not_end_the_hash() -> None:
    digest = ResumableSha256()
    digest.update(b"a" * 64)
    assert digest.hexdigest() == hashlib.sha256(b"a" * 64).hexdigest()
    digest.update(b"b")
    assert digest.hexdigest() == hashlib.sha256(b"a" * 64 + b"b").hexdigest()


def test_state_only_at_a_64_byte_boundary() -> None:
    digest = ResumableSha256()
    digest.update(b"x" * 65)
    with pytest.raises(ValueError, match="multiple of 64"):
        digest.state()


CHILD = """
import hashlib, json, sys
from airflow_provider_sftp_resume.core.resume.resumable_sha256 import ResumableSha256, Sha256State
state = Sha256State.from_json(json.loads(sys.argv[1]))
digest = ResumableSha256(state)
digest.update(sys.stdin.buffer.read())
print(digest.hexdigest())
"""


def test_continued_in_another_process_without_the_first_bytes() -> None:
    data = os.urandom(3 * MiB + 123)
    cut = 2 * MiB
    first = ResumableSha256()
    first.update(data[:cut])
    saved = json.dumps(first.state().to_json())
    child = subprocess.run(
        [sys.executable, "-c", CHILD, saved],
        input=data[cut:],
        capture_output=True,
        check=True,
        env=os.environ,
    )
    assert child.stdout.decode().strip() == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    "obj",
    [
        None,
        [],
        {"h": "00" * 32},
        {"h": "zz" * 32, "length": 0},
        {"h": "00" * 31, "length": 0},
        {"h": "00" * 32, "length": 65},
        {"h": "00" * 32, "length": -64},
        {"h": "00" * 32, "length": True},
        {"h": "00" * 32, "length": 2**70},
    ],
)
def test_a_bad_saved_state_is_unusable_never_a_crash(obj: object) -> None:
    with pytest.raises(UnusableState):
        Sha256State.from_json(obj)


def test_speed_of_libcrypto_against_hashlib(capsys: pytest.CaptureFixture[str]) -> None:
    """Prints MB/s (a measurement, not a timed assertion); asserts only that both are correct."""
    data = os.urandom(32 * MiB)
    start = time.perf_counter()
    expected = hashlib.sha256(data).hexdigest()
    hashlib_seconds = time.perf_counter() - start
    digest = ResumableSha256(backend="libcrypto")
    start = time.perf_counter()
    for offset in range(0, len(data), MiB):
        digest.update(data[offset : offset + MiB])
    ours = digest.hexdigest()
    ours_seconds = time.perf_counter() - start
    assert ours == expected
    with capsys.disabled():
        print(
            f"\nsha256 MB/s: hashlib {32 / hashlib_seconds:.0f}, libcrypto via ctypes {32 / ours_seconds:.0f}"
        )
