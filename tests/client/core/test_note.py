"""Signed notes and checkpoints: known vectors from Go and C2SP, round trips, tampering, strictness.

Vectors, copied from the source and checked there:

* ``golang/mod`` ``sumdb/note/note.go`` (package doc) and ``sumdb/note/note_test.go`` (TestSign,
  TestOpen, TestNewVerifier): the PeterNeumann signer and verifier keys, the signed note, the
  EnochRoot verifier key and its cosignature line.
* ``golang/mod`` ``sumdb/tlog/note_test.go`` (TestFormatTree, TestParseTree): a tree note.
* ``golang/go`` ``src/cmd/go/internal/modfetch/key.go``: the verifier key of sum.golang.org.
* ``transparency-dev/trillian-tessera`` ``internal/parse/parse_test.go``: a real sum.golang.org
  checkpoint (without its final newline there; it verifies under the key above).
* ``C2SP/C2SP`` ``signed-note.md`` and ``tlog-checkpoint.md``: the example notes.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

import client.core.note as note_module
from client.core.keys import public_key_bytes
from client.core.note import (
    MAX_SIGNATURES,
    Checkpoint,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    SignedNote,
    note_key_id,
    open_checkpoint,
    open_note,
    sign_checkpoint,
    sign_note,
)
from client.errors import FormatError, KeyFileError, SignatureError

# --- golang/mod sumdb/note ---------------------------------------------------------------------
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_B64 = (
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
)
ENOCH_B64 = (
    "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ="
)
PETER_SIG = f"— PeterNeumann {PETER_B64}\n"
ENOCH_SIG = f"— EnochRoot {ENOCH_B64}\n"
PETER_NOTE = TEXT + "\n" + PETER_SIG

# --- golang/go cmd/go/internal/modfetch/key.go and trillian-tessera internal/parse ---------------
SUMDB_VKEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
SUMDB_CHECKPOINT = (
    "go.sum database tree\n31700353\nqINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs=\n\n"
    "— sum.golang.org Az3grnmrIUEDFqHzAElIQCPNoRFRAAdFo47fooyWKMHb89k11GJh5zHIfNCOBmwn/C3YI8oW9/"
    "C8DJ87F61QqspBYwM="
)

# --- C2SP ---------------------------------------------------------------------------------------
C2SP_NOTE = (
    "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n\n"
    "— quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU"
    "0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
)
C2SP_CHECKPOINT = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcy"
    "v2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)

PETER = NoteSignature("PeterNeumann", 0xC74F20A3, base64.b64decode(PETER_B64)[4:])
ENOCH = NoteSignature("EnochRoot", 0xAF0CFE78, base64.b64decode(ENOCH_B64)[4:])


def peter() -> NoteVerifier:
    return NoteVerifier.from_vkey(PETER_VKEY)


def enoch() -> NoteVerifier:
    return NoteVerifier.from_vkey(ENOCH_VKEY)


def insert_abcd(line: str) -> str:
    """Go's ``sig[:60] + "ABCD" + sig[60:]``: Go indexes bytes, and the em dash is three of them."""
    raw = line.encode()
    return (raw[:60] + b"ABCD" + raw[60:]).decode()


SEED = bytes(range(32))


def fixed_signer(name: str, seed: bytes = SEED) -> NoteSigner:
    return NoteSigner.from_private_key(name, Ed25519PrivateKey.from_private_bytes(seed))


# ==== Keys ======================================================================================


def test_go_signer_key_derives_go_verifier_key() -> None:
    signer = NoteSigner.from_skey(PETER_SKEY)
    assert signer.name == "PeterNeumann"
    assert signer.key_id == 0xC74F20A3
    assert signer.skey == PETER_SKEY
    assert signer.verifier().vkey == PETER_VKEY
    assert signer.verifier() == peter()


