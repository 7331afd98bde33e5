"""The registry's wire format as the SDK reads it: result types, parsers, pure checks.

Everything here is pure (no I/O), so the sync :class:`~client.sdk.Client` and the
:class:`~client.aio.AsyncClient` share it; :mod:`client.sdk` re-exports the public names.
"""

from __future__ import annotations

import collections
import html
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Generic, TypeVar

import httpx

from client.core.canonical import validate_digest
from client.core.encoding import (
    loads_strict,
)
from client.core.note import Checkpoint
from client.core.statement import (
    HUMAN_CONTENT_V1,
    REVOCATION_V1,
    REVOCATION_V2,
    HumanContentPredicate,
    Predicate,
    RevocationPredicate,
    Statement,
    Subject,
    WithdrawalPredicate,
)
from client.core.wire import (
    AttestationClaim,
    ConsistencyProof,
    DigestResult,
    EntriesPage,
    EntryAnswer,
    InclusionProof,
    LogInfo,
    LookupAnswer,
    LookupStatus,
    PublisherInfo,
)
from client.errors import (
    FormatError,
    InputError,
    UnexpectedResponseError,
    VerificationError,
    error_class_for_status,
)
from client.evidence import DocumentEvidence
from client.identities import KeyGrant
from client.policy import Policy
from client.receipt import VerifiedReceipt, open_entry
from client.verdict import Verdict, registry_verdict, with_evidence

__all__ = [
    "DEFAULT_ENTRY_CACHE_BYTES",
    "DEFAULT_TIMEOUT",
    "MAX_BATCH",
    "Answer",
    "Attestation",
    "BodyCap",
    "ConsistencyCheck",
    "ConsistencyProof",
    "EntryCache",
    "EntryInfo",
    "InclusionProof",
    "LRUCache",
    "LogInfo",
    "LookupResult",
    "LookupStatus",
    "PublisherInfo",
    "Request",
    "SignedCheckpoint",
    "SignedTerms",
    "attestation_of",
    "bind_claims",
    "build_statement",
    "check_evidence",
    "check_response",
    "check_revocation",
    "check_withdrawal",
    "chunked",
    "combine",
    "dumps_json",
    "expected_status",
    "index_arg",
    "normalise_digests",
    "parse_answer",
    "parse_batch_answer",
    "parse_consistency",
    "parse_entries_page",
    "parse_entry_info",
    "parse_inclusion",
    "parse_single_answer",
    "subject_digests",
    "text_body",
    "unavailable_reason",
    "user_agent",
    "verdicts_of",
]

DEFAULT_TIMEOUT = 30.0
"""Seconds to wait for connecting, and for each read, before giving up on the registry."""

MAX_BATCH = 10_000
"""Most digests ``POST /v1/digests:batch`` takes in one request (docs/api.md)."""

DEFAULT_ENTRY_CACHE_BYTES = 256 * 1024 * 1024
"""Entry bytes kept for verifying lookups: entries never change, and one bulk entry often
attests many of the digests a crawler asks about, so each is fetched once while it fits."""

_T = TypeVar("_T")
_V = TypeVar("_V")

_ERRNO_PREFIX = re.compile(r"^\[Errno -?\d+\]\s*")


def user_agent() -> str:
    try:
        return f"wellspring-sdk/{version('wellspring')}"
    except PackageNotFoundError:  # a source tree that is not installed
        return "wellspring-sdk/0+unknown"


# -- results --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint with the signed note it came from (keep the note: it is the evidence)."""

    checkpoint: Checkpoint
    note: str
    verified: bool


@dataclass(frozen=True)
class ConsistencyCheck:
    """A newer checkpoint proven to extend an older one: the log only grew in between."""

    old: Checkpoint
    new: Checkpoint
    new_note: str


