"""How many connections a download uses when ``max_connections`` is not set."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from airflow_provider_sftp_resume.core.io import tuning
from airflow_provider_sftp_resume.core.io.tuning import (
    AUTO_SPLIT_MAX_RTT,
    AUTO_SPLIT_MIN_CPUS,
    AUTO_SPLIT_MIN_SIZE,
    automatic_connections,
    choose_connections,
    usable_cpus,
)

if TYPE_CHECKING:
    from pathlib import Path

FAST = AUTO_SPLIT_MAX_RTT / 10
LARGE = AUTO_SPLIT_MIN_SIZE


def test_a_large_file_on_a_fast_path_with_cores_to_spare_gets_two() -> None:
    assert automatic_connections(LARGE, FAST, cpus=AUTO_SPLIT_MIN_CPUS) == 2


@pytest.mark.parametrize(
    ("size", "rtt", "cpus", "why"),
    [
        (LARGE - 1, FAST, 4, "too small to pay for a worker process"),
        (LARGE, AUTO_SPLIT_MAX_RTT, 4, "a long link: one connection with more in flight is as fast"),
        (LARGE, float("inf"), 4, "round trip never measured"),
        (LARGE, FAST, 2, "two cores: a second connection and its sshd session compete with the first"),
        (LARGE, FAST, 3.5, "a CPU limit under four cores"),
    ],
)
def test_one_connection_otherwise(size: int, rtt: float, cpus: float, why: str) -> None:
    assert automatic_connections(size, rtt, cpus) == 1, why


def test_what_was_asked_wins_and_a_sequential_destination_gets_one() -> None:
    assert choose_connections(3, 1, float("inf"), random_access=True, workers=False) == 3
    assert choose_connections(1, LARGE, FAST, random_access=True, workers=True) == 1
    assert choose_connections(None, LARGE, FAST, random_access=False, workers=True) == 1
    assert choose_connections(4, LARGE, FAST, random_access=False, workers=True) == 1


def test_no_automatic_split_without_worker_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process extra streams share this process's CPU: never chosen, whatever the machine."""
    monkeypatch.setattr(tuning, "usable_cpus", lambda: 8.0)
    assert choose_connections(None, LARGE, FAST, random_access=True, workers=False) == 1
    assert choose_connections(None, LARGE, FAST, random_access=True, workers=True) == 2


@pytest.mark.parametrize(("cpu_max", "cap"), [("100000 100000\n", 1.0), ("150000 100000\n", 1.5)])
def test_a_cgroup_cpu_quota_caps_the_usable_cpus(
    cpu_max: str, cap: float, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = tmp_path / "cpu.max"
    limit.write_text(cpu_max)
    monkeypatch.setattr(tuning, "CGROUP_CPU_MAX", limit)
    assert usable_cpus() == min(cap, usable_cpus_without_quota(tmp_path, monkeypatch))


def test_no_quota_or_no_cgroup_file_leaves_the_affinity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = tmp_path / "cpu.max"
    limit.write_text("max 100000\n")
    monkeypatch.setattr(tuning, "CGROUP_CPU_MAX", limit)
    with_max = usable_cpus()
    monkeypatch.setattr(tuning, "CGROUP_CPU_MAX", tmp_path / "absent")
    assert with_max == usable_cpus() == float(len(os.sched_getaffinity(0)))


def usable_cpus_without_quota(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> float:
    with monkeypatch.context() as patch:
        patch.setattr(tuning, "CGROUP_CPU_MAX", tmp_path / "absent")
        return usable_cpus()
