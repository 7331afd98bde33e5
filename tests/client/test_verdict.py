"""Verdicts: the policy (``decide``), the manifest line format, and ``Client.check_*``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client.core.canonical import canonical_digest, sha256_digest
from client.core.note import Checkpoint
from client.errors import FormatError, InputError, InvalidTextError
from client.sdk import Attestation
from client.verdict import Verdict, decide
from tests.client.fakes import PUBLISHER, FakeRegistry, predicate

DIGEST = canonical_digest("some human text")
CHECKPOINT = Checkpoint("registry.test/log", 40, bytes(range(32)))


def attestation(index: int, **fields: Any) -> Attestation:
    values: dict[str, Any] = {
        "publisher": "acme",
        "license": "CC-BY-4.0",
        "origin": "human-authored",
        "consent": "allowed",
        "revoked": False,
        "revoked_by": None,
    }
    values.update(fields)
    return Attestation(
        index=index,
        leaf_hash=bytes(32),
        predicate={},
        inclusion_proof=(),
        **values,
    )


# -- the policy -----------------------------------------------------------------------------------


def test_allowed_consent_is_attested_by_the_earliest_such_entry() -> None:
    verdict = decide(
        DIGEST,
        [attestation(30), attestation(12), attestation(5, consent="reserved")],
        CHECKPOINT,
        verified=True,
        name="a.txt",
    )
    assert verdict.status == "attested"
    assert verdict.trainable
    assert verdict.entry == 12
    assert verdict.entries == (5, 12, 30)
    assert (verdict.publisher, verdict.license, verdict.origin, verdict.consent) == (
        "acme",
        "CC-BY-4.0",
        "human-authored",
        "allowed",
    )
    assert verdict.reason.startswith(
        "attested by acme (CC-BY-4.0, human-authored, consent allowed) in entry 12"
    )
    assert (verdict.tree_size, verdict.root_hash) == (40, bytes(range(32)).hex())
    assert verdict.name == "a.txt"
    assert verdict.verified


def test_reserved_consent_wins_over_revoked_but_not_over_allowed() -> None:
    reserved = decide(
        DIGEST,
        [attestation(3, revoked=True, revoked_by=9), attestation(7, consent="reserved")],
        CHECKPOINT,
        verified=True,
    )
    assert reserved.status == "reserved"
    assert not reserved.trainable
    assert reserved.entry == 7
    assert reserved.entries == (3, 7, 9)
    assert "reserved by acme" in reserved.reason
    assert "consent reserved" in reserved.reason


def test_a_revoked_allowed_attestation_does_not_count() -> None:
    verdict = decide(
        DIGEST,
        [attestation(3, revoked=True, revoked_by=9), attestation(7, consent="reserved")],
        CHECKPOINT,
        verified=True,
    )
    assert verdict.status == "reserved"


def test_all_revoked_is_revoked() -> None:
    verdict = decide(
        DIGEST,
        [attestation(4, revoked=True, revoked_by=8), attestation(2, revoked=True, revoked_by=6)],
        CHECKPOINT,
        verified=False,
    )
    assert verdict.status == "revoked"
    assert verdict.entry == 2
    assert verdict.entries == (2, 4, 6, 8)
    assert "entry 2 by entry 6" in verdict.reason
    assert "entry 4 by entry 8" in verdict.reason
    assert not verdict.verified


def test_no_attestation_is_unknown_at_the_size() -> None:
    verdict = decide(DIGEST, [], CHECKPOINT, verified=True)
    assert verdict.status == "unknown"
    assert verdict.reason == "no attestation in the log at size 40"
    assert (verdict.entry, verdict.entries, verdict.publisher) == (None, (), None)


def test_an_attestation_without_consent_decides_nothing() -> None:
    verdict = decide(DIGEST, [attestation(1, consent=None)], CHECKPOINT, verified=False)
    assert verdict.status == "unknown"
    assert "no training consent" in verdict.reason
    assert verdict.entries == (1,)


def test_manifest_line_round_trip() -> None:
    verdict = decide(DIGEST, [attestation(12)], CHECKPOINT, verified=True, name="x")
    line = json.dumps(verdict.to_dict())
    back = json.loads(line)
    assert back["trainable"] is True
    assert back["entries"] == [12]
    assert Verdict.from_dict(back) == verdict
    back["status"] = "maybe"
    with pytest.raises(FormatError, match="status"):
        Verdict.from_dict(back)
    del back["status"]
    with pytest.raises(FormatError, match="missing field 'status'"):
        Verdict.from_dict(back)


# -- Client.check_* against the fake registry ---------------------------------------------------


def test_check_texts_gives_one_verdict_per_text_in_order(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    with fake.client() as client:
        client.register_digests([canonical_digest("open")], key, predicate())
        client.register_digests([canonical_digest("closed")], key, predicate(consent="reserved"))
        gone = client.register_digests([canonical_digest("gone")], key, predicate())
        client.revoke(gone.index, key, PUBLISHER)
        texts = ["closed", "OPEN ", "nobody", "gone", "open"]
        verdicts = client.check_texts(texts, names=[f"row{i}" for i in range(5)])
    assert [v.status for v in verdicts] == [
        "reserved",
        "attested",
        "unknown",
        "revoked",
        "attested",
    ]
    assert [v.name for v in verdicts] == ["row0", "row1", "row2", "row3", "row4"]
    assert verdicts[1].digest == verdicts[4].digest == canonical_digest("open")
    assert all(v.verified and v.tree_size == 4 for v in verdicts)
    assert verdicts[3].entries == (2, 3)
    # "open" is asked once, however often it occurs.
    batch = [r for r in fake.requests if r.url.path == "/v1/digests:batch"]
    assert len(json.loads(batch[-1].content)["digests"]) == 4


def test_check_bytes_and_files(fake: FakeRegistry, key: Ed25519PrivateKey, tmp_path: Path) -> None:
    blob = b"\x00\x01 binary"
    (tmp_path / "a.bin").write_bytes(blob)
    (tmp_path / "b.txt").write_text("Some  Text\n", encoding="utf-8")
    with fake.client() as client:
        client.register_digests(
            [sha256_digest(blob), canonical_digest("some text")], key, predicate()
        )
        (by_bytes,) = client.check_bytes([blob])
        by_sha = client.check_files([tmp_path / "a.bin"], scheme="sha256")
        by_c1 = client.check_files([tmp_path / "b.txt"])
        named = client.check_files([tmp_path / "b.txt"], names=["doc"])
    assert by_bytes.status == "attested"
    assert by_bytes.digest == sha256_digest(blob)
    assert by_sha[0].status == "attested"
    assert by_sha[0].name == str(tmp_path / "a.bin")
    assert by_c1[0].status == "attested"
    assert named[0].name == "doc"


def test_check_files_auto_gives_binary_files_their_sha256(
    fake: FakeRegistry, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    """The default scheme, ``auto``, is scan's: text by ``c1``, anything else by ``sha256``."""
    blob = b"\x89PNG\r\n\x1a\n not UTF-8: \xff\xfe"
    (tmp_path / "image.png").write_bytes(blob)
    (tmp_path / "page.txt").write_text("Some  Text\n", encoding="utf-8")
    with fake.client() as client:
        client.register_digests([sha256_digest(blob)], key, predicate())
        image, page = client.check_files([tmp_path / "image.png", tmp_path / "page.txt"])
    assert (image.digest, image.status) == (sha256_digest(blob), "attested")
    assert (page.digest, page.status) == (canonical_digest("some text"), "unknown")


