"""The wheel holds the package, ``py.typed`` and the provider entry point, and no tests."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from typing import TYPE_CHECKING

import pytest

from tests.conftest import REPO_ROOT
from tests.support.wheel_contents import PACKAGE, wheel_problems

if TYPE_CHECKING:
    from pathlib import Path


def build_wheel(out: Path) -> Path:
    """Build the wheel from a copy of the package's sources (nothing is written into the checkout)."""
    if importlib.util.find_spec("build") is None:
        if os.environ.get("CI"):
            pytest.fail("python -m build is missing on CI: scripts/bootstrap.sh installs the 'package' extra")
        pytest.skip("python -m build is not installed (pip install -e '.[package]')")
    source = out / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, source / name)
    shutil.copytree(
        REPO_ROOT / PACKAGE, source / PACKAGE, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(out / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    (wheel,) = (out / "dist").glob("*.whl")
    return wheel


def test_the_wheel_holds_the_package_and_its_metadata_and_no_tests(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    assert wheel_problems(wheel, source_package=REPO_ROOT / PACKAGE) == []
    names = zipfile.ZipFile(wheel).namelist()
    assert f"{PACKAGE}/py.typed" in names
    assert not [n for n in names if n.startswith(("tests/", "example_dags/", "benchmarks/", "scripts/"))]


def test_the_check_names_what_a_bad_wheel_lacks(tmp_path: Path) -> None:
    bad = tmp_path / "bad-0.1-py3-none-any.whl"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr(f"{PACKAGE}/__init__.py", "")
        archive.writestr("tests/test_x.py", "")
        archive.writestr("bad-0.1.dist-info/entry_points.txt", "[console_scripts]\nx = y:z\n")
    problems = wheel_problems(bad)
    assert f"missing {PACKAGE}/py.typed" in problems
    assert any("entry point [apache_airflow_provider]" in p for p in problems)
    assert "test code in the wheel: tests/test_x.py" in problems
    assert any("top-level entries other than the package: ['tests']" in p for p in problems)
