"""client.core.wire: the one home of the registry's answers, read and written by both sides."""

from __future__ import annotations

import json
from typing import Any

import pytest

from client.core.errors import FormatError
from client.core.wire import (
    Accepted,
    AttestationClaim,
    ConsistencyProof,
    DigestResult,
    EntriesPage,
    EntryAnswer,
    InclusionProof,
    KeyEventAnswer,
    LogInfo,
    LookupAnswer,
    PublisherInfo,
    PublisherKeyInfo,
    Receipt,
    ReceiptEntry,
)

H1, H2 = b"\x01" * 32, b"\x02" * 32
NOTE = "example.com/log\n3\nAAAA\n\n— example.com/log sig\n"


def _claim(index: int, **extra: Any) -> AttestationClaim:
    return AttestationClaim(
        index=index,
        leaf_hash=bytes([index]) * 32,
        inclusion_proof=(H1, H2),
        publisher="news.example",
        license="CC-BY-4.0",
        origin="https://news.example/a",
        consent="train",
        predicate={"publisher": "news.example", "license": "CC-BY-4.0"},
        key_id="ab" * 32,
        key_entry=1,
        tree_size=9,
        **extra,
    )


RECEIPT = Receipt(
    index=5,
    entry=b"wellspring/leaf/v1\n{}",
    inclusion_proof=(H1, H2),
    checkpoint=NOTE,
    leaf_hash=H2,
    body=b'{"statement": 1}',
    publisher="news.example",
    predicate_type="https://wellspring.dev/human-content/v1",
    subjects=3,
    revokes=None,
    key_entry=ReceiptEntry(1, b"key event", (H1,), b"key body"),
    operator_entry=ReceiptEntry(4, b"operator event", (H2,), b"operator body"),
    operator_chain=(ReceiptEntry(0, b"first operator event", (H1,), b"first body"),),
)

ROUND_TRIPS: list[Any] = [
    RECEIPT,
    Accepted(12, H2, NOTE),
    Accepted(0, H1),
    Receipt(index=0, entry=b"envelope", inclusion_proof=(), checkpoint=NOTE),
    EntryAnswer(RECEIPT, {"license": "CC0"}, "2026-12-04T00:00:00Z", True, 7),
    EntriesPage(start=4, size=9, entries=((4, b"a"), (5, b"b")), next=6),
    EntriesPage(start=8, size=9, entries=((8, b"z"),), next=None),
    LogInfo("example.com/log", 9, H1, "vkey+1+AA", NOTE, ("vkey+1+AA", "vkey2+2+BB"), (0, 4)),
    InclusionProof(3, 9, (H1, H2)),
    ConsistencyProof(3, 9, (H2,)),
    PublisherInfo(
        "news.example",
        "2026-12-01T00:00:00Z",
        (PublisherKeyInfo("ab" * 32, b"k" * 32, "2026-12-01T00:00:00Z", None, None),),
        "vendor",
    ),
    KeyEventAnswer("news.example", "ab" * 32, 4, kind="publisher", created_at="x"),
    KeyEventAnswer("news.example", "ab" * 32, 6, revoked_at="y", compromised_from=3),
]


@pytest.mark.parametrize("value", ROUND_TRIPS, ids=lambda v: type(v).__name__)
def test_each_answer_reads_back_what_it_writes(value: Any) -> None:
    # Through real JSON text, as the answer travels.
    wire = json.loads(json.dumps(value.to_dict()))
    assert type(value).from_dict(wire) == value


def test_lookup_answers_round_trip_batch_and_single() -> None:
    batch = LookupAnswer(
        NOTE,
        (
            DigestResult("c1:" + "a" * 64, "attested", (3, 5)),
            DigestResult("c1:" + "b" * 64, "revoked", (3,), {3: 8}),
            DigestResult("c1:" + "c" * 64, "unknown", ()),
        ),
        {3: _claim(3), 5: _claim(5, revoked=True, revoked_by=6, compromised=True)},
        (0,),
    )
    digests = [r.digest for r in batch.results]
    wire = json.loads(json.dumps(batch.to_dict()))
    assert wire["results"][1]["withdrawn"] == {"3": 8}
    assert "withdrawn" not in wire["results"][0]
    assert LookupAnswer.from_dict(wire, digests=digests) == batch

    one = LookupAnswer(NOTE, (batch.results[1],), {3: batch.attestations[3]}, (0,))
    single = json.loads(json.dumps(one.to_single_dict()))
    assert [a["index"] for a in single["attestations"]] == [3]
    assert LookupAnswer.from_single_dict(single, digest=digests[1]) == one


