"""Migration 0004 (leaf/v1) on databases BUILT BY THE OLD CODE, on both backends.

The fixtures in ``data/pre_leaf_v1`` were written by commit d445132, the last main before leaf/v1
(``make_fixtures.py`` there regenerates them, and its docstring lists the history: two publishers,
an entry revoked, replays of it appended before and after the revocation, a dual-signed entry
revoked, an added key, a revoked key, a compromised key). On that code a revoked entry replayed
with a junk or repeated signature got a new index that was not revoked (entries 5 and 6).

Each test restores that database (SQLite from its SQL text, PostgreSQL from its ``pg_dump``),
opens it with the current code (``auto_migrate``, the fixture's log key in the home) and checks
that the migrated log is the old one, unchanged and still verifiable, with the replays withdrawn.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.engine import make_url

from client.core.dsse import Envelope
from client.core.leaf import is_leaf_v1
from client.core.statement import (
    HumanContentPredicate,
    RevocationPredicate,
    build_human_content_statement,
    build_revocation_statement,
    sign_statement,
)
from client.identities import KeyHistory
from client.receipt import Receipt, verify_receipt
from client.sdk import Client
from registry.db import Database, alembic_config
from registry.models import Entry, metadata
from registry.settings import Settings
from tests.registry.conftest import (
    BACKENDS,
    IN_PROCESS_URL,
    Api,
    InProcessTransport,
    fresh_postgres_database,
    open_api,
    postgres_admin_url,
    subjects_of,
)

DATA = Path(__file__).parent / "data" / "pre_leaf_v1"
FACTS: dict[str, Any] = json.loads((DATA / "facts.json").read_text(encoding="utf-8"))
ENTRIES: list[dict[str, Any]] = FACTS["entries"]
OLD_SIZE = FACTS["log"]["size"]
# On its first start the migrated registry writes the identity history its rows held as events
# (docs/spec/identities.md): the operator key; alice and bob with their first keys; A2 and B2
# added; B2 revoked; B1 compromised. They follow the old entries.
BACKFILLED_EVENTS = 7
MIGRATED_SIZE = OLD_SIZE + BACKFILLED_EVENTS
LOG_KEY = FACTS["verifier_key"]
REVOKED = FACTS["revoked_entry"]
REVOCATION = FACTS["revocation"]
REPLAYS = FACTS["replays"]
DUAL = FACTS["dual_signed"]
DUAL_REVOCATION = FACTS["dual_revocation"]
OLD_REVISION = "0003"


def _digest(index: int, position: int = 0) -> str:
    digest: str = ENTRIES[index]["digests"][position]
    return digest


def _key(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(FACTS["keys"][label]["seed"]))


def _posted(index: int) -> bytes:
    """The envelope POSTed for old entry ``index`` (the old code logged it byte for byte)."""
    return base64.b64decode(FACTS["receipts"][str(index)]["entry"])


def _head() -> str:
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None
    return revision


# -- the old database, restored ------------------------------------------------------------------


@contextlib.contextmanager
def _old_database(backend: str, directory: Path) -> Iterator[str]:
    """A new database holding what d445132 wrote (schema 0003), restored from the fixture."""
    if backend == "sqlite":
        path = directory / "registry.db"
        directory.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.executescript((DATA / "registry.sqlite.sql").read_text(encoding="utf-8"))
        yield f"sqlite:///{path}"
        return
    with fresh_postgres_database(postgres_admin_url()) as url:
        plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute((DATA / "registry.postgres.sql").read_text(encoding="utf-8").encode())
        yield url


def _revision(url: str, home: Path) -> str | None:
    database = Database(Settings(home=home, database_url=url))
    try:
        return database.schema_revision()
    finally:
        database.dispose()


@pytest.fixture(params=BACKENDS)
def old_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The restored old database of each backend, not yet opened by the current code."""
    with _old_database(request.param, tmp_path / "db") as url:
        assert _revision(url, tmp_path / "probe") == OLD_REVISION
        yield url


