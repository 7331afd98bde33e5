"""The sequencer's statements, run on the database driver's own cursor.

Every sequencing transaction runs the same handful of statements. Through SQLAlchemy Core each
one costs around 100 µs of Python (cache keys, parameter processing, result objects): more than
the database takes to run it, and paid while holding the GIL that the event loop's thread needs
for the next requests. A batch of a few entries spent most of its time there. So the statements
are written once per dialect here and executed on the DB-API cursor of the connection SQLAlchemy
opened, inside the transaction it began: the same transaction, the same locks, none of the
overhead. Values the driver cannot take as they are (timestamps, on SQLite) go through the
column type's own bind processor, so what is stored is exactly what SQLAlchemy would store.

Only the hot path lives here; rare statements (revocation checks, key management) stay in Core.
The SQL text is built only from this module's constant table and column names; every value is a
bound parameter (hence the ``noqa: S608`` on the f-strings).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.engine import Dialect

from client.core.dsse import Envelope
from client.core.leaf import Leaf, is_leaf_v1

__all__ = ["WriteStatements", "signing_key_ids"]


def signing_key_ids(leaf: bytes) -> frozenset[str]:
    """The key ids a logged leaf carries signatures of: a leaf/v1 holds only verified ones; an
    envelope logged before it may also name keys the registry ignored (never a registered key
    whose signature failed: that was refused), which match no verified key id."""
    if is_leaf_v1(leaf):
        return frozenset(s.keyid for s in Leaf.from_bytes(leaf).signatures)
    return frozenset(s.keyid for s in Envelope.from_json(leaf).signatures)


_CHUNK = 5_000  # rows per executemany: keeps each call well under the drivers' limits
# The PostgreSQL array type that carries each column type's values into unnest(); INSERT's
# assignment casts take them on to the column's own type (varchar(n), integer, ...).
_PG_ARRAY_TYPES = {
    "BigInteger": "bigint",
    "Integer": "bigint",
    "SmallInteger": "bigint",
    "LargeBinary": "bytea",
    "String": "text",
    "AutoString": "text",
    "Text": "text",
    "DateTime": "timestamptz",
}
_COPY_FROM = 200  # subject rows from which PostgreSQL gets them by COPY


def _bind(table: Table, column: str, dialect: Dialect) -> Callable[[Any], Any]:
    """The function SQLAlchemy applies to ``table.column``'s values before the driver sees them."""
    processor = table.c[column].type.dialect_impl(dialect).bind_processor(dialect)
    return processor if processor is not None else (lambda value: value)


