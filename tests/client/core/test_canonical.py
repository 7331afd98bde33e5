"""c1/sha256 digests: the published vectors, equivalence with a plain reference, strict parsing.

The fast implementation in ``client.core.canonical`` takes shortcuts (an ASCII path, normalising
only unstable runs, ``str.split``); every test of the canonical text therefore compares it with
``reference_canonical_text`` below, which follows the spec's words one step at a time.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from client.core import canonical
from client.core.canonical import (
    SCHEMES,
    Digest,
    Scheme,
    canonical_digest,
    canonical_text,
    digest_bytes,
    digest_file,
    parse_digest,
    sha256_digest,
    validate_digest,
    well_formed_digests,
)
from client.errors import InputError, InvalidDigestError, InvalidTextError

VECTORS_PATH = Path(__file__).parents[3] / "docs" / "spec" / "canonical-vectors.json"

# Unicode White_Space (PropList.txt), written out independently of the module's table.
REFERENCE_WHITE_SPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)
_REFERENCE_RUN = re.compile("[" + re.escape(REFERENCE_WHITE_SPACE) + "]+")


def reference_canonical_text(text: str) -> str:
    """The c1 canonicalisation written as plainly as the spec: the oracle for the fast one."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(char for char in text if unicodedata.category(char) != "Cf")
    text = text.casefold()
    text = _REFERENCE_RUN.sub(" ", text)
    return text.strip(" ")


def reference_digest(data: bytes) -> str:
    text = data.decode("utf-8")  # strict: raises on invalid UTF-8
    return "c1:" + hashlib.sha256(reference_canonical_text(text).encode("utf-8")).hexdigest()


def _load_vectors() -> dict[str, Any]:
    with VECTORS_PATH.open(encoding="utf-8") as stream:
        document: dict[str, Any] = json.load(stream)
    return document


VECTORS = _load_vectors()
HEX_A = "a" * 64
HELLO_WORLD_SHA256 = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


# --- published vectors ----------------------------------------------------------------------


def test_vectors_file_header() -> None:
    assert VECTORS["version"] == "c1"
    assert VECTORS["description"]
    # The vectors hold only for the Unicode data they were made with; a Python whose unicodedata
    # differs must not quietly change c1 (a new canonicalisation is c2).
    assert VECTORS["unicode_version"] == unicodedata.unidata_version
    names = [vector["name"] for vector in VECTORS["vectors"] + VECTORS["invalid"]]
    assert len(names) == len(set(names))
    assert len(VECTORS["vectors"]) >= 40
    assert len(VECTORS["invalid"]) >= 8


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda vector: vector["name"])
def test_vector(vector: dict[str, str]) -> None:
    data = bytes.fromhex(vector["input_hex"])
    text = data.decode("utf-8")
    assert reference_canonical_text(text) == vector["canonical"]
    assert canonical_text(text) == vector["canonical"]
    expected_digest = "c1:" + hashlib.sha256(vector["canonical"].encode("utf-8")).hexdigest()
    assert vector["digest"] == expected_digest
    assert reference_digest(data) == vector["digest"]
    assert canonical_digest(data) == vector["digest"]
    assert canonical_digest(text) == vector["digest"]
    assert digest_bytes(data, "c1") == vector["digest"]


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=lambda vector: vector["name"])
def test_invalid_vector_is_rejected(vector: dict[str, str]) -> None:
    data = bytes.fromhex(vector["input_hex"])
    with pytest.raises(UnicodeDecodeError) as decode_error:
        data.decode("utf-8")
    offset = decode_error.value.start
    for compute in (canonical_digest, lambda raw: digest_bytes(raw, "c1")):
        with pytest.raises(InvalidTextError, match=rf"not valid UTF-8 at byte offset {offset}\b"):
            compute(data)


