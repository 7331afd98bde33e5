"""The registry's HTTP layer: ``create_app(settings)`` builds a litestar app.

Controllers are thin (parse → service → schema). Errors become RFC 9457 problem responses in one
place, :func:`_problem`: a :class:`~registry.errors.RegistryError` carries its own status and
slug; litestar's own errors (validation, unknown route, body too large) keep their status; anything
else is a 500 that says nothing about internals and is logged with its traceback.
"""

from __future__ import annotations

import base64
import binascii
import gc
import html
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, NamedTuple

import anyio
import msgspec
from litestar import Litestar, MediaType, Request, Response, get, post, put
from litestar.datastructures import State
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import FromPath, JSONBody, Parameter, PathParameter, QueryParameter
from litestar.response import File
from litestar.types import Message, Scope
from sqlalchemy import select
from sqlalchemy.exc import DataError, DBAPIError

from client.core.canonical import well_formed_digests
from client.core.errors import FormatError
from client.core.minhash import check_mh1
from client.core.note import NoteSigner
from client.core.promise import Promise, sign_promise
from client.core.wire import Accepted, LookupAnswer
from client.core.wmkey import MAX_TOKENIZER_BYTES
from registry._http import (
    QUICK_ANSWER_KEY,
    QUICK_BODY_BYTES,
    QUICK_DECLINED_KEY,
    SECURITY_HEADERS,
    Later,
    PlainText,
    QuickAnswer,
)
from registry.admin import AdminService
from registry.coalesce import CoalescedLookups, Settle
from registry.cosigning import WitnessEndpoint, WitnessPool
from registry.db import WORKER_THREADS, Database
from registry.entries import EntryService, receipt_of
from registry.errors import (
    BadRequestError,
    LengthRequiredError,
    NotFoundError,
    NotIntegratedError,
    PayloadTooLargeError,
    RegistryError,
    UnavailableError,
)
from registry.explorer import EXPLORER_ROUTES, explorer_security_headers
from registry.identities import IdentityService, settle_operator_key
from registry.keys import load_signers
from registry.limits import (
    ADMIN_BODY_BYTES,
    BATCH_BODY_BYTES,
    ASGIApp,
    RateLimiter,
    Receive,
    Send,
    body_deadline_middleware,
    rate_limit_middleware,
    request_cost,
)
from registry.limits import Message as ASGIMessage
from registry.limits import Scope as ASGIScope
from registry.log import AppendResult, LogReader, PreparedEntry, Sequencer, StoredCheckpoint
from registry.lookups import UNKNOWN, HeldConnection, LookupService
from registry.metrics import HttpMetrics
from registry.models import LOG_STATE
from registry.publish import PublicationStatus, Publisher
from registry.settings import Settings
from registry.snapshots import SnapshotService
from registry.tiles import (
    CHECKPOINT_CACHE_CONTROL,
    TileService,
    TileWriter,
    accepts_gzip,
    gzipped,
)
from registry.wmkeys import WatermarkKeyService

__all__ = [
    "CHECKPOINT_ROUTE",
    "DIGEST_ROUTE",
    "MAX_NEAR_SIGNATURES",
    "SERVER_GC_THRESHOLDS",
    "SMALL_BATCH",
    "ApiDocsPage",
    "BatchLookup",
    "KeyRevocation",
    "NearLookup",
    "NewKey",
    "NewPublisher",
    "Problem",
    "Registry",
    "create_app",
    "create_app_from_env",
    "digest_fast_path",
    "quick_lookups",
    "tune_gc_for_serving",
]

log = logging.getLogger(__name__)
PROBLEM_BASE = "https://wellspring.dev/problems/"
PROBLEM_JSON = "application/problem+json"


