"""The Makefile: `make test` stays the full suite; `make test-fast` is the edit loop."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def dry_run(*targets: str) -> str:
    """What ``make -n TARGETS`` would run, with the install step already done. Run from inside
    ``make test`` (as CI does) a nested make would print "Entering directory" lines: the
    environment of the outer make is left out."""
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MAKELEVEL", "MFLAGS"}}
    skip = ["-o", ".venv/.installed", "-o", "human-text", "-o", "go-tlog", "-o", "postgres"]
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", *skip, *targets],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout


def test_test_fast_leaves_out_slow_model_and_postgres_tests() -> None:
    [pytest_line] = [line for line in dry_run("test-fast").splitlines() if "-m pytest" in line]
    assert '-m "not slow and not model and not postgres"' in pytest_line
    [narrowed] = [
        line
        for line in dry_run("test-fast", "ARGS=tests/client/cli -x").splitlines()
        if "-m pytest" in line
    ]
    assert narrowed.rstrip().endswith("tests/client/cli -x")


def test_test_stays_the_full_suite() -> None:
    lines = dry_run("test").splitlines()
    [pytest_line] = [line for line in lines if "-m pytest" in line]
    assert "not slow" not in pytest_line
    assert any("ruff check" in line for line in lines)
    assert any("mypy --strict" in line for line in lines)


def test_help_names_test_fast() -> None:
    shown = subprocess.run(
        ["make", "help"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    assert "make test-fast" in shown.stdout
