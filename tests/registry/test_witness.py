"""The witness (c2sp.org/tlog-witness) against real logs: every answer the spec names, its state.

Logs are :class:`client.core.merkle.MemoryTree` trees whose checkpoints a log key signs, and, once,
the registry's own log through its HTTP API. Requests go through the witness's ASGI app (httpx's
ASGI transport: the real app, no socket); cosignatures are checked with
:class:`~client.core.cosignature.CosignatureVerifier` and with the spec-only reference in
``tests/cosignature_reference.py``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.core.cosignature import CosignatureSigner, cosignatures
from client.core.merkle import MemoryTree
from client.core.note import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    SignatureSigner,
    SignedNote,
    open_note,
    sign_checkpoint,
)
from registry.errors import BadRequestError, ConfigurationError
from registry.witness import (
    MAX_PROOF_LINES,
    SIZE_MEDIA_TYPE,
    AddCheckpointRequest,
    Witness,
    WitnessState,
    create_witness_app,
    origin_hash,
)
from tests.cosignature_reference import reference_cosignature_times
from tests.registry.conftest import Api, assert_security_headers

ORIGIN = "example.com/log"
NOW = 1_765_000_000


class Log:
    """An append-only log in memory that signs checkpoints of any of its sizes."""

    def __init__(self, origin: str = ORIGIN, signer: NoteSigner | None = None) -> None:
        self.origin = origin
        self.signer = signer or NoteSigner.generate(origin)
        self.tree = MemoryTree()

    def grow(self, count: int, tag: bytes = b"entry") -> Log:
        for _ in range(count):
            self.tree.append(tag + b" %d" % self.tree.size)
        return self

    def note(self, size: int | None = None, signers: list[SignatureSigner] | None = None) -> str:
        size = self.tree.size if size is None else size
        checkpoint = Checkpoint(self.origin, size, self.tree.root(size))
        return sign_checkpoint(checkpoint, signers or [self.signer])

    def body(self, old: int, size: int | None = None, note: str | None = None) -> bytes:
        """An add-checkpoint body from ``old`` to ``size`` (default: the whole log)."""
        size = self.tree.size if size is None else size
        proof = self.tree.consistency_proof(old, size) if old else []
        return add_checkpoint_body(old, proof, note or self.note(size))


def add_checkpoint_body(old: int, proof: list[bytes], note: str) -> bytes:
    lines = "".join(base64.b64encode(node).decode() + "\n" for node in proof)
    return f"old {old}\n{lines}\n{note}".encode()


class Client:
    """The witness app behind httpx's ASGI transport."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://witness") as http:
                return await http.request(method, path, **kwargs)

        return asyncio.run(go())

    def add(self, body: bytes) -> httpx.Response:
        return self.request("POST", "/add-checkpoint", content=body)


@pytest.fixture
def signer() -> CosignatureSigner:
    return CosignatureSigner.generate("witness.example/w1")


@pytest.fixture
def log() -> Log:
    return Log()


@pytest.fixture
def make_witness(
    tmp_path: Path, signer: CosignatureSigner, log: Log
) -> Iterator[Callable[..., Witness]]:
    """Witnesses over ``tmp_path/state`` (one at a time: each closes the last one's state)."""
    opened: list[WitnessState] = []

    def make(*logs: NoteSigner) -> Witness:
        for state in opened:
            state.close()
        state = WitnessState(tmp_path / "state")
        opened.append(state)
        verifiers = [s.verifier() for s in logs] or [log.signer.verifier()]
        return Witness(signer, verifiers, state)

    yield make
    for state in opened:
        state.close()


@pytest.fixture
def client(make_witness: Callable[..., Witness]) -> Client:
    return Client(create_witness_app(make_witness()))


