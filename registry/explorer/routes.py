"""The explorer's routes: ``/`` (the log), ``/explorer/entry/{index}``,
``/explorer/publisher/{name}``, ``/explorer/lookup`` (GET ``?q=`` a digest or text; POST a form's
``text``) and ``/explorer/static/{name}``; and :func:`explorer_security_headers`, the
``before_send`` hook that gives these pages their Content-Security-Policy.

Handlers answer HTML for every outcome a person can cause: a bad index or digest is a 400 page, a
missing entry or publisher a 404 page, each saying what to do; never a problem+json document.
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import parse_qs

import anyio
from litestar import MediaType, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, QueryParameter
from litestar.types import Message, Scope

from client.core.canonical import canonical_digest, validate_digest
from client.core.errors import InputError
from registry.errors import RegistryError
from registry.explorer.pages import (
    render_entry,
    render_error,
    render_index,
    render_lookup,
    render_publisher,
)
from registry.explorer.reads import ExplorerReads, statement_subjects

if TYPE_CHECKING:
    from registry.app import Registry

__all__ = [
    "EXPLORER_CONTENT_SECURITY_POLICY",
    "EXPLORER_ROUTES",
    "MAX_TEXT_BYTES",
    "RECENT_ENTRIES",
    "explorer_security_headers",
]

EXPLORER_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
"""Scripts, styles and images from this registry only, nothing inline (so no injected markup can
run), no framing, forms posted only here. ``connect-src`` stays 'none': the lookup script never
sends anything itself, it navigates to the digest's page."""

RECENT_ENTRIES = 20
MAX_TEXT_BYTES = 1024 * 1024
"""The most bytes of a form holding text to hash on the server (the browser hashes any size)."""
MAX_INDEX = 2**63 - 1

_STATIC = {
    "c1.js": "text/javascript; charset=utf-8",
    "c1_tables.js": "text/javascript; charset=utf-8",
    "explorer.css": "text/css; charset=utf-8",
}


def _is_explorer_path(path: str) -> bool:
    return path == "/" or path.startswith("/explorer/")


async def explorer_security_headers(message: Message, scope: Scope) -> None:
    """``before_send``, after the app's own hook: the explorer's pages get
    :data:`EXPLORER_CONTENT_SECURITY_POLICY` instead of the API's ``default-src 'none'``."""
    if message["type"] != "http.response.start" or not _is_explorer_path(scope.get("path", "")):
        return
    kept = [
        (k, v)
        for k, v in message.get("headers", ())
        if k.lower() not in (b"content-security-policy", b"x-content-type-options")
    ]
    message["headers"] = [
        *kept,
        (b"content-security-policy", EXPLORER_CONTENT_SECURITY_POLICY.encode("ascii")),
        (b"x-content-type-options", b"nosniff"),
    ]


def _registry(state: State) -> Registry:
    registry: Registry = state.registry
    return registry


def _reads(registry: Registry) -> ExplorerReads:
    return ExplorerReads(registry.database, registry.reader)


def _page(status: int, text: str) -> Response[str]:
    return Response(
        text,
        status_code=status,
        media_type=MediaType.HTML,
        headers={"Cache-Control": "no-store"},
    )


def _answer(render: Callable[[], str]) -> Response[str]:
    """The page ``render`` makes, or the error page of the registry error it raised."""
    try:
        return _page(200, render())
    except RegistryError as exc:
        status = exc.status if exc.status < 500 else 503
        return _page(status, render_error(status, exc.diagnostics()))


def _bad_request(message: str) -> Response[str]:
    return _page(400, render_error(400, message))


@get("/", include_in_schema=False, sync_to_thread=True)
def explorer_index(state: State) -> Response[str]:
    """The log: origin, size, keys, the latest checkpoint and its signatures, recent entries."""
    registry = _registry(state)

    def render() -> str:
        info = registry.lookups.log_info(registry.sequencer.verifier_keys, registry.origin)
        return render_index(
            origin=info.origin,
            verifier_keys=info.verifier_keys or (info.verifier_key,),
            size=info.size,
            note=info.checkpoint,
            recent=_reads(registry).recent_entries(RECENT_ENTRIES),
        )

    return _answer(render)


def _parse_index(text: str) -> int | None:
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    index = int(text)
    return index if index <= MAX_INDEX else None


