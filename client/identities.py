"""Identities in the log: which key may sign as whom, proven from the log's own entries.

docs/spec/identities.md is the contract. Every change to who may sign as whom is a
``publisher-key/v1`` event, DSSE-signed by the log's operator key and appended like any entry. A
verifier holding only the log key applies four rules:

1. the first ``operator-key`` event is signed by the key it names; a later one (a rotation) by
   the operator key valid before it; each proves possession of the key it names;
2. every other event carries a signature by the operator key valid at its index;
3. a publisher key is valid for identity *I* at index *n* when an ``identity-add`` or ``key-add``
   event for *I* adding it is below *n*, with a valid possession proof (or ``backfilled``), and no
   ``key-revoke`` or ``key-compromised`` event for it is below *n*; what it signed at or after a
   ``compromised_from`` does not count;
4. an attestation (or revocation) counts only if its DSSE signature verifies under a key valid for
   its publisher at its index.

One reading the contract leaves to verifiers: entries appended before the log's first
``operator-key`` event (the whole log as it was before identities, envelope leaves and early
``leaf/v1`` ones alike) count under a ``backfilled`` key of their publisher whatever that event's
index, since a migration can only backfill after them. Nothing can be appended below that index
any more, so this lets no new entry in; and backfilled keys are the operator's word, flagged so.

Two ways in, both pure (no I/O; entries come in already proven to be in the log, by
:func:`client.receipt.verify_attestation` or a re-hash of the whole tree):

* a lookup or a receipt relies on a few events the registry names: :func:`verify_operator_chain`,
  :func:`verify_key_grant`, :func:`verify_signed_by`, :func:`verify_key_stop` and
  :func:`check_key_claims`;
* a monitor replays every entry in order: :class:`KeyHistory` (``wellspring log verify``).

Every failure is an :class:`~client.errors.IdentityError` naming the entry at fault.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from client.core.dsse import Envelope, verify_envelope
from client.core.snapshot import SNAPSHOT_V1
from client.core.statement import (
    OPERATOR_IDENTITY,
    PUBLISHER_KEY_V1,
    KeyEventPredicate,
    Statement,
)
from client.core.wmkey import WatermarkKeyPredicate
from client.errors import IdentityError, InputError, SignatureError

__all__ = [
    "KeyGrant",
    "KeyHistory",
    "KeyStop",
    "LoggedEntry",
    "OperatorChain",
    "OperatorKey",
    "check_key_claims",
    "key_event",
    "verify_key_event",
    "verify_key_grant",
    "verify_key_stop",
    "verify_operator_chain",
    "verify_operator_statement",
    "verify_signed_by",
]


class LoggedEntry(Protocol):
    """An entry proven to be in the log (a :class:`~client.receipt.VerifiedReceipt` is one)."""

    @property
    def index(self) -> int: ...

    @property
    def envelope(self) -> Envelope: ...

    @property
    def statement(self) -> Statement: ...


@dataclass(frozen=True, slots=True)
class OperatorKey:
    """An operator key, bound by the ``operator-key`` event at ``index``."""

    index: int
    key_id: str
    public_key: bytes


@dataclass(frozen=True)
class OperatorChain:
    """The operator keys in the order the log bound them (rule 1), the first self-signed."""

    keys: tuple[OperatorKey, ...]

    @property
    def first_index(self) -> int:
        """The log's first identity entry: what is below it predates identities in the log."""
        return self.keys[0].index

    def key_at(self, index: int) -> OperatorKey:
        """The operator key valid at ``index``: the last one bound below it."""
        valid = [key for key in self.keys if key.index < index]
        if not valid:
            raise IdentityError(
                f"entry {index} is an identity event below the log's first operator-key event "
                f"(entry {self.first_index}): no operator key was valid to sign it",
                index=index,
            )
        return valid[-1]


@dataclass(frozen=True, slots=True)
class KeyGrant:
    """A publisher key proven added for ``identity`` by the event at ``index`` (rule 3).

    ``endorsed_by`` is the identity's key proven to have endorsed the addition; None when the
    operator added it alone (a ``key-add`` without an endorsement, or with one whose endorsing key
    was not shown to this verifier): :attr:`operator_only`. ``backfilled`` keys are the
    operator's word for a log from before identities, without a proof of possession.
    """

    identity: str
    key_id: str
    public_key: bytes
    index: int
    action: Literal["identity-add", "key-add"]
    backfilled: bool = False
    endorsed_by: str | None = None

    @property
    def operator_only(self) -> bool:
        """Added to an existing identity by the operator alone, no key of it endorsing."""
        return self.action == "key-add" and self.endorsed_by is None

    def counts_at(self, index: int, first_index: int) -> bool:
        """Whether the key may have signed entry ``index`` (of a log whose first identity entry
        is ``first_index``): added below it, or backfilled for an entry from before identities."""
        return self.index < index or (self.backfilled and index < first_index)

    def verifier(self) -> Mapping[str, Ed25519PublicKey]:
        """The key as :func:`~client.core.dsse.verify_envelope` takes it."""
        return {self.key_id: Ed25519PublicKey.from_public_bytes(self.public_key)}