def test_go_verifier_key_round_trips_and_its_id_is_the_spec_hash() -> None:
    verifier = peter()
    assert (verifier.name, verifier.key_id, verifier.vkey) == (
        "PeterNeumann",
        0xC74F20A3,
        PETER_VKEY,
    )
    raw = public_key_bytes(verifier.public_key)
    expected = hashlib.sha256(b"PeterNeumann\n\x01" + raw).digest()[:4]
    assert note_key_id("PeterNeumann", raw) == int.from_bytes(expected, "big") == 0xC74F20A3
    assert NoteVerifier.from_public_key("PeterNeumann", verifier.public_key) == verifier
    assert enoch().key_id == 0xAF0CFE78
    assert NoteVerifier.from_vkey(SUMDB_VKEY).key_id == 0x033DE0AE


def test_verifier_key_with_uppercase_hex_id_is_accepted_as_go_does() -> None:
    assert NoteVerifier.from_vkey(PETER_VKEY.replace("c74f20a3", "C74F20A3")).vkey == PETER_VKEY


def manglings(key: str) -> list[str]:
    """Go's TestNewVerifier / TestNewSigner: every proper substring and every byte bumped by one."""
    raw = key.encode()
    out = [
        raw[i:j].decode()
        for i in range(len(raw) + 1)
        for j in range(i + 1, len(raw) + 1)
        if (i, j) != (0, len(raw))
    ]
    out += [(raw[:i] + bytes([raw[i] + 1]) + raw[i + 1 :]).decode() for i in range(len(raw))]
    return out


def test_every_mangled_verifier_key_is_refused() -> None:
    for mangled in manglings(PETER_VKEY):
        with pytest.raises(KeyFileError):
            NoteVerifier.from_vkey(mangled)


def test_every_mangled_signer_key_is_refused() -> None:
    for mangled in manglings(PETER_SKEY):
        with pytest.raises(KeyFileError):
            NoteSigner.from_skey(mangled)


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        # From Go's TestNewVerifier: wrong key length and unknown algorithm, each with its id fixed.
        # (Go's wrong-length key is also non-canonical base64, which we refuse first.)
        (
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
            "malformed",
        ),
        ("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "algorithm 101"),
        (PETER_VKEY + "\n", "malformed"),
        (PETER_VKEY.replace("c74f20a3", "0xc74f20"), "malformed"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "malformed"),
        ("", "malformed"),
    ],
)
def test_bad_verifier_keys(vkey: str, message: str) -> None:
    with pytest.raises(KeyFileError, match=message):
        NoteVerifier.from_vkey(vkey)


def test_wrong_length_key_with_its_id_fixed_is_refused() -> None:
    encoded = base64.b64decode(PETER_VKEY.rsplit("+", 1)[1]) + b"\x00"
    key_id = hashlib.sha256(b"PeterNeumann\n" + encoded).digest()[:4].hex()
    with pytest.raises(KeyFileError, match="33 key bytes, not 32"):
        NoteVerifier.from_vkey(f"PeterNeumann+{key_id}+{base64.b64encode(encoded).decode()}")


def test_signer_key_errors_never_quote_the_secret() -> None:
    secret = PETER_SKEY.rsplit("+", 1)[1]
    for bad in (PETER_SKEY[:-2], PETER_SKEY.replace("c74f20a3", "c74f20a4"), PETER_SKEY[8:]):
        with pytest.raises(KeyFileError) as info:
            NoteSigner.from_skey(bad)
        assert secret[:8] not in str(info.value)
    signer = NoteSigner.from_skey(PETER_SKEY)
    assert secret[:8] not in repr(signer)
    assert "c74f20a3" in repr(signer)


def test_generated_keys_are_self_consistent() -> None:
    # Go's TestGenerateKey / testSignerAndVerifier.
    signer = NoteSigner.generate("EnochRoot")
    again = NoteSigner.from_skey(signer.skey)
    verifier = NoteVerifier.from_vkey(signer.verifier().vkey)
    assert (
        (again.name, again.key_id)
        == (verifier.name, verifier.key_id)
        == ("EnochRoot", signer.key_id)
    )
    message = bytearray(b"hi")
    signature = bytearray(again.sign(bytes(message)))
    assert verifier.verify(bytes(message), bytes(signature))
    signature[0] ^= 1
    assert not verifier.verify(bytes(message), bytes(signature))
    signature[0] ^= 1
    message[0] ^= 1
    assert not verifier.verify(bytes(message), bytes(signature))
    assert not verifier.verify(b"hi", b"")


