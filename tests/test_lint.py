"""The lint gate (issue 16 §4): `ruff check`, `ruff format --check` and `mypy --strict`
on kez_core, run by the README's test command like every other test.

The tools come from the dev dependency group and run as `sys.executable -m ...`, so
the versions are the lock file's, not whatever is on PATH. Their configuration is
the root pyproject.toml's `[tool.ruff]` and `[tool.mypy]`; each runs from the
repository root, where that file is.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec(tool) is None:
        pytest.skip(f"{tool} is not installed (it is in the root dev dependency group: `uv sync`)")
    return subprocess.run(
        [sys.executable, "-m", tool, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _explain(done: subprocess.CompletedProcess[str], fix: str) -> str:
    return f"{' '.join(map(str, done.args[1:]))} failed (exit {done.returncode}); {fix}\n{done.stdout}{done.stderr}"


def test_ruff_check() -> None:
    done = _run("ruff", "check", "--no-cache", ".")
    assert done.returncode == 0, _explain(done, "`ruff check --fix` fixes some of it")


def test_ruff_format() -> None:
    done = _run("ruff", "format", "--check", "--no-cache", ".")
    assert done.returncode == 0, _explain(done, "run `ruff format` and commit the result")


def test_mypy_strict_kez_core(tmp_path: Path) -> None:
    # `-p kez_core` resolves through mypy_path (kez_core/src), not the kez_core/ folder;
    # a fresh cache each run, so a verdict never comes from a stale one
    done = _run("mypy", "--strict", "--cache-dir", str(tmp_path / "mypy"), "-p", "kez_core")
    assert done.returncode == 0, _explain(done, "kez_core is typed throughout (see [tool.mypy])")
