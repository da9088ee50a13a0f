"""Provider metadata: every hook, operator, sensor and trigger listed, and what Airflow's CLI shows."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import pkgutil
import re
import subprocess
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import airflow_provider_sftp_resume

PACKAGE = "airflow-provider-sftp-resume"
KINDS = ("hooks", "operators", "sensors", "triggers", "transfers")


def provider_info() -> dict[str, Any]:
    """The provider info, loaded through the entry point Airflow uses."""
    points = [
        ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("airflow_provider")
    ]
    assert len(points) == 1, points
    info: dict[str, Any] = points[0].load()()
    return info


def listed(info: dict[str, Any], kind: str) -> set[str]:
    if kind == "transfers":  # one module per source/target pair, as Airflow's schema has it
        return {group["python-module"] for group in info.get(kind, [])}
    return {module for group in info.get(kind, []) for module in group["python-modules"]}


def kind_of(cls: type) -> str | None:
    from airflow.providers.common.compat.sdk import BaseHook, BaseOperator, BaseSensorOperator
    from airflow.triggers.base import BaseTrigger

    if issubclass(cls, BaseSensorOperator):
        return "sensors"
    if issubclass(cls, BaseOperator):
        return "operators"
    if issubclass(cls, BaseHook):
        return "hooks"
    if issubclass(cls, BaseTrigger):
        return "triggers"
    return None


def shipped() -> dict[str, set[str]]:
    """Walk the package: kind -> modules defining at least one class of that kind."""
    found: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for module_info in pkgutil.walk_packages(
        airflow_provider_sftp_resume.__path__, prefix="airflow_provider_sftp_resume."
    ):
        module = importlib.import_module(module_info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            kind = kind_of(cls)
            if kind == "operators" and module.__name__.startswith("airflow_provider_sftp_resume.transfers."):
                kind = "transfers"
            if cls.__module__ == module.__name__ and kind is not None:
                found[kind].add(module.__name__)
    return found


def test_every_hook_operator_sensor_and_trigger_module_is_listed_under_its_kind() -> None:
    info = provider_info()
    found = shipped()
    assert "airflow_provider_sftp_resume.hooks.sftp" in found["hooks"]
    assert "airflow_provider_sftp_resume.operators.sftp" in found["operators"]
    for kind in KINDS:
        assert listed(info, kind) == found[kind], (
            f"get_provider_info()[{kind!r}] must list exactly the modules defining {kind}"
        )


def test_provider_info_registers_no_connection_type() -> None:
    """The hook reads the stock ``sftp`` connection; registering a type would hijack or duplicate it."""
    info = provider_info()
    assert "connection-types" not in info
    assert "hook-class-names" not in info


def airflow_cli(*args: str) -> Any:
    """Run ``airflow <args> -o json`` in a child process; return the parsed JSON."""
    done = subprocess.run(
        [sys.executable, "-m", "airflow", *args, "-o", "json"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=False,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # Airflow 2.11 may print log lines before the JSON on stdout
    start = next((i for i, line in enumerate(done.stdout.splitlines()) if line.startswith("[")), None)
    assert start is not None, done.stdout[-3000:]
    return json.loads("\n".join(done.stdout.splitlines()[start:]))


def test_airflow_providers_list_and_get_show_the_package_and_its_modules() -> None:
    providers = {row["package_name"]: row for row in airflow_cli("providers", "list")}
    assert PACKAGE in providers
    assert providers[PACKAGE]["version"] == airflow_provider_sftp_resume.__version__
    (full,) = airflow_cli("providers", "get", PACKAGE, "--full")
    for kind in KINDS:
        assert listed(full, kind) == listed(provider_info(), kind)
    assert "airflow_provider_sftp_resume.hooks.sftp" in listed(full, "hooks")


def test_airflow_providers_hooks_keeps_the_stock_sftp_connection_type() -> None:
    """
    ``airflow providers hooks`` has one row per connection type; ``sftp`` stays the stock hook's.

    Our hook has no row of its own by design (see ``get_provider_info``); the ``sftp`` row it
    relies on must be the stock provider's, untouched.
    """
    rows = airflow_cli("providers", "hooks")
    sftp = [row for row in rows if row["connection_type"] == "sftp"]
    assert len(sftp) == 1
    assert sftp[0]["class"] == "airflow.providers.sftp.hooks.sftp.SFTPHook"
    assert sftp[0]["package_name"] == "apache-airflow-providers-sftp"
    assert not [row for row in rows if row["package_name"] == PACKAGE]


def test_every_lower_bound_is_the_version_ci_tests_as_oldest() -> None:
    """pyproject's lower bounds equal scripts/oldest-constraints.txt, which CI installs in ./.venv-oldest."""
    root = Path(__file__).resolve().parents[2]
    declared = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    bounds: dict[str, str] = {}
    for requirement in declared:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9][0-9.]*)", requirement)
        assert match, f"{requirement!r} has no plain lower bound: CI could not test its oldest version"
        bounds[match[1].lower()] = match[2]
    pinned: dict[str, str] = {}
    for line in (root / "scripts" / "oldest-constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pinned[name.strip().lower()] = version.strip()
    assert bounds == pinned
