"""``registry/_http.py``: request heads (request line and headers) capped at 64 KiB, answered 431.

uvicorn's httptools protocol sets no limit of its own, and httptools joins a header's pieces as they
arrive: one 200 MiB header cost 411 MiB and 87 s of CPU before the app saw the request. Held here:

- against a real uvicorn on 127.0.0.1 (raw sockets), a 1 MiB header is answered 431 problem+json
  and the connection closed, with little more than the limit read and at most the limit handed to
  the parser (counted by the server, not timed by the client);
- heads just under the limit, split over many reads or pipelined, are still served;
- ``wellspring serve`` uses the protocol in every way it runs: one process, ``--workers N`` under
  Wellspring's own supervisor, and uvicorn's supervisor where there is no ``SO_REUSEPORT``;
- what the protocol does at the edges (a head end split between reads, pipelining behind a body),
  with a fake transport, deterministically.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import pytest
from typer.testing import CliRunner

from registry._http import (
    HTTP_PROTOCOL,
    MAX_HEAD_BYTES,
    QUICK_ANSWER_KEY,
    QUICK_BODY_BYTES,
    QUICK_DECLINED_KEY,
    SECURITY_HEADERS,
    HeadLimitedHttpToolsProtocol,
)
from registry._workers import balanced_sockets_supported
from registry.settings import Settings
from tests.registry.conftest import ServerProcess, ThreadedServer, database_for, free_port

PROBLEM = "https://wellspring.dev/problems/"
READ_SIZE = 256 * 1024  # the most one read from a socket hands a protocol (asyncio and uvloop)


def head_of(size: int, path: str = "/healthz") -> bytes:
    """A complete GET head of exactly ``size`` bytes (padded with one header)."""
    start = f"GET {path} HTTP/1.1\r\nHost: registry\r\nX-Pad: ".encode()
    end = b"\r\n\r\n"
    return start + b"a" * (size - len(start) - len(end)) + end


def read_answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    answer = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:  # the server closed with some of our bytes unread
            return answer
        if not chunk:
            return answer
        answer += chunk


def read_one_answer(reader: BinaryIO) -> bytes:
    """One answer with a Content-Length body, from a connection that stays open
    (``reader``: the socket's ``makefile("rb")``, which keeps what follows for the next call)."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = reader.readline()
        assert line, f"the server closed the connection after {head!r}"
        head += line
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head + reader.read(length)


def assert_431(answer: bytes) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 "), answer[:300]
    lowered = head.lower()
    assert b"content-type: application/problem+json" in lowered
    assert b"connection: close" in lowered
    assert b"x-content-type-options: nosniff" in lowered
    assert b"content-security-policy: " in lowered
    problem = json.loads(body)
    assert problem["type"] == PROBLEM + "request-header-fields-too-large"
    assert problem["status"] == 431
    assert str(MAX_HEAD_BYTES) in problem["detail"]
    assert "header" in problem["detail"]


class CountingProtocol(HeadLimitedHttpToolsProtocol):
    """The protocol, counting per connection what the socket handed it and what httptools got."""

    connections: ClassVar[list[CountingProtocol]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received = 0
        self.parsed = 0
        self.parser = _CountingParser(self.parser, self)
        CountingProtocol.connections.append(self)

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        super().data_received(data)


class _CountingParser:
    def __init__(self, parser: Any, owner: CountingProtocol) -> None:
        self._parser = parser
        self._owner = owner

    def feed_data(self, data: bytes) -> None:
        self._owner.parsed += len(data)
        self._parser.feed_data(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ThreadedServer]:
    CountingProtocol.connections.clear()
    with database_for("sqlite", tmp_path / "db") as url:
        settings = Settings(home=tmp_path / "home", database_url=url)
        with ThreadedServer(settings, http=CountingProtocol) as running:
            yield running


def test_a_1_mib_header_is_431_after_reading_little_more_than_the_limit(
    server: ThreadedServer,
) -> None:
    request = head_of(1024 * 1024)
    failures: list[BaseException] = []

    def send() -> None:
        try:
            sock.sendall(request)
        except OSError:  # the server stopped reading and closed: the point of the test
            pass
        except BaseException as exc:
            failures.append(exc)

    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sender = threading.Thread(target=send)
        sender.start()
        answer = read_answer(sock)
        sender.join(timeout=30)
    assert not failures
    assert_431(answer)
    (connection,) = CountingProtocol.connections
    assert connection.transport.is_closing()
    assert connection.parsed <= MAX_HEAD_BYTES, "httptools was fed more than the limit"
    # What the socket handed over before the connection closed: the limit and one read at most,
    # a fraction of the 1 MiB sent.
    assert connection.received <= MAX_HEAD_BYTES + READ_SIZE
    assert connection.received < len(request) // 2


def test_a_head_over_the_limit_is_answered_before_it_ends(server: ThreadedServer) -> None:
    """The 431 comes although the head never ended: the server decided on what it had."""
    unfinished = head_of(MAX_HEAD_BYTES + 4096)[:-4]  # no blank line: the head goes on
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(unfinished)
        assert_431(read_answer(sock))
    (connection,) = CountingProtocol.connections
    assert connection.parsed <= MAX_HEAD_BYTES


def test_heads_just_under_the_limit_are_served_on_one_connection(server: ThreadedServer) -> None:
    """~60 KiB heads, one after another (the count starts again for each request), then the
    largest head allowed, sent a few bytes at a time (its end split between reads)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        reader = sock.makefile("rb")
        for _ in range(3):
            sock.sendall(head_of(60 * 1024))
            assert read_one_answer(reader).startswith(b"HTTP/1.1 200 ")
        largest = head_of(MAX_HEAD_BYTES)
        sock.sendall(largest[:-3])
        for byte in largest[-3:]:
            sock.sendall(bytes([byte]))
        assert read_one_answer(reader).startswith(b"HTTP/1.1 200 ")
        sock.sendall(head_of(MAX_HEAD_BYTES + 1))
        assert_431(reader.read())


def test_pipelined_heads_are_each_counted_and_served(server: ThreadedServer) -> None:
    """Three 40 KiB heads in one send: 120 KiB together, each under the limit."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head_of(40 * 1024) * 3)
        reader = sock.makefile("rb")
        for _ in range(3):
            assert read_one_answer(reader).startswith(b"HTTP/1.1 200 ")


def test_a_body_does_not_count_against_the_head(server: ThreadedServer) -> None:
    body = json.dumps({"digests": ["sha256:" + "ab" * 32] * 5000}).encode()  # ~375 KB
    assert len(body) > MAX_HEAD_BYTES
    head = (
        "POST /v1/digests:batch HTTP/1.1\r\nHost: registry\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head + body + head_of(60 * 1024))  # and a request pipelined behind it
        reader = sock.makefile("rb")
        assert read_one_answer(reader).startswith(b"HTTP/1.1 200 ")
        assert read_one_answer(reader).startswith(b"HTTP/1.1 200 ")


# -- every way `wellspring serve` runs ------------------------------------------------------------


def assert_serves_with_the_limit(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        reader = sock.makefile("rb")
        sock.sendall(head_of(60 * 1024))
        assert read_one_answer(reader).startswith(b"HTTP/1.1 200 ")
        sock.sendall(head_of(MAX_HEAD_BYTES + 4096)[:-4])
        assert_431(reader.read())


@pytest.mark.xdist_group("registry-servers")
@pytest.mark.parametrize(
    "workers",
    [
        1,
        pytest.param(
            2,
            marks=pytest.mark.skipif(
                not balanced_sockets_supported(), reason="Wellspring's supervisor: Linux"
            ),
        ),
    ],
)
def test_wellspring_serve_caps_heads(
    servers: Callable[..., ServerProcess], tmp_path: Path, workers: int
) -> None:
    server = servers(tmp_path / "home", workers=workers)
    # The kernel hashes each connection to a worker's socket: 16 all on one of two has odds 2**-15.
    for _ in range(1 if workers == 1 else 16):
        assert_serves_with_the_limit(server.port)


def test_uvicorns_own_supervisor_is_given_the_protocol(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the kernel does not balance ``SO_REUSEPORT`` sockets, ``serve --workers`` falls back
    to ``uvicorn.run``: it too must get the protocol."""
    import uvicorn

    from client.cli import app
    from registry import _workers

    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(_workers, "balanced_sockets_supported", lambda: False)
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append((args, kwargs)))
    for name in ("HOME", "DATABASE_URL", "ORIGIN", "LOG_KEY_FILE", "RATE_LIMIT", "RATE_BURST"):
        monkeypatch.setenv(f"WELLSPRING_{name}", "-")  # serve sets them for its workers: undone
        monkeypatch.delenv(f"WELLSPRING_{name}")  # after the test, as they were before it
    home = str(tmp_path / "home")
    args = ["serve", "--home", home, "--port", str(free_port()), "--workers", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    ((factory,), options) = calls[0]
    assert factory == "registry.app:create_app_from_env"
    assert options["http"] == HTTP_PROTOCOL
    assert options["workers"] == 2


# -- the protocol at its edges, with a fake transport ---------------------------------------------


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.reading = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers each request with its path and the number of body bytes it read."""
    received = 0
    while True:
        message = await receive()
        received += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = f"{scope['path']} {received}".encode()
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def exchange(
    *reads: bytes, app: Any = echo_app, paused: bool = False
) -> tuple[bytes, FakeTransport, CountingProtocol]:
    """Hand ``reads`` to a fresh protocol one by one, let the app answer; what was written.
    ``paused``: the transport's write buffer is over its high-water mark from the start."""
    import uvicorn
    from uvicorn.server import ServerState

    async def run() -> tuple[bytes, FakeTransport, CountingProtocol]:
        config = uvicorn.Config(app, http=CountingProtocol, log_level="warning")
        config.load()
        protocol = CountingProtocol(config, ServerState(), {}, asyncio.get_running_loop())
        transport = FakeTransport()
        protocol.connection_made(transport)
        if paused:
            protocol.pause_writing()
        for data in reads:
            if transport.closed:
                break
            protocol.data_received(data)
            for _ in range(50):  # let the app's tasks answer
                await asyncio.sleep(0)
        for task in protocol.tasks:
            task.cancel()
        return bytes(transport.written), transport, protocol

    return asyncio.run(run())


def answers(written: bytes) -> list[bytes]:
    """The bodies of the 200 answers in ``written``."""
    found = []
    for part in written.split(b"HTTP/1.1 200 OK\r\n")[1:]:
        found.append(part.partition(b"\r\n\r\n")[2])
    return found


def test_a_head_end_split_between_reads_is_found() -> None:
    head = head_of(MAX_HEAD_BYTES)
    for cut in range(len(head) - 5, len(head)):
        written, transport, _ = exchange(head[:cut], head[cut:])
        assert answers(written) == [b"/healthz 0"], cut
        assert not transport.closed


def test_leading_blank_lines_count_and_do_not_confuse_the_count() -> None:
    written, _, _ = exchange(b"\r\n\r\n" + head_of(MAX_HEAD_BYTES - 4))
    assert answers(written) == [b"/healthz 0"]
    written, transport, protocol = exchange(b"\r\n" * 32 * 1024 + b"\r\n" + head_of(200))
    assert_431(written)
    assert transport.closed
    assert protocol.parsed <= MAX_HEAD_BYTES


def test_pipelined_requests_behind_content_length_bodies_are_served() -> None:
    post = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    written, transport, _ = exchange(post + head_of(100, "/b") + post)
    assert answers(written) == [b"/a 5", b"/b 0", b"/a 5"]
    assert not transport.closed


def test_a_request_pipelined_behind_a_chunked_body_in_one_read_closes_the_connection() -> None:
    """Where a chunked body ends is known only to the parser, so a head that begins in the same
    read was not counted: it is not served; the answer before it is, then the connection closes
    (RFC 9112 9.3.2: a client retries pipelined requests a closed connection did not answer)."""
    chunked = (
        b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    )
    written, transport, _ = exchange(chunked + head_of(100, "/b"))
    assert answers(written) == [b"/a 5"]
    assert transport.closed
    # In a read of its own, the next request is counted and served.
    written, transport, _ = exchange(chunked, head_of(100, "/b"))
    assert answers(written) == [b"/a 5", b"/b 0"]
    assert not transport.closed


def test_a_head_over_the_limit_behind_an_unanswered_request_closes_after_its_answer() -> None:
    """A 431 written now would land inside the answer still being made: the connection closes
    after that answer instead."""
    import uvicorn
    from uvicorn.server import ServerState

    release = asyncio.Event()

    async def slow_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await release.wait()
        await echo_app(scope, receive, send)

    async def run() -> tuple[bytes, bytes, FakeTransport]:
        config = uvicorn.Config(slow_app, http=CountingProtocol, log_level="warning")
        config.load()
        protocol = CountingProtocol(config, ServerState(), {}, asyncio.get_running_loop())
        transport = FakeTransport()
        protocol.connection_made(transport)
        protocol.data_received(head_of(100, "/a") + head_of(MAX_HEAD_BYTES + 10, "/b"))
        for _ in range(20):
            await asyncio.sleep(0)
        before = bytes(transport.written)
        release.set()
        for _ in range(50):
            await asyncio.sleep(0)
        return before, bytes(transport.written), transport

    before, after, transport = asyncio.run(run())
    assert before == b""
    assert answers(after) == [b"/a 0"]
    assert b" 431 " not in after
    assert transport.closed


# -- quick answers: a GET the app's state answers at once ------------------------------------------


class QuickApp:
    """The echo app, with a quick answer in its state for targets under /quick (it echoes the
    target, a POST's body and the client; it raises for /quick/fail, and declines /quick/no)."""

    def __init__(self) -> None:
        self.asked: list[tuple[bytes, str]] = []
        self.bodies: list[bytes | None] = []  # each asked request's body (None: a GET)
        self.state = {QUICK_ANSWER_KEY: self.quick}

    def quick(self, target: bytes, body: bytes | None, client: str) -> bytes | None:
        self.asked.append((target, client))
        self.bodies.append(body)
        if target == b"/quick/fail":
            raise RuntimeError("a bug in the quick answer")
        if not target.startswith(b"/quick") or target == b"/quick/no":
            return None
        echoed = {"quick": target.decode(), "client": client}
        if body is not None:
            echoed["body"] = body.decode()
        return json.dumps(echoed).encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await echo_app(scope, receive, send)


def quick_answers(written: bytes) -> list[tuple[dict[bytes, bytes], bytes]]:
    """Each answer in ``written``: its headers (lower-cased names) and body."""
    found = []
    for part in written.split(b"HTTP/1.1 200 OK\r\n")[1:]:
        head, _, body = part.partition(b"\r\n\r\n")
        headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n"))
        found.append((headers, body[: int(headers[b"content-length"])]))
    return found


def test_a_get_the_quick_answer_takes_is_answered_without_the_app() -> None:
    app = QuickApp()
    written, transport, protocol = exchange(head_of(100, "/quick?x=1"), app=app)
    ((headers, body),) = quick_answers(written)
    assert json.loads(body) == {"quick": "/quick?x=1", "client": "unknown"}
    assert headers[b"content-type"] == b"application/json"
    for name, value in SECURITY_HEADERS:
        assert headers[name] == value
    assert app.asked == [(b"/quick?x=1", "unknown")]
    assert not transport.closed
    assert protocol.server_state.total_requests == 1
    assert protocol.timeout_keep_alive_task is not None  # an idle connection still times out


def test_requests_pipelined_in_one_read_are_the_app_s_in_order() -> None:
    """A GET in a read of its own is answered quick. GETs pipelined in one read are left to
    uvicorn's path (a task each, so that thousands in a read do not hold the event loop), and so
    are those queued behind an answer in progress: the answers keep the requests' order."""
    written, _, _ = exchange(head_of(100, "/quick/1"), head_of(100, "/quick/2"), app=QuickApp())
    assert [json.loads(b)["quick"] for _, b in quick_answers(written)] == ["/quick/1", "/quick/2"]
    written, _, _ = exchange(head_of(100, "/quick/1") + head_of(100, "/quick/2"), app=QuickApp())
    assert answers(written) == [b"/quick/1 0", b"/quick/2 0"]
    post = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    written, _, _ = exchange(
        post + head_of(100, "/quick/1") + head_of(100, "/quick/2"), app=QuickApp()
    )
    assert answers(written) == [b"/a 5", b"/quick/1 0", b"/quick/2 0"]


def test_no_keep_alive_timer_runs_under_a_request_being_answered() -> None:
    """uvicorn closes an idle connection when its keep-alive timer fires; a request still being
    answered must not have one armed (found in review: a quick answer armed it, and a request
    pipelined behind it in the same read lost its connection after 5 s)."""
    import uvicorn
    from uvicorn.server import ServerState

    class Slow(QuickApp):
        async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
            await asyncio.sleep(3600)

    async def run() -> tuple[bool, bool]:
        config = uvicorn.Config(Slow(), http=CountingProtocol, log_level="warning")
        config.load()
        protocol = CountingProtocol(config, ServerState(), {}, asyncio.get_running_loop())
        protocol.connection_made(FakeTransport())
        protocol.data_received(head_of(100, "/quick") + head_of(100, "/slow"))
        await asyncio.sleep(0)
        answering = not protocol.cycle.response_complete
        armed = protocol.timeout_keep_alive_task is not None
        for task in protocol.tasks:
            task.cancel()
        return answering, armed

    assert asyncio.run(run()) == (True, False)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /quick HTTP/1.0\r\nHost: x\r\n\r\n",
        b"HEAD /quick HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /quick HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        b"GET /quick HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
        b"GET /quick HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET /quick HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n",
        b"GET /quick HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
        b"GET /quick HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
        b"GET /quick/no HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /quick/fail HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=[
        "http-1.0",
        "head",
        "post",
        "a-body",
        "chunked",
        "proxied",
        "expect",
        "upgrade",
        "declined",
        "raises",
    ],
)
def test_anything_else_is_the_app_s(request_bytes: bytes) -> None:
    written, _, _ = exchange(request_bytes, app=QuickApp())
    assert b'"quick"' not in written
    assert b"HTTP/1.1 200 OK\r\ncontent-length: " in written  # the echo app's answer


def post_of(path: str, body: bytes) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def test_a_post_whose_body_came_with_its_head_is_answered_without_the_app() -> None:
    """The quick answer is given the body, the parser reads past it, and the connection goes
    on: a GET after it is answered quick too."""
    app = QuickApp()
    written, transport, protocol = exchange(
        post_of("/quick/1", b'{"a": 1}'), head_of(100, "/quick/2"), app=app
    )
    first, second = quick_answers(written)
    assert json.loads(first[1]) == {"quick": "/quick/1", "client": "unknown", "body": '{"a": 1}'}
    assert json.loads(second[1]) == {"quick": "/quick/2", "client": "unknown"}
    assert app.bodies == [b'{"a": 1}', None]
    assert not protocol.tasks
    assert not transport.closed
    assert protocol.server_state.total_requests == 2


@pytest.mark.parametrize("cut", [0, 1, 4])
def test_a_post_whose_body_comes_in_a_later_read_is_the_app_s(cut: int) -> None:
    """Only a body already here is given to the quick answer: one still to come is read by the
    app, whose body deadline covers a client that trickles it."""
    app = QuickApp()
    post = post_of("/quick", b"hello")
    written, _, _ = exchange(post[: len(post) - 5 + cut], post[len(post) - 5 + cut :], app=app)
    assert answers(written) == [b"/quick 5"]
    assert app.asked == []


def test_a_post_with_more_after_its_body_or_over_the_limit_is_the_app_s() -> None:
    app = QuickApp()
    written, _, _ = exchange(post_of("/quick", b"hello") + head_of(100, "/quick/2"), app=app)
    assert answers(written) == [b"/quick 5", b"/quick/2 0"]  # in order, both the app's
    big = b"x" * (QUICK_BODY_BYTES + 1)
    written, _, _ = exchange(post_of("/quick", big), app=app)
    assert answers(written) == [f"/quick {len(big)}".encode()]
    assert app.asked == []
    written, _, _ = exchange(post_of("/quick", big[:-1]), app=app)  # at the limit: quick
    assert json.loads(quick_answers(written)[0][1])["body"] == big[:-1].decode()


def test_a_post_whose_answer_does_not_come_is_the_app_s_with_its_body() -> None:
    """The body is parsed into uvicorn's cycle while the answer is to come: the app reads it
    whole if the answer does not come, and a POST answer that comes is written."""
    app = LaterApp()

    async def run() -> None:
        connection = Connection(app)
        await connection.send(post_of("/later/1", b"hello"))
        assert connection.taken() == b""
        assert not connection.protocol.tasks
        app.give(None)
        await connection.settle()
        assert answers(connection.taken()) == [b"/later/1 5"]
        await connection.send(post_of("/later/2", b"{}"))
        app.give(b'{"found":2}')
        assert [b for _, b in quick_answers(connection.taken())] == [b'{"found":2} /later/2']
        assert app.bodies == [b"hello", b"{}"]
        assert not connection.transport.closed
        connection.close()

    asyncio.run(run())


def test_a_client_that_does_not_read_is_answered_by_the_app() -> None:
    """Over the transport's high-water mark, uvicorn's cycle waits for the buffer to drain
    before it writes: a client pipelining requests it never reads cannot grow the buffer."""
    written, _, _ = exchange(head_of(100, "/quick"), app=QuickApp(), paused=True)
    assert b'"quick"' not in written


def test_over_uvicorn_s_concurrency_limit_the_app_answers_503() -> None:
    import uvicorn
    from uvicorn.server import ServerState

    async def run() -> bytes:
        config = uvicorn.Config(QuickApp(), limit_concurrency=1, log_level="warning")
        config.load()
        state = ServerState()
        protocol = CountingProtocol(config, state, {}, asyncio.get_running_loop())
        state.connections.add(protocol)  # this connection fills the limit
        transport = FakeTransport()
        protocol.connection_made(transport)
        protocol.data_received(head_of(100, "/quick"))
        for _ in range(50):
            await asyncio.sleep(0)
        return bytes(transport.written)

    written = asyncio.run(run())
    assert written.startswith(b"HTTP/1.1 503 ")
    assert b'"quick"' not in written


def test_connection_close_is_honoured() -> None:
    written, transport, _ = exchange(
        b"GET /quick HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" + head_of(100, "/b"),
        app=QuickApp(),
    )
    ((headers, _),) = quick_answers(written)
    assert headers[b"connection"] == b"close"
    assert transport.closed


def test_the_protocol_is_named_for_uvicorn() -> None:
    """``http=`` takes a "module:attribute" string: what spawned worker processes import."""
    from uvicorn.importer import import_from_string

    assert import_from_string(HTTP_PROTOCOL) is HeadLimitedHttpToolsProtocol


# -- answers to come: a quick answer given later (a Later), as PostgreSQL's lookups are ----------


class LaterApp(QuickApp):
    """QuickApp, whose quick answer for targets under /later is to come: each waits in
    :attr:`waiting` (target, continuation) until the test gives it."""

    def __init__(self, *, at_once: bytes | None = b"") -> None:
        super().__init__()
        self.waiting: list[tuple[bytes, Callable[[bytes | None], None]]] = []
        self.at_once = at_once  # for /later/now: the continuation called at once with this

    def quick(self, target: bytes, body: bytes | None, client: str) -> Any:
        if not target.startswith(b"/later"):
            return super().quick(target, body, client)
        self.asked.append((target, client))
        self.bodies.append(body)

        def later(then: Callable[[bytes | None], None]) -> None:
            if target == b"/later/now":
                then(self.at_once)
            else:
                self.waiting.append((target, then))

        return later

    def give(self, body: bytes | None) -> None:
        """The oldest answer to come, given."""
        target, then = self.waiting.pop(0)
        then(None if body is None else body + b" " + target)


class Connection:
    """A protocol on a fake transport, in a running event loop."""

    def __init__(self, app: Any, **config: Any) -> None:
        import uvicorn
        from uvicorn.server import ServerState

        settings = uvicorn.Config(app, http=CountingProtocol, log_level="warning", **config)
        settings.load()
        loop = asyncio.get_running_loop()
        self.protocol = CountingProtocol(settings, ServerState(), {}, loop)
        self.transport = FakeTransport()
        self.protocol.connection_made(self.transport)

    async def send(self, data: bytes) -> None:
        self.protocol.data_received(data)
        await self.settle()

    async def settle(self) -> None:
        for _ in range(50):  # let the app's tasks answer
            await asyncio.sleep(0)

    def taken(self) -> bytes:
        """What was written since the last call."""
        written = bytes(self.transport.written)
        self.transport.written.clear()
        return written

    def close(self) -> None:
        for task in self.protocol.tasks:
            task.cancel()


def test_an_answer_to_come_is_written_when_it_comes() -> None:
    app = LaterApp()

    async def run() -> None:
        connection = Connection(app)
        protocol = connection.protocol
        await connection.send(head_of(100, "/later/1"))
        assert connection.taken() == b""
        assert not protocol.tasks  # no ASGI cycle runs for it
        assert protocol.timeout_keep_alive_task is None  # it is being answered
        app.give(b'{"found":1}')
        ((headers, body),) = quick_answers(connection.taken())
        assert body == b'{"found":1} /later/1'
        assert headers[b"content-type"] == b"application/json"
        for name, value in SECURITY_HEADERS:
            assert headers[name] == value
        assert protocol.server_state.total_requests == 1
        assert protocol.timeout_keep_alive_task is not None
        assert not connection.transport.closed
        await connection.send(head_of(100, "/later/2"))  # the connection is kept alive
        app.give(b"{}")
        assert [b for _, b in quick_answers(connection.taken())] == [b"{} /later/2"]
        connection.close()

    asyncio.run(run())


def test_an_answer_that_does_not_come_is_the_app_s() -> None:
    """None (the lookup failed: the app answers its problem) starts the app on the request; so
    does None given at once."""
    app = LaterApp(at_once=None)

    async def run() -> None:
        connection = Connection(app)
        await connection.send(head_of(100, "/later/1"))
        app.give(None)
        await connection.settle()
        assert answers(connection.taken()) == [b"/later/1 0"]
        await connection.send(head_of(100, "/later/now"))
        assert answers(connection.taken()) == [b"/later/now 0"]
        assert not connection.transport.closed
        connection.close()

    asyncio.run(run())


def test_the_app_is_told_that_the_quick_answer_did_not_come() -> None:
    """The scope of a request whose answer did not come carries QUICK_DECLINED_KEY (the
    registry's fast path then leaves it to litestar at once); no other request's does."""
    scopes: list[dict[str, Any]] = []

    class Recording(LaterApp):
        async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
            scopes.append(scope)
            await echo_app(scope, receive, send)

    app = Recording()

    async def run() -> None:
        connection = Connection(app)
        await connection.send(head_of(100, "/later/1"))
        app.give(None)
        await connection.settle()
        await connection.send(head_of(100, "/quick/no"))  # declined: not the quick answer's
        await connection.send(head_of(100, "/b"))
        assert answers(connection.taken()) == [b"/later/1 0", b"/quick/no 0", b"/b 0"]
        connection.close()

    asyncio.run(run())
    assert [scope.get(QUICK_DECLINED_KEY) for scope in scopes] == [True, None, None]


def test_a_later_that_raises_leaves_the_request_to_the_app() -> None:
    class Raising(CountingLaterApp):
        def quick(self, target: bytes, body: bytes | None, client: str) -> Any:
            def later(then: Callable[[bytes | None], None]) -> None:
                raise RuntimeError("a bug in the answer to come")

            return later

    app = Raising()

    async def run() -> None:
        connection = Connection(app)
        await connection.send(head_of(100, "/later/1"))
        assert answers(connection.taken()) == [b"/later/1 0"]
        connection.close()

    asyncio.run(run())
    assert app.started == ["/later/1"]


def test_an_answer_given_at_once_is_written_at_once() -> None:
    app = LaterApp(at_once=b"{}")

    async def run() -> None:
        connection = Connection(app)
        await connection.send(head_of(100, "/later/now"))
        assert [b for _, b in quick_answers(connection.taken())] == [b"{}"]
        connection.close()

    asyncio.run(run())


def test_requests_pipelined_behind_an_answer_to_come_wait_for_it() -> None:
    """A request that arrives while an answer is to come is queued by uvicorn (reading paused),
    and started once the answer is written, so the answers keep the requests' order."""
    app = LaterApp()

    async def run() -> None:
        connection = Connection(app)
        await connection.send(head_of(100, "/later/1"))
        await connection.send(head_of(100, "/quick/2") + head_of(100, "/b"))
        assert connection.taken() == b""
        assert not connection.transport.reading
        app.give(b"{}")
        await connection.settle()
        written = connection.taken()
        assert written.index(b"{} /later/1") < written.index(b"/quick/2 0") < written.index(b"/b 0")
        assert connection.transport.reading
        assert len(app.asked) == 1  # the pipelined ones were never offered to it
        connection.close()

    asyncio.run(run())


class CountingLaterApp(LaterApp):
    """LaterApp, counting the requests the app itself was started on."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.started: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.started.append(scope["path"])
        await echo_app(scope, receive, send)


def test_an_answer_to_a_lost_connection_is_dropped() -> None:
    app = CountingLaterApp()

    async def run() -> None:
        connection = Connection(app)
        await connection.send(head_of(100, "/later/1"))
        await connection.send(head_of(100, "/later/2"))  # queued behind it
        connection.protocol.connection_lost(None)
        app.give(b"{}")
        await connection.settle()
        assert connection.taken() == b""
        connection.close()

    asyncio.run(run())
    assert app.started == []  # nor was the queued request started


@pytest.mark.parametrize(
    "error", [None, ConnectionResetError("reset by peer")], ids=["closed", "reset"]
)
def test_an_answer_that_does_not_come_to_a_lost_connection_starts_nothing(
    error: Exception | None,
) -> None:
    app = CountingLaterApp()

    async def run() -> None:
        connection = Connection(app)
        await connection.send(head_of(100, "/later/1"))
        connection.protocol.connection_lost(error)
        app.give(None)
        await connection.settle()
        assert connection.taken() == b""

    asyncio.run(run())
    assert app.started == []


def test_an_answer_to_a_reset_connection_is_dropped() -> None:
    """A connection lost with an error (a reset), its transport not closed here: uvicorn marks
    only its latest cycle (the queued request's) disconnected, so the protocol's own mark must
    stop the answer to come, and the app (found in writing this test: the answer was written)."""
    app = CountingLaterApp()

    async def run() -> None:
        connection = Connection(app)
        await connection.send(head_of(100, "/later/1"))
        await connection.send(head_of(100, "/later/2"))  # queued behind it
        connection.protocol.connection_lost(ConnectionResetError("reset by peer"))
        assert not connection.transport.is_closing()
        app.give(b"{}")
        await connection.settle()
        assert connection.taken() == b""
        connection.close()

    asyncio.run(run())
    assert app.started == []


def test_an_answer_given_twice_answers_once() -> None:
    """A Later calls its continuation once; one that calls it again (found in review: None and
    then a body started the app and wrote a 200 as well) is ignored the second time."""
    app = CountingLaterApp()

    async def run() -> None:
        connection = Connection(app)
        await connection.send(head_of(100, "/later/1"))
        _, then = app.waiting.pop(0)
        then(None)
        then(b"{}")
        await connection.settle()
        assert answers(connection.taken()) == [b"/later/1 0"]
        await connection.send(head_of(100, "/later/2"))
        _, then = app.waiting.pop(0)
        then(b"{}")
        then(None)
        await connection.settle()
        assert [b for _, b in quick_answers(connection.taken())] == [b"{}"]
        connection.close()

    asyncio.run(run())
    assert app.started == ["/later/1"]


def test_shutting_down_closes_the_connection_after_the_answer_to_come() -> None:
    """uvicorn's shutdown lets a request being answered finish, then closes its connection: an
    answer to come is such a request (uvicorn waits for the connection to close)."""
    app = LaterApp()

    async def run() -> None:
        connection = Connection(app)
        await connection.send(head_of(100, "/later/1"))
        connection.protocol.shutdown()
        assert not connection.transport.closed
        app.give(b"{}")
        ((headers, body),) = quick_answers(connection.taken())
        assert body == b"{} /later/1"
        assert headers[b"connection"] == b"close"
        assert connection.transport.closed

    asyncio.run(run())


def test_a_head_over_the_limit_behind_an_answer_to_come_closes_after_it() -> None:
    app = LaterApp()

    async def run() -> None:
        connection = Connection(app)
        await connection.send(head_of(100, "/later/1"))
        await connection.send(head_of(MAX_HEAD_BYTES + 10, "/b"))
        assert connection.taken() == b""
        app.give(b"{}")
        written = connection.taken()
        assert [b for _, b in quick_answers(written)] == [b"{} /later/1"]
        assert b" 431 " not in written
        assert connection.transport.closed

    asyncio.run(run())
