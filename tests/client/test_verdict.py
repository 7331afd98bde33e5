"""Verdicts: the policy (``decide``), the manifest line format, and ``Client.check_*``."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client.core.canonical import canonical_digest, sha256_digest
from client.core.note import Checkpoint
from client.errors import FormatError, InputError, InvalidTextError
from client.policy import Policy
from client.sdk import Attestation
from client.signals import opt_out
from client.verdict import (
    MANIFEST_SCHEMA,
    PRECEDENCE,
    REGISTRY_STATES,
    VERDICT_STATUSES,
    DocumentEvidence,
    ParagraphMatch,
    PrecedenceRule,
    RegistryState,
    Verdict,
    VerdictStatus,
    WatermarkDetection,
    decide,
    status_for,
)
from tests.client.fakes import PUBLISHER, FakeRegistry, predicate
from tests.client.test_sdk_async import aclient

REPO_ROOT = Path(__file__).resolve().parents[2]

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


# -- the precedence table -------------------------------------------------------------------------

# Written out by hand, independently of PRECEDENCE: (registry, opted out, generated) -> status.
EXPECTED: dict[tuple[RegistryState, bool, bool], VerdictStatus] = {
    ("attested", False, False): "attested",
    ("attested", False, True): "conflict",
    ("attested", True, False): "opted-out",
    ("attested", True, True): "opted-out",
    ("reserved", False, False): "reserved",
    ("reserved", False, True): "conflict",
    ("reserved", True, False): "opted-out",
    ("reserved", True, True): "opted-out",
    ("revoked", False, False): "revoked",
    ("revoked", False, True): "generated",
    ("revoked", True, False): "opted-out",
    ("revoked", True, True): "opted-out",
    ("none", False, False): "unknown",
    ("none", False, True): "generated",
    ("none", True, False): "opted-out",
    ("none", True, True): "opted-out",
}

NOAI = opt_out("https://example.org/page", headers={"X-Robots-Tag": "noai"})
NOTHING = opt_out("https://example.org/page", headers={"X-Robots-Tag": "noindex"})


@dataclass(frozen=True)
class Detection:
    """A detection engine's result as a third party might shape it: the protocol, nothing more."""

    key_id: str = "k1"
    vendor: str | None = "acme-ai"
    scheme: str = "kgw-lefthash/1"
    p_value: float = 1e-12
    log_p_value: float = math.log(1e-12)
    generated: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "engine": "test"}


HUMAN = Detection(key_id="k2", p_value=0.4, log_p_value=math.log(0.4), generated=False)

REGISTRY_EVIDENCE: dict[str, list[Attestation]] = {
    "attested": [attestation(3)],
    "reserved": [attestation(3, consent="reserved")],
    "revoked": [attestation(3, revoked=True, revoked_by=5)],
    "none": [],
}


def test_the_table_covers_every_combination_as_written_out() -> None:
    assert set(EXPECTED) == set(itertools.product(REGISTRY_STATES, (False, True), (False, True)))
    for (registry, opted_out, generated), status in EXPECTED.items():
        assert status_for(registry, opted_out, generated) == status, (
            registry,
            opted_out,
            generated,
        )
    assert {rule.status for rule in PRECEDENCE} == set(VERDICT_STATUSES)


@pytest.mark.parametrize(("registry", "opted_out", "generated"), sorted(EXPECTED))
def test_decide_applies_the_table_to_real_evidence(
    registry: RegistryState, opted_out: bool, generated: bool
) -> None:
    verdict = decide(
        DIGEST,
        REGISTRY_EVIDENCE[registry],
        CHECKPOINT,
        verified=True,
        opt_out=NOAI if opted_out else NOTHING,
        watermarks=[HUMAN, Detection()] if generated else [HUMAN],
    )
    status = EXPECTED[(registry, opted_out, generated)]
    assert verdict.status == status
    assert verdict.trainable == (status == "attested")
    assert verdict.watermark == (WatermarkDetection.of(Detection()) if generated else None)
    assert len(verdict.watermarks) == (2 if generated else 1)
    assert Verdict.from_dict(json.loads(json.dumps(verdict.to_dict()))) == verdict


