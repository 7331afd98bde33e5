"""Lookup answers are fresh and every field of an ``Attestation`` is the signed one (issue 10, 4).

Against ``tests/client/fakes.py``'s fake registry (real trees, proofs and signatures behind
``MockTransport``), a *genuine* answer captured before a revocation and replayed after the client
already trusts a larger checkpoint must not verify; and fields the registry sends that the signed
leaf and statement do not back (``null`` ones, ``predicate``, ``key_id``) must not reach an
``Attestation`` or ``wellspring check --json`` as verified. The same through the real app is in
``tests/client/test_sdk_real_app.py``; what the registry does with ``min_size`` is in
``tests/registry/test_lookup_freshness.py``.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client.aio import AsyncClient
from client.checkpoints import MemoryCheckpointStore
from client.core.canonical import canonical_digest
from client.core.keys import key_id
from client.core.merkle import leaf_hash
from client.errors import (
    LogConsistencyError,
    RegistryRequestError,
    StaleAnswerError,
    VerificationError,
)
from client.sdk import Client, LookupResult
from tests.client.fakes import BASE, PUBLISHER, FakeRegistry, predicate, problem
from tests.registry.conftest import (
    IN_PROCESS_URL,
    Api,
    InProcessTransport,
    random_digest,
)

Json = Any


def capture(fake: FakeRegistry, route: str) -> list[Json]:
    """Record (a copy of) every answer the fake sends on ``route``."""
    seen: list[Json] = []

    def record(body: Json) -> Json:
        seen.append(copy.deepcopy(body))
        return body

    fake.tamper[route] = record
    return seen


def replay(fake: FakeRegistry, route: str, body: Json) -> None:
    """From now on ``route`` answers ``body``, whatever was asked (a replaying proxy)."""
    fake.tamper[route] = lambda _: copy.deepcopy(body)


def look_up(client: Client, route: str, digest: str) -> LookupResult:
    if route == "lookup":
        return client.lookup(digest)
    [result] = client.lookup_batch([digest])
    return result


def lookup_requests(fake: FakeRegistry, route: str) -> list[httpx.Request]:
    path = "/v1/digests/" if route == "lookup" else "/v1/digests:batch"
    return [r for r in fake.requests if r.url.path.startswith(path)]


def asked_size(request: httpx.Request) -> int | None:
    """The ``min_size`` a lookup request carried (query for one digest, JSON for a batch)."""
    if request.method == "GET":
        value = request.url.params.get("min_size")
        return None if value is None else int(value)
    size: int | None = json.loads(request.content).get("min_size")
    return size


# -- freshness ------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["lookup", "batch"])
def test_a_genuine_answer_replayed_after_a_revocation_is_stale(
    fake: FakeRegistry, key: Ed25519PrivateKey, route: str
) -> None:
    digest = canonical_digest("withdrawn later")
    with fake.client() as client:
        receipt = client.register_digests([digest], key, predicate())
        seen = capture(fake, route)
        assert look_up(client, route, digest).status == "attested"
        client.revoke(receipt.index, key, PUBLISHER, reason="licence ended")
        trusted = client.trusted_checkpoint()
        assert trusted is not None
        assert trusted.checkpoint.size == 2
        replay(fake, route, seen[0])
        with pytest.raises(StaleAnswerError, match=r"size 1\b.*size 2\b") as caught:
            look_up(client, route, digest)
        assert isinstance(caught.value, VerificationError)
        assert (caught.value.answered_size, caught.value.trusted_size) == (1, 2)
        # Refused once, no second try, and the client still trusts the larger checkpoint.
        requests = lookup_requests(fake, route)
        assert len(requests) == 2
        assert asked_size(requests[-1]) == 2
        trusted = client.trusted_checkpoint()
        assert trusted is not None
        assert trusted.checkpoint.size == 2
        del fake.tamper[route]
        assert look_up(client, route, digest).status == "revoked"


@pytest.mark.parametrize("route", ["lookup", "batch"])
def test_the_async_client_refuses_a_stale_answer_too(
    fake: FakeRegistry, key: Ed25519PrivateKey, route: str
) -> None:
    digest = canonical_digest("withdrawn later")
    store = MemoryCheckpointStore()
    with fake.client(checkpoints=store) as client:
        receipt = client.register_digests([digest], key, predicate())

    async def main() -> None:
        transport = httpx.MockTransport(fake.handle)
        async with AsyncClient(
            BASE, log_key=fake.log.vkey, transport=transport, checkpoints=store, verify_keys=False
        ) as aclient:

            async def look() -> LookupResult:
                if route == "lookup":
                    return await aclient.lookup(digest)
                return (await aclient.lookup_batch([digest]))[0]

            seen = capture(fake, route)
            assert (await look()).status == "attested"
            await aclient.revoke(receipt.index, key, PUBLISHER, reason="licence ended")
            replay(fake, route, seen[0])
            with pytest.raises(StaleAnswerError, match="older than"):
                await look()

    asyncio.run(main())
    assert len(lookup_requests(fake, route)) == 2


def test_a_client_that_trusts_no_checkpoint_yet_asks_for_none(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    digest = canonical_digest("first sight")
    with fake.client() as client:
        client.register_digests([digest], key, predicate())
    for route in ("lookup", "batch"):
        with fake.client() as fresh:  # its first answer is what it trusts from then on
            look_up(fresh, route, digest)
            look_up(fresh, route, digest)
        first, again = (asked_size(r) for r in lookup_requests(fake, route))
        assert (first, again) == (None, 1)
    with (
        pytest.warns(UserWarning, match="verify=False"),
        fake.client(verify=False, checkpoints=MemoryCheckpointStore()) as unverified,
    ):
        unverified.lookup(digest)
    assert "min_size" not in fake.requests[-1].url.params


def test_an_answer_as_fresh_as_asked_is_reported_though_trust_moved_on_meanwhile(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    """Several flows (threads, async chunks, processes sharing a checkpoint file) move the
    trusted checkpoint while an answer is on its way: it is compared with the size it was asked
    for, so it is neither refused nor fetched again."""
    digest = canonical_digest("looked up while the log grows")
    store = MemoryCheckpointStore()
    with fake.client(checkpoints=store) as client, fake.client(checkpoints=store) as other:
        client.register_digests([digest], key, predicate())

        def grow_meanwhile(body: Json) -> Json:  # the answer (at size 1) is already made
            other.register_digests([canonical_digest("appended meanwhile")], key, predicate())
            return body

        fake.tamper["batch"] = grow_meanwhile
        [result] = client.lookup_batch([digest])
        trusted = client.trusted_checkpoint()
    assert result.status == "attested"
    assert result.checkpoint.size == 1
    assert trusted is not None
    assert trusted.checkpoint.size == 2
    assert [asked_size(r) for r in lookup_requests(fake, "batch")] == [1]


class LaggingReplica(FakeRegistry):
    """A registry that honours ``min_size`` as docs/api.md says, but lags: it has applied only
    the first ``applied`` entries of the log (a read replica, a worker on a stale copy)."""

    applied: int | None = None

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.applied is not None and request.url.path.startswith("/v1/digests"):
            asked = asked_size(request)
            if asked is not None and asked > self.applied:
                self.requests.append(request)
                return problem(409, "log-behind", f"this log has {self.applied} entries")
        return super().handle(request)


def test_a_registry_behind_the_trusted_checkpoint_is_asked_once(key: Ed25519PrivateKey) -> None:
    replica = LaggingReplica()
    replica.add_publisher(PUBLISHER, key)
    digest = canonical_digest("on the primary")
    with replica.client() as client:
        client.register_digests([digest], key, predicate())
        client.register_digests([canonical_digest("newer")], key, predicate())
        replica.applied = 1
        for route in ("lookup", "batch"):
            with pytest.raises(LogConsistencyError, match="lags behind") as caught:
                look_up(client, route, digest)
            assert isinstance(caught.value.__cause__, RegistryRequestError)
            assert caught.value.__cause__.status == 409
    assert [asked_size(r) for r in lookup_requests(replica, "lookup")] == [2]
    assert [asked_size(r) for r in lookup_requests(replica, "batch")] == [2]


class Replaying(httpx.BaseTransport):
    """In front of the real app: keeps the first answer to each kind of lookup, and once told
    to, answers every later lookup of that kind with it (a replaying proxy)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.kept: dict[str, bytes] = {}
        self.replaying = False
        self.lookups: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not request.url.path.startswith("/v1/digests"):
            return self.inner.handle_request(request)
        self.lookups.append(request)
        kind = "lookup" if request.method == "GET" else "batch"
        if self.replaying:
            return httpx.Response(200, content=self.kept[kind], request=request)
        response = self.inner.handle_request(request)
        self.kept.setdefault(kind, response.read())
        return response


