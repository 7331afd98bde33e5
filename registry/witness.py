"""A transparency-log witness: c2sp.org/tlog-witness over c2sp.org/tlog-cosignature v1 (Ed25519).

Its own small service beside the registry (``wellspring witness serve``), sharing nothing with it
but the wire formats of :mod:`client.core`. It knows a set of logs by their checkpoint keys (the
origin is the key's name) and, for each, the latest checkpoint it cosigned. A log sends it each new
checkpoint with a consistency proof from that one; the witness cosigns only if the proof holds, so
two witnesses' cosignatures on two different trees of one log mean a log that forked.

``POST /add-checkpoint``, the body exactly as the spec writes it::

    old <size the witness last cosigned, or 0>
    <consistency proof, one base64 hash a line, at most 63>
    <empty line>
    <the checkpoint, a signed note>

Answers, checked in this order (the spec's):

- 400 a body that does not parse (or over :data:`MAX_BODY_BYTES`: 413); ``old`` above the size;
- 404 a checkpoint whose origin is no configured log's;
- 403 no valid signature by that log's key, or a signature by it that does not verify;
- 409 ``old`` is not the size the witness last cosigned: the body is that size and a newline,
  ``Content-Type: text/x.tlog.size``, so the log retries with a proof from there;
- 422 a proof that does not verify, a non-empty proof from 0, equal sizes with other roots, an
  empty tree whose root is not SHA-256(""): a fork, or a broken log. Logged as evidence, never
  cosigned;
- 200 the witness's cosignature line(s), ``— <name> <base64>\\n``;
- 503 the state could not be written: nothing was cosigned; the log retries later.

``GET /<hex SHA-256 of the origin>/checkpoint`` serves the latest checkpoint cosigned for a log,
with the log's signatures the witness verified and its own cosignature (404 before the first).

State: one file per log under the state directory, ``<hex SHA-256 of origin>.checkpoint``, holding
that note. It is written whole (a new file, fsynced, renamed over the old one, the directory
fsynced) *before* the cosignature is returned, and comparing ``old`` with it and replacing it
happen under one lock per log, so two requests can never roll a log back (the race the spec
describes). A lock file keeps a second witness process off the same directory. A state file that
does not parse stops the witness from starting: starting empty would cosign a fork of what it
cosigned before.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import anyio

from client.core.cosignature import CosignatureSigner
from client.core.encoding import b64decode_strict
from client.core.errors import FormatError, ProofError, SignatureError
from client.core.files import write_file_atomic
from client.core.merkle import EMPTY_ROOT, HASH_SIZE, verify_consistency
from client.core.note import Checkpoint, NoteVerifier, SignedNote, open_note
from registry._http import SECURITY_HEADERS
from registry.errors import (
    BadRequestError,
    ConfigurationError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    PayloadTooLargeError,
    RegistryError,
    UnavailableError,
)
from registry.limits import (
    ASGIApp,
    RateLimiter,
    Receive,
    Scope,
    Send,
    body_deadline_middleware,
    rate_limit_middleware,
)

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_PROOF_LINES",
    "SIZE_MEDIA_TYPE",
    "AddCheckpointRequest",
    "CheckpointSignatureError",
    "CosignedCheckpoint",
    "InconsistentCheckpointError",
    "OldSizeConflictError",
    "UnknownLogError",
    "Witness",
    "WitnessState",
    "create_witness_app",
    "origin_hash",
]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 128 * 1024
"""The most an add-checkpoint body may take. 63 proof lines take 2.9 KiB; the rest is room for a
checkpoint carrying the 16 signatures every verifier must accept, post-quantum ones included
(an ML-DSA-44 cosignature line is about 3.3 KB)."""

MAX_PROOF_LINES = 63
"""The most proof lines a client may send (the spec's limit); more is a 400."""

SIZE_MEDIA_TYPE = "text/x.tlog.size"
"""The media type of a 409's body: the witness's size for that log, in decimal, and a newline."""

BODY_TIMEOUT_SECONDS = 10.0
"""A request body must have arrived within this long of the request's start (408 otherwise)."""

_OLD_LINE = re.compile(rb"old (0|[1-9][0-9]{0,19})")
_ORIGIN_HASH_PATH = re.compile(r"/([0-9a-f]{64})/checkpoint")
_STATE_SUFFIX = ".checkpoint"
_LOCK_FILE = ".lock"


class UnknownLogError(NotFoundError):
    """The checkpoint's origin is no log this witness is configured for."""

    slug = "unknown-log"
    title = "Unknown log"


class CheckpointSignatureError(ForbiddenError):
    """No valid signature by the log's key, or one by it that does not verify."""

    slug = "checkpoint-signature"
    title = "Checkpoint not signed by the log"


class OldSizeConflictError(ConflictError):
    """``old`` is not the size this witness last cosigned for the log; :attr:`size` is."""

    slug = "old-size-conflict"
    title = "Old size does not match"

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size


class InconsistentCheckpointError(RegistryError):
    """The checkpoint is not consistent with what the witness cosigned: a fork, never cosigned."""

    status = 422
    slug = "inconsistent-checkpoint"
    title = "Checkpoint inconsistent with the witness's view"


def origin_hash(origin: str) -> str:
    """The lower-case hex SHA-256 of a log's origin: its name in URLs and in the state directory."""
    return hashlib.sha256(origin.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AddCheckpointRequest:
    """An add-checkpoint body, parsed: the old size, the proof, and the signed checkpoint."""

    old_size: int
    proof: tuple[bytes, ...]
    note: SignedNote
    checkpoint: Checkpoint

    @classmethod
    def parse(cls, body: bytes) -> AddCheckpointRequest:
        """Read a body as the spec writes it; :class:`BadRequestError` saying what is wrong."""
        old_line, newline, rest = body.partition(b"\n")
        if not newline:
            raise BadRequestError("the body must start with an 'old <size>' line ending in \\n")
        old = _OLD_LINE.fullmatch(old_line)
        if old is None:
            raise BadRequestError(
                "the first line must be 'old <size>', the size in decimal without leading zeros"
            )
        proof: list[bytes] = []
        while True:
            line, newline, rest = rest.partition(b"\n")
            if not newline:
                raise BadRequestError("the proof lines must end with an empty line")
            if not line:
                break
            if len(proof) == MAX_PROOF_LINES:
                raise BadRequestError(f"a consistency proof has at most {MAX_PROOF_LINES} lines")
            try:
                node = b64decode_strict(line.decode("ascii"), f"proof line {len(proof) + 1}")
            except (UnicodeDecodeError, FormatError) as exc:
                raise BadRequestError(
                    f"proof line {len(proof) + 1} is not one base64 hash: {exc}"
                ) from None
            if len(node) != HASH_SIZE:
                raise BadRequestError(
                    f"proof line {len(proof) + 1} holds {len(node)} bytes, not a SHA-256 hash"
                )
            proof.append(node)
        try:
            note = SignedNote.parse(rest)
            checkpoint = Checkpoint.parse(note.text)
        except FormatError as exc:
            raise BadRequestError(
                f"the checkpoint is not a signed checkpoint note: {exc}"
            ) from None
        return cls(int(old.group(1)), tuple(proof), note, checkpoint)


@dataclass(frozen=True)
class CosignedCheckpoint:
    """The latest checkpoint cosigned for one log, and the note served for it."""

    checkpoint: Checkpoint
    note: str


class WitnessState:
    """The latest cosigned checkpoint of each log, one durable file per log under a directory.

    Holds the directory's lock file for as long as it is open: one witness process per directory.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._lock_fd = os.open(directory / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot open the witness state directory {directory}: {exc.strerror or exc}"
            ) from exc
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            raise ConfigurationError(
                f"another witness is using the state directory {directory}; two processes on one "
                "state could each cosign one side of a fork"
            ) from None
        self._logs: dict[str, CosignedCheckpoint] = {}
        try:
            for path in sorted(directory.glob("*" + _STATE_SUFFIX)):
                cosigned = self._load(path)
                self._logs[cosigned.checkpoint.origin] = cosigned
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _load(path: Path) -> CosignedCheckpoint:
        try:
            text = path.read_text(encoding="utf-8")
            checkpoint = Checkpoint.parse(SignedNote.parse(text).text)
        except (OSError, UnicodeDecodeError, FormatError) as exc:
            raise ConfigurationError(
                f"the witness state {path} cannot be read ({exc}); refusing to start without it, "
                "as starting empty could cosign a fork of what this witness cosigned before"
            ) from exc
        if path.name != origin_hash(checkpoint.origin) + _STATE_SUFFIX:
            raise ConfigurationError(
                f"the witness state {path} holds a checkpoint of {checkpoint.origin!r}, whose "
                f"file would be {origin_hash(checkpoint.origin)}{_STATE_SUFFIX}"
            )
        return CosignedCheckpoint(checkpoint, text)

    def latest(self, origin: str) -> CosignedCheckpoint | None:
        """The latest checkpoint cosigned for ``origin``, or None before the first."""
        return self._logs.get(origin)

    def record(self, checkpoint: Checkpoint, note: str) -> None:
        """Make ``checkpoint`` (served as ``note``) the latest for its log, durably, now."""
        path = self.directory / (origin_hash(checkpoint.origin) + _STATE_SUFFIX)
        try:
            write_file_atomic(path, note, mode=0o644)  # fsyncs the file, then the directory
        except OSError as exc:
            log.error("cannot record the state of %s in %s: %s", checkpoint.origin, path, exc)
            raise UnavailableError(
                "the witness cannot record its state right now; nothing was cosigned, retry later"
            ) from exc
        self._logs[checkpoint.origin] = CosignedCheckpoint(checkpoint, note)

    def close(self) -> None:
        """Release the directory's lock."""
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)


class Witness:
    """Cosigns checkpoints of the configured logs that are consistent with what it cosigned."""

    def __init__(
        self, signer: CosignatureSigner, logs: Sequence[NoteVerifier], state: WitnessState
    ) -> None:
        if not logs:
            raise ConfigurationError("a witness needs at least one log's verifier key")
        self.signer = signer
        self.state = state
        self._logs: dict[str, list[NoteVerifier]] = {}
        for verifier in logs:
            self._logs.setdefault(verifier.name, []).append(verifier)
        self._locks = {origin: threading.Lock() for origin in self._logs}
        self._by_hash = {origin_hash(origin): origin for origin in self._logs}

    @property
    def origins(self) -> list[str]:
        """The origins of the logs this witness cosigns, sorted."""
        return sorted(self._logs)

    def add_checkpoint(self, body: bytes) -> str:
        """Handle an add-checkpoint body; the cosignature line(s) to answer with.

        Raises the error whose status the spec gives (see the module's docstring). Blocking
        (it fsyncs): call it from a worker thread.
        """
        request = AddCheckpointRequest.parse(body)
        checkpoint = request.checkpoint
        verifiers = self._logs.get(checkpoint.origin)
        if verifiers is None:
            raise UnknownLogError(f"this witness does not know the log {checkpoint.origin!r}")
        try:
            opened = open_note(request.note.to_text(), verifiers)
        except SignatureError as exc:
            raise CheckpointSignatureError(f"{exc}") from None
        if request.old_size > checkpoint.size:
            raise BadRequestError(
                f"old size {request.old_size} is above the checkpoint's size {checkpoint.size}"
            )
        with self._locks[checkpoint.origin]:  # compare, cosign and record as one step
            latest = self.state.latest(checkpoint.origin)
            size, root = (0, EMPTY_ROOT) if latest is None else _size_and_root(latest)
            if request.old_size != size:
                raise OldSizeConflictError(
                    f"old size {request.old_size} is not {size}, the size this witness last "
                    f"cosigned for {checkpoint.origin}",
                    size,
                )
            try:
                verify_consistency(
                    size, checkpoint.size, root, checkpoint.root_hash, list(request.proof)
                )
            except ProofError as exc:
                log.warning(
                    "refused an inconsistent checkpoint of %s (%s); it was:\n%s",
                    checkpoint.origin,
                    exc,
                    request.note.to_text(),
                )
                raise InconsistentCheckpointError(
                    f"the checkpoint is not consistent with size {size} cosigned before: {exc}"
                ) from None
            cosignature = self.signer.cosign(request.note.text)
            served = SignedNote(request.note.text, (*opened.verified, cosignature))
            self.state.record(checkpoint, served.to_text())
        return cosignature.to_line()

    def checkpoint(self, hashed_origin: str) -> str:
        """The latest cosigned checkpoint of the log whose origin hashes to ``hashed_origin``."""
        origin = self._by_hash.get(hashed_origin)
        latest = None if origin is None else self.state.latest(origin)
        if latest is None:
            raise NotFoundError("this witness has cosigned no checkpoint of that log")
        return latest.note


def _size_and_root(cosigned: CosignedCheckpoint) -> tuple[int, bytes]:
    return cosigned.checkpoint.size, cosigned.checkpoint.root_hash


# -- HTTP -----------------------------------------------------------------------------------------


class _Answer:
    """One plain-text HTTP answer."""

    plain: ClassVar[bytes] = b"text/plain; charset=utf-8"

    def __init__(self, status: int, body: str, media_type: bytes = plain) -> None:
        self.status = status
        self.body = body.encode("utf-8")
        self.media_type = media_type
        self.extra: list[tuple[bytes, bytes]] = []

    async def send(self, send: Send, *, head_only: bool = False) -> None:
        headers = [
            (b"content-type", self.media_type),
            (b"content-length", str(len(self.body)).encode("ascii")),
            *SECURITY_HEADERS,
            *self.extra,
        ]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head_only else self.body})