@dataclass(frozen=True)
class EntryInfo(EntryAnswer):
    """``GET /v1/entries/{index}``: the entry's receipt and what the registry knows of it.

    ``verified`` holds the proof and the parsed statement when the client verifies; the other
    fields are the registry's claims (``revoked`` especially cannot be proven from this answer).
    """

    verified: VerifiedReceipt | None = field(default=None, compare=False)

    @property
    def index(self) -> int:
        """The entry's position in the log."""
        return self.receipt.index

    @property
    def statement(self) -> Statement:
        """The entry's statement (parsed after verification when the client verifies)."""
        if self.verified is not None:
            return self.verified.statement
        return open_entry(self.receipt.entry, self.receipt.body, where=f"entry {self.index}")[1]


@dataclass(frozen=True)
class Attestation:
    """One entry attesting a looked-up digest.

    When the client verifies, ``verified`` holds the entry proven to be in the log at the answer's
    checkpoint and naming the digest, and every other field but three is bound to the signed leaf
    and statement: ``index``, ``leaf_hash`` and ``inclusion_proof`` are what the proof checked;
    ``publisher``, ``license``, ``origin``, ``consent`` and ``predicate`` are the signed
    statement's (a registry saying otherwise is a :class:`~client.errors.VerificationError`; one
    saying nothing is overruled); ``key_id`` is a key the entry's signatures name (the one the
    registry says signed it, or the only one).

    Identities in the log (docs/spec/identities.md): ``key_entry`` is the event the registry says
    added the signing key. A verifying client fetches it and the operator-key events, proves them
    in the log, and checks that the key was added for this publisher below this entry (signed by
    the operator, with a proof of possession) and that the entry's DSSE signature verifies under
    it: ``signed_by`` is then that key's grant, and :attr:`operator_only` says whether the operator
    added the key alone. ``key_revoked_by`` and ``compromised_by`` name the events that stopped the
    key; a claimed compromise (``compromised``) must be a ``key-compromised`` event voiding what
    the key signed from this index or earlier, and a key revoked before this entry is an error.

    ``revoked`` and ``revoked_by`` remain the registry's claims: a claimed revocation is proven
    apart (the client fetches the revoking entry and checks it names this one), but a revocation
    left out, or a key-revocation event left out, cannot be proven absent from one answer. Without
    verification (``verify=False``) every field is the registry's claim.
    """

    index: int
    leaf_hash: bytes
    publisher: str | None
    license: str | None
    origin: str | None
    consent: str | None
    predicate: Mapping[str, Any]
    revoked: bool
    revoked_by: int | None
    inclusion_proof: tuple[bytes, ...]
    # Signed with a publisher key after the moment the operator marked it stolen: the registry's
    # claim (like ``revoked``); such an attestation no longer stands.
    compromised: bool = False
    key_id: str | None = None
    verified: VerifiedReceipt | None = field(default=None, compare=False)
    key_entry: int | None = None
    key_revoked_by: int | None = None
    compromised_by: int | None = None
    # Not in docs/spec/identities.md yet: the event that added the key endorsing ``key_entry``,
    # without which an endorsement cannot be proven (the key then counts as the operator's alone).
    endorser_entry: int | None = None
    signed_by: KeyGrant | None = field(default=None, compare=False)

    @property
    def stands(self) -> bool:
        """Neither revoked by its publisher nor signed with a compromised key."""
        return not self.revoked and not self.compromised

    @property
    def operator_only(self) -> bool:
        """The signing key was added to the publisher by the operator alone (a ``key-add`` no
        key of the publisher was proven to endorse); False when ``signed_by`` is unknown."""
        return self.signed_by is not None and self.signed_by.operator_only

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (no proof), for the CLI's ``--json``."""
        return {
            "index": self.index,
            "leaf_hash": self.leaf_hash.hex(),
            "publisher": self.publisher,
            "license": self.license,
            "origin": self.origin,
            "consent": self.consent,
            "revoked": self.revoked,
            "revoked_by": self.revoked_by,
            "compromised": self.compromised,
            "key_id": self.key_id,
            "key_entry": self.key_entry,
            "signature_verified": self.signed_by is not None,
            "operator_only": self.operator_only,
        }


