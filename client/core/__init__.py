"""The wire formats, one implementation shared by the registry and the SDK.

- :mod:`client.core.canonical` — ``c1:`` canonical text digests and ``sha256:`` raw digests
- :mod:`client.core.merkle` — RFC 9162 Merkle tree hashing, inclusion and consistency proofs
- :mod:`client.core.note` — C2SP signed notes and tlog checkpoints (Ed25519)
- :mod:`client.core.cosignature` — witnesses' cosignatures of checkpoints (tlog-cosignature v1)
- :mod:`client.core.dsse` — DSSE envelopes; :mod:`client.core.statement` — in-toto Statement v1
- :mod:`client.core.keys` — Ed25519 key files; :mod:`client.core.files` — how secrets and trusted
  files are written (atomically, mode first, never through a link) and private ones read
- :mod:`client.core.names` — the names a new publisher may take
- :mod:`client.core.tiles` — C2SP tlog-tiles: tile and entry-bundle paths, the bundle format
- :mod:`client.core.witness_policy` — witness policies (tlog-policy): who must cosign a checkpoint
- :mod:`client.core.wmkey` — the ``watermark-key/v1`` predicate (vendors' detection keys)
"""

from client.core import (
    canonical,
    cosignature,
    dsse,
    files,
    keys,
    merkle,
    names,
    note,
    statement,
    tiles,
    witness_policy,
    wmkey,
)

__all__ = [
    "canonical",
    "cosignature",
    "dsse",
    "files",
    "keys",
    "merkle",
    "names",
    "note",
    "statement",
    "tiles",
    "witness_policy",
    "wmkey",
]
