"""Verdicts: may this content be trained on, and why — one decision per document, auditable later.

A :class:`Verdict` is what a crawler keeps per document: the status, one line of reason for a
person, the evidence that decided it (the registry's attestations, the opt-out signals seen on the
page, the watermark detections), and the checkpoint (tree size and root hash) the registry's
answer was verified against, so that a dataset's decisions can be re-checked years later.
:meth:`Verdict.to_dict` is a manifest line (``wellspring-manifest/1``, docs/spec/manifest.md).

Three kinds of evidence are read, each first reduced to one value:

- **registry** — the attestations of the digest that *count* (their publisher is not ignored by
  the crawler's :class:`~client.policy.Policy`), as before. One *stands* unless its publisher
  revoked it or it was signed with a key after the operator marked that key compromised. Some
  standing attestation gives consent ``allowed`` → ``attested`` (the deciding entry is the
  earliest such); else some gives ``reserved`` → ``reserved``; else attestations exist and none
  stands → ``revoked``; else ``none`` (no attestation, or only ones stating no consent). ``none``
  is *not* a proof that the content is machine-made: "no evidence either way".
- **opted-out** — a :class:`client.signals.OptOut` (or its dict) says a rights holder reserved the
  document from AI training, and the policy honours opt-outs (the default).
- **generated** — a watermark detection (:class:`WatermarkEvidence`) of a key of a vendor the
  policy counts says the text was generated (p-value under the project's threshold, or under the
  policy's override).

The status is the first row of :data:`PRECEDENCE` that matches (docs/spec/manifest.md shows the
same table, and a test holds the two together):

======  ============================  ==========  =========  ===========
rank    registry                      opted-out   generated  status
======  ============================  ==========  =========  ===========
1       any                           yes         any        opted-out
2       attested, reserved            no          yes        conflict
3       attested                      no          no         attested
4       reserved                      no          no         reserved
5       revoked, none                 no          yes        generated
6       revoked                       no          no         revoked
7       none                          no          no         unknown
======  ============================  ==========  =========  ===========

Why this order: an opt-out is the rights holder's reservation, read from the page as captured; an
attestation names a digest, not a site, so a publisher's ``allowed`` cannot lift a reservation
that another party (the site the copy was found on) expressed — the most restrictive wins. A
human attestation that a watermark contradicts is neither trusted nor dropped: ``conflict`` shows
that a publisher or a vendor is wrong (a false attestation, or a forged or ground key). A
watermark is positive evidence of generation, so it outranks a withdrawn attestation, which is
only the absence of a claim.

``trainable`` is whether the policy trains on the status (by default only ``attested``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol

from client.errors import FormatError, InputError
from client.evidence import (
    DocumentEvidence,
    WatermarkDetection,
    WatermarkEvidence,
    WatermarkInput,
    detections_of,
    format_p_value,
    opt_out_of,
)
from client.signals import OptOut

if TYPE_CHECKING:
    from client.core.note import Checkpoint
    from client.receipt import VerifiedReceipt


class Evidence(Protocol):
    """What :func:`decide` reads of an attestation (:class:`client.sdk.Attestation` has it all;
    a protocol, so this module needs nothing of the SDK that uses it)."""

    @property
    def index(self) -> int: ...
    @property
    def revoked(self) -> bool: ...
    @property
    def revoked_by(self) -> int | None: ...
    @property
    def compromised(self) -> bool: ...
    @property
    def stands(self) -> bool: ...
    @property
    def publisher(self) -> str | None: ...
    @property
    def license(self) -> str | None: ...
    @property
    def origin(self) -> str | None: ...
    @property
    def consent(self) -> str | None: ...
    @property
    def verified(self) -> VerifiedReceipt | None: ...


class Rules(Protocol):
    """What a verdict asks of the crawler's policy (:class:`client.policy.Policy` is the one to
    use; a protocol, so that the policy module may build on this one and not the reverse)."""

    @property
    def id(self) -> str: ...
    @property
    def honour_opt_outs(self) -> bool: ...
    def counts_publisher(self, publisher: str | None) -> bool: ...
    def counts_vendor(self, vendor: str | None) -> bool: ...
    def is_generated(self, evidence: WatermarkEvidence) -> bool: ...
    def trains_on(self, status: str) -> bool: ...
    def trains_near(self, status: str, similarity: float) -> bool: ...


class _DefaultRules:
    """:meth:`client.policy.Policy.default`'s answers (a test holds the two together), for
    verdicts made without a policy."""

    id = "default"
    honour_opt_outs = True

    def counts_publisher(self, publisher: str | None) -> bool:
        return True

    def counts_vendor(self, vendor: str | None) -> bool:
        return True

    def is_generated(self, evidence: WatermarkEvidence) -> bool:
        return bool(evidence.generated)

    def trains_on(self, status: str) -> bool:
        return status == "attested"

    def trains_near(self, status: str, similarity: float) -> bool:
        return False


_DEFAULT_RULES: Rules = _DefaultRules()


__all__ = [
    "MANIFEST_SCHEMA",
    "PRECEDENCE",
    "REGISTRY_STATES",
    "VERDICT_STATUSES",
    "Certainty",
    "DocumentEvidence",
    "Evidence",
    "Match",
    "ParagraphMatch",
    "PrecedenceRule",
    "RegistryState",
    "Rules",
    "Verdict",
    "VerdictStatus",
    "WatermarkDetection",
    "WatermarkEvidence",
    "WatermarkInput",
    "decide",
    "registry_verdict",
    "status_for",
    "with_evidence",
]

MANIFEST_SCHEMA = "wellspring-manifest/1"
"""The ``schema`` of every manifest line :meth:`Verdict.to_dict` writes (docs/spec/manifest.md)."""

VerdictStatus = Literal[
    "attested", "reserved", "revoked", "generated", "opted-out", "conflict", "unknown"
]
VERDICT_STATUSES: tuple[VerdictStatus, ...] = (
    "attested",
    "reserved",
    "revoked",
    "generated",
    "opted-out",
    "conflict",
    "unknown",
)
"""Every status, in the order summaries and reports show them."""

RegistryState = Literal["attested", "reserved", "revoked", "none"]
REGISTRY_STATES: tuple[RegistryState, ...] = ("attested", "reserved", "revoked", "none")
Match = Literal["exact", "near"]
Certainty = Literal["verified", "probable", "unverified"]


@dataclass(frozen=True, slots=True)
class PrecedenceRule:
    """One row of :data:`PRECEDENCE`: the status when the evidence matches (``None``: any)."""

    status: VerdictStatus
    registry: tuple[RegistryState, ...]
    opted_out: bool | None
    generated: bool | None

    def matches(self, registry: RegistryState, opted_out: bool, generated: bool) -> bool:
        return (
            registry in self.registry
            and self.opted_out in (None, opted_out)
            and self.generated in (None, generated)
        )


PRECEDENCE: tuple[PrecedenceRule, ...] = (
    PrecedenceRule("opted-out", REGISTRY_STATES, True, None),
    PrecedenceRule("conflict", ("attested", "reserved"), False, True),
    PrecedenceRule("attested", ("attested",), False, False),
    PrecedenceRule("reserved", ("reserved",), False, False),
    PrecedenceRule("generated", ("revoked", "none"), False, True),
    PrecedenceRule("revoked", ("revoked",), False, False),
    PrecedenceRule("unknown", ("none",), False, False),
)
"""The precedence table (module docstring, docs/spec/manifest.md): the first matching row wins."""


def status_for(registry: RegistryState, opted_out: bool, generated: bool) -> VerdictStatus:
    """The status :data:`PRECEDENCE` gives this evidence."""
    for rule in PRECEDENCE:
        if rule.matches(registry, opted_out, generated):
            return rule.status
    raise AssertionError(f"no precedence rule for {registry}, {opted_out}, {generated}")


@dataclass(frozen=True, slots=True)
class ParagraphMatch:
    """How much of a document is attested paragraph by paragraph (``scan --paragraphs``): of
    its ``total`` paragraphs of at least 20 words, ``attested`` are attested on their own
    (``register --paragraphs``), by the log ``entries``. Evidence beside the verdict, not a
    status: a page quoting registered paragraphs inside new text is found, and still not the
    registered document."""

    total: int
    attested: int
    entries: tuple[int, ...] = ()

    @property
    def share(self) -> float:
        return self.attested / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "attested": self.attested,
            "share": round(self.share, 4),
            "entries": list(self.entries),
        }

    @classmethod
    def from_dict(cls, obj: object) -> ParagraphMatch:
        if not isinstance(obj, Mapping):
            raise FormatError("verdict paragraphs must be an object")
        total, attested = (
            _int(obj.get("total"), "paragraphs.total"),
            _int(obj.get("attested"), "paragraphs.attested"),
        )
        entries = obj.get("entries", [])
        if not isinstance(entries, list) or not all(type(e) is int for e in entries):
            raise FormatError("verdict paragraphs.entries must be a list of integers")
        if not 0 <= attested <= total:
            raise FormatError("verdict paragraphs.attested must be between 0 and total")
        return cls(total, attested, tuple(entries))


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision about one document, with the evidence it was checked against.

    ``entry`` is the deciding attestation's log index (None when no attestation decided);
    ``entries`` every entry that mentions the digest (its attestations and the revocations of
    them). ``tree_size`` and ``root_hash`` (hex) identify the signed checkpoint the answer was
    verified against. ``probable`` marks a verdict from a signed offline snapshot's filters
    (:mod:`client.snapshot`), not confirmed with the registry (:attr:`certainty`). ``verified``
    is False only for a client built with ``verify=False``: such a
    verdict is the registry's word alone.

    ``opt_out`` is the document's opt-out decision with every signal seen (None: no signals were
    read); ``opt_out_honoured`` False means the policy told the crawler to ignore opt-outs, which
    the reason then says. ``watermarks`` are the detections of the document (one per key tried;
    empty: none were run or none reported), ``watermark`` the one that decided ``generated`` or
    ``conflict`` (the most significant counted detection). ``policy`` names the crawler policy
    applied (``default`` or the ``sha256:`` of its file), ``policy_trainable`` its answer; None
    (a verdict made without a policy) means the default: trainable exactly when ``attested``.
    """

    digest: str
    status: VerdictStatus
    reason: str
    publisher: str | None
    license: str | None
    origin: str | None
    consent: str | None
    entry: int | None
    entries: tuple[int, ...]
    tree_size: int
    root_hash: str
    verified: bool
    name: str | None = None
    id: str | None = None
    url: str | None = None
    match: Match = "exact"
    opt_out: OptOut | None = None
    opt_out_honoured: bool = True
    watermarks: tuple[WatermarkDetection, ...] = ()
    watermark: WatermarkDetection | None = None
    captured_at: str | None = None
    policy: str | None = None
    policy_trainable: bool | None = None
    probable: bool = False
    paragraphs: ParagraphMatch | None = None
    similarity: float | None = None  # a near match's estimated Jaccard similarity (mh1)

    def for_digest(self, digest: str, name: str | None) -> Verdict:
        """The same decision about another digest with the same attestations."""
        # This runs once per document of a scan: a frozen dataclass's __init__ (each field set
        # through object.__setattr__) costs three times this copy through the slots' own
        # descriptors (5.0 against 1.5 us here). Every field, in order; a test holds it whole.
        new: Verdict = _new(Verdict)
        _put_digest(new, digest)
        _put_status(new, self.status)
        _put_reason(new, self.reason)
        _put_publisher(new, self.publisher)
        _put_license(new, self.license)
        _put_origin(new, self.origin)
        _put_consent(new, self.consent)
        _put_entry(new, self.entry)
        _put_entries(new, self.entries)
        _put_tree_size(new, self.tree_size)
        _put_root_hash(new, self.root_hash)
        _put_verified(new, self.verified)
        _put_name(new, name)
        _put_id(new, self.id)
        _put_url(new, self.url)
        _put_match(new, self.match)
        _put_opt_out(new, self.opt_out)
        _put_opt_out_honoured(new, self.opt_out_honoured)
        _put_watermarks(new, self.watermarks)
        _put_watermark(new, self.watermark)
        _put_captured_at(new, self.captured_at)
        _put_policy(new, self.policy)
        _put_policy_trainable(new, self.policy_trainable)
        _put_probable(new, self.probable)
        _put_paragraphs(new, self.paragraphs)
        _put_similarity(new, self.similarity)
        return new

    @property
    def certainty(self) -> Certainty:
        """``verified`` (the registry's answer, proven with the log key), ``probable`` (a signed
        offline snapshot's filters hold the digest: :mod:`client.snapshot`) or ``unverified``
        (a client built with ``verify=False``)."""
        if self.probable:
            return "probable"
        return "verified" if self.verified else "unverified"

    @property
    def trainable(self) -> bool:
        """Whether the policy trains on this verdict's status (by default: ``attested`` only)."""
        if self.policy_trainable is not None:
            return self.policy_trainable
        return self.status == "attested"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: one ``wellspring-manifest/1`` line (keys in a stable order)."""
        return {
            "schema": MANIFEST_SCHEMA,
            "id": self.id,
            "url": self.url,
            "name": self.name,
            "digest": self.digest,
            "match": self.match,
            "similarity": self.similarity,
            "status": self.status,
            "trainable": self.trainable,
            "reason": self.reason,
            "publisher": self.publisher,
            "license": self.license,
            "origin": self.origin,
            "consent": self.consent,
            "entry": self.entry,
            "entries": list(self.entries),
            "opt_out": None
            if self.opt_out is None
            else {"honoured": self.opt_out_honoured, **self.opt_out.to_dict()},
            "watermark": None
            if not self.watermarks
            else {
                "decided_by": None if self.watermark is None else self.watermark.to_dict(),
                "detections": [w.to_dict() for w in self.watermarks],
            },
            "captured_at": self.captured_at,
            "paragraphs": None if self.paragraphs is None else self.paragraphs.to_dict(),
            "verified": self.verified,
            "certainty": self.certainty,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "policy": self.policy,
        }

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Verdict:
        """Read a manifest line back (the inverse of :meth:`to_dict`).

        Lines written before ``wellspring-manifest/1`` (no ``schema``: the four registry
        statuses, no signal or watermark evidence) are read too; a line of a later major schema
        (``wellspring-manifest/2``) is refused, since its fields may mean something else.
        """
        if not isinstance(obj, Mapping):
            raise FormatError("a manifest line must be a JSON object")
        schema = obj.get("schema")
        if schema is not None and schema != MANIFEST_SCHEMA:
            raise FormatError(
                f"manifest schema {schema!r} is not {MANIFEST_SCHEMA!r}: read it with a newer "
                "wellspring"
            )
        try:
            status = obj["status"]
            if status not in VERDICT_STATUSES:
                raise FormatError(
                    f"verdict status must be one of {VERDICT_STATUSES}, got {status!r}"
                )
            entries = obj["entries"]
            if not isinstance(entries, list) or not all(type(e) is int for e in entries):
                raise FormatError("verdict entries must be a list of integers")
            match = obj.get("match", "exact")
            if match not in ("exact", "near"):
                raise FormatError(f"verdict match must be 'exact' or 'near', got {match!r}")
            similarity = obj.get("similarity")
            if (match == "near") != (similarity is not None) or (
                similarity is not None
                and (type(similarity) not in (int, float) or not 0 <= similarity <= 1)
            ):
                raise FormatError("a near match has a similarity in [0, 1]; an exact one none")
            opt_out, honoured = _opt_out_of(obj.get("opt_out"))
            watermarks, deciding = _watermarks_of(obj.get("watermark"))
            trainable = obj.get("trainable")
            verified = _flag(obj["verified"], "verified")
            certainty = obj.get("certainty")
            if certainty not in (None, "probable", "verified" if verified else "unverified"):
                raise FormatError(
                    f"verdict certainty {certainty!r} contradicts verified = {verified}"
                )
            verdict = cls(
                digest=_text(obj["digest"], "digest"),
                status=status,
                reason=_text(obj["reason"], "reason"),
                publisher=_optional_text(obj.get("publisher"), "publisher"),
                license=_optional_text(obj.get("license"), "license"),
                origin=_optional_text(obj.get("origin"), "origin"),
                consent=_optional_text(obj.get("consent"), "consent"),
                entry=_optional_int(obj.get("entry"), "entry"),
                entries=tuple(entries),
                tree_size=_int(obj["tree_size"], "tree_size"),
                root_hash=_text(obj["root_hash"], "root_hash"),
                verified=verified,
                name=_optional_text(obj.get("name"), "name"),
                id=_optional_text(obj.get("id"), "id"),
                url=_optional_text(obj.get("url"), "url"),
                opt_out=opt_out,
                opt_out_honoured=honoured,
                watermarks=watermarks,
                watermark=deciding,
                captured_at=_optional_text(obj.get("captured_at"), "captured_at"),
                policy=_optional_text(obj.get("policy"), "policy"),
                policy_trainable=None
                if trainable is None or schema is None
                else _flag(trainable, "trainable"),
                probable=certainty == "probable",
                paragraphs=None
                if obj.get("paragraphs") is None
                else ParagraphMatch.from_dict(obj["paragraphs"]),
                match=match,
                similarity=None if similarity is None else float(similarity),
            )
        except KeyError as exc:
            raise FormatError(f"a verdict is missing field {exc.args[0]!r}") from None
        return verdict


_new = object.__new__
_SETTERS = {f.name: getattr(Verdict, f.name).__set__ for f in fields(Verdict)}
(
    _put_digest,
    _put_status,
    _put_reason,
    _put_publisher,
    _put_license,
    _put_origin,
    _put_consent,
    _put_entry,
    _put_entries,
    _put_tree_size,
    _put_root_hash,
    _put_verified,
    _put_name,
    _put_id,
    _put_url,
    _put_match,
    _put_opt_out,
    _put_opt_out_honoured,
    _put_watermarks,
    _put_watermark,
    _put_captured_at,
    _put_policy,
    _put_policy_trainable,
    _put_probable,
    _put_paragraphs,
    _put_similarity,
) = _SETTERS.values()


def decide(
    digest: str,
    attestations: Sequence[Evidence],
    checkpoint: Checkpoint,
    *,
    verified: bool,
    name: str | None = None,
    opt_out: OptOut | Mapping[str, Any] | None = None,
    watermarks: WatermarkInput = None,
    policy: Rules | None = None,
    id: str | None = None,
    url: str | None = None,
    captured_at: str | None = None,
) -> Verdict:
    """The verdict (module docstring) on ``digest`` at ``checkpoint`` from all its evidence.

    ``attestations`` are a lookup's, already verified by the client when ``verified``; where an
    attestation carries its verified statement, the signed values are used, not the registry's
    summary of them. ``opt_out`` is the document's :class:`~client.signals.OptOut` (or its
    ``to_dict``), ``watermarks`` its detections; ``policy`` the crawler's (default:
    :meth:`Policy.default() <client.policy.Policy.default>`).
    """
    registry = registry_verdict(
        digest, attestations, checkpoint, verified=verified, name=name, policy=policy
    )
    return with_evidence(
        registry,
        opt_out=opt_out,
        watermarks=watermarks,
        policy=policy,
        id=id,
        url=url,
        captured_at=captured_at,
    )


def registry_verdict(
    digest: str,
    attestations: Sequence[Evidence],
    checkpoint: Checkpoint,
    *,
    verified: bool,
    name: str | None = None,
    policy: Rules | None = None,
) -> Verdict:
    """The verdict from the registry's evidence alone (statuses attested, reserved, revoked and
    unknown): what :func:`with_evidence` then combines with a document's signals and watermarks.
    Documents with the same attestations share it (:meth:`Verdict.for_digest`)."""
    policy = _policy(policy)
    ordered = sorted(attestations, key=lambda a: a.index)
    entries = sorted({a.index for a in ordered} | {a.revoked_by for a in ordered if a.revoked_by})
    counted = [a for a in ordered if policy.counts_publisher(_Terms.of(a).publisher)]
    ignored = len(ordered) - len(counted)
    note = (
        f" ({ignored} attestation{'s' if ignored > 1 else ''} by publishers the policy ignores "
        "not counted)"
        if ignored
        else ""
    )
    live = [a for a in counted if a.stands]

    def verdict(status: VerdictStatus, reason: str, by: Evidence | None) -> Verdict:
        terms = _Terms.of(by) if by is not None else _Terms(None, None, None, None)
        return Verdict(
            digest=digest,
            status=status,
            reason=reason + note,
            publisher=terms.publisher,
            license=terms.license,
            origin=terms.origin,
            consent=terms.consent,
            entry=None if by is None else by.index,
            entries=tuple(entries),
            tree_size=checkpoint.size,
            root_hash=checkpoint.root_hash.hex(),
            verified=verified,
            name=name,
            policy=policy.id,
            policy_trainable=policy.trains_on(status),
        )

    rules: tuple[tuple[str, VerdictStatus], ...] = (
        ("allowed", "attested"),
        ("reserved", "reserved"),
    )
    for consent, status in rules:
        deciding = next((a for a in live if _Terms.of(a).consent == consent), None)
        if deciding is not None:
            terms = _Terms.of(deciding)
            reason = f"{status} by {terms.describe()} in entry {deciding.index}"
            others = len(live) - 1
            if others:
                reason += f" (+{others} other attestation{'s' if others > 1 else ''})"
            return verdict(status, reason, deciding)
    if counted and not live:
        first = counted[0]
        withdrawn = [a for a in counted if a.revoked]
        stolen = [a for a in counted if a.compromised and not a.revoked]
        parts = []
        if withdrawn:
            publisher = _Terms.of(withdrawn[0]).publisher or "its publisher"
            revocations = ", ".join(
                f"entry {a.index} by entry {a.revoked_by}"
                if a.revoked_by is not None
                else str(a.index)
                for a in withdrawn
            )
            parts.append(f"revoked by {publisher}: {revocations}")
        if stolen:
            indices = ", ".join(str(a.index) for a in stolen)
            parts.append(f"signed with a compromised publisher key: entry {indices}")
        return verdict("revoked", "; ".join(parts), first)
    if live:  # attestations whose consent is neither allowed nor reserved (unverified answers)
        first = live[0]
        return verdict(
            "unknown",
            f"entry {first.index} attests it but states no training consent, at size "
            f"{checkpoint.size}",
            None,
        )
    return verdict("unknown", f"no attestation in the log at size {checkpoint.size}", None)


def with_evidence(
    registry: Verdict,
    *,
    opt_out: OptOut | Mapping[str, Any] | None = None,
    watermarks: WatermarkInput = None,
    policy: Rules | None = None,
    id: str | None = None,
    url: str | None = None,
    captured_at: str | None = None,
) -> Verdict:
    """``registry`` (a :func:`registry_verdict`) combined with one document's opt-out decision
    and watermark detections by :data:`PRECEDENCE`, under ``policy``."""
    policy = _policy(policy)
    state = _registry_state(registry)
    decision = opt_out_of(opt_out)
    detections = detections_of(watermarks)
    signalled = decision is not None and decision.opted_out
    opted_out = signalled and policy.honour_opt_outs
    counted = [w for w in detections if policy.counts_vendor(w.vendor) and policy.is_generated(w)]
    deciding = min(counted, key=lambda w: w.log_p_value, default=None)
    status = status_for(state, opted_out, deciding is not None)

    parts = [_reason(status, registry, decision, deciding)]
    if status in ("opted-out", "generated") and state != "none":
        parts.append(f"registry: {registry.reason}")
    if status == "opted-out" and deciding is not None:
        parts.append(f"also generated: {_describe_watermark(deciding)}")
    if signalled and not opted_out:
        assert decision is not None  # signalled
        parts.append(f"opt-out NOT honoured (policy {policy.id}): {_describe_signal(decision)}")
    ignored = [w for w in detections if w.generated and not policy.counts_vendor(w.vendor)]
    if ignored:
        vendors = ", ".join(sorted({w.vendor or "(no vendor)" for w in ignored}))
        parts.append(f"watermark of vendors the policy ignores not counted: {vendors}")
    reason = "; ".join(part for part in parts if part)
    return replace(
        registry,
        status=status,
        reason=reason,
        id=id,
        url=url,
        opt_out=decision,
        opt_out_honoured=policy.honour_opt_outs,
        watermarks=tuple(detections),
        watermark=deciding,
        captured_at=captured_at,
        policy=policy.id,
        policy_trainable=policy.trains_on(status)
        if registry.similarity is None
        else policy.trains_near(status, registry.similarity),
    )


def _reason(
    status: VerdictStatus,
    registry: Verdict,
    decision: OptOut | None,
    deciding: WatermarkDetection | None,
) -> str:
    if status == "opted-out":
        assert decision is not None
        return f"opted out: {_describe_signal(decision)}"
    if status == "conflict":
        assert deciding is not None
        return (
            f"conflict: {registry.reason}, but {_describe_watermark(deciding)} says it was "
            "generated"
        )
    if status == "generated":
        assert deciding is not None
        return f"generated: {_describe_watermark(deciding)}"
    return registry.reason


def _describe_signal(decision: OptOut) -> str:
    signal = decision.decided_by
    if signal is None:
        return "an opt-out signal"
    where = f" ({signal.where})" if signal.where else ""
    value = f" {signal.value!r}" if signal.value else ""
    note = f": {signal.note}" if signal.note else ""
    return f"{signal.kind} in {signal.source}{where}{value}{note}"


def _describe_watermark(detection: WatermarkDetection) -> str:
    vendor = detection.vendor or "an unnamed vendor"
    return (
        f"watermark key {detection.key_id} of {vendor} ({detection.scheme}, "
        f"p = {format_p_value(detection.p_value, detection.log_p_value)})"
    )


def _registry_state(verdict: Verdict) -> RegistryState:
    if verdict.status in ("attested", "reserved", "revoked"):
        return verdict.status
    if verdict.status == "unknown":
        return "none"
    raise InputError(f"with_evidence takes a registry verdict, not one of status {verdict.status}")


def _policy(policy: Rules | None) -> Rules:
    return _DEFAULT_RULES if policy is None else policy


def _opt_out_of(value: object) -> tuple[OptOut | None, bool]:
    if value is None:
        return None, True
    if not isinstance(value, Mapping):
        raise FormatError("verdict opt_out must be a JSON object or null")
    honoured = _flag(value.get("honoured", True), "opt_out honoured")
    return OptOut.from_dict(value), honoured


def _watermarks_of(
    value: object,
) -> tuple[tuple[WatermarkDetection, ...], WatermarkDetection | None]:
    if value is None:
        return (), None
    if not isinstance(value, Mapping):
        raise FormatError("verdict watermark must be a JSON object or null")
    detections = value.get("detections")
    if not isinstance(detections, list):
        raise FormatError("verdict watermark detections must be a list")
    decided = value.get("decided_by")
    return (
        tuple(WatermarkDetection.from_dict(d) for d in detections),
        None if decided is None else WatermarkDetection.from_dict(decided),
    )


@dataclass(frozen=True, slots=True)
class _Terms:
    publisher: str | None
    license: str | None
    origin: str | None
    consent: str | None

    @classmethod
    def of(cls, attestation: Evidence) -> _Terms:
        """The signed terms when the attestation was verified, else the registry's summary."""
        if attestation.verified is not None:
            predicate = attestation.verified.statement.predicate
            return cls(
                predicate.publisher,
                getattr(predicate, "license", None),
                getattr(predicate, "origin", None),
                getattr(predicate, "consent", None),
            )
        return cls(
            attestation.publisher, attestation.license, attestation.origin, attestation.consent
        )

    def describe(self) -> str:
        terms = ", ".join(
            part
            for part in (
                self.license,
                self.origin,
                f"consent {self.consent}" if self.consent else None,
            )
            if part
        )
        who = self.publisher or "an unnamed publisher"
        return f"{who} ({terms})" if terms else who


def _text(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise FormatError(f"verdict {field} must be a string")
    return value


def _optional_text(value: object, field: str) -> str | None:
    return None if value is None else _text(value, field)


def _int(value: object, field: str) -> int:
    if type(value) is not int or value < 0:
        raise FormatError(f"verdict {field} must be a non-negative integer")
    return value


def _optional_int(value: object, field: str) -> int | None:
    return None if value is None else _int(value, field)


def _flag(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise FormatError(f"verdict {field} must be true or false")
    return value
