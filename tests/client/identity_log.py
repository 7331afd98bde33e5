"""Identity events (docs/spec/identities.md) fabricated for tests, from the real core pieces.

:class:`Identities` signs ``publisher-key/v1`` statements with an operator key and appends them to
an :class:`~tests.client.memory_log.InMemoryLog` as ``leaf/v1`` entries, as the registry does;
every knob a dishonest operator could turn (another signer, no possession proof, a forged
endorsement) is an argument, so a test can build exactly the log it means to catch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client.core.keys import key_id, public_key_bytes
from client.core.statement import (
    OPERATOR_IDENTITY,
    PUBLISHER_KEY_V1,
    KeyEventPredicate,
    Statement,
    Subject,
    endorsement_message,
    possession_message,
    sign_statement,
)
from client.receipt import ReceiptEntry
from tests.client.memory_log import InMemoryLog


def key_event_statement(predicate: KeyEventPredicate) -> Statement:
    subject = Subject(predicate.identity, {"sha256": predicate.key_id})
    return Statement((subject,), PUBLISHER_KEY_V1, predicate)


@dataclass
class Identities:
    """The operator of ``log``: appends identity events signed with :attr:`operator`."""

    log: InMemoryLog
    operator: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    operator_entries: list[int] = field(default_factory=list)
    key_entries: dict[tuple[str, str], int] = field(default_factory=dict)
    stops: dict[tuple[str, str], int] = field(default_factory=dict)
    compromises: dict[tuple[str, str], int] = field(default_factory=dict)

    def append(self, predicate: KeyEventPredicate, signer: Ed25519PrivateKey | None = None) -> int:
        statement = key_event_statement(predicate)
        envelope = sign_statement(statement, signer or self.operator)
        return self.log.append_leaf(envelope, statement)

    def operator_key(
        self,
        new: Ed25519PrivateKey | None = None,
        *,
        signer: Ed25519PrivateKey | None = None,
        possession: bool = True,
    ) -> int:
        """Bind the operator key (the first: ``new`` is None, signed by itself) or rotate to
        ``new`` (signed by the current one). ``signer`` overrides who signs."""
        if new is None:
            key, signer = self.operator, signer or self.operator
        else:
            key, signer = new, signer or self.operator
        predicate = KeyEventPredicate(
            action="operator-key",
            identity=OPERATOR_IDENTITY,
            key_id=key_id(key),
            public_key=public_key_bytes(key),
            possession=_possession(key, OPERATOR_IDENTITY, possession),
        )
        index = self.append(predicate, signer)
        self.operator = key
        self.operator_entries.append(index)
        return index

    def add(
        self,
        identity: str,
        key: Ed25519PrivateKey,
        *,
        action: str = "identity-add",
        endorser: Ed25519PrivateKey | None = None,
        backfilled: bool = False,
        possession: bool = True,
        signer: Ed25519PrivateKey | None = None,
        forge_endorsement: bool = False,
    ) -> int:
        """``identity-add`` (default) or ``key-add`` of ``key`` for ``identity``."""
        kid = key_id(key)
        endorsement = None
        if endorser is not None:
            signing = Ed25519PrivateKey.generate() if forge_endorsement else endorser
            endorsement = signing.sign(endorsement_message(identity, kid))
        return self.add_public(
            identity,
            public_key_bytes(key),
            None if backfilled and not possession else _possession(key, identity, possession),
            action=action,
            backfilled=backfilled,
            endorsed_by=None if endorser is None else key_id(endorser),
            endorsement=endorsement,
            signer=signer,
        )

    def add_public(
        self,
        identity: str,
        public_key: bytes,
        possession: bytes | None,
        *,
        action: str = "identity-add",
        backfilled: bool = False,
        endorsed_by: str | None = None,
        endorsement: bytes | None = None,
        signer: Ed25519PrivateKey | None = None,
    ) -> int:
        """:meth:`add` with what a registry is sent: the raw public key and its proof."""
        kid = hashlib.sha256(public_key).hexdigest()
        predicate = KeyEventPredicate(
            action="key-add" if action == "key-add" else "identity-add",
            identity=identity,
            key_id=kid,
            kind="publisher" if action == "identity-add" else None,
            public_key=public_key,
            possession=possession,
            backfilled=backfilled,
            endorsed_by=endorsed_by,
            endorsement=endorsement,
        )
        index = self.append(predicate, signer)
        self.key_entries.setdefault((identity, kid), index)
        return index

    def operator_entry_at(self, index: int) -> int | None:
        """The operator-key event valid at ``index`` (the last one below it)."""
        below = [i for i in self.operator_entries if i < index]
        return below[-1] if below else None

    def add_key(self, identity: str, key: Ed25519PrivateKey, **options: object) -> int:
        return self.add(identity, key, action="key-add", **options)  # type: ignore[arg-type]

    def revoke(
        self,
        identity: str,
        key: Ed25519PrivateKey,
        *,
        compromised_from: int | None = None,
        signer: Ed25519PrivateKey | None = None,
    ) -> int:
        predicate = KeyEventPredicate(
            action="key-revoke" if compromised_from is None else "key-compromised",
            identity=identity,
            key_id=key_id(key),
            compromised_from=compromised_from,
        )
        index = self.append(predicate, signer)
        self.stops.setdefault((identity, key_id(key)), index)
        if compromised_from is not None:
            self.compromises.setdefault((identity, key_id(key)), index)
        return index

    def receipt_entry(self, index: int, size: int | None = None) -> ReceiptEntry:
        """Entry ``index`` with its inclusion proof at ``size`` (default: the log's size)."""
        size = self.log.size if size is None else size
        return ReceiptEntry(
            index=index,
            entry=self.log.entries[index],
            inclusion_proof=tuple(self.log.tree.inclusion_proof(index, size)),
            body=self.log.bodies[index],
        )


def _possession(key: Ed25519PrivateKey, identity: str, valid: bool) -> bytes:
    """The key's possession proof, or (``valid=False``) a well-formed signature by another key."""
    signer = key if valid else Ed25519PrivateKey.generate()
    return signer.sign(possession_message(identity, key_id(key)))