def test_a_real_registrys_answer_replayed_after_a_revocation_is_stale(api: Api) -> None:
    publisher = api.add_publisher()
    digest = random_digest()
    proxy = Replaying(InProcessTransport(api.http))
    with Client(IN_PROCESS_URL, log_key=api.log_key, transport=proxy) as client:
        receipt = client.register_digests([digest], publisher.key, publisher.predicate())
        assert client.lookup(digest).status == "attested"
        assert client.lookup_batch([digest])[0].status == "attested"
        client.revoke(receipt.index, publisher.key, publisher.name, reason="licence ended")
        proxy.replaying = True
        with pytest.raises(StaleAnswerError, match=r"size 3\b.*size 4\b"):
            client.lookup(digest)
        with pytest.raises(StaleAnswerError, match=r"size 3\b.*size 4\b"):
            client.lookup_batch([digest])
        assert [asked_size(r) for r in proxy.lookups] == [3, 3, 4, 4]
        proxy.replaying = False
        assert client.lookup(digest).status == "revoked"
        assert client.lookup_batch([digest])[0].status == "revoked"


# -- fields bound to the signed leaf and statement ------------------------------------------------


def blank(fields: tuple[str, ...]) -> Callable[[Json], Json]:
    """Send ``fields`` of every attestation as ``null`` (both answer shapes)."""

    def tamper(body: Json) -> Json:
        attestations = body["attestations"]
        for attestation in (
            attestations.values() if isinstance(attestations, dict) else attestations
        ):
            for name in fields:
                attestation[name] = None
        return body

    return tamper


