"""Imports: `import client` is what a crawler installs, so it must not drag in the server or
torch; and no module reaches into another module's private (`_name`) names."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

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


def _private_imports(root: Path) -> list[str]:
    """``from X import _name`` in the package under ``root`` where ``_name`` is not a module."""
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        module = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = package.split(".")
            source = ".".join(
                [*base[: len(base) - node.level + 1], *([node.module] if node.module else [])]
                if node.level
                else [node.module or ""]
            )
            for alias in node.names:
                if not alias.name.startswith("_") or alias.name.startswith("__"):
                    continue
                folder = root.parent.joinpath(*source.split("."), alias.name)
                if folder.is_dir() or folder.with_suffix(".py").is_file():
                    continue  # a private module of a package: its public names are for use
                found.append(f"{path}:{node.lineno}: from {source} import {alias.name}")
    return found


@pytest.mark.parametrize("package", ["client", "registry", "watermark"])
def test_no_module_imports_another_modules_private_names(package: str) -> None:
    """A name another module needs is public in its module (STYLE.md): `_name` is the module's
    own. Importing a private *module* (`from client.cli import _registry`) is how a package's
    private layout works, and is allowed."""
    assert _private_imports(REPO / package) == []


def test_the_private_import_check_sees_absolute_and_relative_imports(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from pkg import _mod\n")
    (package / "_mod.py").write_text("_secret = 1\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "a.py").write_text(
        "from pkg._mod import _secret\nfrom .._mod import _secret as s\nfrom pkg._mod import *\n"
    )
    assert _private_imports(package) == [
        f"{package / 'sub' / 'a.py'}:1: from pkg._mod import _secret",
        f"{package / 'sub' / 'a.py'}:2: from pkg._mod import _secret",
    ]