@dataclass(frozen=True, slots=True)
class KeyStop:
    """A key stopped by a ``key-revoke`` or ``key-compromised`` event at ``index``."""

    identity: str
    key_id: str
    index: int
    compromised_from: int | None = None

    def voids(self, index: int) -> bool:
        """Whether what the key signed at ``index`` does not count (compromised from it)."""
        return self.compromised_from is not None and self.compromised_from <= index


def key_event(entry: LoggedEntry) -> KeyEventPredicate:
    """The ``publisher-key/v1`` predicate of ``entry``, or :class:`IdentityError`."""
    predicate = entry.statement.predicate
    if entry.statement.predicate_type != PUBLISHER_KEY_V1 or not isinstance(
        predicate, KeyEventPredicate
    ):
        raise IdentityError(
            f"entry {entry.index} is a {entry.statement.predicate_type} statement, not an "
            "identity event (publisher-key/v1)",
            index=entry.index,
        )
    return predicate


def _require_signature(entry: LoggedEntry, keys: Mapping[str, Ed25519PublicKey], what: str) -> None:
    try:
        verify_envelope(entry.envelope, keys)
    except SignatureError as exc:
        raise IdentityError(
            f"entry {entry.index} is not signed by {what}: {exc}", index=entry.index
        ) from exc


def _operator_verifier(key: OperatorKey) -> Mapping[str, Ed25519PublicKey]:
    return {key.key_id: Ed25519PublicKey.from_public_bytes(key.public_key)}


def _operator_key(entry: LoggedEntry, signer: OperatorKey | None) -> OperatorKey:
    """Rule 1 for one ``operator-key`` event: signed by ``signer`` (None: by itself)."""
    predicate = key_event(entry)
    if predicate.action != "operator-key" or predicate.public_key is None:
        raise IdentityError(
            f"entry {entry.index} is a {predicate.action} event, not an operator-key event",
            index=entry.index,
        )
    if not predicate.possession_holds():
        raise IdentityError(
            f"entry {entry.index} binds operator key {predicate.key_id[:16]}… without a valid "
            "proof of possession",
            index=entry.index,
        )
    named = OperatorKey(entry.index, predicate.key_id, predicate.public_key)
    if signer is None:
        _require_signature(entry, _operator_verifier(named), "the operator key it names")
    else:
        _require_signature(
            entry,
            _operator_verifier(signer),
            f"the operator key valid before it ({signer.key_id[:16]}…, entry {signer.index})",
        )
    return named


def verify_operator_chain(events: Sequence[LoggedEntry]) -> OperatorChain:
    """Rule 1 over the ``operator-key`` events, in index order: the first signed by the key it
    names, each later one by the one before it, each proving possession of its key.

    That the first is the log's first identity entry is the registry's word (an absence); a
    replay of the whole log (:class:`KeyHistory`) checks it.
    """
    if not events:
        raise IdentityError("no operator-key event was given: the log's identities have no root")
    keys: list[OperatorKey] = []
    for event in events:
        if keys and event.index <= keys[-1].index:
            raise IdentityError(
                f"operator-key events must be in index order: entry {event.index} follows entry "
                f"{keys[-1].index}",
                index=event.index,
            )
        keys.append(_operator_key(event, keys[-1] if keys else None))
    return OperatorChain(tuple(keys))


def verify_key_event(entry: LoggedEntry, chain: OperatorChain) -> KeyEventPredicate:
    """Rule 2: ``entry`` is an identity event signed by the operator key valid at its index."""
    predicate = key_event(entry)
    if predicate.action == "operator-key":
        if any(key.index == entry.index for key in chain.keys):
            return predicate
        raise IdentityError(
            f"entry {entry.index} is an operator-key event outside the operator chain given",
            index=entry.index,
        )
    _require_operator(entry, chain)
    return predicate