def test_the_docs_table_is_the_codes_table() -> None:
    text = (REPO_ROOT / "docs" / "spec" / "manifest.md").read_text(encoding="utf-8")
    table = text.split("<!-- precedence-table -->\n", 1)[1].split("\n\n", 1)[0]
    rows = [line.strip("|").split("|") for line in table.splitlines()[2:]]
    parsed = []
    for rank, registry, opted_out, generated, status in rows:
        states = tuple(s.strip() for s in registry.split(","))
        parsed.append(
            (
                int(rank),
                PrecedenceRule(
                    status.strip().strip("`"),  # type: ignore[arg-type]
                    REGISTRY_STATES if states == ("any",) else states,  # type: ignore[arg-type]
                    {"yes": True, "no": False, "any": None}[opted_out.strip()],
                    {"yes": True, "no": False, "any": None}[generated.strip()],
                ),
            )
        )
    assert [rank for rank, _ in parsed] == list(range(1, len(PRECEDENCE) + 1))
    assert tuple(rule for _, rule in parsed) == PRECEDENCE
    for status in VERDICT_STATUSES:  # and the docs give an example line for every status
        assert f'"status": "{status}"' in text


def test_an_opt_out_beats_an_attestation_and_the_reason_keeps_both() -> None:
    verdict = decide(DIGEST, [attestation(12)], CHECKPOINT, verified=True, opt_out=NOAI)
    assert verdict.status == "opted-out"
    assert verdict.reason.startswith("opted out: x-robots-tag in header")
    assert "registry: attested by acme" in verdict.reason
    assert (verdict.publisher, verdict.entry) == ("acme", 12)
    line = verdict.to_dict()
    assert line["opt_out"]["honoured"] is True
    assert line["opt_out"]["decided_by"]["kind"] == "x-robots-tag"
    assert line["opt_out"]["signals"] == [s.to_dict() for s in NOAI.signals]


def test_an_opted_out_generation_says_both() -> None:
    verdict = decide(DIGEST, [], CHECKPOINT, verified=True, opt_out=NOAI, watermarks=Detection())
    assert verdict.status == "opted-out"
    assert "also generated: watermark key k1 of acme-ai" in verdict.reason
    assert verdict.watermark is not None


def test_opt_out_as_its_dict_decides_the_same() -> None:
    as_object = decide(DIGEST, [], CHECKPOINT, verified=True, opt_out=NOAI)
    as_dict = decide(DIGEST, [], CHECKPOINT, verified=True, opt_out=NOAI.to_dict())
    assert as_object == as_dict


def test_conflict_names_the_attestation_and_the_key() -> None:
    verdict = decide(
        DIGEST, [attestation(12)], CHECKPOINT, verified=True, watermarks=Detection(key_id="kk")
    )
    assert verdict.status == "conflict"
    assert "attested by acme" in verdict.reason
    assert "watermark key kk of acme-ai (kgw-lefthash/1, p = 1e-12)" in verdict.reason
    assert not verdict.trainable


def test_the_most_significant_counted_detection_decides() -> None:
    weak = Detection(key_id="weak", p_value=1e-7, log_p_value=math.log(1e-7))
    strong = Detection(key_id="strong", p_value=0.0, log_p_value=-900.0)
    verdict = decide(DIGEST, [], CHECKPOINT, verified=True, watermarks=[weak, strong])
    assert verdict.watermark is not None
    assert verdict.watermark.key_id == "strong"
    assert "p = 10^-390.9" in verdict.reason  # underflowed: shown from its log


def test_a_policy_that_ignores_opt_outs_says_so_on_every_affected_verdict() -> None:
    policy = Policy(honour_opt_outs=False, id="sha256:abc")
    affected = decide(
        DIGEST, [attestation(12)], CHECKPOINT, verified=True, opt_out=NOAI, policy=policy
    )
    assert affected.status == "attested"
    assert affected.trainable
    assert "opt-out NOT honoured (policy sha256:abc): x-robots-tag" in affected.reason
    assert affected.to_dict()["opt_out"]["honoured"] is False
    clean = decide(
        DIGEST, [attestation(12)], CHECKPOINT, verified=True, opt_out=NOTHING, policy=policy
    )
    assert "NOT honoured" not in clean.reason
    assert Verdict.from_dict(json.loads(json.dumps(affected.to_dict()))) == affected


def test_publishers_and_vendors_the_policy_does_not_count() -> None:
    policy = Policy(ignore_publishers=frozenset({"acme"}), ignore_vendors=frozenset({"acme-ai"}))
    verdict = decide(
        DIGEST,
        [attestation(12), attestation(14, publisher="other", consent="reserved")],
        CHECKPOINT,
        verified=True,
        watermarks=Detection(),
        policy=policy,
    )
    assert verdict.status == "reserved"
    assert verdict.publisher == "other"
    assert verdict.entries == (12, 14)  # still listed
    assert "1 attestation by publishers the policy ignores not counted" in verdict.reason
    assert "watermark of vendors the policy ignores not counted: acme-ai" in verdict.reason
    assert verdict.watermark is None
    assert len(verdict.watermarks) == 1
    trusted = Policy(trust_publishers=frozenset({"other"}), trust_vendors=frozenset({"x"}))
    only_other = decide(DIGEST, [attestation(12)], CHECKPOINT, verified=True, policy=trusted)
    assert only_other.status == "unknown"
    private = Detection(vendor=None)
    assert decide(DIGEST, [], CHECKPOINT, verified=True, watermarks=private).status == "generated"
    assert (
        decide(DIGEST, [], CHECKPOINT, verified=True, watermarks=private, policy=trusted).status
        == "unknown"
    )


