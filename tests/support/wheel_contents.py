"""
What the built wheel must hold, checked by the test suite and by CI (``scripts/check_wheel.sh``).

``python -m tests.support.wheel_contents dist/*.whl`` prints each problem and exits 1 if there is one.
"""

from __future__ import annotations

import configparser
import sys
import zipfile
from pathlib import Path

PACKAGE = "airflow_provider_sftp_resume"
ENTRY_POINT_GROUP = "apache_airflow_provider"
ENTRY_POINT = f"{PACKAGE}.get_provider_info:get_provider_info"
#: modules a user imports (README); each must be in the wheel
REQUIRED = (
    f"{PACKAGE}/__init__.py",
    f"{PACKAGE}/py.typed",
    f"{PACKAGE}/get_provider_info.py",
    f"{PACKAGE}/hooks/sftp.py",
    f"{PACKAGE}/operators/sftp.py",
    f"{PACKAGE}/operators/directory.py",
    f"{PACKAGE}/operators/upload.py",
    f"{PACKAGE}/sensors/stable.py",
    f"{PACKAGE}/triggers/stable.py",
    f"{PACKAGE}/core/__init__.py",
)


def wheel_problems(wheel: Path, source_package: Path | None = None) -> list[str]:
    """
    Return what is wrong with ``wheel`` (empty when it is right).

    :param wheel: the ``.whl`` file
    :param source_package: the package directory of the checkout; when given, every ``.py`` file
        in it must be in the wheel too
    """
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        dist_info = {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")}
        entry_points = ""
        if len(dist_info) == 1:
            with archive.open(f"{next(iter(dist_info))}/entry_points.txt") as handle:
                entry_points = handle.read().decode()
    problems = [f"missing {name}" for name in REQUIRED if name not in names]
    if len(dist_info) != 1:
        problems.append(f"expected one .dist-info directory, found {sorted(dist_info)}")
    parser = configparser.ConfigParser()
    parser.read_string(entry_points)
    if parser.get(ENTRY_POINT_GROUP, "provider_info", fallback=None) != ENTRY_POINT:
        problems.append(f"entry point [{ENTRY_POINT_GROUP}] provider_info = {ENTRY_POINT} is missing")
    top_level = {n.split("/", 1)[0] for n in names} - dist_info
    if top_level != {PACKAGE}:
        problems.append(f"top-level entries other than the package: {sorted(top_level - {PACKAGE})}")
    problems += [f"test code in the wheel: {n}" for n in sorted(names) if "/tests/" in f"/{n}"]
    if source_package is not None:
        for path in sorted(source_package.rglob("*.py")):
            name = f"{PACKAGE}/{path.relative_to(source_package).as_posix()}"
            if "__pycache__" not in name and name not in names:
                problems.append(f"missing {name} (in the checkout, not in the wheel)")
    return problems


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m tests.support.wheel_contents WHEEL...", file=sys.stderr)
        return 2
    status = 0
    for wheel in map(Path, argv):
        problems = wheel_problems(wheel)
        for problem in problems:
            print(f"{wheel.name}: {problem}", file=sys.stderr)
        if problems:
            status = 1
        else:
            print(f"{wheel.name}: the package, py.typed and the provider entry point; no tests")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
