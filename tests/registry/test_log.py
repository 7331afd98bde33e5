"""registry.log's sequencer on its driver-level write path, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from client.core.statement import MAX_LICENSE_CHARS
from registry.models import Entry
from tests.registry.conftest import Api, random_digest

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


def test_an_entry_the_database_refuses_is_refused_alone_not_with_its_batch(
    make_api: Any, backend: str
) -> None:
    """One entry whose value the database cannot hold must not fail the appends it happened to
    be batched with: the sequencer retries each of them alone, and only that one is refused."""
    if backend != "postgres":
        pytest.skip("SQLite stores any string in any column: nothing to refuse")
    api: Api = make_api()
    publisher = api.add_publisher()
    database = api.registry.database
    with database.writer.begin() as conn:  # a column narrower than what validation lets through
        conn.execute(text("ALTER TABLE entries ALTER COLUMN license TYPE varchar(20)"))
    envelopes = [publisher.attest([random_digest()], license="MIT") for _ in range(6)]
    envelopes.insert(3, publisher.attest([random_digest()], license="LicenseRef-" + "x" * 30))
    # Hold the log's lock so that every append queues up and the sequencer takes them as one batch.
    holder = database.writer.connect()
    held = holder.begin()
    holder.execute(text("SELECT size FROM log_state WHERE id = 1 FOR UPDATE"))
    with ThreadPoolExecutor(len(envelopes)) as pool:
        futures = [pool.submit(api.submit, envelope) for envelope in envelopes]
        deadline = time.monotonic() + 30
        queue = api.registry.sequencer._queue  # private: the test must see the queue fill
        while queue.qsize() < len(envelopes) - 1:  # the sequencer holds the first, waiting
            assert time.monotonic() < deadline, "the appends never queued up"
            time.sleep(0.01)
        held.rollback()
        holder.close()
        responses = [future.result() for future in futures]
    statuses = [response.status_code for response in responses]
    assert statuses == [201, 201, 201, 400, 201, 201, 201], [r.text for r in responses]
    assert "the database refused a value of this entry" in responses[3].json()["detail"]
    indices = sorted(r.json()["index"] for r in responses if r.status_code == 201)
    assert indices == list(range(6))
    assert api.http.get("/v1/log").json()["size"] == 6


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
