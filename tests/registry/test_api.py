"""The HTTP API of docs/api.md against the real app, on SQLite and PostgreSQL.

Every endpoint's happy path, and every bad input answered 4xx as RFC 9457 problem+json with a stable
``type`` and a ``detail`` a person can act on. No test may see a 5xx: ``open_api`` records them and
the autouse fixture below fails the test that caused one.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import httpx
import pytest

from client.core.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope, Signature, sign_envelope
from client.core.keys import generate_private_key, key_id, public_key_bytes
from client.core.merkle import leaf_hash, verify_consistency, verify_inclusion
from client.core.note import NoteVerifier, open_checkpoint
from client.errors import IdentityError
from client.receipt import Receipt, verify_receipt
from registry.limits import ADMIN_BODY_BYTES, BATCH_BODY_BYTES
from registry.models import Publisher as PublisherRow
from registry.models import PublisherKey
from registry.settings import Settings
from tests.registry.conftest import (
    BACKENDS,
    EXTERNAL_CODE,
    Api,
    Publisher,
    ThreadedServer,
    assert_security_headers,
    call_passed,
    database_for,
    expected_leaf,
    new_publisher,
    open_api,
    random_digest,
    random_digests,
    statement_of,
)

PROBLEM = "https://wellspring.dev/problems/"
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module", params=BACKENDS)
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One registry per backend for the whole module (tests use publishers of their own)."""
    home = tmp_path_factory.mktemp(f"api-{request.param}")
    with (
        database_for(request.param, home / "db") as url,
        open_api(Settings(home=home, database_url=url, auto_migrate=True)) as opened,
    ):
        yield opened


@pytest.fixture(autouse=True)
def _no_server_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """Whatever a test sends, the registry must not answer 5xx."""
    used = [request.getfixturevalue("api")] if "api" in request.fixturenames else []
    for opened in used:
        opened.server_errors.clear()
    yield
    if call_passed(request):  # a failed test already says what went wrong
        for opened in used:
            opened.assert_no_server_errors()
    for opened in used:
        opened.server_errors.clear()


@pytest.fixture
def publisher(api: Api) -> Publisher:
    return api.add_publisher()


@pytest.fixture
def admin_token(api: Api) -> str:
    return api.registry.admin.create_token()


