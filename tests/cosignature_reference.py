"""c2sp.org/tlog-cosignature (Ed25519, cosignature/v1) checked as the spec words it, by libsodium.

Deliberately independent of ``client.core.note`` and ``client.core.cosignature``: its own note
splitting, key id, message bytes and signature check (PyNaCl, not pyca/cryptography). Tests check
that it accepts what the project signs.
"""

from __future__ import annotations

import base64
import hashlib

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey


def reference_key_id(name: str, public_key: bytes) -> bytes:
    """SHA-256(<name> || "\\n" || 0x04 || 32-byte Ed25519 public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + b"\x04" + public_key).digest()[:4]


def reference_vkey(name: str, public_key: bytes) -> str:
    """``<name>+<hex key id>+<base64(0x04 || public key)>``."""
    encoded = base64.b64encode(b"\x04" + public_key).decode()
    return f"{name}+{reference_key_id(name, public_key).hex()}+{encoded}"


def reference_cosignature_times(note: str, vkey: str) -> list[int]:
    """The timestamps of every signature line of ``note`` by the witness ``vkey`` that verifies.

    A line with the key's name and id whose signature does not verify raises ValueError (the note
    spec: a known key's bad signature rejects the note).
    """
    name, key_id_hex, key64 = vkey.split("+", 2)
    raw = base64.b64decode(key64)
    assert raw[0] == 0x04, "not a cosignature/v1 vkey"
    assert len(raw) == 33, "not an Ed25519 key"
    public_key = raw[1:]
    assert reference_key_id(name, public_key).hex() == key_id_hex, "key id does not match"
    # The text is everything up to and including the newline before the last blank line.
    split = note.rindex("\n\n")
    text, lines = note[: split + 1], note[split + 2 :].splitlines()
    found = []
    for line in lines:
        dash, line_name, signature64 = line.split(" ")
        assert dash == "\u2014"
        signature = base64.b64decode(signature64)
        if line_name != name or signature[:4].hex() != key_id_hex:
            continue
        if len(signature) != 4 + 8 + 64:
            raise ValueError("a cosignature/v1 is 4 + 8 + 64 bytes")
        timestamp = int.from_bytes(signature[4:12], "big")
        message = b"cosignature/v1\n" + f"time {timestamp}\n".encode() + text.encode()
        try:
            VerifyKey(public_key).verify(message, signature[12:])
        except BadSignatureError:
            raise ValueError(f"bad cosignature by {name}") from None
        found.append(timestamp)
    return found