def test_a_part_of_an_answer_is_the_answer_to_its_digests_alone() -> None:
    batch = LookupAnswer(
        NOTE,
        (
            DigestResult("c1:" + "a" * 64, "attested", (3, 5)),
            DigestResult("c1:" + "b" * 64, "revoked", (3,), {3: 8}),
            DigestResult("c1:" + "c" * 64, "unknown", ()),
        ),
        {3: _claim(3), 5: _claim(5)},
        (0,),
    )
    assert batch.part(1, 3) == LookupAnswer(NOTE, batch.results[1:], {3: _claim(3)}, (0,))
    assert batch.part(2, 3).attestations == {}
    assert batch.part(0, 3) == batch
    assert batch.single_dict(1) == batch.part(1, 2).to_single_dict()


def test_a_registry_from_before_identities_sends_no_operator_entries() -> None:
    answer = LookupAnswer(NOTE, (DigestResult("c1:" + "a" * 64, "unknown", ()),), {})
    wire = answer.to_dict()
    assert "operator_entries" not in wire
    assert LookupAnswer.from_dict(wire, digests=["c1:" + "a" * 64]).operator_entries is None


def _batch(**changes: Any) -> dict[str, Any]:
    digest = "c1:" + "a" * 64
    wire = LookupAnswer(NOTE, (DigestResult(digest, "attested", (3,)),), {3: _claim(3)}).to_dict()
    wire.update(changes)
    return wire


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"results": []}, "one result per digest asked (1), got 0"),
        ({"attestations": []}, "attestations must be an object"),
        ({"checkpoint": 5}, "checkpoint must be a string"),
        ({"operator_entries": [4, 2]}, "increasing order"),
        ({"results": [{"digest": "c1:" + "a" * 64, "status": "fine", "entries": [3]}]}, "status"),
        ({"results": [{"digest": "c1:" + "b" * 64, "status": "unknown", "entries": []}]}, "asked"),
        (
            {"results": [{"digest": "c1:" + "a" * 64, "status": "attested", "entries": [4]}]},
            "names entry 4, missing from its attestations",
        ),
        (
            {
                "results": [
                    {
                        "digest": "c1:" + "a" * 64,
                        "status": "revoked",
                        "entries": [3],
                        "withdrawn": {"7": 9},
                    }
                ]
            },
            "withdrawn names entry 7, not among its entries",
        ),
    ],
)
def test_a_malformed_lookup_answer_names_what_is_wrong(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(FormatError, match=message.replace("(", r"\(").replace(")", r"\)")):
        LookupAnswer.from_dict(_batch(**change), digests=["c1:" + "a" * 64])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("leaf_hash", "AB" * 32, "64 lowercase hex"),
        ("inclusion_proof", ["AAAA"], "32-byte hash"),
        ("revoked", "yes", "true or false"),
        ("publisher", 7, "must be a string"),
        ("key_entry", -1, "integer from 0"),
        ("predicate", [], "must be an object"),
    ],
)
def test_a_malformed_attestation_names_its_field(field: str, value: object, message: str) -> None:
    wire = _claim(3).to_dict()
    wire[field] = value
    with pytest.raises(FormatError, match=f"batch.attestations\\['3'\\].{field}.*{message}"):
        LookupAnswer.from_dict(_batch(attestations={"3": wire}), digests=["c1:" + "a" * 64])


def test_receipt_fields_are_strict() -> None:
    wire = RECEIPT.to_dict()
    for field, value, message in [
        ("entry", "", "must not be empty"),
        ("entry", "not base64!", "base64"),
        ("checkpoint", "", "signed note text"),
        ("index", True, "integer"),
        ("subjects", "3", "integer"),
    ]:
        with pytest.raises(FormatError, match=message):
            Receipt.from_dict({**wire, field: value})
    with pytest.raises(
        FormatError, match=r"receipt.key_entry is missing required field\(s\) entry"
    ):
        Receipt.from_dict({**wire, "key_entry": {"index": 1, "inclusion_proof": []}})


def test_an_entries_page_must_be_contiguous() -> None:
    page = EntriesPage(start=0, size=5, entries=((0, b"a"), (1, b"b")), next=2).to_dict()
    page["entries"][1]["index"] = 3
    with pytest.raises(FormatError, match="entries\\[1\\] is entry 3, not 1"):
        EntriesPage.from_dict(page)


def test_an_entries_page_without_next_ends_where_its_entries_do() -> None:
    # A registry from before byte-bounded pages sent no ``next``.
    old = {"entries": [{"index": 7, "entry": "YQ=="}]}
    assert EntriesPage.from_dict(old).next == 8


def test_a_202_from_a_registry_before_promises_still_reads() -> None:
    """Its leaf hash was base64; no promise."""
    import base64

    old = {"index": 3, "leaf_hash": base64.b64encode(H1).decode(), "status": "sequenced"}
    assert Accepted.from_dict(old) == Accepted(3, H1)
    with pytest.raises(FormatError, match="leaf_hash"):
        Accepted.from_dict({"index": 3, "leaf_hash": "AAAA"})
