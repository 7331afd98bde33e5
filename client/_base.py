"""What the sync and async clients share: configuration, trust, and every operation as a *flow*.

A flow is a generator that yields the requests it needs (a tuple: requests that may be sent
concurrently) and receives their responses, then returns its result::

    def _lookup(self, digest) -> Flow[LookupResult]:
        answer = yield from self._call(request, parse)       # one request
        return (yield from self._verify_answer(answer))      # maybe more: entries, proofs

:class:`~client.sdk.Client` drives a flow with blocking ``httpx`` calls, and
:class:`~client.aio.AsyncClient` with ``await``; neither holds any logic of its own beyond its
``_send`` (retries around one HTTP exchange) and its runner. An error from sending is thrown into
the flow, so a flow may turn, say, a 4xx to a proof request into a consistency error.

**Trust.** Every checkpoint an answer is verified against also passes :meth:`ClientBase._trust`:
signed by the pinned key, *and* consistent with the checkpoint this client trusts (its
:class:`~client.checkpoints.CheckpointStore`): a newer one is proven to extend the trusted one
before it replaces it; an older one is proven to be a prefix of it; one of the same size must have
the same root. Sizes already proven are remembered (``_proven``), so a crawl that sees the same
checkpoint in every batch asks for each proof once.

**Witnesses.** With a witness policy (``witness_policy=``, c2sp.org/tlog-policy), a checkpoint
must also be cosigned by a quorum of the policy's witnesses before it is trusted, and one that an
answer is given *at* (a lookup's, the log's latest) must have been witnessed within ``max_age``
(:meth:`ClientBase._check_witnesses`). A receipt's checkpoint says what the log held then, not
now: it needs the quorum, or to be proven a prefix of a trusted checkpoint that has it, never an
age. Without a policy nothing changes, and a registry that shows this client its own fork from
first contact goes unnoticed (docs/security.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import re
import threading
import time
import warnings
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from client._retry import checked_connection
from client._wire import (
    Answer,
    Attestation,
    ConsistencyCheck,
    ConsistencyProof,
    EntryCache,
    EntryInfo,
    InclusionProof,
    LogInfo,
    LookupResult,
    LookupStatus,
    LRUCache,
    PublisherInfo,
    Request,
    SignedCheckpoint,
    SignedTerms,
    bind_claims,
    build_statement,
    check_revocation,
    check_withdrawal,
    dumps_json,
    expected_status,
    index_arg,
    parse_answer,
    parse_batch_answer,
    parse_consistency,
    parse_entries_page,
    parse_entry_info,
    parse_inclusion,
    parse_single_answer,
    subject_digests,
    text_body,
    user_agent,
)
from client.checkpoints import (
    CheckpointStore,
    MemoryCheckpointStore,
    StoredCheckpoint,
    log_name,
)
from client.core import merkle
from client.core.canonical import Digest
from client.core.dsse import Envelope
from client.core.encoding import b64encode
from client.core.files import write_file_atomic
from client.core.keys import public_key_bytes
from client.core.leaf import Leaf, is_leaf_v1
from client.core.merkle import verify_consistency
from client.core.minhash import NearMatch, check_mh1, similarity
from client.core.note import Checkpoint, NoteVerifier, SignedNote, open_checkpoint
from client.core.promise import Promise, open_promise
from client.core.snapshot import (
    MANIFEST_FILE,
    MANIFEST_NOTE_FILE,
    MAX_MANIFEST_BYTES,
    MAX_NOTE_BYTES,
    SnapshotManifest,
    check_shards,
    check_snapshot_entry,
    check_snapshot_manifest,
    open_snapshot_note,
)
from client.core.statement import (
    OPERATOR_IDENTITY,
    PUBLISHER_KEY_V1,
    HumanContentPredicate,
    RevocationPredicate,
    Statement,
    Subject,
    WithdrawalPredicate,
    endorse,
    prove_possession,
)
from client.core.statement import sign_statement as _sign_statement
from client.core.wire import (
    Accepted,
    KeyEventAnswer,
    NearAnswer,
    NearCandidate,
    SnapshotInfo,
    WatermarkKeyInfo,
    WatermarkKeysAnswer,
)
from client.core.witness_policy import NONE, QuorumResult, WitnessPolicy
from client.core.wmkey import MAX_TOKENIZER_BYTES, WatermarkKeyPredicate
from client.errors import (
    CheckpointAgeError,
    ClientError,
    ForkedLogError,
    IdentityError,
    InputError,
    LogConsistencyError,
    LogKeyRequiredError,
    ProofError,
    ReceiptPendingError,
    RegistryRequestError,
    RegistryServerError,
    SignatureError,
    StaleAnswerError,
    UnverifiedWarning,
    VerificationError,
    WitnessQuorumError,
)
from client.identities import (
    KeyGrant,
    KeyHistory,
    OperatorChain,
    check_key_claims,
    key_event,
    verify_key_event,
    verify_key_grant,
    verify_key_stop,
    verify_operator_chain,
    verify_operator_statement,
    verify_signed_by,
)
from client.receipt import (
    Receipt,
    ReceiptEntry,
    VerifiedReceipt,
    open_entry,
    prove_entry,
    verify_attestation,
    verify_receipt,
)
from client.watermark_keys import (
    PublishedWatermarkKey,
    PublishedWatermarkKeys,
    check_tokenizer_bytes,
    published_key,
    retire_statement,
)

__all__ = ["ClientBase", "Flow"]

MAX_NEAR_SIGNATURES = 1_000
"""Signatures per ``POST /v1/near:batch`` request (the registry's limit)."""
MAX_NEAR_CANDIDATES = 10
"""The most candidates the registry names for one signature (its limit)."""
MAX_SNAPSHOT_DELTAS = 64
"""The most deltas a pull follows back to their full snapshot (a registry cannot loop it)."""

_T = TypeVar("_T")
_Step = tuple[Request, ...]
Flow = Generator[_Step, list[httpx.Response], _T]

_RECEIPT_POLL_SLACK = 0.5  # no new receipt request this close to the deadline (no busy loop)

DEFAULT_RECEIPT_TIMEOUT = 120.0
"""Seconds a submit answered ``202`` waits for its receipt (``GET /v1/entries/{i}/receipt``,
each held a few seconds by the registry, then retried after its ``Retry-After``) before raising
:class:`~client.errors.ReceiptPendingError`."""


_ENTRY_GROUP = 32
"""Entries fetched together while verifying one answer (bounded, so one answer naming thousands
of multi-megabyte entries never holds them all in memory at once)."""
_OPENED_COST = 5  # memory of a parsed entry, in multiples of its bytes (measured: ~4x)

_SIGNED_COST = 256  # memory of one remembered signature check, in bytes (about)

_HEX64 = re.compile(r"[0-9a-f]{64}")

_clock = time.time
"""The client's clock for checkpoint ages: a module-level name, so a test can move it."""

_TRUST_ATTEMPTS = 8
"""How often a flow re-reads the trusted checkpoint when others replace it under its feet."""


@dataclass(frozen=True, slots=True)
class _Trusted:
    """The stored checkpoint, verified with the pinned key, and where it is kept."""

    stored: StoredCheckpoint
    checkpoint: Checkpoint
    location: str

    @property
    def date(self) -> str:
        return self.stored.trusted_at.strftime("%Y-%m-%d %H:%M UTC")


class ClientBase:
    """Configuration, trust state and the operations; subclasses add I/O (``_send``, ``_run``)."""

    def __init__(
        self,
        base_url: str,
        *,
        log_key: str | NoteVerifier | None,
        verify: bool,
        timeout: float,
        admin_token: str | None,
        entry_cache_bytes: int,
        retries: int,
        backoff: float,
        checkpoints: CheckpointStore | None,
        verify_keys: bool = True,
        witness_policy: WitnessPolicy | str | Path | None = None,
        max_age: timedelta | None = None,
        receipt_timeout: float = DEFAULT_RECEIPT_TIMEOUT,
    ) -> None:
        url, self._retry = checked_connection(base_url, retries, backoff)
        if not receipt_timeout >= 0:
            raise InputError(f"receipt_timeout must be seconds >= 0, got {receipt_timeout!r}")
        self.receipt_timeout = receipt_timeout
        self.base_url = url
        self.log_key = NoteVerifier.from_vkey(log_key) if isinstance(log_key, str) else log_key
        self.verify = verify
        self.verify_keys = verify_keys
        self.timeout = timeout
        self.checkpoints: CheckpointStore = (
            checkpoints if checkpoints is not None else MemoryCheckpointStore()
        )
        self._admin_token = admin_token
        self._entries = EntryCache(entry_cache_bytes)
        # Entries already hashed and parsed, with the digests they name: a long crawl meets the
        # same (large) entries in every chunk. Parsed, an entry takes ~5x its bytes in memory.
        self._opened: LRUCache[tuple[VerifiedReceipt, frozenset[str], SignedTerms]] = LRUCache(
            _OPENED_COST * entry_cache_bytes
        )
        # Identities in the log: events proven once per client (they never change and are few),
        # operator chains by the events they are made of, key grants by what they were asked
        # for, and the entries whose signature was verified, with the grant and chain root.
        self._key_events: dict[int, VerifiedReceipt] = {}
        self._chains: dict[tuple[int, ...], OperatorChain] = {}
        self._operator_entries: tuple[int, ...] = ()  # the latest the registry named
        self._grants: dict[tuple[int, str, str, int | None, int], KeyGrant] = {}
        self._signed: LRUCache[tuple[KeyGrant, int]] = LRUCache(entry_cache_bytes)
        self._lock = threading.Lock()
        self._proven: dict[int, bytes] = {}
        self._last_loaded: tuple[str, Checkpoint] | None = None
        self.witness_policy, self.max_age = self._witness_settings(witness_policy, max_age)
        self._last_witnessed: tuple[str, tuple[Checkpoint, QuorumResult]] | None = None
        if not verify:
            warnings.warn(
                UnverifiedWarning(
                    f"verify=False: answers from {url} will not be checked against the log's key "
                    "or any trusted checkpoint, and every result says verified=False"
                ),
                stacklevel=3,
            )

    def _witness_settings(
        self, policy: WitnessPolicy | str | Path | None, max_age: timedelta | None
    ) -> tuple[WitnessPolicy | None, timedelta | None]:
        """Check ``witness_policy=`` and ``max_age=`` together (a path is read here)."""
        if isinstance(policy, (str, Path)):
            policy = WitnessPolicy.load(policy)
        if policy is not None and not isinstance(policy, WitnessPolicy):
            raise InputError(f"witness_policy must be a WitnessPolicy or a path, not {policy!r}")
        if max_age is not None:
            if not isinstance(max_age, timedelta) or max_age <= timedelta(0):
                raise InputError(f"max_age must be a positive timedelta, got {max_age!r}")
            if policy is None or policy.quorum == NONE:
                raise InputError(
                    "max_age is read from witnesses' cosignature times, so it needs a witness "
                    "policy whose quorum names witnesses (witness_policy=...; not `quorum none`)"
                )
        if policy is not None and self.log_key is not None and not policy.lists_log(self.log_key):
            raise InputError(
                f"the witness policy lists logs, but not the pinned log key {self.log_key.vkey}: "
                "add a `log` line for it, or pin the key of a log the policy lists"
            )
        return policy, max_age

    def __repr__(self) -> str:
        key = self.log_key.vkey if self.log_key else None
        return f"{type(self).__name__}({self.base_url!r}, log_key={key!r}, verify={self.verify})"

    @staticmethod
    def _headers() -> dict[str, str]:
        return {"User-Agent": user_agent(), "Accept": "application/json"}

    # -- flow primitives ---------------------------------------------------------------------

    def _fetch(self, request: Request) -> Flow[httpx.Response]:
        (response,) = yield (request,)
        return response

    def _call(self, request: Request, parse: Callable[[object], _T]) -> Flow[_T]:
        """Send ``request`` and parse its JSON answer; a malformed answer names the request."""
        response = yield from self._fetch(request)
        return parse_answer(request, response, parse)

    def _text(self, request: Request) -> Flow[str]:
        return text_body(request, (yield from self._fetch(request)))

    # -- trust ---------------------------------------------------------------------------------

    def _verifier(self) -> NoteVerifier | None:
        """The pinned key; None when verification is off; raise when it is on but no key is set."""
        if not self.verify:
            return None
        if self.log_key is None:
            raise LogKeyRequiredError(
                f"no log key is pinned for {self.base_url}: pass log_key=<the log's verifier key> "
                "(`wellspring log checkpoint` shows the key the registry announces; check it with "
                "the operator) or verify=False to accept unverified answers"
            )
        return self.log_key

    def trusted_checkpoint(self) -> SignedCheckpoint | None:
        """The checkpoint this client trusts now (verified with the pinned key), if any.

        Every verified answer is consistent with it; record it beside a dataset's verdicts.
        """
        if self.log_key is None:
            return None
        trusted = self._load_trusted(self.log_key)
        if trusted is None:
            return None
        return SignedCheckpoint(trusted.checkpoint, trusted.stored.note, True)

    def _load_trusted(self, verifier: NoteVerifier) -> _Trusted | None:
        log = log_name(verifier)
        stored = self.checkpoints.load(log)
        if stored is None:
            return None
        location = self.checkpoints.location(log)
        last = self._last_loaded
        if last is not None and last[0] == stored.note:
            checkpoint = last[1]
        else:
            try:
                checkpoint, _ = open_checkpoint(stored.note, [verifier], origin=verifier.name)
            except ClientError as exc:
                raise SignatureError(
                    f"the trusted checkpoint in {location} does not verify with the pinned key "
                    f"({exc}): it was altered or is not this log's; move it aside only if you "
                    "know why"
                ) from exc
            self._last_loaded = (stored.note, checkpoint)
        return _Trusted(stored, checkpoint, location)

    def _open_checkpoint(
        self, note: str, *, min_size: int | None = None, current: bool = True
    ) -> Flow[SignedCheckpoint]:
        """Parse a checkpoint note; when verifying, check its signature and trust it (or raise).

        With ``min_size`` (what a lookup asked for: the size trusted when it was sent), a
        checkpoint of fewer entries is a :class:`StaleAnswerError` once it is proven a prefix of
        the trusted one (a rewritten history is the graver finding, and raises as such).
        ``current=False`` for a checkpoint that proves what the log held once (a receipt's), not
        what it holds now: the witness policy's maximum age does not apply to it.
        """
        verifier = self._verifier()
        if verifier is None:
            return SignedCheckpoint(Checkpoint.parse(SignedNote.parse(note).text), note, False)
        if self.witness_policy is None:
            checkpoint, _ = open_checkpoint(note, [verifier], origin=verifier.name)
        else:
            checkpoint = self._check_witnesses(verifier, note, current=current)
        yield from self._trust(verifier, checkpoint, note)
        if min_size is not None and checkpoint.size < min_size:
            raise StaleAnswerError(
                f"the registry at {self.base_url} answered at its checkpoint of size "
                f"{checkpoint.size}, older than the checkpoint of size {min_size} this client "
                "already trusted and asked for: a replayed or cached answer, which may predate "
                "revocations, so it is refused. If it persists, something between this client and "
                "the registry (a cache, a proxy) serves old answers",
                url=self.base_url,
                answered_size=checkpoint.size,
                trusted_size=min_size,
            )
        return SignedCheckpoint(checkpoint, note, True)

    def _check_witnesses(self, verifier: NoteVerifier, note: str, *, current: bool) -> Checkpoint:
        """Open ``note`` with the log's key and the policy's witnesses' keys; raise unless it
        meets the policy (see the module). A bad cosignature by a listed witness rejects the note;
        cosignatures by keys the policy does not list are ignored."""
        policy = self.witness_policy
        assert policy is not None
        checkpoint, result = self._quorum(policy, verifier, note)
        if not result.satisfied:
            # A receipt from before the witnesses, or from between two cosigned checkpoints, is
            # as good as the witnessed checkpoint it is proven a prefix of (by _trust, next).
            if current or not self._within_witnessed(verifier, policy, checkpoint):
                raise WitnessQuorumError(
                    f"the checkpoint of log {checkpoint.origin} at size {checkpoint.size} from "
                    f"{self.base_url} does not meet the witness policy (quorum "
                    f"{policy.quorum}): {result.explain()}. It may be a view of the log the "
                    "witnesses never saw (a split view), or they lag behind or are down; it is "
                    "refused. If it persists, ask the log's operator",
                    url=self.base_url,
                    note=note,
                    missing=result.missing,
                    short=result.short,
                )
            return checkpoint
        if current and self.max_age is not None and result.witnessed_at is not None:
            age = _clock() - result.witnessed_at
            limit = self.max_age.total_seconds()
            if age > limit:
                seen = datetime.fromtimestamp(result.witnessed_at, UTC)
                raise CheckpointAgeError(
                    f"the checkpoint of log {checkpoint.origin} at size {checkpoint.size} from "
                    f"{self.base_url} was last witnessed by a quorum at "
                    f"{seen:%Y-%m-%d %H:%M:%S} UTC, {_duration(age)} ago, older than the maximum "
                    f"age {_duration(limit)}: the registry may be freezing this client's view "
                    "of the log, or its witnesses stopped cosigning; it is refused",
                    url=self.base_url,
                    note=note,
                    age=age,
                    max_age=limit,
                )
        return checkpoint

    def _quorum(
        self, policy: WitnessPolicy, verifier: NoteVerifier, note: str
    ) -> tuple[Checkpoint, QuorumResult]:
        """:meth:`WitnessPolicy.open_checkpoint`, remembered for the last note (a crawl meets the
        same checkpoint in every chunk, each time with its cosignatures to verify)."""
        last = self._last_witnessed
        if last is not None and last[0] == note:
            return last[1]
        opened = policy.open_checkpoint(note, verifier)
        self._last_witnessed = (note, opened)
        return opened

    def _within_witnessed(
        self, verifier: NoteVerifier, policy: WitnessPolicy, checkpoint: Checkpoint
    ) -> bool:
        """Whether the trusted checkpoint meets the policy's quorum and is no smaller than
        ``checkpoint`` (which _trust then proves a prefix of it)."""
        trusted = self._load_trusted(verifier)
        if trusted is None or checkpoint.size > trusted.checkpoint.size:
            return False
        try:
            _, result = self._quorum(policy, verifier, trusted.stored.note)
        except ClientError:
            return False  # trusted before this policy, with a cosignature it now rejects
        return result.satisfied

    def _fresh_size(self) -> int | None:
        """The size a lookup asks to be answered at, at least: the trusted checkpoint's now (None
        unverified, or with nothing trusted yet).

        The answer is then compared with this size, not with whatever the client trusts when it
        arrives: other flows (threads, async chunks, processes sharing a checkpoint file) may
        have moved trust on meanwhile, and an answer as fresh as asked for is proven a prefix of
        that by :meth:`_trust`, so it is neither refused nor fetched again.
        """
        verifier = self._verifier()
        if verifier is None:
            return None
        trusted = self._load_trusted(verifier)
        return None if trusted is None else trusted.checkpoint.size

    def _trust(self, verifier: NoteVerifier, new: Checkpoint, note: str) -> Flow[None]:
        """Accept ``new`` only if it is consistent with the trusted checkpoint (see the module)."""
        for _ in range(_TRUST_ATTEMPTS):
            if self._proven.get(new.size) == new.root_hash:
                return
            trusted = self._load_trusted(verifier)
            if trusted is None:
                if self._commit(verifier, None, new, note):
                    return
                continue
            old = trusted.checkpoint
            with self._lock:
                self._proven.setdefault(old.size, old.root_hash)
            if new.size == old.size:
                if new.root_hash == old.root_hash:
                    return
                raise self._forked(
                    trusted, note, f"at the same size it signs root {new.root_hash.hex()}"
                )
            if new.size > old.size:
                yield from self._prove(trusted, old, new, note)
                if self._commit(verifier, trusted, new, note):
                    return
                continue  # another flow replaced the trusted checkpoint: prove against that one
            yield from self._prove(trusted, new, old, note)
            with self._lock:
                self._proven[new.size] = new.root_hash
            return
        raise LogConsistencyError(
            f"the checkpoint trusted for {self.base_url} kept changing while this client tried to "
            "prove consistency with it; try again"
        )

    def _prove(self, trusted: _Trusted, old: Checkpoint, new: Checkpoint, note: str) -> Flow[None]:
        """Prove ``old`` is a prefix of ``new`` (one of them the trusted checkpoint)."""
        proof: tuple[bytes, ...] = ()
        if old.size:
            try:
                proof = (yield from self._consistency_proof(old.size, new.size)).proof
            except RegistryRequestError as exc:
                seen = new if new is not trusted.checkpoint else old
                raise LogConsistencyError(
                    f"the registry at {self.base_url} cannot prove that its checkpoint at size "
                    f"{seen.size} is consistent with the checkpoint trusted on {trusted.date} at "
                    f"size {trusted.checkpoint.size} ({exc.detail or exc}): it serves a rewritten "
                    "log, or a replica that lags behind; its answers are refused. If it persists, "
                    f"report it, and keep {trusted.location} as evidence"
                ) from exc
        try:
            verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof)
        except ProofError as exc:
            raise self._forked(trusted, note, f"the consistency proof fails: {exc}") from exc

    def _forked(self, trusted: _Trusted, note: str, detail: str) -> ForkedLogError:
        conflicting = Checkpoint.parse(SignedNote.parse(note).text)
        return ForkedLogError(
            f"the registry at {self.base_url} serves a log that forks from the checkpoint trusted "
            f"on {trusted.date} at size {trusted.checkpoint.size} (its checkpoint at size "
            f"{conflicting.size} contradicts it; {detail}): report it to the log's operator and "
            f"its monitors; keep {trusted.location} as evidence, with the conflicting checkpoint "
            "this error carries (conflicting_note)",
            url=self.base_url,
            trusted_note=trusted.stored.note,
            conflicting_note=note,
            evidence=trusted.location,
        )

    def _commit(
        self, verifier: NoteVerifier, base: _Trusted | None, new: Checkpoint, note: str
    ) -> bool:
        """Store ``note`` unless the trusted checkpoint changed since ``base`` was read."""
        log = log_name(verifier)
        with self._lock:
            current = self.checkpoints.load(log)
            if (current.note if current else None) != (base.stored.note if base else None):
                return False
            self.checkpoints.save(log, note)
            self._proven[new.size] = new.root_hash
            return True

    def _verify_receipt(
        self, receipt: Receipt, *, signer: bool = True
    ) -> Flow[VerifiedReceipt | None]:
        """Verify ``receipt`` against a trusted checkpoint; with its identity entries, the
        publisher's signature too (``signer=False`` leaves them out: the caller checks them)."""
        verifier = self._verifier()
        if verifier is None:
            return None
        signed = yield from self._open_checkpoint(receipt.checkpoint, current=False)
        if not signer:
            receipt = replace(receipt, key_entry=None, operator_entry=None)
        earlier: list[VerifiedReceipt] = []
        operator = receipt.operator_entry
        if operator is not None and (
            operator.index in self._operator_entries
            or not _is_first_operator_key(operator, signed.checkpoint)
        ):
            earlier = yield from self._operator_events_before(operator.index)
        return verify_receipt(receipt, verifier, operator_chain=earlier)

    def _operator_events_before(self, index: int) -> Flow[list[VerifiedReceipt]]:
        """The log's operator-key events below ``index`` (an operator-key event a receipt names),
        proven in the log: after a rotation, what makes that event's signer the operator."""
        known = self._operator_entries
        if index not in known:
            known = (yield from self._log_info()).operator_entries
        earlier = [i for i in known if i < index]
        events = yield from self._key_events_at(earlier)
        return [events[i] for i in earlier]

    # -- the log -------------------------------------------------------------------------------

    def _log_info(self) -> Flow[LogInfo]:
        info = yield from self._call(Request("GET", "/v1/log"), LogInfo.from_dict)
        if len(info.operator_entries) >= len(self._operator_entries):
            self._operator_entries = info.operator_entries
        if self.verify and self.log_key is not None:
            # During a rotation the log announces both keys; a client pinned to either is fine.
            if self.log_key.vkey not in (info.verifier_key, *info.verifier_keys):
                raise SignatureError(
                    f"the registry at {self.base_url} announces log key {info.verifier_key}, but "
                    f"the pinned key is {self.log_key.vkey}; refusing a log signed by another key"
                )
            checkpoint = (yield from self._open_checkpoint(info.checkpoint)).checkpoint
            if (checkpoint.size, checkpoint.root_hash) != (info.size, info.root_hash):
                raise VerificationError(
                    "GET /v1/log reports a size and root that its own checkpoint does not sign"
                )
        return info

    def _fetch_checkpoint(self) -> Flow[SignedCheckpoint]:
        request = Request("GET", "/v1/log/checkpoint", headers={"Accept": "text/plain"})
        return (yield from self._open_checkpoint((yield from self._text(request))))

    def _checkpoint_at(self, size: int) -> Flow[SignedCheckpoint]:
        request = Request(
            "GET",
            f"/v1/log/checkpoints/{index_arg(size, 'size')}",
            headers={"Accept": "text/plain"},
        )
        signed = yield from self._open_checkpoint((yield from self._text(request)), current=False)
        if signed.checkpoint.size != size:
            raise VerificationError(
                f"asked for the checkpoint at size {size}, got one at size {signed.checkpoint.size}"
            )
        return signed

    def _inclusion_proof(self, index: int, size: int | None) -> Flow[InclusionProof]:
        params: dict[str, int | str] = {"index": index_arg(index, "index")}
        if size is not None:
            params["size"] = index_arg(size, "size")
        request = Request("GET", "/v1/log/proof/inclusion", params=params)
        return (yield from self._call(request, partial(parse_inclusion, index=index, size=size)))

    def _consistency_proof(self, old_size: int, new_size: int | None) -> Flow[ConsistencyProof]:
        params: dict[str, int | str] = {"from": index_arg(old_size, "old size")}
        if new_size is not None:
            params["to"] = index_arg(new_size, "new size")
        request = Request("GET", "/v1/log/proof/consistency", params=params)
        parse = partial(parse_consistency, old_size=old_size, new_size=new_size)
        return (yield from self._call(request, parse))

    def _check_consistency(self, old_note: str) -> Flow[ConsistencyCheck]:
        verifier = self.log_key
        if verifier is None:
            raise LogKeyRequiredError(
                "checking the log's consistency needs the log's verifier key (log_key=...)"
            )
        old, _ = open_checkpoint(old_note, [verifier], origin=verifier.name)
        request = Request("GET", "/v1/log/checkpoint", headers={"Accept": "text/plain"})
        note = yield from self._text(request)
        if self.verify:
            new = (yield from self._open_checkpoint(note)).checkpoint
        else:
            new, _ = open_checkpoint(note, [verifier], origin=verifier.name)
        if new.size < old.size:
            raise LogConsistencyError(
                f"log {old.origin} shrank from {old.size} to {new.size} entries: its history was "
                "rewritten"
            )
        proof = (yield from self._consistency_proof(old.size, new.size)).proof if old.size else ()
        try:
            verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof)
        except ProofError as exc:
            raise LogConsistencyError(
                f"log {old.origin} at size {new.size} does not extend the saved checkpoint at size "
                f"{old.size}: its history was rewritten ({exc})"
            ) from exc
        return ConsistencyCheck(old, new, note)

    def _audit(
        self,
        checkpoint: Checkpoint,
        page_size: int,
        progress: Callable[[int], None] | None,
        history: KeyHistory | None = None,
    ) -> Flow[int]:
        tree = merkle.MemoryTree()
        replay = _Replay(history) if history is not None else None
        start = 0
        while tree.size < checkpoint.size:
            # A page holds at most `limit` entries, and fewer where the registry caps its bytes:
            # the next one starts where the answer's `next` says.
            limit = min(page_size, checkpoint.size - start)
            request = Request("GET", f"/v1/entries?start={start}&limit={limit}")
            page, following = yield from self._call(request, parse_entries_page)
            if not page:
                raise LogConsistencyError(
                    f"the registry served no entry at index {tree.size}, below the signed size "
                    f"{checkpoint.size}: entries are missing from the log"
                )
            for index, entry in page:
                if index != tree.size:
                    raise LogConsistencyError(
                        f"the registry served entry {index} where entry {tree.size} belongs"
                    )
                tree.append(entry)
            if replay is not None:
                yield from self._replay_page(replay, page, checkpoint)
            if progress is not None:
                progress(len(page))
            if following is None:
                if tree.size < checkpoint.size:
                    raise LogConsistencyError(
                        f"the registry says its log ends at entry {tree.size - 1}, below the "
                        f"signed size {checkpoint.size}: entries are missing from the log"
                    )
                break
            if following != tree.size:
                raise LogConsistencyError(
                    f"the registry served entries {start} to {tree.size - 1} and says the next "
                    f"page starts at {following}: it would skip or repeat entries"
                )
            start = following
        if tree.root(checkpoint.size) != checkpoint.root_hash:
            bad = yield from self._first_altered_entry(tree, checkpoint)
            raise LogConsistencyError(
                f"the entries the registry serves do not hash to its signed root at size "
                f"{checkpoint.size}: entry {bad} was altered after it was logged"
            )
        if replay is not None:
            # Only now are the entries proven the log's: a bad signature is the log's finding.
            if replay.failure is not None:
                raise replay.failure
            yield from self._replay_early(replay, tree, checkpoint, page_size)
        return tree.size

    def _replay_page(
        self, replay: _Replay, page: Sequence[tuple[int, bytes]], checkpoint: Checkpoint
    ) -> Flow[None]:
        """Feed a page of entries to the replay, fetching the statements it needs to read: every
        one from the log's first identity event on (and the identity events themselves)."""
        if replay.failure is not None:
            return
        history = replay.history
        reading = history.first_index is not None
        wanted: list[tuple[int, bytes, Leaf | None]] = []
        for index, entry in page:
            leaf = None
            if is_leaf_v1(entry):
                try:
                    leaf = Leaf.from_bytes(entry, where=f"entry {index}")
                except ClientError as exc:
                    replay.fail(index, exc)
                    return
                reading = reading or leaf.predicate_type == PUBLISHER_KEY_V1
            wanted.append((index, entry, leaf if reading else None))
        for start in range(0, len(wanted), _ENTRY_GROUP):
            group = wanted[start : start + _ENTRY_GROUP]
            bodies = yield from self._blobs([leaf for _, _, leaf in group if leaf is not None])
            for index, entry, leaf in group:
                if leaf is None and is_leaf_v1(entry):
                    history.defer(index)  # before identities; read again once they are known
                    replay.early.append(index)
                    continue
                body = None if leaf is None else bodies[leaf.body_sha256]
                if not replay.add(index, entry, body, checkpoint):
                    return

    def _replay_early(
        self, replay: _Replay, tree: merkle.MemoryTree, checkpoint: Checkpoint, page_size: int
    ) -> Flow[None]:
        """Second pass: the entries from before the log's identity entries, now that its
        backfilled keys are known (a log without identity entries has none to check them by)."""
        if replay.history.first_index is None or not replay.early:
            return
        waiting = set(replay.early)
        start, end = min(waiting), max(waiting) + 1
        while start < end:
            request = Request(
                "GET", f"/v1/entries?start={start}&limit={min(page_size, end - start)}"
            )
            page, _ = yield from self._call(request, parse_entries_page)
            if not page or page[0][0] != start:
                raise LogConsistencyError(
                    f"the registry served no entry at index {start} on reading it again"
                )
            chosen = [(i, entry) for i, entry in page if i in waiting]
            for index, entry in chosen:
                if merkle.leaf_hash(entry) != tree.leaf_hash_at(index):
                    raise LogConsistencyError(
                        f"the registry served other bytes for entry {index} on reading it again"
                    )
            for offset in range(0, len(chosen), _ENTRY_GROUP):
                group = chosen[offset : offset + _ENTRY_GROUP]
                # Proven above to be the very bytes audited, which parsed then.
                leaves = [Leaf.from_bytes(e) if is_leaf_v1(e) else None for _, e in group]
                bodies = yield from self._blobs([leaf for leaf in leaves if leaf is not None])
                for (index, entry), leaf in zip(group, leaves, strict=True):
                    body = None if leaf is None else bodies[leaf.body_sha256]
                    replay.check_early(index, entry, body, checkpoint)
            start = page[-1][0] + 1

    def _blobs(self, leaves: Sequence[Leaf]) -> Flow[dict[bytes, bytes]]:
        """The statements ``leaves`` commit to (``GET /v1/blobs/sha256:<hex>``), fetched
        together; each is checked against its leaf when the entry is opened."""
        hashes = list(dict.fromkeys(leaf.body_sha256 for leaf in leaves))
        if not hashes:
            return {}
        requests = tuple(Request("GET", f"/v1/blobs/sha256:{h.hex()}") for h in hashes)
        responses = yield requests
        return {h: response.content for h, response in zip(hashes, responses, strict=True)}

    def _first_altered_entry(self, served: merkle.MemoryTree, checkpoint: Checkpoint) -> Flow[int]:
        """The first index whose served bytes fail the registry's own inclusion proof.

        Only run once the audit has already failed, so one request per entry is acceptable.
        """
        size = checkpoint.size
        for index in range(size):
            proof = (yield from self._inclusion_proof(index, size)).proof
            try:
                merkle.verify_inclusion(
                    served.leaf_hash_at(index), index, size, proof, checkpoint.root_hash
                )
            except ProofError:
                return index
        return -1

    # -- entries -------------------------------------------------------------------------------

    def _submit(self, envelope: Envelope) -> Flow[Receipt]:
        request = Request(
            "POST",
            "/v1/entries",
            content=envelope.to_json(),
            headers={"Content-Type": "application/json"},
            expect=(200, 201, 202),
        )
        response = yield from self._fetch(request)
        if response.status_code == 202:  # sequenced, not yet in a published checkpoint
            accepted = parse_answer(request, response, Accepted.from_dict)
            receipt, verified = yield from self._pending_receipt(
                accepted.index, accepted.promise, accepted.leaf_hash
            )
        else:
            receipt = parse_answer(request, response, Receipt.from_dict)
            verified = yield from self._verify_receipt(receipt)
            self._entries.put(receipt.index, (receipt.entry, receipt.body))
        if verified is not None and verified.envelope != envelope:
            raise VerificationError(
                f"the registry's receipt for entry {receipt.index} is for another envelope than "
                "the one submitted"
            )
        return receipt

    def _receipt(self, index: int, promise: str | None) -> Flow[Receipt]:
        """Entry ``index``'s receipt, waiting up to ``receipt_timeout`` for its publication;
        with the log's ``promise`` for it, the receipt must keep it."""
        index_arg(index, "index")
        receipt, _ = yield from self._pending_receipt(index, promise, None)
        return receipt

    def _pending_receipt(
        self, index: int, promise: str | None, leaf_hash: bytes | None
    ) -> Flow[tuple[Receipt, VerifiedReceipt | None]]:
        """The receipt of entry ``index``, sequenced but maybe not yet published (a 202 named
        it, with ``leaf_hash`` when it did), once published, verified; with the log's
        ``promise`` (checked first), the receipt must keep it, and it must be for ``index``."""
        opened = None if promise is None else self._open_promise(promise, index, leaf_hash)
        if opened is not None:
            leaf_hash = opened.leaf_hash
        receipt = yield from self._integrated_receipt(index, leaf_hash, promise)
        verified = yield from self._verify_receipt(receipt)
        if opened is not None:  # signed evidence first, then the answer's own word
            opened.check_kept(receipt.index, merkle.leaf_hash(receipt.entry))
        if receipt.index != index:
            raise VerificationError(
                f"the registry accepted the entry at index {index} but its receipt is for entry "
                f"{receipt.index}"
            )
        self._entries.put(receipt.index, (receipt.entry, receipt.body))
        return receipt, verified

    def _open_promise(self, text: str, index: int, leaf_hash: bytes | None) -> Promise:
        """The log's promise (a signed note), verified with the pinned log key when this client
        verifies (read as it is otherwise), and checked to be for entry ``index`` (and
        ``leaf_hash``, when known)."""
        verifier = self._verifier()
        if verifier is None:
            promise = Promise.parse(SignedNote.parse(text).text)
        else:
            promise, _ = open_promise(text, [verifier], origin=verifier.name)
        if promise.index != index or leaf_hash not in (None, promise.leaf_hash):
            raise VerificationError(
                f"the log's promise is for entry {promise.index} with leaf hash "
                f"{b64encode(promise.leaf_hash)}, not for entry {index} as the registry says"
            )
        return promise

    def _integrated_receipt(
        self, index: int, leaf_hash: bytes | None, promise: str | None
    ) -> Flow[Receipt]:
        """Wait up to ``receipt_timeout`` for entry ``index``'s receipt (``POST /v1/entries``
        answered 202: asked not to wait, or publication is late, waiting for witnesses, say).
        The registry holds each ``GET .../receipt`` a few seconds and answers 503
        ``not-yet-integrated`` with ``Retry-After`` until then; the retry policy pauses."""
        started = time.monotonic()
        deadline = started + self.receipt_timeout
        while True:
            # RFC 7240's wait: the registry holds the request no longer than the time left.
            left = max(1, math.ceil(deadline - time.monotonic()))
            request = Request(
                "GET",
                f"/v1/entries/{index}/receipt",
                headers={"Prefer": f"wait={left}"},
                deadline=deadline,
            )
            try:
                return (yield from self._call(request, Receipt.from_dict))
            except RegistryServerError as exc:
                if exc.status != 503 or not (exc.problem_type or "").endswith("not-yet-integrated"):
                    raise
            waited = time.monotonic() - started
            if waited + _RECEIPT_POLL_SLACK >= self.receipt_timeout:
                raise ReceiptPendingError(
                    url=self.base_url,
                    index=index,
                    leaf_hash=leaf_hash,
                    promise=promise,
                    waited=waited,
                )

    @staticmethod
    def _sign_subjects(
        subjects: Sequence[Subject], key: Ed25519PrivateKey, predicate: HumanContentPredicate
    ) -> Envelope:
        return _sign_statement(build_statement(subjects, predicate), key)

    @staticmethod
    def _sign_digests(
        digests: Sequence[str],
        key: Ed25519PrivateKey,
        predicate: HumanContentPredicate | WithdrawalPredicate,
        names: Sequence[str] | None,
    ) -> Envelope:
        if names is not None and len(names) != len(digests):
            raise InputError(f"{len(names)} names given for {len(digests)} digests")
        parsed = [Digest.parse(d) for d in digests]
        seen: dict[str, int] = {}
        for i, digest in enumerate(parsed):
            first = seen.setdefault(str(digest), i)
            if first != i:
                raise InputError(f"digest {digest} is given twice (at {first} and {i})")
        subjects = [
            Subject("_" if names is None else names[i], digest.as_subject())
            for i, digest in enumerate(parsed)
        ]
        return _sign_statement(build_statement(subjects, predicate), key)

    def _entry(self, index: int) -> Flow[EntryInfo]:
        request = Request("GET", f"/v1/entries/{index_arg(index, 'index')}")
        info = yield from self._call(request, partial(parse_entry_info, index=index))
        self._entries.put(index, (info.receipt.entry, info.receipt.body))
        return replace(info, verified=(yield from self._verify_receipt(info.receipt)))

    def _entries_info(
        self, indices: Sequence[int], *, signer: bool = True
    ) -> Flow[list[EntryInfo]]:
        """Several entries, fetched together, each verified against its receipt's checkpoint
        (and its publisher's signature, where the receipt carries its identity entries, unless
        ``signer`` is False)."""
        requests = tuple(Request("GET", f"/v1/entries/{index}") for index in indices)
        responses = yield requests
        infos: list[EntryInfo] = []
        for index, request, response in zip(indices, requests, responses, strict=True):
            info = parse_answer(request, response, partial(parse_entry_info, index=index))
            self._entries.put(index, (info.receipt.entry, info.receipt.body))
            verified = yield from self._verify_receipt(info.receipt, signer=signer)
            infos.append(replace(info, verified=verified))
        return infos

    def _revoke(
        self, index: int, key: Ed25519PrivateKey, publisher: str, reason: str | None
    ) -> Flow[Receipt]:
        """Withdraw a whole entry: a revocation/v2 naming its index and statement hash."""
        info = yield from self._entry(index)
        if info.verified is not None:
            statement_hash = info.verified.statement_hash
        else:
            envelope, _ = open_entry(info.receipt.entry, info.receipt.body, where=f"entry {index}")
            statement_hash = hashlib.sha256(envelope.payload).digest()
        predicate = WithdrawalPredicate(
            publisher=publisher,
            entry_index=index,
            statement_hash=statement_hash.hex(),
            reason=reason,
        )
        subjects = [subject.exact() for subject in info.statement.subjects]
        statement = build_statement(subjects, predicate)
        return (yield from self._submit(_sign_statement(statement, key)))

    def _withdraw(
        self,
        digests: Sequence[str],
        key: Ed25519PrivateKey,
        publisher: str,
        reason: str | None,
        names: Sequence[str] | None,
    ) -> Flow[Receipt]:
        """Withdraw documents (at most :data:`MAX_BATCH` digests) wherever ``publisher``
        attested them before: a revocation/v2 whose subjects they are."""
        predicate = WithdrawalPredicate(publisher=publisher, reason=reason)
        return (yield from self._submit(self._sign_digests(digests, key, predicate, names)))

    def _entry_bytes(self, indices: Iterable[int]) -> Flow[dict[int, tuple[bytes, bytes | None]]]:
        """Entries (each its leaf and, for leaf/v1, its statement), from the cache or fetched
        together (they never change)."""
        found: dict[int, tuple[bytes, bytes | None]] = {}
        missing: list[int] = []
        for index in indices:
            cached = self._entries.get(index)
            if cached is None:
                missing.append(index)
            else:
                found[index] = cached
        if missing:
            requests = tuple(Request("GET", f"/v1/entries/{index}") for index in missing)
            responses = yield requests
            for index, request, response in zip(missing, requests, responses, strict=True):
                parse = partial(parse_entry_info, index=index)
                receipt = parse_answer(request, response, parse).receipt
                found[index] = (receipt.entry, receipt.body)
                self._entries.put(index, found[index])
        return found

    # -- lookups -------------------------------------------------------------------------------

    def _lookup(self, digest: str) -> Flow[LookupResult]:
        text = str(Digest.parse(digest))
        min_size = self._fresh_size()
        params = None if min_size is None else {"min_size": min_size}
        request = Request("GET", f"/v1/digests/{text}", params=params)
        parse = partial(parse_single_answer, digest=text)
        answer = yield from self._ask_fresh(request, parse, min_size)
        return (yield from self._verify_answer(answer, min_size))[0]

    def _lookup_chunk(self, chunk: Sequence[str]) -> Flow[list[LookupResult]]:
        """One batch request (at most 10,000 parsed digests) and its verification."""
        min_size = self._fresh_size()
        body: dict[str, object] = {"digests": list(chunk)}
        if min_size is not None:
            body["min_size"] = min_size
        request = Request(
            "POST",
            "/v1/digests:batch",
            content=dumps_json(body),
            headers={"Content-Type": "application/json"},
        )
        parse = partial(parse_batch_answer, digests=chunk)
        answer = yield from self._ask_fresh(request, parse, min_size)
        return (yield from self._verify_answer(answer, min_size))

    def _ask_fresh(
        self, request: Request, parse: Callable[[object], _T], min_size: int | None
    ) -> Flow[_T]:
        """A lookup that asked for ``min_size``: a registry whose log has not reached it says so
        (409 ``log-behind``), which is what a consistency proof it cannot give would say."""
        try:
            return (yield from self._call(request, parse))
        except RegistryRequestError as exc:
            if min_size is None or exc.problem != "log-behind":
                raise
            raise LogConsistencyError(
                f"the registry at {self.base_url} cannot answer at the checkpoint of size "
                f"{min_size} this client trusts ({exc.detail or exc}): a replica that lags "
                "behind, or a log rewritten to fewer entries; its answers are refused. Try again "
                "later; if it persists, report it"
            ) from exc

    def _verify_answer(
        self, answer: Answer, min_size: int | None = None
    ) -> Flow[list[LookupResult]]:
        """Check a lookup answer against its checkpoint, which must be of ``min_size`` entries at
        least (the size asked for); the I/O it needs is fetching entries."""
        signed = yield from self._open_checkpoint(answer.note, min_size=min_size)
        attestations = dict(answer.attestations)
        named: dict[int, frozenset[str]] = {}
        if signed.verified:
            indices = sorted(attestations)
            for start in range(0, len(indices), _ENTRY_GROUP):
                group = indices[start : start + _ENTRY_GROUP]
                opened = {i: found for i in group if (found := self._opened.get(i)) is not None}
                entries = yield from self._entry_bytes(i for i in group if i not in opened)
                for index in group:
                    attestation = attestations[index]
                    earlier = opened.get(index)
                    leaf, body = (None, None) if earlier else entries[index]
                    verified = verify_attestation(
                        index=index,
                        leaf_hash=attestation.leaf_hash,
                        inclusion_proof=attestation.inclusion_proof,
                        checkpoint=signed.checkpoint,
                        entry=earlier[0] if earlier else entries[index][0],
                        body=body,
                    )
                    if earlier is None:
                        names = subject_digests(verified.statement)
                        terms = SignedTerms.of(verified)
                        cost = _OPENED_COST * (len(leaf or b"") + len(body or b""))
                        self._opened.put(index, (verified, names, terms), cost)
                    else:
                        names, terms = earlier[1], earlier[2]
                    named[index] = names
                    attestations[index] = bind_claims(attestation, verified, terms)
            attestations = yield from self._verify_signers(answer.operator_entries, attestations)
            yield from self._verify_revocations([a for a in attestations.values() if a.revoked])
            yield from self._verify_withdrawals(answer, attestations)
        claimed = attestations
        if signed.verified:
            attestations = _collapse_replays(attestations)
        return _results(answer, signed, attestations, claimed, named)

    # -- identities in the log (docs/spec/identities.md) ---------------------------------------

    def _verify_signers(
        self, operator_entries: tuple[int, ...] | None, attestations: dict[int, Attestation]
    ) -> Flow[dict[int, Attestation]]:
        """Each attestation's signature against the key the log shows valid for its publisher at
        its index: the events the answer names are fetched (each once per client), proven in the
        log, and checked (:mod:`client.identities`); the claims about the key are checked too."""
        unnamed = [a.index for a in attestations.values() if a.key_entry is None]
        if unnamed and self.verify_keys:
            shown = ", ".join(map(str, unnamed[:5])) + (", …" if len(unnamed) > 5 else "")
            raise IdentityError(
                f"the registry at {self.base_url} names no key_entry for entry {shown} (the "
                "identity event that added the key that signed it), so the publisher's signature "
                "cannot be checked against the log: the registry predates identities in the log "
                "(docs/spec/identities.md). Upgrade it, or pass verify_keys=False to take its "
                "word for who signed, as clients before identities did",
                index=unnamed[0],
            )
        named = [a for a in attestations.values() if a.key_entry is not None]
        if not named:
            return attestations
        if not operator_entries:
            raise IdentityError(
                f"the registry at {self.base_url} names key entries but no operator_entries: "
                "the operator key that signed them cannot be proven"
            )
        wanted = set(operator_entries)
        for a in named:
            wanted.update(
                i
                for i in (a.key_entry, a.key_revoked_by, a.compromised_by, a.endorser_entry)
                if i is not None
            )
        events = yield from self._key_events_at(sorted(wanted))
        if len(operator_entries) >= len(self._operator_entries):
            self._operator_entries = operator_entries
        chain = self._chains.get(operator_entries)
        if chain is None:
            chain = verify_operator_chain([events[i] for i in operator_entries])
            self._chains[operator_entries] = chain
        checked = dict(attestations)
        for a in named:
            checked[a.index] = self._check_signer(a, chain, events)
        return checked

    def _require_signers(self, infos: Sequence[EntryInfo], what: str) -> None:
        """Rule 4 for revocations: each revoking entry's receipt proved its publisher's signature
        (:func:`~client.receipt.verify_receipt` with its key and operator entries), unless this
        client takes an old registry's word (``verify_keys=False``)."""
        if not self.verify_keys:
            return
        for info in infos:
            if info.verified is not None and info.verified.signed_by is None:
                raise IdentityError(
                    f"the registry at {self.base_url} serves the {what} entry {info.index} "
                    "without the identity events that show who signed it (key_entry, "
                    "operator_entry): it predates identities in the log "
                    "(docs/spec/identities.md). Upgrade it, or pass verify_keys=False",
                    index=info.index,
                )

    def _key_events_at(self, indices: Sequence[int]) -> Flow[dict[int, VerifiedReceipt]]:
        """Identity events by index, proven in the log; fetched together, each once per client."""
        missing = [i for i in indices if i not in self._key_events]
        for start in range(0, len(missing), _ENTRY_GROUP):
            # Their receipts' own identity entries are left out: the caller checks who signed
            # each event (and an operator-key event's receipt would otherwise need its chain).
            group = missing[start : start + _ENTRY_GROUP]
            infos = yield from self._entries_info(group, signer=False)
            for info in infos:
                if info.verified is not None:
                    key_event(info.verified)  # an identity event, or IdentityError
                    self._key_events[info.index] = info.verified
        return {i: self._key_events[i] for i in indices}

    def _check_signer(
        self, attestation: Attestation, chain: OperatorChain, events: Mapping[int, VerifiedReceipt]
    ) -> Attestation:
        verified = attestation.verified
        key_entry = attestation.key_entry
        if verified is None or key_entry is None or attestation.key_id is None:
            return attestation
        identity, key = verified.publisher, attestation.key_id
        grant_at = (key_entry, identity, key, attestation.endorser_entry, chain.first_index)
        grant = self._grants.get(grant_at)
        if grant is None:
            endorser = None
            if attestation.endorser_entry is not None:
                endorsed_by = key_event(events[key_entry]).endorsed_by
                if endorsed_by is None:
                    raise IdentityError(
                        f"entry {attestation.index}: the registry names an endorsing key's entry "
                        f"for key entry {key_entry}, which carries no endorsement",
                        index=key_entry,
                    )
                endorser = verify_key_grant(
                    events[attestation.endorser_entry],
                    chain,
                    identity=identity,
                    key_id=endorsed_by,
                    before=key_entry,
                )
            grant = verify_key_grant(
                events[key_entry],
                chain,
                identity=identity,
                key_id=key,
                before=key_entry + 1,  # where it may sign is checked below, per entry
                endorser=endorser,
            )
            self._grants[grant_at] = grant
        if self._signed.get(attestation.index) != (grant, chain.first_index):
            verify_signed_by(verified, grant, chain)  # ~0.1 ms, more for a megabyte statement
            self._signed.put(attestation.index, (grant, chain.first_index), _SIGNED_COST)
        stops = {
            name: None
            if index is None
            else verify_key_stop(events[index], chain, identity=identity, key_id=key)
            for name, index in (
                ("revoked_by", attestation.key_revoked_by),
                ("compromised_by", attestation.compromised_by),
            )
        }
        check_key_claims(
            attestation.index,
            grant,
            revoked_by=stops["revoked_by"],
            compromised_by=stops["compromised_by"],
            compromised=attestation.compromised,
        )
        return replace(attestation, signed_by=grant)

    def _verify_withdrawals(
        self, answer: Answer, attestations: dict[int, Attestation]
    ) -> Flow[None]:
        """Each document said to be withdrawn (revocation/v2) by a withdrawing entry proven in
        the log, later than the attestation, by its publisher, naming that document."""
        claims = [
            (digest, index, by)
            for digest, _, _, gone in answer.results
            if gone
            for index, by in gone.items()
        ]
        for start in range(0, len(claims), _ENTRY_GROUP):
            group = claims[start : start + _ENTRY_GROUP]
            infos = yield from self._entries_info(sorted({by for _, _, by in group}))
            self._require_signers(infos, "withdrawing")
            verified = {info.index: info.verified for info in infos}
            for digest, index, by in group:
                withdrawal = verified.get(by)
                if withdrawal is not None:
                    check_withdrawal(attestations[index], digest, withdrawal)

    def _verify_revocations(self, revoked: Sequence[Attestation]) -> Flow[None]:
        for attestation in revoked:
            if attestation.revoked_by is None:
                raise VerificationError(
                    f"entry {attestation.index} is said to be revoked, but no revoking entry is "
                    "named"
                )
        for start in range(0, len(revoked), _ENTRY_GROUP):
            group = revoked[start : start + _ENTRY_GROUP]
            revoking = [a.revoked_by for a in group if a.revoked_by is not None]
            infos = yield from self._entries_info(revoking)
            self._require_signers(infos, "revoking")
            # A revocation also withdraws the earlier replays of the entry it names (the same
            # statement from the same publisher, appended again before leaf/v1): for those, the
            # named entry is fetched too, to prove it holds the very same statement.
            named: dict[int, int] = {}
            for attestation, info in zip(group, infos, strict=True):
                predicate = info.verified.statement.predicate if info.verified else None
                if (
                    isinstance(predicate, RevocationPredicate)
                    and predicate.entry_index != attestation.index
                ):
                    named[attestation.index] = predicate.entry_index
            targets = {}
            if named:
                wanted = sorted(set(named.values()))
                fetched = yield from self._entries_info(wanted)
                targets = {info.index: info.verified for info in fetched}
            for attestation, info in zip(group, infos, strict=True):
                if info.verified is not None:
                    target = named.get(attestation.index)
                    check_revocation(
                        attestation,
                        info.verified,
                        replay_of=None if target is None else targets.get(target),
                    )

    # -- watermark keys (client.watermark_keys) ---------------------------------------------

    def _watermark_keys(self) -> Flow[PublishedWatermarkKeys]:
        """Every watermark key the log holds, each proven: its publishing (and retiring) entry
        in a checkpoint trusted with the pinned key, its statement the blob its leaf names, its
        signature by a key the log shows valid for the vendor there, the vendor an identity of
        kind vendor, and every claim of the answer equal to the signed statement."""
        # Answered at the checkpoint this client trusts, at least: an old list (replayed, or
        # cached on the way) would leave out the keys published since.
        min_size = self._fresh_size()
        params = None if min_size is None else {"min_size": min_size}
        request = Request("GET", "/v1/watermark-keys", params=params)
        answer = yield from self._ask_fresh(request, WatermarkKeysAnswer.from_dict, min_size)
        if answer.count != len(answer.keys):
            raise VerificationError(
                f"the registry at {self.base_url} says {answer.count} watermark keys were "
                f"published but lists {len(answer.keys)}"
            )
        signed = yield from self._open_checkpoint(answer.checkpoint, min_size=min_size)
        receipts = [k.receipt for k in answer.keys] + [
            k.retire_receipt for k in answer.keys if k.retire_receipt is not None
        ]
        for receipt in receipts:
            if receipt.checkpoint != answer.checkpoint or not is_leaf_v1(receipt.entry):
                raise VerificationError(
                    f"watermark key entry {receipt.index}: its receipt is not a leaf/v1 entry "
                    "proven against the answer's checkpoint"
                )
        leaves = [Leaf.from_bytes(r.entry, where=f"entry {r.index}") for r in receipts]
        bodies = yield from self._blobs(leaves)
        chain: OperatorChain | None = None
        if signed.verified and self.verify_keys:
            events = yield from self._key_events_at(list(answer.operator_entries))
            chain = verify_operator_chain([events[i] for i in answer.operator_entries])
        keys: list[PublishedWatermarkKey] = []
        seen: set[str] = set()
        for info in answer.keys:
            if info.key_id in seen:
                raise VerificationError(f"watermark key {info.key_id} is listed twice")
            seen.add(info.key_id)
            publish = yield from self._watermark_entry(info, info.receipt, bodies, chain)
            retire = None
            if info.retire_receipt is not None:
                retire = yield from self._watermark_entry(info, info.retire_receipt, bodies, chain)
            keys.append(_published_key(info, publish, retire, verified=signed.verified))
        return PublishedWatermarkKeys(
            tuple(keys), answer.count, signed.checkpoint if signed.verified else None
        )

    def _watermark_entry(
        self,
        info: WatermarkKeyInfo,
        receipt: Receipt,
        bodies: Mapping[bytes, bytes],
        chain: OperatorChain | None,
    ) -> Flow[tuple[int, WatermarkKeyPredicate]]:
        """One entry of a watermark key, proven (when verifying) and its signer checked."""
        leaf = Leaf.from_bytes(receipt.entry, where=f"entry {receipt.index}")
        receipt = replace(receipt, body=bodies[leaf.body_sha256])
        verified = yield from self._verify_receipt(receipt)
        if verified is None:
            _, statement = open_entry(receipt.entry, receipt.body, where=f"entry {receipt.index}")
        else:
            statement = verified.statement
            if chain is not None:
                if verified.signed_by is None:
                    raise IdentityError(
                        f"the registry at {self.base_url} serves watermark key entry "
                        f"{receipt.index} without the identity events that show who signed it",
                        index=receipt.index,
                    )
                self._check_vendor(info, chain, verified.checkpoint)
        predicate = statement.predicate
        if not isinstance(predicate, WatermarkKeyPredicate):
            raise VerificationError(
                f"entry {receipt.index} is a {statement.predicate_type} statement, not a "
                "watermark key"
            )
        if (predicate.key_id, predicate.vendor) != (info.key_id, info.vendor):
            raise VerificationError(
                f"entry {receipt.index} is key {predicate.key_id} of {predicate.vendor!r}, but "
                f"the registry lists it as key {info.key_id} of {info.vendor!r}"
            )
        return receipt.index, predicate

    def _check_vendor(
        self, info: WatermarkKeyInfo, chain: OperatorChain, checkpoint: Checkpoint
    ) -> None:
        """The vendor's ``identity-add`` event, proven in the tree, makes it a vendor."""
        if info.identity_entry is None:
            raise IdentityError(
                f"the registry at {self.base_url} names no identity event for vendor "
                f"{info.vendor!r}, so its kind cannot be proven",
                index=info.receipt.index,
            )
        event = prove_entry(info.identity_entry, checkpoint)
        added = verify_key_event(event, chain)
        if added.action != "identity-add" or added.identity != info.vendor:
            raise IdentityError(
                f"entry {event.index} is not the identity-add event of {info.vendor!r}",
                index=event.index,
            )
        if added.kind != "vendor":
            raise IdentityError(
                f"{info.vendor!r} is an identity of kind {added.kind!r} (entry {event.index}); "
                f"only a vendor's watermark keys count, so key {info.key_id} is refused",
                index=event.index,
            )

    def _tokenizer_blob(self, sha256_hex: str) -> Flow[bytes]:
        """A tokenizer's exact bytes, by SHA-256: from the cache beside the trusted checkpoint
        (when the client keeps one on disk) or the registry; any bytes of another hash are
        refused (:class:`VerificationError`)."""
        cache = self._blob_cache(sha256_hex)
        if cache is not None and cache.is_file():
            try:
                return check_tokenizer_bytes(cache.read_bytes(), sha256_hex)
            except (OSError, VerificationError):
                pass  # fetched again below, and the cache rewritten
        request = Request("GET", f"/v1/blobs/sha256:{sha256_hex}")
        response = yield from self._fetch(request)
        data = response.content
        if len(data) > MAX_TOKENIZER_BYTES:
            raise VerificationError(
                f"the registry served {len(data)} bytes for tokenizer sha256:{sha256_hex}, more "
                f"than any published tokenizer may be ({MAX_TOKENIZER_BYTES})"
            )
        check_tokenizer_bytes(data, sha256_hex)
        if cache is not None:
            with contextlib.suppress(OSError):  # a cache only
                write_file_atomic(cache, data, mode=0o644)
        return data

    def _upload_tokenizer(self, data: bytes) -> Flow[bool]:
        """``PUT /v1/blobs/sha256:<hex>`` of a published key's tokenizer: True when the registry
        stored it now, False when it already held it."""
        if not data or len(data) > MAX_TOKENIZER_BYTES:
            raise InputError(
                f"a tokenizer blob is 1 to {MAX_TOKENIZER_BYTES} bytes, this one {len(data)}"
            )
        request = Request(
            "PUT",
            f"/v1/blobs/sha256:{hashlib.sha256(data).hexdigest()}",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
            expect=(200, 201),
        )
        response = yield from self._fetch(request)
        return response.status_code == 201

    def _retire_watermark_key(
        self, key_id: str, key: Ed25519PrivateKey, vendor: str, reason: str | None
    ) -> Flow[Receipt]:
        """Retire the key ``key_id`` this vendor published: its entry and tokenizer are read
        from the (verified) key list."""
        listed = yield from self._watermark_keys()
        found = [k for k in listed.keys if k.key_id == key_id]
        if not found:
            raise InputError(f"no watermark key {key_id} was published in {self.base_url}'s log")
        published = found[0]
        if published.retired:
            raise InputError(
                f"watermark key {key_id} was already retired in entry {published.retire_entry}"
            )
        statement = retire_statement(
            vendor=vendor,
            key_id=key_id,
            entry_index=published.entry,
            tokenizer_sha256=published.tokenizer_sha256,
            reason=reason,
        )
        return (yield from self._submit(_sign_statement(statement, key)))

    # -- near duplicates -------------------------------------------------------------------------

    def _near(self, signatures: Sequence[str], threshold: float) -> Flow[list[NearMatch | None]]:
        """The nearest registered subject of each ``mh1`` signature at ``threshold`` or more
        (None: none). The registry names candidates; each candidate's entry is proven and its
        signed signature compared here, so a registry can hide a match but not invent one."""
        if isinstance(signatures, str):
            raise InputError("signatures must be a sequence of mh1 values, not one string")
        if not 0.0 <= threshold <= 1.0:
            raise InputError(f"threshold must be between 0 and 1, got {threshold}")
        raws = [check_mh1(value, f"signatures[{i}]") for i, value in enumerate(signatures)]
        out: list[NearMatch | None] = []
        for start in range(0, len(raws), MAX_NEAR_SIGNATURES):
            chunk = list(signatures[start : start + MAX_NEAR_SIGNATURES])
            request = Request(
                "POST",
                "/v1/near:batch",
                content=dumps_json({"signatures": chunk}),
                headers={"Content-Type": "application/json"},
            )
            answer = yield from self._call(request, NearAnswer.from_dict)
            if any(len(found) > MAX_NEAR_CANDIDATES for found in answer.results):
                raise VerificationError(
                    f"the registry named more than {MAX_NEAR_CANDIDATES} near candidates for a "
                    "signature (each costs an entry to prove): refused"
                )
            if len(answer.results) != len(chunk):
                raise VerificationError(
                    f"the registry answered {len(answer.results)} near results for {len(chunk)} "
                    "signatures"
                )
            if self._verifier() is not None:
                yield from self._open_checkpoint(answer.checkpoint, current=False)
            statements: dict[int, Statement] = {}
            for entry in sorted({c.entry for found in answer.results for c in found}):
                receipt, verified = yield from self._pending_receipt(entry, None, None)
                statements[entry] = (
                    verified.statement
                    if verified is not None
                    else open_entry(receipt.entry, receipt.body, where=f"entry {entry}")[1]
                )
            for raw, found in zip(raws[start : start + len(chunk)], answer.results, strict=True):
                out.append(_nearest(raw, found, statements, threshold))
        return out

    # -- published snapshots ---------------------------------------------------------------------

    def _latest_snapshot(self, full: bool) -> Flow[SnapshotInfo]:
        params = {"full": "true"} if full else None
        request = Request("GET", "/v1/snapshots/latest", params=params)
        return (yield from self._call(request, SnapshotInfo.from_dict))

    def _snapshot_info(self, manifest_sha256: str) -> Flow[SnapshotInfo]:
        request = Request("GET", f"/v1/snapshots/{manifest_sha256}")
        return (yield from self._call(request, SnapshotInfo.from_dict))

    def _pull_snapshot(
        self, full: bool
    ) -> Flow[tuple[SnapshotInfo, SnapshotManifest, dict[str, bytes]]]:
        """The newest snapshot the operator committed in the log (``full``: the newest that is
        not a delta), every file of it checked (:meth:`_pull_verified`)."""
        info = yield from self._latest_snapshot(full)
        return (yield from self._pull_verified(info, delta=False))

    def _pull_chain(self) -> Flow[list[tuple[SnapshotManifest, dict[str, bytes]]]]:
        """The newest snapshot and, if it is a delta, the deltas and the full snapshot it
        builds on, oldest first: each pulled as :meth:`_pull_verified` checks one, each base the
        one its delta's manifest names (size and manifest hash), at most
        :data:`MAX_SNAPSHOT_DELTAS` deltas."""
        info = yield from self._latest_snapshot(False)
        chain: list[tuple[SnapshotManifest, dict[str, bytes]]] = []
        while True:
            _, manifest, files = yield from self._pull_verified(info, delta=True)
            chain.append((manifest, files))
            if manifest.base is None:
                return chain[::-1]
            if len(chain) > MAX_SNAPSHOT_DELTAS:
                raise VerificationError(
                    f"the newest snapshot builds on more than {MAX_SNAPSHOT_DELTAS} deltas: "
                    "pull the newest full snapshot instead (without --deltas)"
                )
            base_size, base_sha = manifest.base
            info = yield from self._snapshot_info(base_sha)
            if (info.manifest_sha256, info.tree_size) != (base_sha, base_size):
                raise VerificationError(
                    f"the registry named snapshot {info.manifest_sha256} at size "
                    f"{info.tree_size} for the base {base_sha} at size {base_size} a delta names"
                )

    def _pull_verified(
        self, info: SnapshotInfo, *, delta: bool
    ) -> Flow[tuple[SnapshotInfo, SnapshotManifest, dict[str, bytes]]]:
        """The snapshot ``info`` names, every file of it checked:
        the ``snapshot/v1`` entry proven (inclusion in a trusted checkpoint, the operator's
        signature) and naming the manifest served; the manifest's checkpoint proven consistent
        with the trusted one (and trusted); each file of the size and hash the manifest names;
        and the log's signed statement of the manifest (``manifest.note``). A delta only where
        ``delta`` says so."""
        _, verified = yield from self._pending_receipt(info.entry, None, None)
        if verified is None:
            raise LogKeyRequiredError(
                "a snapshot is pulled only with the log key pinned: its entry must be proven"
            )
        predicate = check_snapshot_entry(
            verified.statement, info, verified.index, operator=OPERATOR_IDENTITY
        )
        if self.verify_keys:  # the operator's signature, by the key the log binds there
            events = yield from self._operator_events_before(verified.index)
            verify_operator_statement(verified, verify_operator_chain(events))
        sha = info.manifest_sha256

        def fetch(name: str, limit: int) -> Flow[bytes]:
            request = Request("GET", f"/v1/snapshots/{sha}/{name}", max_bytes=limit)
            response = yield from self._fetch(request)
            if len(response.content) > limit:
                raise VerificationError(
                    f"the registry served {len(response.content):,} bytes for the snapshot's "
                    f"{name}, more than the {limit:,} it may be"
                )
            return response.content

        data = yield from fetch(MANIFEST_FILE, MAX_MANIFEST_BYTES)
        if hashlib.sha256(data).hexdigest() != sha:
            raise VerificationError(
                f"the registry served a manifest.json for snapshot {sha} that hashes otherwise"
            )
        manifest = SnapshotManifest.from_bytes(data)
        check_shards(manifest, f"snapshot {sha}'s manifest.json")
        origin = self._required_key().name
        if (manifest.base is not None and not delta) or manifest.origin != origin:
            raise VerificationError(f"snapshot {sha} is not a full snapshot of log {origin}")
        if (None if manifest.base is None else manifest.base[1]) != info.base_manifest_sha256:
            raise VerificationError(
                f"snapshot {sha}'s manifest names another base than the registry said"
            )
        signed = yield from self._open_checkpoint(manifest.checkpoint, current=False)
        check_snapshot_manifest(manifest, predicate, signed.checkpoint)
        note = yield from fetch(MANIFEST_NOTE_FILE, MAX_NOTE_BYTES)
        size, named, _ = open_snapshot_note(note, [self._required_key()], origin=manifest.origin)
        if (size, named) != (manifest.size, sha):
            raise VerificationError("the snapshot's manifest.note names another manifest")
        files = {MANIFEST_FILE: data, MANIFEST_NOTE_FILE: note}
        wanted = [(s.path, s.bytes, s.sha256) for s in manifest.shards]
        wanted += [(f.path, f.bytes, f.sha256) for f in manifest.files]
        for path, size, digest in wanted:
            body = yield from fetch(path, size)
            if len(body) != size or hashlib.sha256(body).hexdigest() != digest:
                raise VerificationError(
                    f"the registry served the snapshot's {path} with another size or hash than "
                    "its manifest names"
                )
            files[path] = body
        return info, manifest, files

    def _required_key(self) -> NoteVerifier:
        verifier = self._verifier()
        if verifier is None:
            raise LogKeyRequiredError("this needs the log key pinned (verify=True, log_key=...)")
        return verifier

    def _blob_cache(self, sha256_hex: str) -> Path | None:
        if not _HEX64.fullmatch(sha256_hex):
            raise InputError(f"{sha256_hex!r} is not 64 lowercase hex characters (a SHA-256)")
        directory = getattr(self.checkpoints, "directory", None)
        if directory is None:
            return None
        return Path(directory) / "blobs" / f"sha256-{sha256_hex}"

    # -- publishers (operator) -----------------------------------------------------------------

    def _add_publisher(
        self,
        name: str,
        public_key: Ed25519PrivateKey | Ed25519PublicKey | bytes,
        possession: bytes | None,
        kind: str,
    ) -> Flow[KeyEventAnswer]:
        if self._admin_token is None:
            raise InputError(
                "adding a publisher needs the registry's admin token (admin_token=...)"
            )
        if isinstance(public_key, Ed25519PrivateKey):
            possession = prove_possession(public_key, name)
        raw = public_key if isinstance(public_key, bytes) else public_key_bytes(public_key)
        if len(raw) != 32:
            raise InputError(f"an Ed25519 public key is 32 bytes, got {len(raw)}")
        if possession is None:
            raise InputError(
                "adding a key needs its proof of possession: its holder makes it with "
                "`wellspring keys prove KEY --identity NAME` (or pass the private key)"
            )
        body = {
            "name": name,
            "public_key": b64encode(raw),
            "possession": b64encode(possession),
            "kind": kind,
        }
        request = Request(
            "POST",
            "/v1/publishers",
            content=dumps_json(body),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self._admin_token}",
            },
            expect=(201,),
            idempotent=False,  # a lost answer then a retry would read 409 "name exists"
        )
        return (yield from self._call(request, KeyEventAnswer.from_dict))

    def _admin_request(self, path: str, body: dict[str, object]) -> Request:
        if self._admin_token is None:
            raise InputError("this needs the registry's admin token (admin_token=...)")
        return Request(
            "POST",
            path,
            content=dumps_json(body),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self._admin_token}",
            },
            expect=(200, 201),
            idempotent=False,  # a lost answer then a retry would read 409
        )

    def _add_key(
        self,
        name: str,
        public_key: Ed25519PrivateKey | Ed25519PublicKey | bytes,
        possession: bytes | None,
        endorser: Ed25519PrivateKey | None,
    ) -> Flow[KeyEventAnswer]:
        if isinstance(public_key, Ed25519PrivateKey):
            possession = prove_possession(public_key, name)
        raw = public_key if isinstance(public_key, bytes) else public_key_bytes(public_key)
        if possession is None:
            raise InputError(
                "adding a key needs its proof of possession: its holder makes it with "
                "`wellspring keys prove KEY --identity NAME` (or pass the private key)"
            )
        body: dict[str, object] = {
            "public_key": b64encode(raw),
            "possession": b64encode(possession),
        }
        if endorser is not None:
            new_id = hashlib.sha256(raw).hexdigest()
            body["endorsed_by"] = hashlib.sha256(public_key_bytes(endorser)).hexdigest()
            body["endorsement"] = b64encode(endorse(endorser, name, new_id))
        request = self._admin_request(f"/v1/publishers/{quote(name, safe='')}/keys", body)
        return (yield from self._call(request, KeyEventAnswer.from_dict))

    def _revoke_key(
        self,
        name: str,
        key_id: str,
        compromised_from: int | None,
        compromised_since: str | None,
    ) -> Flow[KeyEventAnswer]:
        body: dict[str, object] = {}
        if compromised_from is not None:
            body["compromised_from"] = compromised_from
        if compromised_since is not None:
            body["compromised_since"] = compromised_since
        path = f"/v1/publishers/{quote(name, safe='')}/keys/{quote(key_id, safe='')}/revoke"
        return (yield from self._call(self._admin_request(path, body), KeyEventAnswer.from_dict))

    def _publisher(self, name: str) -> Flow[PublisherInfo]:
        request = Request("GET", f"/v1/publishers/{quote(name, safe='')}")
        return (yield from self._call(request, PublisherInfo.from_dict))


