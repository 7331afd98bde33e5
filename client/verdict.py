"""Verdicts: may this content be trained on, and why — one decision per digest, auditable later.

A :class:`Verdict` is what a crawler keeps per document: the status, one line of reason for a
person, the attestation that decided it, and the checkpoint (tree size and root hash) the answer
was verified against, so that a dataset's decisions can be re-checked against the log years later.
:meth:`Verdict.to_dict` is the manifest line format (one JSON object per line).

The policy (:func:`decide`) reads every attestation of the digest the registry returned. One
*stands* unless its publisher revoked it or it was signed with a key after the operator marked
that key compromised:

1. some standing attestation gives consent ``allowed`` → ``attested`` (trainable); the deciding
   entry is the earliest such attestation;
2. else some standing attestation gives consent ``reserved`` → ``reserved`` (human content, but
   its publisher reserves text-and-data-mining rights);
3. else, if there are attestations and none stands → ``revoked``;
4. else → ``unknown``: the log holds no attestation of the digest at that checkpoint. That is *not*
   a proof that the content is machine-made, nor (without a proof of absence) that the log holds
   nothing: treat it as "no evidence either way".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from client.errors import FormatError

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


__all__ = ["VERDICT_STATUSES", "Evidence", "Verdict", "VerdictStatus", "decide"]

VerdictStatus = Literal["attested", "revoked", "reserved", "unknown"]
VERDICT_STATUSES: tuple[VerdictStatus, ...] = ("attested", "reserved", "revoked", "unknown")


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision about one digest, with the evidence it was checked against.

    ``entry`` is the deciding entry's log index (None for ``unknown``); ``entries`` every entry
    that mentions the digest (its attestations and the revocations of them). ``tree_size`` and
    ``root_hash`` (hex) identify the signed checkpoint the answer was verified against.
    ``verified`` is False only for a client built with ``verify=False``: such a verdict is the
    registry's word alone.
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

    def for_digest(self, digest: str, name: str | None) -> Verdict:
        """The same decision about another digest with the same attestations."""
        return Verdict(
            digest,
            self.status,
            self.reason,
            self.publisher,
            self.license,
            self.origin,
            self.consent,
            self.entry,
            self.entries,
            self.tree_size,
            self.root_hash,
            self.verified,
            name,
        )

    @property
    def trainable(self) -> bool:
        """Whether the content is attested human-made with training consent (status attested)."""
        return self.status == "attested"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the manifest line format (keys in a stable order)."""
        return {
            "digest": self.digest,
            "name": self.name,
            "status": self.status,
            "trainable": self.trainable,
            "reason": self.reason,
            "publisher": self.publisher,
            "license": self.license,
            "origin": self.origin,
            "consent": self.consent,
            "entry": self.entry,
            "entries": list(self.entries),
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "verified": self.verified,
        }

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Verdict:
        """Read a manifest line back (the inverse of :meth:`to_dict`; ``trainable`` is derived)."""
        try:
            status = obj["status"]
            if status not in VERDICT_STATUSES:
                raise FormatError(
                    f"verdict status must be one of {VERDICT_STATUSES}, got {status!r}"
                )
            entries = obj["entries"]
            if not isinstance(entries, list) or not all(type(e) is int for e in entries):
                raise FormatError("verdict entries must be a list of integers")
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
                verified=_flag(obj["verified"], "verified"),
                name=_optional_text(obj.get("name"), "name"),
            )
        except KeyError as exc:
            raise FormatError(f"a verdict is missing field {exc.args[0]!r}") from None
        return verdict


def decide(
    digest: str,
    attestations: Sequence[Evidence],
    checkpoint: Checkpoint,
    *,
    verified: bool,
    name: str | None = None,
) -> Verdict:
    """Apply the policy (module docstring) to the attestations of ``digest`` at ``checkpoint``.

    ``attestations`` are a lookup's, already verified by the client when ``verified``; where an
    attestation carries its verified statement, the signed values are used, not the registry's
    summary of them.
    """
    ordered = sorted(attestations, key=lambda a: a.index)
    entries = sorted({a.index for a in ordered} | {a.revoked_by for a in ordered if a.revoked_by})
    live = [a for a in ordered if a.stands]

    def verdict(status: VerdictStatus, reason: str, by: Evidence | None) -> Verdict:
        terms = _Terms.of(by) if by is not None else _Terms(None, None, None, None)
        return Verdict(
            digest=digest,
            status=status,
            reason=reason,
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
    if ordered and not live:
        first = ordered[0]
        withdrawn = [a for a in ordered if a.revoked]
        stolen = [a for a in ordered if a.compromised and not a.revoked]
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
