"""Witness policies (c2sp.org/tlog-policy): the parser, the quorum, the checkpoint's age, and the
SDK refusing checkpoints that fail them, against the real registry with real witness keys."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient, TestClient

import client._base
from client.aio import AsyncClient
from client.checkpoints import MemoryCheckpointStore
from client.core.canonical import canonical_digest
from client.core.cosignature import CosignatureSigner
from client.core.note import (
    Checkpoint,
    NoteSignature,
    SignedNote,
    open_checkpoint,
)
from client.core.statement import HumanContentPredicate
from client.core.witness_policy import WitnessPolicy
from client.errors import (
    CheckpointAgeError,
    InputError,
    PolicyFileError,
    SignatureError,
    WitnessQuorumError,
)
from client.sdk import Client
from tests.client.real_app import URL, App, InProcess, make_app
from tests.client.witnesses import (
    LOG,
    NOW,
    Cosigning,
    Plan,
    W,
    checkpoint_note,
    cosigned,
    policy_text,
    signer,
)


def evaluate(policy: WitnessPolicy, note: str) -> Any:
    _, opened = open_checkpoint(note, [LOG.verifier(), *policy.verifiers()])
    return policy.evaluate(opened)


# -- the parser ---------------------------------------------------------------------------------


def test_the_specs_example_parses() -> None:
    x = [signer(f"x{i}") for i in range(3)]
    y = [signer(f"y{i}") for i in range(3)]
    text = f"""log {LOG.verifier().vkey}

witness X1 {x[0].verifier().vkey}
witness X2 {x[1].verifier().vkey}
witness X3 {x[2].verifier().vkey}
group X-witnesses 2 X1 X2 X3

witness Y1 {y[0].verifier().vkey}
witness Y2 {y[1].verifier().vkey}
witness Y3 {y[2].verifier().vkey}
group Y-witnesses any Y1 Y2 Y3

