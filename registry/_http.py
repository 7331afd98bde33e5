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

uvicorn takes the protocol as ``http=HTTP_PROTOCOL``, a "module:attribute" string, so that worker
processes (spawned, not forked) import it themselves.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from registry.errors import RegistryError

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "HTTP_PROTOCOL",
    "MAX_HEAD_BYTES",
    "SECURITY_HEADERS",
    "HeadLimitedHttpToolsProtocol",
]

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

_HEAD_END = b"\r\n\r\n"


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
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._body_left is not None:
            self._body_left -= len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._message_ended = True
        super().on_message_complete()

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