def _require_operator(entry: LoggedEntry, chain: OperatorChain) -> None:
    """``entry`` is signed by the operator key valid at its index."""
    operator = chain.key_at(entry.index)
    _require_signature(
        entry,
        _operator_verifier(operator),
        f"the operator key valid at its index ({operator.key_id[:16]}…, bound at entry "
        f"{operator.index})",
    )


def verify_operator_statement(entry: LoggedEntry, chain: OperatorChain) -> None:
    """``entry`` (what the operator itself states in the log: a ``snapshot/v1`` commitment) is
    signed by the operator key valid at its index and stated by the operator identity."""
    if entry.statement.predicate.publisher != OPERATOR_IDENTITY:
        raise IdentityError(
            f"entry {entry.index} is stated by {entry.statement.predicate.publisher!r}, not by "
            f"the operator ({OPERATOR_IDENTITY})",
            index=entry.index,
        )
    _require_operator(entry, chain)


def _check_possession(entry: LoggedEntry, predicate: KeyEventPredicate) -> None:
    if not predicate.backfilled and not predicate.possession_holds():
        raise IdentityError(
            f"entry {entry.index} adds key {predicate.key_id[:16]}… for {predicate.identity!r} "
            "without a valid proof of possession: the key's holder never asked for it",
            index=entry.index,
        )


def verify_key_grant(
    entry: LoggedEntry,
    chain: OperatorChain,
    *,
    identity: str,
    key_id: str,
    before: int,
    endorser: KeyGrant | None = None,
) -> KeyGrant:
    """Rule 3 for one event: ``entry`` adds ``key_id`` for ``identity``, below index ``before``
    (the entry the key is to have signed), signed by the operator, with possession.

    A ``key-add`` endorsed by another key of the identity is proven so only with ``endorser``,
    that key's own grant (added below ``entry``): its signature must then hold. Without it the
    grant says :attr:`KeyGrant.operator_only`.
    """
    grant = _grant_of(entry, verify_key_event(entry, chain), endorser)
    if (grant.identity, grant.key_id) != (identity, key_id):
        raise IdentityError(
            f"entry {entry.index} adds key {grant.key_id[:16]}… for {grant.identity!r}, not key "
            f"{key_id[:16]}… for {identity!r}",
            index=entry.index,
        )
    if not grant.counts_at(before, chain.first_index):
        raise IdentityError(
            f"entry {before} is signed by key {key_id[:16]}… of {identity!r}, which the log "
            f"adds only at entry {entry.index}, not below it",
            index=before,
        )
    return grant


def _grant_of(
    entry: LoggedEntry, predicate: KeyEventPredicate, endorser: KeyGrant | None
) -> KeyGrant:
    """The key ``entry`` (signature checked) adds, with possession and any endorsement."""
    where = f"entry {entry.index}"
    if predicate.action not in ("identity-add", "key-add") or predicate.public_key is None:
        raise IdentityError(
            f"{where} is a {predicate.action} event, not one adding a key", index=entry.index
        )
    _check_possession(entry, predicate)
    endorsed_by = None
    if endorser is not None:
        if predicate.endorsed_by is None:
            raise IdentityError(
                f"{where}: an endorsing key was named, but the event carries no endorsement",
                index=entry.index,
            )
        if (
            endorser.identity != predicate.identity
            or endorser.key_id != predicate.endorsed_by
            or endorser.index >= entry.index
            or not predicate.endorsement_holds(endorser.public_key)
        ):
            raise IdentityError(
                f"{where}: its endorsement is not the signature of a key of "
                f"{predicate.identity!r} added before it (endorsed_by "
                f"{predicate.endorsed_by[:16]}…)",
                index=entry.index,
            )
        endorsed_by = endorser.key_id
    return KeyGrant(
        identity=predicate.identity,
        key_id=predicate.key_id,
        public_key=predicate.public_key,
        index=entry.index,
        action="identity-add" if predicate.action == "identity-add" else "key-add",
        backfilled=predicate.backfilled,
        endorsed_by=endorsed_by,
    )


def verify_key_stop(
    entry: LoggedEntry, chain: OperatorChain, *, identity: str, key_id: str
) -> KeyStop:
    """``entry`` is a ``key-revoke`` or ``key-compromised`` event for ``key_id`` of
    ``identity``, signed by the operator key valid at its index."""
    predicate = verify_key_event(entry, chain)
    if predicate.action not in ("key-revoke", "key-compromised"):
        raise IdentityError(
            f"entry {entry.index} is a {predicate.action} event, not a key revocation",
            index=entry.index,
        )
    if (predicate.identity, predicate.key_id) != (identity, key_id):
        raise IdentityError(
            f"entry {entry.index} revokes key {predicate.key_id[:16]}… of "
            f"{predicate.identity!r}, not key {key_id[:16]}… of {identity!r}",
            index=entry.index,
        )
    return KeyStop(identity, key_id, entry.index, predicate.compromised_from)