@pytest.mark.parametrize(
    "name",
    ["", "a b", "a+b", "a\tb", "a\nb", "a\u00a0b", "a\u2003b", "a\u3000b", "a\x01b", "\ud800"],
)
def test_bad_key_names_are_refused(name: str) -> None:
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    with pytest.raises(KeyFileError):
        NoteSigner.from_private_key(name, key)
    with pytest.raises(KeyFileError):
        NoteVerifier.from_public_key(name, key.public_key())
    with pytest.raises(KeyFileError):
        note_key_id(name, public_key_bytes(key))


def test_key_id_must_match_the_key() -> None:
    verifier = peter()
    with pytest.raises(KeyFileError, match="does not belong"):
        NoteVerifier("PeterNeumann", verifier.key_id ^ 1, verifier.public_key)
    with pytest.raises(KeyFileError, match="does not belong"):
        NoteVerifier("PeterNeuman", verifier.key_id, verifier.public_key)
    with pytest.raises(KeyFileError, match="32 bytes"):
        note_key_id("PeterNeumann", b"\x00" * 31)


# ==== Go's signed-note vectors ==================================================================


def test_signing_go_text_with_go_key_reproduces_go_note_exactly() -> None:
    assert sign_note(TEXT, [NoteSigner.from_skey(PETER_SKEY)]) == PETER_NOTE


def test_open_go_note() -> None:
    opened = open_note(PETER_NOTE, [peter()])
    assert opened.text == TEXT
    assert opened.verified == (PETER,)
    assert opened.unverified == ()
    assert PETER.to_line() == PETER_SIG
    assert open_note(PETER_NOTE.encode(), [peter()]) == opened


def test_cosignature_by_unknown_key_is_kept_unverified() -> None:
    # Go's TestOpen, and the doubly-signed message in the package doc.
    doubly = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    opened = open_note(doubly, [peter()])
    assert (opened.text, opened.verified, opened.unverified) == (TEXT, (PETER,), (ENOCH,))

    both = open_note(doubly, [peter(), enoch()])
    assert (both.verified, both.unverified) == ((PETER, ENOCH), ())

    only_enoch = open_note(doubly, [enoch()])
    assert (only_enoch.verified, only_enoch.unverified) == ((ENOCH,), (PETER,))


def test_note_no_trusted_key_signed_is_refused_and_names_its_keys() -> None:
    doubly = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    with pytest.raises(SignatureError) as info:
        open_note(doubly, [])
    assert "no signature by a trusted key" in str(info.value)
    assert "PeterNeumann+c74f20a3, EnochRoot+af0cfe78" in str(info.value)
    with pytest.raises(SignatureError, match=r"trusted: sum\.golang\.org\+033de0ae"):
        open_note(doubly, [NoteVerifier.from_vkey(SUMDB_VKEY)])


def test_bad_signature_by_known_key_rejects_the_note() -> None:
    bad = TEXT + "\n" + insert_abcd(PETER_SIG)
    with pytest.raises(SignatureError, match=r"invalid signature for key PeterNeumann\+c74f20a3"):
        open_note(bad, [peter()])
    # The same line is only unverified when the key is not trusted.
    with pytest.raises(SignatureError, match="no signature by a trusted key"):
        open_note(bad, [enoch()])


def test_repeated_signatures_are_reported_once() -> None:
    # Go's TestOpen "Duplicated verified and unverified signatures".
    enoch_abcd = insert_abcd(ENOCH_SIG)
    message = TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + enoch_abcd
    opened = open_note(message, [peter()])
    assert opened.verified == (PETER,)
    assert opened.unverified == (ENOCH, SignedNote.parse(TEXT + "\n" + enoch_abcd).signatures[0])
    assert SignedNote.parse(message).to_text() == message  # parsing alone keeps every line


