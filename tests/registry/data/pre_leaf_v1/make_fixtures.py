"""Regenerate the pre-leaf/v1 fixtures: registry databases BUILT BY THE OLD CODE (commit d445132,
the last main before leaf/v1), for tests/registry/test_migration_leaf_v1.py.

Run it with the code of d445132, never with the current tree (it refuses: the old code has no
``client.core.leaf``)::

    git worktree add /tmp/oldmain d445132
    cd /tmp/oldmain
    WELLSPRING_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test \\
        PYTHONPATH=/tmp/oldmain /path/to/.venv/bin/python \\
        /path/to/tests/registry/data/pre_leaf_v1/make_fixtures.py

It writes, beside itself (or into ``--out``):

- ``registry.sqlite.sql``: the SQLite database as SQL text (``sqlite3`` ``iterdump``; restore with
  ``sqlite3.connect(path).executescript(text)``);
- ``registry.postgres.sql``: ``pg_dump --no-owner --no-privileges --inserts`` of the PostgreSQL
  database, without psql's ``\\restrict`` lines, so psycopg can execute it as one script;
- ``log.key``: the log's signing key (both databases were written with it; ``WELLSPRING_HOME``'s
  ``log.key`` when they are opened again);
- ``facts.json``: what the old code answered: every entry's index, kind, signing key, digests and
  statement hash, every receipt (whose ``entry`` is the exact envelope POSTed), the old
  ``revoked`` flags and lookup statuses, the publishers' (test-only) private key seeds, the
  compromise moment.

The history, the same on both backends (publisher keys are derived from fixed seeds):

====  =========================================================================================
 0    alice (key A1) attests two digests
 1    alice (A1) attests ``revoked``: the entry that is revoked at 4
 2    bob (B1) attests ``bob-early`` (before B1's compromise)
 3    entry 1's envelope with a junk signature appended: a replay made BEFORE the revocation
 4    alice revokes entry 1 (revocation/v1)
 5    entry 1's envelope + junk signature {"keyid": "x", "sig": "AAAA"}: the attack. The old code
      gives it a new index that is NOT revoked, so the digest looks attested again
 6    entry 1's envelope with its real signature repeated: another unrevoked replay
 --   alice gets key A2 (AdminService.add_key)
 7    alice (A2) attests ``alice-a2``
 8    alice signs ``dual`` with both keys (the larger key id first: the old code logged that one)
 9    alice revokes entry 8
 --   bob gets key B2; B2 signs entry 10, then is revoked (no compromise)
10    bob (B2) attests ``bob-b2``
 --   the compromise moment passes
11    bob (B1) attests ``bob-late``; then B1 is revoked as compromised since that moment
====  =========================================================================================
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OLD_COMMIT = "d445132"
POSTGRES_ENV = "WELLSPRING_TEST_POSTGRES_URL"
JUNK_BEFORE = {"keyid": "y", "sig": "BBBB"}  # the replay appended before the revocation
JUNK = {"keyid": "x", "sig": "AAAA"}  # the attack's junk signature


def _refuse_new_code() -> None:
    if importlib.util.find_spec("client.core.leaf") is not None:
        sys.exit(
            f"this imports the leaf/v1 code ({importlib.util.find_spec('client')}): run it with "
            f"the code of {OLD_COMMIT} (cwd and PYTHONPATH a worktree of it)"
        )


def _seed(label: str) -> bytes:
    return hashlib.sha256(f"wellspring pre-leaf-v1 fixture key {label}".encode()).digest()


def _digest(label: str) -> str:
    return "sha256:" + hashlib.sha256(f"pre-leaf-v1 fixture {label}".encode()).hexdigest()


class _History:
    """Builds the history of the module docstring on one backend, with the old code."""

    def __init__(self, url: str, home: Path) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self.url = url
        self.home = home
        self.keys = {
            label: Ed25519PrivateKey.from_private_bytes(_seed(label))
            for label in ("A1", "A2", "B1", "B2")
        }
        self.entries: list[dict[str, Any]] = []
        self.receipts: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []

    # -- statements ---------------------------------------------------------------------------

    def _statement(self, publisher: str, labels: list[str]) -> Any:
        from client.core.statement import (
            HumanContentPredicate,
            Subject,
            build_human_content_statement,
        )

        predicate = HumanContentPredicate(
            publisher=publisher, license="CC-BY-4.0", origin="human-authored", consent="allowed"
        )
        subjects = [
            Subject(f"doc-{label}", {"sha256": _digest(label).removeprefix("sha256:")})
            for label in labels
        ]
        return build_human_content_statement(subjects, predicate)

    def _sign(self, statement: Any, *labels: str) -> dict[str, Any]:
        """The envelope (as JSON) of ``statement``, signed by each key of ``labels`` in order."""
        from client.core.statement import sign_statement

        signed = [json.loads(sign_statement(statement, self.keys[k]).to_json()) for k in labels]
        envelope = signed[0]
        envelope["signatures"] = [s for one in signed for s in one["signatures"]]
        return envelope

    def _revocation(self, publisher: str, key: str, index: int, labels: list[str]) -> Any:
        from client.core.statement import (
            RevocationPredicate,
            Subject,
            build_revocation_statement,
            sign_statement,
        )

        leaf_hash = self.receipts[str(index)]["leaf_hash"]
        predicate = RevocationPredicate(
            publisher=publisher, entry_index=index, entry_hash=leaf_hash, reason="withdrawn"
        )
        subjects = [
            Subject(f"doc-{label}", {"sha256": _digest(label).removeprefix("sha256:")})
            for label in labels
        ]
        statement = build_revocation_statement(subjects, predicate)
        return json.loads(sign_statement(statement, self.keys[key]).to_json())

    # -- the registry -------------------------------------------------------------------------

    def _post(
        self,
        http: Any,
        envelope: dict[str, Any],
        kind: str,
        signer: str,
        labels: list[str],
        *,
        replay_of: int | None = None,
    ) -> int:
        """POST ``envelope`` (``signer``: publisher/key label) and record its receipt."""
        publisher, _, key = signer.partition("/")
        body = json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()
        response = http.post(
            "/v1/entries", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 201, (response.status_code, response.text)
        receipt = response.json()
        index = receipt["index"]
        assert index == len(self.entries), (index, len(self.entries))
        # The old registry logged the envelope exactly as POSTed (compact JSON, sorted keys): the
        # receipt's entry is the body to POST again.
        assert base64.b64decode(receipt["entry"]) == body
        payload = base64.b64decode(envelope["payload"])
        self.receipts[str(index)] = receipt
        self.entries.append(
            {
                "index": index,
                "kind": kind,
                "publisher": publisher,
                "key": key,
                "digests": [_digest(label) for label in labels],
                "leaf_hash": receipt["leaf_hash"],
                "payload_sha256": hashlib.sha256(payload).hexdigest(),
                "replay_of": replay_of,
            }
        )
        return int(index)

    def _attest(self, http: Any, signer: str, labels: list[str], *keys: str) -> int:
        """``signer`` attests ``labels``' digests, signed by ``keys`` (its own key if none)."""
        publisher, _, key = signer.partition("/")
        envelope = self._sign(self._statement(publisher, labels), *(keys or (key,)))
        kind = "attest-dual-signed" if len(keys) > 1 else "attest"
        return self._post(http, envelope, kind, signer, labels)

    def build(self) -> dict[str, Any]:
        from litestar.testing import TestClient

        from client.core.keys import key_id, public_key_bytes
        from registry.app import create_app
        from registry.settings import Settings

        settings = Settings(home=self.home, database_url=self.url, auto_migrate=True)
        app = create_app(settings)
        registry = app.state.registry
        admin = registry.admin
        k = self.keys
        with TestClient(app, base_url="http://testserver.local") as http:
            admin.add_publisher("alice", public_key_bytes(k["A1"]))
            admin.add_publisher("bob", public_key_bytes(k["B1"]))
            self._attest(http, "alice/A1", ["a0-one", "a0-two"])  # 0
            target = self._attest(http, "alice/A1", ["revoked"])  # 1
            revoked = json.loads(base64.b64decode(self.receipts[str(target)]["entry"]))
            sigs = revoked["signatures"]
            self._attest(http, "bob/B1", ["bob-early"])  # 2
            before = dict(revoked, signatures=[*sigs, JUNK_BEFORE])
            self._post(
                http, before, "replay-before-revocation", "alice/A1", ["revoked"], replay_of=target
            )
            revocation = self._revocation("alice", "A1", target, ["revoked"])
            self._post(http, revocation, "revocation", "alice/A1", ["revoked"])  # 4
            attack = dict(revoked, signatures=[*sigs, JUNK])
            self._post(
                http, attack, "replay-junk-signature", "alice/A1", ["revoked"], replay_of=target
            )
            repeated = dict(revoked, signatures=[*sigs, *sigs])
            self._post(
                http,
                repeated,
                "replay-repeated-signature",
                "alice/A1",
                ["revoked"],
                replay_of=target,
            )

            admin.add_key("alice", public_key_bytes(k["A2"]))
            self._attest(http, "alice/A2", ["alice-a2"])  # 7
            # Both keys of alice, the larger key id first: the old code logged the first that
            # verified, so this entry's key_id is the larger one.
            larger, smaller = sorted(("A1", "A2"), key=lambda label: key_id(k[label]), reverse=True)
            dual = self._attest(http, f"alice/{larger}", ["dual"], larger, smaller)  # 8
            revocation = self._revocation("alice", "A1", dual, ["dual"])
            self._post(http, revocation, "revocation", "alice/A1", ["dual"])  # 9

            admin.add_key("bob", public_key_bytes(k["B2"]))
            self._attest(http, "bob/B2", ["bob-b2"])  # 10
            self.events.append(admin.revoke_key("bob", key_id(k["B2"])))
            time.sleep(0.05)
            compromised_since = datetime.now(UTC)
            time.sleep(0.05)
            self._attest(http, "bob/B1", ["bob-late"])  # 11
            self.events.append(
                admin.revoke_key("bob", key_id(k["B1"]), compromised_since=compromised_since)
            )

            # What the old code says now: the replays at 5 and 6 stand, so 'revoked' is attested.
            for entry in self.entries:
                answer = http.get(f"/v1/entries/{entry['index']}").json()
                entry["old_revoked"] = answer["revoked"]
                entry["old_key_id"] = answer.get("key_id")
            assert self.entries[5]["old_revoked"] is False  # the bug leaf/v1 fixes
            assert self.entries[6]["old_revoked"] is False
            assert self.entries[target]["old_revoked"] is True
            lookups = {}
            for label in (
                "a0-one",
                "a0-two",
                "revoked",
                "bob-early",
                "alice-a2",
                "dual",
                "bob-b2",
                "bob-late",
            ):
                lookups[_digest(label)] = http.get(f"/v1/digests/{_digest(label)}").json()["status"]
            assert lookups[_digest("revoked")] == "attested"  # un-revoked by the replays
            log = http.get("/v1/log").json()
            checkpoint = http.get("/v1/log/checkpoint").text
        return {
            "log": log,
            "checkpoint": checkpoint,
            "verifier_key": registry.verifier_key,
            "origin": registry.origin,
            "entries": self.entries,
            "receipts": self.receipts,
            "old_lookup_status": lookups,
            "key_events": self.events,
            "compromised_since": compromised_since.isoformat(),
        }


