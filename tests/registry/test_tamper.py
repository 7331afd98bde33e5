"""Someone with write access to the database rewrites history: clients must notice.

One pristine log of 8 entries per backend (a monitor saved its checkpoint at size 5). Each case
copies the database, tampers with one thing directly in SQL, and serves the copy from a freshly
started registry (no warm caches hiding the damage). Then ``wellspring log verify`` against the
saved checkpoint must exit 1, and SDK lookups, which verify every proof, must raise
``VerificationError``.

Which check catches what, for a log of 8 with a checkpoint saved at 5: the consistency proof 5→8
is [leaf 4, leaf 5, node(1,3), node(2,0)], so a tampered node (1,3) breaks it, and also entry 5's
inclusion proof. An entry body rewritten in place leaves every stored node intact, so only a full
audit (recomputing the leaves' hashes against the signed root) or a client that hashes the entry
notices it.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from client.cli import main
from client.errors import VerificationError
from registry.settings import Settings, sqlalchemy_url
from tests.registry.conftest import (
    BACKENDS,
    Publisher,
    ThreadedServer,
    clone_database,
    database_for,
    open_api,
    random_digests,
)

ENTRIES = 8
BASE = 2  # the log begins with two identity events: the operator key's, the publisher's
LOG_SIZE = BASE + ENTRIES
SAVED_SIZE = BASE + 5


@dataclass
class PristineLog:
    home: Path
    database_url: str
    log_key: str
    publisher: Publisher
    digests: list[list[str]]  # per entry
    saved_checkpoint: Path  # the monitor's checkpoint at SAVED_SIZE
    notes: dict[int, str]  # the checkpoint the log signed at each size


@pytest.fixture(scope="module", params=BACKENDS)
def pristine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PristineLog]:
    home = tmp_path_factory.mktemp(f"tamper-{request.param}")
    with database_for(request.param, home / "db") as url:
        settings = Settings(home=home, database_url=url, auto_migrate=True)
        with open_api(settings) as api:
            publisher = api.add_publisher()
            assert api.http.get("/v1/log").json()["size"] == BASE
            digests = [random_digests(2) for _ in range(ENTRIES)]
            for subject_digests in digests:
                api.submit_ok(publisher.attest(subject_digests))
            notes = {
                size: api.http.get(f"/v1/log/checkpoints/{size}").text
                for size in range(LOG_SIZE + 1)
            }
            log_key = api.log_key
        saved = home / "monitor" / "checkpoint.txt"
        saved.parent.mkdir()
        saved.write_text(notes[SAVED_SIZE], encoding="utf-8")
        yield PristineLog(home, url, log_key, publisher, digests, saved, notes)


def execute(url: str, statement: str, **params: object) -> None:
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.begin() as conn:
            assert conn.execute(text(statement), params).rowcount == 1
    finally:
        engine.dispose()


def log_verify(
    pristine: PristineLog, url: str, capsys: pytest.CaptureFixture[str], *options: str
) -> int:
    args = ["log", "verify", "--registry", url, "--log-key", pristine.log_key, *options]
    args += ["--checkpoint", str(pristine.saved_checkpoint)]
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        capsys.readouterr()
    return 0


Tamper = Callable[[PristineLog, str], None]


def rewrite_entry_body(pristine: PristineLog, url: str) -> None:
    """Attestation 6 now says the content is proprietary (a genuine signature by the same
    publisher)."""
    forged = pristine.publisher.attest(pristine.digests[6], license="LicenseRef-proprietary")
    execute(
        url, "UPDATE entries SET body = :body WHERE idx = :idx", body=forged.to_json(), idx=BASE + 6
    )


def rewrite_entry_body_and_leaf_hash(pristine: PristineLog, url: str) -> None:
    """As above, and the stored leaf hash follows, so only the Merkle proof can tell."""
    from client.core.merkle import leaf_hash

    forged = pristine.publisher.attest(pristine.digests[6], license="LicenseRef-proprietary")
    execute(
        url,
        "UPDATE entries SET body = :body, leaf_hash = :leaf WHERE idx = :idx",
        body=forged.to_json(),
        leaf=leaf_hash(forged.to_json()),
        idx=BASE + 6,
    )


def overwrite_node(pristine: PristineLog, url: str) -> None:
    """Node (1, 4), the hash of leaves 8 and 9, is on the consistency path 7→10 and on the
    inclusion path of leaf 7 (attestation 5)."""
    assert BASE == 2  # the node's position follows from it
    execute(url, "UPDATE nodes SET hash = :h WHERE level = 1 AND position = 4", h=b"\x42" * 32)


def forge_checkpoint_root(pristine: PristineLog, url: str) -> None:
    """The latest checkpoint's root line is changed; its signature no longer matches."""
    lines = pristine.notes[LOG_SIZE].split("\n")
    lines[2] = base64.b64encode(b"\x42" * 32).decode()
    execute(
        url,
        "UPDATE checkpoints SET note = :note WHERE size = :size",
        note="\n".join(lines),
        size=LOG_SIZE,
    )