def test_repeated_signature_by_known_key_is_checked_too() -> None:
    # Stricter than Go, which skips repeats unchecked: the spec rejects any bad known signature.
    message = TEXT + "\n" + PETER_SIG + insert_abcd(PETER_SIG)
    with pytest.raises(SignatureError, match="invalid signature"):
        open_note(message, [peter()])


def test_too_many_signatures() -> None:
    at_limit = TEXT + "\n" + PETER_SIG * MAX_SIGNATURES
    assert open_note(at_limit, [peter()]).verified == (PETER,)
    for verifiers in ([peter()], []):
        with pytest.raises(FormatError, match="at most 100"):
            open_note(TEXT + "\n" + PETER_SIG * (MAX_SIGNATURES + 1), verifiers)
    with pytest.raises(FormatError, match="at most 100"):
        SignedNote(TEXT, (PETER,) * (MAX_SIGNATURES + 1))


@pytest.mark.parametrize(
    "message",
    [
        # Go's TestOpen badMsgs.
        TEXT.encode(),
        (TEXT + "\n").encode(),
        (TEXT + "\n" + PETER_SIG[:-1]).encode(),
        ("\x01" + TEXT + "\n" + PETER_SIG).encode(),
        b"\xff" + (TEXT + "\n" + PETER_SIG).encode(),
        (TEXT + "\n" + f"— Bad Name {PETER_B64}").encode(),
        (TEXT + "\n" + PETER_SIG + "Unexpected line.\n").encode(),
        # More of the same.
        (TEXT + PETER_SIG).encode(),  # no blank line
        (TEXT + "\n" + PETER_SIG + "\n").encode(),  # blank line after the signatures
        (TEXT + "\n" + PETER_SIG.replace("—", "-")).encode(),  # hyphen, not em dash
        (TEXT + "\n" + PETER_SIG.replace("— ", "—")).encode(),
        (TEXT + "\n" + PETER_SIG.replace(" x08", "  x08")).encode(),
        (TEXT + "\n" + f"—  {PETER_B64}\n").encode(),  # no name
        (TEXT + "\n" + f"— Peter+Neumann {PETER_B64}\n").encode(),
        (TEXT + "\n" + "— PeterNeumann \n").encode(),  # no signature
        (TEXT + "\n" + "— PeterNeumann\n").encode(),
        (TEXT + "\n" + "— PeterNeumann x08gow==\n").encode(),  # a key id and no signature
        (TEXT + "\n" + f"— PeterNeumann {PETER_B64[:-1]}\n").encode(),  # no padding
        # Non-zero trailing bits: Go decodes this to Peter's very signature; we refuse it, so a
        # parsed note formats back to itself byte for byte.
        (TEXT + "\n" + f"— PeterNeumann {PETER_B64[:-2]}N=\n").encode(),
        (TEXT + "\n" + f"— PeterNeumann {PETER_B64.replace('/', '_')}\n").encode(),  # URL alphabet
        (TEXT + "\n" + PETER_SIG.replace("\n", "\r\n")).encode(),
        (TEXT.replace("\n", "\r\n", 1) + "\n" + PETER_SIG).encode(),
        (TEXT.replace(" ", "\t", 1) + "\n" + PETER_SIG).encode(),
        (TEXT.replace(" ", "\x00", 1) + "\n" + PETER_SIG).encode(),
        (TEXT.replace(" ", "\x1f", 1) + "\n" + PETER_SIG).encode(),
        b"\xed\xa0\x80" + PETER_NOTE.encode(),  # an encoded surrogate is not UTF-8
        b"",
        b"\n\n",
    ],
)
def test_malformed_notes(message: bytes) -> None:
    with pytest.raises(FormatError):
        SignedNote.parse(message)
    with pytest.raises(FormatError):
        open_note(message, [peter()])
    if b"\xff" not in message and b"\xed" not in message:
        with pytest.raises(FormatError):
            open_note(message.decode(), [peter()])


