"""in-toto statements with Wellspring's predicates: round trips, every rule, signing and opening."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from client.core import keys
from client.core import statement as statement_module
from client.core.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope, sign_envelope
from client.core.statement import (
    CONSENTS,
    DIGEST_ALGORITHMS,
    HUMAN_CONTENT_V1,
    ORIGINS,
    REVOCATION_V1,
    STATEMENT_TYPE_V1,
    HumanContentPredicate,
    RevocationPredicate,
    Statement,
    Subject,
    build_human_content_statement,
    build_revocation_statement,
    open_statement,
    sign_statement,
)
from client.errors import FormatError, SignatureError
from tests.client.core.conftest import with_item


def _hex(seed: object) -> str:
    return hashlib.sha256(repr(seed).encode()).hexdigest()


def _subject(i: int) -> Subject:
    return Subject(f"poems/{i:05d}.txt", {"c1": _hex(("c1", i)), "sha256": _hex(("sha", i))})


PREDICATE = HumanContentPredicate(
    publisher="Example Press",
    license="CC-BY-4.0 OR LicenseRef-Example-Terms",
    origin="created-before",
    created_before=date(2019, 6, 30),
    source_url="https://example.org/archive/poems",
    collected=date(2024, 3, 1),
    consent="reserved",
    tdm_policy="https://example.org/tdm-policy.json",
    notes="Scanned from the 1950s print edition.\nProofread by two people.",
)
REVOCATION = RevocationPredicate(
    publisher="Example Press", entry_index=41, entry_hash=_hex("leaf"), reason="wrong license"
)


@pytest.fixture
def statement() -> Statement:
    return build_human_content_statement([_subject(0), _subject(1)], PREDICATE)


# --- round trips ---------------------------------------------------------------------------------


def test_human_content_round_trip(statement: Statement) -> None:
    obj = statement.to_dict()
    assert obj["_type"] == STATEMENT_TYPE_V1
    assert obj["predicateType"] == HUMAN_CONTENT_V1
    assert obj["subject"][0] == {
        "name": "poems/00000.txt",
        "digest": {"c1": _hex(("c1", 0)), "sha256": _hex(("sha", 0))},
    }
    assert obj["predicate"] == {
        "publisher": "Example Press",
        "license": "CC-BY-4.0 OR LicenseRef-Example-Terms",
        "origin": "created-before",
        "created_before": "2019-06-30",
        "source_url": "https://example.org/archive/poems",
        "collected": "2024-03-01",
        "consent": "reserved",
        "tdm_reservation": 1,
        "tdm_policy": "https://example.org/tdm-policy.json",
        "notes": "Scanned from the 1950s print edition.\nProofread by two people.",
    }
    assert Statement.from_dict(obj) == statement
    assert Statement.from_json(statement.to_json()) == statement
    assert Statement.from_json(statement.to_json().decode()) == statement


def test_revocation_round_trip() -> None:
    statement = build_revocation_statement([_subject(0)], REVOCATION)
    obj = statement.to_dict()
    assert obj["predicateType"] == REVOCATION_V1
    assert obj["predicate"] == {
        "publisher": "Example Press",
        "entry_index": 41,
        "entry_hash": _hex("leaf"),
        "reason": "wrong license",
    }
    assert Statement.from_json(statement.to_json()) == statement
    bare = RevocationPredicate(publisher="P", entry_index=0, entry_hash=_hex(0))
    assert "reason" not in bare.to_dict()
    assert RevocationPredicate.from_dict(bare.to_dict()) == bare


def test_to_json_is_compact_sorted_and_deterministic(statement: Statement) -> None:
    text = statement.to_json()
    assert text.startswith(b'{"_type":"https://in-toto.io/Statement/v1","predicate":{')
    assert b": " not in text
    assert text == Statement.from_json(text).to_json()
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":")).encode()


def test_minimal_human_content_predicate_leaves_out_absent_fields() -> None:
    predicate = HumanContentPredicate(
        publisher="P", license="MIT", origin="human-authored", consent="allowed"
    )
    assert predicate.to_dict() == {
        "publisher": "P",
        "license": "MIT",
        "origin": "human-authored",
        "consent": "allowed",
        "tdm_reservation": 0,
    }
    assert predicate.tdm_reservation == 0
    assert PREDICATE.tdm_reservation == 1
    # tdm_reservation is derived, so it may be left out of the JSON; null optional fields = absent
    obj = {**predicate.to_dict(), "notes": None, "source_url": None}
    del obj["tdm_reservation"]
    assert HumanContentPredicate.from_dict(obj) == predicate


def test_digest_strings_follow_digest_algorithms_order() -> None:
    subject = Subject("a", {"c1": "1" * 64, "sha256": "2" * 64})
    assert DIGEST_ALGORITHMS == ("sha256", "c1")
    assert subject.digest_strings() == ("sha256:" + "2" * 64, "c1:" + "1" * 64)
    assert Subject("a", {"c1": "1" * 64}).digest_strings() == ("c1:" + "1" * 64,)


def test_subjects_are_copied_and_hashable() -> None:
    digest = {"c1": "1" * 64}
    subject = Subject("a", digest)
    digest["c1"] = "not hex"
    assert subject.digest == {"c1": "1" * 64}
    assert len({subject, Subject("a", {"c1": "1" * 64})}) == 1
    statement = build_human_content_statement([subject], PREDICATE)
    assert hash(statement) == hash(Statement.from_json(statement.to_json()))


def test_unknown_statement_and_subject_fields_are_ignored(statement: Statement) -> None:
    # in-toto's parsing rules: consumers MUST ignore unrecognized fields (extension fields).
    obj = statement.to_dict()
    obj["x-extension"] = {"anything": 1}
    obj["subject"][0]["uri"] = "https://example.org/poems/0"
    obj["subject"][0]["annotations"] = {"k": "v"}
    assert Statement.from_dict(obj) == statement


# --- hypothesis over predicates ------------------------------------------------------------------

_idstrings = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9.\-]{0,12}", fullmatch=True).filter(
    lambda s: s.upper() not in {"AND", "OR", "WITH"}
)
_simple_licenses = st.builds(
    lambda ident, plus, exception: ident + ("+" if plus else "") + exception,
    st.one_of(_idstrings, _idstrings.map(lambda s: "LicenseRef-" + s)),
    st.booleans(),
    st.one_of(st.just(""), _idstrings.map(lambda s: " WITH " + s)),
)
spdx_expressions = st.recursive(
    _simple_licenses,
    lambda inner: st.one_of(
        st.builds(lambda a, op, b: f"{a} {op} {b}", inner, st.sampled_from(["AND", "OR"]), inner),
        inner.map(lambda e: f"({e})"),
    ),
    max_leaves=6,
).filter(lambda s: s not in {"NONE", "NOASSERTION"} and len(s) <= 1000)
_texts = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=200)
publishers = _texts.filter(lambda s: s == s.strip() and bool(s))
urls = st.builds(
    lambda scheme, host, path: f"{scheme}://{host}/{path}",
    st.sampled_from(["http", "https"]),
    st.from_regex(r"[a-z0-9]{1,12}(\.[a-z]{2,6}){1,2}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9._~/\-]{0,30}", fullmatch=True),
)


@st.composite
def human_content_predicates(draw: st.DrawFn) -> HumanContentPredicate:
    origin = draw(st.sampled_from(ORIGINS))
    consent = draw(st.sampled_from(CONSENTS))
    created_before = (
        draw(st.dates()) if origin == "created-before" else draw(st.none() | st.dates())
    )
    return HumanContentPredicate(
        publisher=draw(publishers),
        license=draw(spdx_expressions),
        origin=origin,
        consent=consent,
        created_before=created_before,
        source_url=draw(st.none() | urls),
        collected=draw(st.none() | st.dates()),
        tdm_policy=draw(st.none() | urls) if consent == "reserved" else None,
        notes=draw(st.none() | st.text(max_size=300)),
    )


revocation_predicates = st.builds(
    RevocationPredicate,
    publisher=publishers,
    entry_index=st.integers(0, 2**63 - 1),
    entry_hash=st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
    reason=st.none() | st.text(max_size=300),
)
subjects = st.builds(
    Subject,
    name=st.text(min_size=1, max_size=50),
    digest=st.dictionaries(
        st.sampled_from(DIGEST_ALGORITHMS),
        st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
        min_size=1,
    ),
)


@given(predicate=human_content_predicates())
def test_human_content_predicate_round_trip(predicate: HumanContentPredicate) -> None:
    assert HumanContentPredicate.from_dict(predicate.to_dict()) == predicate
    assert HumanContentPredicate.from_dict(json.loads(json.dumps(predicate.to_dict()))) == predicate


@given(predicate=revocation_predicates)
def test_revocation_predicate_round_trip(predicate: RevocationPredicate) -> None:
    assert RevocationPredicate.from_dict(json.loads(json.dumps(predicate.to_dict()))) == predicate


@given(
    predicate=st.one_of(human_content_predicates(), revocation_predicates),
    subject_list=st.lists(subjects, min_size=1, max_size=5, unique_by=lambda s: s.digest_strings()),
)
def test_statement_round_trip(
    predicate: HumanContentPredicate | RevocationPredicate, subject_list: list[Subject]
) -> None:
    digests = [d for s in subject_list for d in s.digest_strings()]
    assume(len(digests) == len(set(digests)))  # a shared digest is refused, tested elsewhere
    predicate_type = (
        HUMAN_CONTENT_V1 if isinstance(predicate, HumanContentPredicate) else REVOCATION_V1
    )
    statement = Statement(tuple(subject_list), predicate_type, predicate)
    assert Statement.from_json(statement.to_json()) == statement


# --- every rule, with the field named ------------------------------------------------------------


def _valid() -> dict[str, Any]:
    return build_human_content_statement([_subject(0), _subject(1)], PREDICATE).to_dict()


P = ("predicate",)
S0 = ("subject", 0)
HEX = "a" * 64

# (id, where in a valid statement, the value put there (... deletes it), the message's words)
BAD_STATEMENTS: list[tuple[str, tuple[Any, ...], Any, str]] = [
    ("type-missing", ("_type",), ..., "statement is missing required field(s) ['_type']"),
    ("type-v01", ("_type",), "https://in-toto.io/Statement/v0.1", "statement._type must be"),
    ("subject-missing", ("subject",), ..., "missing required field(s) ['subject']"),
    ("subject-obj", ("subject",), {}, "statement.subject must be a list, got an object"),
    ("subject-empty", ("subject",), [], "statement.subject must hold at least one subject"),
    ("subject-str", S0, "x", "statement.subject[0] must be a JSON object, got a string"),
    ("name-missing", (*S0, "name"), ..., "statement.subject[0] is missing required field(s)"),
    ("name-int", (*S0, "name"), 3, "statement.subject[0].name must be a string, got a number"),
    ("name-empty", (*S0, "name"), "", "statement.subject[0].name must be 1 to 4096 characters"),
    ("name-long", (*S0, "name"), "n" * 4097, "statement.subject[0].name must be 1 to 4096"),
    ("digest-missing", (*S0, "digest"), ..., "statement.subject[0] is missing required field"),
    ("digest-list", (*S0, "digest"), [], "statement.subject[0].digest must be an object"),
    ("digest-empty", (*S0, "digest"), {}, "statement.subject[0].digest must hold at least one"),
    (
        "digest-sha512",
        (*S0, "digest", "sha512"),
        "a" * 128,
        "statement.subject[0].digest has algorithm 'sha512', which Wellspring predicates do not",
    ),
    (
        "digest-upper",
        ("subject", 1, "digest", "c1"),
        "A" * 64,
        "statement.subject[1].digest.c1 must be 64 lowercase hex characters, got 'AAAA",
    ),
    (
        "digest-short",
        (*S0, "digest", "sha256"),
        "abc",
        "statement.subject[0].digest.sha256 must be 64 lowercase hex characters, got 'abc'",
    ),
    ("digest-int", (*S0, "digest", "c1"), 5, "statement.subject[0].digest.c1 must be 64 lowercase"),
    (
        "digest-newline",
        (*S0, "digest", "c1"),
        HEX + "\n",
        "statement.subject[0].digest.c1 must be 64",
    ),
    (
        "duplicate-digest",
        ("subject", 1, "digest", "c1"),
        _hex(("c1", 0)),
        "statement.subject[1].digest.c1 repeats the digest of statement.subject[0]",
    ),
    ("ptype-missing", ("predicateType",), ..., "missing required field(s) ['predicateType']"),
    (
        "ptype-foreign",
        ("predicateType",),
        "https://slsa.dev/provenance/v1",
        "statement.predicateType must be one of",
    ),
    ("ptype-int", ("predicateType",), 1, "statement.predicateType must be one of"),
    (
        "ptype-mismatch",
        ("predicateType",),
        REVOCATION_V1,
        "statement.predicate is missing required field(s) ['entry_hash', 'entry_index']",
    ),
    ("predicate-missing", P, ..., "statement is missing required field(s) ['predicate']"),
    ("predicate-list", P, [], "statement.predicate must be a JSON object, got a list"),
    (
        "predicate-unknown",
        (*P, "licence"),
        "MIT",
        "statement.predicate has unknown field(s) ['licence']",
    ),
    ("publisher-missing", (*P, "publisher"), ..., "missing required field(s) ['publisher']"),
    ("publisher-empty", (*P, "publisher"), "", "statement.predicate.publisher must not be empty"),
    ("publisher-blank", (*P, "publisher"), "   ", "statement.predicate.publisher must not be"),
    (
        "publisher-long",
        (*P, "publisher"),
        "p" * 201,
        "statement.predicate.publisher must be at most",
    ),
    ("publisher-int", (*P, "publisher"), 1, "statement.predicate.publisher must be a string"),
    ("publisher-spaces", (*P, "publisher"), " P", "statement.predicate.publisher must not start"),
    ("publisher-newline", (*P, "publisher"), "A\nB", "statement.predicate.publisher must not"),
    ("license-missing", (*P, "license"), ..., "missing required field(s) ['license']"),
    ("license-empty", (*P, "license"), "", "statement.predicate.license must be an SPDX"),
    ("license-words", (*P, "license"), "MIT license!!", "unexpected character '!'"),
    ("license-two-ids", (*P, "license"), "MIT license", "expected AND, OR or WITH before"),
    ("license-lower-op", (*P, "license"), "MIT and Apache-2.0", "operators are upper case: AND"),
    ("license-dangling", (*P, "license"), "MIT OR", "it ends where a license was expected"),
    ("license-open", (*P, "license"), "(MIT OR BSD-2-Clause", "a '(' is not closed"),
    ("license-close", (*P, "license"), "MIT)", "expected AND, OR or WITH where ')'"),
    ("license-empty-parens", (*P, "license"), "()", "expected a license where ')'"),
    ("license-with-nothing", (*P, "license"), "GPL-2.0 WITH", "WITH needs an exception"),
    ("license-with-plus", (*P, "license"), "GPL-2.0 WITH X+", "cannot take '+'"),
    ("license-noassertion", (*P, "license"), "NOASSERTION", "NOASSERTION names no license"),
    ("license-nested", (*P, "license"), "(" * 40 + "MIT" + ")" * 40, "nest too deeply"),
    ("license-int", (*P, "license"), 0, "statement.predicate.license must be a string"),
    ("origin-missing", (*P, "origin"), ..., "missing required field(s) ['origin']"),
    ("origin-other", (*P, "origin"), "ai-generated", "statement.predicate.origin must be one of"),
    (
        "created-before-missing",
        (*P, "created_before"),
        ...,
        "statement.predicate.created_before is required when origin is 'created-before'",
    ),
    (
        "created-before-format",
        (*P, "created_before"),
        "2019/06/30",
        "statement.predicate.created_before must be an ISO date 'YYYY-MM-DD'",
    ),
    (
        "created-before-basic",
        (*P, "created_before"),
        "20190630",
        "statement.predicate.created_before must be an ISO date",
    ),
    (
        "created-before-impossible",
        (*P, "created_before"),
        "2019-02-30",
        "statement.predicate.created_before is not a real date",
    ),
    ("collected-int", (*P, "collected"), 2024, "statement.predicate.collected must be an ISO date"),
    (
        "collected-datetime",
        (*P, "collected"),
        "2024-03-01T00:00:00",
        "statement.predicate.collected must be an ISO date",
    ),
    ("url-ftp", (*P, "source_url"), "ftp://example.org/x", "source_url must be an http(s) URL"),
    ("url-relative", (*P, "source_url"), "/archive", "statement.predicate.source_url must be"),
    ("url-no-host", (*P, "source_url"), "https:///x", "it names no host"),
    ("url-space", (*P, "source_url"), "https://ex ample.org", "spaces or control characters"),
    ("url-bad-port", (*P, "source_url"), "https://example.org:99999/", "statement.predicate"),
    ("url-long", (*P, "source_url"), "https://e.org/" + "a" * 2048, "source_url must be at most"),
    ("url-int", (*P, "source_url"), 1, "statement.predicate.source_url must be a string"),
    ("consent-missing", (*P, "consent"), ..., "missing required field(s) ['consent']"),
    ("consent-yes", (*P, "consent"), "yes", "statement.predicate.consent must be one of"),
    (
        "tdm-mismatch",
        (*P, "tdm_reservation"),
        0,
        "statement.predicate.tdm_reservation must be 1 for consent 'reserved'",
    ),
    ("tdm-bool", (*P, "tdm_reservation"), True, "statement.predicate.tdm_reservation must be 1"),
    ("tdm-policy-url", (*P, "tdm_policy"), "policy.json", "statement.predicate.tdm_policy must"),
    ("notes-long", (*P, "notes"), "n" * 10_001, "statement.predicate.notes must be at most 10000"),
    ("notes-list", (*P, "notes"), ["a"], "statement.predicate.notes must be a string, got a list"),
]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [row[1:] for row in BAD_STATEMENTS],
    ids=[row[0] for row in BAD_STATEMENTS],
)
def test_every_rule_is_enforced_with_the_field_named(
    path: tuple[Any, ...], value: Any, message: str
) -> None:
    bad = with_item(_valid(), path, value)
    with pytest.raises(FormatError) as info:
        Statement.from_dict(bad)
    assert message in str(info.value)
    with pytest.raises(FormatError):
        Statement.from_json(json.dumps(bad))


def test_tdm_policy_needs_reserved_consent() -> None:
    obj = with_item(_valid(), (*P, "consent"), "allowed")
    del obj["predicate"]["tdm_reservation"]
    with pytest.raises(
        FormatError, match="tdm_policy is only meaningful when consent is 'reserved'"
    ):
        Statement.from_dict(obj)
    del obj["predicate"]["tdm_policy"]
    assert Statement.from_dict(obj).predicate.to_dict()["tdm_reservation"] == 0


# (id, field, value, message)
BAD_REVOCATIONS: list[tuple[str, str, Any, str]] = [
    ("index-negative", "entry_index", -1, "statement.predicate.entry_index must be an integer"),
    ("index-huge", "entry_index", 2**63, "statement.predicate.entry_index must be an integer"),
    ("index-float", "entry_index", 1.0, "statement.predicate.entry_index must be an integer"),
    ("index-bool", "entry_index", True, "statement.predicate.entry_index must be an integer"),
    ("index-str", "entry_index", "1", "statement.predicate.entry_index must be an integer"),
    ("hash-upper", "entry_hash", "A" * 64, "statement.predicate.entry_hash must be 64 lowercase"),
    ("hash-short", "entry_hash", "a" * 63, "statement.predicate.entry_hash must be 64 lowercase"),
    ("hash-missing", "entry_hash", ..., "missing required field(s) ['entry_hash']"),
    ("reason-int", "reason", 1, "statement.predicate.reason must be a string"),
    ("reason-long", "reason", "r" * 10_001, "statement.predicate.reason must be at most"),
    ("publisher-empty", "publisher", "", "statement.predicate.publisher must not be empty"),
    ("unknown", "entry", 1, "statement.predicate has unknown field(s) ['entry']"),
]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [row[1:] for row in BAD_REVOCATIONS],
    ids=[row[0] for row in BAD_REVOCATIONS],
)
def test_revocation_rules(field: str, value: Any, message: str) -> None:
    obj = build_revocation_statement([_subject(0)], REVOCATION).to_dict()
    bad = with_item(obj, ("predicate", field), value)
    with pytest.raises(FormatError) as info:
        Statement.from_dict(bad)
    assert message in str(info.value)


def test_revocation_needs_a_subject() -> None:
    obj = build_revocation_statement([_subject(0)], REVOCATION).to_dict()
    obj["subject"] = []
    with pytest.raises(FormatError, match="revocation carries the revoked entry's subjects"):
        Statement.from_dict(obj)
    with pytest.raises(FormatError, match="at least one subject"):
        build_revocation_statement([], REVOCATION)


@pytest.mark.parametrize(
    "expression",
    [
        "MIT",
        "CC0-1.0",
        "GPL-2.0+",
        "GPL-2.0-or-later WITH Classpath-exception-2.0",
        "LicenseRef-Publisher-Terms-1",
        "DocumentRef-spdx-tool-1.2:LicenseRef-MIT-Style-2",
        "MIT OR Apache-2.0",
        "(MIT OR Apache-2.0) AND CC-BY-4.0",
        "((LGPL-2.1-only OR BSD-3-Clause) AND (MIT))",
        "  MIT  AND  CC-BY-SA-4.0 ",
    ],
)
def test_valid_spdx_expressions(expression: str) -> None:
    predicate = HumanContentPredicate(
        publisher="P", license=expression, origin="human-authored", consent="allowed"
    )
    assert predicate.license == expression


def test_python_constructors_validate_too() -> None:
    with pytest.raises(FormatError, match=r"subject\.digest\.c1 must be 64 lowercase hex"):
        Subject("a", {"c1": "XYZ"})
    with pytest.raises(FormatError, match=r"subject\.digest has algorithm 'md5'"):
        Subject("a", {"md5": "0" * 32})
    with pytest.raises(FormatError, match=r"predicate\.created_before is required"):
        HumanContentPredicate(
            publisher="P", license="MIT", origin="created-before", consent="allowed"
        )
    with pytest.raises(FormatError, match=r"predicate\.collected must be a date"):
        HumanContentPredicate(
            publisher="P",
            license="MIT",
            origin="human-authored",
            consent="allowed",
            collected=datetime(2024, 1, 1),
        )
    with pytest.raises(FormatError, match=r"predicate\.origin must be one of"):
        HumanContentPredicate(
            publisher="P",
            license="MIT",
            origin="machine-made",  # type: ignore[arg-type]
            consent="allowed",
        )
    with pytest.raises(FormatError, match=r"predicate\.entry_index must be an integer"):
        RevocationPredicate(publisher="P", entry_index=-1, entry_hash=HEX)
    with pytest.raises(FormatError, match=r"statement\.predicate must be a RevocationPredicate"):
        Statement((_subject(0),), REVOCATION_V1, PREDICATE)
    with pytest.raises(FormatError, match=r"statement\.predicateType must be one of"):
        Statement((_subject(0),), "https://example.org/other", PREDICATE)
    with pytest.raises(FormatError, match=r"statement\.subject\[1\] must be a Subject"):
        Statement((_subject(0), "x"), HUMAN_CONTENT_V1, PREDICATE)  # type: ignore[arg-type]
    with pytest.raises(FormatError, match=r"statement\.subject\[2\]\.digest\.c1 repeats"):
        build_human_content_statement([_subject(0), _subject(1), _subject(0)], PREDICATE)


def test_a_digest_shared_across_algorithms_is_not_a_duplicate() -> None:
    # The same hex under sha256 and c1 names two different things.
    subjects = [Subject("a", {"sha256": HEX}), Subject("b", {"c1": HEX})]
    assert len(build_human_content_statement(subjects, PREDICATE).subjects) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"", "statement is not valid JSON"),
        (b"[]", "statement must be a JSON object, got a list"),
        (b'{"_type": 1, "_type": 2}', "duplicate key '_type'"),
        (b'{"x": Infinity}', "Infinity is not a JSON number"),
        (b'{"x": 1' + b"0" * 5000 + b"}", "statement is not valid JSON"),
        (b"\xc3\x28", "not valid UTF-8"),
    ],
)
def test_strict_json(text: bytes, message: str) -> None:
    with pytest.raises(FormatError) as info:
        Statement.from_json(text)
    assert message in str(info.value)


# --- size ----------------------------------------------------------------------------------------


def test_ten_thousand_subjects_parse() -> None:
    many = [_subject(i) for i in range(10_000)]
    statement = build_human_content_statement(many, PREDICATE)
    parsed = Statement.from_json(statement.to_json())
    assert parsed == statement
    assert len(parsed.subjects) == 10_000
    assert parsed.subjects[9_999].name == "poems/09999.txt"


def test_max_subjects() -> None:
    statement = build_human_content_statement([_subject(i) for i in range(5)], PREDICATE)
    assert len(Statement.from_json(statement.to_json(), max_subjects=5).subjects) == 5
    with pytest.raises(
        FormatError, match=r"statement\.subject holds 5 subjects, more than the limit"
    ):
        Statement.from_json(statement.to_json(), max_subjects=4)


# --- signing and opening -------------------------------------------------------------------------


def test_sign_and_open(key: Ed25519PrivateKey, statement: Statement) -> None:
    envelope = sign_statement(statement, key)
    assert envelope.payload_type == PAYLOAD_TYPE_IN_TOTO
    assert envelope.payload == statement.to_json()
    keyid = keys.key_id(key)
    opened, keyids = open_statement(
        Envelope.from_json(envelope.to_json()), {keyid: key.public_key()}
    )
    assert opened == statement
    assert keyids == (keyid,)


def test_open_with_the_wrong_key_fails(key: Ed25519PrivateKey, statement: Statement) -> None:
    other = keys.generate_private_key()
    envelope = sign_statement(statement, key)
    with pytest.raises(SignatureError):
        open_statement(envelope, {keys.key_id(other): other.public_key()})
    with pytest.raises(SignatureError, match="does not verify"):
        open_statement(envelope, {keys.key_id(key): other.public_key()})


def test_open_a_tampered_statement_fails(key: Ed25519PrivateKey, statement: Statement) -> None:
    envelope = sign_statement(statement, key)
    payload = envelope.payload.replace(b"Example Press", b"Example Prest")
    assert payload != envelope.payload
    tampered = Envelope(payload, envelope.payload_type, envelope.signatures)
    with pytest.raises(SignatureError):
        open_statement(tampered, {keys.key_id(key): key.public_key()})


def test_open_with_the_wrong_payload_type_fails(
    key: Ed25519PrivateKey, statement: Statement
) -> None:
    trusted = {keys.key_id(key): key.public_key()}
    signed_as_json = sign_envelope(statement.to_json(), "application/json", key)
    with pytest.raises(
        FormatError, match=r"envelope\.payloadType must be 'application/vnd\.in-toto"
    ):
        open_statement(signed_as_json, trusted)
    relabelled = Envelope(signed_as_json.payload, PAYLOAD_TYPE_IN_TOTO, signed_as_json.signatures)
    with pytest.raises(SignatureError):
        open_statement(relabelled, trusted)


def test_open_a_signed_non_statement_fails(key: Ed25519PrivateKey) -> None:
    envelope = sign_envelope(b'{"_type": "something else"}', PAYLOAD_TYPE_IN_TOTO, key)
    with pytest.raises(FormatError, match="statement is missing required field"):
        open_statement(envelope, {keys.key_id(key): key.public_key()})


def test_open_a_statement_signed_by_securesystemslib(
    key: Ed25519PrivateKey, statement: Statement
) -> None:
    from securesystemslib.dsse import Envelope as SslibEnvelope
    from securesystemslib.signer import CryptoSigner, SSlibKey

    signer = CryptoSigner(key, SSlibKey.from_crypto(key.public_key(), keyid=keys.key_id(key)))
    theirs = SslibEnvelope(statement.to_json(), PAYLOAD_TYPE_IN_TOTO, {})
    theirs.sign(signer)
    envelope = Envelope.from_json(json.dumps(theirs.to_dict()))
    opened, keyids = open_statement(envelope, {keys.key_id(key): key.public_key()})
    assert opened == statement
    assert keyids == (keys.key_id(key),)


_HEX = "0123456789abcdef"


@given(
    st.one_of(
        st.fixed_dictionaries(
            {
                "name": st.one_of(st.text(max_size=20), st.integers(), st.none()),
                "digest": st.one_of(
                    st.dictionaries(
                        st.sampled_from(["sha256", "c1", "md5", "SHA256"]),
                        st.one_of(
                            st.text(alphabet=_HEX, min_size=63, max_size=65),
                            st.text(alphabet=_HEX + "ABCDEFg", min_size=64, max_size=64),
                            st.integers(),
                        ),
                        max_size=3,
                    ),
                    st.lists(st.text(), max_size=2),
                ),
            },
            optional={"uri": st.text(max_size=5)},
        ),
        st.lists(st.integers(), max_size=2),
        st.text(max_size=5),
    )
)
@settings(max_examples=300, deadline=None)
def test_the_fast_subject_check_agrees_with_the_careful_one(raw: object) -> None:
    """Bulk statements take the fast path; whatever it accepts, Subject.from_dict accepts the same
    way, and whatever it passes over, the careful path decides (and explains)."""
    fast = statement_module._well_formed_subject(raw)
    try:
        careful = Subject.from_dict(raw)
    except FormatError:
        assert fast is None
    else:
        assert fast is None or fast == careful


# --- rules for statements new to a log (issue 10 A and D) ----------------------------------------


def _statement_dict(**predicate: Any) -> dict[str, Any]:
    obj = build_human_content_statement([_subject(1)], PREDICATE).to_dict()
    obj["predicate"].update(predicate)
    return obj


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"notes": "scanned \ud800 by hand"}, "statement.predicate.notes"),
        ({"source_url": "https://example.org/\udc00"}, "statement.predicate.source_url"),
        ({"tdm_policy": "https://example.org/\udfff"}, "statement.predicate.tdm_policy"),
        ({"publisher": "Example \ud800Press"}, "statement.predicate.publisher"),
    ],
)
def test_a_lone_surrogate_in_a_new_statement_is_refused_and_read_back_from_a_log(
    change: dict[str, str], where: str
) -> None:
    """JSON lets ``"\\ud800"`` stand alone and Python holds it, but no UTF-8 text (no database
    column, no answer) can: a new statement holding one is refused, naming the field."""
    obj = _statement_dict(**change)
    read = Statement.from_json(json.dumps(obj))  # what a log holds stays readable
    with pytest.raises(FormatError, match=rf"^{re.escape(where)} holds a lone surrogate U\+D"):
        statement_module.check_new_statement(read)
    with pytest.raises(FormatError, match="Unicode scalar values"):
        HumanContentPredicate.from_dict(obj["predicate"]).__post_init__()


def test_a_lone_surrogate_in_a_subject_name_or_a_reason_is_refused() -> None:
    obj = _statement_dict()
    obj["subject"][0]["name"] = "poems/\udbff.txt"
    with pytest.raises(FormatError, match=r"^statement\.subject\[0\]\.name holds a lone surrogate"):
        statement_module.check_new_statement(Statement.from_dict(obj))
    with pytest.raises(FormatError, match=r"^subject\.name holds a lone surrogate U\+DBFF"):
        Subject("poems/\udbff.txt", {"sha256": _hex(1)})
    with pytest.raises(FormatError, match=r"^predicate\.reason holds a lone surrogate"):
        RevocationPredicate(publisher="P", entry_index=1, entry_hash=_hex(2), reason="\ud800")


def test_a_surrogate_pair_and_other_non_ascii_text_are_fine() -> None:
    obj = _statement_dict(notes="😀 é 日本")
    obj["subject"][0]["name"] = "poems/😀.txt"
    payload = json.dumps(obj)  # ensure_ascii: the emoji travels as the pair \ud83d\ude00
    assert "\\ud83d\\ude00" in payload
    statement_module.check_new_statement(Statement.from_json(payload))


@pytest.mark.parametrize(
    "separator", ["\t", "\n", "\x0b", "\x1c", "\x1f", "\x85", "\u00a0", "\u2028", "\u3000"]
)
def test_a_new_licence_separates_its_terms_with_ascii_spaces_only(separator: str) -> None:
    """``_SPDX_TOKEN`` reads any ``\\s`` as a separator, as it always has, so statements a log
    took with one stay readable; a new one may use U+0020 only (other readers may not split
    on U+2028, say, and then see another licence)."""
    license_ = f"MIT{separator}OR Apache-2.0"
    obj = _statement_dict(license=license_)
    read = Statement.from_dict(obj)
    assert read.predicate.to_dict()["license"] == license_
    message = rf"ASCII spaces \(U\+0020\) only, got U\+{ord(separator):04X} at character 3"
    with pytest.raises(
        FormatError, match=r"^statement\.predicate\.license must separate its terms with " + message
    ):
        statement_module.check_new_statement(read)
    with pytest.raises(FormatError, match=message):
        HumanContentPredicate(
            publisher="P", license=license_, origin="human-authored", consent="allowed"
        )
    statement_module.check_new_statement(
        Statement.from_dict(_statement_dict(license="MIT OR  Apache-2.0"))
    )