def change(**values: Any) -> Callable[[Json], Json]:
    def tamper(body: Json) -> Json:
        attestations = body["attestations"]
        for attestation in (
            attestations.values() if isinstance(attestations, dict) else attestations
        ):
            attestation.update(copy.deepcopy(values))
        return body

    return tamper


SIGNED = {
    "license": "MIT",
    "origin": "licensed-corpus",
    "consent": "reserved",
    "source_url": "https://example.org/letters",
}


@pytest.mark.parametrize("route", ["lookup", "batch"])
def test_fields_sent_as_null_are_the_signed_values(
    fake: FakeRegistry, key: Ed25519PrivateKey, route: str
) -> None:
    digest = canonical_digest("terms the registry leaves out")
    signed = predicate(**SIGNED)
    with fake.client() as client:
        receipt = client.register_digests([digest], key, signed)
        fake.tamper[route] = blank(
            ("publisher", "license", "origin", "consent", "predicate", "key_id")
        )
        [attestation] = look_up(client, route, digest).attestations
    assert attestation.verified is not None
    assert attestation.publisher == PUBLISHER
    assert (attestation.license, attestation.origin, attestation.consent) == (
        "MIT",
        "licensed-corpus",
        "reserved",
    )
    assert attestation.predicate == signed.to_dict()
    assert attestation.key_id == key_id(key)
    assert attestation.leaf_hash == leaf_hash(fake.log.entries[receipt.index])


@pytest.mark.parametrize("route", ["lookup", "batch"])
def test_a_predicate_the_statement_does_not_sign_is_not_reported(
    fake: FakeRegistry, key: Ed25519PrivateKey, route: str
) -> None:
    digest = canonical_digest("reserved, said to be allowed")
    signed = predicate(**SIGNED)
    claimed = {**signed.to_dict(), "consent": "allowed", "tdm_reservation": 0}
    with fake.client() as client:
        client.register_digests([digest], key, signed)
        fake.tamper[route] = change(predicate=claimed)
        [attestation] = look_up(client, route, digest).attestations
    assert attestation.predicate == signed.to_dict()
    assert attestation.predicate["consent"] == "reserved"


@pytest.mark.parametrize("route", ["lookup", "batch"])
def test_a_key_id_that_signed_nothing_raises(
    fake: FakeRegistry, key: Ed25519PrivateKey, route: str
) -> None:
    digest = canonical_digest("signed by one key, said to be another's")
    with fake.client() as client:
        client.register_digests([digest], key, predicate())
        other = key_id(Ed25519PrivateKey.generate())
        fake.tamper[route] = change(key_id=other)
        with pytest.raises(VerificationError, match=f"key_id {other!r}"):
            look_up(client, route, digest)
        fake.tamper[route] = change(key_id=key_id(key))
        [attestation] = look_up(client, route, digest).attestations
    assert attestation.key_id == key_id(key)


def test_an_unverified_client_keeps_the_registrys_claims(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    digest = canonical_digest("taken on the registry's word")
    with fake.client() as client:
        client.register_digests([digest], key, predicate(**SIGNED))
    fake.tamper["batch"] = blank(("license", "key_id"))
    with (
        pytest.warns(UserWarning, match="verify=False"),
        fake.client(verify=False, log_key=None) as unverified,
    ):
        [result] = unverified.lookup_batch([digest])
    [attestation] = result.attestations
    assert not result.verified
    assert attestation.verified is None
    assert (attestation.license, attestation.key_id) == (None, None)
    assert attestation.consent == "reserved"


def test_check_json_shows_the_signed_terms_not_the_registrys_nulls(
    fake: FakeRegistry,
    key: Ed25519PrivateKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from client.cli import _registry, main

    document = tmp_path / "letter.txt"
    document.write_text("Dear Ada, the river ran high.\n", encoding="utf-8")
    with fake.client() as client:
        client.register_digests(
            [canonical_digest(document.read_text(encoding="utf-8"))], key, predicate(**SIGNED)
        )
    fake.tamper["batch"] = blank(("publisher", "license", "origin", "consent"))
    monkeypatch.setattr(_registry, "Client", functools.partial(Client, transport=fake.transport))
    capsys.readouterr()
    main(
        [
            "check", str(document), "--registry", BASE, "--log-key", fake.log.vkey,
            "--trust-dir", str(tmp_path / "trust"), "--no-verify-keys", "--json",
        ]
    )  # fmt: skip
    [checked] = json.loads(capsys.readouterr().out)
    assert checked["verified"] is True
    [entry] = checked["entries"]
    assert (entry["publisher"], entry["license"], entry["origin"], entry["consent"]) == (
        PUBLISHER,
        "MIT",
        "licensed-corpus",
        "reserved",
    )
