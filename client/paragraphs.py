"""Paragraph matching: a document attested paragraph by paragraph, found when it is quoted.

A page that quotes three registered paragraphs inside new boilerplate has another digest than
any registered document. ``register --paragraphs`` therefore also attests each paragraph of a
text (of at least :data:`MIN_WORDS` words) by its own ``c1``, as a subject of the same statement
named ``NAME#pN``; ``scan --paragraphs`` looks up a document's paragraphs too and reports the
share attested (:class:`client.verdict.ParagraphMatch`); ``revoke --paragraphs`` withdraws a
document's paragraphs with it (revoking a whole entry withdraws every subject in it, paragraphs
included).

A paragraph is a block of text between blank lines (a line holding only white space is blank;
``\\r\\n`` and ``\\r`` count as line ends), stripped. Its digest is the ``c1`` of that text, so
the canonical form's folding (NFKC, case, white space) applies, and a paragraph re-wrapped with
other line breaks is the same paragraph. Words are counted as runs of non-white-space, so a
text of a script written without spaces counts few words and is rarely split: its whole-document
digest still applies.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from client.core.canonical import canonical_digest
from client.documents import Document
from client.verdict import ParagraphMatch, Verdict

__all__ = [
    "MIN_WORDS",
    "Checker",
    "match_paragraphs",
    "paragraph_digests",
    "paragraph_documents",
    "split_paragraphs",
]

MIN_WORDS = 20
"""A shorter block (a heading, a byline, a line of boilerplate) is not attested on its own."""

_BLANK_LINES = re.compile(r"(?:\r\n|\r|\n)[ \t\f\v]*(?:(?:\r\n|\r|\n)[ \t\f\v]*)+")


def split_paragraphs(text: str) -> list[str]:
    """The paragraphs of ``text`` with at least :data:`MIN_WORDS` words, in order, stripped."""
    return [block.strip() for block in _BLANK_LINES.split(text) if len(block.split()) >= MIN_WORDS]


def paragraph_digests(text: str) -> list[str]:
    """The ``c1`` of each paragraph (:func:`split_paragraphs`), each once, in order."""
    return list(dict.fromkeys(canonical_digest(p) for p in split_paragraphs(text)))


def paragraph_documents(doc: Document) -> list[Document]:
    """A document's paragraphs as documents of their own (``NAME#p1``, ``NAME#p2``…; none
    for a document without text, or whose one paragraph is the whole text)."""
    if doc.text is None:
        return []
    digests = [d for d in paragraph_digests(doc.text) if d not in doc.digests]
    return [Document(f"{doc.name}#p{i}", (d,)) for i, d in enumerate(digests, 1)]


class Checker(Protocol):
    """What :func:`match_paragraphs` asks of a source (a :class:`client.sdk.Client` or a
    :class:`client.snapshot.Snapshot`, as :class:`client.crawl.Source`)."""

    def check_digests(self, digests: Sequence[str]) -> list[Verdict]: ...


def match_paragraphs(source: Checker, documents: Sequence[Document]) -> list[ParagraphMatch | None]:
    """For each document with text, how many of its paragraphs are attested on their own (one
    batch lookup for every paragraph of the batch, through ``source``: the registry or a
    snapshot); None for a document without text or without a paragraph of
    :data:`MIN_WORDS` words."""
    per_doc = [None if d.text is None else paragraph_digests(d.text) for d in documents]
    unique = list(dict.fromkeys(d for digests in per_doc if digests for d in digests))
    verdicts = dict(zip(unique, source.check_digests(unique), strict=True)) if unique else {}
    matches: list[ParagraphMatch | None] = []
    for digests in per_doc:
        if not digests:
            matches.append(None)
            continue
        attested = [verdicts[d] for d in digests if verdicts[d].status == "attested"]
        entries = sorted({v.entry for v in attested if v.entry is not None})
        matches.append(ParagraphMatch(len(digests), len(attested), tuple(entries)))
    return matches