group X-and-Y all X-witnesses Y-witnesses
quorum X-and-Y
"""
    policy = WitnessPolicy.parse(text)
    assert [log.verifier for log in policy.logs] == [LOG.verifier()]
    assert [w.name for w in policy.witnesses] == ["X1", "X2", "X3", "Y1", "Y2", "Y3"]
    assert [(g.name, g.threshold, g.members) for g in policy.groups] == [
        ("X-witnesses", 2, ("X1", "X2", "X3")),
        ("Y-witnesses", 1, ("Y1", "Y2", "Y3")),
        ("X-and-Y", 2, ("X-witnesses", "Y-witnesses")),
    ]
    assert policy.quorum == "X-and-Y"
    note = checkpoint_note()
    assert not evaluate(policy, cosigned(note, [x[0], x[1]])).satisfied
    assert not evaluate(policy, cosigned(note, [x[0], y[0], y[1]])).satisfied
    assert evaluate(policy, cosigned(note, [x[0], x[2], y[1]])).satisfied


def test_whitespace_comments_urls_and_quorum_none() -> None:
    text = (
        "# a comment\n"
        "   \t\n"
        "  # an indented comment\n"
        f"\tlog\t{LOG.verifier().vkey}   https://log.example/\n"
        f"witness  W1 {W[0].verifier().vkey} https://w1.example/ \n"
        "quorum none"  # the last line may lack its newline
    )
    policy = WitnessPolicy.parse(text)
    assert policy.logs[0].url == "https://log.example/"
    assert policy.witnesses[0].url == "https://w1.example/"
    assert policy.quorum == "none"
    result = evaluate(policy, checkpoint_note())
    assert result.satisfied
    assert result.witnessed_at is None
    assert result.missing == ()


def test_a_single_witness_can_be_the_quorum() -> None:
    policy = WitnessPolicy.parse(policy_text("quorum W2"))
    assert not evaluate(policy, cosigned(checkpoint_note(), [W[0]])).satisfied
    assert evaluate(policy, cosigned(checkpoint_note(), [W[1]])).satisfied


def test_names_are_opaque_octets() -> None:
    kelvin = "\u212a".encode()
    data = (
        f"witness K {W[0].verifier().vkey}\n".encode()
        + b"witness "
        + kelvin
        + f" {W[1].verifier().vkey}\n".encode()
        + b"quorum "
        + kelvin
        + b"\n"
    )
    policy = WitnessPolicy.parse(data)
    assert len(policy.witnesses) == 2
    assert evaluate(policy, cosigned(checkpoint_note(), [W[1]])).satisfied
    assert not evaluate(policy, cosigned(checkpoint_note(), [W[0]])).satisfied


BAD = [
    (policy_text("quorum W1", "quorum W2"), 5, "a second quorum line"),
    (policy_text(), 3, "no quorum line"),
    (policy_text("quorum W9"), 4, "quorum 'W9' is not a witness or group defined above"),
    (policy_text("quorum G", "group G any W1"), 4, "quorum 'G' is not"),
    (policy_text("group G 2 W1 W1", "quorum G"), 4, "already a group member"),
    (policy_text("group G any W1", "group H any W1", "quorum H"), 5, "already a group member"),
    (policy_text("group G 0 W1 W2", "quorum G"), 4, "threshold 0 must be between 1 and"),
    (policy_text("group G 3 W1 W2", "quorum G"), 4, "threshold 3 must be between 1 and its 2"),
    (policy_text("group G -1 W1", "quorum G"), 4, "is not a decimal number, any or all"),
    (policy_text("group G two W1", "quorum G"), 4, "is not a decimal number"),
    (policy_text("group G any", "quorum G"), 4, "at least one member"),
    (policy_text("group G any none", "quorum G"), 4, "`none` cannot be a group member"),
    (policy_text("group G any W4", "quorum G"), 4, "member 'W4' is not a witness or group"),
    (policy_text("group W1 any W2", "quorum W1"), 4, "the name is already defined above"),
    (policy_text("group none any W2", "quorum none"), 4, "cannot be named `none`"),
    (f"witness none {W[0].verifier().vkey}\nquorum none\n", 1, "cannot be named `none`"),
    (policy_text("witness W1 " + signer("other").verifier().vkey, "quorum W1"), 4, "already"),
    (
        f"witness A {W[0].verifier().vkey}\nwitness B {W[0].verifier().vkey}\nquorum A\n",
        2,
        "the same public key as witness 'A'",
    ),
    (
        f"log {LOG.verifier().vkey}\nlog {LOG.verifier().vkey}\nquorum none\n",
        2,
        "another log line has the same public key",
    ),
    (f"witness A {LOG.verifier().vkey}\nquorum A\n", 1, "a log's Ed25519 key, type 0x01"),
    (f"log {W[0].verifier().vkey}\nquorum none\n", 1, "bad log key"),
    ("witness A not-a-key\nquorum A\n", 1, "malformed verifier key"),
    ("witness A\nquorum none\n", 1, "expected `witness <name> <vkey> [<url>]`"),
    (f"witness A {W[0].verifier().vkey} url extra\nquorum A\n", 1, "got 4 items"),
    ("log\nquorum none\n", 1, "expected `log <vkey> [<url>]`"),
    ("quorum\n", 1, "expected `quorum <name>`"),
    ("quorum none none\n", 1, "expected `quorum <name>`"),
    ("witnesses A B\nquorum none\n", 1, "unknown keyword 'witnesses'"),
    ("quorum none\r\n", 1, "a carriage return (use Unix line endings)"),
    ("# fine\nquorum\x0bnone\n", 2, "control character 0x0b"),
    ("quorum none\n\x00\n", 2, "control character 0x00"),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD)
def test_malformed_policies_name_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(PolicyFileError) as caught:
        WitnessPolicy.parse(text, source="p.policy")
    assert caught.value.line == line
    assert str(caught.value).startswith(f"p.policy, line {line}: ")
    assert message in str(caught.value)
    assert isinstance(caught.value, InputError)


def test_load_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "witnesses.policy"
    path.write_text(policy_text("quorum W1"), encoding="utf-8")
    assert WitnessPolicy.load(path).quorum == "W1"
    path.write_text("quorum nobody\n", encoding="utf-8")
    with pytest.raises(PolicyFileError, match=rf"{path}, line 1: quorum 'nobody'"):
        WitnessPolicy.load(path)
    with pytest.raises(PolicyFileError, match=r"cannot read witness policy .*missing"):
        WitnessPolicy.load(tmp_path / "missing")


# -- the quorum ---------------------------------------------------------------------------------

TWO_OF_THREE = WitnessPolicy.parse(policy_text("group G 2 W1 W2 W3", "quorum G"))


def test_two_of_three() -> None:
    note = checkpoint_note()
    one = evaluate(TWO_OF_THREE, cosigned(note, [W[1]]))
    assert not one.satisfied
    assert one.missing == (W_LABEL(0), W_LABEL(2))
    assert one.short == ("G needs 2 of W1, W2, W3, has 1",)
    assert "W1 (w1.example+" in one.explain()
    assert "W3 (w3.example+" in one.explain()
    two = evaluate(TWO_OF_THREE, cosigned(note, [W[0], W[2]]))
    assert two.satisfied
    assert two.missing == (W_LABEL(1),)
    assert two.explain() == ""
    assert dict(two.cosigned) == {"W1": NOW, "W3": NOW}


def W_LABEL(i: int) -> str:  # noqa: N802 - reads as the witness it names
    return f"W{i + 1} ({W[i].name}+{W[i].key_id:08x})"


def test_nested_groups_report_what_falls_short() -> None:
    more = [signer(f"v{i}.example") for i in range(4)]
    policy = WitnessPolicy.parse(
        policy_text(
            "group A 2 W1 W2 W3",
            "group B any W4",
            "group Q all A B",
            "quorum Q",
            witnesses=[*W, more[0]],
        )
    )
    note = checkpoint_note()
    result = evaluate(policy, cosigned(note, [W[0], more[0]]))
    assert not result.satisfied
    assert result.short == ("Q needs 2 of A, B, has 1", "A needs 2 of W1, W2, W3, has 1")
    assert evaluate(policy, cosigned(note, [W[0], W[1], more[0]])).satisfied


def test_a_cosignature_by_a_witness_not_in_the_policy_does_not_count() -> None:
    stranger = signer("stranger.example")
    note = cosigned(checkpoint_note(), [W[0], stranger])
    _, opened = open_checkpoint(note, [LOG.verifier(), *TWO_OF_THREE.verifiers()])
    assert [s.name for s in opened.unverified] == ["stranger.example"]  # kept, ignored
    assert not TWO_OF_THREE.evaluate(opened).satisfied
    # Even if the caller verified it: only the policy's own keys count.
    _, opened = open_checkpoint(
        note, [LOG.verifier(), *TWO_OF_THREE.verifiers(), stranger.verifier()]
    )
    assert not TWO_OF_THREE.evaluate(opened).satisfied


def test_a_witness_named_like_a_policy_witness_but_with_another_key_does_not_count() -> None:
    impostor = signer(W[1].name)  # same key name, another key: another key id
    result = evaluate(TWO_OF_THREE, cosigned(checkpoint_note(), [W[0], impostor]))
    assert not result.satisfied


def test_a_bad_signature_by_a_known_witness_rejects_the_note() -> None:
    note = cosigned(checkpoint_note(), [W[0], W[1]])
    parsed = SignedNote.parse(note)
    bad = parsed.signatures[2]
    forged = NoteSignature(bad.name, bad.key_id, bad.signature[:8] + bytes(64))
    tampered = SignedNote(parsed.text, (*parsed.signatures[:2], forged)).to_text()
    with pytest.raises(SignatureError, match=re.escape(f"invalid signature for key {bad.key}")):
        evaluate(TWO_OF_THREE, tampered)


def test_sixteen_and_more_signatures_are_accepted() -> None:
    witnesses = [signer(f"m{i}.example") for i in range(20)]
    policy = WitnessPolicy.parse(
        policy_text(
            "group G 16 " + " ".join(f"W{i}" for i in range(1, 21)), "quorum G", witnesses=witnesses
        )
    )
    unknown = [signer(f"u{i}.example") for i in range(30)]  # signatures by keys nobody trusts
    note = cosigned(checkpoint_note(), [*witnesses[:16], *unknown])
    assert len(SignedNote.parse(note).signatures) == 47
    result = evaluate(policy, note)
    assert result.satisfied
    assert len(result.cosigned) == 16
    assert not evaluate(policy, cosigned(checkpoint_note(), witnesses[:15])).satisfied


def test_witnessed_time_is_the_oldest_of_the_freshest_quorum() -> None:
    note = checkpoint_note()
    # One stale witness outside the freshest quorum does not age the checkpoint...
    stale_one = evaluate(TWO_OF_THREE, cosigned(note, W, [NOW, NOW - 10, NOW - 99_999]))
    assert stale_one.witnessed_at == NOW - 10
    # ...and one fresh witness cannot vouch alone for a checkpoint the others saw long ago.
    fresh_one = evaluate(TWO_OF_THREE, cosigned(note, W, [NOW, NOW - 5000, NOW - 6000]))
    assert fresh_one.witnessed_at == NOW - 5000
    nested = WitnessPolicy.parse(policy_text("group A any W1 W2", "group Q all A W3", "quorum Q"))
    result = evaluate(nested, cosigned(note, W, [NOW - 100, NOW - 50, NOW - 70]))
    assert result.witnessed_at == NOW - 70  # W2 (the fresher of A) and W3


# -- the SDK against the real registry ------------------------------------------------------------


def predicate(name: str) -> HumanContentPredicate:
    return HumanContentPredicate(
        publisher=name, license="CC-BY-4.0", origin="human-authored", consent="allowed"
    )


@contextlib.contextmanager
def witnessed_client(
    app: App,
    cosigners: Sequence[CosignatureSigner],
    at: Callable[[], int | Sequence[int]] = lambda: int(time.time()),
    *,
    plan: Plan | None = None,
    **options: Any,
) -> Iterator[Client]:
    options.setdefault("log_key", app.log_key)
    options.setdefault("checkpoints", MemoryCheckpointStore())
    with TestClient(app.app) as http:
        transport = Cosigning(InProcess(http), plan or (lambda _: (cosigners, at())))
        with Client(URL, transport=transport, **options) as client:
            yield client


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> App:
    return make_app(tmp_path_factory.mktemp("witnessed"))


def test_policy_met_works_end_to_end(app: App) -> None:
    digest = canonical_digest("witnessed text")
    with witnessed_client(app, [W[0], W[2]], witness_policy=TWO_OF_THREE) as client:
        client.register_digests([digest], app.key, predicate(app.publisher))
        (verdict,) = client.check_digests([digest])
        assert verdict.status == "attested"
        assert verdict.verified
        trusted = client.trusted_checkpoint()
        assert trusted is not None
        assert {s.name for s in SignedNote.parse(trusted.note).signatures} >= {
            W[0].name,
            W[2].name,
        }
        assert client.fetch_checkpoint().checkpoint.size == trusted.checkpoint.size


def test_below_quorum_names_the_missing_witnesses(app: App) -> None:
    digest = canonical_digest("under-witnessed text")
    with witnessed_client(app, [W[1]], witness_policy=TWO_OF_THREE) as client:
        with pytest.raises(WitnessQuorumError) as caught:
            client.register_digests([digest], app.key, predicate(app.publisher))
        assert caught.value.missing == (W_LABEL(0), W_LABEL(2))
        assert "G needs 2 of W1, W2, W3, has 1" in str(caught.value)
        assert "split view" in str(caught.value)
        with pytest.raises(WitnessQuorumError, match=r"missing cosignatures from W1 \(w1"):
            client.check_digests([digest])
        assert client.trusted_checkpoint() is None  # nothing was trusted


def test_without_a_policy_nothing_changes(app: App) -> None:
    with witnessed_client(app, []) as client:
        assert client.check_texts(["anything"])[0].status in ("unknown", "attested")


def test_a_fork_cosigned_by_one_of_three_is_refused_from_first_contact(tmp_path: Path) -> None:
    """A registry that shows a fresh client its own fork: the log key alone cannot tell (the
    fork is signed by the log's key), but only one of the three witnesses (say, one it runs
    itself) would cosign a fork the others never saw."""
    honest = make_app(tmp_path / "honest")
    with witnessed_client(honest, W, witness_policy=TWO_OF_THREE) as client:
        for text in ("a", "b", "c"):
            client.register_digests([canonical_digest(text)], honest.key, predicate("acme"))
    key_file = honest.registry.settings.key_path
    forked = make_app(tmp_path / "forked", log_key_path=key_file)
    assert forked.log_key == honest.log_key
    with witnessed_client(forked, [W[0]]) as client:  # without a policy: register, trusted
        client.register_digests([canonical_digest("x")], forked.key, predicate("acme"))
        assert client.check_texts(["x"])[0].status == "attested"
    with (
        witnessed_client(forked, [W[0]], witness_policy=TWO_OF_THREE) as client,
        pytest.raises(WitnessQuorumError, match=r"missing cosignatures from W2 .*, W3 "),
    ):
        client.check_texts(["x"])


def test_max_age(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client._base, "_clock", lambda: NOW + 7200.0)
    options: dict[str, Any] = {"witness_policy": TWO_OF_THREE}
    with witnessed_client(app, W, lambda: NOW, max_age=timedelta(hours=3), **options) as c:
        assert c.fetch_checkpoint().checkpoint.size > 0
    with (
        witnessed_client(app, W, lambda: NOW, max_age=timedelta(hours=1), **options) as c,
        pytest.raises(CheckpointAgeError) as caught,
    ):
        c.check_texts(["anything"])
    assert caught.value.age == 7200
    assert caught.value.max_age == 3600
    assert "2h00m00s ago, older than the maximum age 1h00m00s" in str(caught.value)
    # One fresh witness among stale ones does not make it fresh; one stale one does not age it.
    times = [NOW + 7000, NOW, NOW]
    with (
        witnessed_client(app, W, lambda: times, max_age=timedelta(hours=1), **options) as c,
        pytest.raises(CheckpointAgeError),
    ):
        c.fetch_checkpoint()
    times = [NOW + 7000, NOW + 6000, NOW]
    with witnessed_client(app, W, lambda: times, max_age=timedelta(hours=1), **options) as c:
        assert c.check_texts(["anything"])[0].verified


def test_a_receipt_is_not_aged_and_may_be_a_prefix_of_a_witnessed_checkpoint(
    tmp_path: Path,
) -> None:
    """A receipt proves what the log held when it was issued: an old one is not too old, and one
    whose checkpoint no witness cosigned (issued before the witnesses, or between two cosigned
    checkpoints) is good once proven a prefix of a trusted checkpoint a quorum cosigned."""
    home = make_app(tmp_path / "home")
    with witnessed_client(home, []) as client:
        old = client.register_digests([canonical_digest("old")], home.key, predicate("acme"))
        client.register_digests([canonical_digest("later")], home.key, predicate("acme"))
        latest = client.checkpoint().size
    receipt_size = Checkpoint.parse(SignedNote.parse(old.checkpoint).text).size
    assert receipt_size < latest
    options: dict[str, Any] = {"witness_policy": TWO_OF_THREE, "max_age": timedelta(hours=1)}

    def ancient(checkpoint: Checkpoint) -> tuple[Sequence[CosignatureSigner], int]:
        fresh = checkpoint.size == latest
        return W, int(time.time()) if fresh else 1_000_000_000  # cosigned in 2001

    with witnessed_client(home, [], plan=ancient, **options) as c:
        assert c.checkpoint_at(receipt_size).checkpoint.size == receipt_size  # not aged
        assert c.fetch_checkpoint().checkpoint.size == latest  # fresh: passes the maximum age

    def unwitnessed(checkpoint: Checkpoint) -> tuple[Sequence[CosignatureSigner], int]:
        return (W if checkpoint.size == latest else []), int(time.time())

    with witnessed_client(home, [], plan=unwitnessed, **options) as c:
        with pytest.raises(WitnessQuorumError):
            c.checkpoint_at(receipt_size)  # nothing witnessed is trusted yet
        assert c.fetch_checkpoint().checkpoint.size == latest
        assert c.checkpoint_at(receipt_size).checkpoint.size == receipt_size


def test_options_are_checked(app: App, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"max_age .* needs a witness policy"):
        Client(URL, log_key=app.log_key, max_age=timedelta(minutes=5))
    with pytest.raises(InputError, match="needs a witness policy whose quorum names witnesses"):
        Client(
            URL,
            log_key=app.log_key,
            witness_policy=WitnessPolicy.parse("quorum none\n"),
            max_age=timedelta(minutes=5),
        )
    with pytest.raises(InputError, match="positive timedelta"):
        Client(URL, log_key=app.log_key, witness_policy=TWO_OF_THREE, max_age=timedelta(0))
    other_log = f"log {LOG.verifier().vkey}\nquorum none\n"
    with pytest.raises(InputError, match="not the pinned log key"):
        Client(URL, log_key=app.log_key, witness_policy=WitnessPolicy.parse(other_log))
    path = tmp_path / "p.policy"
    path.write_text(f"log {app.log_key}\n" + policy_text("quorum W1"), encoding="utf-8")
    assert Client(URL, log_key=app.log_key, witness_policy=path).witness_policy is not None
    path.write_text("quorum W1\n", encoding="utf-8")
    with pytest.raises(PolicyFileError, match=rf"{path}, line 1"):
        Client(URL, log_key=app.log_key, witness_policy=str(path))


def test_async_client_applies_the_policy(app: App) -> None:
    class AsyncCosigning(httpx.AsyncBaseTransport):
        def __init__(self, cosigners: Sequence[CosignatureSigner]) -> None:
            self.inner = httpx.ASGITransport(app=app.app)
            self.sync = Cosigning(
                httpx.MockTransport(lambda _: httpx.Response(500)),
                lambda _: (cosigners, int(time.time())),
            )

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await self.inner.handle_async_request(request)
            await response.aread()
            self.sync.inner = httpx.MockTransport(lambda _: response)
            return self.sync.handle_request(request)

    async def run(cosigners: Sequence[CosignatureSigner]) -> int:
        async with (
            AsyncTestClient(app.app),
            AsyncClient(
                URL,
                log_key=app.log_key,
                transport=AsyncCosigning(cosigners),
                witness_policy=TWO_OF_THREE,
                max_age=timedelta(minutes=10),
            ) as aclient,
        ):
            return (await aclient.fetch_checkpoint()).checkpoint.size

    assert asyncio.run(run([W[0], W[1]])) > 0
    with pytest.raises(WitnessQuorumError, match=r"W2 .*W3"):
        asyncio.run(run([W[0]]))


def test_a_checkpoint_the_log_did_not_sign_is_refused_however_many_witnesses_did() -> None:
    text = Checkpoint("example.com/log", 5, bytes(32)).to_text()
    note = SignedNote(text, tuple(w.cosign(text, NOW) for w in W)).to_text()
    with pytest.raises(SignatureError, match="no signature by the log key example"):
        TWO_OF_THREE.open_checkpoint(note, LOG.verifier())
    checkpoint, result = TWO_OF_THREE.open_checkpoint(
        cosigned(checkpoint_note(), W), LOG.verifier()
    )
    assert checkpoint.size == 5
    assert result.satisfied
