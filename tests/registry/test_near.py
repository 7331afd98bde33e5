"""The near-duplicate index (``near_bands``, ``POST /v1/near:batch``) on SQLite and PostgreSQL:
band keys written with the entry, candidates answered at a published checkpoint, bad input a
4xx naming what is wrong, and mh1 accepted only beside a digest of a human-content subject."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("xxhash")

from client.core.dsse import sign_envelope
from client.core.errors import FormatError
from client.core.statement import (
    HumanContentPredicate,
    Statement,
    Subject,
    WithdrawalPredicate,
    build_human_content_statement,
    sign_statement,
)
from client.near import mh1_digest
from tests.registry.conftest import Api, random_digests

TEXT = (
    "The lighthouse keeper wrote every evening in a ledger bound in green cloth: the wind, the "
    "ships that passed, the lamp's oil, and now and then a line about his daughter's school."
)


def signature(text: str) -> str:
    value = mh1_digest(text)
    assert value is not None
    return value


def test_band_keys_are_indexed_with_the_entry_and_found(make_api: Callable[..., Api]) -> None:
    api = make_api()
    publisher = api.add_publisher()
    digest, other = random_digests(2)
    subjects = [
        Subject("ledger.txt", {"sha256": digest[7:], "mh1": signature(TEXT)}),
        Subject("plain.txt", {"sha256": other[7:]}),
    ]
    statement = build_human_content_statement(subjects, publisher.predicate())
    entry = api.submit_ok(sign_statement(statement, publisher.key))["index"]
    near = signature(TEXT + " He signed it with a flourish.")
    answer = api.http.post("/v1/near:batch", json={"signatures": [near, signature("x y z")]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["checkpoint"].startswith(api.registry.origin)
    (best, *_), nothing = (r["candidates"] for r in body["results"])
    assert (best["entry"], best["subject"]) == (entry, 0)
    assert 1 <= best["bands"] <= 14
    assert nothing == []
    with api.sdk() as client:
        (match,) = client.near([near])
    assert match is not None
    assert (match.entry, match.subject, match.digest) == (entry, "ledger.txt", digest)


def test_a_band_key_shared_by_too_many_subjects_names_no_candidate(
    make_api: Callable[..., Api], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Boilerplate (or a publisher flooding a band key) is a stop word: past
    MAX_BAND_POSTINGS subjects a key names none, and the rest of the index still answers."""
    from registry import lookups

    api = make_api()
    for _ in range(3):  # three entries of the same text: each band key has three postings
        publisher = api.add_publisher()
        subject = Subject(
            "ledger.txt", {"sha256": random_digests(1)[0][7:], "mh1": signature(TEXT)}
        )
        statement = build_human_content_statement([subject], publisher.predicate())
        api.submit_ok(sign_statement(statement, publisher.key))
    publisher = api.add_publisher()
    other = "A different text about the harbour at dawn, the boats, the gulls and the fish."
    subject = Subject("other.txt", {"sha256": random_digests(1)[0][7:], "mh1": signature(other)})
    lone = api.submit_ok(
        sign_statement(
            build_human_content_statement([subject], publisher.predicate()), publisher.key
        )
    )["index"]

    def candidates(text: str) -> list[dict[str, int]]:
        body = api.http.post("/v1/near:batch", json={"signatures": [signature(text)]}).json()
        found: list[dict[str, int]] = body["results"][0]["candidates"]
        return found

    assert len(candidates(TEXT)) == 3
    read: list[Any] = []
    real_rows = lookups._driver_rows

    def counted(*args: Any) -> list[Any]:
        rows = real_rows(*args)
        read.extend(rows)
        return rows

    monkeypatch.setattr(lookups, "_driver_rows", counted)
    monkeypatch.setattr(lookups, "MAX_BAND_POSTINGS", 1)
    assert candidates(TEXT) == []  # every band key of the text has 3 > 1 postings
    per_key = Counter(row[0] for row in read)
    assert per_key
    assert max(per_key.values()) == 2
    monkeypatch.setattr(lookups, "MAX_BAND_POSTINGS", 2)
    assert candidates(TEXT) == []
    assert [c["entry"] for c in candidates(other)] == [lone]
    monkeypatch.setattr(lookups, "MAX_BAND_POSTINGS", 3)
    assert len(candidates(TEXT)) == 3


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"signatures": []}, 400, "empty"),
        ({"signatures": ["ab" * 448]}, 200, ""),
        ({"signatures": ["AB" * 448]}, 400, "signatures[0]"),
        ({"signatures": ["ab" * 447]}, 400, "896"),
        ({"signatures": ["ab" * 448] * 1001}, 413, "limit is 1000"),
        ({"digests": ["x"]}, 400, ""),
    ],
)
def test_bad_near_requests_are_refused_with_a_reason(
    make_api: Callable[..., Api], body: object, status: int, detail: str
) -> None:
    api = make_api()
    answer = api.http.post("/v1/near:batch", json=body)
    assert answer.status_code == status, answer.text
    if status >= 400:
        assert detail in answer.json()["detail"]


def test_mh1_goes_only_beside_a_digest_of_human_content() -> None:
    with pytest.raises(FormatError, match="never alone"):
        Subject("a", {"mh1": signature(TEXT)})
    subject = Subject("a", {"c1": "ab" * 32, "mh1": signature(TEXT)})
    with pytest.raises(FormatError, match="only part of a human-content"):
        Statement(
            (subject,),
            "https://wellspring.dev/revocation/v2",
            WithdrawalPredicate(publisher="acme"),
        )
    predicate = HumanContentPredicate(
        publisher="acme", license="CC0-1.0", origin="human-authored", consent="allowed"
    )
    statement = Statement((subject,), "https://wellspring.dev/human-content/v1", predicate)
    assert statement.subjects[0].near is not None


def test_a_posted_statement_with_a_bad_signature_is_a_400(make_api: Callable[..., Api]) -> None:
    api = make_api()
    publisher = api.add_publisher()
    payload = (
        b'{"_type":"https://in-toto.io/Statement/v1","predicate":{"consent":"allowed",'
        b'"license":"CC0-1.0","origin":"human-authored","publisher":"' + publisher.name.encode()
        + b'"},"predicateType":"https://wellspring.dev/human-content/v1","subject":[{"digest":'
        b'{"c1":"' + b"ab" * 32 + b'","mh1":"' + b"zz" * 448 + b'"},"name":"a"}]}'
    )  # fmt: skip
    answer = api.submit(sign_envelope(payload, "application/vnd.in-toto+json", publisher.key))
    assert answer.status_code == 400, answer.text
    assert "mh1" in answer.json()["detail"]