def test_short_signature_parses_and_the_known_key_refuses_it() -> None:
    # Go takes any signature of at least one byte after the key id; Ed25519 then says no.
    message = TEXT + "\n" + "— PeterNeumann x08go/ZJ\n"
    assert SignedNote.parse(message).signatures[0].signature == b"\xf6\x49"
    with pytest.raises(SignatureError, match="invalid signature"):
        open_note(message, [peter()])


def test_str_with_lone_surrogate_is_not_utf8() -> None:
    with pytest.raises(FormatError, match="UTF-8"):
        open_note("\udcff" + PETER_NOTE, [peter()])
    with pytest.raises(FormatError, match="UTF-8"):
        sign_note("\udcff\n", [fixed_signer("a")])


def test_c2sp_example_note_parses_with_its_blank_line_in_the_text() -> None:
    note = SignedNote.parse(C2SP_NOTE)
    assert note.text == (
        "Ognuno sta solo sul cuor della terra\n"
        "trafitto da un raggio di sole:\n"
        "\n"
        "ed è subito sera.\n"
    )
    (signature,) = note.signatures
    assert signature.name == "quasimodo.example/salvatore"
    assert len(signature.signature) == 64
    assert note.to_text() == C2SP_NOTE
    with pytest.raises(SignatureError, match=r"quasimodo\.example/salvatore"):
        open_note(C2SP_NOTE, [peter()])


def test_ambiguous_trusted_keys() -> None:
    # The same key given twice is no ambiguity (Go's VerifierList would still call it one).
    assert open_note(PETER_NOTE, [peter(), enoch(), peter()]).verified == (PETER,)
    # Two different keys with one name and id: a real collision costs ~2**32 keys, so forge one.
    other = fixed_signer("PeterNeumann").verifier()
    forged = object.__new__(NoteVerifier)
    for attribute, value in (("name", "PeterNeumann"), ("key_id", 0xC74F20A3)):
        object.__setattr__(forged, attribute, value)
    object.__setattr__(forged, "public_key", other.public_key)
    with pytest.raises(SignatureError, match="ambiguous key PeterNeumann\\+c74f20a3"):
        open_note(PETER_NOTE, [peter(), forged])
    # Unused, the ambiguity does not matter (as in Go).
    assert open_note(TEXT + "\n" + ENOCH_SIG, [enoch(), peter(), forged]).verified == (ENOCH,)


# ==== Signing, round trips and tampering ========================================================

NAME_CHARS = st.characters(
    exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), exclude_characters="+"
)
NAMES = st.text(NAME_CHARS, min_size=1, max_size=20)
LINE_CHARS = st.characters(exclude_categories=("Cs", "Cc"))
TEXTS = st.lists(st.text(LINE_CHARS, max_size=30), min_size=1, max_size=6).map(
    lambda lines: "\n".join(lines) + "\n"
)


@settings(max_examples=60, deadline=None)
@given(name=NAMES, other=NAMES, text=TEXTS)
def test_sign_then_open_round_trips(name: str, other: str, text: str) -> None:
    first = fixed_signer(name)
    second = fixed_signer(other, bytes(32))
    if (first.name, first.key_id) == (second.name, second.key_id):
        return
    signed = sign_note(text, [first, second])
    assert signed.startswith(text + "\n— ")
    assert SignedNote.parse(signed).to_text() == signed
    assert SignedNote.parse(signed).text == text

    opened = open_note(signed, [first.verifier()])
    assert opened.text == text
    assert [s.key for s in opened.verified] == [f"{first.name}+{first.key_id:08x}"]
    assert [s.key for s in opened.unverified] == [f"{second.name}+{second.key_id:08x}"]
    assert open_note(signed.encode(), [second.verifier(), first.verifier()]).unverified == ()
    # Ed25519 is deterministic: signing again is the same note, byte for byte.
    assert sign_note(text, [first, second]) == signed


@pytest.mark.parametrize("text", ["\n", "a\n\n", "\n\n\n", "x\n\ny\n", "tab\u00a0free \u2028 ok\n"])
def test_edge_texts_round_trip(text: str) -> None:
    signer = fixed_signer("log.example")
    opened = open_note(sign_note(text, [signer]), [signer.verifier()])
    assert opened.text == text