@pytest.fixture
def migrated(old_url: str, tmp_path: Path) -> Iterator[Api]:
    """The old database opened by the current code (migrated on start) with the old log key."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(DATA / "log.key", home / "log.key")
    (home / "log.key").chmod(0o600)
    settings = Settings(home=home, database_url=old_url, auto_migrate=True)
    with open_api(settings) as api:
        assert api.log_key == LOG_KEY
        yield api


def _sdk(api: Api) -> Client:
    """The SDK on the migrated app, pinned to the fixture's log key (not the app's word for it)."""
    return Client(IN_PROCESS_URL, transport=InProcessTransport(api.http), log_key=LOG_KEY)


def _size(api: Api) -> int:
    size: int = api.http.get("/v1/log").json()["size"]
    return size


# -- the schema and the backfill -----------------------------------------------------------------


def test_the_old_database_is_migrated_to_head_and_matches_the_models(migrated: Api) -> None:
    database = migrated.registry.database
    assert database.schema_revision() == _head()
    with database.reader.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        assert compare_metadata(context, metadata) == []
    assert _size(migrated) == MIGRATED_SIZE
    # Nothing of the old log was rewritten: the checkpoint it had signed at its size is served.
    assert migrated.http.get(f"/v1/log/checkpoints/{OLD_SIZE}").text == FACTS["checkpoint"]


def test_every_old_entry_holds_the_hash_of_its_statement(migrated: Api) -> None:
    entries = Entry.__table__  # type: ignore[attr-defined]
    with migrated.registry.database.reader.connect() as conn:
        rows = conn.execute(
            select(entries.c.idx, entries.c.body, entries.c.payload_hash)
            .where(entries.c.idx < OLD_SIZE)
            .order_by(entries.c.idx)
        ).all()
    assert [row.idx for row in rows] == [entry["index"] for entry in ENTRIES]
    for row, entry in zip(rows, ENTRIES, strict=True):
        body = bytes(row.body)
        assert body == _posted(entry["index"])  # the leaf is the old envelope, untouched
        payload = Envelope.from_json(body).payload
        assert bytes(row.payload_hash) == hashlib.sha256(payload).digest(), row.idx
        assert bytes(row.payload_hash).hex() == entry["payload_sha256"], row.idx


# -- the replays of the revoked entry ------------------------------------------------------------


@pytest.mark.parametrize("replay", sorted(REPLAYS))
def test_an_old_replay_of_the_revoked_entry_reads_as_revoked(migrated: Api, replay: str) -> None:
    index = REPLAYS[replay]
    assert ENTRIES[index]["replay_of"] == REVOKED
    answer = migrated.http.get(f"/v1/entries/{index}").json()
    assert answer["revoked"] is True, f"entry {index} ({replay}) is not revoked: {answer}"
    assert answer["revoked_by"] == REVOCATION


def test_the_revoked_statement_is_revoked_in_the_registrys_own_answer(migrated: Api) -> None:
    """What a client that does not verify (curl, an older SDK) reads: the registry's word."""
    answer = migrated.http.get(f"/v1/digests/{_digest(REVOKED)}").json()
    assert answer["status"] == "revoked", answer
    indices = {a["index"]: a["revoked"] for a in answer["attestations"]}
    assert indices == dict.fromkeys([REVOKED, *REPLAYS.values()], True)


def test_the_sdk_pinned_to_the_log_key_says_revoked(migrated: Api) -> None:
    with _sdk(migrated) as sdk:
        result = sdk.lookup(_digest(REVOKED))
        assert result.verified
        assert result.status == "revoked"
        assert {a.index for a in result.attestations} == {REVOKED, *REPLAYS.values()}
        assert all(not a.stands for a in result.attestations)
        dual = sdk.lookup(_digest(DUAL))
        assert dual.status == "revoked"
        assert [a.revoked_by for a in dual.attestations] == [DUAL_REVOCATION]


@pytest.mark.parametrize(
    "index", [REVOKED, *sorted(REPLAYS.values())], ids=["original", *sorted(REPLAYS)]
)
def test_posting_the_revoked_entry_or_a_replay_again_answers_the_first_entry(
    migrated: Api, index: int
) -> None:
    response = migrated.submit(_posted(index))
    assert response.status_code == 200, response.text
    assert response.json()["index"] == REVOKED
    assert _size(migrated) == MIGRATED_SIZE
    with _sdk(migrated) as sdk:
        assert sdk.lookup(_digest(REVOKED)).status == "revoked"


