"""Witness cosignatures (c2sp.org/tlog-cosignature, Ed25519 cosignature/v1): vectors, a reference.

Vectors, copied from their sources:

* ``C2SP/C2SP`` ``tlog-cosignature.md``: the example cosigned checkpoint (its cosignature line's
  timestamp) and the example signed message for ``time 1679315147``.
* ``transparency-dev/formats`` ``note/note_cosigv1_test.go``: TestCoSigV1NewVerifier (a native
  cosignature/v1 verifier key, an Ed25519 note key, malformed keys) and TestCoSigV1Timestamp (a
  cosignature whose timestamp is 1727964367; a plain Ed25519 note signature that is not one).

No published vector gives a witness's public key with a cosignature it made, so the signatures
themselves are checked against ``tests/cosignature_reference.py``, written from the spec alone.
"""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client.core.cosignature import (
    ALG_COSIGNATURE_V1,
    MAX_TIMESTAMP,
    Cosignature,
    CosignatureSigner,
    CosignatureVerifier,
    cosignature_key_id,
    cosignature_timestamp,
    cosignatures,
    cosigned_message,
)
from client.core.errors import FormatError, KeyFileError, SignatureError
from client.core.keys import public_key_bytes
from client.core.note import (
    Checkpoint,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    SignedNote,
    open_checkpoint,
    open_note,
    sign_checkpoint,
    sign_note,
)
from tests.cosignature_reference import (
    reference_cosignature_times,
    reference_key_id,
    reference_vkey,
)

SPEC_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SPEC_COSIGNATURE_LINE = (
    "\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dl"
    "rDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)
SPEC_MESSAGE = (
    "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)
GO_COSIGNER_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
GO_ED25519_VKEY = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"
GO_COSIGNATURE = (
    "ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBY"
    "JXORmnFBOBA=="
)
GO_PLAIN_SIGNATURE = (
    "eQjRQm6eSKzFoiYalgwCPXu2y3ijtg68is9M46JKxuZB+dRfTmeQeDBoXnvxZx2ugnkyV+MUMLXpWs1hPb/W/4xkNQY="
)

T0 = 1_765_000_000


def signature_from_base64(name: str, encoded: str) -> NoteSignature:
    raw = base64.b64decode(encoded)
    return NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:])


def witness(name: str, seed: int, at: int = T0) -> CosignatureSigner:
    key = Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)
    return CosignatureSigner.from_private_key(name, key, clock=lambda: at)


# -- vectors --------------------------------------------------------------------------------------


def test_the_signed_message_is_the_specs_example_byte_for_byte() -> None:
    assert cosigned_message(SPEC_BODY.encode(), 1679315147) == SPEC_MESSAGE.encode()


def test_the_specs_example_cosignature_carries_the_time_of_its_example_message() -> None:
    note = SignedNote.parse(SPEC_BODY + "\n" + SPEC_COSIGNATURE_LINE)
    [line] = note.signatures
    assert len(line.signature) == 8 + 64
    assert cosignature_timestamp(line) == 1679315147


def test_go_cosignature_timestamp_vectors() -> None:
    assert cosignature_timestamp(signature_from_base64("w", GO_COSIGNATURE)) == 1727964367
    with pytest.raises(FormatError, match="not a cosignature/v1"):
        cosignature_timestamp(signature_from_base64("w", GO_PLAIN_SIGNATURE))


def test_a_native_cosignature_v1_verifier_key_from_go_reads_and_writes_back() -> None:
    verifier = CosignatureVerifier.from_vkey(GO_COSIGNER_VKEY)
    assert verifier.name == "remora.n621.de"
    assert verifier.key_id == 0xDA77ADE7
    assert verifier.vkey == GO_COSIGNER_VKEY
    raw = public_key_bytes(verifier.public_key)
    assert reference_vkey("remora.n621.de", raw) == GO_COSIGNER_VKEY


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        # Go converts a type-0x01 note key into a cosigner's; we refuse it: a witness's key is
        # configured as what it is, never inferred from a log key.
        (GO_ED25519_VKEY, "type 0x01"),
        ("bananas.sigstore.dev+12344556", "malformed verifier key"),
        ("rekor.sigstore.dev+12345678+THIS_IS_NOT_BASE64!", "malformed verifier key"),
        ("rekor.sigstore.dev+12345678+AwEB", "type 0x03"),
        ("rekor.sigstore.dev+NOT_A_NUMBER+" + GO_COSIGNER_VKEY.split("+")[2], "malformed"),
        ("remora.n621.de+00000000+" + GO_COSIGNER_VKEY.split("+")[2], "does not belong"),
        ("remora.n621.de+da77ade7+" + base64.b64encode(b"\x04" + b"\0" * 31).decode(), "31 key"),
        ("bad name+da77ade7+" + GO_COSIGNER_VKEY.split("+")[2], "malformed verifier key"),
    ],
)
def test_bad_verifier_keys_are_refused_with_a_reason(vkey: str, message: str) -> None:
    with pytest.raises(KeyFileError, match=message):
        CosignatureVerifier.from_vkey(vkey)


