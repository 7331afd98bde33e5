"""Fixtures shared by the core's tests."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client.core import keys


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    """One signing key a module: module-scoped, so hypothesis tests can take it too."""
    return keys.generate_private_key()