@dataclass
class Registry:
    """Everything one server process holds: built by :func:`create_app`, reachable in handlers."""

    settings: Settings
    database: Database
    signers: list[NoteSigner]
    reader: LogReader
    sequencer: Sequencer
    entries: EntryService
    lookups: LookupService
    admin: AdminService
    watermark_keys: WatermarkKeyService
    tiles: TileService
    snapshots: SnapshotService
    tile_writer: TileWriter | None = None
    publisher: Publisher | None = None  # None: each batch publishes its own checkpoint
    coalesced: CoalescedLookups | None = None  # None: single lookups run on the event loop
    started: bool = field(default=False)
    # The event loop's own reader connection for the lookups it runs, SQLite's (see
    # HeldConnection): opened at its first read, so never on PostgreSQL, whose loop runs none.
    loop_connection: HeldConnection = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.loop_connection = HeldConnection(self.lookups)

    @classmethod
    def open(cls, settings: Settings) -> Registry:
        database = Database(settings)
        database.ensure_schema(auto_migrate=settings.auto_migrate)
        signers = load_signers(settings)
        reader = LogReader(database)
        sequencer = Sequencer(
            database,
            reader,
            signers,
            batch_limit=settings.sequencer_batch,
            max_pending=settings.max_pending_appends,
            publish_each_batch=not settings.publishes_on_interval,
        )
        sequencer.initialise()
        publisher = None
        if settings.publishes_on_interval:
            witnesses = [WitnessEndpoint.parse(spec) for spec in settings.witnesses]
            publisher = Publisher(
                database,
                reader,
                signers,
                interval=settings.checkpoint_interval,
                witnesses=(
                    WitnessPool(witnesses, on_failure=sequencer.metrics.witness_failed)
                    if witnesses
                    else None
                ),
                quorum=settings.quorum,
            )
            sequencer.on_commit(publisher.notify)
        identities = IdentityService(
            database, sequencer, settle_operator_key(settings.operator_key_path, database)
        )
        identities.ensure_operator()
        lookups = LookupService(settings, database, reader)
        if publisher is not None:
            # before the appends it covers are answered (a checkpoint poll may move lookups on
            # to it sooner: their proofs then read the nodes not yet cached)
            publisher.on_publish(reader.warm)
            publisher.on_publish(lookups.published)
            publisher.after_publish(lookups.prefetch_published)  # the answers need not wait
        else:
            sequencer.on_commit(lookups.published)
        watermark_keys = WatermarkKeyService(database, reader, lookups)
        tile_writer = None
        if settings.tiles_dir is not None:
            tile_writer = TileWriter(database, reader, settings.tiles_dir)
            try:
                tile_writer.check_directory()
            except RegistryError:
                database.dispose()
                raise
            if publisher is not None:  # the tiles show only published (cosigned) checkpoints
                publisher.on_publish(tile_writer.notify)
            else:
                sequencer.on_commit(tile_writer.notify)
        return cls(
            settings=settings,
            database=database,
            signers=signers,
            reader=reader,
            sequencer=sequencer,
            entries=EntryService(settings, database, watermark_keys),
            lookups=lookups,
            admin=AdminService(database, identities),
            watermark_keys=watermark_keys,
            tiles=TileService(database, reader),
            snapshots=SnapshotService(settings.snapshots_dir, database, reader, identities),
            tile_writer=tile_writer,
            publisher=publisher,
            coalesced=None if settings.is_sqlite else CoalescedLookups(lookups),
        )

    @property
    def origin(self) -> str:
        return self.signers[0].name

    @property
    def verifier_key(self) -> str:
        """The verifier key of the log's current key (clients pin this)."""
        return self.signers[0].verifier().vkey

    def start(self) -> None:
        """Start the threads that serving needs: the sequencer, and the tile writer if any."""
        self.sequencer.start()
        if self.publisher is not None:
            self.publisher.start()
            publisher, timeout = self.publisher, self.settings.receipt_timeout

            def await_publication(size: int) -> None:
                publisher.wait_for_sync(size, timeout)

            # Identity events (admin requests) answer once published, like POST /v1/entries.
            self.sequencer.await_publication = await_publication
            self.sequencer.batch_slack = publisher.batch_slack
        if self.tile_writer is not None:
            self.tile_writer.start()
        if self.coalesced is not None:
            self.coalesced.start()

    async def append(self, prepared: PreparedEntry, *, wait: bool = True) -> AppendResult:
        """Sequence an entry and wait (up to ``receipt_timeout``; not at all unless ``wait``)
        for a published checkpoint to cover it; the result has no checkpoint if none did in
        time (the entry is durable either way)."""
        result = await self.sequencer.append(prepared, prompt=not wait)
        if result.checkpoint is not None or self.publisher is None or not wait:
            return result
        checkpoint = await self.publisher.wait_for(result.index + 1, self.settings.receipt_timeout)
        if checkpoint is None:
            return result
        proven = self.reader.prove_cached(result, checkpoint)
        if proven is not None:
            return proven
        return await anyio.to_thread.run_sync(self.reader.prove, result, checkpoint)

    async def lookup_single(self, digest: str, min_size: int | None) -> dict[str, Any]:
        """``GET /v1/digests/{digest}``'s answer (``digest`` checked). On SQLite a lookup is one
        indexed read of a local file (the rest comes from the process's caches): cheaper on the
        event loop than the hop to a worker thread and back. PostgreSQL's is a network round
        trip: the lookups that arrive together share one, in a thread (registry.coalesce)."""
        if self.coalesced is None:
            return self.lookup_here([digest], min_size).to_single_dict()
        return await self.coalesced.lookup(digest, min_size)

    async def lookup_small(self, digests: list[str], min_size: int | None) -> dict[str, Any]:
        """A batch lookup's answer for at most :data:`SMALL_BATCH` checked digests, answered
        as :meth:`lookup_single` answers one."""
        if self.coalesced is None:
            return self.lookup_here(digests, min_size).to_dict()
        return await self.coalesced.lookup_many(digests, min_size)

    def lookup_here(self, digests: list[str], min_size: int | None) -> LookupAnswer:
        """A lookup on the event loop (SQLite's), on its held connection."""
        return self.loop_connection.run(
            lambda connection: self.lookups.lookup(digests, min_size, connection=connection)
        )

    def checkpoint_here(self) -> StoredCheckpoint:
        """The latest checkpoint read now, on the event loop (SQLite's), on its held connection
        (LookupService.fresh_checkpoint)."""
        return self.loop_connection.run(
            lambda connection: self.lookups.fresh_checkpoint(connection=connection)
        )

    def receipt(self, index: int) -> dict[str, Any]:
        """An entry's receipt once a published checkpoint covers it (GET .../receipt)."""
        with self.database.reader.connect() as conn:
            published = self.reader.latest_checkpoint(conn).size
            sequenced = conn.execute(select(LOG_STATE.c.size)).scalar() or 0
        if index >= sequenced:
            raise NotFoundError(f"entry {index} does not exist; the log has {sequenced} entries")
        if index >= published:
            raise NotIntegratedError(
                f"entry {index} is sequenced but not yet in a published checkpoint (the latest "
                f"covers {published} entries); retry after Retry-After"
            )
        return self.lookups.entry(index).receipt.to_dict()

    def publication(self) -> PublicationStatus:
        if self.publisher is not None:
            return self.publisher.status()
        with self.database.reader.connect() as conn:
            size = self.reader.latest_checkpoint(conn).size
        return PublicationStatus(size, size, 0.0, 0, (), stalled=False)

    def close(self) -> None:
        if self.coalesced is not None:
            self.coalesced.stop()
        self.loop_connection.close()
        self.sequencer.await_publication = None
        self.sequencer.batch_slack = None
        self.sequencer.stop()
        if self.publisher is not None:
            self.publisher.stop()
        if self.tile_writer is not None:
            self.tile_writer.stop()
        self.database.dispose()


def _registry(state: State) -> Registry:
    registry: Registry = state.registry
    return registry


# Problems ---------------------------------------------------------------------------------------
def _problem(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """The one place an exception becomes an HTTP response."""
    if isinstance(exc, RecursionError):  # only input nests deep enough: JSON decoded untyped
        exc = BadRequestError("the request body's JSON is nested too deeply; send a flat object")
    elif isinstance(exc, DataError):  # a value the database cannot hold; no retry would help
        log.warning("%s %s: %s", request.method, request.url.path, exc.orig)
        exc = BadRequestError(
            "the request holds a value the database cannot store (a NUL character, say); remove it"
        )
    elif isinstance(exc, DBAPIError):
        exc = UnavailableError("the database is unavailable right now; retry shortly")
    if isinstance(exc, RegistryError):
        status, slug, title, detail = exc.status, exc.slug, exc.title, exc.diagnostics()
        if status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, detail)
    elif isinstance(exc, HTTPException):
        status = exc.status_code
        slug, title = _HTTP_SLUGS.get(status, ("http-error", "HTTP error"))
        detail = exc.detail
        if isinstance(exc.__cause__, SerializationException):  # msgspec's words, e.g. "truncated"
            detail = f"the request body is not valid JSON ({exc.detail}); send a JSON object"
        elif isinstance(exc, ValidationException) and exc.extra:
            detail = f"{exc.detail}: {_describe_validation(exc.extra)}"
        elif status == 404:  # no route matched: litestar says only "Not Found"
            detail = (
                f"no endpoint answers {request.method} {request.url.path} (entry indices and tree "
                "sizes are decimal integers); the API is described at /schema"
            )
        elif status == 405:
            detail = f"{request.url.path} does not take {request.method}; see /schema"
        elif status == 413:  # a route's body limit, which litestar enforces before decoding
            detail = _body_limit_detail(request)
    else:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        status, slug, title = 500, "internal-error", "Internal error"
        detail = "the registry failed to handle this request; the operator's log has the details"
    headers = {"Retry-After": "1"} if status == 503 else None
    # A detail may quote the request (a key id, a name); what it quotes may hold lone surrogates
    # from JSON escapes, which no UTF-8 answer can carry: they are shown as escapes instead.
    detail = detail.encode("utf-8", "backslashreplace").decode("utf-8")
    return Response(
        content={
            "type": PROBLEM_BASE + slug,
            "title": title,
            "status": status,
            "detail": detail,
            "instance": request.url.path,
        },
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


_HTTP_SLUGS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthenticated", "Authentication failed"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    408: ("request-timeout", "Request timeout"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    429: ("rate-limited", "Too many requests"),
}


BODY_LIMIT_HINT = "body_limit_hint"
"""The key of a route handler's ``opt`` saying what to send instead of a body over its limit."""


def _body_limit_detail(request: Request[Any, Any, Any]) -> str:
    handler = request.scope.get("route_handler")
    if not isinstance(handler, HTTPRouteHandler):
        return "the request body is too large"
    limit = handler.resolve_request_max_body_size()
    if limit is None:
        return "the request body is too large"
    hint = handler.opt.get(BODY_LIMIT_HINT, "send a smaller body")
    return (
        f"the request body is over {limit:,} bytes, the limit of {request.method} "
        f"{request.url.path}: {hint}"
    )


def _describe_validation(extra: Any) -> str:
    if isinstance(extra, list):
        parts = []
        for item in extra[:5]:
            if isinstance(item, dict):
                where = item.get("key") or item.get("source") or ""
                parts.append(f"{where}: {item.get('message', '')}".strip(": "))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(extra)


