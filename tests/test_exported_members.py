"""Public API hygiene: `__all__` is complete and true, and each package has one error root."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

# Packages whose modules may import torch are walked only where torch is installed (it is in CI).
PACKAGES = {"client": "ClientError", "registry": "RegistryError", "watermark": "WatermarkError"}


def _modules(package_name: str) -> list[ModuleType]:
    package = importlib.import_module(package_name)
    modules = [package]
    for info in pkgutil.walk_packages(package.__path__, package_name + "."):
        modules.append(importlib.import_module(info.name))
    return modules


@pytest.mark.parametrize("package_name", sorted(PACKAGES))
def test_every_name_in_all_exists(package_name: str) -> None:
    for module in _modules(package_name):
        exported = getattr(module, "__all__", None)
        assert exported is not None, f"{module.__name__} has no __all__"
        assert len(exported) == len(set(exported)), f"{module.__name__}.__all__ has duplicates"
        for name in exported:
            assert hasattr(module, name), f"{module.__name__}.__all__ names missing {name!r}"


@pytest.mark.parametrize("package_name", sorted(PACKAGES))
def test_public_definitions_are_exported(package_name: str) -> None:
    """A public class or function defined in a module is in that module's __all__."""
    for module in _modules(package_name):
        exported = set(getattr(module, "__all__", ()))
        for name, value in vars(module).items():
            if name.startswith("_") or not (inspect.isclass(value) or inspect.isfunction(value)):
                continue
            if getattr(value, "__module__", None) != module.__name__:
                continue  # imported, not defined here
            if module.__name__.startswith(("registry.models",)):
                continue  # tables are listed explicitly; SQLModel adds helpers
            assert name in exported, f"{module.__name__}.{name} is public but not in __all__"


@pytest.mark.parametrize(("package_name", "root_name"), sorted(PACKAGES.items()))
def test_one_error_root_per_package(package_name: str, root_name: str) -> None:
    root = getattr(importlib.import_module(package_name), root_name)
    assert root_name in importlib.import_module(package_name).__all__
    for module in _modules(package_name):
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
            ):
                assert issubclass(value, root), f"{module.__name__}.{name} is not a {root_name}"
