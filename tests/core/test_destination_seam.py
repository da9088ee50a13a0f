"""The destination seam and the one checkpointer: the guarantees, against real files and real signals."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

import pytest

from airflow_provider_sftp_resume.core.destinations.local import LocalPart
from airflow_provider_sftp_resume.core.errors import LocalDiskFull
from airflow_provider_sftp_resume.core.logs import engine_logger
from airflow_provider_sftp_resume.core.resume.checkpoint import Checkpointer
from airflow_provider_sftp_resume.core.resume.localfiles import LocalPaths
from airflow_provider_sftp_resume.core.resume.state import RemoteFingerprint, ResumeState, UnusableState
from airflow_provider_sftp_resume.core.resume.upload_state import LocalIdentity, UploadState

if TYPE_CHECKING:
    from pathlib import Path

SIZE = 4 * 1024 * 1024
log = engine_logger(__name__)

CHILD = textwrap.dedent(
    """
    import asyncio, os, sys
    from airflow_provider_sftp_resume.core.destinations.local import LocalPart
    from airflow_provider_sftp_resume.core.logs import engine_logger
    from airflow_provider_sftp_resume.core.resume.localfiles import LocalPaths
    from airflow_provider_sftp_resume.core.resume.state import RemoteFingerprint, ResumeState

    async def main() -> None:
        size, durable_at = int(sys.argv[2]), int(sys.argv[3])
        part = LocalPart(LocalPaths.for_target(sys.argv[1]), engine_logger("child"))
        fresh = ResumeState.fresh(RemoteFingerprint("/remote.bin", size, 1700000000, server="s"))
        await part.restart(fresh)
        await part.write(0, b"a" * durable_at)
        await part.make_durable(fresh.with_progress(0, durable_at))
        await part.write(durable_at, b"b" * (size - durable_at))  # written, never made durable
        print("durable", flush=True)
        await asyncio.sleep(60)  # killed here

    asyncio.run(main())
    """
)


def test_local_destination_state_survives_kill_9_of_its_writer(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    durable_at = 3 * 1024 * 1024 + 17
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(target), str(SIZE), str(durable_at)],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "durable"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    async def reload() -> tuple[ResumeState | None, str | None, str | None]:
        part = LocalPart(LocalPaths.for_target(target), log)
        try:
            state = await part.load_state()
            return state, part.kept_digest(durable_at - 10, durable_at), part.kept_digest(0, SIZE + 1)
        finally:
            await part.close()

    state, digest, beyond = asyncio.run(reload())
    assert state is not None
    assert state.durable_bytes == durable_at
    assert state.remote.server == "s"
    assert digest == hashlib.sha256(b"a" * 10).hexdigest()
    assert beyond is None, "a range past the kept bytes has no digest: the overlap check must fail"
    assert not target.exists(), "nothing is published before publish()"


def test_local_destination_refuses_a_claim_its_part_cannot_back(tmp_path: Path) -> None:
    paths = LocalPaths.for_target(tmp_path / "out.bin")
    paths.save(ResumeState.fresh(RemoteFingerprint("/r", 100, 1)).with_progress(0, 60))
    paths.part.write_bytes(b"x" * 10)

    async def load() -> None:
        part = LocalPart(paths, log)
        try:
            await part.load_state()
        finally:
            await part.close()

    with pytest.raises(UnusableState, match="shorter than its resume state"):
        asyncio.run(load())
    paths.sidecar.write_text("{not json")
    with pytest.raises(UnusableState, match="unusable"):
        asyncio.run(load())


def test_local_destination_publishes_atomically_and_discard_keeps_the_target(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    paths = LocalPaths.for_target(target)

    async def fill_and(publish: bool) -> None:
        part = LocalPart(paths, log)
        try:
            fresh = ResumeState.fresh(RemoteFingerprint("/r", 5, 1_600_000_000))
            await part.restart(fresh)
            await part.write(0, b"new!!")
            await part.make_durable(fresh.with_progress(0, 5))
            assert target.read_bytes() == b"old", "the target is untouched until publish"
            await (part.publish(1_600_000_000) if publish else part.discard())
        finally:
            await part.close()

    asyncio.run(fill_and(publish=False))
    assert target.read_bytes() == b"old"
    assert not paths.part.exists()
    assert not paths.sidecar.exists()
    asyncio.run(fill_and(publish=True))
    assert target.read_bytes() == b"new!!"
    assert int(target.stat().st_mtime) == 1_600_000_000
    assert not paths.part.exists()
    assert not paths.sidecar.exists()


def offset_of(state: object) -> int:
    if isinstance(state, UploadState):
        return state.acknowledged
    assert isinstance(state, ResumeState)
    return state.durable_bytes


def download_state(done: int) -> ResumeState:
    return ResumeState.fresh(RemoteFingerprint("/r", 1000, 1)).with_progress(0, done)


def upload_state(done: int) -> UploadState:
    return UploadState("s", "/r.part", LocalIdentity(1000, 1, 1), done)


@pytest.mark.parametrize("make", [download_state, upload_state], ids=["download", "upload"])
def test_checkpointer_records_what_was_written_before_the_sync_one_at_a_time(make: object) -> None:
    assert callable(make)
    recorded: list[object] = []
    running = 0

    async def scenario() -> Checkpointer[object]:
        async def make_durable(state: object) -> object:
            nonlocal running
            running += 1
            try:
                assert running == 1, "two checkpoints at once"
                await asyncio.sleep(0.03)  # the sync takes a while; writes go on meanwhile
            finally:
                running -= 1  # also when flush() cancels a background checkpoint
            recorded.append(state)
            return state

        checkpointer: Checkpointer[object] = Checkpointer(make(0), make_durable, interval=0.01)
        checkpointer.start()
        for done in range(1, 40):
            checkpointer.advance(make(done))
            await asyncio.sleep(0.005)
        durable = await checkpointer.flush()
        assert durable == make(39)
        assert await checkpointer.flush() == make(39)  # nothing new: no checkpoint
        return checkpointer

    checkpointer = asyncio.run(scenario())
    assert recorded[-1] == make(39)
    assert 2 <= len(recorded) < 39, "checkpoints at a bounded rate, not per write"
    assert checkpointer.count == len(recorded)
    offsets = [offset_of(state) for state in recorded]
    assert offsets == sorted(offsets), "an older state never lands after a newer one"


@pytest.mark.parametrize("make", [download_state, upload_state], ids=["download", "upload"])
def test_checkpointer_raises_a_failed_background_checkpoint_on_the_data_path(make: object) -> None:
    assert callable(make)

    async def scenario() -> None:
        async def make_durable(state: object) -> object:
            raise LocalDiskFull("no room")

        checkpointer: Checkpointer[object] = Checkpointer(make(0), make_durable, interval=0.01)
        checkpointer.start()
        checkpointer.advance(make(1))
        await asyncio.sleep(0.05)
        try:
            checkpointer.advance(make(2))
        finally:
            await checkpointer.stop()  # stop() itself swallows the failure: it was reported
        assert checkpointer.durable == make(0)

    with pytest.raises(LocalDiskFull):
        asyncio.run(scenario())