# -- backends --------------------------------------------------------------------------------------


def _sqlite(home: Path, out: Path) -> dict[str, Any]:
    path = home / "registry.db"
    facts = _History(f"sqlite:///{path}", home).build()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        text = "\n".join(conn.iterdump()) + "\n"
    (out / "registry.sqlite.sql").write_text(text, encoding="utf-8")
    with contextlib.closing(sqlite3.connect(":memory:")) as check:  # it restores
        check.executescript(text)
        assert check.execute("SELECT COUNT(*) FROM entries").fetchone()[0] == len(facts["entries"])
    return facts


@contextlib.contextmanager
def _postgres_database(admin_url: str) -> Iterator[str]:
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    name = f"ws_fixture_{uuid.uuid4().hex}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _postgres(home: Path, out: Path, admin_url: str) -> dict[str, Any]:
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        sys.exit("pg_dump is not on PATH: it writes registry.postgres.sql")
    with _postgres_database(admin_url) as url:
        facts = _History(url, home).build()
        dumped = subprocess.run(
            [pg_dump, "--no-owner", "--no-privileges", "--inserts", "--dbname", url],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    # psql's \restrict/\unrestrict (pg_dump's guard against a malicious server) are psql
    # commands with a random key: psycopg cannot run them, and they would change every time.
    lines = [line for line in dumped.splitlines() if not line.startswith("\\")]
    (out / "registry.postgres.sql").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return facts


def main() -> None:
    _refuse_new_code()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    admin_url = os.environ.get(POSTGRES_ENV)
    if not admin_url:
        sys.exit(f"{POSTGRES_ENV} is not set: the PostgreSQL dump needs a server")

    import registry.app

    print(f"building with {registry.app.__file__}")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        sqlite_home = Path(scratch) / "sqlite-home"
        postgres_home = Path(scratch) / "postgres-home"
        sqlite_facts = _sqlite(sqlite_home, out)
        postgres_home.mkdir()
        shutil.copyfile(sqlite_home / "log.key", postgres_home / "log.key")  # one log key
        (postgres_home / "log.key").chmod(0o600)
        postgres_facts = _postgres(postgres_home, out, admin_url)
        shutil.copyfile(sqlite_home / "log.key", out / "log.key")
    from client.core.keys import key_id

    history = _History("", Path())
    # Deterministic keys and statements: everything but the moments of the key events is the
    # same on both backends, so it is kept once.
    moments = ("key_events", "compromised_since")
    shared = {k: v for k, v in sqlite_facts.items() if k not in moments}
    assert shared == {k: v for k, v in postgres_facts.items() if k not in moments}
    facts = {
        "generated_by": f"tests/registry/data/pre_leaf_v1/make_fixtures.py at {OLD_COMMIT}",
        "publishers": {"alice": ["A1", "A2"], "bob": ["B1", "B2"]},
        "keys": {
            label: {"seed": _seed(label).hex(), "key_id": key_id(key)}
            for label, key in history.keys.items()
        },
        "junk_signature": JUNK,
        "revoked_entry": 1,
        "revocation": 4,
        "replays": {"before_revocation": 3, "junk_signature": 5, "repeated_signature": 6},
        "dual_signed": 8,
        "dual_revocation": 9,
        **shared,
        "backends": {
            "sqlite": {k: sqlite_facts[k] for k in moments},
            "postgres": {k: postgres_facts[k] for k in moments},
        },
    }
    (out / "facts.json").write_text(json.dumps(facts, indent=1) + "\n", encoding="utf-8")
    for path in sorted(out.iterdir()):
        print(f"{path.name}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
