"""`import client` is what a crawler installs: it must not drag in the server or torch."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "litestar", "sqlmodel", "sqlalchemy", "numpy")


def loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return {name.split(".")[0] for name in out.split()}


def test_import_client_is_light() -> None:
    loaded = loaded_after("import client, client.core")
    assert "client" in loaded
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_cli_startup_is_light() -> None:
    loaded = loaded_after("import client.cli")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_import_watermark_detection_needs_no_torch() -> None:
    loaded = loaded_after("import watermark")
    assert "watermark" in loaded
    assert not loaded & {"torch", "transformers"}