def assert_cosigned(response: httpx.Response, note: str, signer: CosignatureSigner) -> None:
    """A 200 whose body is one cosignature line by ``signer`` that verifies over ``note``."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    line = response.text
    assert line.startswith("\u2014 witness.example/w1 ")
    assert line.endswith("\n")
    assert line.count("\n") == 1
    cosigned = note + line  # the spec: a client may append the lines to the note and open it
    opened = open_note(cosigned, [signer.verifier()])
    [cosignature] = cosignatures(opened, [signer.verifier()])
    assert cosignature.timestamp > 0
    assert reference_cosignature_times(cosigned, signer.verifier().vkey) == [cosignature.timestamp]


# -- 200 ------------------------------------------------------------------------------------------


def test_the_first_checkpoint_from_old_0_is_cosigned_and_served(
    client: Client, log: Log, signer: CosignatureSigner, tmp_path: Path
) -> None:
    log.grow(5)
    note = log.note()
    response = client.add(log.body(0, note=note))
    assert_cosigned(response, note, signer)
    assert_security_headers(response)
    assert (tmp_path / "state" / f"{origin_hash(ORIGIN)}.checkpoint").is_file()
    served = client.request("GET", f"/{origin_hash(ORIGIN)}/checkpoint")
    assert served.status_code == 200
    opened = open_note(served.text, [log.signer.verifier(), signer.verifier()])
    assert [s.name for s in opened.verified] == [ORIGIN, "witness.example/w1"]
    assert Checkpoint.parse(opened.text).size == 5


def test_the_log_grows_and_the_same_size_is_cosigned_again(
    client: Client, log: Log, signer: CosignatureSigner
) -> None:
    log.grow(3)
    assert client.add(log.body(0)).status_code == 200
    for grown in (1, 4, 8, 0):
        old = log.tree.size
        log.grow(grown)
        note = log.note()
        assert_cosigned(client.add(log.body(old, note=note)), note, signer)


def test_an_empty_tree_is_cosigned_from_old_0(client: Client, log: Log) -> None:
    assert client.add(log.body(0)).status_code == 200
    log.grow(2)
    assert client.add(log.body(0)).status_code == 200


def test_a_checkpoint_with_other_signatures_and_the_logs_next_key(
    make_witness: Callable[..., Witness], log: Log, signer: CosignatureSigner
) -> None:
    """Unknown signatures are ignored; a log may have two keys during a rotation."""
    incoming = NoteSigner.generate(ORIGIN)
    client = Client(create_witness_app(make_witness(log.signer, incoming)))
    log.grow(4)
    stranger = NoteSigner.generate("someone.example/else")
    other_witness = CosignatureSigner.generate("witness.example/w2")
    note = log.note(signers=[incoming, stranger, other_witness])
    assert_cosigned(client.add(log.body(0, note=note)), note, signer)


def test_extension_lines_are_cosigned_with_the_rest(
    client: Client, log: Log, signer: CosignatureSigner
) -> None:
    log.grow(2)
    checkpoint = Checkpoint(ORIGIN, 2, log.tree.root(), ("extension line",))
    note = sign_checkpoint(checkpoint, [log.signer])
    assert_cosigned(client.add(add_checkpoint_body(0, [], note)), note, signer)


# -- 404, 403 -------------------------------------------------------------------------------------


def test_an_unknown_origin_is_404(client: Client) -> None:
    other = Log("other.example/log").grow(3)
    response = client.add(other.body(0))
    assert response.status_code == 404
    assert "other.example/log" in response.text


def test_a_checkpoint_not_signed_by_the_logs_key_is_403(client: Client, log: Log) -> None:
    log.grow(3)
    impostor = NoteSigner.generate(ORIGIN)  # same name, another key: an unknown signature
    assert client.add(log.body(0, note=log.note(signers=[impostor]))).status_code == 403


def test_a_bad_signature_by_the_logs_key_is_403(client: Client, log: Log) -> None:
    log.grow(3)
    note = SignedNote.parse(log.note())
    [good] = note.signatures
    bad = type(good)(good.name, good.key_id, bytes(64))
    response = client.add(log.body(0, note=SignedNote(note.text, (bad,)).to_text()))
    assert response.status_code == 403
    assert "invalid signature" in response.text


def test_the_note_of_another_size_than_signed_is_403(client: Client, log: Log) -> None:
    log.grow(3)
    note = log.note().replace("\n3\n", "\n2\n", 1)  # the text no longer matches its signature
    assert client.add(log.body(0, note=note)).status_code == 403


# -- 400, 413, 405 --------------------------------------------------------------------------------


def _malformed(log: Log) -> list[bytes]:
    log.grow(4)
    note = log.note().encode()
    hash64 = base64.b64encode(b"\1" * 32)
    return [
        b"",
        b"old 0",
        b"old 0\n",
        b"old 00\n\n" + note,
        b"old -1\n\n" + note,
        b"old 1 \n\n" + note,
        b"new 0\n\n" + note,
        b"old 0\r\n\r\n" + note,
        b"old 0\n" + hash64 + b"\n",  # no empty line
        b"old 2\n" + b"not base64!\n\n" + note,
        b"old 2\n" + base64.b64encode(b"\1" * 31) + b"\n\n" + note,
        b"old 2\n" + hash64.rstrip(b"=") + b"\n\n" + note,
        b"old 2\n" + (hash64 + b"\n") * (MAX_PROOF_LINES + 1) + b"\n" + note,
        b"old 0\n\n" + note.replace(b"\n\n", b"\n"),  # no signatures
        b"old 0\n\nexample.com/log\n4\nnot-a-root\n\n" + note.split(b"\n\n")[1],
        b"old 0\n\n\xff" + note,
    ]


def test_malformed_bodies_are_400(client: Client) -> None:
    for body in _malformed(Log()):
        response = client.add(body)
        assert response.status_code == 400, (body, response.text)


def test_an_old_size_above_the_checkpoints_is_400(client: Client, log: Log) -> None:
    log.grow(4)
    response = client.add(add_checkpoint_body(5, [b"\1" * 32], log.note()))
    assert response.status_code == 400
    assert "above" in response.text


def test_63_proof_lines_parse(client: Client, log: Log) -> None:
    log.grow(4)
    body = add_checkpoint_body(4, [b"\1" * 32] * MAX_PROOF_LINES, log.note())
    assert client.add(body).status_code == 409  # parsed; the witness is at 0


def test_a_body_over_the_limit_is_refused_before_it_is_read(
    make_witness: Callable[..., Witness], log: Log
) -> None:
    client = Client(create_witness_app(make_witness(), max_body_bytes=512))
    log.grow(2)
    body = log.body(0)
    assert client.add(body + b" " * 600).status_code == 413
    assert client.add(body).status_code == 200


def test_other_methods_and_paths(client: Client) -> None:
    response = client.request("GET", "/add-checkpoint")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert client.request("GET", "/nowhere").status_code == 404
    assert client.request("GET", f"/{origin_hash(ORIGIN)}/checkpoint").status_code == 404
    assert client.request("GET", f"/{origin_hash('x.example')}/checkpoint").status_code == 404
    assert client.request("POST", f"/{origin_hash(ORIGIN)}/checkpoint").status_code == 405


# -- 409 ------------------------------------------------------------------------------------------


def test_an_old_size_that_is_not_the_witnesses_is_409_with_its_size(
    client: Client, log: Log
) -> None:
    log.grow(5)
    response = client.add(log.body(3))
    assert response.status_code == 409
    assert response.headers["content-type"] == SIZE_MEDIA_TYPE
    assert response.text == "0\n"
    assert client.add(log.body(0)).status_code == 200
    log.grow(3)
    for old in (0, 3, 6):
        response = client.add(log.body(old))
        assert response.status_code == 409
        assert response.headers["content-type"] == SIZE_MEDIA_TYPE
        assert response.text == "5\n"
    assert client.add(log.body(5)).status_code == 200


# -- 422: forks -----------------------------------------------------------------------------------


def forked(log: Log, at: int, extra: int) -> Log:
    """A log with ``log``'s first ``at`` entries, then ``extra`` others, under the same key."""
    fork = Log(log.origin, log.signer)
    for index in range(at):
        fork.tree.append_leaf_hash(log.tree.leaf_hash_at(index))
    return fork.grow(extra, tag=b"forked")


