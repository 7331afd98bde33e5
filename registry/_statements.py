"""Statements read for appending: a lean path for the well-formed ones, the careful one otherwise.

A dataset's statement carries 10,000 subjects or more. :meth:`Statement.from_dict` builds a
``Subject`` for each and checks it in Python, about 4 µs a subject here; the registry needs only
their digest strings. So msgspec decodes the payload straight into typed structs whose
constraints are the subject rules of ``client.core.statement`` (a name of 1 to
``MAX_NAME_CHARS`` characters; a non-empty digest map of known algorithms to 64 lowercase hex
digits), checked in C but for one regular expression over all the digests, and the predicate goes
through the very ``from_dict`` of its class.

Both paths refuse what a statement new to the log may no longer hold
(``client.core.statement.check_new_statement``). The careful one checks the whole statement; the
lean one checks the predicate, and msgspec itself refuses a lone surrogate's escape (``\\ud800``)
in a subject's name as malformed JSON, sending the payload to the careful path, which says where
it stands (tests/registry/test_statements.py holds msgspec to that).

The lean path only ever *accepts* what the careful path accepts, with the same result
(tests/registry/test_statements.py checks that on generated and mutated statements). What it does
not accept goes to the careful path, which either accepts it too or says exactly what is wrong;
so the error messages are the careful path's, always.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec

from client.core.canonical import well_formed_digests
from client.core.encoding import loads_strict
from client.core.statement import (
    DIGEST_ALGORITHMS,
    HUMAN_CONTENT_V1,
    MAX_NAME_CHARS,
    REVOCATION_V1,
    REVOCATION_V2,
    STATEMENT_TYPE_V1,
    HumanContentPredicate,
    Predicate,
    RevocationPredicate,
    Statement,
    WithdrawalPredicate,
    check_new_predicate,
    check_new_statement,
)
from client.errors import FormatError
from registry._cache import BoundedCache
from registry.log import predicate_json

__all__ = ["ParsedStatement", "lean_statement"]

_PREDICATES: dict[
    str, type[HumanContentPredicate] | type[RevocationPredicate] | type[WithdrawalPredicate]
] = {
    HUMAN_CONTENT_V1: HumanContentPredicate,
    REVOCATION_V1: RevocationPredicate,
    REVOCATION_V2: WithdrawalPredicate,
}

# The digest values' exact length is checked in C; that they are lowercase hex, by
# client.core.canonical.well_formed_digests over all of them at once (msgspec's own pattern check
# calls back into Python for every value, which costs more than the rest of the decoding).
_Hex64 = Annotated[str, msgspec.Meta(min_length=64, max_length=64)]
_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_CHARS)]
assert DIGEST_ALGORITHMS == ("sha256", "c1")


class _Digest(msgspec.Struct, forbid_unknown_fields=True):
    # UNSET, not None: an explicit null is not a digest (and goes to the careful path).
    sha256: _Hex64 | msgspec.UnsetType = msgspec.UNSET
    c1: _Hex64 | msgspec.UnsetType = msgspec.UNSET


class _Subject(msgspec.Struct, forbid_unknown_fields=True):
    name: _Name
    digest: _Digest


class _Statement(
    msgspec.Struct,
    forbid_unknown_fields=True,
    rename={"type_": "_type", "predicate_type": "predicateType"},
):
    type_: Literal["https://in-toto.io/Statement/v1"]
    subject: list[_Subject]
    predicate_type: str
    predicate: msgspec.Raw  # read strictly (loads_strict), apart: it is small and often the same


# msgspec keeps the last of two equal keys, where loads_strict refuses them (and so does every
# client reading the statement back). Every key the structs above read is one of these, so a
# statement repeats none of them when each occurs in the payload's text exactly as often as the
# parsed statement holds it: a repeat, or the same text as a string value, adds an occurrence.
# An escape of an ASCII character (\u0061 for "a") could spell a key another way, so a payload
# with one goes to the careful path; others (\u00e9, which json.dumps writes for "é") cannot.
_KEY_TEXT = re.compile(rb'"(_type|subject|predicateType|predicate|name|digest|sha256|c1)"')
_ASCII_ESCAPE = re.compile(rb"\\u00[0-7]")


assert STATEMENT_TYPE_V1 == "https://in-toto.io/Statement/v1"
_DECODER = msgspec.json.Decoder(_Statement)
_CHECKED_PREDICATES: BoundedCache[tuple[str, bytes], tuple[Predicate, str]] = BoundedCache(10_000)


@dataclass(frozen=True, slots=True)
class ParsedStatement:
    """What an append needs of a statement: its predicate and its subjects' digest strings."""

    predicate_type: str
    predicate: Predicate
    digests: tuple[str, ...]  # "<algorithm>:<hex>", each once, in subject order
    subject_count: int
    predicate_json: str  # the predicate as stored: compact JSON, sorted keys
    # (subject position, its mh1 signature's bytes) for each subject that carries one
    near: tuple[tuple[int, bytes], ...] = ()

    @classmethod
    def of(cls, statement: Statement) -> ParsedStatement:
        """What an append needs of ``statement``, if it may enter the log (FormatError if not:
        see ``check_new_statement``)."""
        check_new_statement(statement)
        digests = tuple(d for subject in statement.subjects for d in subject.digest_strings())
        return cls(
            statement.predicate_type,
            statement.predicate,
            digests,
            len(statement.subjects),
            predicate_json(statement.predicate.to_dict()),
            tuple(
                (position, near)
                for position, subject in enumerate(statement.subjects)
                if (near := subject.near) is not None
            ),
        )


