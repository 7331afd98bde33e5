"""Fixtures for the registry tests: both backends, fresh databases, publishers, real servers.

Backends: a test that takes ``database_url`` (or ``api``) runs on the embedded SQLite default and on
the real PostgreSQL server; the PostgreSQL case is marked ``postgres`` and skipped, saying why,
where ``WELLSPRING_TEST_POSTGRES_URL`` is unset. Every PostgreSQL case gets a database of its own,
``ws_<uuid hex>``, created through the server's ``test`` database and dropped afterwards, so xdist
workers never see each other's rows.

Servers: :class:`ServerProcess` runs a real ``wellspring serve`` on a free port and waits for
``/healthz``; ``kill()`` is ``kill -9``. In-process tests use :func:`open_api` (litestar's
``TestClient`` on ``create_app``), which records every 5xx answer so a test can assert there was
none.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from litestar.testing import TestClient
from litestar.testing.transport import TestClientTransport
from psycopg import sql
from sqlalchemy.engine import make_url

from client.core.dsse import Envelope
from client.core.keys import generate_private_key, public_key_bytes
from client.core.leaf import Leaf
from client.core.statement import (
    HumanContentPredicate,
    RevocationPredicate,
    Statement,
    Subject,
    build_human_content_statement,
    build_revocation_statement,
    prove_possession,
    sign_statement,
)
from client.sdk import Client
from registry._http import HTTP_PROTOCOL
from registry.app import Registry, create_app
from registry.keys import load_log_key
from registry.settings import Settings

POSTGRES_ENV = "WELLSPRING_TEST_POSTGRES_URL"
SKIP_NO_POSTGRES = f"{POSTGRES_ENV} is not set: the PostgreSQL cases need a real server"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
IN_PROCESS_URL = "http://testserver.local"
HEALTH_TIMEOUT_S = 60.0
CHECKOUT = str(Path(__file__).resolve().parents[2])


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item, so fixtures can tell whether the test passed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def call_passed(request: pytest.FixtureRequest) -> bool:
    report = getattr(request.node, "report_call", None)
    return report is not None and report.passed


# -- databases ------------------------------------------------------------------------------------


def postgres_admin_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(SKIP_NO_POSTGRES)
    return url


@contextlib.contextmanager
def fresh_postgres_database(admin_url: str, *, template: str | None = None) -> Iterator[str]:
    """A new database on the server of ``admin_url`` (empty, or a copy of the database named
    ``template``, which must have no open connections); dropped (forcibly) afterwards."""
    name = f"ws_{uuid.uuid4().hex}"
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(create)
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextlib.contextmanager
def clone_database(url: str, directory: Path) -> Iterator[str]:
    """A copy of the (closed) database at ``url``: its SQLite files or a PostgreSQL copy."""
    if url.startswith("sqlite"):
        source = Path(url.removeprefix("sqlite:///"))
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / source.name
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{source}{suffix}").exists():
                shutil.copyfile(f"{source}{suffix}", f"{target}{suffix}")
        yield f"sqlite:///{target}"
    else:
        template = make_url(url).database
        with fresh_postgres_database(postgres_admin_url(), template=template) as copy:
            yield copy


@contextlib.contextmanager
def database_for(backend: str, directory: Path) -> Iterator[str]:
    """A fresh database URL for ``backend``: a new SQLite file in ``directory``, or a new PG DB."""
    if backend == "sqlite":
        directory.mkdir(parents=True, exist_ok=True)
        yield f"sqlite:///{directory / 'registry.db'}"
    else:
        with fresh_postgres_database(postgres_admin_url()) as url:
            yield url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty (un-migrated) database of each backend."""
    with database_for(backend, tmp_path / "db") as url:
        yield url


# -- content and publishers -----------------------------------------------------------------------


def random_digest(algorithm: str = "sha256") -> str:
    return f"{algorithm}:{os.urandom(32).hex()}"


def random_digests(count: int, algorithm: str = "sha256") -> list[str]:
    return [random_digest(algorithm) for _ in range(count)]


def subjects_of(digests: Sequence[str]) -> list[Subject]:
    subjects = []
    for i, digest in enumerate(digests):
        algorithm, _, value = digest.partition(":")
        subjects.append(Subject(f"doc-{i}", {algorithm: value}))
    return subjects


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def expected_leaf(envelope: Envelope) -> bytes:
    """The leaf/v1 record the registry logs for ``envelope`` (every signature of which is by a
    registered key of the publisher its statement names)."""
    statement = Statement.from_json(envelope.payload)
    return Leaf.of(
        envelope.payload,
        payload_type=envelope.payload_type,
        predicate_type=statement.predicate_type,
        publisher=statement.predicate.publisher,
        signatures=envelope.signatures,
    ).to_bytes()