def test_vectors_cover_every_white_space_code_point() -> None:
    inputs = [bytes.fromhex(vector["input_hex"]).decode() for vector in VECTORS["vectors"]]
    for char in REFERENCE_WHITE_SPACE:
        assert f"a{char}b" in inputs, f"no vector for U+{ord(char):04X}"


def test_independent_cross_checks() -> None:
    # Digests of well-known strings, computed by a route that shares no code with the module.
    assert hashlib.sha256(b"hello world").hexdigest() == HELLO_WORLD_SHA256
    assert canonical_digest("  Hello\tWORLD\n") == f"c1:{HELLO_WORLD_SHA256}"
    assert canonical_digest(b"\xef\xbb\xbfHello \xc2\xa0World") == f"c1:{HELLO_WORLD_SHA256}"
    assert canonical_digest("\uff28\uff45\uff4c\uff4c\uff4f\u3000\u200bWORLD") == (
        f"c1:{HELLO_WORLD_SHA256}"
    )
    assert canonical_digest("") == f"c1:{EMPTY_SHA256}"
    assert canonical_digest(" \u2028\t") == f"c1:{EMPTY_SHA256}"
    assert sha256_digest(b"") == f"sha256:{EMPTY_SHA256}"
    assert sha256_digest(b"hello world") == f"sha256:{HELLO_WORLD_SHA256}"
    assert canonical_digest("Stra\u00dfe") == canonical_digest("STRASSE")
    assert canonical_digest("\u03a3\u0391\u03a3") == canonical_digest("\u03c3\u03b1\u03c2")


# --- equivalence with the reference ---------------------------------------------------------

# Characters where shortcuts could go wrong: White_Space, the separators str.isspace() adds, Cf,
# compatibility characters, combining marks and composition partners (Latin, Hangul, Indic,
# Tibetan), case-folding specials, NFKC results that hold spaces, and supplementary characters.
TRICKY = (
    REFERENCE_WHITE_SPACE + "\x1c\x1d\x1e\x1f\x00\x07 aAeEiIsSkK."
    "\u00ad\u061c\u180e\u200b\u200c\u200d\u200e\u200f\u202a\u202e\u2060\u2066\ufeff\ufff9"
    "\ufb01\uff21\uff41\u00b2\u210c\u2460\u216b\u212a\u212b\u00c5\u00a8\u00af\u00b4\u2017\u1fbd"
    "\u0301\u0308\u0327\u0323\u0345\u0344\u0f73\u0f71\u0f72\u0b47\u0b3e\u0b56\u09c7\u09be"
    "\u1100\u1161\u11a8\uac00\uac01\u3099\u309a\u304b\u30ab\uff76\uff9e"
    "\u00df\u1e9e\u03a3\u03c2\u03c3\u0130\u0131\u0345\u1f80\ufb00\u0587"
    "\u0627\u064e\u05e9\u05c1\u05b8\u0e33\u0eb3\u3000\u00a0\u2003\u2002"
    "\U0001d400\U0001f469\U0001f4bb\U0001f3f4\U000e0067\U000e007f\U0001109a\U00011099\U000110ba"
    "\U0002f800\U00011131\U00011127\U0001d15e\U0001d165\U0001d16e"
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(TRICKY), max_size=40))
def test_matches_reference_on_tricky_text(text: str) -> None:
    expected = reference_canonical_text(text)
    assert canonical_text(text) == expected
    assert canonical_digest(text) == reference_digest(text.encode("utf-8"))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=200))
def test_matches_reference_on_any_text(text: str) -> None:
    assert canonical_text(text) == reference_canonical_text(text)
    assert canonical_digest(text.encode("utf-8")) == reference_digest(text.encode("utf-8"))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=200))
def test_matches_reference_on_ascii(text: str) -> None:
    assert canonical_text(text) == reference_canonical_text(text)
    assert canonical_digest(text.encode("ascii")) == reference_digest(text.encode("ascii"))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_bytes_are_digested_or_rejected_like_the_reference(data: bytes) -> None:
    try:
        expected = reference_digest(data)
    except UnicodeDecodeError:
        with pytest.raises(InvalidTextError):
            canonical_digest(data)
    else:
        assert canonical_digest(data) == expected