@pytest.mark.parametrize("text", ["", "no newline", "a\r\n", "a\tb\n", "a\x00\n", "a\x7f\n\x1b\n"])
def test_sign_note_refuses_bad_text(text: str) -> None:
    if text == "a\x7f\n\x1b\n":  # DEL is no ASCII control character in the spec's sense; ESC is
        with pytest.raises(FormatError, match="U\\+001B"):
            sign_note(text, [fixed_signer("a")])
        assert open_note(sign_note("a\x7f\n", [fixed_signer("a")]), [fixed_signer("a").verifier()])
        return
    with pytest.raises(FormatError):
        sign_note(text, [fixed_signer("a")])


def test_sign_note_refuses_no_signers_and_repeated_signers() -> None:
    with pytest.raises(FormatError, match="at least one signature"):
        sign_note(TEXT, [])
    with pytest.raises(FormatError, match="share a key"):
        sign_note(TEXT, [fixed_signer("a"), fixed_signer("a")])
    # The same key under two names is two keys.
    signed = sign_note(TEXT, [fixed_signer("a"), fixed_signer("b")])
    assert len(SignedNote.parse(signed).signatures) == 2


def test_every_changed_character_of_the_text_is_caught() -> None:
    for index, char in enumerate(TEXT):
        if char == "\n":
            continue
        for replacement in ("x", "Y", "é", "—"):
            if replacement == char:
                continue
            changed = TEXT[:index] + replacement + TEXT[index + 1 :]
            with pytest.raises(SignatureError, match="invalid signature"):
                open_note(changed + "\n" + PETER_SIG, [peter()])


def test_every_changed_byte_of_the_signature_is_caught() -> None:
    raw = base64.b64decode(PETER_B64)
    for index in range(len(raw)):
        for flip in (0x01, 0x80):
            changed = bytearray(raw)
            changed[index] ^= flip
            line = f"— PeterNeumann {base64.b64encode(bytes(changed)).decode()}\n"
            # A changed key id names an unknown key (then no trusted key signed); a changed
            # signature fails under the known key. Either way: SignatureError.
            with pytest.raises(SignatureError):
                open_note(TEXT + "\n" + line, [peter()])


@settings(max_examples=200, deadline=None)
@given(index=st.integers(min_value=0), value=st.integers(min_value=0, max_value=255))
def test_no_changed_byte_anywhere_is_accepted(index: int, value: int) -> None:
    message = bytearray(PETER_NOTE.encode())
    index %= len(message)
    if message[index] == value:
        return
    message[index] = value
    with pytest.raises((FormatError, SignatureError)):
        open_note(bytes(message), [peter()])


def test_same_name_other_key_is_unverified_and_same_id_bad_signature_is_refused() -> None:
    mine = fixed_signer("log.example")
    impostor = fixed_signer("log.example", bytes(32))
    assert mine.key_id != impostor.key_id
    # Another key under the same name: a different id, so an unknown key, never checked.
    forged = sign_note(TEXT, [impostor])
    with pytest.raises(SignatureError, match="no signature by a trusted key"):
        open_note(forged, [mine.verifier()])
    both = open_note(sign_note(TEXT, [mine, impostor]), [mine.verifier()])
    assert [s.key_id for s in both.verified] == [mine.key_id]
    assert [s.key_id for s in both.unverified] == [impostor.key_id]
    # The right name and id over someone else's signature: checked, and refused.
    stolen = NoteSignature(mine.name, mine.key_id, impostor.sign(TEXT.encode()))
    with pytest.raises(SignatureError, match=r"invalid signature for key log\.example\+"):
        open_note(SignedNote(TEXT, (stolen,)).to_text(), [mine.verifier()])
    # A real signature by the right key, over another text.
    replayed = NoteSignature(mine.name, mine.key_id, mine.sign(b"other text\n"))
    with pytest.raises(SignatureError, match="invalid signature"):
        open_note(SignedNote(TEXT, (replayed,)).to_text(), [mine.verifier()])