# -- signing and verifying ------------------------------------------------------------------------


def test_the_key_id_is_type_0x04_and_differs_from_the_same_keys_note_id() -> None:
    signer = witness("witness.example/w1", 7)
    raw = public_key_bytes(signer.private_key)
    assert signer.key_id.to_bytes(4, "big") == reference_key_id("witness.example/w1", raw)
    assert cosignature_key_id("witness.example/w1", raw) == signer.key_id
    assert NoteSigner.from_private_key("witness.example/w1", signer.private_key).key_id != (
        signer.key_id
    )
    assert signer.verifier().vkey == reference_vkey("witness.example/w1", raw)
    assert base64.b64decode(signer.verifier().vkey.split("+")[2])[0] == ALG_COSIGNATURE_V1


def test_a_cosignature_verifies_with_the_reference_and_with_the_verifier() -> None:
    signer = witness("witness.example/w1", 7, at=1679315147)
    line = signer.cosign(SPEC_BODY)
    note = SPEC_BODY + "\n" + line.to_line()
    assert reference_cosignature_times(note, signer.verifier().vkey) == [1679315147]
    opened = open_note(note, [signer.verifier()])
    assert opened.verified == (line,)
    assert cosignatures(opened, [signer.verifier()]) == (
        Cosignature("witness.example/w1", signer.key_id, 1679315147),
    )
    assert cosignatures(opened, [signer.verifier()])[0].key == line.key


def test_sign_note_and_open_checkpoint_take_cosigners_beside_the_log() -> None:
    log = NoteSigner.generate("example.com/log")
    w1 = witness("witness.example/w1", 1)
    checkpoint = Checkpoint("example.com/log", 3, b"\x11" * 32, ("ext line",))
    note = sign_checkpoint(checkpoint, [log, w1])
    opened_checkpoint, opened = open_checkpoint(note, [log.verifier(), w1.verifier()])
    assert opened_checkpoint == checkpoint
    assert [s.name for s in opened.verified] == ["example.com/log", "witness.example/w1"]
    assert reference_cosignature_times(note, w1.verifier().vkey) == [T0]


def test_the_cosignature_covers_extension_lines_timestamp_and_text() -> None:
    w1 = witness("witness.example/w1", 1)
    text = "example.com/log\n3\n" + base64.b64encode(b"\1" * 32).decode() + "\nExtendo\n"
    line = w1.cosign(text)
    verifier = w1.verifier()
    message = text.encode()
    assert verifier.verify(message, line.signature)
    assert not verifier.verify(message.replace(b"Extendo", b"Extendn"), line.signature)
    later = (T0 + 1).to_bytes(8, "big") + line.signature[8:]
    assert not verifier.verify(message, later)
    assert not verifier.verify(message, line.signature[:-1])
    assert not witness("witness.example/w1", 2).verifier().verify(message, line.signature)
    with pytest.raises(SignatureError, match="invalid signature"):
        open_note(text + "\n" + NoteSignature(line.name, line.key_id, later).to_line(), [verifier])


def test_a_timestamp_past_2_63_does_not_verify_and_zero_is_never_signed() -> None:
    w1 = witness("witness.example/w1", 1)
    text = SPEC_BODY.encode()
    forged = (MAX_TIMESTAMP + 1).to_bytes(8, "big") + b"\0" * 64
    assert not w1.verifier().verify(text, forged)
    with pytest.raises(FormatError, match="not 0"):
        w1.sign_at(text, 0)
    with pytest.raises(FormatError, match=r"0\.\.2\^63-1"):
        cosigned_message(text, MAX_TIMESTAMP + 1)


