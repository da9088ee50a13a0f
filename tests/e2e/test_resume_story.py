"""scripts/plot_resume_story.py: a real cut-and-resumed demo run, told as a story and drawn."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests.conftest import REPO_ROOT

if TYPE_CHECKING:
    from pathlib import Path

MiB = 1024 * 1024
#: Large enough that each try lasts several progress intervals at the capped rate (12 MB/s).
SIZE_MIB = 16
SCRIPT = REPO_ROOT / "scripts" / "plot_resume_story.py"


def run_script(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False, timeout=300
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real demo run (sshd, fault proxy capped and cut once, Airflow retry); its parsed story."""
    tmp_path = tmp_path_factory.mktemp("story")
    story_path = tmp_path / "story.json"
    run_script(
        f"--size-mib={SIZE_MIB}",
        "--cut-at=0.4",
        "--rate-mb=12",
        "--progress-interval=0.1",
        f"--workdir={tmp_path / 'run'}",
        f"--story-json={story_path}",
    )
    return tmp_path


def test_story_of_a_real_interrupted_and_resumed_run(demo_run: Path) -> None:
    tmp_path = demo_run
    story = json.loads((tmp_path / "story.json").read_text())
    result = json.loads((tmp_path / "run" / "resume_story_result.json").read_text())
    assert story["size"] == result["size"] == SIZE_MIB * MiB
    first, last = story["tries"][0], story["tries"][-1]
    assert len(story["tries"]) == result["tries"] == 2
    # the cut: try 1 ends where the link dropped, with a durable checkpoint at or below it
    assert first["cut_at"] is not None
    assert 0 < first["durable"] <= first["cut_at"][1] < SIZE_MIB * MiB
    assert first["cut_at"][1] == pytest.approx(0.4 * SIZE_MIB * MiB, abs=1 * MiB)
    # the resume point: try 2 starts where try 1's checkpoint left off, after verifying it
    assert last["start_bytes"] == first["durable"] == story["resumed_from"] == result["resumed_from"]
    assert "overlap" in last["verified_by"]
    assert last["started"] > first["cut_at"][0]
    assert last["points"][-1][1] == SIZE_MIB * MiB
    for attempt in story["tries"]:
        times = [t for t, _ in attempt["points"]]
        offsets = [b for _, b in attempt["points"]]
        assert times == sorted(times)
        assert offsets == sorted(offsets)
        assert len(attempt["points"]) >= 3, "progress lines every 0.1 s must give several points per try"


def test_the_story_is_drawn(demo_run: Path, tmp_path: Path) -> None:
    pytest.importorskip(
        "matplotlib", reason="the docs extra draws the picture (scripts/bootstrap.sh installs it)"
    )
    picture = tmp_path / "story.png"
    run_script(
        f"--log={demo_run / 'run' / 'resume_story.log'}",
        f"--result={demo_run / 'run' / 'resume_story_result.json'}",
        f"--output={picture}",
    )
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert picture.stat().st_size > 20_000