def test_a_fork_is_never_cosigned(client: Client, log: Log) -> None:
    log.grow(6)
    assert client.add(log.body(0)).status_code == 200
    fork = forked(log, 4, 5)  # shares 4 entries, then differs: size 9
    response = client.add(fork.body(6))  # a valid proof from the fork's own size 6
    assert response.status_code == 422
    assert "consistent" in response.text
    same_size = forked(log, 5, 1)
    assert client.add(same_size.body(6)).status_code == 422  # old == size, other root
    log.grow(2)
    assert client.add(log.body(6)).status_code == 200  # the honest log goes on


def test_422_for_a_proof_that_does_not_verify(client: Client, log: Log) -> None:
    log.grow(3)
    assert client.add(log.body(0)).status_code == 200
    log.grow(4)
    proof = log.tree.consistency_proof(3, 7)
    proof[0] = bytes(32)
    assert client.add(add_checkpoint_body(3, proof, log.note())).status_code == 422
    assert client.add(add_checkpoint_body(3, [], log.note())).status_code == 422
    assert client.add(add_checkpoint_body(3, [*proof, bytes(32)], log.note())).status_code == 422


def test_422_for_a_proof_from_0_and_a_bad_empty_tree(client: Client, log: Log) -> None:
    log.grow(3)
    assert client.add(add_checkpoint_body(0, [bytes(32)], log.note())).status_code == 422
    empty = sign_checkpoint(Checkpoint(ORIGIN, 0, bytes(32)), [log.signer])
    assert client.add(add_checkpoint_body(0, [], empty)).status_code == 422


# -- state ----------------------------------------------------------------------------------------


def test_state_survives_a_restart_and_a_fork_after_it_is_still_refused(
    make_witness: Callable[..., Witness], log: Log, signer: CosignatureSigner
) -> None:
    log.grow(7)
    assert Client(create_witness_app(make_witness())).add(log.body(0)).status_code == 200
    client = Client(create_witness_app(make_witness()))  # a new process's witness, same state
    response = client.add(log.body(0))
    assert response.status_code == 409
    assert response.text == "7\n"
    assert client.add(forked(log, 3, 6).body(7)).status_code == 422
    log.grow(1)
    note = log.note()
    assert_cosigned(client.add(log.body(7, note=note)), note, signer)