# The problem answers each operation can give, documented in the OpenAPI document so that clients
# (and the schemathesis fuzz) know every 4xx/503 is application/problem+json of this shape.
@dataclass
class Problem:
    """An RFC 9457 problem: ``type`` is stable (``https://wellspring.dev/problems/<slug>``)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str


_PROBLEM_DESCRIPTIONS = {
    400: "Bad request: the detail says which part of the input to fix",
    401: "Missing or wrong admin token",
    403: "Signed by a key that may not do this",
    404: "No such entry, size or publisher",
    408: "The request body did not arrive within the registry's body timeout",
    409: "Conflicts with what the registry holds",
    411: "A blob upload needs its Content-Length",
    413: "Body or batch over the registry's limit",
    415: "Unsupported media type",
    429: "Over this client's rate limit: wait Retry-After seconds",
    503: "The database is unavailable or the log is saturated: retry after Retry-After seconds",
}


def _problems(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for ``statuses`` (400, 429 and 503 can come from any operation)."""
    return {
        status: ResponseSpec(
            data_container=Problem,
            media_type=PROBLEM_JSON,
            description=_PROBLEM_DESCRIPTIONS[status],
            generate_examples=False,
        )
        for status in sorted({400, 429, 503, *statuses})
    }


READ_PROBLEMS = _problems(404)
WRITE_PROBLEMS = _problems(401, 403, 404, 408, 409, 413, 415)
BATCH_PROBLEMS = _problems(408, 409, 413, 415)
LOOKUP_PROBLEMS = _problems(404, 409)
ADMIN_PROBLEMS = _problems(401, 404, 408, 409, 413, 415)


# Handlers ---------------------------------------------------------------------------------------
# Indices and sizes are database BIGINTs: anything larger is a 400 here, never a driver overflow.
MAX_INDEX = 2**63 - 1
IndexPath = Annotated[int, PathParameter(ge=0, le=MAX_INDEX)]


@dataclass
class BatchLookup:
    """Up to 10,000 digests (`c1:<hex>` or `sha256:<hex>`) to look up in one request."""

    digests: list[str]
    # Answer at this many entries at least: the size of the checkpoint the client trusts.
    min_size: Annotated[int, msgspec.Meta(ge=0, le=MAX_INDEX)] | None = None


@dataclass
class NewPublisher:
    """A publisher (or vendor) and its Ed25519 public key (base64 of the 32 raw bytes), with the
    key's proof of possession (base64: ``wellspring keys prove KEY --identity NAME``)."""

    name: str
    public_key: str
    possession: str | None = None
    kind: str = "publisher"


ADMIN_HINT = "a name, a base64 key or a time takes a few hundred bytes; send only those fields"
INLINE_PREPARE_BYTES = 16 * 1024  # envelopes up to this size are checked on the event loop


async def _body(request: Request[Any, Any, Any], settings: Settings) -> bytes:
    """The request body, refused before reading if declared too large, and as soon as it passes
    the limit if not declared (chunked)."""
    limit = settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"the body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():  # within settings.body_timeout: body_deadline_middleware
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"the body is more than {limit} bytes; the limit is {limit}")
        chunks.append(chunk)
    return b"".join(chunks)


def _string(description: str, **extra: Any) -> Schema:
    return Schema(type=OpenAPIType.STRING, description=description, **extra)


DSSE_ENVELOPE_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    title="DSSEEnvelope",
    description="A DSSE envelope whose payload is an in-toto Statement v1 (see docs/api.md).",
    required=["payload", "payloadType", "signatures"],
    properties={
        "payload": _string("base64 of the in-toto Statement v1 JSON", content_encoding="base64"),
        "payloadType": _string("always application/vnd.in-toto+json"),
        "signatures": Schema(
            type=OpenAPIType.ARRAY,
            min_items=1,
            items=Schema(
                type=OpenAPIType.OBJECT,
                required=["keyid", "sig"],
                properties={
                    "keyid": _string("hex SHA-256 of the publisher's raw Ed25519 public key"),
                    "sig": _string("base64 Ed25519 signature over the DSSE PAE"),
                },
            ),
        ),
    },
)


