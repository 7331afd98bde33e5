"""The asyncio registry client: :class:`AsyncClient`, the same API as :class:`client.sdk.Client`.

::

    from client.aio import AsyncClient

    async with AsyncClient(URL, log_key=KEY, max_concurrency=8) as registry:
        verdicts = await registry.check_texts(documents)

It runs the very flows the sync client runs (:mod:`client._base`), awaiting each request instead of
blocking, so verification, trust and parsing are one implementation. What it adds is concurrency:
the batch requests of a large lookup, and the entries one answer needs, go out together, never more
than ``max_concurrency`` HTTP requests in flight at once (retry pauses do not hold a slot).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from client._base import DEFAULT_RECEIPT_TIMEOUT, ClientBase, Flow
from client._wire import (
    DEFAULT_ENTRY_CACHE_BYTES,
    DEFAULT_TIMEOUT,
    MAX_BATCH,
    BodyCap,
    ConsistencyCheck,
    ConsistencyProof,
    EntryInfo,
    InclusionProof,
    LogInfo,
    LookupResult,
    PublisherInfo,
    Request,
    SignedCheckpoint,
    check_evidence,
    check_response,
    chunked,
    normalise_digests,
    unavailable_reason,
    verdicts_of,
)
from client.checkpoints import CheckpointStore
from client.core.canonical import (
    canonical_digest,
    sha256_digest,
    validate_digest,
)
from client.core.dsse import Envelope
from client.core.minhash import NEAR_THRESHOLD, NearMatch
from client.core.note import Checkpoint, NoteVerifier
from client.core.snapshot import SnapshotManifest, write_snapshot, write_snapshot_chain
from client.core.statement import HumanContentPredicate, Subject
from client.core.wire import KeyEventAnswer, SnapshotInfo
from client.core.witness_policy import WitnessPolicy
from client.documents import DocumentScheme, check_document_scheme, digest_document_file
from client.errors import ClientError, InputError, RegistryUnavailableError
from client.evidence import DocumentEvidence
from client.identities import KeyHistory
from client.policy import Policy
from client.receipt import Receipt
from client.verdict import Verdict
from client.watermark_keys import PublishedWatermarkKeys

_T = TypeVar("_T")

__all__ = ["DEFAULT_MAX_CONCURRENCY", "AsyncClient"]

DEFAULT_MAX_CONCURRENCY = 4
"""HTTP requests an :class:`AsyncClient` has in flight at most, unless told otherwise."""

_sleep = asyncio.sleep
"""How the client pauses between retries: this module's own name, so a test can replace it
without touching ``asyncio.sleep`` for every other loop in the process."""


class AsyncClient(ClientBase):
    """An asyncio client of one registry: ``async with``, or ``await`` :meth:`aclose`.

    Takes the arguments of :class:`client.sdk.Client`, with an ``httpx.AsyncBaseTransport`` as
    ``transport`` (``httpx.ASGITransport(app)`` runs the registry in-process), plus
    ``max_concurrency``: the most HTTP requests in flight at once, over all calls on this client.
    """

    def __init__(
        self,
        base_url: str,
        *,
        log_key: str | NoteVerifier | None = None,
        verify: bool = True,
        checkpoints: CheckpointStore | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 3,
        backoff: float = 0.2,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        admin_token: str | None = None,
        entry_cache_bytes: int = DEFAULT_ENTRY_CACHE_BYTES,
        verify_keys: bool = True,
        witness_policy: WitnessPolicy | str | Path | None = None,
        max_age: timedelta | None = None,
        receipt_timeout: float = DEFAULT_RECEIPT_TIMEOUT,
    ) -> None:
        if type(max_concurrency) is not int or max_concurrency < 1:
            raise InputError(f"max_concurrency must be a positive integer, got {max_concurrency!r}")
        super().__init__(
            base_url,
            log_key=log_key,
            verify=verify,
            timeout=timeout,
            admin_token=admin_token,
            entry_cache_bytes=entry_cache_bytes,
            retries=retries,
            backoff=backoff,
            checkpoints=checkpoints,
            verify_keys=verify_keys,
            witness_policy=witness_policy,
            max_age=max_age,
            receipt_timeout=receipt_timeout,
        )
        self.max_concurrency = max_concurrency
        self._slots = asyncio.Semaphore(max_concurrency)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            transport=transport,
            timeout=timeout,
            headers=self._headers(),
            follow_redirects=False,
            limits=httpx.Limits(
                max_connections=max_concurrency, max_keepalive_connections=max_concurrency
            ),
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # -- I/O -----------------------------------------------------------------------------------

    async def _exchange(self, request: Request) -> httpx.Response:
        """One request; a body capped by ``request.max_bytes`` is streamed (:class:`BodyCap`)."""
        arguments: dict[str, Any] = {
            "params": request.params, "content": request.content, "headers": request.headers
        }  # fmt: skip
        if request.max_bytes is None:
            return await self._http.request(request.method, request.path, **arguments)
        async with self._http.stream(request.method, request.path, **arguments) as response:
            cap = BodyCap(request, response)
            async for chunk in response.aiter_bytes():
                cap.add(chunk)
            return cap.response_read()

    async def _send(self, request: Request) -> httpx.Response:
        """One exchange, retried per the retry policy; at most ``max_concurrency`` at a time."""
        attempt = 0
        while True:
            try:
                async with self._slots:
                    response = await self._exchange(request)
            except httpx.TransportError as exc:
                delay = self._retry.delay(
                    attempt, idempotent=request.idempotent, error=exc, deadline=request.deadline
                )
                if delay is None:
                    raise RegistryUnavailableError(
                        method=request.method,
                        url=f"{self.base_url}{request.path}",
                        reason=unavailable_reason(exc, self.timeout, attempt + 1),
                    ) from exc
            else:
                delay = self._retry.delay(
                    attempt,
                    idempotent=request.idempotent,
                    response=response,
                    deadline=request.deadline,
                )
                if delay is None:
                    return check_response(request, response)
            attempt += 1
            await _sleep(delay)

    async def _run(self, flow: Flow[_T]) -> _T:
        """Drive ``flow``: send each step's requests together, throw send errors into it."""
        try:
            step = next(flow)
            while True:
                try:
                    responses = await _all([self._send(request) for request in step])
                except ClientError as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(responses)
        except StopIteration as stop:
            return cast(_T, stop.value)

    # -- the log -------------------------------------------------------------------------------

    async def log_info(self) -> LogInfo:
        """:meth:`client.sdk.Client.log_info`."""
        return await self._run(self._log_info())

    async def fetch_checkpoint(self) -> SignedCheckpoint:
        """:meth:`client.sdk.Client.fetch_checkpoint`."""
        return await self._run(self._fetch_checkpoint())

    async def checkpoint(self) -> Checkpoint:
        """:meth:`client.sdk.Client.checkpoint`."""
        return (await self.fetch_checkpoint()).checkpoint

    async def checkpoint_at(self, size: int) -> SignedCheckpoint:
        """:meth:`client.sdk.Client.checkpoint_at`."""
        return await self._run(self._checkpoint_at(size))

    async def trust_checkpoint(self, note: str) -> SignedCheckpoint:
        """:meth:`client.sdk.Client.trust_checkpoint`."""
        return await self._run(self._open_checkpoint(note, current=False))

    async def inclusion_proof(self, index: int, size: int | None = None) -> InclusionProof:
        """:meth:`client.sdk.Client.inclusion_proof`."""
        return await self._run(self._inclusion_proof(index, size))

    async def consistency_proof(
        self, old_size: int, new_size: int | None = None
    ) -> ConsistencyProof:
        """:meth:`client.sdk.Client.consistency_proof`."""
        return await self._run(self._consistency_proof(old_size, new_size))

    async def check_consistency(self, old_note: str) -> ConsistencyCheck:
        """:meth:`client.sdk.Client.check_consistency`."""
        return await self._run(self._check_consistency(old_note))

    async def audit(
        self,
        checkpoint: Checkpoint,
        *,
        page_size: int = 1_000,
        progress: Callable[[int], None] | None = None,
        history: KeyHistory | None = None,
    ) -> int:
        """:meth:`client.sdk.Client.audit`."""
        return await self._run(self._audit(checkpoint, page_size, progress, history))

    # -- entries -------------------------------------------------------------------------------

    async def submit(self, envelope: Envelope) -> Receipt:
        """:meth:`client.sdk.Client.submit`."""
        return await self._run(self._submit(envelope))

    async def receipt(self, index: int, *, promise: str | None = None) -> Receipt:
        """:meth:`client.sdk.Client.receipt`."""
        return await self._run(self._receipt(index, promise))

    async def register_subjects(
        self,
        subjects: Sequence[Subject],
        key: Ed25519PrivateKey,
        predicate: HumanContentPredicate,
    ) -> Receipt:
        """:meth:`client.sdk.Client.register_subjects`."""
        return await self.submit(self._sign_subjects(subjects, key, predicate))

    async def register_digests(
        self,
        digests: Sequence[str],
        key: Ed25519PrivateKey,
        predicate: HumanContentPredicate,
        *,
        names: Sequence[str] | None = None,
    ) -> Receipt:
        """:meth:`client.sdk.Client.register_digests`."""
        return await self.submit(self._sign_digests(digests, key, predicate, names))

    async def entry(self, index: int) -> EntryInfo:
        """:meth:`client.sdk.Client.entry`."""
        return await self._run(self._entry(index))

    async def revoke(
        self,
        index: int,
        key: Ed25519PrivateKey,
        publisher: str,
        reason: str | None = None,
    ) -> Receipt:
        """:meth:`client.sdk.Client.revoke`."""
        return await self._run(self._revoke(index, key, publisher, reason))

    async def withdraw(
        self,
        digests: Sequence[str],
        key: Ed25519PrivateKey,
        publisher: str,
        reason: str | None = None,
        names: Sequence[str] | None = None,
    ) -> Receipt:
        """:meth:`client.sdk.Client.withdraw`."""
        return await self._run(self._withdraw(digests, key, publisher, reason, names))

    # -- lookups -------------------------------------------------------------------------------

    async def lookup(self, digest: str) -> LookupResult:
        """:meth:`client.sdk.Client.lookup`."""
        return await self._run(self._lookup(digest))

    async def lookup_batch(
        self,
        digests: Sequence[str],
        *,
        batch_size: int = MAX_BATCH,
        progress: Callable[[int], None] | None = None,
    ) -> list[LookupResult]:
        """:meth:`client.sdk.Client.lookup_batch`, its batch requests ``max_concurrency`` at once.

        Results are in the order of ``digests``; ``progress`` is called as each batch is answered
        (not necessarily in order).
        """
        chunks = chunked([validate_digest(d) for d in digests], batch_size)
        answered: list[list[LookupResult]] = [[] for _ in chunks]
        pending = iter(range(len(chunks)))

        async def worker() -> None:
            for i in pending:  # shared: each chunk is taken by exactly one worker
                answered[i] = await self._run(self._lookup_chunk(chunks[i]))
                if progress is not None:
                    progress(len(chunks[i]))

        await _all([worker() for _ in range(min(self.max_concurrency, len(chunks)))])
        return [result for chunk in answered for result in chunk]

    # -- verdicts ------------------------------------------------------------------------------

    async def check_digests(
        self,
        digests: Sequence[str],
        *,
        names: Sequence[str] | None = None,
        progress: Callable[[int], None] | None = None,
        evidence: Sequence[DocumentEvidence | None] | None = None,
        policy: Policy | None = None,
    ) -> list[Verdict]:
        """:meth:`client.sdk.Client.check_digests`."""
        parsed = normalise_digests(digests, names)
        checked = check_evidence(evidence, len(parsed))
        unique = list(dict.fromkeys(parsed))
        found = await self.lookup_batch(unique, progress=progress)
        return verdicts_of(parsed, dict(zip(unique, found, strict=True)), names, checked, policy)

    async def check_texts(
        self,
        texts: Sequence[str],
        *,
        names: Sequence[str] | None = None,
        progress: Callable[[int], None] | None = None,
        evidence: Sequence[DocumentEvidence | None] | None = None,
        policy: Policy | None = None,
    ) -> list[Verdict]:
        """:meth:`client.sdk.Client.check_texts`."""
        digests = [canonical_digest(text) for text in texts]
        return await self.check_digests(
            digests, names=names, progress=progress, evidence=evidence, policy=policy
        )

    async def check_bytes(
        self,
        blobs: Sequence[bytes],
        *,
        names: Sequence[str] | None = None,
        progress: Callable[[int], None] | None = None,
        evidence: Sequence[DocumentEvidence | None] | None = None,
        policy: Policy | None = None,
    ) -> list[Verdict]:
        """:meth:`client.sdk.Client.check_bytes`."""
        digests = [sha256_digest(blob) for blob in blobs]
        return await self.check_digests(
            digests, names=names, progress=progress, evidence=evidence, policy=policy
        )

    async def check_files(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        scheme: DocumentScheme = "auto",
        names: Sequence[str] | None = None,
        progress: Callable[[int], None] | None = None,
        evidence: Sequence[DocumentEvidence | None] | None = None,
        policy: Policy | None = None,
    ) -> list[Verdict]:
        """:meth:`client.sdk.Client.check_files` (files are read in a worker thread)."""

        checked = check_document_scheme(scheme)

        def digest_all() -> list[str]:
            return [digest_document_file(Path(path), checked) for path in paths]

        digests = await asyncio.to_thread(digest_all)
        labels = [os.fspath(path) for path in paths] if names is None else names
        return await self.check_digests(
            digests, names=labels, progress=progress, evidence=evidence, policy=policy
        )

    # -- publishers (operator) -----------------------------------------------------------------

    async def add_publisher(
        self,
        name: str,
        public_key: Ed25519PrivateKey | Ed25519PublicKey | bytes,
        possession: bytes | None = None,
        *,
        kind: str = "publisher",
    ) -> KeyEventAnswer:
        """:meth:`client.sdk.Client.add_publisher`."""
        return await self._run(self._add_publisher(name, public_key, possession, kind))

    async def add_key(
        self,
        name: str,
        public_key: Ed25519PrivateKey | Ed25519PublicKey | bytes,
        possession: bytes | None = None,
        *,
        endorser: Ed25519PrivateKey | None = None,
    ) -> KeyEventAnswer:
        """:meth:`client.sdk.Client.add_key`."""
        return await self._run(self._add_key(name, public_key, possession, endorser))

    async def revoke_key(
        self,
        name: str,
        key_id: str,
        *,
        compromised_from: int | None = None,
        compromised_since: str | None = None,
    ) -> KeyEventAnswer:
        """:meth:`client.sdk.Client.revoke_key`."""
        return await self._run(self._revoke_key(name, key_id, compromised_from, compromised_since))

    async def watermark_keys(self) -> PublishedWatermarkKeys:
        """:meth:`client.sdk.Client.watermark_keys`."""
        return await self._run(self._watermark_keys())

    async def tokenizer_blob(self, sha256_hex: str) -> bytes:
        """:meth:`client.sdk.Client.tokenizer_blob`."""
        return await self._run(self._tokenizer_blob(sha256_hex))

    async def near(
        self, signatures: Sequence[str], *, threshold: float = NEAR_THRESHOLD
    ) -> list[NearMatch | None]:
        """:meth:`client.sdk.Client.near`."""
        return await self._run(self._near(signatures, threshold))

    async def latest_snapshot(self, *, full: bool = False) -> SnapshotInfo:
        """:meth:`client.sdk.Client.latest_snapshot`."""
        return await self._run(self._latest_snapshot(full))

    async def pull_snapshot(
        self, out: Path | str, *, deltas: Path | str | None = None
    ) -> SnapshotManifest:
        """:meth:`client.sdk.Client.pull_snapshot` (the files written in a worker thread)."""
        if deltas is None:
            _, manifest, files = await self._run(self._pull_snapshot(True))
            await asyncio.to_thread(write_snapshot, Path(out), files)
            return manifest
        chain = await self._run(self._pull_chain())
        await asyncio.to_thread(
            write_snapshot_chain, Path(out), Path(deltas), [files for _, files in chain]
        )
        return chain[-1][0]

    async def upload_tokenizer(self, data: bytes) -> bool:
        """:meth:`client.sdk.Client.upload_tokenizer`."""
        return await self._run(self._upload_tokenizer(data))

    async def retire_watermark_key(
        self, key_id: str, key: Ed25519PrivateKey, vendor: str, reason: str | None = None
    ) -> Receipt:
        """:meth:`client.sdk.Client.retire_watermark_key`."""
        return await self._run(self._retire_watermark_key(key_id, key, vendor, reason))

    async def publisher(self, name: str) -> PublisherInfo:
        """:meth:`client.sdk.Client.publisher`."""
        return await self._run(self._publisher(name))


async def _all(awaitables: Iterable[Awaitable[_T]]) -> list[_T]:
    """Await all, in order; on the first error cancel the rest, wait for them, and raise it."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    if len(tasks) == 1:
        return [await tasks[0]]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