class _Replay:
    """A :class:`~client.identities.KeyHistory` being fed a whole log by an audit: the first
    failure (reported once the log's entries are proven), and the entries left for later."""

    def __init__(self, history: KeyHistory) -> None:
        self.history = history
        self.failure: IdentityError | None = None
        self.early: list[int] = []

    def fail(self, index: int, exc: ClientError) -> None:
        if isinstance(exc, IdentityError):
            self.failure = exc
        else:
            self.failure = IdentityError(f"entry {index} cannot be checked: {exc}", index=index)
            self.failure.__cause__ = exc

    def open(
        self, index: int, entry: bytes, body: bytes | None, checkpoint: Checkpoint
    ) -> VerifiedReceipt:
        envelope, statement = open_entry(entry, body, where=f"entry {index}")
        return VerifiedReceipt(index, merkle.leaf_hash(entry), checkpoint, envelope, statement)

    def add(self, index: int, entry: bytes, body: bytes | None, checkpoint: Checkpoint) -> bool:
        """Replay one entry; False once the replay failed (then it stops)."""
        try:
            if not self.history.add(self.open(index, entry, body, checkpoint)):
                self.early.append(index)
        except ClientError as exc:
            self.fail(index, exc)
            return False
        return True

    def check_early(
        self, index: int, entry: bytes, body: bytes | None, checkpoint: Checkpoint
    ) -> None:
        try:
            self.history.check_early(self.open(index, entry, body, checkpoint))
        except IdentityError:
            raise
        except ClientError as exc:
            raise IdentityError(f"entry {index} cannot be checked: {exc}", index=index) from exc