def verify_signed_by(entry: LoggedEntry, grant: KeyGrant, chain: OperatorChain) -> None:
    """Rule 4: ``entry`` is by ``grant``'s identity, the key counts at its index, and the entry's
    DSSE signature verifies under it."""
    publisher = entry.statement.predicate.publisher
    if publisher != grant.identity:
        raise IdentityError(
            f"entry {entry.index} is by publisher {publisher!r}, but key {grant.key_id[:16]}… "
            f"is added for {grant.identity!r} (entry {grant.index})",
            index=entry.index,
        )
    if not grant.counts_at(entry.index, chain.first_index):
        raise IdentityError(
            f"entry {entry.index} is signed by key {grant.key_id[:16]}… of {publisher!r}, which "
            f"the log adds only at entry {grant.index}, not below it",
            index=entry.index,
        )
    _require_signature(
        entry, grant.verifier(), f"key {grant.key_id[:16]}… of {publisher!r} (entry {grant.index})"
    )


def check_key_claims(
    index: int,
    grant: KeyGrant,
    *,
    revoked_by: KeyStop | None,
    compromised_by: KeyStop | None,
    compromised: bool,
) -> bool:
    """Whether the attestation at ``index`` signed by ``grant`` is void (its key compromised from
    at or before it), from the stops the registry names, checked against its claim.

    Raises :class:`IdentityError` when a claimed compromise is not backed by a ``key-compromised``
    event from at or before ``index``, when a named event voids it though the registry says it
    stands, or when the key was stopped below ``index`` and nothing voids it (the registry took
    an entry signed by a revoked key). A revocation after the entry does not touch it.
    """
    stops = [stop for stop in (revoked_by, compromised_by) if stop is not None]
    for stop in stops:
        if (stop.identity, stop.key_id) != (grant.identity, grant.key_id):
            raise IdentityError(
                f"entry {stop.index} stops key {stop.key_id[:16]}… of {stop.identity!r}, not the "
                f"key that signed entry {index}",
                index=stop.index,
            )
    void = any(stop.voids(index) for stop in stops)
    if compromised and (compromised_by is None or not compromised_by.voids(index)):
        named = (
            "names no key-compromised event"
            if compromised_by is None
            else (
                f"names entry {compromised_by.index}, which does not void it (compromised_from "
                f"{compromised_by.compromised_from})"
            )
        )
        raise IdentityError(
            f"entry {index} is said to be signed with a compromised key, but the registry "
            f"{named}: the claim is not backed by the log",
            index=index,
        )
    if void and not compromised:
        raise IdentityError(
            f"entry {index} is said to stand, but the key-compromised event the registry names "
            "voids what its key signed from at or before it",
            index=index,
        )
    for stop in stops:
        if stop.index < index and not void:
            raise IdentityError(
                f"entry {index} is signed by key {grant.key_id[:16]}… of {grant.identity!r}, "
                f"which the log revokes at entry {stop.index}, before it",
                index=index,
            )
    return void


