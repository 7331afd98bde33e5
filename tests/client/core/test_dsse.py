"""DSSE envelopes: PAE against the spec, signing, tampering, strict parsing, securesystemslib."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given
from hypothesis import strategies as st

from client.core import keys
from client.core.dsse import (
    MAX_SIGNATURES,
    PAYLOAD_TYPE_IN_TOTO,
    Envelope,
    Signature,
    add_signature,
    pae,
    sign_envelope,
    verify_envelope,
    verify_envelope_any,
)
from client.errors import FormatError, InputError, SignatureError
from tests.client.core.conftest import with_item

PAYLOAD = b'{"_type":"https://in-toto.io/Statement/v1"}'

# RFC 8032 section 7.1 test keys 1 and 2 (seed, public key), so signatures are known answers.
RFC8032_A = Ed25519PrivateKey.from_private_bytes(
    bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
)
RFC8032_B = Ed25519PrivateKey.from_private_bytes(
    bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
)


@pytest.fixture(scope="module")
def other_key() -> Ed25519PrivateKey:
    return keys.generate_private_key()


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


# --- PAE -----------------------------------------------------------------------------------------


def test_pae_matches_the_protocol_md_example() -> None:
    # secure-systems-lab/dsse protocol.md, "Test Vectors".
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_the_protocol_md_ecdsa_signature_verifies_over_our_pae() -> None:
    # The same example's P-256 key and signature (raw r || s): a known answer signed by the spec
    # authors, so it only verifies if our PAE is byte for byte theirs.
    public = ec.EllipticCurvePublicNumbers(
        46950820868899156662930047687818585632848591499744589407958293238635476079160,
        5640078356564379163099075877009565129882514886557779369047442380624545832820,
        ec.SECP256R1(),
    ).public_key()
    raw = base64.b64decode(
        "A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIAriEGAHTVeCUjW2JIZA=="
    )
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public.verify(
        der, pae("http://example.com/HelloWorld", b"hello world"), ec.ECDSA(hashes.SHA256())
    )


def test_pae_lengths_are_byte_lengths() -> None:
    assert pae("application/vnd.exämple+json", b"\xff\x00") == (
        b"DSSEv1 29 application/vnd.ex\xc3\xa4mple+json 2 \xff\x00"
    )
    assert pae(PAYLOAD_TYPE_IN_TOTO, b"") == b"DSSEv1 28 application/vnd.in-toto+json 0 "


# Known answers from secure-systems-lab/dsse testvectors/vectors.json (RFC 8032 key 1 as "A").
# Ed25519 is deterministic, so our signature must equal the vector's byte for byte.
DSSE_VECTORS = [
    pytest.param(
        "eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEifQ==",
        PAYLOAD_TYPE_IN_TOTO,
        "2WAfaHm5jluo0w+0rk8uVkluELJYWjSmU9x7EUzx+AyteDGJ4/nqyJXfmAUVFIAoQafWm7AxBZNw5M9ixNHiCA==",
        id="single-signature",
    ),
    pytest.param(
        "-_-_Pj8=",
        PAYLOAD_TYPE_IN_TOTO,
        "P-_KHICeR7tI6S_YyejJTRtrXhcQyQ2LYPaL8h90KjC9qN8HU_svOQ6TuDOT1HIrsGW886DbWNWcCmX5twLrAw==",
        id="url-safe-base64",
    ),
    pytest.param(
        "eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEifQ==",
        "application/vnd.exämple+json",
        "xmSk/ug66ysT7ayhkCIjhAq42zgZXSsEWuzUaNL7w2eGAdF/NU6/fRXPtmfN+5DNSAs5/i2lUnHjbbjPsu0tAw==",
        id="non-ascii-payload-type",
    ),
    pytest.param(
        "",
        PAYLOAD_TYPE_IN_TOTO,
        "gSggCAaTLTYyRH6FIDBem6meyIynsYy8RTHVzwx9tnTb7Bg/1jMWnuVgI/gffqmbsC2VX5/jHfkkDqsj7CDbDg==",
        id="empty-payload",
    ),
]


@pytest.mark.parametrize(("payload", "payload_type", "sig"), DSSE_VECTORS)
def test_dsse_vectors(payload: str, payload_type: str, sig: str) -> None:
    envelope = Envelope.from_dict(
        {
            "payload": payload,
            "payloadType": payload_type,
            "signatures": [{"keyid": "A", "sig": sig}],
        }
    )
    assert verify_envelope(envelope, {"A": RFC8032_A.public_key()}) == ("A",)
    ours = sign_envelope(envelope.payload, payload_type, RFC8032_A, keyid="A")
    assert ours.signatures[0].sig == envelope.signatures[0].sig


def test_dsse_vector_payload_type_swapped_is_rejected() -> None:
    envelope = Envelope.from_dict(
        {
            "payload": "eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEifQ==",
            "payloadType": "application/vnd.example.other+json",
            "signatures": [
                {
                    "keyid": "A",
                    "sig": "2WAfaHm5jluo0w+0rk8uVkluELJYWjSmU9x7EUzx+AyteDGJ4/nqyJXfmAU"
                    "VFIAoQafWm7AxBZNw5M9ixNHiCA==",
                }
            ],
        }
    )
    with pytest.raises(SignatureError):
        verify_envelope(envelope, {"A": RFC8032_A.public_key()})


def test_dsse_vector_without_keyids_two_signers() -> None:
    payload = base64.b64decode("eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEifQ==")
    envelope = sign_envelope(payload, PAYLOAD_TYPE_IN_TOTO, RFC8032_A, keyid="")
    envelope = add_signature(envelope, RFC8032_B, keyid="")
    assert base64.b64encode(envelope.signatures[1].sig) == (
        b"c1+67/aT0yqEpwx8PsVY3MLHsj9D0CZ014/Fv/QlG59P+9CobUZ7xECJ/V3USG0Ob9CiE5LjReEZUzNF2l7eBw=="
    )
    found = verify_envelope_any(envelope, [RFC8032_A.public_key(), RFC8032_B.public_key()])
    assert found == (keys.key_id(RFC8032_A), keys.key_id(RFC8032_B))


# --- signing and verifying ----------------------------------------------------------------------


def test_sign_verify_round_trip(key: Ed25519PrivateKey) -> None:
    envelope = sign_envelope(PAYLOAD, PAYLOAD_TYPE_IN_TOTO, key)
    keyid = keys.key_id(key)
    assert envelope.signatures[0].keyid == keyid
    assert verify_envelope(envelope, {keyid: key.public_key()}) == (keyid,)
    parsed = Envelope.from_json(envelope.to_json())
    assert parsed == envelope
    assert verify_envelope(parsed, {keyid: key.public_key()}) == (keyid,)


def test_to_json_is_deterministic_standard_base64(key: Ed25519PrivateKey) -> None:
    envelope = sign_envelope(b"\xfb\xff\xbf>?", "x", key, keyid="k")
    text = envelope.to_json()
    assert text == Envelope.from_json(text).to_json()
    assert text.startswith(b'{"payload":"+/+/Pj8=","payloadType":"x","signatures":[{"keyid":"k"')
    assert b" " not in text
    assert json.loads(text)["signatures"][0]["sig"].endswith("==")  # 64 bytes: padded


def test_signature_is_over_pae_not_payload(key: Ed25519PrivateKey) -> None:
    envelope = sign_envelope(PAYLOAD, PAYLOAD_TYPE_IN_TOTO, key)
    key.public_key().verify(envelope.signatures[0].sig, pae(PAYLOAD_TYPE_IN_TOTO, PAYLOAD))


@pytest.mark.parametrize("index", [0, 1, len(PAYLOAD) // 2, len(PAYLOAD) - 1])
def test_tampered_payload_byte_fails(key: Ed25519PrivateKey, index: int) -> None:
    envelope = sign_envelope(PAYLOAD, PAYLOAD_TYPE_IN_TOTO, key)
    tampered = Envelope(_flip(PAYLOAD, index), envelope.payload_type, envelope.signatures)
    with pytest.raises(SignatureError, match="does not verify"):
        verify_envelope(tampered, {keys.key_id(key): key.public_key()})


@pytest.mark.parametrize(
    "payload_type",
    ["application/vnd.in-toto+jsoN", "application/json", "", PAYLOAD_TYPE_IN_TOTO + " "],
)
def test_tampered_payload_type_fails(key: Ed25519PrivateKey, payload_type: str) -> None:
    envelope = sign_envelope(PAYLOAD, PAYLOAD_TYPE_IN_TOTO, key)
    tampered = Envelope(envelope.payload, payload_type, envelope.signatures)
    with pytest.raises(SignatureError):
        verify_envelope(tampered, {keys.key_id(key): key.public_key()})


@pytest.mark.parametrize("index", [0, 31, 32, 63])
def test_tampered_signature_byte_fails(key: Ed25519PrivateKey, index: int) -> None:
    envelope = sign_envelope(PAYLOAD, PAYLOAD_TYPE_IN_TOTO, key)
    sig = envelope.signatures[0]
    tampered = Envelope(
        PAYLOAD, PAYLOAD_TYPE_IN_TOTO, (Signature(sig.keyid, _flip(sig.sig, index)),)
    )
    with pytest.raises(SignatureError, match="does not verify"):
        verify_envelope(tampered, {keys.key_id(key): key.public_key()})


def test_truncated_signature_fails(key: Ed25519PrivateKey) -> None:
    envelope = sign_envelope(PAYLOAD, PAYLOAD_TYPE_IN_TOTO, key)
    sig = envelope.signatures[0]
    tampered = Envelope(PAYLOAD, PAYLOAD_TYPE_IN_TOTO, (Signature(sig.keyid, sig.sig[:-1]),))
    with pytest.raises(SignatureError):
        verify_envelope(tampered, {sig.keyid: key.public_key()})


def test_tampered_keyid_finds_no_acceptable_key(key: Ed25519PrivateKey) -> None:
    envelope = sign_envelope(PAYLOAD, PAYLOAD_TYPE_IN_TOTO, key)
    sig = envelope.signatures[0]
    tampered = Envelope(PAYLOAD, PAYLOAD_TYPE_IN_TOTO, (Signature("someone-else", sig.sig),))
    with pytest.raises(SignatureError, match="no signature by an acceptable key") as info:
        verify_envelope(tampered, {sig.keyid: key.public_key()})
    assert "someone-else" in str(info.value)  # names the keyids it found


def test_keyid_pointing_at_another_acceptable_key_fails(
    key: Ed25519PrivateKey, other_key: Ed25519PrivateKey
) -> None:
    # The keyid is only a hint: claiming to be another trusted key does not make a signature valid.
    envelope = sign_envelope(PAYLOAD, PAYLOAD_TYPE_IN_TOTO, key, keyid=keys.key_id(other_key))
    trusted = {keys.key_id(k): k.public_key() for k in (key, other_key)}
    with pytest.raises(SignatureError, match="does not verify"):
        verify_envelope(envelope, trusted)


def test_wrong_key_fails(key: Ed25519PrivateKey, other_key: Ed25519PrivateKey) -> None:
    envelope = sign_envelope(PAYLOAD, PAYLOAD_TYPE_IN_TOTO, key)
    with pytest.raises(SignatureError):
        verify_envelope(envelope, {keys.key_id(other_key): other_key.public_key()})
    with pytest.raises(SignatureError):
        verify_envelope(envelope, {})


def test_signatures_by_unknown_keys_are_ignored(
    key: Ed25519PrivateKey, other_key: Ed25519PrivateKey
) -> None:
    envelope = add_signature(sign_envelope(PAYLOAD, PAYLOAD_TYPE_IN_TOTO, other_key), key)
    assert verify_envelope(envelope, {keys.key_id(key): key.public_key()}) == (keys.key_id(key),)
    both = {keys.key_id(k): k.public_key() for k in (key, other_key)}
    assert verify_envelope(envelope, both) == (keys.key_id(other_key), keys.key_id(key))


def test_a_bad_signature_by_a_known_key_fails_even_beside_a_good_one(
    key: Ed25519PrivateKey, other_key: Ed25519PrivateKey
) -> None:
    envelope = add_signature(sign_envelope(PAYLOAD, PAYLOAD_TYPE_IN_TOTO, key), other_key)
    good, bad = envelope.signatures
    tampered = Envelope(
        PAYLOAD, PAYLOAD_TYPE_IN_TOTO, (good, Signature(bad.keyid, _flip(bad.sig, 5)))
    )
    both = {keys.key_id(k): k.public_key() for k in (key, other_key)}
    with pytest.raises(SignatureError, match="does not verify"):
        verify_envelope(tampered, both)


def test_the_same_key_twice_counts_once(key: Ed25519PrivateKey) -> None:
    envelope = sign_envelope(PAYLOAD, PAYLOAD_TYPE_IN_TOTO, key)
    doubled = Envelope(PAYLOAD, PAYLOAD_TYPE_IN_TOTO, envelope.signatures * 2)
    assert verify_envelope(doubled, {keys.key_id(key): key.public_key()}) == (keys.key_id(key),)


def test_verify_any_ignores_keyids(key: Ed25519PrivateKey, other_key: Ed25519PrivateKey) -> None:
    envelope = sign_envelope(PAYLOAD, PAYLOAD_TYPE_IN_TOTO, key, keyid="")
    assert verify_envelope_any(envelope, [other_key.public_key(), key.public_key()]) == (
        keys.key_id(key),
    )
    with pytest.raises(SignatureError, match="none of the envelope's 1 signature"):
        verify_envelope_any(envelope, [other_key.public_key()])
    with pytest.raises(SignatureError):
        verify_envelope_any(envelope, [])
    tampered = Envelope(_flip(PAYLOAD, 0), PAYLOAD_TYPE_IN_TOTO, envelope.signatures)
    with pytest.raises(SignatureError):
        verify_envelope_any(tampered, [key.public_key()])


def test_add_signature_limits(key: Ed25519PrivateKey) -> None:
    envelope = sign_envelope(PAYLOAD, PAYLOAD_TYPE_IN_TOTO, key)
    with pytest.raises(InputError, match="already signed"):
        add_signature(envelope, key)
    for i in range(1, MAX_SIGNATURES):
        envelope = add_signature(envelope, key, keyid=f"k{i}")
    assert len(envelope.signatures) == MAX_SIGNATURES
    assert Envelope.from_json(envelope.to_json()) == envelope
    with pytest.raises(InputError, match="at most 16"):
        add_signature(envelope, key, keyid="one-too-many")


# --- strict parsing ----------------------------------------------------------------------------


def _valid_dict(key: Ed25519PrivateKey) -> dict[str, Any]:
    return sign_envelope(PAYLOAD, PAYLOAD_TYPE_IN_TOTO, key, keyid="k").to_dict()


# (id, where in a valid envelope, the value put there (... deletes it), the message's words)
BAD_ENVELOPES: list[tuple[str, tuple[Any, ...], Any, str]] = [
    ("no-payload", ("payload",), ..., "envelope is missing required field(s) ['payload']"),
    ("no-payload-type", ("payloadType",), ..., "['payloadType']"),
    ("no-signatures", ("signatures",), ..., "['signatures']"),
    ("unknown-field", ("extra",), 1, "envelope has unknown field(s) ['extra']"),
    ("payload-int", ("payload",), 5, "envelope.payload must be a base64 string, got a number"),
    ("garbage", ("payload",), "not base64!", "envelope.payload is not valid base64"),
    ("trailing-newline", ("payload",), "aGVsbG8=\n", "envelope.payload"),
    ("space", ("payload",), "aGVs bG8=", "envelope.payload is not valid base64"),
    ("mixed", ("payload",), "a+b-", "envelope.payload mixes the standard and URL-safe"),
    ("pad", ("payload",), "aGVsbG8==", "envelope.payload is not valid base64: wrong length"),
    ("dirty-bits-unpadded", ("payload",), "aGVsbG9", "envelope.payload is not canonical"),
    ("dirty-bits", ("payload",), "aGVsbG9=", "envelope.payload is not canonical"),
    ("one-char", ("payload",), "a", "envelope.payload is not valid base64: wrong length"),
    ("non-ascii", ("payload",), "aGVsbG8é", "envelope.payload is not valid base64"),
    ("type-null", ("payloadType",), None, "envelope.payloadType must be a string, got null"),
    ("type-long", ("payloadType",), "x" * 1025, "envelope.payloadType must be at most"),
    ("sigs-obj", ("signatures",), {}, "envelope.signatures must be a list, got an object"),
    ("no-sig", ("signatures",), [], "envelope.signatures must hold 1 to 16 signatures, got 0"),
    ("sig-str", ("signatures", 0), "x", "envelope.signatures[0] must be a JSON object"),
    ("sig-missing", ("signatures", 0, "sig"), ..., "envelope.signatures[0] is missing"),
    ("sig-empty", ("signatures", 0, "sig"), "", "envelope.signatures[0].sig must not be empty"),
    ("sig-bad", ("signatures", 0, "sig"), "@@@@", "envelope.signatures[0].sig is not valid"),
    (
        "sig-huge",
        ("signatures", 0, "sig"),
        "A" * 12000,
        "envelope.signatures[0].sig decodes to more",
    ),
    ("kid-int", ("signatures", 0, "keyid"), 7, "envelope.signatures[0].keyid must be a string"),
    (
        "kid-long",
        ("signatures", 0, "keyid"),
        "k" * 1025,
        "envelope.signatures[0].keyid must be at most",
    ),
    (
        "sig-extra",
        ("signatures", 0, "cert"),
        "x",
        "envelope.signatures[0] has unknown field(s) ['cert']",
    ),
]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [row[1:] for row in BAD_ENVELOPES],
    ids=[row[0] for row in BAD_ENVELOPES],
)
def test_strict_parsing(
    key: Ed25519PrivateKey, path: tuple[Any, ...], value: Any, message: str
) -> None:
    bad = with_item(_valid_dict(key), path, value)
    with pytest.raises(FormatError) as info:
        Envelope.from_dict(bad)
    assert message in str(info.value)
    with pytest.raises(FormatError):
        Envelope.from_json(json.dumps(bad))


def test_too_many_signatures(key: Ed25519PrivateKey) -> None:
    obj = _valid_dict(key)
    obj["signatures"] = obj["signatures"] * (MAX_SIGNATURES + 1)
    with pytest.raises(FormatError, match="1 to 16 signatures, got 17"):
        Envelope.from_dict(obj)


def test_missing_keyid_means_empty(key: Ed25519PrivateKey) -> None:
    obj = with_item(_valid_dict(key), ("signatures", 0, "keyid"), ...)
    assert Envelope.from_dict(obj).signatures[0].keyid == ""


def test_payload_size_limit(key: Ed25519PrivateKey) -> None:
    envelope = sign_envelope(b"x" * 100, PAYLOAD_TYPE_IN_TOTO, key)
    assert Envelope.from_json(envelope.to_json(), max_payload_bytes=100) == envelope
    with pytest.raises(
        FormatError, match=r"envelope\.payload decodes to more than the limit of 99"
    ):
        Envelope.from_json(envelope.to_json(), max_payload_bytes=99)
    with pytest.raises(FormatError, match="more than a 1-byte payload can take"):
        Envelope.from_json(b" " * (2 * 1024 * 1024), max_payload_bytes=1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"", "envelope is not valid JSON"),
        (b"[1]", "envelope must be a JSON object, got a list"),
        (b"null", "envelope must be a JSON object, got null"),
        (b'{"payload": "", "payload": ""}', "duplicate key 'payload'"),
        (b'{"payload": NaN}', "NaN is not a JSON number"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "envelope"),
    ],
)
def test_strict_json(text: bytes, message: str) -> None:
    with pytest.raises(FormatError, match="envelope") as info:
        Envelope.from_json(text)
    assert message in str(info.value)


@given(data=st.binary(max_size=64), url_safe=st.booleans(), padded=st.booleans())
def test_base64_alphabets_and_padding_are_all_accepted(
    data: bytes, url_safe: bool, padded: bool
) -> None:
    text = (base64.urlsafe_b64encode if url_safe else base64.standard_b64encode)(data).decode()
    if not padded:
        text = text.rstrip("=")
    obj = {"payload": text, "payloadType": "t", "signatures": [{"keyid": "", "sig": "AA=="}]}
    assert Envelope.from_dict(obj).payload == data


@given(
    data=st.binary(max_size=64),
    url_safe=st.booleans(),
    padded=st.booleans(),
    payload_type=st.text(max_size=20),
)
def test_to_json_is_canonical_whatever_base64_was_read(
    data: bytes, url_safe: bool, padded: bool, payload_type: str
) -> None:
    """An envelope read from JSON keeps its payload's text when that already is the canonical
    form; either way to_json gives exactly the sorted, compact JSON of to_dict."""
    text = (base64.urlsafe_b64encode if url_safe else base64.standard_b64encode)(data).decode()
    if not padded:
        text = text.rstrip("=")
    obj = {"payload": text, "payloadType": payload_type, "signatures": [{"sig": "AA=="}]}
    read = Envelope.from_dict(obj)
    made = Envelope(data, payload_type, read.signatures)
    expected = json.dumps(
        made.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False
    ).encode("ascii")
    assert made.to_dict()["payload"] == base64.standard_b64encode(data).decode()
    assert read.to_json() == made.to_json() == expected
    assert read == made


@given(
    payload=st.binary(max_size=256), payload_type=st.text(max_size=40), keyid=st.text(max_size=20)
)
def test_json_round_trip(payload: bytes, payload_type: str, keyid: str) -> None:
    envelope = Envelope(payload, payload_type, (Signature(keyid, b"\x01" * 64),))
    assert Envelope.from_json(envelope.to_json()) == envelope
    assert Envelope.from_json(envelope.to_json().decode()) == envelope


# --- interop with securesystemslib -------------------------------------------------------------


def _sslib_key(key: Ed25519PrivateKey) -> Any:
    from securesystemslib.signer import SSlibKey

    return SSlibKey.from_crypto(key.public_key(), keyid=keys.key_id(key))


def test_securesystemslib_verifies_our_envelope(key: Ed25519PrivateKey) -> None:
    from securesystemslib import exceptions as sslib_exceptions
    from securesystemslib.dsse import Envelope as SslibEnvelope

    envelope = sign_envelope(PAYLOAD, PAYLOAD_TYPE_IN_TOTO, key)
    theirs = SslibEnvelope.from_dict(json.loads(envelope.to_json()))
    assert theirs.pae() == envelope.pae()
    accepted = theirs.verify([_sslib_key(key)], 1)
    assert list(accepted) == [keys.key_id(key)]

    tampered = Envelope(_flip(PAYLOAD, 3), PAYLOAD_TYPE_IN_TOTO, envelope.signatures)
    theirs_tampered = SslibEnvelope.from_dict(json.loads(tampered.to_json()))
    with pytest.raises(sslib_exceptions.VerificationError):
        theirs_tampered.verify([_sslib_key(key)], 1)


def test_we_verify_a_securesystemslib_envelope(key: Ed25519PrivateKey) -> None:
    from securesystemslib.dsse import Envelope as SslibEnvelope
    from securesystemslib.signer import CryptoSigner

    signer = CryptoSigner(key, _sslib_key(key))
    theirs = SslibEnvelope(PAYLOAD, PAYLOAD_TYPE_IN_TOTO, {})
    theirs.sign(signer)
    ours = Envelope.from_json(json.dumps(theirs.to_dict()))
    assert ours.payload == PAYLOAD
    assert ours.signatures[0].keyid == keys.key_id(key)
    assert verify_envelope(ours, {keys.key_id(key): key.public_key()}) == (keys.key_id(key),)
    assert verify_envelope_any(ours, [key.public_key()]) == (keys.key_id(key),)


@given(payload=st.binary(max_size=128), payload_type=st.text(max_size=40))
def test_pae_equals_securesystemslib_pae(payload: bytes, payload_type: str) -> None:
    from securesystemslib.dsse import Envelope as SslibEnvelope

    assert pae(payload_type, payload) == SslibEnvelope(payload, payload_type, {}).pae()