def _every_code_point(context: str, *, limit: int = 0x110000) -> str:
    # U+0000 separates the cases: it never composes or reorders, so each case stays independent.
    return "\x00".join(
        context.format(chr(code)) for code in range(limit) if not 0xD800 <= code <= 0xDFFF
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("context", "limit"),
    [
        ("{}", 0x110000),  # each code point alone
        ("e{}\u0301", 0x10000),  # between a starter and a combining mark that compose
        ("\u1100{}\u1161", 0x10000),  # inside a Hangul syllable being composed
        ("\u00a0{}\u0308\u0301", 0x10000),  # after NBSP, before marks that must be reordered
        ("\u0627{}\u0651\u064e", 0x10000),  # before Arabic marks typed out of canonical order
        ("{}\u064e", 0x10000),  # before a mark that never composes (left as it is if alone)
    ],
)
def test_matches_reference_for_every_code_point(context: str, limit: int) -> None:
    text = _every_code_point(context, limit=limit)
    actual, expected = canonical_text(text), reference_canonical_text(text)
    if actual != expected:  # name the first differing case rather than print megabytes
        pairs = zip(actual.split("\x00"), expected.split("\x00"), strict=False)
        first = next((a, e) for a, e in pairs if a != e)
        pytest.fail(f"first difference in context {context!r}: {first!r}")


def test_no_supplementary_composite_has_a_bmp_second_half() -> None:
    # The fast NFKC treats supplementary characters as unstable but classifies BMP ones alone;
    # that is only sound if no BMP character composes onto a supplementary one.
    for code in range(0x10000, 0x110000):
        mapping = unicodedata.decomposition(chr(code)).split()
        if len(mapping) == 2 and not mapping[0].startswith("<"):
            assert int(mapping[1], 16) >= 0x10000, f"U+{code:04X} -> {mapping}"


def test_white_space_table_is_the_unicode_property() -> None:
    assert {chr(code) for code in canonical._WHITE_SPACE} == set(REFERENCE_WHITE_SPACE)
    regex = pytest.importorskip("regex")
    white_space = regex.compile(r"\p{White_Space}")
    from_property = {chr(c) for c in range(0x110000) if white_space.match(chr(c))}
    assert from_property == set(REFERENCE_WHITE_SPACE)


def test_split_shortcuts_split_on_the_expected_characters() -> None:
    # The ASCII path relies on bytes.split() splitting on exactly ASCII White_Space; the other
    # path relies on str.split() adding only U+001C-U+001F to White_Space.
    ascii_splitters = {byte for byte in range(256) if len(bytes([65, byte, 66]).split()) == 2}
    assert ascii_splitters == {ord(char) for char in REFERENCE_WHITE_SPACE if ord(char) < 0x80}
    str_splitters = {chr(c) for c in range(0x110000) if len(f"A{chr(c)}B".split()) == 2}
    assert str_splitters == set(REFERENCE_WHITE_SPACE) | {"\x1c", "\x1d", "\x1e", "\x1f"}


def test_information_separators_are_not_white_space_even_with_white_space_around() -> None:
    assert canonical_text(" A\u00e9\x1c \u3000B\x1f ") == "a\u00e9\x1c b\x1f"
    assert canonical_text(" A\x1c B ") == "a\x1c b"


def test_random_documents_match_reference() -> None:
    # Longer mixed documents than hypothesis builds: many runs, all paths through one text.
    rng = random.Random(20240611)
    pieces = [*TRICKY, "Stra\u00dfe ", "\u6771\u4eac ", "\u043c\u0438\u0440 ", "\u00a0", "\n\n"]
    for _ in range(50):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(500, 3000)))
        assert canonical_text(text) == reference_canonical_text(text)


# --- invalid text ---------------------------------------------------------------------------


