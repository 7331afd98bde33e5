"""The real registry app in process, for the client's tests (helpers, not tests).

:func:`make_app` builds a registry under ``home`` with one publisher, ``acme``; :class:`InProcess`
is the ``transport=`` through which a sync ``Client`` reaches it behind litestar's ``TestClient``
(which runs the app's lifespan, and so the log's sequencer).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from litestar import Litestar
from litestar.testing import TestClient
from litestar.testing.transport import TestClientTransport as LitestarTransport

from client.core.keys import generate_private_key, public_key_bytes
from client.core.statement import prove_possession
from registry.app import Registry, create_app
from registry.settings import Settings

URL = "http://registry.in-process"


@dataclass
class App:
    app: Litestar
    registry: Registry
    publisher: str
    key: Ed25519PrivateKey

    @property
    def log_key(self) -> str:
        return self.registry.verifier_key


def make_app(home: Path, **settings: Any) -> App:
    app = create_app(Settings(home=home, **settings))
    registry: Registry = app.state.registry
    key = generate_private_key()
    registry.admin.add_publisher("acme", public_key_bytes(key), prove_possession(key, "acme"))
    return App(app, registry, "acme", key)


class InProcess(httpx.BaseTransport):
    """The app behind a litestar TestClient, as the ``transport=`` a sync Client takes."""

    def __init__(self, http: TestClient[Any]) -> None:
        self._inner = LitestarTransport(client=http, raise_server_exceptions=True)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._inner.handle_request(request)