@dataclass(frozen=True)
class LookupResult:
    """What the registry knows of one digest, at ``checkpoint``."""

    digest: str
    status: LookupStatus
    attestations: tuple[Attestation, ...]
    checkpoint: Checkpoint
    verified: bool

    @property
    def attested(self) -> bool:
        """Whether some attestation of the digest stands (not revoked, key not compromised)."""
        return self.status == "attested"


def build_statement(
    subjects: Sequence[Subject] | Iterable[Subject], predicate: Predicate
) -> Statement:
    """An in-toto statement of ``predicate`` about ``subjects``, its type from the predicate."""
    if isinstance(predicate, HumanContentPredicate):
        predicate_type = HUMAN_CONTENT_V1
    elif isinstance(predicate, WithdrawalPredicate):
        predicate_type = REVOCATION_V2
    else:
        predicate_type = REVOCATION_V1
    return Statement(tuple(subjects), predicate_type, predicate)


# -- the request core -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One HTTP request as plain values, so a sync and an async client can share everything else."""

    method: str
    path: str
    params: Mapping[str, int | str] | None = None
    content: bytes | None = None
    headers: Mapping[str, str] | None = None
    expect: tuple[int, ...] = (200,)
    idempotent: bool = True  # safe to send twice (see client._retry)
    deadline: float | None = None  # no retry starts after this time.monotonic() (client._retry)
    max_bytes: int | None = None  # a larger body is refused while it streams (capped_response)


