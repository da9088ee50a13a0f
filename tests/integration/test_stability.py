"""Waiting for a partner to finish writing: the core watch, the poke-mode sensor, the trigger."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_sftp_resume.core.watch.stability import (
    StabilityWatch,
    StableSpec,
    take_snapshot,
    wait_until_stable,
)
from tests.conftest import endpoint_for, session_factory

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.servers import ServerInfo


def grow(path: Path, steps: int, pause: float) -> threading.Thread:
    def run() -> None:
        with path.open("ab") as handle:
            for _ in range(steps):
                handle.write(b"x" * 10_000)
                handle.flush()
                time.sleep(pause)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_watch_needs_files_and_a_quiet_period() -> None:
    now = [0.0]
    watch = StabilityWatch(10, min_files=2, clock=lambda: now[0])
    assert not watch.observe({})
    assert not watch.observe({"a": (1, 1)})
    now[0] = 20
    assert not watch.observe({"a": (1, 1)}), "one file is fewer than min_files"
    assert not watch.observe({"a": (1, 1), "b": (2, 2)})
    now[0] = 29
    assert not watch.observe({"a": (1, 1), "b": (2, 2)})
    now[0] = 30
    assert watch.observe({"a": (1, 1), "b": (2, 2)})
    assert not watch.observe({"a": (1, 1), "b": (3, 2)}), "a change restarts the quiet period"


def test_wait_until_stable_returns_only_after_growth_stops(
    openssh_server: ServerInfo, tmp_path: Path
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "one.csv").write_bytes(b"a")
    growing = drop / "two.csv"
    growing.write_bytes(b"b")
    writer = grow(growing, steps=10, pause=0.15)
    opener = session_factory(endpoint_for(openssh_server))
    try:
        snapshot = asyncio.run(
            wait_until_stable(
                opener, StableSpec(f"{drop}/*.csv", min_files=2), quiet_period=1.0, poll_interval=0.1
            )
        )
    finally:
        writer.join()
    assert snapshot[str(growing)][0] == growing.stat().st_size == 1 + 10 * 10_000
    assert sorted(snapshot) == [str(drop / "one.csv"), str(growing)]


def test_snapshot_of_a_missing_file_is_empty(openssh_server: ServerInfo, tmp_path: Path) -> None:
    async def look() -> dict[str, tuple[int, int]]:
        async with session_factory(endpoint_for(openssh_server))() as fs:
            return await take_snapshot(fs, StableSpec(str(tmp_path / "not-yet.csv")))

    assert asyncio.run(look()) == {}


def test_poke_mode_sensor_and_reschedule_refusal(
    openssh_server: ServerInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_sftp_resume.sensors import SFTPFileStableSensor
    from tests.support.airflow_env import connection_json

    monkeypatch.setenv("AIRFLOW_CONN_SFTP_STABLE", connection_json(openssh_server))
    target = tmp_path / "f.csv"
    target.write_bytes(b"data")
    sensor = SFTPFileStableSensor(
        task_id="s", sftp_conn_id="sftp_stable", path=str(target), quiet_period=0.5, deferrable=False
    )
    context: Any = {}
    assert sensor.poke(context).is_done is False, "the first look cannot know the file is quiet"
    time.sleep(0.6)
    done = sensor.poke(context)
    assert done.is_done is True
    assert done.xcom_value == {str(target): [4, int(target.stat().st_mtime)]}
    with pytest.raises(ValueError, match="reschedule"):
        SFTPFileStableSensor(task_id="r", path="/x", mode="reschedule", deferrable=False)
    with pytest.raises(ValueError, match="min_files"):
        SFTPFileStableSensor(task_id="m", path="/x", min_files=0)


def test_trigger_serializes_and_reports_stable(
    openssh_server: ServerInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_sftp_resume.triggers import SFTPFileStableTrigger
    from tests.support.airflow_env import connection_json

    monkeypatch.setenv("AIRFLOW_CONN_SFTP_STABLE", connection_json(openssh_server))
    target = tmp_path / "g.csv"
    target.write_bytes(b"12345")
    trigger = SFTPFileStableTrigger("sftp_stable", str(target), quiet_period=0.3, poll_interval=0.1)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_sftp_resume.triggers.stable.SFTPFileStableTrigger"
    rebuilt = SFTPFileStableTrigger(**kwargs)

    async def first_event() -> Any:
        async for event in rebuilt.run():
            return event.payload
        return None

    assert asyncio.run(first_event()) == {
        "status": "stable",
        "files": {str(target): [5, int(target.stat().st_mtime)]},
    }
