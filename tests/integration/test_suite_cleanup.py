"""The test suite cleans up after itself: a passing session leaves nothing in the temp dir."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

from tests.conftest import REPO_ROOT

if TYPE_CHECKING:
    from pathlib import Path

# Writes a file into tmp_path, uses the session-scoped client key (tmp_path_factory) and the
# private Airflow home, and starts a subprocess that imports tests.conftest as the e2e DAG runs do.
INNER_TEST = """
import os
import subprocess
import sys
from pathlib import Path


def test_writes_temp_files(tmp_path, client_key):
    (tmp_path / "big.bin").write_bytes(b"x" * (4 * 1024 * 1024))
    assert Path(os.environ["AIRFLOW_HOME"]).is_dir()
    assert client_key.private.exists()
    subprocess.run([sys.executable, "-c", "import tests.conftest"], check=True)
"""


def test_a_passing_session_leaves_no_temp_dirs(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    inner = tmp_path / "test_inner.py"
    inner.write_text(INNER_TEST)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SFTP_RESUME_TEST"))}
    env.update(TMPDIR=str(scratch), PYTHONPATH=str(REPO_ROOT))
    # The repository's pytest settings (-c) and its conftest as a plugin, for a test file outside it
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-c",
            str(REPO_ROOT / "pyproject.toml"),
            "-p",
            "tests.conftest",
            str(inner),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout
    left = sorted(str(p.relative_to(scratch)) for p in scratch.rglob("*"))
    # pytest keeps its per-user directory (pytest-of-<user>) but nothing in it
    assert all(p.startswith("pytest-of-") and "/" not in p for p in left), left