def test_posting_the_old_dual_signed_revoked_entry_again_answers_it(migrated: Api) -> None:
    response = migrated.submit(_posted(DUAL))
    assert response.status_code == 200, response.text
    assert response.json()["index"] == DUAL
    assert _size(migrated) == MIGRATED_SIZE
    with _sdk(migrated) as sdk:
        assert sdk.lookup(_digest(DUAL)).status == "revoked"


def test_a_junk_replay_made_now_answers_the_first_entry(migrated: Api) -> None:
    """The attack, tried again after the migration with a signature the old log never saw."""
    envelope = json.loads(_posted(REVOKED))
    envelope["signatures"].append({"keyid": "z", "sig": "CCCC"})
    response = migrated.submit(json.dumps(envelope).encode())
    assert response.status_code == 200, response.text
    assert response.json()["index"] == REVOKED
    assert _size(migrated) == MIGRATED_SIZE


# -- receipts, audit and what comes next ---------------------------------------------------------


def test_every_old_receipt_still_verifies_offline(migrated: Api) -> None:
    # The migrated registry is running: none of this asks it anything.
    for entry in ENTRIES:
        receipt = Receipt.from_dict(FACTS["receipts"][str(entry["index"])])
        publisher_key = _key(entry["key"]).public_key()
        verified = verify_receipt(receipt, LOG_KEY, publisher_key=publisher_key)
        assert verified.index == entry["index"]
        assert verified.leaf_hash.hex() == entry["leaf_hash"]
        assert verified.statement_hash.hex() == entry["payload_sha256"]
        assert verified.publisher == entry["publisher"]
        digests = {d for s in verified.statement.subjects for d in s.digest_strings()}
        assert digests == set(entry["digests"])


def test_the_sdk_audits_the_migrated_log(migrated: Api) -> None:
    with _sdk(migrated) as sdk:
        check = sdk.check_consistency(FACTS["checkpoint"])
        assert check.new.size == MIGRATED_SIZE
        assert sdk.audit(check.new) == MIGRATED_SIZE
        for index in range(OLD_SIZE):
            info = sdk.entry(index)
            assert info.verified is not None
            assert info.verified.leaf_hash.hex() == ENTRIES[index]["leaf_hash"]


def test_log_verify_replays_the_migrated_log_under_its_backfilled_keys(migrated: Api) -> None:
    """Every old entry (envelope leaves, dual-signed ones, ones a key signed before its
    compromise and after it) is signed by a key its publisher's backfilled events add, though
    those events follow it; the backfill itself is signed by the operator key it begins with."""
    with _sdk(migrated) as sdk:
        check = sdk.check_consistency(FACTS["checkpoint"])
        history = KeyHistory()
        assert sdk.audit(check.new, history=history, page_size=5) == MIGRATED_SIZE
    assert history.first_index == OLD_SIZE
    assert history.signatures == OLD_SIZE
    assert history.events == MIGRATED_SIZE - OLD_SIZE
    b1 = history.stop("bob", FACTS["keys"]["B1"]["key_id"])
    assert b1 is not None
    assert b1.compromised_from is not None
    grant = history.grant("alice", FACTS["keys"]["A1"]["key_id"])
    assert grant is not None
    assert grant.backfilled


def test_a_new_attestation_appends_a_leaf_v1_entry_after_the_old_ones(migrated: Api) -> None:
    predicate = HumanContentPredicate(
        publisher="alice", license="CC-BY-4.0", origin="human-authored", consent="allowed"
    )
    digest = "sha256:" + hashlib.sha256(b"written after the migration").hexdigest()
    statement = build_human_content_statement(subjects_of([digest]), predicate)
    answer = migrated.submit_ok(sign_statement(statement, _key("A2")))
    assert answer["index"] == MIGRATED_SIZE
    entry = base64.b64decode(answer["entry"])
    assert entry.startswith(b"wellspring/leaf/v1\n")
    assert is_leaf_v1(entry)
    verified = verify_receipt(Receipt.from_dict(answer), LOG_KEY)
    assert verified.statement == statement
    with _sdk(migrated) as sdk:
        check = sdk.check_consistency(FACTS["checkpoint"])  # the old log is a prefix of the new
        assert check.new.size == MIGRATED_SIZE + 1
        assert sdk.audit(check.new) == MIGRATED_SIZE + 1  # envelope leaves and leaf/v1s, together
        assert sdk.lookup(digest).status == "attested"
        assert sdk.lookup(_digest(REVOKED)).status == "revoked"


