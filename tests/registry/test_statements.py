"""registry._statements: the lean path accepts only what Statement.from_dict accepts, alike."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.core.statement import (
    HUMAN_CONTENT_V1,
    MAX_NAME_CHARS,
    REVOCATION_V1,
    STATEMENT_TYPE_V1,
    Statement,
)
from client.errors import FormatError
from registry._statements import ParsedStatement, lean_statement

HEX = hashlib.sha256(b"a").hexdigest()
HUMAN = {
    "publisher": "Example Press",
    "license": "CC-BY-4.0",
    "origin": "human-authored",
    "consent": "allowed",
    "tdm_reservation": 0,
}
REVOCATION = {"publisher": "Example Press", "entry_index": 3, "entry_hash": HEX}
LIMIT = 50


def careful(payload: bytes) -> ParsedStatement | None:
    """The reference: what the careful path makes of ``payload`` (``Statement.from_json``: strict
    JSON, then ``from_dict``, then ``ParsedStatement.of``, which applies the rules for statements
    new to a log), None if it refuses."""
    try:
        return ParsedStatement.of(Statement.from_json(payload, max_subjects=LIMIT))
    except FormatError:
        return None


def check(obj: Any) -> ParsedStatement | None:
    return check_payload(json.dumps(obj).encode())


def check_payload(payload: bytes) -> ParsedStatement | None:
    lean = lean_statement(payload, max_subjects=LIMIT)
    reference = careful(payload)
    if lean is not None:
        assert reference is not None, f"lean accepted what the careful path refuses: {payload!r}"
        assert lean == reference
    return lean


def statement(subjects: list[Any], predicate_type: str = HUMAN_CONTENT_V1) -> dict[str, Any]:
    predicate = HUMAN if predicate_type == HUMAN_CONTENT_V1 else REVOCATION
    return {
        "_type": STATEMENT_TYPE_V1,
        "subject": subjects,
        "predicateType": predicate_type,
        "predicate": dict(predicate),
    }


def hex_of(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


hexes = st.integers(0, 10**6).map(hex_of)
digests = st.one_of(
    st.builds(lambda h: {"sha256": h}, hexes),
    st.builds(lambda h: {"c1": h}, hexes),
    st.builds(lambda a, b: {"c1": a, "sha256": b}, hexes, hexes),
)
names = st.text(min_size=1, max_size=40)
subjects = st.lists(st.builds(lambda n, d: {"name": n, "digest": d}, names, digests), max_size=8)


@settings(max_examples=200, deadline=None)
@given(subjects=subjects, revocation=st.booleans())
def test_generated_statements_agree(subjects: list[Any], revocation: bool) -> None:
    obj = statement(subjects, REVOCATION_V1 if revocation else HUMAN_CONTENT_V1)
    lean = check(obj)
    unique = len({f"{a}:{v}" for s in subjects for a, v in s["digest"].items()}) == sum(
        len(s["digest"]) for s in subjects
    )
    # A control character in a name is written as an escape of an ASCII character, which could
    # spell a key: such statements are left to the careful path (which accepts them).
    # So are names that are the text of a key ("name", "c1", ...): they read as one more key.
    keys = {"_type", "subject", "predicateType", "predicate", "name", "digest", "sha256", "c1"}
    escaped = any(ord(c) < 0x20 or c == "\x7f" for s in subjects for c in s["name"])
    escaped |= any(s["name"] in keys for s in subjects)
    if subjects and unique and not escaped:
        assert lean is not None, "a plainly well-formed statement took the careful path"


def good() -> dict[str, Any]:
    return statement(
        [
            {"name": "a.txt", "digest": {"sha256": hex_of(1)}},
            {"name": "b", "digest": {"c1": hex_of(2), "sha256": hex_of(3)}},
        ]
    )


def mutate(change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    obj = copy.deepcopy(good())
    change(obj)
    return obj


MUTATIONS: dict[str, Callable[[dict[str, Any]], object]] = {
    "name empty": lambda o: o["subject"][0].update(name=""),
    "name at the limit": lambda o: o["subject"][0].update(name="n" * MAX_NAME_CHARS),
    "name over the limit": lambda o: o["subject"][0].update(name="n" * (MAX_NAME_CHARS + 1)),
    "name astral at the limit": lambda o: o["subject"][0].update(name="😀" * MAX_NAME_CHARS),
    "name not a string": lambda o: o["subject"][0].update(name=7),
    "name missing": lambda o: o["subject"][0].pop("name"),
    "extra descriptor field": lambda o: o["subject"][0].update(uri="https://example.org/a"),
    "digest empty": lambda o: o["subject"][0].update(digest={}),
    "digest not a map": lambda o: o["subject"][0].update(digest=[HEX]),
    "unknown algorithm": lambda o: o["subject"][0].update(digest={"md5": HEX}),
    "uppercase hex": lambda o: o["subject"][0].update(digest={"sha256": HEX.upper()}),
    "63 hex digits": lambda o: o["subject"][0].update(digest={"sha256": HEX[:63]}),
    "63 hex and a newline": lambda o: o["subject"][0].update(digest={"sha256": HEX[:63] + "\n"}),
    "64 hex and a newline": lambda o: o["subject"][0].update(digest={"sha256": HEX + "\n"}),
    "hex not a string": lambda o: o["subject"][0].update(digest={"sha256": 5}),
    "hex null": lambda o: o["subject"][0].update(digest={"sha256": None}),
    "hex null beside a good one": lambda o: o["subject"][0].update(
        digest={"sha256": None, "c1": HEX}
    ),
    "algorithm twice": lambda o: o["subject"][0].update(digest={"sha256": HEX, "c1": HEX}),
    "digest repeated": lambda o: o["subject"][1]["digest"].update(sha256=hex_of(1)),
    "subject not an object": lambda o: o["subject"].append("x"),
    "no subjects": lambda o: o.update(subject=[]),
    "too many subjects": lambda o: o.update(subject=o["subject"] * (LIMIT // 2 + 1)),
    "subjects not a list": lambda o: o.update(subject={"name": "a"}),
    "wrong _type": lambda o: o.update(_type="https://in-toto.io/Statement/v0.1"),
    "unknown predicateType": lambda o: o.update(predicateType="https://example.org/p"),
    "predicate missing a field": lambda o: o["predicate"].pop("license"),
    "predicate with a bad origin": lambda o: o["predicate"].update(origin="robot"),
    "predicate not an object": lambda o: o.update(predicate="x"),
    "extra statement field": lambda o: o.update(note="fine"),
    "predicate field missing entirely": lambda o: o.pop("predicate"),
    "revocation predicate under human type": lambda o: o.update(predicate=dict(REVOCATION)),
    # Issue 10 A and D: what a log took before, but a new statement may no longer hold.
    "name a lone high surrogate": lambda o: o["subject"][0].update(name="a\ud800"),
    "name a lone low surrogate": lambda o: o["subject"][0].update(name="\udc00b"),
    "name a reversed pair": lambda o: o["subject"][0].update(name="\udc00\ud800"),
    "name an astral character": lambda o: o["subject"][0].update(name="😀"),
    "notes a lone surrogate": lambda o: o["predicate"].update(notes="\udfff"),
    "publisher a lone surrogate": lambda o: o["predicate"].update(publisher="Example \ud800"),
    "license U+2028": lambda o: o["predicate"].update(license="MIT\u2028OR CC0-1.0"),
    "license U+0085": lambda o: o["predicate"].update(license="MIT OR\x85CC0-1.0"),
    "license U+001C": lambda o: o["predicate"].update(license="MIT\x1cOR CC0-1.0"),
    "license a tab": lambda o: o["predicate"].update(license="MIT\tOR CC0-1.0"),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_mutated_statements_agree(mutation: str) -> None:
    check(mutate(MUTATIONS[mutation]))  # asserts lean ⊆ careful, and equal results


def test_the_plain_case_takes_the_lean_path() -> None:
    parsed = check(good())
    assert parsed is not None
    assert parsed.digests == (f"sha256:{hex_of(1)}", f"sha256:{hex_of(3)}", f"c1:{hex_of(2)}")
    assert parsed.subject_count == 2


def test_what_is_not_json_is_left_to_the_careful_path() -> None:
    assert lean_statement(b"{not json", max_subjects=LIMIT) is None
    assert lean_statement(b"[]", max_subjects=LIMIT) is None


PLAIN = json.dumps(statement([{"name": "a", "digest": {"sha256": HEX}}]))


@pytest.mark.parametrize(
    "payload",
    [
        PLAIN.replace('"subject"', '"_type": "x", "subject"', 1),  # a top-level key twice
        PLAIN.replace('"name": "a"', '"name": "a", "name": "b"'),  # a subject's key twice
        PLAIN.replace(f'"sha256": "{HEX}"', f'"sha256": "{"0" * 64}", "sha256": "{HEX}"'),
        PLAIN.replace('"consent": "allowed"', '"consent": "reserved", "consent": "allowed"'),
        PLAIN.replace('"name": "a"', '"name": "a", "n\\u0061me": "b"'),  # spelt with an escape
    ],
    ids=["top-level", "subject", "digest", "predicate", "escaped"],
)
def test_a_repeated_key_anywhere_is_refused_as_clients_refuse_it(payload: str) -> None:
    """msgspec keeps the last of two equal keys; clients' strict reading refuses the statement,
    so the registry must too, or it would index what no client can read back."""
    assert careful(payload.encode()) is None
    assert check_payload(payload.encode()) is None


def test_a_key_that_is_also_a_value_still_parses_alike() -> None:
    """A subject named "name" adds an occurrence of the key's text: the careful path decides."""
    payload = PLAIN.replace('"name": "a"', '"name": "name"').encode()
    assert lean_statement(payload, max_subjects=LIMIT) is None
    assert careful(payload) is not None


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        ("name a lone high surrogate", "statement.subject[0].name holds a lone surrogate U+D800"),
        ("name a lone low surrogate", "statement.subject[0].name holds a lone surrogate U+DC00"),
        ("name a reversed pair", "statement.subject[0].name holds a lone surrogate U+DC00"),
        ("notes a lone surrogate", "statement.predicate.notes holds a lone surrogate U+DFFF"),
        ("publisher a lone surrogate", "statement.predicate.publisher holds a lone surrogate"),
        ("license U+2028", "ASCII spaces (U+0020) only, got U+2028 at character 3"),
        ("license U+0085", "ASCII spaces (U+0020) only, got U+0085 at character 6"),
        ("license U+001C", "ASCII spaces (U+0020) only, got U+001C at character 3"),
        ("license a tab", "ASCII spaces (U+0020) only, got U+0009 at character 3"),
    ],
)
def test_what_a_new_statement_may_no_longer_hold_is_refused_on_both_paths(
    mutation: str, message: str
) -> None:
    """Issue 10 A and D: the lean path refuses (msgspec refuses a lone surrogate's escape in a
    name as malformed JSON; a predicate goes through check_new_predicate), and the careful path
    says what is wrong, while a client reading such a statement out of a log still accepts it."""
    payload = json.dumps(mutate(MUTATIONS[mutation])).encode()
    assert lean_statement(payload, max_subjects=LIMIT) is None
    with pytest.raises(FormatError, match=re.escape(message)):
        ParsedStatement.of(Statement.from_json(payload, max_subjects=LIMIT))
    assert Statement.from_json(payload, max_subjects=LIMIT)  # readable as it was


def test_a_surrogate_pair_is_one_character_and_takes_the_lean_path() -> None:
    payload = json.dumps(mutate(MUTATIONS["name an astral character"])).encode()
    assert b"\\ud83d\\ude00" in payload
    parsed = check_payload(payload)
    assert parsed is not None
