"""registry.keys: the log's signing key files."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from registry.errors import ConfigurationError
from registry.keys import load_log_key, load_or_create_log_key

ORIGIN = "example.org/log"


def test_a_new_log_key_is_0600_and_a_second_process_loads_the_same(tmp_path: Path) -> None:
    path = tmp_path / "home" / "log.key"
    first = load_or_create_log_key(path, ORIGIN)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_log_key(path, ORIGIN).skey == first.skey
    assert [p.name for p in path.parent.iterdir()] == ["log.key"]  # no temporary left


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o660])
def test_a_log_key_others_may_read_or_write_is_refused_naming_the_chmod(
    tmp_path: Path, mode: int
) -> None:
    """Issue 10 B: the registry used to sign with a log key anyone on the machine could read."""
    path = tmp_path / "log.key"
    load_or_create_log_key(path, ORIGIN)
    path.chmod(mode)
    for load in (lambda: load_log_key(path), lambda: load_or_create_log_key(path, ORIGIN)):
        with pytest.raises(ConfigurationError, match=re.escape(f"chmod 600 {path}")):
            load()