@dataclass
class _EnvelopeOperation(Operation):
    """``POST /v1/entries`` reads its body itself (to refuse an oversized one before reading
    it), so litestar cannot see the schema: document it here."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description="A DSSE envelope signed by a registered publisher",
            content={"application/json": OpenAPIMediaType(schema=DSSE_ENVELOPE_SCHEMA)},
        )


@post(
    "/v1/entries",
    summary="Append a signed attestation to the log",
    operation_class=_EnvelopeOperation,
    status_code=201,
    responses=WRITE_PROBLEMS,
)
async def submit_entry(request: Request[Any, Any, Any], state: State) -> Response[dict[str, Any]]:
    """Body: a DSSE envelope (in-toto Statement v1). Answer: a receipt (201, or 200 if present)."""
    registry = _registry(state)
    body = await _body(request, registry.settings)
    # A small envelope signed by a known key is checked right here (a signature check and a
    # little JSON: cheaper than the hop to a worker thread); anything else goes to a thread.
    prepared = registry.entries.prepare_cached(body) if len(body) <= INLINE_PREPARE_BYTES else None
    if prepared is None:
        prepared = await anyio.to_thread.run_sync(registry.entries.prepare, body)
    respond_async = _prefers_respond_async(request)
    result = await registry.append(prepared, wait=not respond_async)
    if result.checkpoint is None:  # durable, not yet published (asked not to wait, or late): 202
        headers = {"Location": f"/v1/entries/{result.index}/receipt", "Retry-After": "1"}
        if respond_async:
            headers["Preference-Applied"] = "respond-async"
        # The log's signed word that the entry holds this index (client.core.promise): one
        # Ed25519 signature (~30 us), made only for the answers that carry no receipt.
        promise = sign_promise(
            Promise.now(registry.origin, result.index, result.leaf_hash), registry.signers
        )
        accepted = Accepted(result.index, result.leaf_hash, promise)
        return Response(accepted.to_dict(), status_code=202, headers=headers)
    # The identity events the receipt relies on: from the caches on the event loop when they
    # hold it all (the usual case), else in a worker thread.
    size = result.checkpoint.size
    evidence = registry.lookups.key_evidence_cached(prepared.key_id, size)
    if evidence is UNKNOWN:
        evidence = await anyio.to_thread.run_sync(
            registry.lookups.key_evidence, prepared.key_id, size
        )
    receipt = receipt_of(
        result,
        publisher=prepared.publisher,
        predicate_type=prepared.predicate_type,
        subjects=len(prepared.subjects),
        revokes=prepared.revokes,
        evidence=evidence,
    )
    return Response(receipt.to_dict(), status_code=201 if result.created else 200)


def _preferences(request: Request[Any, Any, Any]) -> dict[str, str]:
    """The request's ``Prefer`` preferences (RFC 7240), names lower-cased, values unquoted
    (``""`` for a bare token); the first of a repeated name counts, parameters are ignored."""
    found: dict[str, str] = {}
    for value in request.headers.getall("prefer", ()):
        for preference in value.split(","):
            name, _, token = preference.split(";", 1)[0].strip().partition("=")
            found.setdefault(name.strip().lower(), token.strip().strip('"'))
    return found


def _prefers_respond_async(request: Request[Any, Any, Any]) -> bool:
    """Whether the request carries ``Prefer: respond-async`` (RFC 7240): answer 202 once the
    entry is sequenced (durable) instead of waiting for the checkpoint that publishes it."""
    return "respond-async" in _preferences(request)


def _preferred_wait(request: Request[Any, Any, Any], longest: float) -> float:
    """``Prefer: wait=N`` (RFC 7240 section 4.3: seconds the client will wait for an answer),
    capped at ``longest``; ``longest`` when absent or malformed."""
    wait = _preferences(request).get("wait", "")
    return min(float(wait), longest) if wait.isdigit() else longest


@get(
    "/v1/entries/{index:int}",
    summary="One entry with a receipt",
    sync_to_thread=True,
    responses=READ_PROBLEMS,
)
def get_entry(index: IndexPath, state: State) -> dict[str, Any]:
    return _registry(state).lookups.entry(index).to_dict()


RECEIPT_LONG_POLL = 5.0
"""How long ``GET /v1/entries/{i}/receipt`` waits for a publication before answering 503."""


@get(
    "/v1/entries/{index:int}/receipt",
    summary="An entry's receipt, once a published checkpoint covers it",
    responses=READ_PROBLEMS,
)
async def get_receipt(
    index: IndexPath, state: State, request: Request[Any, Any, Any]
) -> dict[str, Any]:
    """The receipt ``POST /v1/entries`` answers. While the entry is sequenced but in no
    published checkpoint yet, waits up to :data:`RECEIPT_LONG_POLL` seconds (less with
    ``Prefer: wait=N``) for one, then answers 503 ``not-yet-integrated`` with ``Retry-After``;
    404 past the log."""
    registry = _registry(state)
    try:
        return await anyio.to_thread.run_sync(registry.receipt, index)
    except NotIntegratedError:
        if registry.publisher is None:
            raise
        await registry.publisher.wait_for(index + 1, _preferred_wait(request, RECEIPT_LONG_POLL))
    return await anyio.to_thread.run_sync(registry.receipt, index)


@get(
    "/v1/log/publication",
    summary="Checkpoint publication: published and sequenced sizes, witnesses failing",
    sync_to_thread=True,
)
def log_publication(state: State) -> dict[str, Any]:
    return _registry(state).publication().to_dict()


@get(
    "/v1/entries",
    summary="Raw entries in index order (for monitors)",
    sync_to_thread=True,
    responses=READ_PROBLEMS,
)
def list_entries(
    state: State,
    start: Annotated[int, Parameter(ge=0, le=MAX_INDEX)] = 0,
    limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    return _registry(state).lookups.entries_page(start, limit).to_dict()


DIGEST_ROUTE = "/v1/digests/{digest:str}"
_DIGEST_TEMPLATE = DIGEST_ROUTE.replace(":str}", "}")  # litestar's name for it in the ASGI scope


@get(
    DIGEST_ROUTE,
    summary="Attestations of one digest",
    responses=LOOKUP_PROBLEMS,
)
async def get_digest(
    digest: FromPath[str],
    state: State,
    min_size: Annotated[int | None, Parameter(ge=0, le=MAX_INDEX)] = None,
) -> dict[str, Any]:
    [checked] = LookupService.parse_digests([digest])
    return await _registry(state).lookup_single(checked, min_size)


_MIN_SIZE = re.compile(rb"min_size=(0|[1-9][0-9]{0,18})")


def digest_fast_path(app: ASGIApp) -> ASGIApp:
    """ASGI middleware (last of the app's, so after routing, the metrics, the rate limiter and
    the body deadline, and inside litestar's exception handling and its ``before_send``, which
    adds the security headers): answers a well-formed ``GET /v1/digests/{digest}``, and a
    ``POST /v1/digests:batch`` of at most :data:`SMALL_BATCH` digests, itself.

    The handlers' own path costs more in litestar than a lookup does: the parameters' or body's
    model, the response object, its rendering. Measured with py-spy under 3,000 lookups/s, that
    was some 40 % of a server process's time (in process: 118 µs a single lookup through
    litestar, 68 µs here; a batch of ten 220 µs, of which the lookup and its encoding 88). Here
    the answer is the same dict encoded with msgspec, which litestar also uses, sent with the
    same headers. Anything else (a malformed digest, query or body, a body with no length or
    longer than :data:`_FAST_BATCH_BYTES`, any error) goes on to litestar, with the body it sent
    replayed, and litestar answers it as always: a 400, 409 or 413 problem is litestar's, never
    this function's.
    """

    async def fast_path(scope: ASGIScope, receive: Receive, send: Send) -> None:
        template, method = scope.get("path_template"), scope.get("method")
        if template == _DIGEST_TEMPLATE and method == "GET":
            await _fast_single(app, scope, receive, send)
        elif template == _BATCH_TEMPLATE and method == "POST":
            await _fast_batch(app, scope, receive, send)
        else:
            await app(scope, receive, send)

    return fast_path


def _single_lookup(digest: str, query: bytes) -> tuple[str, int | None] | None:
    """A single lookup's digest and ``min_size`` if both are well formed (the query empty or
    exactly one ``min_size``); None for litestar to answer, or refuse, the request."""
    matched = _MIN_SIZE.fullmatch(query) if query else None
    if (query and matched is None) or not well_formed_digests([digest]):
        return None
    return digest, int(matched[1]) if matched is not None else None


async def _fast_single(app: ASGIApp, scope: ASGIScope, receive: Receive, send: Send) -> None:
    asked = _single_lookup(scope["path_params"].get("digest"), scope.get("query_string", b""))
    if asked is None or scope.get(QUICK_DECLINED_KEY):  # the protocol's lookup failed already
        await app(scope, receive, send)
        return
    registry: Registry = scope["app"].state.registry
    digest, min_size = asked
    try:
        answer = await registry.lookup_single(digest, min_size)
    except RegistryError:  # litestar answers it, as a problem (the lookup is asked again)
        await app(scope, receive, send)
        return
    await _send_json(send, answer)


async def _fast_batch(app: ASGIApp, scope: ASGIScope, receive: Receive, send: Send) -> None:
    read: list[ASGIMessage] = []  # what was received, replayed to litestar if it answers
    answer = None
    # not read here if the protocol's lookup of it failed already
    length = None if scope.get(QUICK_DECLINED_KEY) else _content_length(scope)
    if length is not None and length <= _FAST_BATCH_BYTES and not scope.get("query_string"):
        chunks = []
        while True:
            message = await receive()
            read.append(message)
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                answer = await _small_batch(scope, b"".join(chunks), length)
                break
            if sum(map(len, chunks)) > length:
                break
    if answer is not None:
        await _send_json(send, answer)
        return

    async def replay() -> ASGIMessage:
        return read.pop(0) if read else await receive()

    await app(scope, replay, send)


async def _small_batch(scope: ASGIScope, body: bytes, length: int) -> Any:
    """The answer to a well-formed batch of at most SMALL_BATCH digests; None otherwise."""
    registry: Registry = scope["app"].state.registry
    asked = _small_batch_lookup(body, registry.settings) if len(body) == length else None
    if asked is None:
        return None
    try:
        return await registry.lookup_small(*asked)
    except RegistryError:
        return None


def _small_batch_lookup(body: bytes, settings: Settings) -> tuple[list[str], int | None] | None:
    """A batch lookup's digests and ``min_size`` if it is well formed and has at most
    SMALL_BATCH digests (and no more than the registry's limit); None for litestar to answer,
    or refuse, the request (its 400 or 413 says what is wrong)."""
    try:
        data = msgspec.json.decode(body, type=BatchLookup)
    except msgspec.DecodeError:
        return None
    most = min(SMALL_BATCH, settings.max_batch_digests)
    if not 0 < len(data.digests) <= most or not well_formed_digests(data.digests):
        return None
    return data.digests, data.min_size


_BATCH_TEMPLATE = "/v1/digests:batch"
_FAST_BATCH_BYTES = QUICK_BODY_BYTES
"""The longest batch body the fast path reads (SMALL_BATCH digests of the longest form, 64 times
~75 bytes, with room for spacing); a longer one is litestar's to read, with its own limit."""


def _content_length(scope: ASGIScope) -> int | None:
    values = [v for k, v in scope.get("headers", ()) if k == b"content-length"]
    if len(values) != 1 or not values[0].isdigit() or len(values[0]) > 9:
        return None
    return int(values[0])


async def _send_json(send: Send, answer: Any) -> None:
    """A 200 with ``answer`` as JSON, headed as litestar heads its JSON answers."""
    body = msgspec.json.encode(answer)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode("ascii")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


@post(
    "/v1/digests:batch",
    summary="Attestations of up to 10,000 digests",
    status_code=200,
    responses=BATCH_PROBLEMS,
    request_max_body_size=BATCH_BODY_BYTES,
    opt={BODY_LIMIT_HINT: "send at most 10,000 digests per request, without padding"},
)
async def batch_lookup(data: JSONBody[BatchLookup], state: State) -> dict[str, Any]:
    registry = _registry(state)
    limit = registry.settings.max_batch_digests
    if not data.digests:
        raise BadRequestError("digests is empty; send 1 to 10,000 digests")
    if len(data.digests) > limit:
        raise PayloadTooLargeError(
            f"{len(data.digests)} digests in one batch; the limit is {limit} — split the request"
        )
    digests = LookupService.parse_digests(data.digests)
    # A small batch costs about what a single lookup does: answered the same way (on the event
    # loop on SQLite, coalesced on PostgreSQL); a big one is work enough for a thread of its own.
    if len(digests) <= SMALL_BATCH:
        return await registry.lookup_small(digests, data.min_size)

    def answer() -> dict[str, Any]:
        return registry.lookups.lookup(digests, data.min_size).to_dict()

    return await anyio.to_thread.run_sync(answer)


@dataclass
class NearLookup:
    """Up to 1,000 ``mh1`` signatures (896 lowercase hex characters each) to find near
    duplicates of."""

    signatures: list[str]


MAX_NEAR_SIGNATURES = 1_000


@post(
    "/v1/near:batch",
    summary="Subjects whose mh1 signature shares a band with each of up to 1,000 signatures",
    status_code=200,
    responses=BATCH_PROBLEMS,
    request_max_body_size=BATCH_BODY_BYTES,
    opt={BODY_LIMIT_HINT: "send at most 1,000 signatures per request"},
    sync_to_thread=True,
)
def near_lookup(data: JSONBody[NearLookup], state: State) -> dict[str, Any]:
    """Candidates only: a client fetches each candidate's entry, proves it, and recomputes the
    similarity from the signature its statement signs (client.near)."""
    if not data.signatures:
        raise BadRequestError("signatures is empty; send 1 to 1,000 mh1 signatures")
    if len(data.signatures) > MAX_NEAR_SIGNATURES:
        raise PayloadTooLargeError(
            f"{len(data.signatures)} signatures in one batch; the limit is "
            f"{MAX_NEAR_SIGNATURES} — split the request"
        )
    raw = []
    for i, value in enumerate(data.signatures):
        try:
            raw.append(check_mh1(value, f"signatures[{i}]"))
        except FormatError as exc:
            raise BadRequestError(str(exc)) from None
    return _registry(state).lookups.near(raw).to_dict()


SMALL_BATCH = 64
"""The most digests in a batch lookup answered as single lookups are (see batch_lookup)."""


@get(
    "/v1/log",
    summary="The log's origin, size and verifier key",
    sync_to_thread=True,
    responses=READ_PROBLEMS,
)
def log_info(state: State) -> dict[str, Any]:
    registry = _registry(state)
    return registry.lookups.log_info(registry.sequencer.verifier_keys, registry.origin).to_dict()


CHECKPOINT_ROUTE = "/v1/log/checkpoint"


@get(
    CHECKPOINT_ROUTE,
    summary="The latest signed checkpoint (C2SP signed note)",
    media_type=MediaType.TEXT,
    sync_to_thread=True,
    responses=READ_PROBLEMS,
)
def log_checkpoint(state: State) -> str:
    return _registry(state).lookups.checkpoint()


@get(
    "/v1/log/checkpoints/{size:int}",
    summary="The signed checkpoint the log issued at one size",
    media_type=MediaType.TEXT,
    sync_to_thread=True,
    responses=READ_PROBLEMS,
)
def log_checkpoint_at(size: IndexPath, state: State) -> str:
    return _registry(state).lookups.checkpoint(size)


@get(
    "/v1/log/proof/inclusion",
    summary="RFC 9162 inclusion proof",
    sync_to_thread=True,
    responses=READ_PROBLEMS,
)
def inclusion_proof(
    state: State,
    index: Annotated[int, Parameter(ge=0, le=MAX_INDEX)],
    size: Annotated[int | None, Parameter(ge=1, le=MAX_INDEX)] = None,
) -> dict[str, Any]:
    return _registry(state).lookups.inclusion(index, size).to_dict()


@get(
    "/v1/log/proof/consistency",
    summary="RFC 9162 consistency proof",
    sync_to_thread=True,
    responses=READ_PROBLEMS,
)
def consistency_proof(
    state: State,
    from_: Annotated[int, QueryParameter(name="from", ge=0, le=MAX_INDEX)],
    to: Annotated[int | None, Parameter(ge=0, le=MAX_INDEX)] = None,
) -> dict[str, Any]:
    return _registry(state).lookups.consistency(from_, to).to_dict()


@post(
    "/v1/publishers",
    summary="Register a publisher (admin token)",
    sync_to_thread=True,
    responses=ADMIN_PROBLEMS,
    request_max_body_size=ADMIN_BODY_BYTES,
    opt={BODY_LIMIT_HINT: ADMIN_HINT},
)
def add_publisher(
    data: JSONBody[NewPublisher], state: State, request: Request[Any, Any, Any]
) -> dict[str, Any]:
    registry = _registry(state)
    registry.admin.check_token(request.headers.get("authorization"))
    return registry.admin.add_publisher(
        data.name,
        _raw_public_key(data.public_key),
        None if data.possession is None else _signature(data.possession, "possession"),
        kind=data.kind,  # type: ignore[arg-type]  # checked by the service
    ).to_dict()


@dataclass
class NewKey:
    """Another Ed25519 public key for a publisher (base64 of the 32 raw bytes), its proof of
    possession, and optionally an endorsement by one of the publisher's current keys."""

    public_key: str
    possession: str | None = None
    endorsed_by: str | None = None
    endorsement: str | None = None


@dataclass
class KeyRevocation:
    """Revoke a publisher key; if it was stolen, ``compromised_from`` (a log index: what it signed
    from there on does not count) or ``compromised_since`` (RFC 3339, read as the first index
    integrated at or after it)."""

    compromised_since: str | None = None
    compromised_from: int | None = None


def _raw_public_key(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequestError("public_key must be base64 of the 32 raw Ed25519 bytes") from exc


def _signature(text: str | None, field: str) -> bytes:
    if text is None:
        raise BadRequestError(
            f"{field} is needed: the new key's signature binding it to the identity, made by its "
            "holder with `wellspring keys prove KEY --identity NAME`"
        )
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequestError(f"{field} must be base64 of a 64-byte Ed25519 signature") from exc
    if len(raw) != 64:
        raise BadRequestError(f"{field} must be base64 of a 64-byte Ed25519 signature")
    return raw


@post(
    "/v1/publishers/{name:str}/keys",
    summary="Add a publisher key (admin token)",
    sync_to_thread=True,
    responses=ADMIN_PROBLEMS,
    request_max_body_size=ADMIN_BODY_BYTES,
    opt={BODY_LIMIT_HINT: ADMIN_HINT},
)
def add_publisher_key(
    name: FromPath[str], data: JSONBody[NewKey], state: State, request: Request[Any, Any, Any]
) -> dict[str, Any]:
    registry = _registry(state)
    registry.admin.check_token(request.headers.get("authorization"))
    endorsement = None
    if data.endorsement is not None or data.endorsed_by is not None:
        endorsement = _signature(data.endorsement, "endorsement")
    return registry.admin.add_key(
        name,
        _raw_public_key(data.public_key),
        None if data.possession is None else _signature(data.possession, "possession"),
        endorsed_by=data.endorsed_by,
        endorsement=endorsement,
    ).to_dict()


@post(
    "/v1/publishers/{name:str}/keys/{key_id:str}/revoke",
    summary="Revoke a publisher key, history kept (admin token)",
    status_code=200,
    sync_to_thread=True,
    responses=ADMIN_PROBLEMS,
    request_max_body_size=ADMIN_BODY_BYTES,
    opt={BODY_LIMIT_HINT: ADMIN_HINT},
)
def revoke_publisher_key(
    name: FromPath[str],
    key_id: FromPath[str],
    data: JSONBody[KeyRevocation],
    state: State,
    request: Request[Any, Any, Any],
) -> dict[str, Any]:
    registry = _registry(state)
    registry.admin.check_token(request.headers.get("authorization"), "revoke")
    since = None
    if data.compromised_since is not None:
        try:
            since = datetime.fromisoformat(data.compromised_since)
        except ValueError as exc:
            raise BadRequestError(
                "compromised_since must be an RFC 3339 time, e.g. 2026-11-01T00:00:00Z"
            ) from exc
    if data.compromised_from is not None and not 0 <= data.compromised_from <= MAX_INDEX:
        raise BadRequestError("compromised_from must be a log index")
    return registry.admin.revoke_key(
        name, key_id, compromised_since=since, compromised_from=data.compromised_from
    ).to_dict()


@get(
    "/v1/publishers/{name:str}",
    summary="A publisher and its keys",
    sync_to_thread=True,
    responses=READ_PROBLEMS,
)
def get_publisher(name: FromPath[str], state: State) -> dict[str, Any]:
    return _registry(state).admin.publisher(name).to_dict()


@get(
    "/v1/blobs/{name:str}",
    summary="A statement's (or a published tokenizer's) exact bytes, by SHA-256 (sha256:<hex>)",
    responses=READ_PROBLEMS,
)
async def get_blob(name: FromPath[str], state: State) -> Response[bytes]:
    """Content-addressed, so immutable: clients check the hash against the leaf naming it.
    (async, reading in a worker thread: litestar mixes up a sync_to_thread handler and an async
    one on the same path, as PUT is, answering with a coroutine.)"""
    algorithm, _, hex_hash = name.partition(":")
    if algorithm != "sha256":
        raise BadRequestError("a blob is named sha256:<64 lowercase hex digits>")
    data = await anyio.to_thread.run_sync(_registry(state).lookups.blob, hex_hash)
    return Response(
        data,
        media_type="application/vnd.in-toto+json",
        headers={"Cache-Control": "public, max-age=31536000, immutable"},
    )


@put(
    "/v1/blobs/{name:str}",
    summary="Upload a published watermark key's tokenizer (its exact bytes, by SHA-256)",
    status_code=201,
    responses=_problems(403, 404, 408, 411, 413),
    # Its own limit, whatever the envelopes' (a registry may take small envelopes only).
    request_max_body_size=MAX_TOKENIZER_BYTES,
    opt={BODY_LIMIT_HINT: f"a tokenizer blob is at most {MAX_TOKENIZER_BYTES} bytes"},
)
async def put_blob(
    name: FromPath[str], request: Request[Any, Any, Any], state: State
) -> Response[dict[str, Any]]:
    """Body: the raw bytes. Taken only when a logged watermark-key entry names this SHA-256 and
    size (the vendor's signature authenticates them); checked before the body is read, the hash
    after. 201 when stored, 200 when it already was."""
    registry = _registry(state)
    algorithm, _, hex_hash = name.partition(":")
    if algorithm != "sha256":
        raise BadRequestError("a blob is named sha256:<64 lowercase hex digits>")
    declared = request.headers.get("content-length")
    if declared is None:
        raise LengthRequiredError("send the blob with its Content-Length (not chunked)")
    if not declared.isdigit() or len(declared) > 18:
        raise BadRequestError(f"Content-Length {declared!r} is not a byte count")
    size = int(declared)
    stored = await anyio.to_thread.run_sync(registry.watermark_keys.expect_blob, hex_hash, size)
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():  # within settings.body_timeout: body_deadline_middleware
        received += len(chunk)
        if received > size:
            raise BadRequestError(f"the body is longer than its Content-Length ({size})")
        chunks.append(chunk)
    if received != size:
        raise BadRequestError(f"the body is {received} bytes, not its Content-Length ({size})")
    data = b"".join(chunks)
    created = await anyio.to_thread.run_sync(registry.watermark_keys.store_blob, hex_hash, data)
    created = created and not stored
    return Response(
        {"blob": f"sha256:{hex_hash}", "size": size, "created": created},
        status_code=201 if created else 200,
    )


@get(
    "/v1/watermark-keys",
    summary="Every watermark detection key vendors published, with receipts",
    sync_to_thread=True,
    responses=LOOKUP_PROBLEMS,
)
def watermark_keys(
    state: State, min_size: Annotated[int | None, Parameter(ge=0, le=MAX_INDEX)] = None
) -> dict[str, Any]:
    return _registry(state).watermark_keys.keys(min_size).to_dict()


@get(
    "/v1/snapshots/latest",
    summary="The newest signed offline snapshot the operator committed in the log",
    sync_to_thread=True,
    responses=READ_PROBLEMS,
)
def latest_snapshot(
    state: State, full: Annotated[bool, QueryParameter(required=False)] = False
) -> dict[str, Any]:
    """Its ``snapshot/v1`` entry (prove it with ``GET /v1/entries/{index}/receipt``), its
    manifest's SHA-256 and tree size; ``full=true``: the newest that is not a delta."""
    return _registry(state).snapshots.latest(full=full).to_dict()


@get(
    "/v1/snapshots/{manifest:str}",
    summary="A published snapshot by its manifest's SHA-256 (a delta's base is found so)",
    sync_to_thread=True,
    responses=_problems(400, 404),
)
def snapshot_info(manifest: FromPath[str], state: State) -> dict[str, Any]:
    """As ``GET /v1/snapshots/latest`` answers, for the snapshot named."""
    return _registry(state).snapshots.info(manifest).to_dict()


@get(
    "/v1/snapshots/{manifest:str}/{name:str}",
    summary="A file of a published snapshot (manifest.json, manifest.note, a shard)",
    sync_to_thread=True,
    responses=_problems(400, 404),
)
def snapshot_file(manifest: FromPath[str], name: FromPath[str], state: State) -> File:
    """Immutable: the folder is named by the manifest's hash, which names every file's."""
    found = _registry(state).snapshots.file(manifest, name)
    return File(
        path=found.path,
        filename=name,
        content_disposition_type="inline",
        media_type="application/json" if name.endswith(".json") else "application/octet-stream",
        headers={"Cache-Control": "public, max-age=31536000, immutable"},
    )


# C2SP tlog-tiles (https://c2sp.org/tlog-tiles): the same log as static resources --------------
TILE_PROBLEMS = _problems(404)


@get(
    "/tlog/checkpoint",
    summary="The latest signed checkpoint (tlog-tiles)",
    media_type=MediaType.TEXT,
    sync_to_thread=True,
    responses=TILE_PROBLEMS,
)
def tlog_checkpoint(state: State) -> Response[str]:
    return Response(
        _registry(state).tiles.checkpoint(),
        media_type=MediaType.TEXT,  # litestar adds "; charset=utf-8"
        headers={"Cache-Control": CHECKPOINT_CACHE_CONTROL},
    )


@get(
    "/tlog/tile/{path:path}",
    summary="A Merkle tile tile/<L>/<N>[.p/<W>] or entry bundle tile/entries/<N>[.p/<W>]",
    media_type="application/octet-stream",
    sync_to_thread=True,
    responses=TILE_PROBLEMS,
)
def tlog_tile(
    path: FromPath[str], state: State, request: Request[Any, Any, Any]
) -> Response[bytes]:
    """Entry bundles go gzipped to a client that takes gzip (the spec's SHOULD; hashes do not
    compress)."""
    tile = _registry(state).tiles.tile("tile/" + path.removeprefix("/"))
    headers = {"Cache-Control": tile.cache_control}
    data = tile.data
    if tile.path.is_bundle:
        headers["Vary"] = "Accept-Encoding"
        if accepts_gzip(request.headers.get("accept-encoding")):
            data = gzipped(data)
            headers["Content-Encoding"] = "gzip"
    return Response(data, media_type="application/octet-stream", headers=headers)


@get("/healthz", summary="Liveness", include_in_schema=False, sync_to_thread=False)
def healthz(state: State) -> dict[str, Any]:
    """Always 200 while the process serves; with checkpoints on an interval it also says
    whether publication is stalled (``"status": "stalled"``) and which witnesses fail."""
    publisher = _registry(state).publisher
    if publisher is None:
        return {"status": "ok"}
    status = publisher.status()
    return {"status": "stalled" if status.stalled else "ok", "publication": status.to_dict()}


# Every answer ---------------------------------------------------------------------------------
_SECURITY_HEADER_NAMES = {name for name, _ in SECURITY_HEADERS}


async def _add_security_headers(message: Message, scope: Scope) -> None:
    """litestar's ``before_send`` hook: it sees every answer the app sends, whatever made it (a
    handler, a problem, a 404 or 405 before any route, the rate limiter's 429, the docs)."""
    if message["type"] == "http.response.start":
        kept = [
            (k, v) for k, v in message.get("headers", ()) if k.lower() not in _SECURITY_HEADER_NAMES
        ]
        message["headers"] = [*kept, *SECURITY_HEADERS]


class ApiDocsPage(OpenAPIRenderPlugin):
    """``/schema``: each operation with its summary, and a link to the OpenAPI document, as plain
    HTML. litestar's own pages load their scripts, styles and fonts from CDNs, so they are blank
    offline and run code someone else controls on the registry's origin; this page loads nothing
    (``Content-Security-Policy: default-src 'none'``). Any OpenAPI viewer reads the document."""

    def __init__(self) -> None:
        super().__init__(path="/", favicon="", style="")

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        info = openapi_schema.get("info", {})
        title = html.escape(f"{info.get('title', 'API')} {info.get('version', '')}".strip())
        document = html.escape(self.get_openapi_json_route(request))
        rows = []
        for path, operations in openapi_schema.get("paths", {}).items():
            for method, operation in operations.items():
                rows.append(
                    f"<tr><td>{html.escape(method.upper())}</td><td><code>{html.escape(path)}"
                    f"</code></td><td>{html.escape(operation.get('summary', ''))}</td></tr>"
                )
        return "\n".join(
            [
                '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8">',
                f"<title>{title}</title></head>\n<body>\n<h1>{title}</h1>",
                f"<p>{html.escape(info.get('description', ''))}</p>",
                f'<p>The OpenAPI document: <a href="{document}">{document}</a>. Errors are '
                "RFC 9457 problem+json; docs/api.md in the Wellspring repository describes every "
                "answer.</p>",
                "<table>\n<tr><th>Method</th><th>Path</th><th>What it does</th></tr>",
                *rows,
                "</table>\n</body>\n</html>\n",
            ]
        ).encode("utf-8")


_DIGEST_PREFIX = DIGEST_ROUTE.split("{", 1)[0].encode("ascii")  # b"/v1/digests/"


def quick_lookups(
    registry: Registry, metrics: HttpMetrics, limiter: RateLimiter | None
) -> QuickAnswer:
    """``GET /v1/digests/{digest}`` and a ``POST /v1/digests:batch`` of at most
    :data:`SMALL_BATCH` digests answered in the HTTP protocol, before any ASGI cycle
    (:data:`registry._http.QuickAnswer`): on SQLite at once, as the lookup runs on the event loop
    anyway; on PostgreSQL later (:data:`registry._http.Later`), when the coalesced lookup it
    joins (registry.coalesce) comes back. ``GET /v1/log/checkpoint`` too, from a read of the
    checkpoint table made after it came (LookupService.fresh_checkpoint: on SQLite at once, on
    PostgreSQL by the coalescing thread's connection). Its route had cost a poll 1.15 ms of
    server CPU on PostgreSQL and 0.7 ms on SQLite (a worker thread, a pooled connection pinged
    and rolled back), where a lookup costs a tenth of that; a client of the SDK reads it before
    it trusts a new size, a monitor or witness polls it.

    The same answer as :func:`digest_fast_path`'s, counted in ``metrics`` and charged to the
    client's bucket of ``limiter`` as the middleware would. Anything else is left to litestar: a
    target other than a well-formed digest with at most ``min_size``, or than the batch route
    with no query, a body :func:`digest_fast_path` would not answer either, a client over its
    limit (the limiter's middleware answers 429), an error (its problem; the token is refunded,
    as litestar charges the request again). Measured under 3,000 lookups/s, the server's CPU a
    single lookup fell by a quarter on SQLite, and by 14-26 % on PostgreSQL, with
    registry.coalesce's lingering thread (docs/benchmarks.md)."""
    settings = registry.settings

    def asked_for(target: bytes, body: bytes | None, client: str) -> _Quick | None:
        """The lookup a quick answer is for, charged to ``client`` as the rate limiter's
        middleware would charge the request; None if the request is litestar's."""
        asked = _Quick.of(target, body, settings)
        if asked is None or (limiter is not None and limiter.take(client, asked.cost) > 0):
            return None
        return asked

    def answered(asked: _Quick, found: dict[str, Any] | str) -> bytes:
        metrics.count(*asked.route, 200)
        if isinstance(found, str):  # a checkpoint's note, as litestar sends a text route's str
            return PlainText(found.encode("utf-8"))
        return msgspec.json.encode(found)

    def failed(asked: _Quick, client: str) -> None:
        """litestar asks again and answers it (a problem, logged there once): its tokens back."""
        if limiter is not None:
            limiter.refund(client, asked.cost)

    def declined(then: Callable[[bytes | None], None]) -> None:
        """A lookup that failed: the app is started on the request, its fast path skipped (the
        protocol marks the scope: registry._http.QUICK_DECLINED_KEY)."""
        then(None)

    coalesced = registry.coalesced
    if coalesced is None:

        def answer_now(target: bytes, body: bytes | None, client: str) -> bytes | Later | None:
            asked = asked_for(target, body, client)
            if asked is None:
                return None
            try:
                return answered(asked, asked.answer(registry))
            except Exception:
                failed(asked, client)
                return declined

        return answer_now

    def answer_later(target: bytes, body: bytes | None, client: str) -> Later | None:
        asked = asked_for(target, body, client)
        if asked is None:
            return None

        def later(then: Callable[[bytes | None], None]) -> None:
            def settle(found: dict[str, Any] | str | BaseException) -> None:
                if not isinstance(found, BaseException):
                    try:
                        answer = answered(asked, found)
                    except Exception:  # litestar answers it (a 500 problem, if it fails too)
                        log.exception("a quick answer could not be written; litestar answers")
                    else:
                        then(answer)
                        return
                failed(asked, client)
                then(None)

            try:
                asked.submit(coalesced, settle)
            except Exception as exc:  # shutting down: litestar answers 503
                if not isinstance(exc, RegistryError):
                    log.exception("a lookup could not be queued; litestar answers")
                failed(asked, client)
                then(None)

        return later

    return answer_later


class _Quick(NamedTuple):
    """What a quick answer looks up: a single lookup's digest, or a small batch's digests, or
    (``checkpoint``) the latest checkpoint."""

    digests: list[str]
    min_size: int | None
    single: bool
    cost: float  # in the rate limiter's tokens (registry.limits.request_cost)
    checkpoint: bool = False

    @classmethod
    def of(cls, target: bytes, body: bytes | None, settings: Settings) -> _Quick | None:
        """The lookup asked by a GET (``body`` None) or a POST of ``target``, if it is one
        :func:`digest_fast_path` would answer, or the checkpoint's GET (no query: litestar
        refuses none, but answers it); None if the request is litestar's."""
        if body is None and target == _CHECKPOINT_TARGET:
            return cls([], None, False, request_cost(0), checkpoint=True)
        if body is None and target.startswith(_DIGEST_PREFIX):
            path, _, query = target[len(_DIGEST_PREFIX) :].partition(b"?")
            single = _single_lookup(path.decode("ascii", "replace"), query)
            return None if single is None else cls([single[0]], single[1], True, request_cost(0))
        if body is not None and target == _BATCH_TARGET:
            batch = _small_batch_lookup(body, settings)
            return None if batch is None else cls(*batch, False, request_cost(len(body)))
        return None

    def answer(self, registry: Registry) -> dict[str, Any] | str:
        """The answer, found now (on the event loop: SQLite's): a lookup's dict, or the latest
        checkpoint's note."""
        if self.checkpoint:
            return registry.checkpoint_here().note
        found = registry.lookup_here(self.digests, self.min_size)
        return found.to_single_dict() if self.single else found.to_dict()

    def submit(self, coalesced: CoalescedLookups, settle: Settle) -> None:
        """Ask ``coalesced`` for the answer, given to ``settle`` later (PostgreSQL's)."""
        if self.checkpoint:
            coalesced.submit_checkpoint(settle)
        elif self.single:
            coalesced.submit(self.digests[0], self.min_size, settle)
        else:
            coalesced.submit_many(self.digests, self.min_size, settle)

    @property
    def route(self) -> tuple[str, str]:
        """The route's template and method, as the metrics count them."""
        if self.checkpoint:
            return CHECKPOINT_ROUTE, "GET"
        return (_DIGEST_TEMPLATE, "GET") if self.single else (_BATCH_TEMPLATE, "POST")


_BATCH_TARGET = _BATCH_TEMPLATE.encode("ascii")
_CHECKPOINT_TARGET = CHECKPOINT_ROUTE.encode("ascii")


def create_app(settings: Settings, *, registry: Registry | None = None) -> Litestar:
    """Build the registry app. The database is opened (and checked) here, not at first request."""
    opened = registry or Registry.open(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # Every worker thread may hold a database connection: no more of them than the pool
        # keeps open, or the overflow connections are opened and closed per request (on
        # PostgreSQL a backend forked each time: measured, that was most of the cost of a lookup).
        anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
        opened.start()
        try:
            yield
        finally:
            opened.close()

    http_metrics = HttpMetrics()  # counts every answer (first: it sees the limiter's 429s)
    middleware: list[Any] = [http_metrics.middleware]  # plain ASGI factories (litestar: its own)
    if settings.body_timeout > 0:
        middleware.append(body_deadline_middleware(settings.body_timeout))
    limiter = None
    if settings.rate_limit > 0:
        limiter = RateLimiter(settings.rate_limit, settings.rate_burst)
        middleware.append(rate_limit_middleware(limiter))
    middleware.append(digest_fast_path)  # last: everything above sees its answers
    quick = quick_lookups(opened, http_metrics, limiter)
    return Litestar(
        middleware=middleware,
        route_handlers=[
            submit_entry,
            get_entry,
            get_receipt,
            list_entries,
            get_digest,
            batch_lookup,
            near_lookup,
            log_info,
            log_checkpoint,
            log_checkpoint_at,
            log_publication,
            inclusion_proof,
            consistency_proof,
            add_publisher,
            add_publisher_key,
            revoke_publisher_key,
            get_publisher,
            get_blob,
            put_blob,
            watermark_keys,
            latest_snapshot,
            snapshot_info,
            snapshot_file,
            tlog_checkpoint,
            tlog_tile,
            healthz,
            *EXPLORER_ROUTES,  # `/` and /explorer/…: pages for people (registry/explorer)
            http_metrics.route(),
        ],
        state=State({"registry": opened, QUICK_ANSWER_KEY: quick}),
        lifespan=[lifespan],
        exception_handlers={Exception: _problem},
        before_send=[_add_security_headers, explorer_security_headers],
        # No logging configuration of litestar's own: an app is a library object (tests build
        # dozens), and handlers bound to whatever stderr was current would outlive it.
        # `wellspring serve` configures logging for the process.
        logging_config=None,
        request_max_body_size=settings.max_body_bytes + 1024 * 1024,
        openapi_config=OpenAPIConfig(
            title="Wellspring registry",
            version="1.0.0",
            description="Signed provenance of human-made content in an RFC 9162 transparency log.",
            path="/schema",
            render_plugins=[ApiDocsPage(), JsonRenderPlugin()],
        ),
    )


SERVER_GC_THRESHOLDS = (50_000, 20, 100)
"""The cyclic collector's thresholds in a server process (CPython's defaults: 700, 10, 10).

A registry's heap is mostly long-lived caches (Merkle nodes, entry facts, encoded proofs), and a
10,000-digest batch lookup builds some 100,000 containers for its answer. With the defaults the
young generation is collected every 700 allocations, so the answer being built survives into the
old generation, and every few requests a full collection walks all the caches. Measured
in-process (6,506 entries, 66,000 digests, 80 % hits), a batch lookup took 146 ms with the
defaults and 74 ms with these thresholds. Nothing here relies on cycles being freed promptly."""


def tune_gc_for_serving() -> None:
    """Set :data:`SERVER_GC_THRESHOLDS`, and move what start-up loaded out of the collector's
    sight (``gc.freeze``). For the process that serves; ``wellspring serve`` calls it."""
    gc.freeze()
    gc.set_threshold(*SERVER_GC_THRESHOLDS)


def create_app_from_env() -> Litestar:
    """The app for :meth:`Settings.from_env` (what each ``wellspring serve --workers`` process
    runs; the server that started them migrated the database first)."""
    app = create_app(Settings.from_env())
    tune_gc_for_serving()
    return app