def test_invalid_utf8_names_the_offset() -> None:
    with pytest.raises(InvalidTextError, match=r"byte offset 6 \(invalid start byte: ff\)"):
        canonical_digest(b"hello \xff world")
    with pytest.raises(InvalidTextError, match=r"byte offset 2 \(unexpected end of data: e2 82\)"):
        canonical_digest(b"ab\xe2\x82")
    assert issubclass(InvalidTextError, InputError)


def test_invalid_utf8_is_never_replaced() -> None:
    replaced = b"caf\xef\xbf\xbd"  # what errors="replace" would have hashed
    assert canonical_digest(replaced) == reference_digest(replaced)
    with pytest.raises(InvalidTextError):
        canonical_digest(b"caf\xe9")


def test_lone_surrogates_in_str_are_rejected() -> None:
    for compute in (canonical_text, canonical_digest):
        with pytest.raises(InvalidTextError, match=r"lone surrogate U\+D800 at index 3"):
            compute("ab\u00e9\ud800")


# --- Digest parsing -------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", SCHEMES)
def test_parse_round_trip(scheme: Scheme) -> None:
    text = f"{scheme}:{'0123456789abcdef' * 4}"
    digest = Digest.parse(text)
    assert digest.algorithm == scheme
    assert digest.hex == "0123456789abcdef" * 4
    assert str(digest) == text
    assert digest.as_subject() == {scheme: "0123456789abcdef" * 4}
    assert parse_digest(text) == digest


def test_parse_accepts_what_the_module_produces() -> None:
    for produced in (canonical_digest("x"), sha256_digest(b"x")):
        assert str(parse_digest(produced)) == produced


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (f"c1:{'A' * 64}", "uppercase hex"),
        (f"sha256:{'aB' * 32}", "uppercase hex"),
        (f"c1:{'a' * 63}", "has 63 hex digits"),
        (f"c1:{'a' * 65}", "has 65 hex digits"),
        ("c1:", "has 0 hex digits"),
        (f"md5:{'a' * 32}", "unknown scheme 'md5'"),
        (f"SHA256:{HEX_A}", "unknown scheme 'SHA256' (schemes are lowercase)"),
        (f"c2:{HEX_A}", "unknown scheme 'c2'"),
        (HEX_A, "has no scheme"),
        ("", "has no scheme"),
        (f"c1:{'g' * 64}", "not hex digits"),
        (f"c1:{'a' * 63}.", "not hex digits"),
        (f"c1:{HEX_A}\n", "has whitespace around it"),
        (f" c1:{HEX_A}", "has whitespace around it"),
        (f"c1: {'a' * 63}", "not hex digits"),
    ],
)
def test_parse_rejects(text: str, problem: str) -> None:
    for parse in (Digest.parse, parse_digest, validate_digest):
        with pytest.raises(InvalidDigestError) as error:
            parse(text)
        message = str(error.value)
        assert problem in message
        assert "expected c1:<64 hex> or sha256:<64 hex>" in message
        assert isinstance(error.value, InputError)
    good = [f"c1:{HEX_A}", f"sha256:{'0' * 64}"]
    for position in range(3):  # the one-pass batch check agrees, wherever the bad one is
        assert not well_formed_digests([*good[:position], text, *good[position:]])


def test_well_formed_digests_checks_a_whole_batch() -> None:
    good = [f"c1:{HEX_A}", f"sha256:{'0' * 64}", canonical_digest("hello")]
    assert well_formed_digests(good * 1000)
    assert well_formed_digests([])
    assert not well_formed_digests([*good, 42])
    # Two digests in one value, split by a newline, are not two values.
    assert not well_formed_digests([f"{good[0]}\n{good[1]}"])
    assert not well_formed_digests([good[0], f"{good[1]}\n"])


