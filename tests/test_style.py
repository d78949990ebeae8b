"""The code follows the project's style: PEP 8 with 120-character lines (ruff.toml)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ruff(*args):
    pytest.importorskip("ruff", reason="ruff comes with the test extra: pip install .[test]")
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_finds_no_pep8_or_pyflakes_problem():
    run = _ruff("check", "--no-cache", ".")
    assert run.returncode == 0, f"ruff check found problems (fix them, or run ruff check --fix):\n{run.stdout}"


def test_code_is_formatted():
    run = _ruff("format", "--check", "--no-cache", ".")
    assert run.returncode == 0, f"run 'ruff format .' on:\n{run.stdout}"
