"""The layers of docs/developer/architecture.md hold: the import-linter contract in pyproject.toml passes, fails on a
deliberately added upward import (so it can fail), and no modules of rnnlm import each other in a circle."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
LINT = [str(Path(sys.executable).parent / "lint-imports")]  # import-linter, from the test extra


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*LINT, "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                          timeout=300)


def test_the_layer_contract_holds():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract_naming_its_line(tmp_path):
    shutil.copytree(ROOT / "rnnlm", tmp_path / "rnnlm", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    errors = tmp_path / "rnnlm" / "core" / "errors.py"
    errors.write_text(errors.read_text() + "\nfrom rnnlm.training import trainer  # upward: core must not know training\n")
    result = _lint(tmp_path)
    assert result.returncode == 1, result.stdout
    assert "rnnlm.core is not allowed to import rnnlm.training" in result.stdout
    assert "rnnlm.core.errors -> rnnlm.training.trainer" in result.stdout


def _cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), the circles of the import graph."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.find_modules_directly_imported_by(node) & modules:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_through_others():
    sys.setrecursionlimit(10_000)
    graph = grimp.build_graph("rnnlm")
    assert _cycles(graph, set(graph.modules)) == []