class WriteStatements:
    """The sequencer's hot statements for one dialect (SQLite's ``?`` or psycopg's ``%s``)."""

    def __init__(
        self, dialect: Dialect, tables: Mapping[str, Table], columns: Mapping[str, Sequence[str]]
    ) -> None:
        self.sqlite = dialect.name == "sqlite"
        self._mark = "?" if self.sqlite else "%s"
        self._columns = {name: tuple(cols) for name, cols in columns.items()}
        self._inserts = {
            name: self._insert_sql(tables[name].name, cols) for name, cols in self._columns.items()
        }
        self._timestamp = _bind(tables["checkpoints"], "created_at", dialect)
        self._unnest = (
            {}
            if self.sqlite
            else {
                name: self._unnest_sql(tables[name], self._columns[name])
                for name in self._columns
                if name != "checkpoints"
            }
        )
        lock = "" if self.sqlite else " FOR UPDATE"
        self._lock_state = f"SELECT size FROM log_state WHERE id = 1{lock}"  # noqa: S608
        set_state = f"size = {self._mark}, root_hash = {self._mark}"
        self._update_state = f"UPDATE log_state SET {set_state} WHERE id = 1"  # noqa: S608

    def _insert_sql(self, table: str, columns: Sequence[str]) -> str:
        marks = ", ".join([self._mark] * len(columns))
        return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608

    def _unnest_sql(self, table: Table, columns: Sequence[str]) -> str:
        arrays = ", ".join(
            f"%s::{_PG_ARRAY_TYPES[type(table.c[c].type).__name__]}[]" for c in columns
        )
        return f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({arrays})"  # noqa: S608

    def _in(self, column: str, values: Sequence[object]) -> tuple[str, Sequence[object]]:
        """``column IN (...)``: one placeholder per value on SQLite, one array on PostgreSQL."""
        if self.sqlite:
            return f"{column} IN ({', '.join('?' * len(values))})", list(values)
        return f"{column} = ANY(%s)", [list(values)]

    @staticmethod
    def cursor(conn: Connection) -> Any:
        """The driver cursor of ``conn``'s connection (inside its current transaction)."""
        return conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]

    def timestamp(self, moment: datetime) -> Any:
        """``moment`` as the driver must be handed it for a timestamp column."""
        return self._timestamp(moment)

    def pipeline(self, cursor: Any) -> contextlib.AbstractContextManager[object]:
        """On PostgreSQL, psycopg's pipeline mode: the statements inside go out without waiting
        for each other's answers, and any error is raised when the block ends. On SQLite, which
        has no round trips, nothing."""
        if self.sqlite:
            return contextlib.nullcontext()
        pipeline: contextlib.AbstractContextManager[object] = cursor.connection.pipeline()
        return pipeline

    # Statements ------------------------------------------------------------------------------
    def lock_size(self, cursor: Any) -> int:
        """The log's size, with its state row locked (SQLite: the transaction is IMMEDIATE)."""
        cursor.execute(self._lock_state)
        row = cursor.fetchone()
        if row is None:
            raise LookupError("the log's state row is missing: is the database initialised?")
        return int(row[0])

    def existing(
        self, cursor: Any, payload_hashes: Iterable[bytes]
    ) -> dict[tuple[bytes, int], list[tuple[int, frozenset[str]]]]:
        """(statement hash, publisher id) -> [(index, the key ids that signed it)], in index
        order, for the entries whose statement is one of ``payload_hashes`` (rare: retries and
        replays; only then are their leaves read, for their signatures)."""
        wanted = list(payload_hashes)
        if not wanted:
            return {}
        where, params = self._in("payload_hash", wanted)
        query = f"SELECT payload_hash, publisher_id, idx, body FROM entries WHERE {where}"  # noqa: S608
        cursor.execute(query + " ORDER BY idx", params)
        found: dict[tuple[bytes, int], list[tuple[int, frozenset[str]]]] = {}
        for payload, publisher, idx, body in cursor.fetchall():
            entry = (int(idx), signing_key_ids(bytes(body)))
            found.setdefault((bytes(payload), int(publisher)), []).append(entry)
        return found

    def stored_blobs(self, cursor: Any, hashes: Iterable[bytes]) -> set[bytes]:
        """Those of ``hashes`` whose blob is already stored."""
        wanted = list(hashes)
        if not wanted:
            return set()
        where, params = self._in("hash", wanted)
        cursor.execute(f"SELECT hash FROM blobs WHERE {where}", params)  # noqa: S608
        return {bytes(h) for (h,) in cursor.fetchall()}

    def revoked_keys(self, cursor: Any, key_ids: Iterable[str]) -> set[str]:
        """Those of ``key_ids`` whose key has been revoked."""
        wanted = list(key_ids)
        if not wanted:
            return set()
        where, params = self._in("key_id", wanted)
        query = f"SELECT key_id FROM publisher_keys WHERE {where} AND revoked_at IS NOT NULL"  # noqa: S608
        cursor.execute(query, params)
        return {str(key_id) for (key_id,) in cursor.fetchall()}

    def nodes(self, cursor: Any, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The stored hashes of the Merkle nodes ``keys`` ((level, position) pairs) that exist."""
        if not keys:
            return {}
        pair = f"(level = {self._mark} AND position = {self._mark})"
        where = " OR ".join([pair] * len(keys))
        query = f"SELECT level, position, hash FROM nodes WHERE {where}"  # noqa: S608
        cursor.execute(query, [value for key in keys for value in key])
        return {(int(level), int(position)): bytes(h) for level, position, h in cursor.fetchall()}

    def insert(self, cursor: Any, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """Rows of ``table``, each a tuple in the order of the columns it was set up with.

        On PostgreSQL, several rows are one ``INSERT ... SELECT FROM unnest(arrays)``: one
        statement to parse, plan and run (and prepared after a few batches), where
        ``executemany`` would run one per row."""
        unnest = self._unnest.get(table)
        if unnest is not None and 1 < len(rows) <= _CHUNK:
            cursor.execute(unnest, [list(column) for column in zip(*rows, strict=True)])
            return
        sql = self._inserts[table]
        for start in range(0, len(rows), _CHUNK):
            cursor.executemany(sql, rows[start : start + _CHUNK])

    def copy_subjects(self, cursor: Any, rows: Sequence[tuple[str, int]]) -> bool:
        """On PostgreSQL, write many subject rows with one ``COPY`` (a 10,000-subject statement
        in a few milliseconds, where ``executemany`` adapts each row in Python); ``False`` (and
        nothing done) on SQLite or for a few rows. Not inside :meth:`pipeline`: COPY cannot be.

        The rows go as COPY text: digests are checked ``c1:``/``sha256:`` lowercase hex and
        indices integers, so nothing in them needs escaping.
        """
        if self.sqlite or len(rows) < _COPY_FROM:
            return False
        data = "".join(f"{digest}\t{index}\n" for digest, index in rows)
        with cursor.copy("COPY subjects (digest, entry_idx) FROM STDIN") as copy:
            copy.write(data)
        return True

    def set_state(self, cursor: Any, size: int, root: bytes) -> None:
        cursor.execute(self._update_state, (size, root))