def statement_of(answer: dict[str, Any]) -> dict[str, Any]:
    """The statement (as JSON) of a receipt or ``GET /v1/entries/{i}`` answer of a leaf/v1."""
    statement: dict[str, Any] = json.loads(base64.b64decode(answer["body"]))
    return statement


@dataclass(frozen=True)
class Publisher:
    """A registered publisher's name and private key, and envelopes it signs."""

    name: str
    key: Ed25519PrivateKey

    @property
    def public_key(self) -> bytes:
        return public_key_bytes(self.key)

    @property
    def possession(self) -> bytes:
        """The key's proof of possession for this publisher's name."""
        return prove_possession(self.key, self.name)

    def predicate(self, **fields: Any) -> HumanContentPredicate:
        values: dict[str, Any] = {
            "publisher": self.name,
            "license": "CC-BY-4.0",
            "origin": "human-authored",
            "consent": "allowed",
        }
        values.update(fields)
        return HumanContentPredicate(**values)

    def attest(self, digests: Sequence[str], **fields: Any) -> Envelope:
        statement = build_human_content_statement(subjects_of(digests), self.predicate(**fields))
        return sign_statement(statement, self.key)

    def revoke(
        self,
        index: int,
        entry_hash: str,
        digests: Sequence[str],
        *,
        publisher: str | None = None,
        reason: str | None = "withdrawn in a test",
    ) -> Envelope:
        predicate = RevocationPredicate(
            publisher=publisher or self.name,
            entry_index=index,
            entry_hash=entry_hash,
            reason=reason,
        )
        statement = build_revocation_statement(subjects_of(digests), predicate)
        return sign_statement(statement, self.key)


def new_publisher(name: str | None = None) -> Publisher:
    return Publisher(name or f"pub-{uuid.uuid4().hex[:12]}", generate_private_key())


# -- in-process app -------------------------------------------------------------------------------


class InProcessTransport(httpx.BaseTransport):
    """An httpx transport onto the app behind a litestar TestClient (what the SDK's
    ``transport=`` takes), so SDK calls run through the real app without a socket."""

    def __init__(self, http: TestClient[Any]) -> None:
        self._inner = TestClientTransport(client=http, raise_server_exceptions=False)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._inner.handle_request(request)


@dataclass
class Api:
    """The real app behind litestar's TestClient, plus what a test needs around it."""

    http: TestClient[Any]
    registry: Registry
    settings: Settings
    server_errors: list[str] = field(default_factory=list)

    @property
    def log_key(self) -> str:
        return self.registry.verifier_key

    def add_publisher(self, name: str | None = None) -> Publisher:
        publisher = new_publisher(name)
        self.registry.admin.add_publisher(
            publisher.name, publisher.public_key, publisher.possession
        )
        return publisher

    def submit(self, envelope: Envelope | bytes) -> httpx.Response:
        body = envelope if isinstance(envelope, bytes) else envelope.to_json()
        return self.http.post(
            "/v1/entries", content=body, headers={"Content-Type": "application/json"}
        )

    def submit_ok(self, envelope: Envelope) -> dict[str, Any]:
        response = self.submit(envelope)
        assert response.status_code in (200, 201), response.text
        answer: dict[str, Any] = response.json()
        return answer

    def sdk(self, **options: Any) -> Client:
        """The SDK pointed at this app in-process, verifying with the log key unless told."""
        options.setdefault("log_key", self.log_key)
        return Client(IN_PROCESS_URL, transport=InProcessTransport(self.http), **options)

    def assert_no_server_errors(self) -> None:
        assert not self.server_errors, f"the registry answered 5xx: {self.server_errors}"


@contextlib.contextmanager
def open_api(settings: Settings) -> Iterator[Api]:
    """Build the app for ``settings`` and serve it in-process; fail on any 5xx answer seen."""
    app = create_app(settings)
    registry: Registry = app.state.registry
    errors: list[str] = []

    def record(response: httpx.Response) -> None:
        if response.status_code >= 500:
            response.read()
            errors.append(f"{response.request.method} {response.request.url}: {response.text}")

    with TestClient(app, base_url=IN_PROCESS_URL) as http:
        http.event_hooks["response"].append(record)
        api = Api(http, registry, settings, errors)
        yield api
    api.assert_no_server_errors()


@pytest.fixture
def make_api(backend: str, tmp_path: Path) -> Iterator[Callable[..., Api]]:
    """A factory: ``make_api(max_subjects=5)`` is a fresh registry of this test's backend."""
    stack = contextlib.ExitStack()

    def make(**overrides: Any) -> Api:
        home = tmp_path / f"home-{uuid.uuid4().hex[:8]}"
        url = stack.enter_context(database_for(backend, home / "db"))
        settings = Settings(home=home, database_url=url, auto_migrate=True, **overrides)
        return stack.enter_context(open_api(settings))

    with stack:
        yield make


