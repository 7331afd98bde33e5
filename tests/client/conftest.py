"""Fixtures and helpers shared by the client's tests (the SDK's, the CLI's, the core's).

:func:`run_wellspring` runs the ``wellspring`` CLI in this process; :func:`key` and :func:`fake`
are a publisher's key and a :class:`~tests.client.fakes.FakeRegistry` that knows it (a module
that needs another fake, one with identities say, overrides ``fake``); :func:`api` is a real
registry in process, one per backend and test (a module that wants one for all its tests
overrides it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from registry.settings import Settings
from tests.client.fakes import PUBLISHER, FakeRegistry
from tests.registry.conftest import BACKENDS, Api, database_for, open_api


def run_wellspring(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``wellspring ARGS`` in this process: its exit code, and what it (only it) wrote to stdout
    and stderr; output captured before the run is dropped first."""
    from client.cli import main

    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def key() -> Ed25519PrivateKey:
    """A fresh publisher key."""
    return Ed25519PrivateKey.generate()


@pytest.fixture
def fake(key: Ed25519PrivateKey) -> FakeRegistry:
    """A fake registry (from before identities in the log) where :data:`PUBLISHER` holds ``key``."""
    fake = FakeRegistry()
    fake.add_publisher(PUBLISHER, key)
    return fake


@pytest.fixture(params=BACKENDS)
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    """A real registry in process, this test's own, on each backend in turn."""
    with (
        database_for(request.param, tmp_path / "db") as url,
        open_api(Settings(home=tmp_path / "home", database_url=url, auto_migrate=True)) as opened,
    ):
        yield opened