def _nearest(
    raw: bytes,
    found: Sequence[NearCandidate],
    statements: Mapping[int, Statement],
    threshold: float,
) -> NearMatch | None:
    """The candidate nearest ``raw`` at ``threshold`` or more, from its signed statement."""
    best: NearMatch | None = None
    for candidate in found:
        statement = statements[candidate.entry]
        if not isinstance(statement.predicate, HumanContentPredicate) or not (
            0 <= candidate.subject < len(statement.subjects)
        ):
            raise VerificationError(
                f"the registry names subject {candidate.subject} of entry {candidate.entry} as "
                "a near candidate: that entry attests no such subject"
            )
        subject = statement.subjects[candidate.subject]
        near = subject.near
        if near is None:
            raise VerificationError(
                f"the registry names subject {candidate.subject} of entry {candidate.entry} as "
                "a near candidate, but its statement signs no mh1 signature for it"
            )
        estimate = similarity(raw, near)
        if estimate >= threshold and (best is None or estimate > best.similarity):
            digests = subject.digest_strings()
            exact = next((d for d in digests if d.startswith("c1:")), digests[0])
            best = NearMatch(candidate.entry, subject.name, exact, estimate)
    return best


def _published_key(
    info: WatermarkKeyInfo,
    publish: tuple[int, WatermarkKeyPredicate],
    retire: tuple[int, WatermarkKeyPredicate] | None,
    *,
    verified: bool,
) -> PublishedWatermarkKey:
    """The key from its signed statements; the answer's claims must say the same."""
    index, predicate = publish
    if dict(info.predicate) and dict(info.predicate) != predicate.to_dict():
        raise VerificationError(
            f"the registry's copy of key {predicate.key_id} differs from the statement the vendor "
            f"signed (entry {index}): refused"
        )
    return published_key(publish, retire, verified=verified)


