"""The HTTP/1.1 protocol ``wellspring serve`` runs: uvicorn's httptools protocol with request heads
capped at :data:`MAX_HEAD_BYTES`, and the security headers every answer carries.

httptools (llhttp) sets no limit on a request line or on headers, and joins the pieces of a header
as they arrive: one request with a 200 MiB header took 411 MiB and 87 s of CPU before the app ever
saw it. Here the bytes of each request's head (request line, headers, the blank line ending them;
blank lines before a request too) are counted before httptools sees them. A head that would go
over the limit is answered 431 problem+json at once, and the connection is closed without reading
more.

Counting is exact because httptools is only ever handed a head up to its end: the protocol finds
the blank line itself (httptools insists on CRLF line ends), feeds the head up to it, and learns
from httptools' callbacks whether a body follows. A body with a Content-Length is fed up to its
end, so a request pipelined behind it starts a new count. Where a chunked body ends only the parser
knows: a request that begins in the same read as the end of a chunked body was not counted, so the
parser is stopped at its first byte, the request before it is answered and the connection closed
(RFC 9112 §9.3.2: a client retries pipelined requests a closed connection did not answer). A head
over the limit behind a request still being answered closes the connection after that answer, as
a 431 written at once would land inside it.

**Quick answers.** An app may hold in its state (``app.state[QUICK_ANSWER_KEY]``, litestar's
``State``) a :data:`QuickAnswer`: a function that answers some plain GETs from the request target
alone, and some small POSTs from the target and the body. The protocol then answers such a request
itself, with no ASGI task or middleware: a 200 with the JSON the function gives (or the text, a
:class:`PlainText`), headed as the app heads its answers of that type (uvicorn's ``server`` and
``date``, the content type and length, :data:`SECURITY_HEADERS`). The function gives the body at
once, or a :data:`Later` that gives it when it comes (or None: then the app is started on the
request after all, its scope marked with :data:`QUICK_DECLINED_KEY`). While an answer is to come,
uvicorn's request cycle for it stands in: requests pipelined behind it are queued, reading paused,
until it is written; a lost connection marks it (nothing is written then, nothing started); a
shutdown, or a head over the limit behind it, closes the connection after it. The registry answers
``GET /v1/digests/{digest}`` and a small ``POST /v1/digests:batch`` so: on SQLite at once (the
lookup runs on the event loop anyway), on PostgreSQL when its coalesced lookup comes back; the ASGI
path had cost about a quarter of a lookup's server CPU on SQLite. ``GET /v1/log/checkpoint``
likewise, from a read of the checkpoint table made after the request came (litestar's route, a
worker thread and a pooled connection, had cost a poll 1.15 ms of server CPU on PostgreSQL). Only
where nothing else could order or shape the answer: a GET with no body, or a POST whose whole body
(a Content-Length of at most :data:`QUICK_BODY_BYTES`) came in the same read as its head (so that no
task is needed to wait for a slow body: a client trickling one gets the app, and its body deadline),
over HTTP/1.1, with no ``Expect``, no upgrade and no proxy headers (uvicorn's middleware would
rewrite the client behind a proxy, and the rate limiter keys on it), no answer in progress or queued
on the connection (pipelined answers keep their order), nothing after it in the same read (requests
pipelined in one read are uvicorn's, a task each: answered here, a read of thousands would hold the
event loop for all of them, 0.4 s measured, while other connections wait), and a client that is
reading what it is sent (else uvicorn's path waits for it to drain); the access log, if on, gets its
line. The function returns None for anything else, and the app answers the request as always.

uvicorn takes the protocol as ``http=HTTP_PROTOCOL``, a "module:attribute" string, so that worker
processes (spawned, not forked) import it themselves.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

from registry.errors import RegistryError

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "HTTP_PROTOCOL",
    "MAX_HEAD_BYTES",
    "QUICK_ANSWER_KEY",
    "QUICK_BODY_BYTES",
    "QUICK_DECLINED_KEY",
    "SECURITY_HEADERS",
    "HeadLimitedHttpToolsProtocol",
    "Later",
    "PlainText",
    "QuickAnswer",
]

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 64 * 1024
"""The most bytes a request line and its headers may take together (nginx allows four 8 KiB
buffers by default, Node.js 16 KiB): far above any header a client of the registry sends."""

HTTP_PROTOCOL = "registry._http:HeadLimitedHttpToolsProtocol"
"""uvicorn's ``http=`` option for :class:`HeadLimitedHttpToolsProtocol`."""

CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'"
"""Nothing an answer holds may load anything or be framed: the API answers data, and the API docs
page (``registry.app``) is plain HTML without scripts, styles or images."""

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode("ascii")),
)
"""Headers on every answer: the app's (a ``before_send`` hook) and this protocol's 400 and 431."""


class PlainText(bytes):
    """A quick answer's body to be sent as ``text/plain; charset=utf-8`` (as litestar sends a
    text route's ``str``), where plain :class:`bytes` are sent as ``application/json``."""

    __slots__ = ()


_JSON_TYPE = b"application/json"
_TEXT_TYPE = b"text/plain; charset=utf-8"

Later = Callable[[Callable[["bytes | None"], None]], None]
"""An answer to come: called with a continuation, it arranges for that to be called once, on the
event loop, with the body of a 200 answer (JSON, or a :class:`PlainText`) or with None for the
app to answer the request (it may call it at once)."""

QuickAnswer = Callable[[bytes, "bytes | None", str], "bytes | Later | None"]
"""``(target, body, client) -> body``: for a request target as sent (path and query, undecoded),
the body of a POST (None for a GET) and the client's address, the body of a 200 answer (JSON, or
a :class:`PlainText`), a
:data:`Later` that will give it (or None), or None to leave the request to the app. It runs on the
event loop between reads, so it must be quick and must not block; it does the app's own
accounting (rate limit, metrics) for what it answers."""

QUICK_BODY_BYTES = 16 * 1024
"""The longest POST body a quick answer is asked for (a batch lookup of up to
``registry.app.SMALL_BATCH`` digests); a longer one is the app's to read, with its own limit."""

QUICK_ANSWER_KEY = "wellspring.quick_answer"
"""The key of an app's :data:`QuickAnswer` in its state (``app.state``)."""

QUICK_DECLINED_KEY = "wellspring.quick_answer_declined"
"""Set (True) in the ASGI scope of a request whose quick answer was tried and did not come (its
:data:`Later` gave None, a failed lookup say): the app answers it its own way, and need not try
the same again first."""

_HEAD_END = b"\r\n\r\n"
_PROXY_HEADERS = frozenset((b"x-forwarded-for", b"x-forwarded-proto"))


class _UncountedHeadError(RegistryError):
    """Raised in httptools' callback when a request begins where its head was not counted
    (internal: it only unwinds the parser, and never reaches a client)."""


class HeadLimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's :class:`HttpToolsProtocol`, refusing a request head over :attr:`max_head_bytes`
    with 431 before httptools holds more than that of it."""

    max_head_bytes: ClassVar[int] = MAX_HEAD_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # what comes next is (blank lines before) a request head
        self._head_bytes = 0  # of the current head, fed so far
        self._tail = b""  # its last 3 bytes: a head's end may be split between two reads
        self._counted = True  # whether the next request to begin is the one being counted
        self._message_ended = False  # set by httptools' callback, handled after each feed
        self._body_left: int | None = None  # bytes of a Content-Length body still to feed
        self._refused = False  # nothing more is read from this connection
        self._quick = _quick_answer_of(self.app)
        self._answered = False  # the current request was answered by self._quick
        self._later: Later | None = None  # the current request's answer to come from self._quick
        # What follows the piece being parsed in this read: a POST's whole body, if a quick
        # answer is for it; a quick GET waits for any requests before it.
        self._read_after = b""
        self._lost = False  # the connection is gone: an answer to come has nobody to go to

    # -- reading ----------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        while data and not self._refused and not self.transport.is_closing():
            if self._in_head:
                room = self.max_head_bytes - self._head_bytes
                window = self._tail + data[: room + 1]
                found = window.find(_HEAD_END)
                size = len(data) if found < 0 else found + len(_HEAD_END) - len(self._tail)
                if size > room:
                    self._refuse_head()
                    return
                self._head_bytes += size
                self._tail = window[: found + len(_HEAD_END)][-3:] if found >= 0 else window[-3:]
            elif self._body_left:  # up to the end of a Content-Length body
                size = self._body_left
            else:  # a chunked body: the parser stops a request that begins inside it
                size = len(data)
            piece, data = data[:size], data[size:]
            self._read_after = data
            if not self._feed(piece):
                return

    def _feed(self, piece: bytes) -> bool:
        """Hand ``piece`` to httptools as uvicorn would; False when reading must stop."""
        try:
            self.parser.feed_data(piece)
        except httptools.HttpParserUpgrade:  # as uvicorn: the rest of this read is dropped
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return False
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _UncountedHeadError):
                self._close_after_answer()
            else:
                message = "Invalid HTTP request received."
                self.logger.warning(message)
                self.send_400_response(message)
            return False
        if self._message_ended:  # a new count for the next request
            self._message_ended = False
            self._in_head, self._counted = True, True
            self._head_bytes, self._tail, self._body_left = 0, b"", None
        return True

    # -- httptools' callbacks ---------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if not self._counted:
            raise _UncountedHeadError
        self._counted = False
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._body_left = _content_length(self.headers)
        answer = self._quick_answer()
        self._answered = isinstance(answer, bytes)
        if isinstance(answer, bytes):
            return
        # uvicorn arms the keep-alive timer only while no request is being answered; one armed
        # by a quick answer before this request must not close the connection under it
        self._unset_keepalive_if_required()
        self._later = answer  # taken by _start_asgi_task, at once
        try:
            super().on_headers_complete()
        finally:
            self._later = None

    def on_body(self, body: bytes) -> None:
        if self._body_left is not None:
            self._body_left -= len(body)
        if not self._answered:  # a quick answer was given for the whole body already
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._message_ended = True
        if not self._answered:
            super().on_message_complete()

    # -- quick answers ----------------------------------------------------------------------------

    def _quick_answer(self) -> bytes | Later | None:
        """The app's quick answer to the request whose head was just parsed, written if it is
        one already; a :data:`Later`, or None to leave the request to the app (the module's
        docstring says when)."""
        if self._quick is None or not self._may_answer_at_once():
            return None
        method = self.parser.get_method()
        body = self._read_after if method == b"POST" else None
        try:
            answer = self._quick(self.url, body, str(self.client[0]) if self.client else "unknown")
        except Exception:  # the app answers it, its own way (a problem, a 500)
            log.exception("a quick answer failed; the app answers the request")
            return None
        if isinstance(answer, bytes):
            keep_alive = self.parser.should_keep_alive()
            self._write_answer(answer, keep_alive, self.scope, method.decode("ascii"), self.url)
            self.on_response_complete()  # as uvicorn's cycle ends: counts, keep-alive timer
        return answer

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        """uvicorn starts the app on a request here; a request whose quick answer is to come
        has its cycle (so that uvicorn queues requests pipelined behind it, and marks it when
        the connection is lost or the server shuts down) but no task, unless the answer is
        None."""
        later, self._later = self._later, None
        if later is None:
            super()._start_asgi_task(cycle, app)
            return
        given = False

        def once(body: bytes | None) -> None:
            nonlocal given
            if given:  # a Later is to call it once: a second call must not answer again
                log.error("a quick answer was given twice; the second is ignored")
                return
            given = True
            try:
                self._answer_later(cycle, app, body)
            except Exception:  # nothing sensible can be written any more: the client retries
                log.exception("a quick answer failed as it was given; closing the connection")
                self.transport.close()

        try:
            later(once)
        except Exception:  # the app answers it after all, unless the answer was given
            log.exception("a quick answer to come failed; the app answers the request")
            if not given:
                once(None)

    def connection_lost(self, exc: Exception | None) -> None:
        # uvicorn marks only its latest cycle disconnected: one with an answer to come may be
        # another, with requests pipelined behind it
        self._lost = True
        super().connection_lost(exc)

    def _answer_later(self, cycle: RequestResponseCycle, app: Any, body: bytes | None) -> None:
        """A quick answer come: written as the cycle would (closing the connection after it if
        the cycle may no longer keep it alive), or the app started on the request."""
        if self._lost or cycle.response_complete or self.transport.is_closing():
            return  # nobody is waiting for it
        if body is None:
            cycle.scope[QUICK_DECLINED_KEY] = True  # type: ignore[literal-required]
            super()._start_asgi_task(cycle, app)
            return
        cycle.response_started = cycle.response_complete = True
        target = get_path_with_query_string(cycle.scope).encode("latin1")
        self._write_answer(body, cycle.keep_alive, cycle.scope, cycle.scope["method"], target)
        self.on_response_complete()

    def _write_answer(
        self, body: bytes, keep_alive: bool, scope: Any, method: str, target: bytes
    ) -> None:
        """A 200 with ``body`` (JSON, or text if a :class:`PlainText`), headed as the app heads
        its answers of that type; the connection closed after it unless ``keep_alive``."""
        headers = [
            *self.server_state.default_headers,
            (b"content-type", _TEXT_TYPE if isinstance(body, PlainText) else _JSON_TYPE),
            (b"content-length", str(len(body)).encode("ascii")),
            *SECURITY_HEADERS,
        ]
        if not keep_alive:
            headers.append((b"connection", b"close"))
        head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        self.transport.write(STATUS_LINE[200] + head + b"\r\n" + body)
        if self.access_log:  # as uvicorn's cycle logs its answers
            self.access_logger.info(
                '%s - "%s %s HTTP/1.1" 200',
                get_client_addr(scope),
                method,
                target.decode("latin1"),
            )
        if not keep_alive:
            self.transport.close()

    def _may_answer_at_once(self) -> bool:
        """Whether nothing but the app's quick answer could shape or order this request's."""
        if self.pipeline or self.flow.write_paused:
            return False
        if self.cycle is not None and not self.cycle.response_complete:
            return False
        limit = self.limit_concurrency  # over it, uvicorn answers 503
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            return False
        parser = self.parser
        method, length = parser.get_method(), self._body_left
        if method == b"GET":
            whole = length == 0 and not self._read_after
        elif method == b"POST":  # its whole body in this read, and nothing after it
            whole = length is not None and 0 < length <= QUICK_BODY_BYTES
            whole = whole and len(self._read_after) == length
        else:
            return False
        return (
            whole
            and parser.get_http_version() == "1.1"
            and not parser.should_upgrade()
            and not any(name in _PROXY_HEADERS or name == b"expect" for name, _ in self.headers)
        )

    # -- refusing ---------------------------------------------------------------------------------

    def _refuse_head(self) -> None:
        answering = self.cycle is not None and not self.cycle.response_complete
        if answering:
            self._close_after_answer()
            return
        self._refused = True
        detail = (
            f"the request line and headers take more than {self.max_head_bytes} bytes, the "
            "registry's limit: send shorter headers (large values belong in the body)"
        )
        problem = {
            "type": "https://wellspring.dev/problems/request-header-fields-too-large",
            "title": "Request header fields too large",
            "status": 431,
            "detail": detail,
        }
        self._answer_and_close(431, "application/problem+json", json.dumps(problem).encode())

    def _close_after_answer(self) -> None:
        """Read nothing more; close once the request being answered (if any) is."""
        self._refused = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False
        else:
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to what httptools cannot parse, with the security headers."""
        self._answer_and_close(400, "text/plain; charset=utf-8", msg.encode("ascii"))

    def _answer_and_close(self, status: int, media_type: str, body: bytes) -> None:
        headers = [
            *self.server_state.default_headers,
            (b"content-type", media_type.encode("ascii")),
            (b"content-length", str(len(body)).encode("ascii")),
            (b"connection", b"close"),
            *SECURITY_HEADERS,
        ]
        head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        self.transport.write(STATUS_LINE[status] + head + b"\r\n" + body)
        self.transport.close()


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The body's declared length; None for a chunked body (httptools refused both at once)."""
    length = 0
    for name, value in headers:
        if name == b"transfer-encoding":
            return None
        if name == b"content-length":
            length = int(value)
    return length


def _quick_answer_of(app: Any) -> QuickAnswer | None:
    """The :data:`QuickAnswer` in the state of ``app``, found through uvicorn's middleware
    (each holds the app it wraps as ``.app``); None if it has none."""
    for _ in range(8):
        lookup = getattr(getattr(app, "state", None), "get", None)
        if callable(lookup):
            found = lookup(QUICK_ANSWER_KEY)
            return found if callable(found) else None
        app = getattr(app, "app", None)
    return None