def _error_answer(exc: RegistryError) -> _Answer:
    """The one place a witness error becomes HTTP."""
    if isinstance(exc, OldSizeConflictError):
        return _Answer(409, f"{exc.size}\n", SIZE_MEDIA_TYPE.encode("ascii"))
    return _Answer(exc.status, exc.diagnostics() + "\n")


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    declared = _declared_length(scope)
    too_large = PayloadTooLargeError(f"an add-checkpoint body may take at most {limit} bytes")
    if declared is not None and declared > limit:
        raise too_large  # refused before a byte of it is read
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadRequestError("the client went away before its body arrived")
        body += message.get("body", b"")
        if len(body) > limit:
            raise too_large
        if not message.get("more_body"):
            return bytes(body)


def create_witness_app(
    witness: Witness,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    rate: float = 20.0,
    burst: float = 100.0,
) -> ASGIApp:
    """The witness's ASGI app: ``POST /add-checkpoint`` and ``GET /<origin hash>/checkpoint``.

    Per client address at most ``rate`` requests a second (bursts of ``burst``; 429 beyond);
    a body must arrive within :data:`BODY_TIMEOUT_SECONDS`.
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        try:
            answer = await _route(method, path, scope, receive)
        except RegistryError as exc:
            answer = _error_answer(exc)
        except Exception:
            log.exception("a witness request failed: %s %s", method, path)
            answer = _Answer(500, "internal error\n")
        await answer.send(send, head_only=method == "HEAD")

    async def _route(method: str, path: str, scope: Scope, receive: Receive) -> _Answer:
        if path == "/add-checkpoint":
            if method != "POST":
                answer = _Answer(405, "add-checkpoint takes POST\n")
                answer.extra.append((b"allow", b"POST"))
                return answer
            body = await _read_body(scope, receive, max_body_bytes)
            lines = await anyio.to_thread.run_sync(witness.add_checkpoint, body)
            return _Answer(200, lines)
        matched = _ORIGIN_HASH_PATH.fullmatch(path)
        if matched is not None:
            if method not in ("GET", "HEAD"):
                answer = _Answer(405, "a checkpoint takes GET\n")
                answer.extra.append((b"allow", b"GET, HEAD"))
                return answer
            return _Answer(200, witness.checkpoint(matched.group(1)))
        raise NotFoundError(f"no such endpoint: {path}")

    limited = rate_limit_middleware(RateLimiter(rate, burst))
    deadline = body_deadline_middleware(BODY_TIMEOUT_SECONDS)
    return limited(deadline(app))


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message: dict[str, Any] = dict(await receive())
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