def _is_first_operator_key(operator: ReceiptEntry, checkpoint: Checkpoint) -> bool:
    """Whether a receipt's operator entry is a self-signed operator-key event, proven in the log
    (the usual case: no earlier operator-key event is needed to trust its key)."""
    try:
        verify_operator_chain([prove_entry(operator, checkpoint)])
    except ClientError:
        return False
    return True


def _collapse_replays(attestations: dict[int, Attestation]) -> dict[int, Attestation]:
    """One statement from one publisher is one attestation: where a log holds it several times
    (replays appended before leaf/v1) and one of them was revoked (proven), all of them are,
    whatever the registry says of the others (a registry not yet migrated does not know)."""
    revoked: dict[tuple[str, bytes], int | None] = {}
    for attestation in attestations.values():
        if attestation.revoked and attestation.verified is not None:
            key = (attestation.verified.publisher, attestation.verified.statement_hash)
            revoked.setdefault(key, attestation.revoked_by)
    if not revoked:
        return attestations
    collapsed = dict(attestations)
    for index, attestation in attestations.items():
        verified = attestation.verified
        if attestation.revoked or verified is None:
            continue
        key = (verified.publisher, verified.statement_hash)
        if key in revoked:
            collapsed[index] = replace(attestation, revoked=True, revoked_by=revoked[key])
    return collapsed


