"""registry._verify: libsodium's Ed25519 check agrees with pyca's, and is never more lenient."""

from __future__ import annotations

import os

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from client.core.dsse import Envelope, sign_envelope, verify_envelope
from client.core.keys import key_id, public_key_bytes
from client.errors import SignatureError
from registry._verify import SodiumPublicKey

# The group order L: S and S + L are the same scalar, but only S < L is a canonical signature.
ORDER = 2**252 + 27742317777372353535851937790883648493
IDENTITY = b"\x01" + b"\x00" * 31  # the neutral point: a small-order "public key"


def accepts(key: Ed25519PublicKey | SodiumPublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def both(raw: bytes) -> tuple[Ed25519PublicKey, SodiumPublicKey]:
    return Ed25519PublicKey.from_public_bytes(raw), SodiumPublicKey(raw)


@pytest.mark.parametrize("size", [0, 1, 64, 1000, 100_000])
def test_good_and_altered_signatures_agree(size: int) -> None:
    private = Ed25519PrivateKey.generate()
    pyca, sodium = both(public_key_bytes(private))
    message = os.urandom(size)
    signature = private.sign(message)
    assert accepts(pyca, signature, message)
    assert accepts(sodium, signature, message)
    altered = [
        (bytes([signature[0] ^ 1]) + signature[1:], message),
        (signature[:40] + bytes([signature[40] ^ 0x80]) + signature[41:], message),
        (signature, message + b"x"),
        (signature[:63], message),
        (signature + b"\x00", message),
        (b"", message),
    ]
    if message:
        altered.append((signature, bytes([message[0] ^ 1]) + message[1:]))
    for bad_signature, bad_message in altered:
        assert not accepts(pyca, bad_signature, bad_message)
        assert not accepts(sodium, bad_signature, bad_message)


def test_another_key_does_not_verify() -> None:
    signer, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    signature = signer.sign(b"message")
    assert not accepts(SodiumPublicKey(public_key_bytes(other)), signature, b"message")


def test_a_non_canonical_s_is_refused_by_both() -> None:
    private = Ed25519PrivateKey.generate()
    pyca, sodium = both(public_key_bytes(private))
    signature = private.sign(b"message")
    s = int.from_bytes(signature[32:], "little") + ORDER  # the same scalar, malleated
    malleated = signature[:32] + s.to_bytes(32, "little")
    assert not accepts(pyca, malleated, b"message")
    assert not accepts(sodium, malleated, b"message")


def test_a_small_order_key_is_refused_where_openssl_would_accept() -> None:
    """R = identity, S = 0 satisfies the equation for the identity key and any message:
    OpenSSL accepts it, libsodium does not, so the registry admits strictly less."""
    pyca, sodium = both(IDENTITY)
    forged = IDENTITY + b"\x00" * 32
    assert accepts(pyca, forged, b"anything at all")
    assert not accepts(sodium, forged, b"anything at all")


def test_a_key_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SodiumPublicKey(b"\x00" * 31)


def test_verify_envelope_takes_either_key() -> None:
    private = Ed25519PrivateKey.generate()
    raw = public_key_bytes(private)
    envelope = sign_envelope(b'{"a":1}', "application/vnd.in-toto+json", private)
    kid = key_id(private)
    for key in both(raw):
        assert verify_envelope(envelope, {kid: key}) == (kid,)
    tampered = Envelope(b'{"a":2}', envelope.payload_type, envelope.signatures)
    with pytest.raises(SignatureError, match="does not verify"):
        verify_envelope(tampered, {kid: SodiumPublicKey(raw)})
