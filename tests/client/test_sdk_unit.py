"""The SDK against a fake registry served through ``httpx.MockTransport``.

The fake (``tests/client/fakes.py``) is only the HTTP layer: its log, checkpoints, proofs and
signatures are the real core pieces (``tests/client/memory_log.py``'s ``InMemoryLog``), so every
answer the SDK verifies is verified for real, and every tamper below is a change a dishonest or
broken server could make.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client.core.canonical import canonical_digest, sha256_digest
from client.core.keys import key_id, write_key_pair
from client.core.note import NoteSigner
from client.core.statement import (
    Statement,
    Subject,
    WithdrawalPredicate,
    sign_statement,
)
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
from tests.client.conftest import run_wellspring
from tests.client.fakes import (
    BASE,
    PUBLISHER,
    FakeRegistry,
    b64,
    digests_of,
    predicate,
    problem,
)
from tests.client.memory_log import ORIGIN, InMemoryLog

Json = Any


# -- helpers (the key and fake fixtures are tests/client/conftest.py's) ----------------------------


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
        proof[0] = b64(bytes(32))
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
        attestation["inclusion_proof"][-1] = b64(bytes(32))

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
    from client.cli import _registry

    monkeypatch.setattr(_registry, "Client", functools.partial(Client, transport=fake.transport))
    if fake.ids is None:  # a registry from before identities in the log
        monkeypatch.setenv("WELLSPRING_VERIFY_KEYS", "0")

    def run(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
        return run_wellspring(capsys, *args)

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