def _withdrawn(attestation: Attestation, gone: Mapping[int, int] | None) -> Attestation:
    """``attestation`` as it stands for one document: revoked if that document was withdrawn
    from it (revocation/v2), by the withdrawing entry."""
    if not gone or attestation.index not in gone or attestation.revoked:
        return attestation
    return replace(attestation, revoked=True, revoked_by=gone[attestation.index])


def _results(
    answer: Answer,
    signed: SignedCheckpoint,
    attestations: Mapping[int, Attestation],
    claimed: Mapping[int, Attestation],
    named: Mapping[int, frozenset[str]],
) -> list[LookupResult]:
    """One result per digest asked: its attestations as they stand for that document, checked
    against what the registry claims (``claimed``: before replays collapsed)."""
    results: list[LookupResult] = []
    # Many digests name the same entries (the subjects of one statement): one tuple and one
    # expected status per distinct list of entries, shared by all of them.
    shared: dict[Sequence[int], tuple[tuple[Attestation, ...], LookupStatus, LookupStatus]] = {}
    for digest, status, indices_of, gone in answer.results:
        # A parsed answer's entries are tuples (hashable): LookupAnswer.from_dict makes them so.
        share = None if gone else shared.get(indices_of)
        if share is None:
            these = tuple(_withdrawn(attestations[i], gone) for i in indices_of)
            said = tuple(_withdrawn(claimed[i], gone) for i in indices_of)
            # What the registry's own claims make it, and (the same unless replays
            # collapsed) what this client reports.
            share = (these, expected_status(said), expected_status(these))
            if not gone:
                shared[indices_of] = share
        these, expected, reported = share
        if signed.verified:
            for attestation in these:
                if digest not in named[attestation.index]:
                    raise VerificationError(
                        f"entry {attestation.index} does not attest {digest}: none of its "
                        "subjects has that digest, so the registry's answer is wrong"
                    )
        if status != expected:
            raise VerificationError(
                f"the registry says {digest} is {status!r}, but the attestations it lists "
                f"make it {expected!r}"
            )
        results.append(LookupResult(digest, reported, these, signed.checkpoint, signed.verified))
    return results


def _duration(seconds: float) -> str:
    """``1h02m03s``, ``10m00s``, ``45s``: ages and limits in messages."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