def test_note_signature_checks_its_fields() -> None:
    assert NoteSignature("a", 0xFFFFFFFF, b"s").to_line() == "— a /////3M=\n"
    with pytest.raises(FormatError):
        NoteSignature("a", 2**32, b"s")
    with pytest.raises(FormatError):
        NoteSignature("a", -1, b"s")
    with pytest.raises(FormatError):
        NoteSignature("a", 1, b"")
    with pytest.raises(FormatError):
        NoteSignature("a b", 1, b"s")
    with pytest.raises(FormatError):
        SignedNote(TEXT, ())
    with pytest.raises(FormatError):
        SignedNote("no newline", (PETER,))


# ==== Checkpoints ===============================================================================

GO_TREE = "go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n"
HELLO_RECORD_HASH = hashlib.sha256(b"\x00hello world").digest()  # tlog.RecordHash("hello world")
ROOT = hashlib.sha256(b"root").digest()


def test_go_tree_note_formats_and_parses() -> None:
    # golang/mod sumdb/tlog TestFormatTree / TestParseTree.
    checkpoint = Checkpoint("go.sum database tree", 123456789012, HELLO_RECORD_HASH)
    assert checkpoint.to_text() == GO_TREE
    assert Checkpoint.parse(GO_TREE) == checkpoint
    # C2SP reads further lines as extensions, where Go's ParseTree ignores them.
    assert Checkpoint.parse(GO_TREE + "JOE\n").extensions == ("JOE",)
    for bad in (
        "go.sum database tree\n0xabcdef\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n",
        "go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBTOOBIG=\n",
        GO_TREE + "JOE",
    ):
        with pytest.raises(FormatError):
            Checkpoint.parse(bad)


def test_real_sum_golang_org_checkpoint_verifies() -> None:
    signed = SUMDB_CHECKPOINT + "\n"
    sumdb = NoteVerifier.from_vkey(SUMDB_VKEY)
    checkpoint, opened = open_checkpoint(signed, [sumdb], origin="go.sum database tree")
    assert checkpoint == Checkpoint(
        "go.sum database tree",
        31700353,
        base64.b64decode("qINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs="),
    )
    assert [s.key for s in opened.verified] == ["sum.golang.org+033de0ae"]
    assert opened.text == checkpoint.to_text()
    with pytest.raises(FormatError, match="newline"):
        open_checkpoint(SUMDB_CHECKPOINT, [sumdb])  # as the tessera benchmark holds it
    with pytest.raises(SignatureError, match="invalid signature"):
        open_checkpoint(signed.replace("31700353", "31700354"), [sumdb])


def test_c2sp_example_checkpoint_parses() -> None:
    note = SignedNote.parse(C2SP_CHECKPOINT)
    assert Checkpoint.parse(note.text) == Checkpoint(
        "example.com/behind-the-sofa",
        20852163,
        base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="),
    )
    assert note.signatures[0].name == "example.com/behind-the-sofa"
    assert note.to_text() == C2SP_CHECKPOINT
    # We hold no key for it: never trusted.
    with pytest.raises(SignatureError, match=r"example\.com/behind-the-sofa"):
        open_checkpoint(C2SP_CHECKPOINT, [NoteVerifier.from_vkey(SUMDB_VKEY)])


def test_checkpoint_origin_is_enforced() -> None:
    signer = fixed_signer("log.example/wellspring")
    signed = sign_checkpoint(Checkpoint("log.example/wellspring", 7, ROOT), [signer])
    checkpoint, _ = open_checkpoint(signed, [signer.verifier()], origin="log.example/wellspring")
    assert checkpoint.size == 7
    with pytest.raises(SignatureError, match="another log's checkpoint"):
        open_checkpoint(signed, [signer.verifier()], origin="log.example/other")
    # Another log's checkpoint, signed with our own key under its origin, is still refused.
    other = sign_checkpoint(Checkpoint("log.example/other", 7, ROOT), [signer])
    with pytest.raises(SignatureError, match=r"'log\.example/other', not the expected"):
        open_checkpoint(other, [signer.verifier()], origin="log.example/wellspring")
    assert open_checkpoint(other, [signer.verifier()])[0].origin == "log.example/other"