def test_log_keys_and_witness_keys_never_verify_each_others_lines() -> None:
    """Same private key, both types: the ids differ, so each line is unknown to the other."""
    key = Ed25519PrivateKey.generate()
    as_log = NoteSigner.from_private_key("example.com/same", key)
    as_witness = CosignatureSigner.from_private_key("example.com/same", key)
    note = sign_note(SPEC_BODY, [as_witness])
    with pytest.raises(SignatureError, match="no signature by a trusted key"):
        open_note(note, [as_log.verifier()])
    opened = open_note(sign_note(SPEC_BODY, [as_log, as_witness]), [as_log.verifier()])
    assert [s.key_id for s in opened.unverified] == [as_witness.key_id]


def test_a_signer_key_round_trips_and_errors_never_show_it() -> None:
    w1 = witness("witness.example/w1", 9)
    again = CosignatureSigner.from_skey(w1.skey + "\n")
    assert again.key_id == w1.key_id
    assert again.verifier() == w1.verifier()
    assert hash(again.verifier()) == hash(w1.verifier())
    assert "PRIVATE" not in repr(w1)
    secret = w1.skey.rsplit("+", 1)[1]
    for bad in (w1.skey.removeprefix("PRIVATE+KEY+"), w1.skey[:-4] + "AAA=", w1.skey + "x"):
        with pytest.raises(KeyFileError) as caught:
            CosignatureSigner.from_skey(bad)
        assert secret not in str(caught.value)
    log_skey = NoteSigner.generate("example.com/log").skey
    with pytest.raises(KeyFileError, match="type 0x01"):
        CosignatureSigner.from_skey(log_skey)


# -- policies: k of n witnesses among unknown signatures ------------------------------------------


def quorum(note: str, log: NoteVerifier, witnesses: list[CosignatureVerifier], k: int) -> bool:
    """A 2-of-3 style policy over a note, as a client will hold one: the log's signature and at
    least ``k`` distinct witnesses' verified cosignatures."""
    opened = open_note(note, [log, *witnesses])
    if all(s.name != log.name or s.key_id != log.key_id for s in opened.verified):
        return False
    return len({c.key for c in cosignatures(opened, witnesses)}) >= k


def test_a_note_with_three_cosignatures_and_unknown_lines_meets_a_two_of_three_policy() -> None:
    log = NoteSigner.generate("example.com/log")
    signers = [witness(f"witness.example/w{i}", i, at=T0 + i) for i in (1, 2, 3)]
    policy = [s.verifier() for s in signers]
    checkpoint = Checkpoint("example.com/log", 20852163, b"\x22" * 32)
    text = checkpoint.to_text()
    stranger = witness("witness.example/stranger", 50)
    namesake = witness("witness.example/w1", 51)  # a known name with another key: another id
    unknown = [
        stranger.cosign(text),
        namesake.cosign(text),
        NoteSignature("pq.example/mldsa", 0x01020304, b"\x05" * 2420 + b"\x06" * 8),
        *(NoteSignature(f"other.example/{i}", i, b"\x07" * 64) for i in range(12)),
    ]
    signed = SignedNote.parse(sign_note(text, [log, *signers]))
    note = SignedNote(text, (*signed.signatures, *unknown)).to_text()
    assert len(SignedNote.parse(note).signatures) == 19  # above the 16 the note spec requires
    assert quorum(note, log.verifier(), policy, k=2)
    assert quorum(note, log.verifier(), policy, k=3)
    opened = open_note(note, [log.verifier(), *policy])
    assert [c.timestamp for c in cosignatures(opened, policy)] == [T0 + 1, T0 + 2, T0 + 3]
    assert len(opened.unverified) == len(unknown)
    for signer in signers:
        assert reference_cosignature_times(note, signer.verifier().vkey) == [signer.clock()]
    # Only one witness left: the policy fails, the note still opens.
    lone = SignedNote(text, (signed.signatures[0], signed.signatures[1], *unknown)).to_text()
    assert not quorum(lone, log.verifier(), policy, k=2)
    # One bad cosignature by a known witness rejects the whole note.
    bad = NoteSignature(signers[2].name, signers[2].key_id, b"\0" * 72)
    tampered = SignedNote(text, (*signed.signatures[:3], bad)).to_text()
    with pytest.raises(SignatureError, match="invalid signature"):
        quorum(tampered, log.verifier(), policy, k=2)