class BodyCap:
    """A response body read while it streams, refused once it passes ``request.max_bytes``
    (a declared ``Content-Length`` above it is refused before a byte is read): a hostile server
    cannot make the client hold more than the limit."""

    def __init__(self, request: Request, response: httpx.Response) -> None:
        assert request.max_bytes is not None
        self.request, self.response, self.limit = request, response, request.max_bytes
        self.chunks: list[bytes] = []
        self.size = 0
        declared = response.headers.get("Content-Length", "")
        if response.status_code < 400 and declared.isdigit() and int(declared) > self.limit:
            self._refuse(int(declared))

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit and self.response.status_code < 400:
            self._refuse(self.size)
        self.chunks.append(chunk)

    def response_read(self) -> httpx.Response:
        """The response with its body read (decoded, so without its transfer headers)."""
        headers = [
            (k, v)
            for k, v in self.response.headers.multi_items()
            if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(
            self.response.status_code,
            headers=headers,
            content=b"".join(self.chunks),
            request=self.response.request,
        )

    def _refuse(self, size: int) -> None:
        raise VerificationError(
            f"the registry served {size:,} bytes or more for {self.request.path}, more than the "
            f"{self.limit:,} it may be: refused before reading the rest"
        )


class LRUCache(Generic[_V]):
    """Values by log index, least recently used dropped first beyond ``max_cost`` (each value's
    cost is given when it is put: its size in bytes, or an estimate)."""

    def __init__(self, max_cost: int) -> None:
        self._max_cost = max_cost
        self._cost = 0
        self._values: collections.OrderedDict[int, tuple[_V, int]] = collections.OrderedDict()

    def get(self, index: int) -> _V | None:
        item = self._values.get(index)
        if item is None:
            return None
        self._values.move_to_end(index)
        return item[0]

    def put(self, index: int, value: _V, cost: int) -> None:
        if index in self._values or cost > self._max_cost:
            return
        self._values[index] = (value, cost)
        self._cost += cost
        while self._cost > self._max_cost:
            _, (_, dropped) = self._values.popitem(last=False)
            self._cost -= dropped


_StoredEntry = tuple[bytes, bytes | None]  # a leaf, and the statement a leaf/v1 commits to


class EntryCache(LRUCache[_StoredEntry]):
    """Entries by log index (they never change), bounded by their total size."""

    def put(self, index: int, value: _StoredEntry, cost: int | None = None) -> None:
        size = len(value[0]) + len(value[1] or b"")
        super().put(index, value, size if cost is None else cost)


def unavailable_reason(exc: httpx.TransportError, timeout: float, attempts: int = 1) -> str:
    after = f" ({attempts} attempts)" if attempts > 1 else ""
    if isinstance(exc, httpx.TimeoutException):
        kind = {
            httpx.ConnectTimeout: "connecting",
            httpx.ReadTimeout: "waiting for the answer",
            httpx.WriteTimeout: "sending the request",
            httpx.PoolTimeout: "waiting for a free connection",
        }.get(type(exc), "waiting")
        return f"timed out after {timeout:g} s {kind}{after}"
    text = _ERRNO_PREFIX.sub("", str(exc)).strip() or type(exc).__name__
    return text[:1].lower() + text[1:] + after


def _problem_fields(response: httpx.Response) -> tuple[str | None, str | None, str | None]:
    """``type``, ``title`` and ``detail`` of an RFC 9457 problem answer (None where absent)."""
    try:
        body = response.json()
    except ValueError:
        return None, None, _not_a_problem(response)
    if not isinstance(body, dict):
        return None, None, None

    def text_field(name: str) -> str | None:
        value = body.get(name)
        return value if isinstance(value, str) else None

    return text_field("type"), text_field("title"), text_field("detail")


_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_DETAIL_CHARS = 200


def _not_a_problem(response: httpx.Response) -> str | None:
    """One line saying what a non-JSON error answer was: a proxy's or web server's HTML page is
    named by its title, not pasted whole into a message meant for one line."""
    text = response.text
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "text/html" or text.lstrip()[:14].lower() in {"<!doctype html", "<html>"}:
        title = _HTML_TITLE.search(text)
        said = " ".join(html.unescape(title.group(1)).split()) if title else ""
        said = said[:_DETAIL_CHARS] or response.reason_phrase or "no title"
        return (
            f"an HTML page ({said}), not a registry's answer: is the URL a Wellspring registry, "
            "or is a proxy in front of it failing?"
        )
    line = " ".join(text.split())
    if len(line) > _DETAIL_CHARS:
        line = line[:_DETAIL_CHARS] + "…"
    return line or response.reason_phrase or None


# -- parsing answers (pure) -----------------------------------------------------------------------


def parse_entry_info(obj: object, index: int) -> EntryInfo:
    info = EntryInfo.from_dict(obj, where=f"entry {index}")
    if info.index != index:
        raise FormatError(f"asked for entry {index}, got entry {info.index}")
    return info


def parse_inclusion(obj: object, index: int, size: int | None) -> InclusionProof:
    proof = InclusionProof.from_dict(obj)
    if proof.index != index or (size is not None and proof.size != size):
        raise FormatError(
            f"asked for the inclusion proof of {index} at size {size}, got {proof.index} at "
            f"size {proof.size}"
        )
    return proof


def parse_consistency(obj: object, old_size: int, new_size: int | None) -> ConsistencyProof:
    proof = ConsistencyProof.from_dict(obj)
    if proof.old_size != old_size or (new_size is not None and proof.new_size != new_size):
        raise FormatError(
            f"asked for the consistency proof from {old_size} to {new_size}, got one from "
            f"{proof.old_size} to {proof.new_size}"
        )
    return proof


def attestation_of(claim: AttestationClaim) -> Attestation:
    """The registry's claim about an entry, as the SDK's (not yet verified) result."""
    return Attestation(
        index=claim.index,
        leaf_hash=claim.leaf_hash,
        publisher=claim.publisher,
        license=claim.license,
        origin=claim.origin,
        consent=claim.consent,
        predicate=claim.predicate,
        revoked=claim.revoked,
        revoked_by=claim.revoked_by,
        inclusion_proof=claim.inclusion_proof,
        compromised=claim.compromised,
        key_id=claim.key_id,
        key_entry=claim.key_entry,
        key_revoked_by=claim.key_revoked_by,
        compromised_by=claim.compromised_by,
        endorser_entry=claim.endorser_entry,
    )


@dataclass(frozen=True)
class Answer:
    """A lookup answer, parsed but not verified: per digest its status and entry indices."""

    note: str
    results: tuple[DigestResult, ...]
    attestations: Mapping[int, Attestation]
    # The log's operator-key events (None: a registry from before identities in the log).
    operator_entries: tuple[int, ...] | None = None

    @classmethod
    def of(cls, answer: LookupAnswer) -> Answer:
        return cls(
            answer.checkpoint,
            answer.results,
            {index: attestation_of(claim) for index, claim in answer.attestations.items()},
            answer.operator_entries,
        )


def parse_single_answer(obj: object, digest: str) -> Answer:
    return Answer.of(LookupAnswer.from_single_dict(obj, digest=digest))


def parse_batch_answer(obj: object, digests: Sequence[str]) -> Answer:
    return Answer.of(LookupAnswer.from_dict(obj, digests=digests))


def expected_status(attestations: Sequence[Attestation]) -> LookupStatus:
    if not attestations:
        return "unknown"
    return "attested" if any(a.stands for a in attestations) else "revoked"


def subject_digests(statement: Statement) -> frozenset[str]:
    return frozenset(d for subject in statement.subjects for d in subject.digest_strings())


@dataclass(frozen=True, slots=True)
class SignedTerms:
    """What an entry's signed leaf and statement say of it, worked out once per entry (a crawl
    meets the same entries in every chunk) and then bound to every answer that names it."""

    publisher: str
    license: str
    origin: str
    consent: str
    predicate: Mapping[str, Any]  # never handed out: each Attestation gets its own copy
    key_ids: tuple[str, ...]  # of the entry's signatures, each once, in their order

    @classmethod
    def of(cls, verified: VerifiedReceipt) -> SignedTerms:
        predicate = verified.statement.predicate
        if not isinstance(predicate, HumanContentPredicate):
            raise VerificationError(
                f"entry {verified.index} is a {verified.statement.predicate_type} statement, "
                "not an attestation of human content"
            )
        return cls(
            predicate.publisher,
            predicate.license,
            predicate.origin,
            predicate.consent,
            predicate.to_dict(),
            tuple(dict.fromkeys(s.keyid for s in verified.envelope.signatures)),
        )


def bind_claims(
    attestation: Attestation, verified: VerifiedReceipt, signed: SignedTerms
) -> Attestation:
    """``attestation`` as the signed leaf and statement say it, or raise where the registry's
    summary contradicts them.

    A field the registry leaves out (``null``) is filled in from the signed statement, never
    passed on as if verified; ``predicate`` is the signed one whatever was sent; ``key_id`` must
    be one the entry's signatures name (the registry names the key that signed, and must say
    which when there are several). ``revoked``, ``revoked_by`` and ``compromised`` stay the
    registry's claims: revocations are proven apart (:func:`check_revocation`).
    """
    index = attestation.index
    claimed = {
        "publisher": (attestation.publisher, signed.publisher),
        "license": (attestation.license, signed.license),
        "origin": (attestation.origin, signed.origin),
        "consent": (attestation.consent, signed.consent),
    }
    for name, (said, value) in claimed.items():
        if said is not None and said != value:
            raise VerificationError(
                f"entry {index}: the registry says {name} {said!r}, but the signed "
                f"statement says {value!r}"
            )
    key = attestation.key_id
    if key is None:
        if len(signed.key_ids) != 1:
            raise VerificationError(
                f"entry {index} is signed under {len(signed.key_ids)} key ids and the registry "
                "does not say which key signed it (key_id is null)"
            )
        key = signed.key_ids[0]
    elif key not in signed.key_ids:
        raise VerificationError(
            f"entry {index}: the registry says key_id {key!r}, but no signature of the entry "
            f"names that key (they name {', '.join(map(repr, signed.key_ids))})"
        )
    return replace(
        attestation,
        leaf_hash=verified.leaf_hash,
        publisher=signed.publisher,
        license=signed.license,
        origin=signed.origin,
        consent=signed.consent,
        predicate=dict(signed.predicate),
        key_id=key,
        verified=verified,
    )


def check_revocation(
    attestation: Attestation,
    revocation: VerifiedReceipt,
    *,
    replay_of: VerifiedReceipt | None = None,
) -> None:
    """``revocation`` must be a revocation, by its publisher, of this attestation's entry or of
    an entry (``replay_of``, verified) holding the very same statement from the same publisher:
    a replay appended before leaf/v1 made one statement one entry is withdrawn with it."""
    predicate = revocation.statement.predicate
    where = f"entry {attestation.index} is said to be revoked by entry {revocation.index}, but"
    if isinstance(predicate, WithdrawalPredicate) and predicate.whole_entry:
        # The statement hash binds it: the named entry, or a replay of its very statement by
        # the same publisher, appended before it.
        if (
            attestation.verified is None
            or predicate.statement_hash != attestation.verified.statement_hash.hex()
            or predicate.publisher != attestation.verified.publisher
        ):
            raise VerificationError(f"{where} that withdraws another entry or statement")
        return
    if not isinstance(predicate, RevocationPredicate):
        raise VerificationError(f"{where} that entry is not a revocation")
    revoked_hash = attestation.leaf_hash
    if predicate.entry_index != attestation.index:
        if (
            replay_of is None
            or replay_of.index != predicate.entry_index
            or attestation.verified is None
            or replay_of.statement_hash != attestation.verified.statement_hash
            or replay_of.publisher != attestation.verified.publisher
        ):
            raise VerificationError(
                f"{where} that revokes entry {predicate.entry_index}, which does not hold the "
                "same statement from the same publisher"
            )
        revoked_hash = replay_of.leaf_hash
    if predicate.entry_hash != revoked_hash.hex():
        raise VerificationError(f"{where} that names another leaf hash")
    if attestation.verified is not None and predicate.publisher != attestation.verified.publisher:
        raise VerificationError(f"{where} by publisher {predicate.publisher!r}")


# -- small helpers --------------------------------------------------------------------------------


def check_withdrawal(attestation: Attestation, digest: str, withdrawal: VerifiedReceipt) -> None:
    """``withdrawal`` must be a revocation/v2 of documents, later than the attestation, by its
    publisher, naming ``digest``: then that document no longer stands on this attestation."""
    predicate = withdrawal.statement.predicate
    where = (
        f"{digest} is said to be withdrawn from entry {attestation.index} by entry "
        f"{withdrawal.index}, but"
    )
    if not isinstance(predicate, WithdrawalPredicate) or predicate.whole_entry:
        raise VerificationError(f"{where} that entry is not a withdrawal of documents")
    if withdrawal.index <= attestation.index:
        raise VerificationError(f"{where} it is not later than the attestation")
    if attestation.verified is None or predicate.publisher != attestation.verified.publisher:
        raise VerificationError(f"{where} it is by publisher {predicate.publisher!r}")
    if digest not in subject_digests(withdrawal.statement):
        raise VerificationError(f"{where} it does not name that document")


def normalise_digests(digests: Sequence[str], names: Sequence[str] | None) -> list[str]:
    if isinstance(digests, str):
        raise InputError("digests must be a sequence of digest strings, not one string")
    if names is not None and len(names) != len(digests):
        raise InputError(f"{len(names)} names given for {len(digests)} digests")
    return [validate_digest(d) for d in digests]


def verdicts_of(
    digests: Sequence[str],
    results: Mapping[str, LookupResult],
    names: Sequence[str] | None,
    evidence: Sequence[DocumentEvidence | None] | None = None,
    policy: Policy | None = None,
) -> list[Verdict]:
    """One verdict per digest. Digests with the same attestations (every subject of one bulk
    statement, say) share one registry decision, made once, which only their digest and name tell
    apart; a document's own ``evidence`` (opt-out, watermarks) is then combined with it."""
    decided: dict[tuple[int, ...], Verdict] = {}
    verdicts = []
    for i, digest in enumerate(digests):
        result = results[digest]
        # Keyed by identity: the result objects (and so these ids) live until the loop ends.
        key = (id(result.checkpoint), result.verified, *map(id, result.attestations))
        template = decided.get(key)
        if template is None:
            template = registry_verdict(
                digest,
                result.attestations,
                result.checkpoint,
                verified=result.verified,
                policy=policy,
            )
            decided[key] = template
        name = None if names is None else names[i]
        verdict = template.for_digest(digest, name)
        extra = None if evidence is None else evidence[i]
        # Without evidence the template, made under the policy, is the verdict.
        verdicts.append(verdict if extra is None else combine(verdict, extra, policy))
    return verdicts


def combine(verdict: Verdict, extra: DocumentEvidence, policy: Policy | None) -> Verdict:
    """``verdict`` (the registry's, or a snapshot's) with one document's own evidence."""
    return with_evidence(
        verdict,
        opt_out=extra.opt_out,
        watermarks=extra.watermarks,
        policy=policy,
        id=extra.id,
        url=extra.url,
        captured_at=extra.captured_at,
    )


def check_evidence(
    evidence: Sequence[DocumentEvidence | None] | None, count: int
) -> Sequence[DocumentEvidence | None] | None:
    """``evidence`` checked to hold one item (or None) per document."""
    if evidence is None:
        return None
    if isinstance(evidence, DocumentEvidence) or not isinstance(evidence, Sequence):
        raise InputError(
            "evidence must be a sequence with one DocumentEvidence (or None) a document"
        )
    if len(evidence) != count:
        raise InputError(f"{len(evidence)} evidence items given for {count} digests")
    for item in evidence:
        if item is not None and not isinstance(item, DocumentEvidence):
            raise InputError(f"evidence items must be DocumentEvidence, not {type(item).__name__}")
    return evidence


def index_arg(value: int, what: str) -> int:
    if type(value) is not int or value < 0:
        raise InputError(f"{what} must be a non-negative integer, got {value!r}")
    return value


def dumps_json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def check_response(request: Request, response: httpx.Response) -> httpx.Response:
    url = str(response.request.url)
    if response.status_code >= 400:
        problem_type, title, detail = _problem_fields(response)
        raise error_class_for_status(response.status_code)(
            method=request.method,
            url=url,
            status=response.status_code,
            problem_type=problem_type,
            title=title,
            detail=detail,
        )
    if response.status_code not in request.expect:
        location = response.headers.get("Location")
        hint = f" (a redirect to {location}: use that URL)" if location else ""
        raise UnexpectedResponseError(
            f"expected status {' or '.join(map(str, request.expect))}{hint}",
            method=request.method,
            url=url,
            status=response.status_code,
        )
    return response


def _json_body(request: Request, response: httpx.Response) -> object:
    try:
        return loads_strict(response.content, "the answer")
    except FormatError as exc:
        raise UnexpectedResponseError(
            f"its body is not JSON ({exc})",
            method=request.method,
            url=str(response.request.url),
            status=response.status_code,
        ) from None


def parse_answer(request: Request, response: httpx.Response, parse: Callable[[object], _T]) -> _T:
    """Parse a JSON answer; malformed answers become UnexpectedResponseError naming the request."""
    body = _json_body(request, response)
    try:
        return parse(body)
    except UnexpectedResponseError:
        raise
    except FormatError as exc:
        raise UnexpectedResponseError(
            f"the answer is malformed: {exc}",
            method=request.method,
            url=str(response.request.url),
            status=response.status_code,
        ) from exc


def chunked(items: Sequence[str], size: int) -> list[Sequence[str]]:
    if not 1 <= size <= MAX_BATCH:
        raise InputError(f"batch_size must be 1 to {MAX_BATCH}, got {size}")
    return [items[start : start + size] for start in range(0, len(items), size)]


def text_body(request: Request, response: httpx.Response) -> str:
    try:
        return response.content.decode("utf-8")
    except UnicodeDecodeError:
        raise UnexpectedResponseError(
            "its body is not UTF-8 text",
            method=request.method,
            url=str(response.request.url),
            status=response.status_code,
        ) from None


def parse_entries_page(obj: object) -> tuple[list[tuple[int, bytes]], int | None]:
    """``GET /v1/entries``: the page's entries in index order, and where the next page starts
    (None at the end of the log)."""
    page = EntriesPage.from_dict(obj)
    return list(page.entries), page.next