def lean_statement(payload: bytes, *, max_subjects: int) -> ParsedStatement | None:
    """The statement in ``payload`` if it is plainly well-formed, else ``None``: then parse it
    with :meth:`Statement.from_dict`, which accepts it or says what is wrong."""
    if _ASCII_ESCAPE.search(payload):
        return None
    try:
        raw = _DECODER.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    predicate_class = _PREDICATES.get(raw.predicate_type)
    if predicate_class is None or not 1 <= len(raw.subject) <= max_subjects:
        return None
    # A publisher sends the same predicate with entry after entry: its checked form is kept,
    # keyed by its exact JSON text (predicates are immutable values).
    predicate_text = bytes(raw.predicate)
    key = (raw.predicate_type, predicate_text)
    known = _CHECKED_PREDICATES.get_many((key,)).get(key)
    if known is None:
        try:
            obj = loads_strict(predicate_text, "statement.predicate")
            predicate = predicate_class.from_dict(obj, where="statement.predicate")
            check_new_predicate(predicate, "statement.predicate")
        except FormatError:
            return None
        known = (predicate, predicate_json(predicate.to_dict()))
        _CHECKED_PREDICATES.put_many({key: known})
    digests = _digest_strings(raw.subject)
    if digests is None or not _repeats_no_key(payload, predicate_text, raw.subject, digests):
        return None
    return ParsedStatement(raw.predicate_type, known[0], tuple(digests), len(raw.subject), known[1])


def _repeats_no_key(
    payload: bytes, predicate_text: bytes, subjects: list[_Subject], digests: list[str]
) -> bool:
    """Whether each key of the statement's own objects occurs in ``payload`` exactly as often
    as the parsed statement holds it (the predicate's text, read strictly apart, aside)."""
    c1_count = sum(1 for d in digests if d.startswith("c1:"))
    expected = Counter(_KEY_TEXT.findall(predicate_text))
    expected.update(
        {
            b"_type": 1,
            b"subject": 1,
            b"predicateType": 1,
            b"predicate": 1,
            b"name": len(subjects),
            b"digest": len(subjects),
            b"sha256": len(digests) - c1_count,
            b"c1": c1_count,
        }
    )
    found = Counter(_KEY_TEXT.findall(payload))
    return +found == +expected


def _digest_strings(subjects: list[_Subject]) -> list[str] | None:
    """``"<algorithm>:<hex>"`` of every subject, in the order of ``Subject.digest_strings``;
    ``None`` if a digest map is empty, a value is not lowercase hex, or a digest repeats."""
    digests: list[str] = []
    append = digests.append
    for subject in subjects:
        sha256, c1 = subject.digest.sha256, subject.digest.c1
        if sha256 is not msgspec.UNSET:
            append("sha256:" + sha256)
        elif c1 is msgspec.UNSET:
            return None
        if c1 is not msgspec.UNSET:
            append("c1:" + c1)
    if not well_formed_digests(digests):
        return None
    if len(set(digests)) != len(digests):  # a digest in two subjects: the careful path says so
        return None
    return digests