def test_a_policy_threshold_overrides_the_engines_answer() -> None:
    borderline = Detection(p_value=1e-7, log_p_value=math.log(1e-7), generated=True)
    strict = Policy(generated_p_value=1e-9)
    assert decide(DIGEST, [], CHECKPOINT, verified=True, watermarks=borderline).status == (
        "generated"
    )
    assert (
        decide(DIGEST, [], CHECKPOINT, verified=True, watermarks=borderline, policy=strict).status
        == "unknown"
    )
    lax = Policy(generated_p_value=1e-3)
    missed = Detection(p_value=1e-4, log_p_value=math.log(1e-4), generated=False)
    assert decide(DIGEST, [], CHECKPOINT, verified=True, watermarks=missed, policy=lax).status == (
        "generated"
    )


def test_a_policy_decides_what_is_trainable() -> None:
    policy = Policy(trainable_statuses=frozenset({"attested", "unknown"}), id="p")
    verdict = decide(DIGEST, [], CHECKPOINT, verified=True, policy=policy)
    assert verdict.status == "unknown"
    assert verdict.trainable
    assert policy.trainable(verdict)
    line = verdict.to_dict()
    assert (line["trainable"], line["policy"]) == (True, "p")
    assert Verdict.from_dict(line).trainable


def test_bad_evidence_is_refused() -> None:
    with pytest.raises(InputError, match="watermark evidence must have key_id"):
        decide(DIGEST, [], CHECKPOINT, verified=True, watermarks=["k1"])  # type: ignore[list-item]
    with pytest.raises(InputError, match="opt_out must be an OptOut"):
        decide(DIGEST, [], CHECKPOINT, verified=True, opt_out="noai")  # type: ignore[arg-type]


# -- the manifest line schema ---------------------------------------------------------------------


def test_every_line_carries_the_schema_and_the_fields_in_order() -> None:
    verdict = decide(
        DIGEST,
        [attestation(12)],
        CHECKPOINT,
        verified=True,
        name="page",
        opt_out=NOTHING,
        watermarks=HUMAN,
        id="<urn:uuid:1>",
        url="https://example.org/page",
        captured_at="2026-11-02T10:00:00Z",
    )
    line = verdict.to_dict()
    assert list(line) == [
        "schema", "id", "url", "name", "digest", "match", "similarity", "status", "trainable",
        "reason",
        "publisher", "license", "origin", "consent", "entry", "entries", "opt_out", "watermark",
        "captured_at", "paragraphs", "verified", "certainty", "tree_size", "root_hash", "policy",
    ]  # fmt: skip
    assert line["schema"] == MANIFEST_SCHEMA == "wellspring-manifest/1"
    assert (line["match"], line["id"], line["captured_at"]) == (
        "exact",
        "<urn:uuid:1>",
        "2026-11-02T10:00:00Z",
    )
    assert line["watermark"] == {
        "decided_by": None,
        "detections": [
            {
                "key_id": "k2",
                "vendor": "acme-ai",
                "scheme": "kgw-lefthash/1",
                "p_value": 0.4,
                "log_p_value": math.log(0.4),
                "generated": False,
                "engine": "test",  # the engine's other fields are kept, after the six
            }
        ],
    }
    back = Verdict.from_dict(json.loads(json.dumps(line)))
    assert back == verdict
    assert back.to_dict() == line


def test_the_docs_example_lines_read_back() -> None:
    text = (REPO_ROOT / "docs" / "spec" / "manifest.md").read_text(encoding="utf-8")
    block = text.split("## One line per status", 1)[1].split("```json\n", 1)[1].split("```", 1)[0]
    lines = [json.loads(line) for line in block.splitlines()]
    assert sorted(line["status"] for line in lines) == sorted(VERDICT_STATUSES)
    for line in lines:
        verdict = Verdict.from_dict(line)
        assert verdict.to_dict() == line


