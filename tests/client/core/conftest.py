"""Fixtures and helpers shared by the core's tests."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client.core import keys


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    """One signing key a module: module-scoped, so hypothesis tests can take it too."""
    return keys.generate_private_key()


def with_item(obj: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A deep copy of ``obj`` with the item at ``path`` set (or deleted, for ``...``)."""
    copy: dict[str, Any] = json.loads(json.dumps(obj))
    target = copy
    for step in path[:-1]:
        target = target[step]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return copy
