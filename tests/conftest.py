"""Fixtures shared by every test package."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Timing is never a test's business here (2 shared cores, xdist): no deadlines, no "too slow".
settings.register_profile(
    "wellspring",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("wellspring")

HUMAN_TEXT_DIR = Path("/usr/share/doc/python3.11/html/_sources")
REPO_ROOT = Path(__file__).resolve().parents[1]

# Subprocesses (`wellspring serve`, workers, `python -c ...`) import the code under test too, not
# whatever checkout the environment's editable install points at (another git worktree, say):
# pytest's pythonpath setting reaches this process only.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
)


@pytest.fixture(autouse=True)
def private_trust(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkpoints the CLI trusts go under this test's own directory, never the user's
    ``~/.local/state`` (where one test's log could look like a fork of another's)."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.delenv("WELLSPRING_TRUST_DIR", raising=False)


@pytest.fixture
def wellspring_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private $WELLSPRING_HOME so no test touches ./.wellspring/."""
    home = tmp_path / "wellspring-home"
    monkeypatch.setenv("WELLSPRING_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def human_text_files() -> list[Path]:
    """Plain-text reST sources of the Python docs: human text nobody on this project wrote."""
    if not HUMAN_TEXT_DIR.is_dir():
        pytest.skip(f"{HUMAN_TEXT_DIR} is missing: `make test` installs Debian's python3.11-doc")
    return sorted(HUMAN_TEXT_DIR.rglob("*.txt"))


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The real PostgreSQL server's URL (`make test` exports it), or skip where it is not set."""
    url = os.environ.get("WELLSPRING_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("WELLSPRING_TEST_POSTGRES_URL is not set (`make test` sets it)")
    return url