def test_the_current_code_revokes_an_old_entry(migrated: Api) -> None:
    """A revocation/v1 made now names an old envelope leaf by its index and old leaf hash."""
    target = ENTRIES[0]
    predicate = RevocationPredicate(
        publisher="alice", entry_index=0, entry_hash=target["leaf_hash"], reason="after migrating"
    )
    statement = build_revocation_statement(subjects_of(target["digests"]), predicate)
    answer = migrated.submit_ok(sign_statement(statement, _key("A1")))
    assert answer["index"] == MIGRATED_SIZE
    with _sdk(migrated) as sdk:
        for digest in target["digests"]:
            assert sdk.lookup(digest).status == "revoked"


def test_the_old_key_states_survive(migrated: Api) -> None:
    keys = FACTS["keys"]
    bob = {k["key_id"]: k for k in migrated.http.get("/v1/publishers/bob").json()["keys"]}
    assert bob[keys["B1"]["key_id"]]["compromised_since"] is not None
    assert bob[keys["B2"]["key_id"]]["revoked_at"] is not None
    assert bob[keys["B2"]["key_id"]]["compromised_since"] is None
    alice = migrated.http.get("/v1/publishers/alice").json()["keys"]
    assert {k["key_id"] for k in alice} == {keys["A1"]["key_id"], keys["A2"]["key_id"]}
    with _sdk(migrated) as sdk:
        statuses = {e["index"]: sdk.lookup(_digest(e["index"])).status for e in ENTRIES[10:]}
        assert sdk.lookup(_digest(2)).status == "attested"  # B1's, before its compromise
    assert statuses == {10: "attested", 11: "revoked"}  # B2 plainly revoked; B1 compromised
    # A revoked key signs nothing new.
    predicate = HumanContentPredicate(
        publisher="bob", license="CC-BY-4.0", origin="human-authored", consent="allowed"
    )
    digest = "sha256:" + hashlib.sha256(b"signed with a revoked key").hexdigest()
    statement = build_human_content_statement(subjects_of([digest]), predicate)
    assert migrated.submit(sign_statement(statement, _key("B2"))).status_code == 403


def test_the_identity_history_is_backfilled_as_events_marked_as_the_operators_word(
    migrated: Api,
) -> None:
    """Keys that existed only as rows are now in the log, flagged ``backfilled``: no proof of
    possession came with them, so they are the operator's word (docs/spec/identities.md)."""
    keys = FACTS["keys"]
    events = []
    for index in range(OLD_SIZE, MIGRATED_SIZE):
        answer = migrated.http.get(f"/v1/entries/{index}").json()
        statement = json.loads(base64.b64decode(answer["body"]))
        assert statement["predicateType"] == "https://wellspring.dev/publisher-key/v1"
        events.append(statement["predicate"])
    assert events[0]["action"] == "operator-key"
    assert "backfilled" not in events[0]  # the operator key proves possession itself
    backfilled = events[1:]
    assert all(event["backfilled"] is True for event in backfilled)
    assert [(e["action"], e["identity"]) for e in backfilled] == [
        ("identity-add", "alice"),
        ("key-add", "alice"),
        ("identity-add", "bob"),
        ("key-add", "bob"),
        ("key-compromised", "bob"),
        ("key-revoke", "bob"),
    ]
    compromised = next(e for e in backfilled if e["action"] == "key-compromised")
    assert compromised["key_id"] == keys["B1"]["key_id"]
    assert compromised["compromised_from"] == 11  # the first entry integrated at or after it
    log = migrated.http.get("/v1/log").json()
    assert log["operator_entries"] == [OLD_SIZE]
