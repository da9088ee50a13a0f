"""
The layers of ``core/``: every import points down (or sideways within a layer), never up, no circles.

Layers, bottom to top: the base modules directly in ``core/`` (errors, logs, progress, options,
runner, threads), ``remote``, ``resume``, ``checksums`` (the source's own checksums: above the
remote side it asks, below the transfers that use it), ``destinations`` (where a download's bytes
go: below ``io`` and ``transfers``, which write into it), ``io``, ``transfers``, ``watch``.
``core/__init__.py`` is the public facade and may import from all of them. Imports under
``if TYPE_CHECKING:`` count too: a type that lives above is a design that points up.

Small pieces: no module of ``core/`` over :data:`MAX_MODULE_LINES` lines, no function or method over
:data:`MAX_FUNCTION_LINES` lines (from its ``def`` to the end of its body).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import airflow_provider_sftp_resume.core as core_package

CORE = Path(core_package.__file__).parent
PREFIX = "airflow_provider_sftp_resume.core"
LAYERS = ("", "remote", "resume", "checksums", "destinations", "io", "transfers", "watch")
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60
#: Modules still over a limit, with the issue that splits them. Nothing new goes in.
PENDING_SPLIT: frozenset[str] = frozenset()


def module_name(path: Path) -> str:
    relative = path.relative_to(CORE).with_suffix("")
    parts = [part for part in relative.parts if part != "__init__"]
    return ".".join([PREFIX, *parts])


def layer_of(module: str) -> int:
    rest = module.removeprefix(PREFIX).lstrip(".").split(".")
    return LAYERS.index(rest[0]) if len(rest) > 1 and rest[0] in LAYERS else 0


def core_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(CORE.rglob("*.py"))}


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PREFIX):
            found.add(node.module)
            for alias in node.names:  # from ...core.remote import sftp
                if f"{node.module}.{alias.name}" in core_modules():
                    found.add(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith(PREFIX))
    return found


def test_every_subpackage_is_a_known_layer() -> None:
    folders = {path.name for path in CORE.iterdir() if path.is_dir() and path.name != "__pycache__"}
    assert folders == set(LAYERS) - {""}


@pytest.mark.parametrize("module", sorted(core_modules()))
def test_imports_point_down(module: str) -> None:
    path = core_modules()[module]
    if path.name == "__init__.py" and path.parent == CORE:
        return  # the public facade
    upward = sorted(
        target
        for target in imports_of(path)
        if target in core_modules() and layer_of(target) > layer_of(module)
    )
    assert upward == [], f"{module} imports from a higher layer: {upward}"


def test_no_import_circles() -> None:
    modules = core_modules()
    graph = {
        name: {target for target in imports_of(path) if target in modules and target != PREFIX}
        for name, path in modules.items()
        if name != PREFIX
    }
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        assert name not in visiting, "import circle: " + " -> ".join([*visiting, name])
        visiting.append(name)
        for target in sorted(graph.get(name, ())):
            visit(target)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def _too_long(path: Path) -> list[str]:
    """What in ``path`` is over a limit: the module itself, and functions/methods as ``name (N lines)``."""
    text = path.read_text()
    found = []
    if (lines := len(text.splitlines())) > MAX_MODULE_LINES:
        found.append(f"the module ({lines} lines)")
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            if (lines := node.end_lineno - node.lineno + 1) > MAX_FUNCTION_LINES:
                found.append(f"{node.name} ({lines} lines)")
    return found


@pytest.mark.parametrize("module", sorted(set(core_modules()) - PENDING_SPLIT))
def test_modules_and_functions_are_small(module: str) -> None:
    too_long = _too_long(core_modules()[module])
    assert too_long == [], (
        f"{module}: over {MAX_MODULE_LINES} lines per module or {MAX_FUNCTION_LINES} per function: "
        f"{', '.join(too_long)}; split it by job"
    )


def test_pending_split_lists_only_modules_still_over_a_limit() -> None:
    for module in sorted(PENDING_SPLIT):
        assert module in core_modules(), f"{module} no longer exists: remove it from PENDING_SPLIT"
        assert _too_long(core_modules()[module]), (
            f"{module} is within the limits now: remove it from PENDING_SPLIT"
        )


def test_every_public_name_resolves_from_the_facade() -> None:
    for name in core_package.__all__:
        assert getattr(core_package, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        _ = core_package.not_a_name  # type: ignore[attr-defined]


def test_a_segment_worker_process_imports_no_transfer_module() -> None:
    # The facade imports higher layers on first use, so a worker process (a CPU the transfer needs)
    # does not spend its start importing every transfer. A fresh interpreter, as the worker is.
    code = (
        "import sys; from airflow_provider_sftp_resume.core.io.worker_child import main; "
        f"print(sorted(m for m in sys.modules if m.startswith('{PREFIX}.transfers')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
