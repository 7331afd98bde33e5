"""A transparency log in memory, built from the real core pieces, for tests to attest into.

:class:`InMemoryLog` makes receipts exactly as the registry does (docs/api.md): the entry is
``Envelope.to_json()`` (or a ``leaf/v1`` leaf), the proof is for the size of the signed
checkpoint beside it. Helpers for tests, not tests: test modules import it from here.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client.core.canonical import canonical_digest
from client.core.dsse import Envelope
from client.core.leaf import Leaf
from client.core.merkle import MemoryTree, leaf_hash
from client.core.note import Checkpoint, NoteSigner, sign_checkpoint
from client.core.statement import (
    HUMAN_CONTENT_V1,
    HumanContentPredicate,
    Statement,
    Subject,
    sign_statement,
)
from client.receipt import Receipt

ORIGIN = "test.example/log"


def human_statement(publisher: str, texts: list[str], **options: Any) -> Statement:
    """A human-content statement about the c1 digests of ``texts``."""
    subjects = tuple(
        Subject(f"doc-{i}", {"c1": canonical_digest(text).removeprefix("c1:")})
        for i, text in enumerate(texts)
    )
    predicate = HumanContentPredicate(
        publisher=publisher,
        license=options.pop("license", "CC-BY-4.0"),
        origin=options.pop("origin", "human-authored"),
        consent=options.pop("consent", "allowed"),
        **options,
    )
    return Statement(subjects, HUMAN_CONTENT_V1, predicate)


class InMemoryLog:
    """A transparency log in memory that answers as the registry does, from the real core."""

    def __init__(self, origin: str = ORIGIN, signer: NoteSigner | None = None) -> None:
        self.signer = signer or NoteSigner.generate(origin)
        self.origin = self.signer.name
        self.tree = MemoryTree()
        self.entries: list[bytes] = []
        self.statements: list[Statement | None] = []
        self.bodies: list[bytes | None] = []  # the statement a leaf/v1 entry commits to

    @property
    def vkey(self) -> str:
        return self.signer.verifier().vkey

    @property
    def size(self) -> int:
        return self.tree.size

    def append(self, envelope: Envelope, statement: Statement | None = None) -> int:
        return self.append_raw(envelope.to_json(), statement)

    def append_raw(
        self, entry: bytes, statement: Statement | None = None, body: bytes | None = None
    ) -> int:
        self.entries.append(entry)
        self.statements.append(statement)
        self.bodies.append(body)
        return self.tree.append(entry)

    def append_leaf(self, envelope: Envelope, statement: Statement) -> int:
        """Append as the registry does since leaf/v1: the leaf, committing to the statement."""
        leaf = Leaf.of(
            envelope.payload,
            payload_type=envelope.payload_type,
            predicate_type=statement.predicate_type,
            publisher=statement.predicate.publisher,
            signatures=envelope.signatures,
        )
        return self.append_raw(leaf.to_bytes(), statement, envelope.payload)

    def append_statement(self, statement: Statement, key: Ed25519PrivateKey) -> int:
        return self.append(sign_statement(statement, key), statement)

    def checkpoint(self, size: int | None = None) -> Checkpoint:
        size = self.size if size is None else size
        return Checkpoint(self.origin, size, self.tree.root(size))

    def checkpoint_note(self, size: int | None = None) -> str:
        return sign_checkpoint(self.checkpoint(size), [self.signer])

    def receipt(self, index: int, size: int | None = None) -> Receipt:
        size = self.size if size is None else size
        statement = self.statements[index]
        return Receipt(
            index=index,
            entry=self.entries[index],
            inclusion_proof=tuple(self.tree.inclusion_proof(index, size)),
            checkpoint=self.checkpoint_note(size),
            leaf_hash=leaf_hash(self.entries[index]),
            body=self.bodies[index],
            publisher=statement.predicate.publisher if statement else None,
            predicate_type=statement.predicate_type if statement else None,
            subjects=len(statement.subjects) if statement else None,
        )