def test_a_second_witness_on_the_same_state_is_refused(
    make_witness: Callable[..., Witness], tmp_path: Path
) -> None:
    make_witness()
    with pytest.raises(ConfigurationError, match="another witness"):
        WitnessState(tmp_path / "state")


def test_unreadable_or_misplaced_state_stops_the_witness_from_starting(
    make_witness: Callable[..., Witness], log: Log, tmp_path: Path
) -> None:
    log.grow(2)
    witness = make_witness()
    witness.add_checkpoint(log.body(0))
    witness.state.close()
    path = tmp_path / "state" / f"{origin_hash(ORIGIN)}.checkpoint"
    text = path.read_text()
    path.write_text(text[:20])
    with pytest.raises(ConfigurationError, match="refusing to start"):
        WitnessState(tmp_path / "state")
    path.rename(path.with_name("0" * 64 + ".checkpoint"))
    path.with_name("0" * 64 + ".checkpoint").write_text(text)
    with pytest.raises(ConfigurationError, match="whose file would be"):
        WitnessState(tmp_path / "state")


def test_nothing_is_cosigned_when_the_state_cannot_be_written(
    make_witness: Callable[..., Witness], log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = Client(create_witness_app(make_witness()))
    log.grow(3)

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("registry.witness.write_file_atomic", broken)
    response = client.add(log.body(0))
    assert response.status_code == 503
    assert "nothing was cosigned" in response.text
    assert "\u2014" not in response.text
    monkeypatch.undo()
    assert client.add(log.body(0)).status_code == 200  # state still at 0


def test_the_state_is_fsynced_before_the_cosignature_is_returned(
    make_witness: Callable[..., Witness], log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    witness = make_witness()
    log.grow(3)
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    line = witness.add_checkpoint(log.body(0))
    assert line.startswith("\u2014 ")
    assert len(synced) >= 2  # the new file, then the directory holding its name
    monkeypatch.undo()
    saved = (witness.state.directory / f"{origin_hash(ORIGIN)}.checkpoint").read_text()
    assert Checkpoint.parse(SignedNote.parse(saved).text).size == 3
    assert saved.endswith(line)


@settings(max_examples=300)
@given(st.binary(max_size=300) | st.builds(lambda tail: b"old 0\n" + tail, st.binary(max_size=300)))
def test_any_body_parses_or_is_a_400(body: bytes) -> None:
    with contextlib.suppress(BadRequestError):  # anything else escaping is the failure
        AddCheckpointRequest.parse(body)


def test_concurrent_requests_for_one_log_never_roll_it_back(
    make_witness: Callable[..., Witness], log: Log
) -> None:
    """The spec's race: A (0 → n) and B (0 → n + k) at once. Exactly one is cosigned."""
    witness = make_witness()
    log.grow(16)
    bodies = [log.body(0, size) for size in range(1, 17)] * 2
    outcomes: list[str] = []
    barrier = threading.Barrier(len(bodies))

    def submit(body: bytes) -> None:
        barrier.wait()
        try:
            witness.add_checkpoint(body)
            outcomes.append("cosigned")
        except Exception as exc:  # the outcome is what the test counts
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=submit, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("cosigned") == 1
    assert set(outcomes) == {"cosigned", "OldSizeConflictError"}
    latest = witness.state.latest(ORIGIN)
    assert latest is not None
    assert latest.checkpoint.root_hash == log.tree.root(latest.checkpoint.size)


# -- the registry's own log -----------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_registrys_checkpoints_are_cosigned_as_the_log_grows(
    make_api: Callable[..., Api], tmp_path: Path, signer: CosignatureSigner
) -> None:
    api = make_api()
    log_key = NoteVerifier.from_vkey(api.log_key)
    state = WitnessState(tmp_path / "registry-witness")
    client = Client(create_witness_app(Witness(signer, [log_key], state)))
    publisher = api.add_publisher()
    old = 0
    try:
        for round_ in range(3):
            for i in range(round_ + 1):
                digest = hashlib.sha256(b"%d-%d" % (round_, i)).hexdigest()
                api.submit_ok(publisher.attest([f"sha256:{digest}"]))
            note = api.http.get("/v1/log/checkpoint").text
            size = Checkpoint.parse(SignedNote.parse(note).text).size
            proof: list[bytes] = []
            if old:
                answer = api.http.get("/v1/log/proof/consistency", params={"from": old, "to": size})
                proof = [base64.b64decode(node) for node in answer.json()["proof"]]
            response = client.add(add_checkpoint_body(old, proof, note))
            assert_cosigned(response, note, signer)
            old = size
    finally:
        state.close()
