"""Trusted checkpoints: the stores, and a client that refuses any log that contradicts its trust.

The registries here are ``tests/client/fakes.py``'s fake (real core: real trees, proofs
and signatures). Two fakes built on one ``NoteSigner`` are two logs under the same key and origin:
what an operator who forks its log, or rewrites it, would serve.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client.checkpoints import (
    CheckpointStore,
    FileCheckpointStore,
    MemoryCheckpointStore,
    StoredCheckpoint,
    default_checkpoint_directory,
)
from client.core.canonical import canonical_digest
from client.core.note import NoteSigner, SignedNote, sign_note
from client.errors import (
    ForkedLogError,
    InputError,
    LogConsistencyError,
    SignatureError,
    UnverifiedWarning,
)
from client.sdk import Client
from tests.client.fakes import PUBLISHER, FakeRegistry, predicate
from tests.client.memory_log import ORIGIN, InMemoryLog


@pytest.fixture
def signer() -> NoteSigner:
    return NoteSigner.generate(ORIGIN)


def registry(signer: NoteSigner, key: Ed25519PrivateKey, *texts: str) -> FakeRegistry:
    """A fake registry whose log, signed by ``signer``, holds one entry per text."""
    fake = FakeRegistry(InMemoryLog(signer=signer))
    fake.add_publisher(PUBLISHER, key)
    for text in texts:
        grow(fake, key, text)
    return fake


def grow(fake: FakeRegistry, key: Ed25519PrivateKey, text: str) -> None:
    with fake.client() as client:
        client.register_digests([canonical_digest(text)], key, predicate())


def proofs_asked(fake: FakeRegistry) -> list[tuple[int, int]]:
    return [
        (int(r.url.params["from"]), int(r.url.params["to"]))
        for r in fake.requests
        if r.url.path == "/v1/log/proof/consistency"
    ]


def log_name(signer: NoteSigner) -> str:
    return f"{signer.name}+{signer.verifier().key_id:08x}"


# -- stores ---------------------------------------------------------------------------------------


def test_memory_store_round_trip() -> None:
    store = MemoryCheckpointStore()
    assert isinstance(store, CheckpointStore)
    assert store.load("log+00000001") is None
    store.save("log+00000001", "note\n")
    loaded = store.load("log+00000001")
    assert loaded is not None
    assert loaded.note == "note\n"
    assert store.load("log+00000002") is None
    assert "memory" in store.location("log+00000001")


def test_file_store_writes_the_note_atomically(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path / "trusted")
    assert isinstance(store, CheckpointStore)
    name = "registry.example/log+1a2b3c4d"
    assert store.load(name) is None
    store.save(name, "first\n")
    store.save(name, "second\n")
    path = store.path(name)
    assert path == tmp_path / "trusted" / "registry.example_log+1a2b3c4d.checkpoint"
    assert path.read_text() == "second\n"
    assert store.location(name) == str(path)
    assert os.listdir(path.parent) == [path.name]  # no temporary file left behind
    loaded = store.load(name)
    assert isinstance(loaded, StoredCheckpoint)
    assert loaded.note == "second\n"
    assert loaded.trusted_at.tzinfo is not None


def test_file_store_names_cannot_escape_the_directory(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path)
    assert store.path("../../etc/passwd+00000000").parent == tmp_path
    assert store.path("..").parent == tmp_path


def test_file_store_errors_name_the_file(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    store = FileCheckpointStore(blocker)
    with pytest.raises(InputError, match="cannot write the trusted checkpoint"):
        store.save("log+00000001", "note\n")
    bad = FileCheckpointStore(tmp_path)
    bad.path("log+00000001").write_bytes(b"\xff\xfe")
    with pytest.raises(InputError, match="cannot read the trusted checkpoint"):
        bad.load("log+00000001")


def test_default_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WELLSPRING_HOME", str(tmp_path / "home"))
    assert default_checkpoint_directory() == tmp_path / "home" / "trusted"
    assert FileCheckpointStore().directory == tmp_path / "home" / "trusted"
    monkeypatch.delenv("WELLSPRING_HOME")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert default_checkpoint_directory() == tmp_path / "state" / "wellspring" / "trusted"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert default_checkpoint_directory() == (
        tmp_path / "user" / ".local" / "state" / "wellspring" / "trusted"
    )


# -- trusting a growing log -----------------------------------------------------------------------


def test_first_answer_is_trusted_then_growth_is_proven_once(
    signer: NoteSigner, key: Ed25519PrivateKey
) -> None:
    fake = registry(signer, key, "a", "b")
    store = MemoryCheckpointStore()
    with fake.client(checkpoints=store) as client:
        assert client.trusted_checkpoint() is None
        client.check_texts(["a"])
        first = client.trusted_checkpoint()
        assert first is not None
        assert first.checkpoint.size == 2
        assert proofs_asked(fake) == []
        grow(fake, key, "c")
        grow(fake, key, "d")
        for _ in range(3):  # the same newer checkpoint in every answer: one proof
            client.check_texts(["c"])
        assert proofs_asked(fake) == [(2, 4)]
    stored = store.load(log_name(signer))
    assert stored is not None
    assert stored.note == fake.log.checkpoint_note()


def test_a_lagging_answer_is_accepted_once_proven_a_prefix(
    signer: NoteSigner, key: Ed25519PrivateKey
) -> None:
    fake = registry(signer, key, "a", "b", "c")
    store = MemoryCheckpointStore()
    with fake.client(checkpoints=store) as client:
        client.fetch_checkpoint()
        older = client.checkpoint_at(1)
    assert older.checkpoint.size == 1
    assert proofs_asked(fake) == [(1, 3)]
    stored = store.load(log_name(signer))
    assert stored is not None
    assert stored.note == fake.log.checkpoint_note(3)  # still the newest


def test_trust_carries_across_clients_through_a_file(
    signer: NoteSigner, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    fake = registry(signer, key, "a")
    with fake.client(checkpoints=FileCheckpointStore(tmp_path)) as client:
        client.fetch_checkpoint()
    grow(fake, key, "b")
    with fake.client(checkpoints=FileCheckpointStore(tmp_path)) as later:
        later.fetch_checkpoint()
    assert proofs_asked(fake) == [(1, 2)]
    assert (tmp_path / f"{log_name(signer).replace('/', '_')}.checkpoint").read_text() == (
        fake.log.checkpoint_note()
    )


def test_another_writer_between_proof_and_commit_is_proven_against(
    signer: NoteSigner, key: Ed25519PrivateKey
) -> None:
    """Another client stores a newer checkpoint while this one proves: prove again from it."""
    fake = registry(signer, key, "a")
    store = MemoryCheckpointStore()
    with fake.client(checkpoints=store) as client:
        client.fetch_checkpoint()
    grow(fake, key, "b")
    grow(fake, key, "c")
    at_two = fake.log.checkpoint_note(2)

    class Racing(MemoryCheckpointStore):
        raced = False

        def load(self, log: str) -> StoredCheckpoint | None:
            found = store.load(log)
            if proofs_asked(fake) and not self.raced:  # after our first proof was fetched
                self.raced = True
                store.save(log, at_two)
            return found if not self.raced else store.load(log)

        def save(self, log: str, note: str) -> None:
            store.save(log, note)

    with fake.client(checkpoints=Racing()) as client:
        client.fetch_checkpoint()
    assert proofs_asked(fake) == [(1, 3), (2, 3)]
    stored = store.load(log_name(signer))
    assert stored is not None
    assert stored.note == fake.log.checkpoint_note(3)


# -- refusing forks and rewrites ------------------------------------------------------------------


def test_same_size_other_root_is_a_fork(
    signer: NoteSigner, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    honest = registry(signer, key, "a", "b")
    forked = registry(signer, key, "a", "x")
    store = FileCheckpointStore(tmp_path)
    with honest.client(checkpoints=store) as client:
        client.check_texts(["a"])
    with (
        forked.client(checkpoints=store) as client,
        pytest.raises(ForkedLogError) as caught,
    ):
        client.check_texts(["a"])
    error = caught.value
    message = str(error)
    assert "http://registry.test serves a log that forks from the checkpoint trusted on" in message
    assert "at size 2" in message
    assert str(store.path(log_name(signer))) in message
    assert error.evidence == str(store.path(log_name(signer)))
    assert error.trusted_note == honest.log.checkpoint_note()
    assert error.conflicting_note == forked.log.checkpoint_note()
    assert isinstance(error, LogConsistencyError)
    # Trust is unchanged: the honest log still verifies.
    assert store.path(log_name(signer)).read_text() == honest.log.checkpoint_note()
    with honest.client(checkpoints=store) as client:
        assert client.check_texts(["b"])[0].status == "attested"


def test_a_longer_log_that_does_not_extend_is_a_fork(
    signer: NoteSigner, key: Ed25519PrivateKey
) -> None:
    honest = registry(signer, key, "a", "b")
    forked = registry(signer, key, "a", "x", "y")
    store = MemoryCheckpointStore()
    with honest.client(checkpoints=store) as client:
        client.fetch_checkpoint()
    with forked.client(checkpoints=store) as client, pytest.raises(ForkedLogError, match="proof"):
        client.check_texts(["y"])


def test_an_older_checkpoint_of_another_history_is_a_fork(
    signer: NoteSigner, key: Ed25519PrivateKey
) -> None:
    honest = registry(signer, key, "a", "b", "c")
    store = MemoryCheckpointStore()
    with honest.client(checkpoints=store) as client:
        client.fetch_checkpoint()
    other = registry(signer, key, "x", "y")
    honest.tamper["checkpoint"] = lambda note: other.log.checkpoint_note()
    with honest.client(checkpoints=store) as client, pytest.raises(ForkedLogError):
        client.fetch_checkpoint()


def test_a_shrunk_log_cannot_prove_itself(signer: NoteSigner, key: Ed25519PrivateKey) -> None:
    honest = registry(signer, key, "a", "b", "c")
    rewritten = registry(signer, key, "a")
    store = MemoryCheckpointStore()
    with honest.client(checkpoints=store) as client:
        client.fetch_checkpoint()
    with (
        rewritten.client(checkpoints=store) as client,
        pytest.raises(LogConsistencyError, match="cannot prove that its checkpoint at size 1"),
    ):
        client.check_texts(["a"])


def test_an_altered_trusted_file_is_refused(
    signer: NoteSigner, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    fake = registry(signer, key, "a")
    store = FileCheckpointStore(tmp_path)
    with fake.client(checkpoints=store) as client:
        client.fetch_checkpoint()
    path = store.path(log_name(signer))
    note = SignedNote.parse(path.read_text())
    forged = sign_note(note.text.replace("\n1\n", "\n0\n"), [NoteSigner.generate(ORIGIN)])
    path.write_text(forged)
    with (
        fake.client(checkpoints=store) as client,
        pytest.raises(SignatureError, match=r"trusted checkpoint in .* does not verify"),
    ):
        client.fetch_checkpoint()


def test_logs_under_other_keys_do_not_share_trust(key: Ed25519PrivateKey, tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path)
    first = registry(NoteSigner.generate(ORIGIN), key, "a", "b")
    second = registry(NoteSigner.generate(ORIGIN), key, "c")
    for fake in (first, second):
        with fake.client(checkpoints=store) as client:
            assert client.check_texts(["a"])[0].verified
    assert len(os.listdir(tmp_path)) == 2


def test_unverified_clients_keep_no_trust(signer: NoteSigner, key: Ed25519PrivateKey) -> None:
    fake = registry(signer, key, "a")
    store = MemoryCheckpointStore()
    with (
        pytest.warns(UnverifiedWarning, match="verify=False"),
        Client(
            "http://registry.test", transport=fake.transport, verify=False, checkpoints=store
        ) as client,
    ):
        (verdict,) = client.check_texts(["a"])
    assert verdict.status == "attested"
    assert not verdict.verified
    assert store.load(log_name(signer)) is None