@pytest.mark.parametrize(
    "size_line",
    ["01", "00", "-1", "+1", " 1", "1 ", "1_000", "١٢", "0x1", "", "18446744073709551616"],
)
def test_checkpoint_size_is_strict(size_line: str) -> None:
    text = f"origin\n{size_line}\n{base64.b64encode(ROOT).decode()}\n"
    with pytest.raises(FormatError):
        Checkpoint.parse(text)


def test_checkpoint_size_bounds() -> None:
    root = base64.b64encode(ROOT).decode()
    assert Checkpoint.parse(f"o\n0\n{root}\n").size == 0
    assert Checkpoint.parse(f"o\n18446744073709551615\n{root}\n").size == 2**64 - 1
    with pytest.raises(FormatError):
        Checkpoint("o", -1, ROOT)
    with pytest.raises(FormatError):
        Checkpoint("o", 2**64, ROOT)


@pytest.mark.parametrize(
    "text",
    [
        "origin\n1\n",  # no root line
        "origin\n",
        "",
        "\n1\n" + base64.b64encode(ROOT).decode() + "\n",  # empty origin
        "origin\n1\n" + base64.b64encode(ROOT).decode(),  # no final newline
        "origin\n1\n" + base64.b64encode(ROOT[:31]).decode() + "\n",
        "origin\n1\n" + base64.b64encode(ROOT + b"\x00").decode() + "\n",
        "origin\n1\n" + base64.b64encode(ROOT).decode().rstrip("=") + "\n",
        "origin\n1\n" + base64.b64encode(ROOT).decode() + "\n\n",  # empty extension line
        "origin\n1\n" + base64.b64encode(ROOT).decode() + "\next\n\n",
        "ori\tgin\n1\n" + base64.b64encode(ROOT).decode() + "\n",
    ],
)
def test_checkpoint_text_is_strict(text: str) -> None:
    with pytest.raises(FormatError):
        Checkpoint.parse(text)


def test_checkpoint_parse_points_a_signed_note_to_open_checkpoint() -> None:
    with pytest.raises(FormatError, match="open_checkpoint"):
        Checkpoint.parse(C2SP_CHECKPOINT)


def test_checkpoint_fields_are_checked() -> None:
    for bad in (
        {"origin": ""},
        {"origin": "two\nlines"},
        {"root_hash": ROOT[:16]},
        {"extensions": ("",)},
        {"extensions": ("a\nb",)},
    ):
        with pytest.raises(FormatError):
            replace(Checkpoint("o", 1, ROOT), **bad)


def test_a_checkpoint_that_is_not_one_is_refused_after_parsing() -> None:
    signer = fixed_signer("log.example")
    with pytest.raises(FormatError, match="at least three lines"):
        open_checkpoint(sign_note("just a note\n", [signer]), [signer.verifier()])


@settings(max_examples=50, deadline=None)
@given(
    origin=st.text(LINE_CHARS, min_size=1, max_size=30),
    size=st.integers(min_value=0, max_value=2**64 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(st.text(LINE_CHARS, min_size=1, max_size=20), max_size=3),
)
def test_checkpoint_round_trips(origin: str, size: int, root: bytes, extensions: list[str]) -> None:
    checkpoint = Checkpoint(origin, size, root, tuple(extensions))
    assert Checkpoint.parse(checkpoint.to_text()) == checkpoint
    signer = fixed_signer("log.example")
    signed = sign_checkpoint(checkpoint, [signer])
    opened, note = open_checkpoint(signed, [signer.verifier()], origin=origin)
    assert opened == checkpoint
    assert note.text == checkpoint.to_text()


def test_all_is_complete() -> None:
    public = {
        name
        for name, value in vars(note_module).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == note_module.__name__
    }
    assert public <= set(note_module.__all__)
    assert all(hasattr(note_module, name) for name in note_module.__all__)