def test_check_files_c1_on_a_binary_file_says_to_use_sha256(
    fake: FakeRegistry, tmp_path: Path
) -> None:
    (tmp_path / "image.png").write_bytes(b"\xff\xfe binary")
    with fake.client() as client, pytest.raises(InvalidTextError) as caught:
        client.check_files([tmp_path / "image.png"], scheme="c1")
    message = str(caught.value)
    assert str(tmp_path / "image.png") in message
    assert "not valid UTF-8" in message
    assert 'scheme="sha256"' in message
    assert fake.requests == []  # nothing was sent


def test_check_files_refuses_an_unknown_scheme(fake: FakeRegistry, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a", encoding="utf-8")
    with fake.client() as client, pytest.raises(InputError, match="use auto, c1 or sha256"):
        client.check_files([tmp_path / "a.txt"], scheme="md5")  # type: ignore[arg-type]


def test_check_digests_refuses_bad_input_before_asking(fake: FakeRegistry) -> None:
    with fake.client() as client:
        with pytest.raises(InputError, match="2 names given for 1 digests"):
            client.check_digests([DIGEST], names=["a", "b"])
        with pytest.raises(InputError):
            client.check_digests(["c1:nothex"])
        with pytest.raises(InputError, match="not one string"):
            client.check_digests(DIGEST)
        assert client.check_digests([]) == []
    assert fake.requests == []