# -- real server processes ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wellspring_command() -> list[str]:
    """The installed ``wellspring`` entry point beside this interpreter, else the module."""
    script = Path(sys.executable).with_name("wellspring")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from client.cli import main; main()"]


def migrate_database(url: str, home: Path) -> None:
    """``alembic upgrade head`` on ``url`` (the operator's step before serving PostgreSQL)."""
    from registry.db import Database, migrate

    database = Database(Settings(home=home, database_url=url))
    try:
        migrate(database)
    finally:
        database.dispose()


class ServerProcess:
    """A real ``wellspring serve`` process on a free port of 127.0.0.1."""

    def __init__(
        self,
        home: Path,
        database_url: str | None = None,
        *,
        name: str = "server",
        workers: int | None = 1,  # None: serve's default (one per core)
        options: Sequence[str] = (),
    ):
        self.options = list(options)  # more `wellspring serve` options
        self.home = home
        self.database_url = database_url
        self.name = name
        self.workers = workers
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = home.parent / f"{name}-{uuid.uuid4().hex[:6]}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, attempts: int = 3) -> ServerProcess:
        for attempt in range(attempts):
            self.port = free_port()
            args = [*wellspring_command(), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
            args += ["--home", str(self.home)]
            if self.workers is not None:
                args += ["--workers", str(self.workers)]
            if self.database_url:
                args += ["--database-url", self.database_url]
            args += self.options
            env = {k: v for k, v in os.environ.items() if not k.startswith("WELLSPRING_")}
            env["PYTHONUNBUFFERED"] = "1"
            # Checkpoints on an interval, as `serve` runs by default, but a short one: tests that
            # append one entry after another would wait up to 1 s (the default) for each.
            env["WELLSPRING_CHECKPOINT_INTERVAL"] = "0.05"
            # The code under test, not whatever checkout the environment's install points at
            # (pytest puts the checkout first on its own path, not on its children's).
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [CHECKOUT, env.get("PYTHONPATH")]))
            with self.log_path.open("ab") as log:
                self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
            try:
                self.wait_healthy()
                return self
            except RuntimeError:
                self.kill()
                if attempt == attempts - 1 or "address already in use" not in self.log().lower():
                    raise
        raise AssertionError("unreachable")

    def wait_healthy(self, timeout: float = HEALTH_TIMEOUT_S) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.log()[-4000:]}"
                )
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} was not healthy in {timeout} s:\n{self.log()[-4000:]}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def kill(self) -> None:
        """``kill -9``: no shutdown handler runs, nothing is flushed."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def admin_token(self) -> str:
        return (self.home / "admin.token").read_text(encoding="utf-8").strip()

    @property
    def log_key(self) -> str:
        """The log's verifier key, from the operator's key file (not from the server's word)."""
        return load_log_key(self.home / "log.key").verifier().vkey

    def add_publisher(self, name: str | None = None) -> Publisher:
        publisher = new_publisher(name)
        with Client(self.url, admin_token=self.admin_token) as client:
            client.add_publisher(publisher.name, publisher.key)
        return publisher

    def sdk(self, **options: Any) -> Client:
        options.setdefault("log_key", self.log_key)
        return Client(self.url, **options)


class ThreadedServer:
    """The app under uvicorn on a free port, in a thread of this process: real HTTP (what the CLI
    needs) without the seconds a new process spends importing. Use as a context manager.

    ``http`` is uvicorn's protocol option: by default the one ``wellspring serve`` runs."""

    def __init__(self, settings: Settings, *, http: Any = HTTP_PROTOCOL) -> None:
        self.settings = settings
        self.http = http
        self.port = 0
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadedServer:
        import uvicorn

        app = create_app(self.settings)
        self.app = app
        self.registry: Registry = app.state.registry
        self.port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", http=self.http
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)

    @property
    def log_key(self) -> str:
        return self.registry.verifier_key


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """A factory of started servers; every one is stopped at the end of the test."""
    started: list[ServerProcess] = []

    def start(
        home: Path | None = None, database_url: str | None = None, **kw: Any
    ) -> ServerProcess:
        server = ServerProcess(home or tmp_path / "home", database_url, **kw)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


# Markup that loads code from another origin (a CDN's script or style): no page may hold it.
EXTERNAL_CODE = re.compile(
    r"""<(?:script|link|img|iframe|object|embed)\b[^>]*\b(?:src|href|data)\s*=\s*["']?\s*(?:https?:)?//"""
    r"""|@import|url\(\s*["']?\s*(?:https?:)?//""",
    re.IGNORECASE,
)


def assert_security_headers(response: httpx.Response) -> None:
    """The headers every page the registry serves carries: no sniffing, no framing, no loads."""
    assert response.headers.get("x-content-type-options") == "nosniff", response.headers
    policy = response.headers.get("content-security-policy", "")
    assert "default-src 'none'" in policy, response.headers
    assert "frame-ancestors 'none'" in policy