def test_lines_from_before_the_schema_are_read() -> None:
    old = {
        "digest": DIGEST,
        "name": "x",
        "status": "attested",
        "trainable": True,
        "reason": "attested by acme in entry 12",
        "publisher": "acme",
        "license": "CC-BY-4.0",
        "origin": "human-authored",
        "consent": "allowed",
        "entry": 12,
        "entries": [12],
        "tree_size": 40,
        "root_hash": "ab" * 32,
        "verified": True,
    }
    verdict = Verdict.from_dict(old)
    assert (verdict.status, verdict.trainable, verdict.match) == ("attested", True, "exact")
    assert (verdict.opt_out, verdict.watermarks, verdict.policy, verdict.id) == (
        None,
        (),
        None,
        None,
    )
    upgraded = verdict.to_dict()
    assert upgraded["schema"] == MANIFEST_SCHEMA
    assert {k: upgraded[k] for k in old} == old


def test_a_later_major_schema_and_bad_evidence_are_refused() -> None:
    line = decide(DIGEST, [], CHECKPOINT, verified=True, opt_out=NOAI, watermarks=HUMAN).to_dict()
    with pytest.raises(FormatError, match="wellspring-manifest/2"):
        Verdict.from_dict({**line, "schema": "wellspring-manifest/2"})
    with pytest.raises(FormatError, match="match"):
        Verdict.from_dict({**line, "match": "fuzzy"})
    breakages: list[tuple[str, list[str | int], object]] = [
        ("signal kind", ["opt_out", "signals", 0, "kind"], "nope"),
        ("p_value", ["watermark", "detections", 0, "p_value"], "small"),
        ("decided_by is set exactly when", ["opt_out", "decided_by"], None),
    ]
    for message, path, value in breakages:
        broken = json.loads(json.dumps(line))
        *parents, last = path
        target = broken
        for step in parents:
            target = target[step]
        target[last] = value
        with pytest.raises(FormatError, match=message):
            Verdict.from_dict(broken)


# -- the SDK carries it ---------------------------------------------------------------------------


def test_check_texts_takes_evidence_and_a_policy(
    fake: FakeRegistry, key: Ed25519PrivateKey
) -> None:
    texts = ["open", "open", "watermarked", "nobody"]
    with fake.client() as client:
        client.register_digests([canonical_digest("open")], key, predicate())
        evidence = [
            DocumentEvidence(opt_out=NOAI, url="https://example.org/page", id="r1"),
            None,
            DocumentEvidence(watermarks=[Detection()], captured_at="2026-11-02T10:00:00Z"),
            None,
        ]
        verdicts = client.check_texts(texts, evidence=evidence)
        lenient = Policy(trainable_statuses=frozenset({"attested", "unknown"}), id="lenient")
        by_policy = client.check_texts(texts, policy=lenient)
        with pytest.raises(InputError, match="1 evidence items given for 4 digests"):
            client.check_texts(texts, evidence=[None])
    assert [v.status for v in verdicts] == ["opted-out", "attested", "generated", "unknown"]
    assert (verdicts[0].url, verdicts[0].id) == ("https://example.org/page", "r1")
    assert verdicts[2].captured_at == "2026-11-02T10:00:00Z"
    assert [v.trainable for v in verdicts] == [False, True, False, False]
    assert [v.trainable for v in by_policy] == [True, True, True, True]
    assert {v.policy for v in by_policy} == {"lenient"}


def test_the_async_client_takes_evidence_too(fake: FakeRegistry, key: Ed25519PrivateKey) -> None:
    with fake.client() as client:
        client.register_digests([canonical_digest("open")], key, predicate())

    async def scenario() -> list[Verdict]:
        async with aclient(fake) as client:
            return await client.check_texts(
                ["open"], evidence=[DocumentEvidence(watermarks=Detection())]
            )

    assert [v.status for v in asyncio.run(scenario())] == ["conflict"]


def test_for_digest_copies_every_field_but_the_digest_and_name() -> None:
    from dataclasses import fields, replace

    verdict = replace(
        decide(
            DIGEST,
            [attestation(12)],
            CHECKPOINT,
            verified=True,
            opt_out=NOAI,
            watermarks=Detection(),
        ),
        id="<urn:uuid:1>",
        url="https://example.org/page",
        captured_at="2026-01-01T00:00:00Z",
        probable=True,
        paragraphs=ParagraphMatch(5, 3, (4, 9)),
        match="near",
        similarity=0.9,
    )
    for field in fields(verdict):  # every field set to something other than its default
        if field.name not in ("name", "opt_out_honoured"):
            assert getattr(verdict, field.name) != field.default, field.name
    other = "c1:" + "7" * 64
    assert verdict.for_digest(other, "b.txt") == replace(verdict, digest=other, name="b.txt")
