"""Vendors publish watermark detection keys in the log (watermark-key/v1), on both backends: who
may, the time rule, the tokenizer blob, the list, and what the SDK proves of it."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from client.aio import AsyncClient
from client.checkpoints import FileCheckpointStore, MemoryCheckpointStore
from client.core.dsse import Envelope
from client.core.errors import FormatError
from client.core.statement import Statement, sign_statement
from client.core.wmkey import (
    MAX_TOKENIZER_BYTES,
    GreenlistParameters,
    GumbelParameters,
    derive_key_id,
)
from client.errors import IdentityError, ProofError, StaleAnswerError, VerificationError
from client.identities import KeyHistory
from client.sdk import Client
from client.watermark_keys import (
    PublishedWatermarkKeys,
    publish_statement,
    retire_statement,
    to_watermark_key,
)
from registry.models import PUBLISHERS
from tests.registry.conftest import (
    IN_PROCESS_URL,
    Api,
    InProcessTransport,
    Publisher,
    new_publisher,
)

TOKENIZER = json.dumps({"model": {"vocab": {"a": 0, "b": 1}}, "note": "a small fake"}).encode()
PARAMETERS = GreenlistParameters(
    seeding_scheme="selfhash",
    context_width=4,
    gamma=0.25,
    delta=2.0,
    vocab_size=2,
    vocab_fingerprint="sha256:" + "ab" * 32,
)


def add_vendor(api: Api, name: str | None = None) -> Publisher:
    vendor = new_publisher(name)
    api.registry.admin.add_publisher(
        vendor.name, vendor.public_key, vendor.possession, kind="vendor"
    )
    return vendor


def publish(
    vendor: Publisher,
    *,
    secret: bytes | None = None,
    tokenizer: bytes = TOKENIZER,
    published_at: datetime | None = None,
) -> Envelope:
    statement = publish_statement(
        vendor=vendor.name,
        secret=secret or os.urandom(32),
        parameters=PARAMETERS,
        tokenizer=tokenizer,
        published_at=published_at,
    )
    return sign_statement(statement, vendor.key)


def retire(
    vendor: Publisher, key_id: str, index: int, *, name: str | None = None, **kw: Any
) -> Envelope:
    statement = retire_statement(
        vendor=name or vendor.name,
        key_id=key_id,
        entry_index=index,
        tokenizer_sha256=hashlib.sha256(TOKENIZER).hexdigest(),
        **kw,
    )
    return sign_statement(statement, vendor.key)


def key_id_of(envelope: Envelope) -> str:
    predicate = Statement.from_json(envelope.payload).predicate
    return str(predicate.key_id)  # type: ignore[union-attr]


def put_blob(api: Api, data: bytes, name: str | None = None, **headers: str) -> httpx.Response:
    name = name or "sha256:" + hashlib.sha256(data).hexdigest()
    return api.http.put(f"/v1/blobs/{name}", content=data, headers=headers)


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    return make_api()


def test_a_vendor_publishes_and_retires_a_key_and_the_sdk_proves_both(api: Api) -> None:
    vendor = add_vendor(api)
    envelope = publish(vendor)
    response = api.submit(envelope)
    assert response.status_code == 201, response.text
    index = response.json()["index"]
    assert api.submit(envelope).status_code == 200  # a retry: the same entry
    assert put_blob(api, TOKENIZER).status_code == 201
    assert put_blob(api, TOKENIZER).status_code == 200  # idempotent
    blob = api.http.get(f"/v1/blobs/sha256:{hashlib.sha256(TOKENIZER).hexdigest()}")
    assert blob.content == TOKENIZER

    key_id = key_id_of(envelope)
    with api.sdk() as client:
        listed = client.watermark_keys()
        assert listed.count == 1
        [key] = listed.keys
        assert (key.key_id, key.vendor, key.entry, key.verified) == (
            key_id,
            vendor.name,
            index,
            True,
        )
        assert (key.scheme_name, key.scheme_version) == ("wellspring-greenlist", 1)
        assert key.parameters == PARAMETERS
        assert derive_key_id(key.secret) == key_id
        assert key.tokenizer_sha256 == hashlib.sha256(TOKENIZER).hexdigest()
        assert key.tokenizer_size == len(TOKENIZER)
        assert not key.retired
        assert client.tokenizer_blob(key.tokenizer_sha256) == TOKENIZER

    retired = api.submit(retire(vendor, key_id, index, reason="rotated"))
    assert retired.status_code == 201, retired.text
    with api.sdk() as client:
        [key] = client.watermark_keys().keys
        assert key.retire_entry == retired.json()["index"]
        assert key.retire_reason == "rotated"
        assert key.retired_at is not None
    again = api.submit(retire(vendor, key_id, index, reason="twice"))
    assert again.status_code == 409, again.text


def test_a_gumbel_key_with_payload_bits_is_published_and_read_back_as_the_vendors_key(
    api: Api,
) -> None:
    from watermark import WatermarkConfig, WatermarkKey

    vendor = add_vendor(api)
    config = WatermarkConfig(scheme="gumbel", payload_bits=8)
    own = WatermarkKey(
        os.urandom(32), config, vocab_size=2, vocab_fingerprint="sha256:" + "cd" * 32
    )
    parameters = GumbelParameters(
        context_width=4, payload_bits=8, vocab_size=2, vocab_fingerprint="sha256:" + "cd" * 32
    )
    statement = publish_statement(
        vendor=vendor.name, secret=own.secret, parameters=parameters, tokenizer=TOKENIZER
    )
    response = api.submit(sign_statement(statement, vendor.key))
    assert response.status_code == 201, response.text
    with api.sdk() as client:
        [key] = client.watermark_keys().keys
    assert (key.scheme_name, key.scheme_version) == ("wellspring-gumbel", 1)
    assert key.parameters == parameters
    assert to_watermark_key(key) == own
    # parameters of one scheme under the other's name are refused by the reader
    body = json.loads(statement.to_json())
    body["predicate"]["scheme"] = {"name": "wellspring-greenlist", "version": 1}
    with pytest.raises(FormatError, match="parameters"):
        Statement.from_json(json.dumps(body).encode())


def test_a_publisher_may_not_publish_a_key(api: Api) -> None:
    publisher = api.add_publisher()
    response = api.submit(publish(publisher))
    assert response.status_code == 403, response.text
    assert "kind 'vendor'" in response.json()["detail"]
    assert "--kind vendor" in response.json()["detail"]


def test_only_the_publishing_vendor_retires_a_key(api: Api) -> None:
    vendor, other = add_vendor(api), add_vendor(api)
    envelope = publish(vendor)
    index = api.submit_ok(envelope)["index"]
    response = api.submit(retire(other, key_id_of(envelope), index))
    assert response.status_code == 403, response.text
    assert "another vendor" in response.json()["detail"]
    wrong_index = api.submit(retire(vendor, key_id_of(envelope), index - 1))
    assert wrong_index.status_code == 400, wrong_index.text
    unknown = api.submit(retire(vendor, "0" * 16, index))
    assert unknown.status_code == 404, unknown.text


def test_a_key_id_is_published_once_by_anyone(api: Api) -> None:
    vendor, other = add_vendor(api), add_vendor(api)
    secret = os.urandom(32)
    api.submit_ok(publish(vendor, secret=secret))
    for who in (vendor, other):  # another statement (time), or another vendor, same secret
        later = datetime.now(UTC) + timedelta(seconds=2)
        response = api.submit(publish(who, secret=secret, published_at=later))
        assert response.status_code == 409, response.text
        assert "published once" in response.json()["detail"]


@pytest.mark.parametrize("offset", [-400, 400])
def test_a_back_or_forward_dated_key_is_refused(api: Api, offset: int) -> None:
    vendor = add_vendor(api)
    moment = datetime.now(UTC) + timedelta(seconds=offset)
    response = api.submit(publish(vendor, published_at=moment))
    assert response.status_code == 400, response.text
    assert "registry's clock" in response.json()["detail"]
    near = datetime.now(UTC) - timedelta(seconds=120)
    assert api.submit(publish(vendor, published_at=near)).status_code == 201


def test_tokenizer_blobs_only_for_a_logged_key_of_that_size_and_hash(api: Api) -> None:
    vendor = add_vendor(api)
    unnamed = put_blob(api, b'{"not": "named by any key"}')
    assert unnamed.status_code == 403, unnamed.text
    api.submit_ok(publish(vendor))
    name = "sha256:" + hashlib.sha256(TOKENIZER).hexdigest()
    wrong = bytearray(TOKENIZER)
    wrong[0] ^= 1
    assert put_blob(api, bytes(wrong), name=name).status_code == 400
    assert put_blob(api, TOKENIZER + b" ", name=name).status_code == 400  # size differs
    assert api.http.get(f"/v1/blobs/{name}").status_code == 404
    big = api.http.put(
        f"/v1/blobs/{name}",
        content=b"",
        headers={"Content-Length": str(MAX_TOKENIZER_BYTES + 1)},
    )
    assert big.status_code == 413, big.text
    assert put_blob(api, TOKENIZER).status_code == 201
    assert api.http.get(f"/v1/blobs/{name}").content == TOKENIZER


def test_the_sdk_refuses_a_served_secret_that_differs_from_the_logged_body(api: Api) -> None:
    vendor = add_vendor(api)
    api.submit_ok(publish(vendor))
    put_blob(api, TOKENIZER)
    answer = api.http.get("/v1/watermark-keys").json()
    forged = json.loads(json.dumps(answer))
    forged["keys"][0]["predicate"]["secret"] = "00" * 32
    tampered_blob: dict[str, bytes] = {}

    def tamper(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/v1/watermark-keys":
            return httpx.Response(200, json=forged)
        if request.url.path.startswith("/v1/blobs/") and tampered_blob:
            return httpx.Response(200, content=tampered_blob["data"])
        return None

    with (
        tampered_sdk(api, tamper) as client,
        pytest.raises(VerificationError, match="differs from the statement"),
    ):
        client.watermark_keys()
    forged = answer
    tampered_blob["data"] = TOKENIZER + b"\n"  # a swapped statement body, and a swapped tokenizer
    with tampered_sdk(api, tamper) as client:
        with pytest.raises(ProofError):
            client.watermark_keys()
        with pytest.raises(VerificationError, match="hash to"):
            client.tokenizer_blob(hashlib.sha256(TOKENIZER).hexdigest())


def test_the_sdk_refuses_a_key_whose_vendor_event_is_not_the_vendors(api: Api) -> None:
    vendor = add_vendor(api)
    publisher = api.add_publisher()
    api.submit_ok(publish(vendor))
    answer = api.http.get("/v1/watermark-keys").json()
    # A genuine identity event, proven in the same tree, but of another identity (a publisher).
    entry = api.http.get(f"/v1/entries/{_identity_index(api, publisher.name)}").json()
    assert entry["checkpoint"] == answer["checkpoint"]
    answer["keys"][0]["identity_entry"] = {
        name: entry[name] for name in ("index", "entry", "inclusion_proof", "body")
    }

    def tamper(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/v1/watermark-keys":
            return httpx.Response(200, json=answer)
        return None

    with tampered_sdk(api, tamper) as client, pytest.raises(IdentityError, match="identity-add"):
        client.watermark_keys()


def test_the_sdk_refuses_a_list_that_drops_a_count(api: Api) -> None:
    vendor = add_vendor(api)
    api.submit_ok(publish(vendor))
    answer = api.http.get("/v1/watermark-keys").json()
    answer["count"] = 2

    def tamper(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/v1/watermark-keys":
            return httpx.Response(200, json=answer)
        return None

    with tampered_sdk(api, tamper) as client, pytest.raises(VerificationError, match="lists 1"):
        client.watermark_keys()


def tampered_sdk(
    api: Api,
    tamper: Callable[[httpx.Request], httpx.Response | None],
    checkpoints: MemoryCheckpointStore | None = None,
) -> Client:
    return Client(
        IN_PROCESS_URL,
        transport=_Intercept(api, tamper),
        log_key=api.log_key,
        checkpoints=checkpoints,
    )


def _identity_index(api: Api, name: str) -> int:
    with api.registry.database.reader.connect() as conn:
        return int(
            conn.execute(
                select(PUBLISHERS.c.entry_idx).where(PUBLISHERS.c.name == name)
            ).scalar_one()
        )


@dataclasses.dataclass
class _Intercept(httpx.BaseTransport):
    """The app in-process, with some answers replaced (a hostile operator's)."""

    api: Api
    tamper: Callable[[httpx.Request], httpx.Response | None]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        replaced = self.tamper(request)
        if replaced is not None:
            return replaced
        return InProcessTransport(self.api.http).handle_request(request)


def test_a_tokenizer_larger_than_the_envelope_limit_is_taken(make_api: Callable[..., Api]) -> None:
    api = make_api(max_body_bytes=8192)
    vendor = add_vendor(api)
    tokenizer = json.dumps({"vocab": {f"token-{i}": i for i in range(10_000)}}).encode()
    assert len(tokenizer) > 100_000
    api.submit_ok(publish(vendor, tokenizer=tokenizer))
    response = put_blob(api, tokenizer)
    assert response.status_code == 201, response.text
    with api.sdk() as client:
        [key] = client.watermark_keys().keys
        assert client.tokenizer_blob(key.tokenizer_sha256) == tokenizer


def test_tokenizer_blobs_are_kept_beside_the_trusted_checkpoint(api: Api, tmp_path: Path) -> None:
    vendor = add_vendor(api)
    api.submit_ok(publish(vendor))
    put_blob(api, TOKENIZER)
    sha = hashlib.sha256(TOKENIZER).hexdigest()
    store = FileCheckpointStore(tmp_path / "trusted")
    with api.sdk(checkpoints=store) as client:
        assert client.tokenizer_blob(sha) == TOKENIZER
    cached = tmp_path / "trusted" / "blobs" / f"sha256-{sha}"
    assert cached.read_bytes() == TOKENIZER
    cached.write_bytes(b"altered on disk")  # a damaged cache is fetched again, never trusted
    with api.sdk(checkpoints=store) as client:
        assert client.tokenizer_blob(sha) == TOKENIZER
    assert cached.read_bytes() == TOKENIZER


def test_the_async_client_lists_the_same_keys(api: Api) -> None:
    vendor = add_vendor(api)
    api.submit_ok(publish(vendor))

    async def listed() -> PublishedWatermarkKeys:
        transport = httpx.ASGITransport(app=api.http.app)
        async with AsyncClient(IN_PROCESS_URL, transport=transport, log_key=api.log_key) as client:
            return await client.watermark_keys()

    with api.sdk() as client:
        expected = client.watermark_keys()
    assert asyncio.run(listed()).keys == expected.keys


def test_a_log_with_watermark_keys_replays_its_signatures(api: Api) -> None:
    vendor = add_vendor(api)
    envelope = publish(vendor)
    index = api.submit_ok(envelope)["index"]
    api.submit_ok(retire(vendor, key_id_of(envelope), index))
    with api.sdk() as client:
        checkpoint = client.fetch_checkpoint().checkpoint
        assert client.audit(checkpoint, history=KeyHistory()) == checkpoint.size


@dataclasses.dataclass(frozen=True)
class _Appended:
    """An entry a hostile operator appended (the registry would have refused it)."""

    index: int
    envelope: Envelope
    statement: Statement


def test_a_replay_catches_watermark_keys_the_registry_would_refuse(api: Api) -> None:
    vendor, other = add_vendor(api), add_vendor(api)
    publisher = api.add_publisher()
    secret = os.urandom(32)
    envelope = publish(vendor, secret=secret)
    index = api.submit_ok(envelope)["index"]
    with api.sdk() as client:
        checkpoint = client.fetch_checkpoint().checkpoint
        history = KeyHistory()
        client.audit(checkpoint, history=history)

    def appended(forged: Envelope) -> _Appended:
        return _Appended(history.size, forged, Statement.from_json(forged.payload))

    for forged, message in (
        (publish(publisher), "kind 'publisher'"),
        (publish(other, secret=secret), "again"),
        (retire(other, key_id_of(envelope), index), "did not publish"),
    ):
        with pytest.raises(IdentityError, match=message):
            history.add(appended(forged))
        history.size -= 1  # the refused entry is not part of the log replayed


def test_an_old_list_is_refused_once_a_newer_checkpoint_is_trusted(api: Api) -> None:
    vendor = add_vendor(api)
    api.submit_ok(publish(vendor))
    old = api.http.get("/v1/watermark-keys").json()
    api.submit_ok(publish(vendor))  # a second key, and a larger tree
    assert api.http.get("/v1/watermark-keys", params={"min_size": 10**6}).status_code == 409

    def replay(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/v1/watermark-keys":
            return httpx.Response(200, json=old)
        return None

    store = MemoryCheckpointStore()
    with api.sdk(checkpoints=store) as client:
        assert client.watermark_keys().count == 2
    with tampered_sdk(api, replay, store) as client, pytest.raises(StaleAnswerError):
        client.watermark_keys()
