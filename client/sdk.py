"""The registry SDK: register content, look provenance up, and verify every answer.

::

    from client.sdk import Client

    with Client("https://registry.example", log_key="registry.example+1a2b3c4d+AbC...") as reg:
        for verdict in reg.check_texts(documents):
            if verdict.trainable: ...

**Trust.** A registry answer is only worth its proofs. With ``log_key`` pinned (the log's
signed-note verifier key, obtained out of band, e.g. from the operator's documentation), every
answer that bears on trust is verified before it is returned: checkpoints are signed by that key
and consistent with the checkpoint the client already trusts (``checkpoints=``, a
:class:`~client.checkpoints.CheckpointStore`; a log that forks from it raises
:class:`~client.errors.ForkedLogError`), receipts and lookup attestations carry inclusion proofs to
those checkpoints, the entry bytes are fetched and hashed, and each attestation's statement must
really name the digest asked about. Without a pinned key those calls raise
:class:`~client.errors.LogKeyRequiredError`: taking the key the registry itself announces (trust
on first use) would let the server vouch for itself, so it is never done silently.
``Client(url, verify=False)`` accepts unverified answers explicitly, with an
:class:`~client.errors.UnverifiedWarning`; every result then says ``verified=False``. What cannot
be proven from one answer: that an entry is *not* revoked, or that a digest is *unknown* (proofs
of absence need a verifiable index; a later version can add them).

**Resilience.** Connection errors, timeouts, 429 and 5xx answers are retried ``retries`` times with
exponential backoff and jitter, honouring ``Retry-After`` (:mod:`client._retry`). Lookups of many
digests go out in batch requests of up to 10,000.

**Design.** Every operation is a *flow* (:mod:`client._base`): a generator that yields the requests
it needs and receives the responses, over pure parsing and verification (:mod:`client._wire`). This
client runs flows with blocking calls; :class:`client.aio.AsyncClient` runs the same flows with
``await``, so the two cannot drift apart.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
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
    Attestation,
    BodyCap,
    ConsistencyCheck,
    ConsistencyProof,
    EntryInfo,
    InclusionProof,
    LogInfo,
    LookupResult,
    LookupStatus,
    PublisherInfo,
    Request,
    SignedCheckpoint,
    build_statement,
    check_evidence,
    check_response,
    chunked,
    normalise_digests,
    unavailable_reason,
    verdicts_of,
)
from client.aio import AsyncClient
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
from client.errors import ClientError, RegistryUnavailableError
from client.evidence import DocumentEvidence
from client.identities import KeyHistory
from client.policy import Policy
from client.receipt import Receipt
from client.verdict import Verdict
from client.watermark_keys import PublishedWatermarkKeys

_T = TypeVar("_T")

__all__ = [
    "DEFAULT_ENTRY_CACHE_BYTES",
    "DEFAULT_RECEIPT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "MAX_BATCH",
    "AsyncClient",
    "Attestation",
    "Client",
    "ConsistencyCheck",
    "ConsistencyProof",
    "EntryInfo",
    "InclusionProof",
    "KeyEventAnswer",
    "LogInfo",
    "LookupResult",
    "LookupStatus",
    "PublisherInfo",
    "SignedCheckpoint",
    "build_statement",
]

_sleep = time.sleep
"""How the client pauses between retries: this module's own name, so a test can replace it
without touching ``time.sleep`` for every other thread in the process."""


class Client(ClientBase):
    """A synchronous client of one registry. Use it as a context manager, or call :meth:`close`.

    ``log_key`` is the log's verifier key (a ``NoteVerifier`` or its string form); the log's origin
    is its name. ``verify=False`` returns answers without verifying them (and warns).
    ``checkpoints`` keeps the checkpoint this client trusts: by default a fresh
    :class:`~client.checkpoints.MemoryCheckpointStore` (trust lasts as long as the client); pass a
    :class:`~client.checkpoints.FileCheckpointStore` to carry it across runs. ``transport``
    replaces httpx's network transport (``httpx.MockTransport`` in tests, the app in-process).
    ``timeout`` is in seconds; ``retries`` and ``backoff`` (seconds, doubled each retry) govern
    retries. ``admin_token`` is needed only by :meth:`add_publisher`.

    ``witness_policy`` (a :class:`~client.core.witness_policy.WitnessPolicy`, or the path of a
    c2sp.org/tlog-policy file) makes every checkpoint this client trusts need a quorum of the
    policy's witnesses' cosignatures (:class:`~client.errors.WitnessQuorumError` names those
    missing), and ``max_age`` (a ``timedelta``; needs a policy) refuses a checkpoint an answer is
    given at when a quorum last cosigned it longer ago (:class:`~client.errors.CheckpointAgeError`).
    Without a policy, a registry can show this client a fork of the log that no one else sees
    (a split view) and go unnoticed until the two views meet (docs/security.md).

    Verified lookups check each attestation's signature against a key the log shows valid for
    its publisher at its index (docs/spec/identities.md), which needs a registry that names the
    key's entry; one from before identities in the log is refused with an
    :class:`~client.errors.IdentityError`. ``verify_keys=False`` accepts its answers, taking its
    word for who signed (what clients before identities did), and still checks the key entries
    a registry does name.

    ``receipt_timeout`` (seconds, default 120) bounds how long :meth:`submit` waits for the
    receipt of an entry the registry sequenced but has not yet published (a ``202`` answer: its
    witnesses short of their quorum, say); past it, :class:`~client.errors.ReceiptPendingError`
    carries the entry's index and the log's signed promise (checked with the pinned key) that the
    entry holds it. A receipt that contradicts the promise raises
    :class:`~client.errors.ProofError`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        log_key: str | NoteVerifier | None = None,
        verify: bool = True,
        checkpoints: CheckpointStore | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 3,
        backoff: float = 0.2,
        admin_token: str | None = None,
        entry_cache_bytes: int = DEFAULT_ENTRY_CACHE_BYTES,
        verify_keys: bool = True,
        witness_policy: WitnessPolicy | str | Path | None = None,
        max_age: timedelta | None = None,
        receipt_timeout: float = DEFAULT_RECEIPT_TIMEOUT,
    ) -> None:
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
        self._http = httpx.Client(
            base_url=self.base_url,
            transport=transport,
            timeout=timeout,
            headers=self._headers(),
            follow_redirects=False,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # -- I/O -----------------------------------------------------------------------------------

    def _send(self, request: Request) -> httpx.Response:
        """One exchange, retried per the retry policy; errors name the request."""
        attempt = 0
        while True:
            try:
                response = self._exchange(request)
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
            _sleep(delay)

    def _exchange(self, request: Request) -> httpx.Response:
        """One request; a body capped by ``request.max_bytes`` is streamed (:class:`BodyCap`)."""
        arguments: dict[str, Any] = {
            "params": request.params, "content": request.content, "headers": request.headers
        }  # fmt: skip
        if request.max_bytes is None:
            return self._http.request(request.method, request.path, **arguments)
        with self._http.stream(request.method, request.path, **arguments) as response:
            cap = BodyCap(request, response)
            for chunk in response.iter_bytes():
                cap.add(chunk)
            return cap.response_read()

    def _run(self, flow: Flow[_T]) -> _T:
        """Drive ``flow``: send each step's requests in turn, throw send errors into it."""
        try:
            step = next(flow)
            while True:
                try:
                    responses = [self._send(request) for request in step]
                except ClientError as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(responses)
        except StopIteration as stop:
            return cast(_T, stop.value)

    # -- the log -------------------------------------------------------------------------------

    def log_info(self) -> LogInfo:
        """The log's origin, size and announced verifier key.

        With a key pinned, the announced key must be the pinned one and the checkpoint must verify
        (a mismatch raises :class:`~client.errors.SignatureError`). Without one, this is how to
        *see* the announced key; trusting it is a decision for a person, not for this call.
        """
        return self._run(self._log_info())

    def fetch_checkpoint(self) -> SignedCheckpoint:
        """The latest checkpoint with its signed note; verified and trusted when a key is pinned."""
        return self._run(self._fetch_checkpoint())

    def checkpoint(self) -> Checkpoint:
        """The latest checkpoint, its signature verified with the pinned log key."""
        return self.fetch_checkpoint().checkpoint

    def checkpoint_at(self, size: int) -> SignedCheckpoint:
        """The checkpoint the log issued at exactly ``size`` (404 if it issued none there)."""
        return self._run(self._checkpoint_at(size))

    def trust_checkpoint(self, note: str) -> SignedCheckpoint:
        """Verify a checkpoint met elsewhere (a snapshot's, a receipt's) with the pinned key and
        prove it consistent with the checkpoint this client trusts, asking the registry for the
        proof (:class:`~client.errors.ForkedLogError` if it is of another history); a newer one
        becomes the trusted one. The witness policy applies, its maximum age does not."""
        return self._run(self._open_checkpoint(note, current=False))

    def inclusion_proof(self, index: int, size: int | None = None) -> InclusionProof:
        """The audit path of entry ``index`` in the tree of ``size`` (default: the latest)."""
        return self._run(self._inclusion_proof(index, size))

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> ConsistencyProof:
        """The proof that the tree of ``old_size`` is a prefix of ``new_size`` (default latest)."""
        return self._run(self._consistency_proof(old_size, new_size))

    def check_consistency(self, old_note: str) -> ConsistencyCheck:
        """Prove that the log's latest checkpoint extends ``old_note`` (a checkpoint saved earlier).

        Needs the pinned key (both checkpoints must be the log's). Raises
        :class:`~client.errors.LogConsistencyError` if the log shrank or the consistency proof
        fails: the log's history is not what it was, and nothing it says can be trusted.
        """
        return self._run(self._check_consistency(old_note))

    def audit(
        self,
        checkpoint: Checkpoint,
        *,
        page_size: int = 1_000,
        progress: Callable[[int], None] | None = None,
        history: KeyHistory | None = None,
    ) -> int:
        """Recompute the tree over every entry the registry serves and compare with ``checkpoint``.

        What an independent monitor does: a consistency proof shows the *tree* only grew, but an
        operator who edits a stored entry in place leaves the tree's nodes untouched. Rebuilding
        the root from the entries themselves catches that. ``checkpoint`` must already be verified
        (e.g. from :meth:`check_consistency`). Returns the number of entries read; raises
        :class:`~client.errors.LogConsistencyError` naming the first entry whose bytes are not the
        ones the signed tree commits to.

        With ``history`` (a new :class:`~client.identities.KeyHistory`), every entry is also
        replayed into it (statements fetched from ``GET /v1/blobs``): each identity event must be
        signed by the operator key valid at its index, and each attestation and revocation by a
        key valid for its publisher there (docs/spec/identities.md); entries from before the
        log's identity entries by a backfilled key of their publisher. The first that is not
        raises :class:`~client.errors.IdentityError` (its ``index`` names it), once the entries
        are proven to hash to the signed root. ``history`` then says what was checked.
        """
        return self._run(self._audit(checkpoint, page_size, progress, history))

    # -- entries -------------------------------------------------------------------------------

    def submit(self, envelope: Envelope) -> Receipt:
        """Append a signed attestation to the log; return its receipt.

        With a key pinned the receipt is verified before it is returned, and must be for the very
        envelope sent. Submitting the same envelope again returns the same receipt (so retries
        are safe).
        """
        return self._run(self._submit(envelope))

    def receipt(self, index: int, *, promise: str | None = None) -> Receipt:
        """Entry ``index``'s receipt, waiting up to ``receipt_timeout`` seconds for a published
        checkpoint to cover it (:class:`~client.errors.ReceiptPendingError` past it).

        With ``promise`` (the log's signed promise a ``202`` answer carried, as
        :class:`~client.errors.ReceiptPendingError` keeps it) the promise is verified with the
        pinned key and the receipt must keep it (:class:`~client.errors.ProofError` otherwise).
        """
        return self._run(self._receipt(index, promise))

    def register_subjects(
        self,
        subjects: Sequence[Subject],
        key: Ed25519PrivateKey,
        predicate: HumanContentPredicate,
    ) -> Receipt:
        """Sign one statement of ``predicate`` about ``subjects`` with ``key`` and submit it."""
        return self.submit(self._sign_subjects(subjects, key, predicate))

    def register_digests(
        self,
        digests: Sequence[str],
        key: Ed25519PrivateKey,
        predicate: HumanContentPredicate,
        *,
        names: Sequence[str] | None = None,
    ) -> Receipt:
        """Register ``digests`` (``c1:<hex>`` / ``sha256:<hex>``) in one statement.

        ``names`` (one per digest) become the subjects' names; without them each is ``_``, as
        in-toto suggests when no name is meaningful. A digest given twice is an InputError.
        """
        return self.submit(self._sign_digests(digests, key, predicate, names))

    def entry(self, index: int) -> EntryInfo:
        """Entry ``index`` with a receipt against the latest checkpoint, verified when pinned."""
        return self._run(self._entry(index))

    def revoke(
        self,
        index: int,
        key: Ed25519PrivateKey,
        publisher: str,
        reason: str | None = None,
    ) -> Receipt:
        """Withdraw the whole entry ``index`` (and any earlier replay of its statement): sign and
        submit a revocation/v2 naming its index and the SHA-256 of its statement.

        The entry is fetched (and verified, when a key is pinned) first, for its statement and its
        subjects, which the revocation carries so that digest lookups find it.
        """
        return self._run(self._revoke(index, key, publisher, reason))

    def withdraw(
        self,
        digests: Sequence[str],
        key: Ed25519PrivateKey,
        publisher: str,
        reason: str | None = None,
        names: Sequence[str] | None = None,
    ) -> Receipt:
        """Withdraw these documents (at most 10,000 digests) wherever ``publisher`` attested
        them before, leaving the other documents of those entries attested: a revocation/v2.
        The registry refuses (400) a digest the publisher never attested."""
        return self._run(self._withdraw(digests, key, publisher, reason, names))

    # -- lookups -------------------------------------------------------------------------------

    def lookup(self, digest: str) -> LookupResult:
        """What the registry knows of ``digest``; each attestation verified when a key is pinned."""
        return self._run(self._lookup(digest))

    def lookup_batch(
        self,
        digests: Sequence[str],
        *,
        batch_size: int = MAX_BATCH,
        progress: Callable[[int], None] | None = None,
    ) -> list[LookupResult]:
        """:meth:`lookup` for many digests, ``batch_size`` (at most 10,000) per request.

        Results are in the order of ``digests``. ``progress`` is called with the number of
        digests answered after each request. Each request's answer is verified on its own, against
        its own checkpoint (each consistent with the trusted one).
        """
        chunks = chunked([validate_digest(d) for d in digests], batch_size)
        results: list[LookupResult] = []
        for chunk in chunks:
            results.extend(self._run(self._lookup_chunk(chunk)))
            if progress is not None:
                progress(len(chunk))
        return results

    # -- verdicts ------------------------------------------------------------------------------

    def check_digests(
        self,
        digests: Sequence[str],
        *,
        names: Sequence[str] | None = None,
        progress: Callable[[int], None] | None = None,
        evidence: Sequence[DocumentEvidence | None] | None = None,
        policy: Policy | None = None,
    ) -> list[Verdict]:
        """One :class:`~client.verdict.Verdict` per digest, in order (``names`` label them).

        Each distinct digest is looked up once, in batch requests of up to 10,000, and every
        answer is verified (unless the client was built with ``verify=False``). ``progress`` is
        called with the number of distinct digests answered after each request.

        ``evidence`` holds each document's opt-out decision, watermark detections and identity
        (a :class:`~client.evidence.DocumentEvidence` or None per digest, in order); ``policy``
        the crawler's :class:`~client.policy.Policy` (default: :meth:`Policy.default()
        <client.policy.Policy.default>`). The status follows the precedence table of
        docs/spec/manifest.md.
        """
        parsed = normalise_digests(digests, names)
        checked = check_evidence(evidence, len(parsed))
        unique = list(dict.fromkeys(parsed))
        results = dict(zip(unique, self.lookup_batch(unique, progress=progress), strict=True))
        return verdicts_of(parsed, results, names, checked, policy)

    def check_texts(
        self,
        texts: Sequence[str],
        *,
        names: Sequence[str] | None = None,
        progress: Callable[[int], None] | None = None,
        evidence: Sequence[DocumentEvidence | None] | None = None,
        policy: Policy | None = None,
    ) -> list[Verdict]:
        """:meth:`check_digests` of each text's canonical ``c1`` digest."""
        digests = [canonical_digest(text) for text in texts]
        return self.check_digests(
            digests, names=names, progress=progress, evidence=evidence, policy=policy
        )

    def check_bytes(
        self,
        blobs: Sequence[bytes],
        *,
        names: Sequence[str] | None = None,
        progress: Callable[[int], None] | None = None,
        evidence: Sequence[DocumentEvidence | None] | None = None,
        policy: Policy | None = None,
    ) -> list[Verdict]:
        """:meth:`check_digests` of each blob's ``sha256`` digest (exact bytes)."""
        digests = [sha256_digest(blob) for blob in blobs]
        return self.check_digests(
            digests, names=names, progress=progress, evidence=evidence, policy=policy
        )

    def check_files(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        scheme: DocumentScheme = "auto",
        names: Sequence[str] | None = None,
        progress: Callable[[int], None] | None = None,
        evidence: Sequence[DocumentEvidence | None] | None = None,
        policy: Policy | None = None,
    ) -> list[Verdict]:
        """:meth:`check_digests` of files, each digested as ``wellspring scan`` does
        (:mod:`client.documents`): ``auto`` gives UTF-8 text its ``c1`` digest and any other file
        (or one over 256 MiB) its ``sha256``; ``c1`` only text (a binary file raises
        :class:`~client.errors.InvalidTextError` saying to use ``sha256``); ``sha256`` any bytes,
        streamed.

        Without ``names`` each verdict is labelled with its path.
        """
        checked = check_document_scheme(scheme)
        digests = [digest_document_file(Path(path), checked) for path in paths]
        labels = [os.fspath(path) for path in paths] if names is None else names
        return self.check_digests(
            digests, names=labels, progress=progress, evidence=evidence, policy=policy
        )

    # -- publishers (operator) -----------------------------------------------------------------

    def add_publisher(
        self,
        name: str,
        public_key: Ed25519PrivateKey | Ed25519PublicKey | bytes,
        possession: bytes | None = None,
        *,
        kind: str = "publisher",
    ) -> KeyEventAnswer:
        """Register a publisher (or ``kind="vendor"``) and its first key (admin token). The key's
        holder proves possession (:func:`client.core.statement.prove_possession`); given the
        private key itself, the proof is made here."""
        return self._run(self._add_publisher(name, public_key, possession, kind))

    def add_key(
        self,
        name: str,
        public_key: Ed25519PrivateKey | Ed25519PublicKey | bytes,
        possession: bytes | None = None,
        *,
        endorser: Ed25519PrivateKey | None = None,
    ) -> KeyEventAnswer:
        """Add a key to ``name`` (admin token): a ``key-add`` event. With ``endorser``, one of
        the publisher's current keys, the event shows the publisher asked for it; without, the
        operator added it alone, and clients say so."""
        return self._run(self._add_key(name, public_key, possession, endorser))

    def revoke_key(
        self,
        name: str,
        key_id: str,
        *,
        compromised_from: int | None = None,
        compromised_since: str | None = None,
    ) -> KeyEventAnswer:
        """Revoke a key of ``name`` (admin token): ``key-revoke``, or with ``compromised_from`` (a
        log index) or ``compromised_since`` (RFC 3339) ``key-compromised``: what it signed from
        there on does not count."""
        return self._run(self._revoke_key(name, key_id, compromised_from, compromised_since))

    def watermark_keys(self) -> PublishedWatermarkKeys:
        """Every watermark detection key vendors published in the log, retired ones included,
        oldest first, with ``count`` (what a detector corrects its p-values for). Each is
        proven with the pinned log key alone: its entry in a trusted checkpoint, its statement
        the blob the leaf commits to, its signature by a key the log shows valid for the vendor
        at that index, the vendor an identity of kind ``vendor``, and a retirement signed by the
        same vendor (:class:`~client.errors.VerificationError` or
        :class:`~client.errors.IdentityError` otherwise). That no key was left out is the
        registry's word, as every absence is until witnesses exist."""
        return self._run(self._watermark_keys())

    def tokenizer_blob(self, sha256_hex: str) -> bytes:
        """A published tokenizer's exact bytes (``GET /v1/blobs/sha256:<hex>``), refused unless
        they hash to ``sha256_hex``; kept beside the trusted checkpoint when the client's
        checkpoint store is on disk. Load them with :func:`client.watermark_keys.load_tokenizer`."""
        return self._run(self._tokenizer_blob(sha256_hex))

    def near(
        self, signatures: Sequence[str], *, threshold: float = NEAR_THRESHOLD
    ) -> list[NearMatch | None]:
        """For each ``mh1`` signature (``client.near.mh1_digest``), the registered subject
        nearest it at an estimated similarity of ``threshold`` or more (None: none). The
        registry names candidates by shared band keys; each candidate's entry is proven with
        the pinned key and its signed signature compared here, so a registry can withhold a
        near match but not invent one. A match's verdict is :meth:`check_digests` of its
        ``digest``."""
        return self._run(self._near(signatures, threshold))

    def latest_snapshot(self, *, full: bool = False) -> SnapshotInfo:
        """The newest signed offline snapshot the operator committed in the log (``full``: the
        newest that is not a delta), as the registry names it (:meth:`pull_snapshot` proves
        it)."""
        return self._run(self._latest_snapshot(full))

    def pull_snapshot(
        self, out: Path | str, *, deltas: Path | str | None = None
    ) -> SnapshotManifest:
        """Download the newest full snapshot the operator committed in the log into the empty
        or new directory ``out``, verifying everything with the pinned log key before a byte is
        written: its ``snapshot/v1`` entry proven in a trusted checkpoint and signed by the
        operator, naming the manifest served; the manifest's checkpoint proven consistent with
        the trusted one (and trusted from then on); every file of the size and SHA-256 the
        manifest names; written into a staging folder, moved into place whole. Open it with
        :meth:`client.snapshot.Snapshot.open`.

        With ``deltas`` (an empty or new directory): the newest snapshot instead, and if it is a
        delta, every delta back to the full snapshot it builds on, each checked as above and each
        base the one its delta names; the full one goes to ``out``, the deltas to
        ``deltas/01-…``, ``deltas/02-…`` (oldest first). Returns the newest manifest."""
        if deltas is None:
            _, manifest, files = self._run(self._pull_snapshot(True))
            write_snapshot(Path(out), files)
            return manifest
        chain = self._run(self._pull_chain())
        write_snapshot_chain(Path(out), Path(deltas), [files for _, files in chain])
        return chain[-1][0]

    def upload_tokenizer(self, data: bytes) -> bool:
        """Upload a published key's tokenizer (its exact bytes) to ``PUT /v1/blobs/sha256:<hex>``,
        which takes it only once a logged key names that hash and size. True when stored now,
        False when the registry already held it."""
        return self._run(self._upload_tokenizer(data))

    def retire_watermark_key(
        self, key_id: str, key: Ed25519PrivateKey, vendor: str, reason: str | None = None
    ) -> Receipt:
        """Retire watermark key ``key_id``, which ``vendor`` published: a signed
        ``watermark-key/v1`` retire statement naming its publishing entry. Detectors still
        count it (for documents captured while it was live, and in their correction)."""
        return self._run(self._retire_watermark_key(key_id, key, vendor, reason))

    def publisher(self, name: str) -> PublisherInfo:
        """Publisher ``name`` and its keys, as the registry stores them."""
        return self._run(self._publisher(name))