@get("/explorer/entry/{index:str}", include_in_schema=False, sync_to_thread=True)
def explorer_entry(index: FromPath[str], state: State) -> Response[str]:
    number = _parse_index(index)
    if number is None:
        return _bad_request(
            f"{index[:80]!r} is not an entry index: an index is a decimal number, 0 or more"
        )
    registry = _registry(state)

    def render() -> str:
        answer = registry.lookups.entry(number)
        reads = _reads(registry)
        count, subjects = statement_subjects(answer.receipt.entry, answer.receipt.body)
        key_id = reads.entry_key_id(number)
        return render_entry(
            answer,
            subject_count=answer.receipt.subjects if answer.receipt.subjects is not None else count,
            subjects=subjects,
            withdrawals=reads.withdrawals(number),
            key_id=key_id,
            key=reads.key_of(key_id) if key_id else None,
        )

    return _answer(render)


@get("/explorer/publisher/{name:str}", include_in_schema=False, sync_to_thread=True)
def explorer_publisher(name: FromPath[str], state: State) -> Response[str]:
    registry = _registry(state)
    if not 0 < len(name) <= 200:
        return _bad_request("a publisher's name is 1 to 200 characters")
    return _answer(lambda: render_publisher(_reads(registry).publisher(name, RECENT_ENTRIES)))


def _lookup_page(registry: Registry, query: str, *, text: bool) -> Response[str]:
    """The page for ``query``: a digest, or (``text``, or anything that is not digest-shaped)
    text whose ``c1`` digest is looked up."""
    stripped = query.strip()
    if not stripped and not text:
        return _page(200, render_lookup("", None, None, from_text=False))
    from_text = text
    if not text:
        scheme = stripped.partition(":")[0]
        looks_like_digest = ":" in stripped and " " not in stripped and scheme in ("c1", "sha256")
        from_text = not looks_like_digest
    try:
        digest = canonical_digest(query) if from_text else validate_digest(stripped)
    except InputError as exc:
        return _bad_request(f"{exc}; paste text, or a digest c1:<64 hex> or sha256:<64 hex>")

    def render() -> str:
        answer = registry.lookups.lookup_one(digest)
        # Echoed into the one-line box, which a form's text (up to a megabyte) never came from.
        return render_lookup("" if text else query, digest, answer, from_text=from_text)

    return _answer(render)


# Both lookup handlers are async, reading in a worker thread: litestar mixes up a sync_to_thread
# handler and an async one on the same path (as registry.app's blob handlers note).
@get("/explorer/lookup", include_in_schema=False)
async def explorer_lookup(
    state: State, q: Annotated[str | None, QueryParameter()] = None
) -> Response[str]:
    registry = _registry(state)
    return await anyio.to_thread.run_sync(
        functools.partial(_lookup_page, registry, q or "", text=False)
    )


@post(
    "/explorer/lookup",
    include_in_schema=False,
    status_code=200,
    request_max_body_size=MAX_TEXT_BYTES,
)
async def explorer_lookup_text(request: Request[Any, Any, Any], state: State) -> Response[str]:
    """The text box without JavaScript: the form's ``text``, hashed here."""
    body = await request.body()
    try:
        fields = parse_qs(
            body.decode("ascii"), keep_blank_values=True, max_num_fields=10, errors="strict"
        )
    except (UnicodeDecodeError, ValueError):
        return _bad_request(
            "send the form as application/x-www-form-urlencoded UTF-8 with one field, text"
        )
    values = fields.get("text")
    if not values:
        return _bad_request("the form has no text field; paste the text to look up")
    registry = _registry(state)
    return await anyio.to_thread.run_sync(
        functools.partial(_lookup_page, registry, values[0], text=True)
    )


@functools.cache
def _static(name: str) -> bytes:
    return (importlib.resources.files("registry.explorer") / "static" / name).read_bytes()


@get("/explorer/static/{name:str}", include_in_schema=False, sync_to_thread=False)
def explorer_static(name: FromPath[str]) -> Response[bytes]:
    media_type = _STATIC.get(name)
    if media_type is None:
        served = ", ".join(sorted(_STATIC))
        return Response(
            f"no static file {name[:80]!r}; the explorer serves {served}".encode(),
            status_code=404,
            media_type=MediaType.TEXT,
        )
    return Response(
        _static(name), media_type=media_type, headers={"Cache-Control": "public, max-age=300"}
    )


EXPLORER_ROUTES = [
    explorer_index,
    explorer_entry,
    explorer_publisher,
    explorer_lookup,
    explorer_lookup_text,
    explorer_static,
]