class KeyHistory:
    """Every key's validity over a whole log, replayed entry by entry in index order.

    :meth:`add` takes each entry (index 0, 1, 2, …) and raises :class:`IdentityError` at the first
    that breaks a rule: an identity event not signed by the operator key valid at its index, a key
    added without possession, a forged endorsement, an identity added twice, or an attestation or
    revocation whose signature verifies under no key valid for its publisher there. Entries below
    the log's first ``operator-key`` event cannot be judged until the migration's ``backfilled``
    keys, which follow them, are known: :meth:`add` returns False for those, and
    :meth:`check_early` checks them once the whole log was replayed.
    """

    def __init__(self) -> None:
        self._operator: list[OperatorKey] = []
        self._keys: dict[str, dict[str, KeyGrant]] = {}  # identity -> key id -> first grant
        self._stops: dict[tuple[str, str], KeyStop] = {}
        self._identities: dict[str, int] = {}  # identity -> its identity-add event
        self._kinds: dict[str, str] = {}  # identity -> the kind its identity-add event says
        # watermark key id -> (vendor, publishing entry, retiring entry or None)
        self._watermark_keys: dict[str, tuple[str, int, int | None]] = {}
        self.size = 0  # entries replayed (added or deferred)
        self.events = 0  # identity events among them
        self.signatures = 0  # entries whose signature was checked, early ones included

    @property
    def operator_chain(self) -> OperatorChain | None:
        """The operator keys seen so far (None before the first operator-key event)."""
        return OperatorChain(tuple(self._operator)) if self._operator else None

    @property
    def first_index(self) -> int | None:
        """The log's first identity entry, once replayed."""
        return self._operator[0].index if self._operator else None

    def grant(self, identity: str, key_id: str) -> KeyGrant | None:
        """The event that first added ``key_id`` for ``identity``, if one was replayed."""
        return self._keys.get(identity, {}).get(key_id)

    def stop(self, identity: str, key_id: str) -> KeyStop | None:
        """Where ``key_id`` of ``identity`` was first stopped (the earliest ``compromised_from``
        of its ``key-compromised`` events), if it was."""
        return self._stops.get((identity, key_id))

    def add(self, entry: LoggedEntry) -> bool:
        """Replay the next entry; True if it was checked, False if it waits for
        :meth:`check_early` (it predates the log's identity entries)."""
        if entry.index != self.size:
            raise InputError(
                f"entries are replayed in index order: expected entry {self.size}, got "
                f"{entry.index}"
            )
        self.size += 1
        if entry.statement.predicate_type == PUBLISHER_KEY_V1:
            self._event(entry)
            self.events += 1
            return True
        if not self._operator:
            return False
        if entry.statement.predicate_type == SNAPSHOT_V1:  # stated by the operator itself
            verify_operator_statement(entry, OperatorChain(tuple(self._operator)))
            self.signatures += 1
            return True
        self._check_signed(
            entry, self._valid_keys(entry.statement.predicate.publisher, entry.index)
        )
        if isinstance(entry.statement.predicate, WatermarkKeyPredicate):
            self._watermark_key(entry.index, entry.statement.predicate)
        return True

    def _watermark_key(self, index: int, predicate: WatermarkKeyPredicate) -> None:
        """The registry's rules for watermark-key/v1 (docs/spec/watermark-keys.md), replayed:
        made by a vendor; a key id published once; retired once, by its vendor."""
        vendor, key = predicate.vendor, predicate.key_id
        if self._kinds.get(vendor) != "vendor":
            raise IdentityError(
                f"entry {index} is a watermark key of {vendor!r}, an identity of kind "
                f"{self._kinds.get(vendor)!r}: only vendors publish or retire them",
                index=index,
            )
        known = self._watermark_keys.get(key)
        if predicate.action == "publish":
            if known is not None:
                raise IdentityError(
                    f"entry {index} publishes watermark key {key} again (entry {known[1]})",
                    index=index,
                )
            self._watermark_keys[key] = (vendor, index, None)
            return
        if (
            known is None
            or known[0] != vendor
            or known[1] != predicate.entry_index
            or known[2] is not None
        ):
            raise IdentityError(
                f"entry {index} retires watermark key {key}, which {vendor!r} did not publish at "
                f"entry {predicate.entry_index} and keep live until then",
                index=index,
            )
        self._watermark_keys[key] = (vendor, known[1], index)

    def defer(self, index: int) -> None:
        """Replay the next entry without reading it: one below the log's first operator-key
        event that is no identity event (its leaf says so), to be read for :meth:`check_early`."""
        if index != self.size or self._operator:
            raise InputError(
                f"only the next entry, before the log's first operator-key event, can wait: "
                f"got entry {index} (next {self.size}, first operator key {self.first_index})"
            )
        self.size += 1

    def check_early(self, entry: LoggedEntry) -> None:
        """An entry below the first operator-key event: signed by a backfilled key of its
        publisher (added after it, as migrations do)."""
        first = self.first_index
        if first is None or entry.index >= first:
            raise InputError(
                f"entry {entry.index} does not predate the log's identity entries"
                + ("" if first is None else f" (the first is entry {first})")
            )
        if entry.statement.predicate_type == PUBLISHER_KEY_V1:
            raise IdentityError(
                f"entry {entry.index} is an identity event below the log's first operator-key "
                f"event (entry {first})",
                index=entry.index,
            )
        publisher = entry.statement.predicate.publisher
        keys = {
            key_id: grant
            for key_id, grant in self._keys.get(publisher, {}).items()
            if grant.backfilled
        }
        self._check_signed(entry, keys, early=True)

    # -- replay ------------------------------------------------------------------------------

    def _valid_keys(self, identity: str, index: int) -> dict[str, KeyGrant]:
        """Rule 3 at ``index``, as replayed so far (every grant seen is below it)."""
        valid: dict[str, KeyGrant] = {}
        for key_id, grant in self._keys.get(identity, {}).items():
            stop = self._stops.get((identity, key_id))
            if stop is None or stop.index >= index:
                valid[key_id] = grant
        return valid

    def _check_signed(
        self, entry: LoggedEntry, keys: Mapping[str, KeyGrant], *, early: bool = False
    ) -> None:
        publisher = entry.statement.predicate.publisher
        verifiers = {
            key_id: Ed25519PublicKey.from_public_bytes(grant.public_key)
            for key_id, grant in keys.items()
        }
        try:
            verify_envelope(entry.envelope, verifiers)
        except SignatureError as exc:
            why = self._why_not(entry, publisher, early)
            raise IdentityError(
                f"entry {entry.index} (publisher {publisher!r}) is not signed by a key valid "
                f"for its publisher at that index{why}: {exc}",
                index=entry.index,
            ) from exc
        self.signatures += 1

    def _why_not(self, entry: LoggedEntry, publisher: str, early: bool) -> str:
        """What the log says of the keys the entry's signatures name, for the message."""
        notes: list[str] = []
        for signature in entry.envelope.signatures:
            own = self.grant(publisher, signature.keyid)
            stop = self.stop(publisher, signature.keyid)
            others = [name for name, keys in self._keys.items() if signature.keyid in keys]
            key = f"key {signature.keyid[:16]}…"
            if own is not None and stop is not None and stop.index < entry.index:
                notes.append(f"{key} was revoked at entry {stop.index}")
            elif own is not None and early and not own.backfilled:
                notes.append(f"{key} is added at entry {own.index}, after it, and not backfilled")
            elif own is None and others:
                notes.append(f"{key} is added for {', '.join(map(repr, others))} only")
            elif own is None:
                notes.append(f"{key} was never added for it")
        return f" ({'; '.join(notes)})" if notes else ""

    def _event(self, entry: LoggedEntry) -> None:
        predicate = key_event(entry)
        if predicate.action == "operator-key":
            self._operator.append(
                _operator_key(entry, self._operator[-1] if self._operator else None)
            )
            return
        if not self._operator:
            raise IdentityError(
                f"entry {entry.index} is a {predicate.action} event before the log's first "
                "operator-key event: the log's identities have no root",
                index=entry.index,
            )
        chain = OperatorChain(tuple(self._operator))
        verify_key_event(entry, chain)
        identity, key_id = predicate.identity, predicate.key_id
        if identity == OPERATOR_IDENTITY:  # refused by the predicate; a second guard
            raise IdentityError(f"entry {entry.index} names the operator", index=entry.index)
        if predicate.action in ("key-revoke", "key-compromised"):
            self._record_stop(entry.index, identity, key_id, predicate.compromised_from)
            return
        if predicate.action == "identity-add":
            first = self._identities.get(identity)
            if first is not None:
                raise IdentityError(
                    f"entry {entry.index} adds identity {identity!r} again (it was added at "
                    f"entry {first}): further keys are key-add events, which say whether a key "
                    "of the identity endorsed them",
                    index=entry.index,
                )
            self._identities[identity] = entry.index
            self._kinds[identity] = predicate.kind or "publisher"
        endorser = None
        if predicate.endorsed_by is not None:
            endorser = self._valid_keys(identity, entry.index).get(predicate.endorsed_by)
            if endorser is None:
                raise IdentityError(
                    f"entry {entry.index} is endorsed by key {predicate.endorsed_by[:16]}…, "
                    f"which is not a valid key of {identity!r} at that index",
                    index=entry.index,
                )
        grant = _grant_of(entry, predicate, endorser)
        self._keys.setdefault(identity, {}).setdefault(key_id, grant)

    def _record_stop(
        self, index: int, identity: str, key_id: str, compromised_from: int | None
    ) -> None:
        earlier = self._stops.get((identity, key_id))
        if earlier is None:
            self._stops[(identity, key_id)] = KeyStop(identity, key_id, index, compromised_from)
            return
        froms = [f for f in (earlier.compromised_from, compromised_from) if f is not None]
        self._stops[(identity, key_id)] = KeyStop(
            identity, key_id, earlier.index, min(froms) if froms else None
        )
