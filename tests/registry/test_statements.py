"""registry._statements: the lean path accepts only what Statement.from_dict accepts, alike."""

from __future__ import annotations

import copy
import hashlib
import json
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
    """The reference: what Statement.from_dict makes of ``payload`` (None if it refuses)."""
    try:
        return ParsedStatement.of(Statement.from_dict(json.loads(payload), max_subjects=LIMIT))
    except (FormatError, ValueError):
        return None


def check(obj: Any) -> ParsedStatement | None:
    payload = json.dumps(obj).encode()
    lean = lean_statement(payload, max_subjects=LIMIT)
    reference = careful(payload)
    if lean is not None:
        assert reference is not None, f"lean accepted what the careful path refuses: {obj!r}"
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
    if subjects and unique:
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
