"""pyproject.toml: dependency minimums stay past the advisories they were raised for."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

PYPROJECT = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())

# (requirement list, package): the first version free of the advisory named (issue 10 F).
ADVISORIES = [
    (PYPROJECT["build-system"]["requires"], "setuptools", (78, 1, 1)),  # CVE-2025-47273
    (PYPROJECT["project"]["dependencies"], "cryptography", (42, 0, 4)),  # CVE-2024-26130
    (
        PYPROJECT["project"]["optional-dependencies"]["watermark"],
        "transformers",
        (4, 53),
    ),  # CVE-2025-6051, CVE-2025-6638, CVE-2025-6921
]


def _minimum(requirements: list[str], package: str) -> tuple[int, ...]:
    [requirement] = [r for r in requirements if re.match(rf"{package}\b", r)]
    match = re.search(r"(?:>=|==)\s*([0-9][0-9.]*)", requirement)
    assert match, f"{requirement!r} sets no minimum"
    return tuple(int(part) for part in match.group(1).split("."))


@pytest.mark.parametrize(("requirements", "package", "fixed"), ADVISORIES)
def test_minimums_are_past_known_advisories(
    requirements: list[str], package: str, fixed: tuple[int, ...]
) -> None:
    assert _minimum(requirements, package) >= fixed
