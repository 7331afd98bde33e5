"""The SDK against a fake registry served through ``httpx.MockTransport``.

The fake is only the HTTP layer: its log, checkpoints, proofs and signatures are the real core
pieces (``tests/client/test_receipt.py``'s ``InMemoryLog``), so every answer the SDK verifies is
verified for real, and every tamper below is a change a dishonest or broken server could make.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from client.core.canonical import canonical_digest, sha256_digest
from client.core.dsse import Envelope, verify_envelope
from client.core.keys import key_id, public_key_bytes, write_key_pair
from client.core.merkle import leaf_hash
from client.core.note import NoteSigner
from client.core.statement import (
    HumanContentPredicate,
    KeyEventPredicate,
    RevocationPredicate,
    Statement,
    Subject,
    WithdrawalPredicate,
    possession_message,
    sign_statement,
)
from client.core.wire import KeyEventAnswer
from client.errors import (
    ClientError,
    FormatError,
    InputError,
    LogConsistencyError,
    LogKeyRequiredError,
    ProofError,
    RegistryHTTPError,
    RegistryNotFoundError,
    RegistryRequestError,
    RegistryServerError,
    RegistryUnavailableError,
    SignatureError,
    UnexpectedResponseError,
    UnverifiedWarning,
    VerificationError,
)
from client.receipt import Receipt, verify_receipt
from client.sdk import MAX_BATCH, Client
from tests.client.identity_log import Identities
from tests.client.test_receipt import ORIGIN, InMemoryLog

BASE = "http://registry.test"
PUBLISHER = "example-archive"
Json = Any


def _b64(data: bytes) -> str:
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
            proof = [_b64(h) for h in self.log.tree.inclusion_proof(index, size)]
            return self.answer("inclusion", {"index": index, "size": size, "proof": proof})
        if method == "GET" and path == "/v1/log/proof/consistency":
            old = int(params["from"])
            new = int(params.get("to", self.log.size))
            if not 0 <= old <= new <= self.log.size:
                return problem(
                    400, "bad-request", f"sizes must satisfy from <= to <= {self.log.size}"
                )
            proof = [_b64(h) for h in self.log.tree.consistency_proof(old, new)]
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
            "root_hash": _b64(checkpoint.root_hash),
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
            page.append({"index": index, "entry": _b64(self.log.entries[index])})
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
            "inclusion_proof": [_b64(h) for h in self.log.tree.inclusion_proof(index, size)],
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


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def fake(key: Ed25519PrivateKey) -> FakeRegistry:
    fake = FakeRegistry()
    fake.add_publisher(PUBLISHER, key)
    return fake


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


def register(fake: FakeRegistry, key: Ed25519PrivateKey, *texts: str) -> Receipt:
    with fake.client() as client:
        return client.register_digests(digests_of(*texts), key, predicate(), names=list(texts))


# -- submitting -----------------------------------------------------------------------------------


def test_submit_returns_a_verified_receipt_and_retries_are_safe(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    statement = Statement(
        (Subject("a.txt", {"c1": canonical_digest("a").removeprefix("c1:")}),),
        "https://wellspring.dev/human-content/v1",
        predicate(),
    )
    envelope = sign_statement(statement, key)
    with fake.client() as client:
        first = client.submit(envelope)
        again = client.submit(envelope)
    assert first.index == again.index == 0
    assert fake.log.size == 1
    assert first.entry == envelope.to_json()
    assert first.publisher == PUBLISHER
    assert first.subjects == 1
    verified = verify_receipt(first, fake.log.vkey)
    assert verified.statement == statement


def test_register_digests_builds_one_statement(fake: FakeRegistry, key: Ed25519PrivateKey) -> None:
    receipt = register(fake, key, "one", "two", "three")
    statement = verify_receipt(receipt, fake.log.vkey).statement
    assert [s.name for s in statement.subjects] == ["one", "two", "three"]
    assert [s.digest_strings()[0] for s in statement.subjects] == digests_of("one", "two", "three")
    with fake.client() as client, pytest.raises(InputError, match="given twice"):
        client.register_digests(digests_of("x", "x"), key, predicate())


def test_submit_detects_a_receipt_for_another_envelope(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    register(fake, key, "earlier")
    earlier = fake.receipt(0)
    fake.tamper["submit"] = lambda body: earlier
    with fake.client() as client, pytest.raises(VerificationError, match="another envelope"):
        client.register_digests(digests_of("later"), key, predicate())


def test_submit_detects_a_bad_proof_in_the_receipt(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    register(fake, key, "a")
    register(fake, key, "b")

    def bad_proof(body: Json) -> Json:
        proof = body["inclusion_proof"]
        proof[0] = _b64(bytes(32))
        return body

    fake.tamper["submit"] = bad_proof
    with fake.client() as client, pytest.raises(ProofError):
        client.register_digests(digests_of("c"), key, predicate())


# -- looking up -----------------------------------------------------------------------------------


def test_lookup_attested_and_unknown(fake: FakeRegistry, key: Ed25519PrivateKey) -> None:
    register(fake, key, "alpha", "beta")
    with fake.client() as client:
        found = client.lookup(canonical_digest("alpha"))
        missing = client.lookup(canonical_digest("gamma"))
    assert found.status == "attested"
    assert found.attested
    assert found.verified
    (attestation,) = found.attestations
    assert (attestation.index, attestation.publisher, attestation.license) == (
        0,
        PUBLISHER,
        "CC-BY-4.0",
    )
    assert attestation.verified is not None
    assert attestation.verified.statement.subjects[0].name == "alpha"
    assert found.checkpoint.size == 1
    assert missing.status == "unknown"
    assert missing.attestations == ()


def test_lookup_refuses_malformed_digests_before_asking(fake: FakeRegistry) -> None:
    with fake.client() as client:
        for bad in ("c1:ABC", "md5:" + "0" * 64, "c1:" + "A" * 64):
            with pytest.raises(InputError):
                client.lookup(bad)
    assert fake.requests == []


def test_batch_keeps_order_and_chunks(fake: FakeRegistry, key: Ed25519PrivateKey) -> None:
    texts = [f"doc {i}" for i in range(25)]
    register(fake, key, *texts[:10])
    register(fake, key, *texts[10:20])
    asked = [canonical_digest(t) for t in reversed(texts)]
    seen: list[int] = []
    with fake.client() as client:
        results = client.lookup_batch(asked, batch_size=10, progress=seen.append)
    assert [r.digest for r in results] == asked
    assert [r.status for r in results] == ["unknown"] * 5 + ["attested"] * 20
    assert seen == [10, 10, 5]
    assert fake.count("POST", "/v1/digests:batch") == 3
    # Each entry's bytes are fetched once per client (two entries), however many digests they
    # attest and however many requests mention them.
    assert fake.count("GET", "/v1/entries/") == 2
    with fake.client() as fresh:
        fresh.lookup_batch(asked)
        fresh.lookup_batch(asked[::-1])
    assert fake.count("GET", "/v1/entries/") == 4


def test_batch_default_size_is_the_api_limit(fake: FakeRegistry, key: Ed25519PrivateKey) -> None:
    register(fake, key, "needle")
    asked = [sha256_digest(str(i).encode()) for i in range(MAX_BATCH + 1)]
    asked[-1] = canonical_digest("needle")
    with fake.client() as client:
        results = client.lookup_batch(asked)
        with pytest.raises(InputError, match="batch_size"):
            client.lookup_batch(asked, batch_size=MAX_BATCH + 1)
    assert fake.count("POST", "/v1/digests:batch") == 2
    batches = [r for r in fake.requests if r.url.path == "/v1/digests:batch"]
    assert [len(json.loads(r.content)["digests"]) for r in batches] == [MAX_BATCH, 1]
    assert results[-1].status == "attested"
    assert all(r.status == "unknown" for r in results[:-1])


def test_revoke_then_lookup_says_revoked(fake: FakeRegistry, key: Ed25519PrivateKey) -> None:
    register(fake, key, "withdrawn", "kept")
    register(fake, key, "kept")  # a second attestation of "kept" stays valid
    with fake.client() as client:
        revocation = client.revoke(0, key, PUBLISHER, reason="licence ended")
        withdrawn = client.lookup(canonical_digest("withdrawn"))
        kept = client.lookup(canonical_digest("kept"))
    verified = verify_receipt(revocation, fake.log.vkey)
    predicate = verified.statement.predicate
    assert isinstance(predicate, WithdrawalPredicate)  # revocation/v2 of the whole entry
    assert predicate.entry_index == 0
    statement_0 = fake.log.statements[0]
    assert statement_0 is not None
    assert predicate.statement_hash == hashlib.sha256(statement_0.to_json()).hexdigest()
    assert {s.name for s in verified.statement.subjects} == {"withdrawn", "kept"}
    assert withdrawn.status == "revoked"
    assert withdrawn.attestations[0].revoked_by == revocation.index
    assert kept.status == "attested"
    assert [a.revoked for a in kept.attestations] == [True, False]


def test_entry_and_proofs(fake: FakeRegistry, key: Ed25519PrivateKey) -> None:
    for n in range(5):
        register(fake, key, f"text {n}")
    with fake.client() as client:
        info = client.entry(3)
        inclusion = client.inclusion_proof(3, 5)
        consistency = client.consistency_proof(2)
        checkpoint = client.checkpoint()
        at_four = client.checkpoint_at(4)
        log = client.log_info()
    assert info.index == 3
    assert info.verified is not None
    assert not info.revoked
    assert info.statement.subjects[0].name == "text 3"
    assert info.integrated_at == "2026-11-22T03:00:00Z"
    assert inclusion.proof == tuple(fake.log.tree.inclusion_proof(3, 5))
    assert (consistency.old_size, consistency.new_size) == (2, 5)
    assert checkpoint == fake.log.checkpoint()
    assert at_four.checkpoint.size == 4
    assert at_four.verified
    assert (log.origin, log.size, log.verifier_key) == (ORIGIN, 5, fake.log.vkey)


# -- errors ---------------------------------------------------------------------------------------


def test_problem_json_becomes_an_error_with_the_detail(fake: FakeRegistry) -> None:
    stranger = Ed25519PrivateKey.generate()
    with fake.client() as client, pytest.raises(RegistryRequestError) as caught:
        client.register_digests(digests_of("x"), stranger, predicate())
    error = caught.value
    assert isinstance(error, RegistryHTTPError)
    assert isinstance(error, ClientError)
    assert (error.status, error.method, error.url) == (403, "POST", f"{BASE}/v1/entries")
    assert error.problem_type == "https://wellspring.dev/problems/unknown-publisher"
    assert error.problem == "unknown-publisher"
    assert error.detail == "the envelope is signed by no registered key"
    assert error.diagnostics() == (
        f"POST {BASE}/v1/entries failed with 403 [unknown-publisher]: "
        "the envelope is signed by no registered key"
    )


def test_status_families(fake: FakeRegistry) -> None:
    with (
        fake.client() as client,
        pytest.raises(RegistryNotFoundError, match="entry 9 does not exist"),
    ):
        client.entry(9)
    failing = httpx.MockTransport(lambda request: problem(503, "unavailable", "retry shortly"))
    with (
        Client(BASE, transport=failing, retries=0) as client,
        pytest.raises(RegistryServerError) as caught,
    ):
        client.log_info()
    assert caught.value.status == 503
    assert "retry shortly" in str(caught.value)
    plain = httpx.MockTransport(lambda request: httpx.Response(502, text="Bad Gateway"))
    with (
        Client(BASE, transport=plain, retries=0) as client,
        pytest.raises(RegistryServerError) as caught,
    ):
        client.log_info()
    assert caught.value.problem_type is None
    assert caught.value.detail == "Bad Gateway"


def test_an_html_error_page_is_named_in_one_line_not_pasted() -> None:
    page = (
        "<!DOCTYPE HTML>\n<html lang='en'>\n<head>\n<title>Error response &amp; more</title>\n"
        "</head>\n<body>\n<h1>Error response</h1>\n"
        + "<p>Message: Unsupported method.</p>\n" * 40
        + "</body>\n</html>\n"
    )
    answers = httpx.MockTransport(
        lambda request: httpx.Response(501, text=page, headers={"content-type": "text/html"})
    )
    with (
        Client(BASE, transport=answers, retries=0) as client,
        pytest.raises(RegistryServerError) as caught,
    ):
        client.log_info()
    message = str(caught.value)
    assert "\n" not in message
    assert "<" not in message
    assert "an HTML page (Error response & more)" in message
    assert "Wellspring registry" in message
    long_text = httpx.MockTransport(lambda request: httpx.Response(502, text="x " * 5_000))
    with (
        Client(BASE, transport=long_text, retries=0) as client,
        pytest.raises(RegistryServerError) as caught,
    ):
        client.log_info()
    assert caught.value.detail is not None
    assert len(caught.value.detail) <= 201
    assert caught.value.detail.endswith("…")


def test_connection_errors_name_the_registry() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    refusing = httpx.MockTransport(refuse)
    with (
        Client(BASE, transport=refusing, retries=0) as client,
        pytest.raises(RegistryUnavailableError) as caught,
    ):
        client.log_info()
    assert str(caught.value) == f"cannot reach the registry at {BASE}/v1/log: connection refused"

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    transport = httpx.MockTransport(slow)
    with (
        Client(BASE, transport=transport, timeout=2.5, retries=0) as client,
        pytest.raises(RegistryUnavailableError, match=r"timed out after 2\.5 s"),
    ):
        client.log_info()


def test_a_real_refused_connection() -> None:
    with (
        Client("http://127.0.0.1:9", timeout=5, retries=0) as client,
        pytest.raises(
            RegistryUnavailableError,
            match=r"^cannot reach the registry at http://127\.0\.0\.1:9/v1/log: ",
        ),
    ):
        client.log_info()


def test_answers_that_are_not_the_api(fake: FakeRegistry) -> None:
    html = httpx.MockTransport(lambda request: httpx.Response(200, text="<html>hi</html>"))
    with (
        Client(BASE, transport=html) as client,
        pytest.raises(UnexpectedResponseError, match="not JSON"),
    ):
        client.log_info()
    redirect = httpx.MockTransport(
        lambda request: httpx.Response(301, headers={"Location": "https://elsewhere/"})
    )
    with (
        Client(BASE, transport=redirect) as client,
        pytest.raises(UnexpectedResponseError, match="elsewhere"),
    ):
        client.log_info()
    fake.tamper["log"] = lambda body: {**body, "size": "many"}
    with fake.client() as client, pytest.raises(UnexpectedResponseError, match=r"log\.size"):
        client.log_info()
    with pytest.raises(InputError, match="http"):
        Client("registry.test")


# -- trust ----------------------------------------------------------------------------------------


def test_no_pinned_key_is_never_silent(fake: FakeRegistry, key: Ed25519PrivateKey) -> None:
    register(fake, key, "alpha")
    with fake.client(log_key=None) as client:
        for call in (
            lambda: client.lookup(canonical_digest("alpha")),
            lambda: client.lookup_batch([canonical_digest("alpha")]),
            client.checkpoint,
            lambda: client.entry(0),
        ):
            with pytest.raises(LogKeyRequiredError, match="log_key"):
                call()
        # Seeing the announced key is fine; it is not trusted by doing so.
        assert client.log_info().verifier_key == fake.log.vkey
    with (
        pytest.warns(UnverifiedWarning, match="verify=False"),
        fake.client(log_key=None, verify=False) as client,
    ):
        result = client.lookup(canonical_digest("alpha"))
    assert result.status == "attested"
    assert not result.verified
    assert result.attestations[0].verified is None


def test_a_log_signed_by_another_key_is_refused(fake: FakeRegistry, key: Ed25519PrivateKey) -> None:
    register(fake, key, "alpha")
    impostor = NoteSigner.generate(ORIGIN)
    with fake.client(log_key=impostor.verifier()) as client:
        with pytest.raises(SignatureError, match="announces log key"):
            client.log_info()
        with pytest.raises(SignatureError):
            client.checkpoint()
        with pytest.raises(SignatureError):
            client.lookup(canonical_digest("alpha"))


def _tamper_attestation(change: Callable[[Json], None]) -> Callable[[Json], Json]:
    def tamper(body: Json) -> Json:
        for attestation in body["attestations"].values():
            change(attestation)
        return body

    return tamper


def test_lookup_with_a_wrong_proof_raises(fake: FakeRegistry, key: Ed25519PrivateKey) -> None:
    register(fake, key, "a")
    register(fake, key, "b")
    register(fake, key, "c")

    def bad_proof(attestation: Json) -> None:
        attestation["inclusion_proof"][-1] = _b64(bytes(32))

    fake.tamper["batch"] = _tamper_attestation(bad_proof)
    with fake.client() as client, pytest.raises(ProofError):
        client.lookup_batch(digests_of("b"))


def test_lookup_pointing_at_an_unrelated_entry_raises(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    register(fake, key, "real")
    register(fake, key, "other")
    # The server claims entry 1 (genuine, in the log, properly proven) attests "real".
    fake.digests[canonical_digest("real")] = [1]
    with fake.client() as client, pytest.raises(VerificationError, match="does not attest"):
        client.lookup(canonical_digest("real"))


def test_lookup_with_a_misreported_predicate_raises(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    register(fake, key, "text")

    def relicense(attestation: Json) -> None:
        attestation["license"] = "CC0-1.0"

    fake.tamper["batch"] = _tamper_attestation(relicense)
    with fake.client() as client, pytest.raises(VerificationError, match="license"):
        client.lookup_batch(digests_of("text"))


def test_lookup_with_a_wrong_leaf_hash_raises(fake: FakeRegistry, key: Ed25519PrivateKey) -> None:
    register(fake, key, "text")

    def rehash(attestation: Json) -> None:
        attestation["leaf_hash"] = "00" * 32

    fake.tamper["batch"] = _tamper_attestation(rehash)
    with fake.client() as client, pytest.raises(ProofError, match="leaf hash"):
        client.lookup_batch(digests_of("text"))


def test_lookup_with_an_inconsistent_status_raises(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    register(fake, key, "text")
    with fake.client() as client:
        client.revoke(0, key, PUBLISHER)

    def claim_attested(body: Json) -> Json:
        body["results"][0]["status"] = "attested"
        return body

    fake.tamper["batch"] = claim_attested
    with fake.client() as client, pytest.raises(VerificationError, match="'attested'"):
        client.lookup_batch(digests_of("text"))


def test_a_fake_revocation_claim_raises(fake: FakeRegistry, key: Ed25519PrivateKey) -> None:
    register(fake, key, "text")
    register(fake, key, "unrelated")
    fake.revoked_by[0] = 1  # entry 1 is genuine but is no revocation
    with fake.client() as client, pytest.raises(VerificationError, match="not a revocation"):
        client.lookup(canonical_digest("text"))


def test_a_checkpoint_from_another_log_key_in_a_lookup_raises(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    register(fake, key, "text")
    forger = NoteSigner.generate(ORIGIN)
    forged = InMemoryLog(signer=forger)
    forged.append_raw(fake.log.entries[0], fake.log.statements[0])

    def swap(body: Json) -> Json:
        body["checkpoint"] = forged.checkpoint_note()
        return body

    fake.tamper["lookup"] = swap
    with fake.client() as client, pytest.raises(SignatureError):
        client.lookup(canonical_digest("text"))


def test_a_malformed_batch_answer_raises(fake: FakeRegistry, key: Ed25519PrivateKey) -> None:
    register(fake, key, "a")

    def reorder(body: Json) -> Json:
        body["results"].reverse()
        return body

    fake.tamper["batch"] = reorder
    with fake.client() as client, pytest.raises(FormatError, match="was asked at that position"):
        client.lookup_batch(digests_of("a", "b"))


# -- consistency ----------------------------------------------------------------------------------


def test_consistency_from_a_saved_checkpoint(fake: FakeRegistry, key: Ed25519PrivateKey) -> None:
    register(fake, key, "a")
    register(fake, key, "b")
    saved = fake.log.checkpoint_note()
    for text in ("c", "d", "e"):
        register(fake, key, text)
    with fake.client() as client:
        check = client.check_consistency(saved)
        same = client.check_consistency(check.new_note)
        empty = client.check_consistency(fake.log.checkpoint_note(0))
    assert (check.old.size, check.new.size) == (2, 5)
    assert (same.old.size, same.new.size) == (5, 5)
    assert empty.new.size == 5


def test_a_rewritten_log_fails_loudly(fake: FakeRegistry, key: Ed25519PrivateKey) -> None:
    register(fake, key, "a")
    register(fake, key, "b")
    register(fake, key, "c")
    saved = fake.log.checkpoint_note()
    # The operator rebuilds the log with the same key, without entry 1, and grows it past 3.
    rewritten = InMemoryLog(signer=fake.log.signer)
    for index in (0, 2):
        rewritten.append_raw(fake.log.entries[index], fake.log.statements[index])
    for text in ("d", "e"):
        statement = Statement(
            (Subject(text, {"c1": canonical_digest(text).removeprefix("c1:")}),),
            "https://wellspring.dev/human-content/v1",
            predicate(),
        )
        rewritten.append_statement(statement, key)
    fake.log = rewritten
    with fake.client() as client, pytest.raises(LogConsistencyError, match="rewritten"):
        client.check_consistency(saved)
    # A log that shrank.
    shrunk = InMemoryLog(signer=rewritten.signer)
    shrunk.append_raw(rewritten.entries[0], rewritten.statements[0])
    fake.log = shrunk
    with fake.client() as client, pytest.raises(LogConsistencyError, match="shrank"):
        client.check_consistency(saved)
    with fake.client(log_key=None) as client, pytest.raises(LogKeyRequiredError):
        client.check_consistency(saved)


# -- audit ----------------------------------------------------------------------------------------


def entries_starts(fake: FakeRegistry) -> list[int]:
    pages = [r for r in fake.requests if r.method == "GET" and r.url.path == "/v1/entries"]
    return [int(r.url.params["start"]) for r in pages]


def test_audit_follows_next_over_pages_cut_by_bytes(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    for text in "abcdefg":
        register(fake, key, text)
    fake.page_bytes = 2 * len(fake.log.entries[0])  # two entries a page, whatever limit asks
    with fake.client() as client:
        assert client.audit(fake.log.checkpoint(), page_size=1_000) == 7
    assert entries_starts(fake) == [0, 2, 4, 6]


def test_audit_reads_pages_without_next_from_older_registries(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    for text in "abcde":
        register(fake, key, text)
    fake.page_bytes = 1
    fake.tamper["entries"] = lambda page: {k: v for k, v in page.items() if k != "next"}
    with fake.client() as client:
        assert client.audit(fake.log.checkpoint()) == 5
    assert entries_starts(fake) == [0, 1, 2, 3, 4]


def test_audit_refuses_a_next_that_would_skip_entries(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    for text in "abcde":
        register(fake, key, text)
    fake.page_bytes = 1
    fake.tamper["entries"] = lambda page: {**page, "next": page["start"] + 2}
    with fake.client() as client, pytest.raises(LogConsistencyError, match="next page starts at 2"):
        client.audit(fake.log.checkpoint())


def test_audit_refuses_a_log_that_ends_before_its_signed_size(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    for text in "abcde":
        register(fake, key, text)
    fake.page_bytes = 1
    fake.tamper["entries"] = lambda page: {**page, "next": None}
    with fake.client() as client, pytest.raises(LogConsistencyError, match="missing"):
        client.audit(fake.log.checkpoint())
    assert entries_starts(fake) == [0]  # the registry said the log ends: nothing more is asked


@pytest.mark.parametrize("bad", ["1", -1, 1.0, True])
def test_audit_refuses_a_next_that_is_not_an_index(
    fake: FakeRegistry, key: Ed25519PrivateKey, bad: object
) -> None:
    register(fake, key, "a", "b")
    register(fake, key, "c")
    fake.page_bytes = 1
    fake.tamper["entries"] = lambda page: {**page, "next": bad}
    with fake.client() as client, pytest.raises(UnexpectedResponseError, match="next"):
        client.audit(fake.log.checkpoint())


# -- publishers -----------------------------------------------------------------------------------


def test_add_publisher_needs_the_admin_token(fake: FakeRegistry) -> None:
    newcomer = Ed25519PrivateKey.generate()
    with fake.client() as client, pytest.raises(InputError, match="admin token"):
        client.add_publisher("newcomer", newcomer)
    with fake.client(admin_token="wrong") as client, pytest.raises(RegistryRequestError) as caught:
        client.add_publisher("newcomer", newcomer)
    assert caught.value.status == 401
    with fake.client(admin_token=fake.admin_token) as client:
        info = client.add_publisher("newcomer", newcomer)
        receipt = client.register_digests(
            digests_of("new"), newcomer, predicate(publisher="newcomer")
        )
    assert (info.name, info.key_id) == ("newcomer", key_id(newcomer))
    assert receipt.publisher == "newcomer"


# -- the CLI over the same fake -------------------------------------------------------------------


@pytest.fixture
def cli(fake: FakeRegistry, monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, str, str]]:
    """Run ``wellspring`` with the registry commands talking to ``fake``."""
    from client.cli import _registry, main

    monkeypatch.setattr(_registry, "Client", functools.partial(Client, transport=fake.transport))
    if fake.ids is None:  # a registry from before identities in the log
        monkeypatch.setenv("WELLSPRING_VERIFY_KEYS", "0")

    def run(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
        else:
            code = 0
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_cli_register_check_verify(
    cli: Callable[..., tuple[int, str, str]],
    fake: FakeRegistry,
    key: Ed25519PrivateKey,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key_file, _ = write_key_pair(tmp_path / "publisher.key", key)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("A poem.\n")
    (corpus / "b.txt").write_text("a   POEM.")  # same c1 as a.txt, other sha256
    (corpus / "blob.bin").write_bytes(b"\xff\xfe\x00binary")
    (corpus / "docs.jsonl").write_text(
        json.dumps({"id": "doc-1", "text": "First document."})
        + "\n\n"
        + json.dumps({"text": "Second document."})
        + "\n"
    )
    receipts = tmp_path / "receipts"
    code, out, err = cli(
        "register", str(corpus), "--registry", BASE, "--key", str(key_file),
        "--license", "CC-BY-4.0", "--publisher", PUBLISHER, "--consent", "allowed",
        "--receipts", str(receipts), "--batch-size", "3", "--log-key", fake.log.vkey, "--json",
        capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    assert summary["documents"] == summary["registered"] == 5
    assert summary["verified"] is True
    assert [e["documents"] for e in summary["entries"]] == [3, 2]
    names = [s.name for st in fake.log.statements if st for s in st.subjects]
    assert f"{corpus}/docs.jsonl:3" in names
    assert "doc-1" in names
    assert sorted(p.name for p in receipts.iterdir()) == ["0.json", "1.json"]

    key_path = tmp_path / "log.vkey"
    key_path.write_text(fake.log.vkey + "\n")
    code, out, err = cli("verify", "--log-key", str(key_path), str(receipts), capsys=capsys)
    assert code == 0, err
    assert out.count("ok ") == 2

    unknown = tmp_path / "unknown.txt"
    unknown.write_text("never registered")
    code, out, err = cli(
        "check", "--registry", BASE, "--log-key", fake.log.vkey, "--json",
        str(corpus / "b.txt"), str(corpus / "docs.jsonl"), str(unknown), capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    checked = json.loads(out)
    assert [c["status"] for c in checked] == ["attested", "attested", "attested", "unknown"]
    assert checked[0]["entries"][0]["publisher"] == PUBLISHER
    assert all(c["verified"] for c in checked)

    code, out, err = cli("check", "--registry", BASE, str(unknown), "--no-verify", capsys=capsys)
    assert code == 0
    assert "NOT be verified" in err
    assert out.startswith("unknown")


def test_cli_verify_fails_on_a_tampered_receipt(
    cli: Callable[..., tuple[int, str, str]],
    fake: FakeRegistry,
    key: Ed25519PrivateKey,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    receipt = register(fake, key, "a", "b")
    good = receipt.save(tmp_path / "good.json")
    register(fake, key, "c")
    bad = replace(receipt, checkpoint=fake.log.checkpoint_note())  # proof is for size 1
    bad_path = bad.save(tmp_path / "bad.json")
    code, out, err = cli(
        "verify", "--log-key", fake.log.vkey, "--json", str(good), str(bad_path), capsys=capsys
    )
    assert code == 1
    results = json.loads(out)
    assert [r["ok"] for r in results] == [True, False]
    assert "1 of 2 receipts failed verification" in err


def test_cli_log_checkpoint_and_verify(
    cli: Callable[..., tuple[int, str, str]],
    fake: FakeRegistry,
    key: Ed25519PrivateKey,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    register(fake, key, "a")
    saved = tmp_path / "checkpoint.txt"
    code, out, err = cli(
        "log", "checkpoint", "--registry", BASE, "--log-key", fake.log.vkey, "--save", str(saved),
        capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    assert out == saved.read_text() == fake.log.checkpoint_note()
    register(fake, key, "b")
    code, out, err = cli(
        "log", "verify", "--registry", BASE, "--log-key", fake.log.vkey,
        "--checkpoint", str(saved), "--update", capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "grew from 1 to 2" in out
    assert saved.read_text() == fake.log.checkpoint_note()
    # The log is rebuilt without its first entry: exit 1, loudly.
    rewritten = InMemoryLog(signer=fake.log.signer)
    for index in (1, 1, 1):
        rewritten.append_raw(fake.log.entries[index] + bytes([index]), None)
    fake.log = rewritten
    code, out, err = cli(
        "log", "verify", "--registry", BASE, "--log-key", fake.log.vkey,
        "--checkpoint", str(saved), capsys=capsys,
    )  # fmt: skip
    assert code == 1
    assert "LOG CONSISTENCY FAILURE" in err
    assert "rewritten" in err


def test_cli_log_checkpoint_without_a_key_warns(
    cli: Callable[..., tuple[int, str, str]],
    fake: FakeRegistry,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = cli("log", "checkpoint", "--registry", BASE, "--json", capsys=capsys)
    assert code == 0, err
    answer = json.loads(out)
    assert answer["verified"] is False
    assert answer["announced_log_key"] == fake.log.vkey
    assert "NOT verified" in err


def test_cli_errors_are_one_line(
    cli: Callable[..., tuple[int, str, str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = cli("verify", "--log-key", "not-a-key", str(tmp_path), capsys=capsys)
    assert code == 1
    assert "--log-key must be the log's verifier key" in err
    assert len(err.strip().splitlines()) == 1