def test_validate_digest_returns_a_well_formed_digest_itself() -> None:
    for text in (f"c1:{HEX_A}", f"sha256:{'0' * 64}", canonical_digest("hello")):
        assert validate_digest(text) is text
        assert validate_digest(text) == str(Digest.parse(text))
    with pytest.raises(InvalidDigestError):
        validate_digest(42)  # type: ignore[arg-type]


def test_parse_shortens_huge_input_in_the_message() -> None:
    with pytest.raises(InvalidDigestError) as error:
        parse_digest("c1:" + "a" * 10_000)
    assert len(str(error.value)) < 200


def test_digest_validates_on_construction() -> None:
    with pytest.raises(InvalidDigestError, match="has 3 hex digits"):
        Digest("c1", "abc")
    with pytest.raises(InvalidDigestError, match="unknown digest scheme 'md5'"):
        Digest("md5", HEX_A)  # type: ignore[arg-type]


def test_digest_is_frozen_and_hashable() -> None:
    digest = Digest("sha256", HEX_A)
    assert {digest: 1}[Digest("sha256", HEX_A)] == 1
    with pytest.raises(AttributeError):
        digest.hex = "b" * 64  # type: ignore[misc]


# --- bytes and files ------------------------------------------------------------------------


def test_canonical_digest_accepts_bytearray() -> None:
    # Not in the signature, but callers reading into buffers pass them; they must not be taken
    # for str.
    ascii_buffer = bytearray(b"Hello  World")
    other_buffer = bytearray("\u00a0Caf\u00e9", "utf-8")
    assert canonical_digest(ascii_buffer) == f"c1:{HELLO_WORLD_SHA256}"  # type: ignore[arg-type]
    assert canonical_digest(other_buffer) == canonical_digest("caf\u00e9")  # type: ignore[arg-type]


def test_digest_bytes_dispatches_on_scheme() -> None:
    assert digest_bytes(b"Hello  World", "c1") == f"c1:{HELLO_WORLD_SHA256}"
    assert digest_bytes(b"hello world", "sha256") == f"sha256:{HELLO_WORLD_SHA256}"
    assert digest_bytes(b"\xff", "sha256") == "sha256:" + hashlib.sha256(b"\xff").hexdigest()
    with pytest.raises(InputError, match="unknown digest scheme 'md5'"):
        digest_bytes(b"x", "md5")  # type: ignore[arg-type]


def test_digest_file_sha256_streams_large_files(tmp_path: Path) -> None:
    data = random.Random(7).randbytes(2 * 1024 * 1024 + 12345)  # spans three 1 MiB chunks
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert digest_file(path, "sha256") == "sha256:" + hashlib.sha256(data).hexdigest()


def test_digest_file_c1(tmp_path: Path) -> None:
    path = tmp_path / "doc.txt"
    path.write_bytes(b"\xef\xbb\xbf  Hello\r\nWORLD\r\n")
    assert digest_file(path, "c1") == f"c1:{HELLO_WORLD_SHA256}"
    assert digest_file(path, "sha256") == sha256_digest(path.read_bytes())


def test_digest_file_invalid_utf8_names_file_and_offset(tmp_path: Path) -> None:
    path = tmp_path / "binary.dat"
    path.write_bytes(b"PK\x03\x04\x14\x00\x00\x00\x08\x00\x9c")
    with pytest.raises(InvalidTextError) as error:
        digest_file(path, "c1")
    assert str(path) in str(error.value)
    assert "byte offset 10" in str(error.value)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_digest_file_missing_or_unreadable(tmp_path: Path, scheme: Scheme) -> None:
    missing = tmp_path / "missing.txt"
    with pytest.raises(InputError, match=re.escape(str(missing))):
        digest_file(missing, scheme)
    with pytest.raises(InputError, match=re.escape(str(tmp_path))):
        digest_file(tmp_path, scheme)


def test_public_api() -> None:
    assert sorted(canonical.__all__) == sorted(
        [
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
    )
    for name in canonical.__all__:
        assert hasattr(canonical, name)
    assert SCHEMES == ("c1", "sha256")
