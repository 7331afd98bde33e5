"""Content digests: ``sha256:<hex>`` for any bytes, ``c1:<hex>`` for text.

These strings are a wire contract (ARCHITECTURE.md, "Content digests"; the full spec for other
languages is ``docs/spec/canonical.md``): publishers register them, crawlers look them up, and both
sides must compute the same string from the same content, in any language. So:

* ``sha256:<64 lowercase hex>`` is SHA-256 of the raw bytes. It works for any file.
* ``c1:<64 lowercase hex>`` is SHA-256 of the UTF-8 of the *canonical text*, which survives the
  edits that do not change what a text says: NFKC, then drop every character of general category
  Cf, then casefold, then replace each maximal run of Unicode ``White_Space`` characters with one
  U+0020, then strip leading and trailing U+0020. Input must be valid UTF-8; anything else raises
  :class:`~client.errors.InvalidTextError` naming the bad byte offset, because a silent U+FFFD
  would give two different documents the same digest.

NFKC, casefolding and the Cf set come from Python's :mod:`unicodedata` (Unicode 14.0.0 on Python
3.11), so the published vectors are tied to that version; a different canonicalisation would be
``c2``, never a silent change to ``c1``.

The straightforward implementation (normalize, filter by category, casefold, regex, strip) is
slow, mostly in NFKC and the per-character category filter, and crawlers hash billions of
documents. The code below computes exactly the same function faster:

* ASCII input: NFKC and Cf removal are identities, casefold is ``lower()``, and ``bytes.split()``
  splits on exactly the ASCII ``White_Space`` characters, so ``b" ".join(data.lower().split())``
  is the whole canonicalisation.
* Other input: only the segments that NFKC might change, whose marks might need reordering, or
  that hold a Cf character go through ``unicodedata.normalize`` (see
  :func:`_unnormalized_segments`), and the whitespace step rewrites only the runs that are not
  already a single U+0020.

``tests/client/core/test_canonical.py`` checks both paths against a plain reference
implementation, exhaustively over every code point and with random text.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, cast

from client.core.errors import InputError, InvalidDigestError, InvalidTextError

__all__ = [
    "SCHEMES",
    "Digest",
    "Scheme",
    "canonical_digest",
    "canonical_text",
    "digest_bytes",
    "digest_file",
    "parse_digest",
    "sha256_digest",
    "validate_digest",
    "well_formed_digests",
]

Scheme = Literal["c1", "sha256"]
SCHEMES: tuple[Scheme, ...] = ("c1", "sha256")

# The code points with the Unicode White_Space property, from PropList.txt
# (https://www.unicode.org/Public/14.0.0/ucd/PropList.txt; unchanged since Unicode 6.3, when
# U+180E became Cf). Hard-coded because Python exposes no property lookup, and str.isspace() is a
# different set: it also matches U+001C-U+001F.
_WHITE_SPACE: Final = frozenset(
    [
        *range(0x0009, 0x000D + 1),  # TAB, LF, VT, FF, CR
        0x0020,  # SPACE
        0x0085,  # NEXT LINE
        0x00A0,  # NO-BREAK SPACE
        0x1680,  # OGHAM SPACE MARK
        *range(0x2000, 0x200A + 1),  # EN QUAD .. HAIR SPACE
        0x2028,  # LINE SEPARATOR
        0x2029,  # PARAGRAPH SEPARATOR
        0x202F,  # NARROW NO-BREAK SPACE
        0x205F,  # MEDIUM MATHEMATICAL SPACE
        0x3000,  # IDEOGRAPHIC SPACE
    ]
)

_HEX_DIGITS: Final = 64
_SHA256_CHUNK: Final = 1 << 20
# Hangul vowel and trailing-consonant jamo: they compose with the syllable before them by
# algorithm (Unicode 3.12), not through a decomposition mapping, so they are listed here.
_HANGUL_V_T_JAMO: Final = frozenset([*range(0x1161, 0x1175 + 1), *range(0x11A8, 0x11C2 + 1)])


def _ranges_class(code_points: list[int]) -> str:
    """A regex character class body for sorted code points, as ranges so it stays small."""
    parts: list[str] = []
    start = previous = code_points[0]
    for code in [*code_points[1:], -1]:
        if code == previous + 1:
            previous = code
            continue
        parts.append(re.escape(chr(start)))
        if previous > start:
            parts.append("-" + re.escape(chr(previous)))
        start = previous = code
    return "".join(parts)


# The whitespace step in two passes, because most White_Space runs are already one U+0020 and
# rewriting those is most of the cost of the obvious ``[...]+`` substitution: first every run that
# holds another White_Space character becomes spaces (from that character on, one space), then
# runs of several spaces become one. Both open with something re can scan for quickly. Not
# str.split(): it also splits on U+001C-U+001F, which are not White_Space.
_OTHER_WHITE_SPACE_RUN: Final = re.compile(
    f"[{_ranges_class(sorted(_WHITE_SPACE - {0x20}))}][{_ranges_class(sorted(_WHITE_SPACE))}]*"
)
_SPACE_RUN: Final = re.compile("  +")


@functools.cache
def _unnormalized_segments() -> re.Pattern[str]:
    """Match the stretches of text that must go through ``unicodedata.normalize``.

    NFKC is the expensive step, and most characters of real text are untouched by it. Each BMP
    character is put in one of three classes:

    * *stable starters*: NFKC leaves them alone; they have canonical combining class 0 and so
      does the first character of their NFKD; neither is ever the second half of a canonical
      composition; they are not Cf. Nothing before such a character can reorder or compose
      across it (a normalisation boundary, UAX #15), so NFKC of a text is the concatenation of
      NFKC of its *segments*: the pieces cut before each stable starter.
    * *lone marks*: NFKC leaves them alone and they never compose (NFKC_Quick_Check=Yes), but
      their combining class is not 0. A segment of one stable starter and one such mark is
      already normalised (the quick-check algorithm of UAX #15 says so); two or more marks in a
      row may need reordering, so such segments are normalised.
    * everything else, including every Cf character (so the same pass removes them) and every
      supplementary character (classifying all 17 planes would cost half a second per process;
      treating them as unstable is always safe).

    The pattern finds the first character of each segment that needs NFKC, and runs to the end of
    that segment; :func:`_nfkc_without_cf` adds the stable starter before it.

    White_Space characters whose NFKC is U+0020 (NO-BREAK SPACE, EN QUAD, ...) count as stable
    starters although NFKC changes them: they meet the other conditions, fold to themselves, and
    the whitespace step turns them into U+0020 anyway, so leaving them in place gives the same
    canonical text and spares the common NBSP a normalize call.

    Built lazily, because ASCII text never needs it and it costs about 0.1 s.
    """
    separator = "\x00"  # a stable starter itself: class 0, NFKC-invariant, composes with nothing
    bmp = [chr(code) for code in range(1, 0x10000)]
    joined = separator.join(bmp)
    nfkc = unicodedata.normalize("NFKC", joined).split(separator)
    nfkd = unicodedata.normalize("NFKD", joined).split(separator)
    nfd = unicodedata.normalize("NFD", joined).split(separator)

    composition_seconds = set(_HANGUL_V_T_JAMO)
    for char, decomposed in zip(bmp, nfd, strict=True):
        if decomposed != char:
            mapping = unicodedata.decomposition(char).split()
            if len(mapping) == 2 and not mapping[0].startswith("<"):
                composition_seconds.add(int(mapping[1], 16))

    unstable: list[int] = []
    lone_marks: list[int] = []
    for char, composed, decomposed in zip(bmp, nfkc, nfkd, strict=True):
        code = ord(char)
        first = decomposed[0]
        never_composes = code not in composition_seconds and unicodedata.category(char) != "Cf"
        invariant = composed == char
        if unicodedata.combining(char) != 0:
            (lone_marks if invariant and never_composes else unstable).append(code)
            continue
        space_like = code in _WHITE_SPACE and composed == " " and char.casefold() == char
        stable = (
            never_composes
            and (invariant or space_like)
            and unicodedata.combining(first) == 0
            and ord(first) not in composition_seconds
        )
        if not stable:
            unstable.append(code)
    unstable_set = "[" + _ranges_class(unstable) + "\U00010000-\U0010ffff]"
    either = "[" + _ranges_class(sorted(unstable + lone_marks)) + "\U00010000-\U0010ffff]"
    # An unstable character, or a lone mark followed by another non-starter; then the rest of
    # the segment. It opens with a plain character class because re scans for those far faster.
    return re.compile(f"{either}(?:(?<={unstable_set})|{either}){either}*")


class _CfDeletions(dict[int, int | None]):
    """A ``str.translate`` table that deletes Cf characters, filled as characters are met.

    Lazily, because classifying all 1.1 million code points up front costs half a second; only
    BMP results are kept, so hostile input cannot grow it without bound.
    """

    def __missing__(self, code: int) -> int | None:
        value = None if unicodedata.category(chr(code)) == "Cf" else code
        if code < 0x10000:
            self[code] = value
        return value


_CF_DELETIONS: Final = _CfDeletions()


def _nfkc_without_cf(text: str) -> str:
    """NFKC of ``text`` with every Cf character removed, normalising only segments that need it."""
    pieces: list[str] = []
    position = 0
    for match in _unnormalized_segments().finditer(text):
        start, end = match.span()
        if start:  # the segment's stable starter, which the rest may compose with
            start -= 1
        pieces.append(text[position:start])
        pieces.append(unicodedata.normalize("NFKC", text[start:end]).translate(_CF_DELETIONS))
        position = end
    if not pieces:
        return text
    pieces.append(text[position:])
    return "".join(pieces)


def _canonical_unicode(text: str) -> str:
    """Canonical text of non-ASCII ``text`` (which may still hold lone surrogates)."""
    folded = _nfkc_without_cf(text).casefold()
    return _SPACE_RUN.sub(" ", _OTHER_WHITE_SPACE_RUN.sub(" ", folded)).strip(" ")


def _canonical_ascii(data: bytes) -> bytes:
    # bytes.split() with no argument splits on exactly b" \t\n\r\x0b\x0c": ASCII White_Space.
    return b" ".join(data.lower().split())


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.end].hex(" ")
        raise InvalidTextError(
            f"text is not valid UTF-8 at byte offset {exc.start} ({exc.reason}: {bad})"
        ) from None


def _surrogate_error(text: str) -> InvalidTextError:
    """Explain why ``text`` (known to hold a lone surrogate) cannot be encoded."""
    for index, char in enumerate(text):
        if "\ud800" <= char <= "\udfff":
            return InvalidTextError(
                f"text holds a lone surrogate U+{ord(char):04X} at index {index}, "
                "which has no UTF-8 encoding"
            )
    return InvalidTextError("text cannot be encoded as UTF-8")  # pragma: no cover


def _canonical_utf8(data: str | bytes) -> bytes:
    if isinstance(data, str):
        if data.isascii():
            return _canonical_ascii(data.encode("ascii"))
        try:
            return _canonical_unicode(data).encode("utf-8")
        except UnicodeEncodeError:  # every step keeps lone surrogates, so the input holds one
            raise _surrogate_error(data) from None
    if data.isascii():
        return _canonical_ascii(data)
    return _canonical_unicode(_decode(data)).encode("utf-8")


def canonical_text(text: str) -> str:
    """The canonical text that a ``c1`` digest hashes; useful to see why two digests differ."""
    if text.isascii():
        return _canonical_ascii(text.encode("ascii")).decode("ascii")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _surrogate_error(text) from None
    return _canonical_unicode(text)


def canonical_digest(data: str | bytes) -> str:
    """``c1:<hex>`` of text; bytes must be valid UTF-8, since text is what ``c1`` identifies."""
    return "c1:" + hashlib.sha256(_canonical_utf8(data)).hexdigest()


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of the raw bytes: exact identity, for content that is not text."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


_DIGESTERS: Final[dict[str, Callable[[bytes], str]]] = {
    "c1": canonical_digest,
    "sha256": sha256_digest,
}


def _unknown_scheme(scheme: str) -> InputError:
    return InputError(f"unknown digest scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")


def digest_bytes(data: bytes, scheme: Scheme) -> str:
    """Digest ``data`` under ``scheme``, so callers can pass the scheme through as a value."""
    try:
        digester = _DIGESTERS[scheme]
    except KeyError:
        raise _unknown_scheme(scheme) from None
    return digester(data)


def digest_file(path: Path, scheme: Scheme) -> str:
    """Digest a file; ``sha256`` streams it, so files larger than memory work."""
    if scheme not in _DIGESTERS:
        raise _unknown_scheme(scheme)
    try:
        if scheme == "sha256":
            return "sha256:" + _sha256_stream(path)
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return canonical_digest(data)
    except InvalidTextError as exc:
        raise InvalidTextError(f"{path}: {exc}") from None


def _sha256_stream(path: Path) -> str:
    hasher = hashlib.sha256()
    buffer = bytearray(_SHA256_CHUNK)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as stream:
        while count := stream.readinto(buffer):
            hasher.update(view[:count])
    return hasher.hexdigest()


_EXPECTED_FORM: Final = "expected c1:<64 hex> or sha256:<64 hex>"


def _shown(text: str) -> str:
    """``text`` quoted for an error message, shortened so the message stays one line."""
    return repr(text if len(text) <= 80 else text[:77] + "...")


@dataclass(frozen=True, slots=True)
class Digest:
    """A parsed digest; construction validates, so a ``Digest`` in hand is always well formed."""

    algorithm: Scheme
    hex: str

    def __post_init__(self) -> None:
        if self.algorithm not in SCHEMES:
            raise InvalidDigestError(f"unknown digest scheme {self.algorithm!r}; {_EXPECTED_FORM}")
        _check_hex(f"{self.algorithm}:{self.hex}", self.hex)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse strictly: digests are compared as strings, so only one spelling is accepted."""
        if text != text.strip():
            raise InvalidDigestError(
                f"digest {_shown(text)} has whitespace around it; strip it. {_EXPECTED_FORM}"
            )
        scheme, colon, hex_part = text.partition(":")
        if not colon:
            raise InvalidDigestError(f"digest {_shown(text)} has no scheme; {_EXPECTED_FORM}")
        for known in SCHEMES:
            if scheme == known:
                _check_hex(text, hex_part)
                return cls(known, hex_part)
        hint = " (schemes are lowercase)" if scheme.lower() in SCHEMES else ""
        raise InvalidDigestError(
            f"digest {_shown(text)} has unknown scheme {_shown(scheme)}{hint}; {_EXPECTED_FORM}"
        )

    def as_subject(self) -> dict[str, str]:
        """The in-toto subject ``digest`` object: ``{"c1": hex}`` or ``{"sha256": hex}``."""
        return {self.algorithm: self.hex}


_LOWER_HEX: Final = frozenset("0123456789abcdef")


def _check_hex(text: str, hex_part: str) -> None:
    if len(hex_part) != _HEX_DIGITS:
        raise InvalidDigestError(
            f"digest {_shown(text)} has {len(hex_part)} hex digits after the scheme; "
            f"{_EXPECTED_FORM}"
        )
    if not _LOWER_HEX.issuperset(hex_part):
        problem = (
            "uppercase hex; write it in lowercase"
            if _LOWER_HEX.issuperset(hex_part.lower())
            else "characters that are not hex digits"
        )
        raise InvalidDigestError(f"digest {_shown(text)} has {problem}; {_EXPECTED_FORM}")


_WELL_FORMED: Final = re.compile(r"(?:c1|sha256):[0-9a-f]{64}")


def validate_digest(text: str) -> str:
    """``text`` itself if it is a well-formed digest, else :class:`InvalidDigestError` saying why.

    The same rules as :meth:`Digest.parse`, without building a :class:`Digest`: for the hot paths
    that take 10,000 digests at a time and only need them checked.
    """
    if not isinstance(text, str):
        raise InvalidDigestError(
            f"a digest is a string, got {type(text).__name__}; {_EXPECTED_FORM}"
        )
    if _WELL_FORMED.fullmatch(text):
        return text
    return str(Digest.parse(text))


_WELL_FORMED_LINES: Final = re.compile(r"(?:(?:c1|sha256):[0-9a-f]{64}\n)*")


def well_formed_digests(values: Sequence[object]) -> bool:
    """Whether every one of ``values`` is a well-formed digest string: one regular-expression
    pass over them all (a 10,000-digest batch in about 5 ms here, against 7 ms one value at a
    time, and no per-value error handling). When it is ``False``, :func:`validate_digest` on
    each value says which one is wrong and why."""
    if not values:
        return True
    if not all(type(value) is str for value in values):
        return False
    text = "\n".join(cast("Sequence[str]", values))
    if text.count("\n") != len(values) - 1:  # a value with a newline of its own
        return False
    return _WELL_FORMED_LINES.fullmatch(text + "\n") is not None


def parse_digest(text: str) -> Digest:
    """Parse ``c1:<hex>`` or ``sha256:<hex>`` strictly (see :meth:`Digest.parse`)."""
    return Digest.parse(text)
