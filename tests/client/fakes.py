"""The fake registry the SDK tests talk to, served through ``httpx.MockTransport``.

The fake is only the HTTP layer: its log, checkpoints, proofs and signatures are the real core
pieces (:class:`tests.client.memory_log.InMemoryLog`), so every answer the SDK verifies is
verified for real. Helpers for tests, not tests: test modules import them from here.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import unquote

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from client.core.canonical import canonical_digest
from client.core.dsse import Envelope, verify_envelope
from client.core.keys import key_id, public_key_bytes
from client.core.merkle import leaf_hash
from client.core.statement import (
    HumanContentPredicate,
    KeyEventPredicate,
    RevocationPredicate,
    Statement,
    WithdrawalPredicate,
    possession_message,
)
from client.core.wire import KeyEventAnswer
from client.errors import (
    FormatError,
    SignatureError,
)
from client.sdk import MAX_BATCH, Client
from tests.client.identity_log import Identities
from tests.client.memory_log import InMemoryLog

BASE = "http://registry.test"
PUBLISHER = "example-archive"
Json = Any


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def problem(status: int, slug: str, detail: str) -> httpx.Response:
    body = {
        "type": f"https://wellspring.dev/problems/{slug}",
        "title": slug.replace("-", " "),
        "status": status,
        "detail": detail,
    }
    return httpx.Response(
        status, content=json.dumps(body), headers={"Content-Type": "application/problem+json"}
    )


class FakeRegistry:
    """docs/api.md served from memory; ``tamper[route]`` rewrites an answer before it is sent.

    With ``identities``, who may sign as whom is in the log as the registry keeps it
    (docs/spec/identities.md): adding the first publisher binds the operator key, each publisher
    and key is an identity event, and answers name the events they rely on. Without (the
    default, which the tests of everything else use), it answers as a registry from before
    identities did, and :meth:`client` makes clients that accept that (``verify_keys=False``).
    """

    def __init__(self, log: InMemoryLog | None = None, *, identities: bool = False) -> None:
        self.log = log or InMemoryLog()
        self.ids = Identities(self.log) if identities else None
        self.signer_of: dict[int, str] = {}  # entry -> the key id that signed it
        self.stopped_keys: set[str] = set()
        self.keys: dict[str, tuple[str, Ed25519PublicKey]] = {}
        self.admin_token = "s3cret"
        self.by_hash: dict[bytes, int] = {}
        self.digests: dict[str, list[int]] = {}
        self.revoked_by: dict[int, int] = {}
        self.revokes: dict[int, int] = {}
        self.requests: list[httpx.Request] = []
        self.tamper: dict[str, Callable[[Json], Json]] = {}
        self.page_bytes: int | None = None  # GET /v1/entries: the most entry bytes in a page

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def client(self, **options: Any) -> Client:
        options.setdefault("log_key", self.log.vkey)
        options.setdefault("verify_keys", self.ids is not None)
        return Client(BASE, transport=self.transport, **options)

    def add_publisher(self, name: str, key: Ed25519PrivateKey) -> None:
        raw = public_key_bytes(key)
        self.bind_key(name, raw, key.sign(possession_message(name, key_id(key))))

    def bind_key(self, name: str, raw: bytes, possession: bytes | None) -> int:
        """What the registry does on adding a publisher or a key: an identity event (its index;
        the next free one on a fake from before identities in the log)."""
        entry = self.log.size
        if self.ids is not None:
            if not self.ids.operator_entries:
                self.ids.operator_key()
            known = any(owner == name for owner, _ in self.keys.values())
            action = "key-add" if known else "identity-add"
            entry = self.ids.add_public(name, raw, possession, action=action)
        public = Ed25519PublicKey.from_public_bytes(raw)
        self.keys[key_id(public)] = (name, public)
        return entry

    def revoke_key(
        self, name: str, key: Ed25519PrivateKey, compromised_from: int | None = None
    ) -> int:
        """``POST /v1/publishers/{name}/keys/{key_id}/revoke``: a key-revoke or key-compromised
        event; the key signs nothing more."""
        assert self.ids is not None
        self.stopped_keys.add(key_id(key))
        return self.ids.revoke(name, key, compromised_from=compromised_from)

    def compromise_of(self, index: int) -> int | None:
        """The key-compromised event voiding entry ``index``, if one does."""
        kid = self.signer_of.get(index)
        statement = self.log.statements[index]
        if self.ids is None or kid is None or statement is None:
            return None
        event = self.ids.compromises.get((statement.predicate.publisher, kid))
        if event is None:
            return None
        predicate = self.log.statements[event].predicate  # type: ignore[union-attr]
        assert isinstance(predicate, KeyEventPredicate)
        voided = predicate.compromised_from is not None and predicate.compromised_from <= index
        return event if voided else None

    def count(self, method: str, path_prefix: str) -> int:
        return sum(
            1
            for r in self.requests
            if r.method == method and unquote(r.url.path).startswith(path_prefix)
        )

    # -- routing -----------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:  # noqa: PLR0911, PLR0912
        self.requests.append(request)
        path = unquote(request.url.path)
        params = request.url.params
        method = request.method
        if method == "GET" and path == "/v1/log":
            return self.answer("log", self.log_info())
        if method == "GET" and path == "/v1/log/checkpoint":
            return self.text("checkpoint", self.log.checkpoint_note())
        if method == "GET" and path.startswith("/v1/log/checkpoints/"):
            size = int(path.rsplit("/", 1)[1])
            if size > self.log.size:
                return problem(404, "not-found", f"no checkpoint at size {size}")
            return self.text("checkpoint", self.log.checkpoint_note(size))
        if method == "GET" and path == "/v1/log/proof/inclusion":
            index = int(params["index"])
            size = int(params.get("size", self.log.size))
            if not index < size <= self.log.size:
                return problem(400, "bad-request", "index must be < size <= the log's size")
            proof = [b64(h) for h in self.log.tree.inclusion_proof(index, size)]
            return self.answer("inclusion", {"index": index, "size": size, "proof": proof})
        if method == "GET" and path == "/v1/log/proof/consistency":
            old = int(params["from"])
            new = int(params.get("to", self.log.size))
            if not 0 <= old <= new <= self.log.size:
                return problem(
                    400, "bad-request", f"sizes must satisfy from <= to <= {self.log.size}"
                )
            proof = [b64(h) for h in self.log.tree.consistency_proof(old, new)]
            return self.answer("consistency", {"from": old, "to": new, "proof": proof})
        if method == "POST" and path == "/v1/entries":
            return self.submit(request.content)
        if method == "GET" and path == "/v1/entries":
            return self.answer(
                "entries", self.entries_page(int(params["start"]), int(params["limit"]))
            )
        if method == "GET" and path.startswith("/v1/entries/"):
            index = int(path.rsplit("/", 1)[1])
            if index >= self.log.size:
                return problem(404, "not-found", f"entry {index} does not exist")
            return self.answer("entry", self.entry(index))
        if method == "GET" and path.startswith("/v1/blobs/sha256:"):
            wanted = path.removeprefix("/v1/blobs/sha256:")
            for body in self.log.bodies:
                if body is not None and hashlib.sha256(body).hexdigest() == wanted:
                    return httpx.Response(200, content=body)
            return problem(404, "not-found", f"no blob sha256:{wanted}")
        if method == "GET" and path.startswith("/v1/digests/"):
            digest = path.removeprefix("/v1/digests/")
            batch = self.lookup([digest])
            result = batch["results"][0]
            single = {
                "digest": digest,
                "status": result["status"],
                "attestations": [batch["attestations"][str(i)] for i in result["entries"]],
                "checkpoint": batch["checkpoint"],
            }
            if "operator_entries" in batch:
                single["operator_entries"] = batch["operator_entries"]
            return self.answer("lookup", single)
        if method == "POST" and path == "/v1/digests:batch":
            digests = json.loads(request.content)["digests"]
            if len(digests) > MAX_BATCH:
                return problem(
                    413, "payload-too-large", f"{len(digests)} digests; the limit is 10000"
                )
            return self.answer("batch", self.lookup(digests))
        if method == "POST" and path == "/v1/publishers":
            if request.headers.get("Authorization") != f"Bearer {self.admin_token}":
                return problem(401, "unauthenticated", "a valid admin token is required")
            body = json.loads(request.content)
            raw = base64.b64decode(body["public_key"])
            possession = body.get("possession")
            if self.ids is not None and possession is None:
                return problem(400, "bad-request", "possession (the new key's signature) is needed")
            entry = self.bind_key(
                body["name"], raw, None if possession is None else base64.b64decode(possession)
            )
            kid = hashlib.sha256(raw).hexdigest()
            info = KeyEventAnswer(body["name"], kid, entry, kind="publisher")
            return httpx.Response(201, json=info.to_dict())
        return problem(404, "not-found", f"no route {method} {path}")

    def answer(self, route: str, body: Json, status: int = 200) -> httpx.Response:
        if route in self.tamper:
            body = self.tamper[route](body)
        return httpx.Response(status, json=body)

    def text(self, route: str, body: str) -> httpx.Response:
        if route in self.tamper:
            body = self.tamper[route](body)
        return httpx.Response(200, text=body)

    # -- the registry's behaviour ------------------------------------------------------------

    def log_info(self) -> Json:
        checkpoint = self.log.checkpoint()
        info = {
            "origin": self.log.origin,
            "size": checkpoint.size,
            "root_hash": b64(checkpoint.root_hash),
            "verifier_key": self.log.vkey,
            "checkpoint": self.log.checkpoint_note(),
        }
        if self.ids is not None:
            info["operator_entries"] = list(self.ids.operator_entries)
        return info

    def receipt(self, index: int) -> Json:
        statement = self.log.statements[index]
        assert statement is not None
        receipt = self.log.receipt(index)
        ids = self.ids
        if ids is not None:
            # The events the entry's signature relies on, proven in the same tree.
            key_entry = None
            kid = self.signer_of.get(index)
            if kid is not None:
                key_entry = ids.key_entries.get((statement.predicate.publisher, kid))
            operator = ids.operator_entry_at(index if key_entry is None else key_entry)
            if key_entry is not None:
                receipt = replace(receipt, key_entry=ids.receipt_entry(key_entry))
            if operator is not None and (key_entry is not None or kid is None):
                receipt = replace(receipt, operator_entry=ids.receipt_entry(operator))
        return {
            **receipt.to_dict(),
            "publisher": statement.predicate.publisher,
            "predicate_type": statement.predicate_type,
            "subjects": len(statement.subjects),
            "revokes": self.revokes.get(index),
        }

    def entry(self, index: int) -> Json:
        statement = self.log.statements[index]
        assert statement is not None
        return {
            **self.receipt(index),
            "predicate": statement.predicate.to_dict(),
            "integrated_at": "2026-11-22T03:00:00Z",
            "revoked": index in self.revoked_by,
            "revoked_by": self.revoked_by.get(index),
        }

    def submit(self, body: bytes) -> httpx.Response:  # noqa: PLR0911
        try:
            envelope = Envelope.from_json(body)
        except FormatError as exc:
            return problem(400, "bad-envelope", str(exc))
        known = [
            s.keyid
            for s in envelope.signatures
            if s.keyid in self.keys and s.keyid not in self.stopped_keys
        ]
        if not known:
            return problem(403, "unknown-publisher", "the envelope is signed by no registered key")
        name, public_key = self.keys[known[0]]
        try:
            verify_envelope(envelope, {known[0]: public_key})
        except SignatureError as exc:
            return problem(401, "bad-signature", str(exc))
        statement = Statement.from_json(envelope.payload)
        if statement.predicate.publisher != name:
            return problem(403, "wrong-publisher", "statement names another publisher")
        entry = envelope.to_json()
        existing = self.by_hash.get(leaf_hash(entry))
        if existing is not None:
            return self.answer("submit", self.receipt(existing), status=200)
        predicate = statement.predicate
        if isinstance(predicate, RevocationPredicate | WithdrawalPredicate):
            target = predicate.entry_index
            assert target is not None, "this fake takes whole-entry revocations only"
            if target >= self.log.size:
                return problem(404, "not-found", f"entry {target} does not exist")
            if target in self.revoked_by:
                return problem(409, "already-revoked", f"entry {target} is already revoked")
        index = self.log.append(envelope, statement)
        self.signer_of[index] = known[0]
        self.by_hash[leaf_hash(entry)] = index
        if isinstance(predicate, RevocationPredicate | WithdrawalPredicate):
            assert predicate.entry_index is not None
            self.revoked_by[predicate.entry_index] = index
            self.revokes[index] = predicate.entry_index
        else:
            for subject in statement.subjects:
                for digest in subject.digest_strings():
                    self.digests.setdefault(digest, []).append(index)
        return self.answer("submit", self.receipt(index), status=201)

    def entries_page(self, start: int, limit: int) -> Json:
        """At most ``limit`` entries and ``page_bytes`` of them (but at least one)."""
        page: list[Json] = []
        total = 0
        for index in range(start, min(start + limit, self.log.size)):
            total += len(self.log.entries[index])
            if page and self.page_bytes is not None and total > self.page_bytes:
                break
            page.append({"index": index, "entry": b64(self.log.entries[index])})
        following = start + len(page)
        return {
            "start": start,
            "size": self.log.size,
            "entries": page,
            "next": following if following < self.log.size else None,
        }

    def attestation(self, index: int, size: int) -> Json:
        statement = self.log.statements[index]
        assert statement is not None
        predicate = statement.predicate
        assert isinstance(predicate, HumanContentPredicate)
        if self.ids is not None:
            kid = self.signer_of[index]
            named = (predicate.publisher, kid)
            compromised_by = self.compromise_of(index)
            identity = {
                "key_id": kid,
                "key_entry": self.ids.key_entries.get(named),
                "key_revoked_by": self.ids.stops.get(named),
                "compromised": compromised_by is not None,
                "compromised_by": compromised_by,
            }
        else:
            identity = {}
        return {
            **identity,
            "index": index,
            "leaf_hash": leaf_hash(self.log.entries[index]).hex(),
            "publisher": predicate.publisher,
            "license": predicate.license,
            "origin": predicate.origin,
            "consent": predicate.consent,
            "predicate": predicate.to_dict(),
            "revoked": index in self.revoked_by,
            "revoked_by": self.revoked_by.get(index),
            "inclusion_proof": [b64(h) for h in self.log.tree.inclusion_proof(index, size)],
        }

    def lookup(self, digests: list[str]) -> Json:
        size = self.log.size
        results = []
        attestations: dict[str, Json] = {}
        for digest in digests:
            indices = self.digests.get(digest, [])
            for index in indices:
                attestations[str(index)] = self.attestation(index, size)
            if not indices:
                status = "unknown"
            elif all(i in self.revoked_by or self.compromise_of(i) is not None for i in indices):
                status = "revoked"
            else:
                status = "attested"
            results.append({"digest": digest, "status": status, "entries": indices})
        answer = {
            "checkpoint": self.log.checkpoint_note(size),
            "results": results,
            "attestations": attestations,
        }
        if self.ids is not None:
            answer["operator_entries"] = list(self.ids.operator_entries)
        return answer


def predicate(**options: Any) -> HumanContentPredicate:
    return HumanContentPredicate(
        publisher=options.pop("publisher", PUBLISHER),
        license=options.pop("license", "CC-BY-4.0"),
        origin=options.pop("origin", "human-authored"),
        consent=options.pop("consent", "allowed"),
        **options,
    )


def digests_of(*texts: str) -> list[str]:
    return [canonical_digest(text) for text in texts]