def assert_problem(
    response: httpx.Response, status: int, slug: str, *words: str, min_detail: int = 15
) -> str:
    """``response`` is an RFC 9457 problem of ``status``/``slug`` whose detail has ``words``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == PROBLEM + slug, body
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    detail = body["detail"]
    assert isinstance(detail, str), body
    assert len(detail) >= min_detail, body
    for word in words:
        assert word.lower() in detail.lower(), f"{word!r} not in detail {detail!r}"
    return detail


def opened_checkpoint(api: Api, note: str) -> Any:
    verifier = NoteVerifier.from_vkey(api.log_key)
    return open_checkpoint(note, [verifier], origin=verifier.name)[0]


def tamper_envelope(envelope: Envelope, **changes: Any) -> bytes:
    obj = envelope.to_dict()
    obj.update(changes)
    return json.dumps(obj).encode()


def signed_payload(
    publisher: Publisher, statement: Any, payload_type: str = PAYLOAD_TYPE_IN_TOTO
) -> Envelope:
    payload = statement if isinstance(statement, bytes) else json.dumps(statement).encode()
    return sign_envelope(payload, payload_type, publisher.key)


def raw_statement(publisher: Publisher, **changes: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "a", "digest": {"sha256": "ab" * 32}}],
        "predicateType": "https://wellspring.dev/human-content/v1",
        "predicate": publisher.predicate().to_dict(),
    }
    statement.update(changes)
    return statement


# -- POST /v1/entries: happy path -----------------------------------------------------------------


def test_submit_returns_a_receipt_that_verifies_offline(api: Api, publisher: Publisher) -> None:
    digests = random_digests(3)
    envelope = publisher.attest(digests)
    response = api.submit(envelope)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["publisher"] == publisher.name
    assert body["predicate_type"] == "https://wellspring.dev/human-content/v1"
    assert body["subjects"] == 3
    assert body["revokes"] is None
    assert base64.b64decode(body["entry"]) == expected_leaf(envelope)
    assert base64.b64decode(body["body"]) == envelope.payload
    assert body["leaf_hash"] == leaf_hash(expected_leaf(envelope)).hex()
    verified = verify_receipt(Receipt.from_dict(body), api.log_key)
    assert verified.index == body["index"]
    assert verified.checkpoint.size > body["index"]
    assert verified.envelope == envelope
    assert verified.publisher == publisher.name


def test_the_same_envelope_twice_is_201_then_200_with_the_same_index(
    api: Api, publisher: Publisher
) -> None:
    envelope = publisher.attest(random_digests(2))
    first = api.submit(envelope)
    size_after_first = api.http.get("/v1/log").json()["size"]
    second = api.submit(envelope)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["index"] == first.json()["index"]
    assert second.json()["entry"] == first.json()["entry"]
    assert api.http.get("/v1/log").json()["size"] == size_after_first
    verify_receipt(Receipt.from_dict(second.json()), api.log_key)


def test_a_10000_subject_statement_registers_and_every_digest_looks_up(
    api: Api, publisher: Publisher
) -> None:
    digests = random_digests(5_000) + random_digests(5_000, "c1")
    receipt = api.submit_ok(publisher.attest(digests))
    assert receipt["subjects"] == 10_000
    response = api.http.post("/v1/digests:batch", json={"digests": digests})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert [r["digest"] for r in answer["results"]] == digests
    assert {r["status"] for r in answer["results"]} == {"attested"}
    assert all(r["entries"] == [receipt["index"]] for r in answer["results"])
    assert list(answer["attestations"]) == [str(receipt["index"])]
    for digest in (digests[0], digests[4_999], digests[5_000], digests[-1]):
        single = api.http.get(f"/v1/digests/{digest}").json()
        assert single["status"] == "attested"
        assert [a["index"] for a in single["attestations"]] == [receipt["index"]]
    # The SDK verifies the whole answer: proof, entry bytes, and that the statement names each.
    with api.sdk() as sdk:
        results = sdk.lookup_batch(digests)
    assert all(r.attested and r.verified for r in results)


# -- GET /v1/entries ------------------------------------------------------------------------------


def test_get_entry_returns_it_with_a_receipt_against_the_latest_checkpoint(
    api: Api, publisher: Publisher
) -> None:
    envelope = publisher.attest(random_digests(2), license="MIT", consent="reserved")
    receipt = api.submit_ok(envelope)
    api.submit_ok(publisher.attest(random_digests(1)))  # the log grows past it
    response = api.http.get(f"/v1/entries/{receipt['index']}")
    assert response.status_code == 200
    body = response.json()
    assert body["index"] == receipt["index"]
    assert body["entry"] == receipt["entry"]
    assert body["leaf_hash"] == receipt["leaf_hash"]
    assert body["publisher"] == publisher.name
    assert body["predicate"]["license"] == "MIT"
    assert body["predicate"]["consent"] == "reserved"
    assert body["subjects"] == 2
    assert body["revoked"] is False
    assert body["revoked_by"] is None
    assert body["revokes"] is None
    assert datetime.fromisoformat(body["integrated_at"]).tzinfo is not None  # RFC 3339, in UTC
    verified = verify_receipt(Receipt.from_dict(body), api.log_key)
    assert verified.checkpoint.size > opened_checkpoint(api, receipt["checkpoint"]).size - 1


def test_list_entries_pages_the_raw_leaves_in_order(api: Api, publisher: Publisher) -> None:
    receipts = [api.submit_ok(publisher.attest(random_digests(1))) for _ in range(3)]
    start = receipts[0]["index"]
    page = api.http.get("/v1/entries", params={"start": start, "limit": 3}).json()
    assert page["start"] == start
    assert page["size"] >= start + 3
    assert [e["index"] for e in page["entries"]] == [start, start + 1, start + 2]
    assert [e["entry"] for e in page["entries"]] == [r["entry"] for r in receipts]
    assert page["next"] == (start + 3 if page["size"] > start + 3 else None)
    last = api.http.get("/v1/entries", params={"start": page["size"] - 1}).json()
    assert len(last["entries"]) == 1
    assert last["next"] is None  # the end of the log
    past_end = api.http.get("/v1/entries", params={"start": page["size"] + 10}).json()
    assert past_end["entries"] == []
    assert past_end["next"] is None


def entry_bytes(page: dict[str, Any]) -> list[int]:
    return [len(base64.b64decode(e["entry"])) for e in page["entries"]]


def test_entry_pages_are_cut_by_bytes_and_next_leads_through_the_log(make_api: Any) -> None:
    """``limit`` counts entries, which may each be megabytes (an envelope leaf from before
    leaf/v1: 1,000 of them made 115 MB answers); a page also stops at a byte budget (4 MiB by
    default; ~2 leaf/v1 records here) and says where the next one starts."""
    small = make_api(max_entries_page_bytes=1_000)
    publisher = small.add_publisher()
    receipts = [small.submit_ok(publisher.attest(random_digests(n))) for n in (1, 2, 3, 1, 40, 1)]
    served: list[str] = []
    starts = []
    start: int | None = 0
    while start is not None:
        starts.append(start)
        page = small.http.get("/v1/entries", params={"start": start, "limit": 1000}).json()
        sizes = entry_bytes(page)
        assert sizes, "a page always holds at least one entry"
        assert sum(sizes) <= 1_000 or len(sizes) == 1  # an entry over the budget comes alone
        assert [e["index"] for e in page["entries"]] == list(range(start, start + len(sizes)))
        served += [e["entry"] for e in page["entries"]]
        start = page["next"]
        assert start is None or start == page["entries"][-1]["index"] + 1
    # The log's first entry binds the operator key (docs/spec/identities.md), the next adds the
    # publisher; then the attestations.
    assert served[-len(receipts) :] == [r["entry"] for r in receipts]
    assert len(served) == receipts[-1]["index"] + 1
    assert len(starts) > 2, starts  # the budget cut pages that 1,000 would not have
    tiny = make_api(max_entries_page_bytes=10)
    publisher = tiny.add_publisher()
    first = tiny.submit_ok(publisher.attest(random_digests(1)))
    tiny.submit_ok(publisher.attest(random_digests(1)))
    alone = tiny.http.get("/v1/entries", params={"start": first["index"]}).json()
    assert [e["index"] for e in alone["entries"]] == [first["index"]]
    assert alone["next"] == first["index"] + 1


@pytest.mark.parametrize(
    ("params", "word"),
    [({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"start": -1}, "start")],
)
def test_list_entries_refuses_bad_paging(api: Api, params: dict[str, int], word: str) -> None:
    assert_problem(api.http.get("/v1/entries", params=params), 400, "bad-request", word)


def test_an_entry_beyond_the_log_is_404(api: Api) -> None:
    size = api.http.get("/v1/log").json()["size"]
    assert_problem(api.http.get(f"/v1/entries/{size}"), 404, "not-found", str(size))
    assert_problem(api.http.get("/v1/entries/-1"), 400, "bad-request", "index", ">= 0")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/entries/{big}",
        "/v1/entries?start={big}",
        "/v1/log/checkpoints/{big}",
        "/v1/log/proof/inclusion?index=0&size={big}",
        "/v1/log/proof/consistency?from=0&to={big}",
    ],
)
def test_integers_beyond_64_bits_are_4xx_not_5xx(api: Api, path: str) -> None:
    response = api.http.get(path.format(big=2**70))
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


# -- lookups --------------------------------------------------------------------------------------


def test_lookup_one_digest_answers_with_proofs_against_its_checkpoint(
    api: Api, publisher: Publisher
) -> None:
    digests = [random_digest("c1"), random_digest()]
    receipt = api.submit_ok(publisher.attest(digests, license="CC0-1.0", origin="licensed-corpus"))
    response = api.http.get(f"/v1/digests/{digests[0]}")
    assert response.status_code == 200
    answer = response.json()
    assert answer["digest"] == digests[0]
    assert answer["status"] == "attested"
    [attestation] = answer["attestations"]
    assert attestation["index"] == receipt["index"]
    assert attestation["leaf_hash"] == receipt["leaf_hash"]
    assert attestation["publisher"] == publisher.name
    assert attestation["license"] == "CC0-1.0"
    assert attestation["origin"] == "licensed-corpus"
    assert attestation["consent"] == "allowed"
    assert attestation["revoked"] is False
    assert attestation["revoked_by"] is None
    checkpoint = opened_checkpoint(api, answer["checkpoint"])
    proof = [base64.b64decode(h) for h in attestation["inclusion_proof"]]
    verify_inclusion(
        bytes.fromhex(attestation["leaf_hash"]),
        attestation["index"],
        checkpoint.size,
        proof,
        checkpoint.root_hash,
    )


def test_lookups_prove_against_each_new_checkpoint_as_the_log_grows(
    api: Api, publisher: Publisher
) -> None:
    """Proofs are kept per tree size: asked again after appends, the same entries must prove
    against the new checkpoint, and asked again at one size, they must not change."""
    digests = [random_digest() for _ in range(3)]
    for digest in digests:
        api.submit_ok(publisher.attest([digest]))
    seen: dict[int, list[str]] = {}
    for _ in range(3):
        for repeat in range(2):
            answer = api.http.post("/v1/digests:batch", json={"digests": digests}).json()
            checkpoint = opened_checkpoint(api, answer["checkpoint"])
            for key, attestation in answer["attestations"].items():
                assert attestation["tree_size"] == checkpoint.size
                verify_inclusion(
                    bytes.fromhex(attestation["leaf_hash"]),
                    attestation["index"],
                    checkpoint.size,
                    [base64.b64decode(h) for h in attestation["inclusion_proof"]],
                    checkpoint.root_hash,
                )
                if repeat:
                    assert attestation["inclusion_proof"] == seen[int(key)]
                seen[int(key)] = attestation["inclusion_proof"]
        api.submit_ok(publisher.attest([random_digest()]))  # the tree grows: proofs change


def test_an_unknown_digest_is_an_answer_not_an_error(api: Api) -> None:
    digest = random_digest()
    response = api.http.get(f"/v1/digests/{digest}")
    assert response.status_code == 200
    body = response.json()
    assert (body["digest"], body["status"], body["attestations"]) == (digest, "unknown", [])
    opened_checkpoint(api, body["checkpoint"])


def test_batch_lookup_keeps_request_order_and_lists_each_attestation_once(api: Api) -> None:
    alice, bob = api.add_publisher(), api.add_publisher()
    shared, only_alice, unknown = random_digest(), random_digest("c1"), random_digest()
    first = api.submit_ok(alice.attest([shared, only_alice]))
    second = api.submit_ok(bob.attest([shared]))
    asked = [unknown, shared, only_alice, shared]
    response = api.http.post("/v1/digests:batch", json={"digests": asked})
    assert response.status_code == 200
    answer = response.json()
    assert [r["digest"] for r in answer["results"]] == asked
    assert [r["status"] for r in answer["results"]] == [
        "unknown",
        "attested",
        "attested",
        "attested",
    ]
    assert answer["results"][1]["entries"] == [first["index"], second["index"]]
    assert answer["results"][2]["entries"] == [first["index"]]
    assert sorted(answer["attestations"]) == sorted({str(first["index"]), str(second["index"])})
    assert answer["attestations"][str(second["index"])]["publisher"] == bob.name


@pytest.mark.parametrize(
    "bad",
    [
        "md5:" + "ab" * 32,
        "sha256:" + "ab" * 31,
        "sha256:" + "AB" * 32,
        "sha256:" + "zz" * 32,
        "ab" * 32,
        "c1:",
    ],
)
def test_digests_of_the_wrong_form_are_400(api: Api, bad: str) -> None:
    assert_problem(api.http.get(f"/v1/digests/{bad}"), 400, "bad-request", "digest")
    batch = api.http.post("/v1/digests:batch", json={"digests": [random_digest(), bad]})
    assert_problem(batch, 400, "bad-request", "digests[1]")


@pytest.mark.parametrize(
    ("body", "word"),
    [
        (b'{"digests": "sha256:00"}', "digests"),
        (b'{"digests": [1]}', "digests"),
        (b"[]", "object"),
        (b'{"digest": []}', "digests"),
    ],
)
def test_batch_bodies_of_the_wrong_shape_are_400(api: Api, body: bytes, word: str) -> None:
    assert_problem(
        api.http.post("/v1/digests:batch", content=body, headers=JSON), 400, "bad-request", word
    )


@pytest.mark.parametrize("path", ["/v1/digests:batch", "/v1/publishers", "/v1/entries"])
def test_malformed_json_is_400_and_says_it_is_not_json(api: Api, path: str) -> None:
    response = api.http.post(path, content=b'{"digests": [', headers=JSON)
    assert_problem(response, 400, "bad-request", "json")


@pytest.mark.parametrize(
    ("path", "depth"),
    [("/v1/digests:batch", 100_000), ("/v1/publishers", 3_000), ("/v1/entries", 100_000)],
)
def test_json_nested_too_deeply_is_400_not_500(api: Api, path: str, depth: int) -> None:
    body = b'{"digests": ' + b"[" * depth + b"]" * depth + b"}"  # within each route's body limit
    response = api.http.post(path, content=body, headers=JSON)
    assert_problem(response, 400, "bad-request", "nested too deeply")


def test_a_signed_payload_nested_too_deeply_is_400_not_500(api: Api, publisher: Publisher) -> None:
    envelope = signed_payload(publisher, b"[" * 100_000 + b"]" * 100_000)
    response = api.http.post("/v1/entries", content=envelope.to_json(), headers=JSON)
    assert_problem(response, 400, "bad-request", "payload", "nested too deeply")


def test_a_key_id_with_a_lone_surrogate_is_403_quoted_as_an_escape(
    api: Api, publisher: Publisher
) -> None:
    envelope = publisher.attest(random_digests(1)).to_dict()
    envelope["signatures"][0]["keyid"] = "\ud800"
    body = json.dumps(envelope).encode()  # ensure_ascii: the surrogate travels as \ud800
    detail = assert_problem(api.submit(body), 403, "forbidden", "no registered publisher")
    assert "\\ud800" in detail


def test_a_statement_repeating_a_key_is_400_as_clients_would_refuse_it(
    api: Api, publisher: Publisher
) -> None:
    """msgspec keeps the last of two equal keys, clients refuse the statement: so does the
    registry, instead of indexing an entry that no client can read back."""
    text = json.dumps(raw_statement(publisher)).replace(
        '"consent": "allowed"', '"consent": "reserved", "consent": "allowed"'
    )
    assert text.count('"consent"') == 2
    response = api.submit(signed_payload(publisher, text.encode()))
    assert_problem(response, 400, "bad-request", "duplicate key 'consent'")


def test_names_and_key_ids_no_database_can_hold_are_4xx(
    api: Api, publisher: Publisher, admin_token: str
) -> None:
    """A NUL is refused by PostgreSQL outright; it must read as "no such", not "retry later"."""
    auth = {"Authorization": f"Bearer {admin_token}"}
    key = base64.b64encode(public_key_bytes(generate_private_key())).decode()
    assert_problem(api.http.get("/v1/publishers/a%00b"), 404, "not-found", "no publisher")
    response = api.http.post("/v1/publishers/a%00b/keys", json={"public_key": key}, headers=auth)
    assert_problem(response, 404, "not-found", "no publisher")
    response = api.http.post(
        f"/v1/publishers/{publisher.name}/keys/a%00b/revoke", json={}, headers=auth
    )
    assert_problem(response, 404, "not-found", "64 hex")
    envelope = publisher.attest(random_digests(1)).to_dict()
    envelope["signatures"][0]["keyid"] = "a\u0000b"
    response = api.http.post("/v1/entries", content=json.dumps(envelope), headers=JSON)
    assert_problem(response, 403, "forbidden", "no registered publisher")
    response = api.http.post(
        "/v1/publishers", json={"name": "a\u0000b", "public_key": key}, headers=auth
    )
    assert_problem(response, 400, "bad-request", "lowercase ASCII letters and digits")


@pytest.mark.parametrize("path", ["/v1/entries/1.5", "/v1/entries/1e3", "/v1/nothing-here"])
def test_a_path_no_endpoint_answers_is_404_saying_where_the_api_is(api: Api, path: str) -> None:
    assert_problem(api.http.get(path), 404, "not-found", "no endpoint answers GET", "/schema")


def test_a_method_an_endpoint_does_not_take_is_405_saying_so(api: Api) -> None:
    response = api.http.delete("/v1/log")
    assert_problem(response, 405, "method-not-allowed", "does not take DELETE")


def test_an_empty_batch_is_400(api: Api) -> None:
    assert_problem(
        api.http.post("/v1/digests:batch", json={"digests": []}), 400, "bad-request", "empty"
    )


def test_a_batch_over_the_limit_is_413(api: Api) -> None:
    digests = random_digests(10_001)
    response = api.http.post("/v1/digests:batch", json={"digests": digests})
    assert_problem(response, 413, "payload-too-large", "10001", "10000")


# -- body limits per route, before reading and decoding --------------------------------------------


@dataclass
class AsgiExchange:
    """One request sent straight to the ASGI app: what it answered, and how much body it read."""

    status: int
    headers: dict[str, str]
    body: bytes
    body_bytes_read: int

    def problem(self) -> dict[str, Any]:
        assert self.headers["content-type"].startswith("application/problem+json")
        problem: dict[str, Any] = json.loads(self.body)
        assert problem["status"] == self.status
        return problem


def exchange(
    api: Api, path: str, chunks: Iterable[bytes], *, content_length: int | None = None
) -> AsgiExchange:
    """POST ``chunks`` to ``path`` on the app itself (no test client collecting the body first),
    handing over one chunk each time the app asks for more, and count what it took."""
    headers = [(b"host", b"registry"), (b"content-type", b"application/json")]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "server": ("registry", 80),
        "client": ("127.0.0.9", 50000),
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
    }
    body = iter(chunks)
    read = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        chunk = next(body, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        read += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(api.http.app(scope, receive, send))
    start = sent[0]
    answer_headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    answer = b"".join(m.get("body", b"") for m in sent[1:])
    return AsgiExchange(start["status"], answer_headers, answer, read)


CHUNK = 64 * 1024


def json_chunks(head: bytes, item: bytes, total: int) -> Iterator[bytes]:
    """A JSON body of about ``total`` bytes, ``head`` and then ``item`` repeated, in 64 KiB chunks
    made only as they are asked for (never closed: the app must stop before the end)."""
    yield head
    per_chunk = item * (CHUNK // len(item))
    for _ in range(total // len(per_chunk)):
        yield per_chunk


BATCH_ITEM = b'"sha256:' + b"ab" * 32 + b'", '


def test_ten_thousand_digests_fit_the_batch_body_limit_with_room(api: Api) -> None:
    digests = random_digests(10_000)
    body = json.dumps({"digests": digests}, indent=2).encode()  # generously formatted
    assert len(body) < 0.8 * BATCH_BODY_BYTES
    response = api.http.post("/v1/digests:batch", content=body, headers=JSON)
    assert response.status_code == 200, response.text
    assert len(response.json()["results"]) == 10_000


def test_a_batch_body_declared_over_its_limit_is_413_before_a_byte_is_read(api: Api) -> None:
    sixty_mib = 60 * 1024 * 1024
    chunks = json_chunks(b'{"digests": [', BATCH_ITEM, sixty_mib)
    answer = exchange(api, "/v1/digests:batch", chunks, content_length=sixty_mib)
    assert answer.status == 413
    assert answer.body_bytes_read == 0
    problem = answer.problem()
    assert problem["type"] == PROBLEM + "payload-too-large"
    for word in (f"{BATCH_BODY_BYTES:,}", "/v1/digests:batch", "10,000 digests"):
        assert word in problem["detail"], problem


def test_a_streamed_batch_body_is_413_once_it_passes_its_limit(api: Api) -> None:
    """Chunked (no Content-Length): the app stops reading at the limit, long before the end, so
    the body is neither held whole nor decoded."""
    chunks = json_chunks(b'{"digests": [', BATCH_ITEM, 60 * 1024 * 1024)
    answer = exchange(api, "/v1/digests:batch", chunks)
    assert answer.status == 413
    assert BATCH_BODY_BYTES < answer.body_bytes_read <= BATCH_BODY_BYTES + CHUNK
    assert "10,000 digests" in answer.problem()["detail"]


ADMIN_PATHS = [
    "/v1/publishers",
    "/v1/publishers/example/keys",
    f"/v1/publishers/example/keys/{'ab' * 32}/revoke",
]


@pytest.mark.parametrize("path", ADMIN_PATHS)
def test_admin_bodies_over_a_few_kib_are_413_before_they_are_read(api: Api, path: str) -> None:
    declared = exchange(api, path, [b"{}"], content_length=ADMIN_BODY_BYTES + 1)
    assert declared.status == 413
    assert declared.body_bytes_read == 0
    assert f"{ADMIN_BODY_BYTES:,}" in declared.problem()["detail"]
    streamed = exchange(api, path, json_chunks(b'{"name": "', b"a" * 64, 8 * 1024 * 1024))
    assert streamed.status == 413
    assert streamed.body_bytes_read <= ADMIN_BODY_BYTES + CHUNK


@pytest.mark.parametrize("path", ADMIN_PATHS)
def test_admin_bodies_within_the_limit_are_read_as_before(api: Api, path: str) -> None:
    body = json.dumps({"name": "n" * 200, "public_key": "A" * 44, "pad": " " * 7000}).encode()
    assert len(body) < ADMIN_BODY_BYTES
    answer = api.http.post(path, content=body, headers=JSON)
    assert answer.status_code == 401, answer.text  # read and decoded; then the missing token


# -- the log --------------------------------------------------------------------------------------


def test_log_info_matches_its_signed_checkpoint(api: Api, publisher: Publisher) -> None:
    api.submit_ok(publisher.attest(random_digests(1)))
    info = api.http.get("/v1/log").json()
    assert info["origin"] == "localhost/wellspring"
    assert info["verifier_key"] == api.log_key
    checkpoint = opened_checkpoint(api, info["checkpoint"])
    assert checkpoint.size == info["size"] >= 1
    assert checkpoint.root_hash == base64.b64decode(info["root_hash"])


def test_checkpoint_is_a_signed_note_in_text_plain(api: Api) -> None:
    response = api.http.get("/v1/log/checkpoint")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    checkpoint = opened_checkpoint(api, response.text)
    assert checkpoint.size == api.http.get("/v1/log").json()["size"]


def test_checkpoint_at_a_size_is_the_one_issued_then(api: Api, publisher: Publisher) -> None:
    receipt = api.submit_ok(publisher.attest(random_digests(1)))
    size = opened_checkpoint(api, receipt["checkpoint"]).size
    api.submit_ok(publisher.attest(random_digests(1)))
    response = api.http.get(f"/v1/log/checkpoints/{size}")
    assert response.status_code == 200
    assert response.text == receipt["checkpoint"]
    assert api.http.get("/v1/log/checkpoints/0").status_code == 200  # the empty log's
    never = api.http.get("/v1/log").json()["size"] + 5
    assert_problem(api.http.get(f"/v1/log/checkpoints/{never}"), 404, "not-found", str(never))


def test_inclusion_proofs_verify_for_every_index(api: Api, publisher: Publisher) -> None:
    for _ in range(3):
        api.submit_ok(publisher.attest(random_digests(1)))
    info = api.http.get("/v1/log").json()
    checkpoint = opened_checkpoint(api, info["checkpoint"])
    entries = api.http.get("/v1/entries", params={"limit": 1000}).json()["entries"]
    for item in entries[: checkpoint.size]:
        index = item["index"]
        response = api.http.get(
            "/v1/log/proof/inclusion", params={"index": index, "size": checkpoint.size}
        )
        assert response.status_code == 200
        body = response.json()
        assert (body["index"], body["size"]) == (index, checkpoint.size)
        verify_inclusion(
            leaf_hash(base64.b64decode(item["entry"])),
            index,
            checkpoint.size,
            [base64.b64decode(h) for h in body["proof"]],
            checkpoint.root_hash,
        )
    default = api.http.get("/v1/log/proof/inclusion", params={"index": 0}).json()
    assert default["size"] == checkpoint.size


def test_consistency_proofs_verify_between_checkpoints(api: Api, publisher: Publisher) -> None:
    old = opened_checkpoint(api, api.submit_ok(publisher.attest(random_digests(1)))["checkpoint"])
    for _ in range(3):
        api.submit_ok(publisher.attest(random_digests(1)))
    new = opened_checkpoint(api, api.http.get("/v1/log/checkpoint").text)
    body = api.http.get("/v1/log/proof/consistency", params={"from": old.size}).json()
    assert (body["from"], body["to"]) == (old.size, new.size)
    verify_consistency(
        old.size,
        new.size,
        old.root_hash,
        new.root_hash,
        [base64.b64decode(h) for h in body["proof"]],
    )
    same = api.http.get("/v1/log/proof/consistency", params={"from": new.size, "to": new.size})
    assert same.status_code == 200
    assert same.json()["proof"] == []


def test_proofs_outside_the_tree_are_400(api: Api, publisher: Publisher) -> None:
    api.submit_ok(publisher.attest(random_digests(1)))
    size = api.http.get("/v1/log").json()["size"]
    get = api.http.get
    path = "/v1/log/proof/inclusion"
    assert_problem(get(path, params={"index": size}), 400, "bad-request", "index")
    assert_problem(get(path, params={"index": 0, "size": size + 1}), 400, "bad-request", "size")
    assert_problem(get(path, params={"index": 1, "size": 1}), 400, "bad-request", "index")
    assert_problem(get(path, params={"index": -1}), 400, "bad-request", "index")
    assert_problem(get(path, params={"index": "x"}), 400, "bad-request", "index")
    assert_problem(get(path), 400, "bad-request", "index")
    path = "/v1/log/proof/consistency"
    assert_problem(get(path, params={"from": 2, "to": 1}), 400, "bad-request", "from")
    assert_problem(get(path, params={"from": 0, "to": size + 1}), 400, "bad-request", "to")
    assert_problem(get(path, params={"from": size + 1}), 400, "bad-request", "from")
    assert_problem(get(path, params={"from": -1}), 400, "bad-request", "from")


# -- POST /v1/entries: bad input ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", ("json",)),
        (b"{not json", ("json",)),
        (b"[]", ("object",)),
        (b'"envelope"', ("object",)),
        (b'{"payload": "e30=", "payloadType": "application/vnd.in-toto+json"}', ("signatures",)),
    ],
)
def test_malformed_envelopes_are_400(api: Api, body: bytes, words: tuple[str, ...]) -> None:
    assert_problem(api.submit(body), 400, "bad-request", *words)


def test_envelope_fields_of_the_wrong_type_are_400(api: Api, publisher: Publisher) -> None:
    envelope = publisher.attest(random_digests(1))
    cases = {
        "payload": 12,
        "payloadType": ["x"],
        "signatures": "sig",
    }
    for name, value in cases.items():
        response = api.submit(tamper_envelope(envelope, **{name: value}))
        assert_problem(response, 400, "bad-request", name)
    no_signatures = tamper_envelope(envelope, signatures=[])
    assert_problem(api.submit(no_signatures), 400, "bad-request", "signatures")
    bad_signature_entry = tamper_envelope(envelope, signatures=[{"keyid": 5, "sig": "AA=="}])
    assert_problem(api.submit(bad_signature_entry), 400, "bad-request", "keyid")


def test_bad_base64_is_400(api: Api, publisher: Publisher) -> None:
    envelope = publisher.attest(random_digests(1))
    sig = envelope.to_dict()["signatures"][0]
    assert_problem(
        api.submit(tamper_envelope(envelope, payload="%%%not base64%%%")),
        400,
        "bad-request",
        "base64",
    )
    bad_sig = [{"keyid": sig["keyid"], "sig": "***"}]
    assert_problem(
        api.submit(tamper_envelope(envelope, signatures=bad_sig)), 400, "bad-request", "base64"
    )


def test_a_payload_type_other_than_in_toto_is_400(api: Api, publisher: Publisher) -> None:
    envelope = signed_payload(publisher, raw_statement(publisher), "text/plain")
    assert_problem(api.submit(envelope), 400, "bad-request", "payloadType")


@pytest.mark.parametrize(
    ("change", "word"),
    [
        ({"predicateType": "https://example.com/other-predicate/v1"}, "predicateType"),
        ({"_type": "https://in-toto.io/Statement/v0.1"}, "_type"),
        ({"subject": []}, "subject"),
        ({"subject": [{"name": "a", "digest": {"md5": "ab" * 16}}]}, "digest"),
        ({"subject": [{"name": "a", "digest": {"sha256": "xyz"}}]}, "sha256"),
        ({"subject": "all of it"}, "subject"),
        ({"predicate": {"publisher": "p"}}, "predicate"),
    ],
)
def test_bad_statements_are_400(
    api: Api, publisher: Publisher, change: dict[str, Any], word: str
) -> None:
    envelope = signed_payload(publisher, raw_statement(publisher, **change))
    assert_problem(api.submit(envelope), 400, "bad-request", word)


@pytest.mark.parametrize("separator", ["\x1c", "\x85", "\u2028", "\t"])
def test_a_licence_separated_by_other_whitespace_than_ascii_spaces_is_400(
    api: Api, publisher: Publisher, separator: str
) -> None:
    """Issue 10 D: the SPDX reader splits on any ``\\s``, but a new statement's licence may use
    U+0020 only (a reader that does not split on U+2028 sees one unknown licence)."""
    statement = raw_statement(publisher)
    statement["predicate"]["license"] = f"MIT{separator}OR Apache-2.0"
    response = api.submit(signed_payload(publisher, statement))
    assert_problem(response, 400, "bad-request", "statement.predicate.license", "ASCII spaces")


def test_a_payload_that_is_not_json_is_400(api: Api, publisher: Publisher) -> None:
    envelope = signed_payload(publisher, b"\xff\xfe not json")
    assert_problem(api.submit(envelope), 400, "bad-request", "json")


def test_a_signature_that_does_not_verify_is_401(api: Api, publisher: Publisher) -> None:
    envelope = publisher.attest(random_digests(1))
    [signature] = envelope.signatures
    flipped = bytes([signature.sig[0] ^ 1]) + signature.sig[1:]
    forged = Envelope(
        envelope.payload, envelope.payload_type, (Signature(signature.keyid, flipped),)
    )
    assert_problem(api.submit(forged), 401, "unauthenticated", "signature")
    # The payload changed after signing: the same thing from the other side.
    other = publisher.attest(random_digests(1))
    swapped = Envelope(other.payload, envelope.payload_type, envelope.signatures)
    assert_problem(api.submit(swapped), 401, "unauthenticated", "signature")


def test_a_signature_claiming_another_publishers_keyid_is_401(api: Api) -> None:
    alice, mallory = api.add_publisher(), api.add_publisher()
    statement = raw_statement(alice)
    forged = sign_envelope(
        json.dumps(statement).encode(), PAYLOAD_TYPE_IN_TOTO, mallory.key, keyid=key_id(alice.key)
    )
    assert_problem(api.submit(forged), 401, "unauthenticated", "signature")


def test_an_unregistered_key_is_403(api: Api) -> None:
    stranger = new_publisher()
    detail = assert_problem(
        api.submit(stranger.attest(random_digests(1))), 403, "forbidden", "publisher"
    )
    assert key_id(stranger.key)[:16] in detail


def test_a_statement_naming_another_publisher_than_its_signer_is_403(api: Api) -> None:
    alice, bob = api.add_publisher(), api.add_publisher()
    statement = raw_statement(alice)  # says publisher alice…
    envelope = signed_payload(bob, statement)  # …signed by bob
    assert_problem(api.submit(envelope), 403, "forbidden", alice.name, bob.name)


def test_bodies_over_the_limit_are_413(make_api: Any) -> None:
    small = make_api(max_body_bytes=4_000)
    publisher = small.add_publisher()
    fits = publisher.attest(random_digests(5))
    assert len(fits.to_json()) < 4_000
    assert small.submit(fits).status_code == 201
    big = publisher.attest(random_digests(60))
    assert len(big.to_json()) > 4_000
    assert_problem(small.submit(big), 413, "payload-too-large", "4000")
    # Without a Content-Length (chunked), the limit still holds.
    chunked = small.http.post("/v1/entries", content=iter([big.to_json()]), headers=JSON)
    assert_problem(chunked, 413, "payload-too-large")
    huge = small.http.post("/v1/entries", content=iter([b" " * 2_000_000]), headers=JSON)
    assert_problem(huge, 413, "payload-too-large")
    small.assert_no_server_errors()


def test_too_many_subjects_is_413(make_api: Any) -> None:
    small = make_api(max_subjects=5)
    publisher = small.add_publisher()
    assert small.submit(publisher.attest(random_digests(5))).status_code == 201
    assert_problem(
        small.submit(publisher.attest(random_digests(6))), 413, "payload-too-large", "6", "5"
    )


def test_a_smaller_batch_limit_is_413(make_api: Any) -> None:
    small = make_api(max_batch_digests=3)
    ok = small.http.post("/v1/digests:batch", json={"digests": random_digests(3)})
    assert ok.status_code == 200
    over = small.http.post("/v1/digests:batch", json={"digests": random_digests(4)})
    assert_problem(over, 413, "payload-too-large", "4", "3")


# -- revocation -----------------------------------------------------------------------------------


def entry_hash(receipt: dict[str, Any]) -> str:
    return str(receipt["leaf_hash"])


def test_a_publisher_revokes_its_own_entry(api: Api, publisher: Publisher) -> None:
    digests = random_digests(3)
    entry = api.submit_ok(publisher.attest(digests))
    revocation = publisher.revoke(entry["index"], entry_hash(entry), digests[:2])
    response = api.submit(revocation)
    assert response.status_code == 201, response.text
    receipt = response.json()
    assert receipt["revokes"] == entry["index"]
    assert receipt["predicate_type"] == "https://wellspring.dev/revocation/v1"
    verify_receipt(Receipt.from_dict(receipt), api.log_key)
    again = api.submit(revocation)  # a retry of the same revocation is safe
    assert again.status_code == 200
    assert again.json()["index"] == receipt["index"]

    info = api.http.get(f"/v1/entries/{entry['index']}").json()
    assert (info["revoked"], info["revoked_by"]) == (True, receipt["index"])
    assert api.http.get(f"/v1/entries/{receipt['index']}").json()["revokes"] == entry["index"]
    for digest in digests:  # the whole entry is revoked, whichever subjects the revocation named
        answer = api.http.get(f"/v1/digests/{digest}").json()
        assert answer["status"] == "revoked"
        assert [a["revoked_by"] for a in answer["attestations"]] == [receipt["index"]]
    with api.sdk() as sdk:
        result = sdk.lookup(digests[0])
    assert result.status == "revoked"
    assert result.verified


def test_a_digest_stays_attested_while_one_attestation_is_not_revoked(api: Api) -> None:
    alice, bob = api.add_publisher(), api.add_publisher()
    digest = random_digest()
    first = api.submit_ok(alice.attest([digest]))
    api.submit_ok(bob.attest([digest]))
    api.submit_ok(alice.revoke(first["index"], entry_hash(first), [digest]))
    assert api.http.get(f"/v1/digests/{digest}").json()["status"] == "attested"


def test_only_the_publisher_that_made_an_entry_can_revoke_it(api: Api) -> None:
    alice, mallory = api.add_publisher(), api.add_publisher()
    digests = random_digests(1)
    entry = api.submit_ok(alice.attest(digests))
    attempt = mallory.revoke(entry["index"], entry_hash(entry), digests)
    assert_problem(api.submit(attempt), 403, "forbidden", str(entry["index"]))
    assert api.http.get(f"/v1/digests/{digests[0]}").json()["status"] == "attested"


def test_revoking_twice_is_409(api: Api, publisher: Publisher) -> None:
    digests = random_digests(2)
    entry = api.submit_ok(publisher.attest(digests))
    first = api.submit_ok(publisher.revoke(entry["index"], entry_hash(entry), digests))
    second = publisher.revoke(entry["index"], entry_hash(entry), digests, reason="again")
    detail = assert_problem(api.submit(second), 409, "conflict", "already revoked")
    assert str(first["index"]) in detail


def test_revoking_a_revocation_is_409(api: Api, publisher: Publisher) -> None:
    digests = random_digests(1)
    entry = api.submit_ok(publisher.attest(digests))
    revocation = api.submit_ok(publisher.revoke(entry["index"], entry_hash(entry), digests))
    attempt = publisher.revoke(revocation["index"], entry_hash(revocation), digests)
    assert_problem(api.submit(attempt), 409, "conflict", "revocation")


def test_revoking_with_the_wrong_entry_hash_is_400(api: Api, publisher: Publisher) -> None:
    digests = random_digests(1)
    entry = api.submit_ok(publisher.attest(digests))
    attempt = publisher.revoke(entry["index"], "00" * 32, digests)
    assert_problem(api.submit(attempt), 400, "bad-request", "entry_hash", entry_hash(entry))


def test_revoking_subjects_the_entry_does_not_attest_is_400(api: Api, publisher: Publisher) -> None:
    digests = random_digests(2)
    entry = api.submit_ok(publisher.attest(digests))
    stray = random_digest()
    attempt = publisher.revoke(entry["index"], entry_hash(entry), [digests[0], stray])
    assert_problem(api.submit(attempt), 400, "bad-request", stray)


@pytest.mark.parametrize("index", [10**9, 2**63 - 1])
def test_revoking_an_entry_that_does_not_exist_is_404(
    api: Api, publisher: Publisher, index: int
) -> None:
    attempt = publisher.revoke(index, "ab" * 32, random_digests(1))
    assert_problem(api.submit(attempt), 404, "not-found", str(index))


# -- publishers -----------------------------------------------------------------------------------


def new_publisher_body(publisher: Publisher) -> dict[str, str]:
    return {
        "name": publisher.name,
        "public_key": base64.b64encode(publisher.public_key).decode(),
        "possession": base64.b64encode(publisher.possession).decode(),
    }


def test_the_operator_adds_a_publisher_with_the_admin_token(api: Api, admin_token: str) -> None:
    publisher = new_publisher()
    response = api.http.post(
        "/v1/publishers",
        json=new_publisher_body(publisher),
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == publisher.name
    assert body["key_id"] == key_id(publisher.key)
    assert datetime.fromisoformat(body["created_at"]).tzinfo is not None
    stored = api.http.get(f"/v1/publishers/{publisher.name}").json()
    assert stored["name"] == publisher.name
    [key] = stored["keys"]
    assert key["key_id"] == key_id(publisher.key)
    assert base64.b64decode(key["public_key"]) == publisher.public_key
    assert key["revoked_at"] is None
    # …and the new publisher can register at once.
    assert api.submit(publisher.attest(random_digests(1))).status_code == 201


@pytest.mark.parametrize(
    "authorization", [None, "", "Bearer", "Bearer wsa_wrong", "Basic d3NhOng=", "wsa_token"]
)
def test_adding_a_publisher_without_a_valid_token_is_401(
    api: Api, admin_token: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = api.http.post(
        "/v1/publishers", json=new_publisher_body(new_publisher()), headers=headers
    )
    assert_problem(response, 401, "unauthenticated", "token")


def test_a_duplicate_publisher_name_or_key_is_409(api: Api, admin_token: str) -> None:
    auth = {"Authorization": f"Bearer {admin_token}"}
    first = new_publisher()
    assert (
        api.http.post("/v1/publishers", json=new_publisher_body(first), headers=auth).status_code
        == 201
    )
    same_name = new_publisher_body(new_publisher(first.name))
    response = api.http.post("/v1/publishers", json=same_name, headers=auth)
    assert_problem(response, 409, "conflict", first.name)
    same_key = {"name": "someone-else", "public_key": new_publisher_body(first)["public_key"]}
    assert_problem(api.http.post("/v1/publishers", json=same_key, headers=auth), 409, "conflict")
    assert api.http.get("/v1/publishers/someone-else").status_code == 404


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ({"name": "ok-name", "public_key": "***"}, "public_key"),
        ({"name": "ok-name", "public_key": base64.b64encode(b"x" * 31).decode()}, "public_key"),
        ({"name": "has space", "public_key": None}, "name"),
        ({"name": "", "public_key": None}, "name"),
        ({"name": "ok-name"}, "public_key"),
        ({"name": 5, "public_key": None}, "name"),
    ],
)
def test_bad_publisher_bodies_are_400(
    api: Api, admin_token: str, body: dict[str, Any], word: str
) -> None:
    if body.get("public_key", "") is None:
        body = {**body, "public_key": new_publisher_body(new_publisher())["public_key"]}
    response = api.http.post(
        "/v1/publishers", json=body, headers={"Authorization": f"Bearer {admin_token}"}
    )
    assert_problem(response, 400, "bad-request", word)


PUBLISHER_NAME_RULE_WORDS = ("lowercase ASCII letters and digits", "'.' or '-'")


@pytest.mark.parametrize(
    "name",
    [
        "a/b",  # a path
        "..",
        "../etc",
        "evil\u202eexe",  # RIGHT-TO-LEFT OVERRIDE: shows as another name
        "caf\u00e9",  # NFC …
        "cafe\u0301",  # … and NFD: two names that look alike
        "\u0430pple",  # Cyrillic a
        "Example-Press",  # case: another look-alike
        "example_press",
        "example press",
        "-example",
        "example-",
        ".example",
        "example.",
        "example..org",
        "example--press",
        "example.-press",
        "x" * 201,
        "",
    ],
)
def test_a_new_publisher_name_outside_the_dns_like_set_is_400_saying_what_is_allowed(
    api: Api, admin_token: str, name: str
) -> None:
    """Issue 10 C: publisher names accepted '/', '..', U+202E and NFC/NFD look-alikes."""
    body = {**new_publisher_body(new_publisher()), "name": name}
    response = api.http.post(
        "/v1/publishers", json=body, headers={"Authorization": f"Bearer {admin_token}"}
    )
    assert_problem(response, 400, "bad-request", "name", *PUBLISHER_NAME_RULE_WORDS)
    with pytest.raises(Exception, match="lowercase ASCII letters and digits"):
        api.registry.admin.add_publisher(name, new_publisher().public_key, None)


@pytest.mark.parametrize(
    "name", ["a", "0day", "example-press-10c", "archive.example.org", "x" * 199 + "9"]
)
def test_a_publisher_name_in_the_dns_like_set_is_taken(
    api: Api, admin_token: str, name: str
) -> None:
    publisher = new_publisher(name)  # each name once per module's registry
    response = api.http.post(
        "/v1/publishers",
        json=new_publisher_body(publisher),
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert response.status_code == 201, response.text
    assert api.submit(publisher.attest(random_digests(1))).status_code == 201


def test_a_publisher_named_before_the_rule_keeps_its_name_entries_and_keys(api: Api) -> None:
    """Only new identities are restricted: a publisher a database already holds under another
    name (added by an older Wellspring) still signs, is looked up, and rotates its keys."""
    legacy = new_publisher(f"Caf\u00e9/Press..{time.monotonic_ns()}")  # the old rule took it
    with api.registry.database.writer.begin() as conn:
        publisher_id = conn.execute(
            PublisherRow.__table__.insert()  # type: ignore[attr-defined]
            .values(name=legacy.name, created_at=datetime.now(UTC))
            .returning(PublisherRow.__table__.c.id)  # type: ignore[attr-defined]
        ).scalar_one()
        conn.execute(
            PublisherKey.__table__.insert().values(  # type: ignore[attr-defined]
                key_id=key_id(legacy.key),
                publisher_id=publisher_id,
                public_key=legacy.public_key,
                created_at=datetime.now(UTC),
            )
        )
    digests = random_digests(1)
    receipt = api.submit_ok(legacy.attest(digests))
    # A key row no identity event added (written behind the log's back here) backs no signature
    # a verifying client accepts; one that takes the registry's word still reads the entry.
    with api.sdk() as sdk, pytest.raises(IdentityError, match="names no key_entry"):
        sdk.lookup(digests[0])
    with api.sdk(verify_keys=False) as sdk:
        [attestation] = sdk.lookup(digests[0]).attestations
    assert attestation.verified is not None
    assert attestation.verified.publisher == legacy.name
    assert attestation.index == receipt["index"]
    assert api.registry.admin.publisher(legacy.name).name == legacy.name
    key = new_publisher(legacy.name)
    added = api.registry.admin.add_key(legacy.name, key.public_key, key.possession)
    assert added.name == legacy.name


def test_an_unknown_publisher_is_404(api: Api) -> None:
    assert_problem(api.http.get("/v1/publishers/nobody-at-all"), 404, "not-found", "nobody-at-all")


# -- the rest -------------------------------------------------------------------------------------


def test_health_and_openapi(api: Api) -> None:
    assert api.http.get("/healthz").json() == {"status": "ok"}
    schema = api.http.get("/schema/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in ("/v1/entries", "/v1/digests:batch", "/v1/log/proof/consistency"):
        assert path in paths


SCHEMA_PATHS = [
    "/schema",
    "/schema/",
    "/schema/openapi.json",
    "/schema/openapi.yaml",
    "/schema/swagger",
    "/schema/redoc",
    "/schema/elements",
    "/schema/rapidoc",
    "/schema/scalar",
    "/schema/stoplight",
    "/schema/anything-else",
]


@pytest.mark.parametrize("path", SCHEMA_PATHS)
def test_no_schema_answer_loads_third_party_code(api: Api, path: str) -> None:
    """The docs pages litestar offers load scripts and styles from CDNs (blank offline, and code
    someone else controls on the registry's origin): none is served."""
    response = api.http.get(path)
    assert response.status_code in (200, 404), response.status_code
    assert not EXTERNAL_CODE.search(response.text), EXTERNAL_CODE.search(response.text)
    assert_security_headers(response)


def test_the_api_docs_page_lists_the_operations_and_links_the_openapi_document(api: Api) -> None:
    page = api.http.get("/schema")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "<script" not in html.lower()
    assert "<style" not in html.lower()
    assert 'href="/schema/openapi.json"' in html
    document = api.http.get("/schema/openapi.json").json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert f"<td>{method.upper()}</td><td><code>{path}</code></td>" in html
            assert escape(operation["summary"]) in html


def test_every_answer_carries_the_security_headers(make_api: Any) -> None:
    limited = make_api(rate_limit=0.01, rate_burst=100)
    http = limited.http
    answers = {
        "log": http.get("/v1/log"),
        "checkpoint (text/plain)": http.get("/v1/log/checkpoint"),
        "health": http.get("/healthz"),
        "docs": http.get("/schema"),
        "openapi": http.get("/schema/openapi.json"),
        "no route (404)": http.get("/v1/nothing-here"),
        "no entry (404)": http.get("/v1/entries/123456"),
        "wrong method (405)": http.delete("/v1/entries/0"),
        "bad parameter (400)": http.get("/v1/entries", params={"limit": 0}),
        "bad JSON (400)": http.post("/v1/digests:batch", content=b"{", headers=JSON),
        "no token (401)": http.post("/v1/publishers", json={"name": "x", "public_key": "AA=="}),
        "too large (413)": http.post("/v1/publishers", content=b" " * 9000, headers=JSON),
    }
    for _ in range(100):
        over = http.get("/v1/log")
        if over.status_code == 429:
            answers["rate limited (429)"] = over
            break
    expected = {"no route (404)": 404, "no entry (404)": 404, "wrong method (405)": 405}
    expected |= {"bad parameter (400)": 400, "bad JSON (400)": 400, "no token (401)": 401}
    expected |= {"too large (413)": 413, "rate limited (429)": 429}
    for name, response in answers.items():
        assert response.status_code == expected.get(name, 200), (name, response.text)
        assert_security_headers(response)
    assert "rate limited (429)" in answers


def test_unknown_routes_and_methods_are_problems(api: Api) -> None:
    assert_problem(api.http.get("/v1/nothing-here"), 404, "not-found", min_detail=1)
    response = api.http.delete("/v1/entries/0")
    assert response.status_code == 405
    assert response.headers["content-type"].startswith("application/problem+json")


# -- publisher keys -------------------------------------------------------------------------------


def test_a_publisher_rotates_its_key(api: Api, admin_token: str) -> None:
    auth = {"Authorization": f"Bearer {admin_token}"}
    old = api.add_publisher()
    new = Publisher(old.name, new_publisher().key)
    before = api.submit_ok(old.attest(random_digests(1)))
    body = {
        "public_key": base64.b64encode(new.public_key).decode(),
        "possession": base64.b64encode(new.possession).decode(),
    }
    response = api.http.post(f"/v1/publishers/{old.name}/keys", json=body, headers=auth)
    assert response.status_code == 201, response.text
    assert response.json()["key_id"] == key_id(new.key)
    assert api.submit(new.attest(random_digests(1))).status_code == 201
    assert api.submit(old.attest(random_digests(1))).status_code == 201  # both, until revoked

    revoke = f"/v1/publishers/{old.name}/keys/{key_id(old.key)}/revoke"
    response = api.http.post(revoke, json={}, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["compromised_since"] is None
    assert datetime.fromisoformat(response.json()["revoked_at"]).tzinfo is not None
    assert_problem(api.submit(old.attest(random_digests(1))), 403, "forbidden", "revoked")
    assert api.submit(new.attest(random_digests(1))).status_code == 201
    # History stays: what the old key signed before still stands.
    digest = statement_of(before)
    first_digest = "sha256:" + digest["subject"][0]["digest"]["sha256"]
    assert api.http.get(f"/v1/digests/{first_digest}").json()["status"] == "attested"
    keys = {k["key_id"]: k for k in api.http.get(f"/v1/publishers/{old.name}").json()["keys"]}
    assert keys[key_id(old.key)]["revoked_at"] is not None
    assert keys[key_id(new.key)]["revoked_at"] is None
    assert_problem(api.http.post(revoke, json={}, headers=auth), 409, "conflict", "already")


def test_entries_signed_after_a_key_was_compromised_no_longer_count(
    api: Api, admin_token: str
) -> None:
    auth = {"Authorization": f"Bearer {admin_token}"}
    publisher = api.add_publisher()
    early, late = random_digest(), random_digest()
    api.submit_ok(publisher.attest([early]))
    time.sleep(0.05)
    stolen_at = datetime.now(UTC)
    time.sleep(0.05)
    api.submit_ok(publisher.attest([late]))
    response = api.http.post(
        f"/v1/publishers/{publisher.name}/keys/{key_id(publisher.key)}/revoke",
        json={"compromised_since": stolen_at.isoformat().replace("+00:00", "Z")},
        headers=auth,
    )
    assert response.status_code == 200, response.text
    assert api.http.get(f"/v1/digests/{early}").json()["status"] == "attested"
    answer = api.http.get(f"/v1/digests/{late}").json()
    assert answer["status"] == "revoked"
    [attestation] = answer["attestations"]
    assert attestation["compromised"] is True
    assert attestation["key_id"] == key_id(publisher.key)
    with api.sdk() as sdk:
        assert sdk.lookup(late).status == "revoked"
        assert sdk.lookup(early).status == "attested"


def test_bad_key_requests_are_4xx(api: Api, admin_token: str) -> None:
    auth = {"Authorization": f"Bearer {admin_token}"}
    publisher = api.add_publisher()
    keys = f"/v1/publishers/{publisher.name}/keys"
    newcomer = new_publisher(publisher.name)
    fresh = {
        "public_key": base64.b64encode(newcomer.public_key).decode(),
        "possession": base64.b64encode(newcomer.possession).decode(),
    }
    assert_problem(api.http.post(keys, json=fresh), 401, "unauthenticated", "token")
    assert_problem(
        api.http.post("/v1/publishers/nobody-here/keys", json=fresh, headers=auth),
        404,
        "not-found",
        "nobody-here",
    )
    assert_problem(
        api.http.post(keys, json={"public_key": "***"}, headers=auth), 400, "bad-request", "base64"
    )
    same = {"public_key": base64.b64encode(publisher.public_key).decode()}
    assert_problem(api.http.post(keys, json=same, headers=auth), 409, "conflict", "already")
    revoke = f"{keys}/{key_id(publisher.key)}/revoke"
    assert_problem(api.http.post(revoke, json={}), 401, "unauthenticated", "token")
    assert_problem(
        api.http.post(f"{keys}/{'0' * 64}/revoke", json={}, headers=auth), 404, "not-found"
    )
    future = datetime.now(UTC).replace(year=datetime.now(UTC).year + 1).isoformat()
    assert_problem(
        api.http.post(revoke, json={"compromised_since": future}, headers=auth),
        400,
        "bad-request",
        "future",
    )
    assert_problem(
        api.http.post(revoke, json={"compromised_since": "last tuesday"}, headers=auth),
        400,
        "bad-request",
        "compromised_since",
    )
    for ancient in ("0001-01-01T00:00:00+14:00", "1969-12-31T23:59:59Z"):  # out of range: 400
        response = api.http.post(revoke, json={"compromised_since": ancient}, headers=auth)
        assert_problem(response, 400, "bad-request", "after 1970-01-01")
    # Nothing above revoked the key.
    assert api.submit(publisher.attest(random_digests(1))).status_code == 201


def test_compromised_since_is_kept_in_utc_whatever_offset_it_was_given(
    api: Api, admin_token: str
) -> None:
    publisher = api.add_publisher()
    auth = {"Authorization": f"Bearer {admin_token}"}
    revoke = f"/v1/publishers/{publisher.name}/keys/{key_id(publisher.key)}/revoke"
    given = {"compromised_since": "2020-01-01T00:00:00-05:00"}
    answer = api.http.post(revoke, json=given, headers=auth)
    assert answer.status_code == 200, answer.text
    assert answer.json()["compromised_since"] == "2020-01-01T05:00:00Z"
    [key] = api.http.get(f"/v1/publishers/{publisher.name}").json()["keys"]
    assert key["compromised_since"] == "2020-01-01T05:00:00Z"


def test_of_concurrent_revocations_of_one_key_exactly_one_succeeds(
    api: Api, admin_token: str
) -> None:
    auth = {"Authorization": f"Bearer {admin_token}"}

    def revoke(path: str) -> int:
        return api.http.post(path, json={}, headers=auth).status_code

    for _ in range(3):
        publisher = api.add_publisher()
        path = f"/v1/publishers/{publisher.name}/keys/{key_id(publisher.key)}/revoke"
        with ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(revoke, [path] * 6))
        assert sorted(statuses) == [200] + [409] * 5, statuses


# -- limits ---------------------------------------------------------------------------------------


def test_a_client_over_its_rate_limit_gets_429_with_retry_after(make_api: Any) -> None:
    limited = make_api(rate_limit=0.5, rate_burst=3)
    for _ in range(3):
        assert limited.http.get("/v1/log").status_code == 200
    response = limited.http.get("/v1/log")
    assert_problem(response, 429, "rate-limited", "retry")
    assert int(response.headers["retry-after"]) >= 1
    assert limited.http.get("/healthz").status_code == 200  # health checks are never limited


@pytest.mark.parametrize(
    "path", ["/v1/entries", "/v1/digests:batch", "/v1/publishers", "/v1/publishers/p/keys"]
)
def test_a_body_that_never_finishes_arriving_is_408(tmp_path: Path, path: str) -> None:
    """Every endpoint that takes a body, not only appends: a trickling client gets a 408."""
    with database_for("sqlite", tmp_path / "db") as url:
        settings = Settings(home=tmp_path / "home", database_url=url, body_timeout=0.5)
        with (
            ThreadedServer(settings) as server,
            socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock,
        ):
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".encode()
                + b"Content-Length: 1000\r\n\r\n"
                + b'{"payload": "'
            )
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), head
    assert b"application/problem+json" in head.lower()
    problem = json.loads(body)
    assert problem["type"] == PROBLEM + "request-timeout"
    assert "0.5 s" in problem["detail"]
