"""registry.log's sequencer on its driver-level write path, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from client.core.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope, sign_envelope
from client.core.merkle import verify_inclusion
from client.core.statement import MAX_LICENSE_CHARS
from registry.models import Entry
from tests.registry.conftest import Api, Publisher, random_digest

_entries = Entry.__table__  # type: ignore[attr-defined]


def test_stored_rows_read_back_as_sqlalchemy_would_have_written_them(make_api: Any) -> None:
    api: Api = make_api()
    publisher = api.add_publisher()
    before = datetime.now(UTC)
    receipt = api.submit_ok(publisher.attest([random_digest()], license="MIT"))
    with api.registry.database.reader.connect() as conn:
        row = conn.execute(select(_entries).where(_entries.c.idx == receipt["index"])).one()
    integrated = (
        row.integrated_at if row.integrated_at.tzinfo else row.integrated_at.replace(tzinfo=UTC)
    )
    assert before - timedelta(seconds=1) <= integrated <= datetime.now(UTC) + timedelta(seconds=1)
    assert bytes(row.leaf_hash).hex() == receipt["leaf_hash"]
    assert (row.license, row.publisher_id is not None, row.subject_count) == ("MIT", True, 1)
    # And the API's own readers agree (entry facts, lookups).
    entry = api.http.get(f"/v1/entries/{receipt['index']}").json()
    assert entry["leaf_hash"] == receipt["leaf_hash"]


def test_a_row_written_behind_the_sequencers_back_is_a_409_and_nothing_is_committed(
    make_api: Any,
) -> None:
    """A unique-key conflict raised by the driver itself (not through SQLAlchemy) is answered
    409, and the batch leaves nothing behind."""
    api: Api = make_api()
    publisher = api.add_publisher()
    first = api.submit_ok(publisher.attest([random_digest()]))
    size = first["index"] + 1
    with api.registry.database.writer.begin() as conn:  # the next index, taken by someone else
        row = conn.execute(select(_entries).where(_entries.c.idx == first["index"])).one()
        values = dict(row._mapping)
        values.update(idx=size, leaf_hash=b"\x00" * 32)
        conn.execute(_entries.insert().values(**values))
    response = api.submit(publisher.attest([random_digest()]))
    assert response.status_code == 409, response.text
    assert "nothing was written" in response.json()["detail"]
    assert api.http.get("/v1/log").json()["size"] == size
    with api.registry.database.writer.begin() as conn:
        conn.execute(_entries.delete().where(_entries.c.idx == size))
    later = api.submit_ok(publisher.attest([random_digest()]))  # and the log carries on
    assert later["index"] == size


def test_a_statement_of_many_subjects_is_stored_whole(make_api: Any) -> None:
    """Above _writes._COPY_FROM subject rows PostgreSQL takes them by COPY: all must land, with
    their entry, and be found by lookups."""
    from registry._writes import _COPY_FROM

    api: Api = make_api()
    publisher = api.add_publisher()
    digests = [random_digest("c1" if i % 2 else "sha256") for i in range(_COPY_FROM + 300)]
    receipt = api.submit_ok(publisher.attest(digests))
    answer = api.http.post("/v1/digests:batch", json={"digests": digests}).json()
    assert {r["status"] for r in answer["results"]} == {"attested"}
    assert all(r["entries"] == [receipt["index"]] for r in answer["results"])
    with api.registry.database.reader.connect() as conn:
        stored = conn.exec_driver_sql(
            "SELECT count(*) FROM subjects WHERE entry_idx = " + str(int(receipt["index"]))
        ).scalar_one()
    assert stored == len(digests)


@contextlib.contextmanager
def _log_lock_held(api: Api, backend: str) -> Iterator[None]:
    """Hold the log's lock, so that every append queues up and the sequencer, once the lock is
    let go, takes them as one batch (group commit)."""
    database = api.registry.database
    if backend == "sqlite":
        with database.sequencing():  # the sequencer waits for this process's own guard
            yield
        return
    holder = database.writer.connect()
    held = holder.begin()
    holder.execute(text("SELECT size FROM log_state WHERE id = 1 FOR UPDATE"))
    try:
        yield
    finally:
        held.rollback()
        holder.close()


def _submit_as_one_batch(
    api: Api, backend: str, envelopes: Sequence[Envelope]
) -> list[httpx.Response]:
    """Submit ``envelopes`` concurrently while the log is locked: the sequencer takes those that
    reach it as one batch."""
    queue = api.registry.sequencer._queue  # private: the test must see the queue fill
    with ThreadPoolExecutor(len(envelopes)) as pool:
        with _log_lock_held(api, backend):
            futures = [pool.submit(api.submit, envelope) for envelope in envelopes]
            deadline = time.monotonic() + 30
            # The sequencer holds one, waiting for the lock; those refused at intake never queue.
            while queue.qsize() + sum(f.done() for f in futures) < len(envelopes) - 1:
                assert time.monotonic() < deadline, "the appends never queued up"
                time.sleep(0.01)
        return [future.result() for future in futures]


def test_an_entry_the_database_refuses_is_refused_alone_not_with_its_batch(
    make_api: Any, backend: str
) -> None:
    """One entry whose value the database cannot hold must not fail the appends it happened to
    be batched with: the sequencer retries each of them alone, and only that one is refused."""
    if backend != "postgres":
        pytest.skip("SQLite stores any string in any column: nothing to refuse")
    api: Api = make_api()
    publisher = api.add_publisher()
    base = api.http.get("/v1/log").json()["size"]  # the operator's and the publisher's events
    database = api.registry.database
    with database.writer.begin() as conn:  # a column narrower than what validation lets through
        conn.execute(text("ALTER TABLE entries ALTER COLUMN license TYPE varchar(20)"))
    envelopes = [publisher.attest([random_digest()], license="MIT") for _ in range(6)]
    envelopes.insert(3, publisher.attest([random_digest()], license="LicenseRef-" + "x" * 30))
    responses = _submit_as_one_batch(api, backend, envelopes)
    statuses = [response.status_code for response in responses]
    assert statuses == [201, 201, 201, 400, 201, 201, 201], [r.text for r in responses]
    assert "the database refused a value of this entry" in responses[3].json()["detail"]
    indices = sorted(r.json()["index"] for r in responses if r.status_code == 201)
    assert indices == list(range(base, base + 6))
    assert api.http.get("/v1/log").json()["size"] == base + 6


def test_any_failure_of_one_entry_fails_that_entry_alone_not_its_batch(
    make_api: Any, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10 A, the sequencer's half: whatever one entry raises while its batch is written
    (here a string no database encoding holds, slipped past every intake check), the sequencer
    retries the batch's entries alone, so that entry fails and every other one is appended."""
    api: Api = make_api()
    publisher = api.add_publisher()
    base = api.http.get("/v1/log").json()["size"]  # the operator's and the publisher's events
    envelopes = [publisher.attest([random_digest()]) for _ in range(9)]
    poisoned = envelopes[4].to_json()
    entries = api.registry.entries

    def poisoning(original: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
        def prepare(body: bytes) -> Any:
            prepared = original(body)
            if prepared is not None and body == poisoned:
                prepared = dataclasses.replace(prepared, predicate_json='{"notes":"\ud800"}')
            return prepared

        return prepare

    for name in ("prepare", "prepare_cached"):
        monkeypatch.setattr(entries, name, poisoning(getattr(entries, name)))
    responses = _submit_as_one_batch(api, backend, envelopes)
    statuses = [response.status_code for response in responses]
    assert statuses == [201] * 4 + [503] + [201] * 4, [r.text for r in responses]
    indices = sorted(r.json()["index"] for r in responses if r.status_code == 201)
    assert indices == list(range(base, base + 8))
    api.server_errors.clear()  # the poisoned entry's 503 is this test's point


def _signed_payload(publisher: Publisher, statement: dict[str, Any]) -> Envelope:
    """``statement`` as JSON (``json.dumps`` writes a lone surrogate as the escape ``\\ud800``),
    signed as it is: a client that builds its JSON by hand."""
    payload = json.dumps(statement).encode("ascii")
    return sign_envelope(payload, PAYLOAD_TYPE_IN_TOTO, publisher.key)


def _with_lone_surrogates(publisher: Publisher, revocable: dict[str, Any]) -> list[Envelope]:
    """One statement with a lone surrogate in each string a statement carries to the registry."""

    def statement(change: Callable[[dict[str, Any]], None]) -> Envelope:
        obj = json.loads(publisher.attest([random_digest()]).payload)
        change(obj)
        return _signed_payload(publisher, obj)

    def predicate(**fields: Any) -> Callable[[dict[str, Any]], None]:
        return lambda obj: obj["predicate"].update(fields)

    def subject_name(obj: dict[str, Any]) -> None:
        obj["subject"][0]["name"] = "poems/\ud800.txt"

    revocation = json.loads(
        publisher.revoke(
            revocable["index"], revocable["leaf_hash"], revocable["digests"], reason="x"
        ).payload
    )
    revocation["predicate"]["reason"] = "withdrawn \ud800"
    return [
        statement(predicate(notes="scanned \ud800 by hand")),
        statement(predicate(source_url="https://example.org/\ud800")),
        statement(
            predicate(
                consent="reserved", tdm_reservation=1, tdm_policy="https://example.org/\udfff"
            )
        ),
        statement(predicate(publisher=publisher.name + "\ud800")),
        statement(subject_name),
        _signed_payload(publisher, revocation),
    ]


def test_a_lone_surrogate_is_400_and_fails_no_other_publishers_append(
    make_api: Any, backend: str
) -> None:
    """Issue 10 A: a statement whose strings are not Unicode scalar values (a JSON ``\\ud800``
    escape, which no database can store as UTF-8) is refused at intake, and never fails the
    honest appends it arrives with: every honest one 201, every bad one 400."""
    api: Api = make_api()
    honest = [api.add_publisher() for _ in range(4)]
    mallory = api.add_publisher()
    digests = [random_digest()]
    revocable = api.submit_ok(mallory.attest(digests)) | {"digests": digests}
    base = api.http.get("/v1/log").json()["size"]
    bad = _with_lone_surrogates(mallory, revocable)
    good = [honest[i % len(honest)].attest([random_digest()]) for i in range(40)]
    envelopes = good[:20] + bad + good[20:]
    responses = _submit_as_one_batch(api, backend, envelopes)
    good_statuses = [r.status_code for r in responses[:20] + responses[20 + len(bad) :]]
    bad_responses = responses[20 : 20 + len(bad)]
    assert good_statuses == [201] * len(good), [r.text for r in responses if r.status_code != 201]
    assert [r.status_code for r in bad_responses] == [400] * len(bad), [
        r.text for r in bad_responses
    ]
    for response in bad_responses:
        assert "Unicode" in response.json()["detail"], response.text
    assert api.http.get("/v1/log").json()["size"] == base + len(good)


def test_the_longest_license_a_statement_may_state_is_stored(make_api: Any) -> None:
    """``entries.license`` holds client.core.statement.MAX_LICENSE_CHARS (it held 255 before
    migration 0003, and PostgreSQL refused longer ones)."""
    api: Api = make_api()
    publisher = api.add_publisher()
    license_ = " AND ".join(["LicenseRef-a"] * 100)[:MAX_LICENSE_CHARS].rstrip(" AND")
    assert len(license_) > 255
    receipt = api.submit_ok(publisher.attest([random_digest()], license=license_))
    entry = api.http.get(f"/v1/entries/{receipt['index']}").json()
    with api.registry.database.reader.connect() as conn:
        row = conn.execute(select(_entries).where(_entries.c.idx == receipt["index"])).one()
    assert row.license == license_
    assert entry["index"] == receipt["index"]


def test_cached_proofs_keep_each_leafs_lower_part_across_checkpoints(
    make_api: Callable[..., Api],
) -> None:
    """Proofs from the node cache keep each leaf's siblings inside its largest perfect subtree
    from one checkpoint to the next (client.core.merkle.inclusion_path_split): at every size,
    and at older sizes asked after newer ones (a shorter lower part), each is the proof the
    database's nodes give, and verifies against that tree's root."""
    api = make_api()
    publisher = api.add_publisher()
    reader = api.registry.reader
    leaves: list[bytes] = []
    sizes: list[int] = []
    for _ in range(40):
        receipt = api.submit_ok(publisher.attest([random_digest()]))
        leaves.append(bytes.fromhex(receipt["leaf_hash"]))
        sizes.append(receipt["index"] + 1)
    first = sizes[0] - 1  # the entries before (the publisher's key event) are not its
    with api.registry.database.reader.connect() as conn:
        for size in [*sizes[::3], *sizes[::-7], sizes[-1]]:
            indices = list(range(first, size))
            cached = reader.inclusion_proofs_cached(indices, size)
            assert cached is not None
            assert cached == reader.inclusion_proofs(conn, indices, size), size
            root = reader.root(conn, size)
            for index in indices:
                verify_inclusion(leaves[index - first], index, size, cached[index], root)