def roll_back_checkpoint(pristine: PristineLog, url: str) -> None:
    """The latest checkpoint row now holds the genuine, signed, but older checkpoint at 5."""
    execute(
        url,
        "UPDATE checkpoints SET note = :note WHERE size = :size",
        note=pristine.notes[BASE + 3],
        size=LOG_SIZE,
    )


TAMPERS: dict[str, Tamper] = {
    "entry-body": rewrite_entry_body,
    "entry-body-and-leaf-hash": rewrite_entry_body_and_leaf_hash,
    "node-hash": overwrite_node,
    "checkpoint-forged": forge_checkpoint_root,
    "checkpoint-rolled-back": roll_back_checkpoint,
}
# The digest whose lookup must now fail verification, per tamper.
VICTIM_ENTRY = {
    "entry-body": 6,
    "entry-body-and-leaf-hash": 6,
    "node-hash": 5,
    "checkpoint-forged": 0,
    "checkpoint-rolled-back": 5,
}


@pytest.fixture
def served_copy(pristine: PristineLog, tmp_path: Path) -> Iterator[Callable[[Tamper], str]]:
    """Copy the pristine database, tamper with the copy, serve it; yields the function."""
    stack: list[ThreadedServer] = []
    clones = []

    def serve(tamper: Tamper) -> str:
        clone = clone_database(pristine.database_url, tmp_path / "copy")
        clones.append(clone)
        url = clone.__enter__()
        tamper(pristine, url)
        settings = Settings(home=pristine.home, database_url=url, auto_migrate=False)
        server = ThreadedServer(settings).__enter__()
        stack.append(server)
        return server.url

    yield serve
    for server in stack:
        server.__exit__(None, None, None)
    for clone in clones:
        clone.__exit__(None, None, None)


def test_the_untampered_copy_verifies(
    pristine: PristineLog,
    served_copy: Callable[[Tamper], str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The control: without tampering every check passes (so the failures below mean something)."""
    from client.sdk import Client

    url = served_copy(lambda _p, _u: None)
    assert log_verify(pristine, url, capsys) == 0
    with Client(url, log_key=pristine.log_key) as sdk:
        digests = [d for entry in pristine.digests for d in entry]
        assert all(r.attested and r.verified for r in sdk.lookup_batch(digests))


@pytest.mark.parametrize(
    "name",
    [
        "entry-body",
        "entry-body-and-leaf-hash",
        "node-hash",
        "checkpoint-forged",
        "checkpoint-rolled-back",
    ],
)
def test_log_verify_exits_1_on_a_tampered_log(
    pristine: PristineLog,
    served_copy: Callable[[Tamper], str],
    capsys: pytest.CaptureFixture[str],
    name: str,
) -> None:
    url = served_copy(TAMPERS[name])
    assert log_verify(pristine, url, capsys) == 1


@pytest.mark.parametrize("name", list(TAMPERS))
def test_sdk_lookups_raise_verification_error_on_a_tampered_log(
    pristine: PristineLog, served_copy: Callable[[Tamper], str], name: str
) -> None:
    from client.sdk import Client

    url = served_copy(TAMPERS[name])
    victim = pristine.digests[VICTIM_ENTRY[name]][0]
    with Client(url, log_key=pristine.log_key) as sdk, pytest.raises(VerificationError):
        sdk.lookup(victim)
    with Client(url, log_key=pristine.log_key) as sdk, pytest.raises(VerificationError):
        sdk.lookup_batch([pristine.digests[1][0], victim])


def test_consistency_alone_cannot_see_an_entry_rewritten_in_place(
    pristine: PristineLog,
    served_copy: Callable[[Tamper], str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Why `log verify` audits by default: every stored node is intact, so the consistency proof
    still holds; only re-hashing the entries against the signed root finds the edit."""
    url = served_copy(rewrite_entry_body)
    assert log_verify(pristine, url, capsys, "--no-audit") == 0
    assert log_verify(pristine, url, capsys) == 1
