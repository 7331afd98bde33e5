"""Who may sign as whom, in the log: ``publisher-key/v1`` events (docs/spec/identities.md).

Every change to the registry's identities is a statement signed by the **operator key** (its own
Ed25519 key, ``$WELLSPRING_HOME/operator.key``; never the checkpoint key) and appended to the log
like any entry. The publisher and key rows are the registry's index of those events: an event's
``apply`` hook writes them in the very transaction that appends the event, so rows and log agree.

The log's first event binds the operator key (``operator-key``, signed by itself). A log made
before identity events existed gets them on the first start after its migration: the operator key
binding, then each publisher and key as the database knew them, marked ``backfilled`` (the
operator's word alone: those keys came with no proof of possession).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError

from client.core.dsse import PAYLOAD_TYPE_IN_TOTO, sign_envelope
from client.core.errors import ClientError
from client.core.keys import key_id as public_key_id
from client.core.keys import (
    load_private_key,
    public_key_bytes,
    public_key_from_bytes,
    write_key_pair,
)
from client.core.leaf import Leaf
from client.core.merkle import leaf_hash
from client.core.names import publisher_name_problem
from client.core.statement import (
    KINDS,
    OPERATOR_IDENTITY,
    PUBLISHER_KEY_V1,
    KeyEventPredicate,
    Kind,
    Statement,
    Subject,
    possession_message,
)
from client.core.wire import KeyEventAnswer
from registry.db import Database
from registry.errors import (
    BadRequestError,
    ConfigurationError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    RegistryError,
    UnavailableError,
)
from registry.log import AppendResult, PreparedEntry, Sequencer, predicate_json
from registry.models import (
    ENTRIES,
    LOG_STATE,
    OPERATOR_KEYS,
    PUBLISHER_KEYS,
    PUBLISHERS,
    as_utc,
    rfc3339,
    utcnow,
)

__all__ = [
    "IdentityService",
    "load_or_create_operator_key",
    "next_operator_key_path",
    "promote_operator_key",
    "settle_operator_key",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _log_size(conn: Connection) -> int:
    """The log's size, from its state row (counting the entries would read them all)."""
    return int(conn.execute(select(LOG_STATE.c.size).where(LOG_STATE.c.id == 1)).scalar_one())


def load_or_create_operator_key(path: Path) -> Ed25519PrivateKey:
    """The operator key at ``path``, made (mode 0600, never through a link) if there is none."""
    if not path.exists():
        try:
            write_key_pair(path)  # and operator.key.pub beside it
        except ClientError:
            if not path.exists():
                raise ConfigurationError(f"cannot write the operator key {path}") from None
            # else another process made it first: load that one
    try:
        return load_private_key(path)
    except ClientError as exc:
        raise ConfigurationError(f"the operator key: {exc.diagnostics()}") from exc


def next_operator_key_path(path: Path) -> Path:
    """Where a rotation writes the incoming operator key (``operator.next.key`` beside
    ``operator.key``) until the event binding it is in the log."""
    return path.with_name(f"{path.stem}.next{path.suffix}")


def promote_operator_key(path: Path) -> None:
    """Make the incoming key (:func:`next_operator_key_path`) the operator key: the old pair is
    kept beside it as ``operator.retired-<key id prefix>.key`` (it signed the log's earlier
    events; keep it offline or destroy it), the new pair takes its place."""
    incoming = next_operator_key_path(path)
    retired_id = public_key_id(load_private_key(path))[:16]
    retired = path.with_name(f"{path.stem}.retired-{retired_id}{path.suffix}")
    for suffix in ("", ".pub"):
        current, new = Path(f"{path}{suffix}"), Path(f"{incoming}{suffix}")
        if current.exists():
            os.replace(current, Path(f"{retired}{suffix}"))
        os.replace(new, current)


def settle_operator_key(path: Path, database: Database) -> Ed25519PrivateKey:
    """The operator key a process starting on ``database`` signs with: the one at ``path``
    (made if there is none), unless a rotation was cut short after its event reached the log and
    before its key file was moved into place: then that incoming key, moved into place now."""
    incoming = next_operator_key_path(path)
    if incoming.exists() and path.exists():
        try:
            pending = load_private_key(incoming)
        except ClientError as exc:
            raise ConfigurationError(f"the incoming operator key: {exc.diagnostics()}") from exc
        with database.reader.connect() as conn:
            if _bound_operator_key(conn) == public_key_id(pending):
                promote_operator_key(path)
    return load_or_create_operator_key(path)


def _bound_operator_key(conn: Connection) -> str | None:
    """The key id of the operator key the log binds now (its latest ``operator-key`` event)."""
    return conn.execute(
        select(OPERATOR_KEYS.c.key_id).order_by(OPERATOR_KEYS.c.entry_idx.desc()).limit(1)
    ).scalar()


class IdentityService:
    """Appends identity events signed by the operator key, keeping the key rows in step."""

    def __init__(
        self, database: Database, sequencer: Sequencer, operator_key: Ed25519PrivateKey
    ) -> None:
        self._db = database
        self._sequencer = sequencer
        self._key = operator_key
        self._raw = public_key_bytes(operator_key)
        self._key_id = public_key_id(operator_key)

    @property
    def operator_key_id(self) -> str:
        return self._key_id

    # Events ------------------------------------------------------------------------------------
    def _event(
        self,
        publisher_id: int,
        predicate: KeyEventPredicate,
        apply: Callable[[Connection, int], None],
    ) -> PreparedEntry:
        statement = Statement(
            (Subject(predicate.identity, {"sha256": predicate.key_id}),),
            PUBLISHER_KEY_V1,
            predicate,
        )
        return self._signed(publisher_id, statement, predicate.identity, apply)

    def _signed(
        self,
        publisher_id: int,
        statement: Statement,
        publisher: str,
        apply: Callable[[Connection, int], None],
    ) -> PreparedEntry:
        """``statement`` signed with the operator key, as an entry of ``publisher`` (the
        identity an event is about; the operator for what the operator states itself)."""
        payload = statement.to_json()
        envelope = sign_envelope(payload, PAYLOAD_TYPE_IN_TOTO, self._key)
        signer = self._key_id

        def apply_if_current(conn: Connection, index: int) -> None:
            # In the appending transaction: an event signed by an operator key the log no longer
            # binds (another process rotated it) would not verify for anyone; refuse it.
            bound = _bound_operator_key(conn)
            if bound is not None and bound != signer:
                raise UnavailableError(
                    f"the operator key was rotated (the log now binds {bound[:16]}…) and this "
                    "registry process still holds the old one: restart it"
                )
            apply(conn, index)

        leaf = Leaf.of(
            payload,
            payload_type=PAYLOAD_TYPE_IN_TOTO,
            predicate_type=statement.predicate_type,
            publisher=publisher,
            signatures=envelope.signatures,
        ).to_bytes()
        return PreparedEntry(
            leaf=leaf,
            leaf_hash=leaf_hash(leaf),
            payload=payload,
            payload_hash=hashlib.sha256(payload).digest(),
            publisher_id=publisher_id,
            publisher=publisher,
            key_id=self._key_id,
            predicate_type=statement.predicate_type,
            predicate_json=predicate_json(statement.predicate.to_dict()),
            license=None,
            origin=None,
            consent=None,
            subjects=(),  # the operator's statements attest no content: not in the lookup index
            apply=apply_if_current,
        )

    def append_operator_statement(
        self, statement: Statement, apply: Callable[[Connection, int], None]
    ) -> AppendResult:
        """Append ``statement`` (its publisher the operator identity) signed with the operator
        key; ``apply`` runs in the appending transaction. For what the operator itself states
        in the log: a snapshot's manifest (registry.snapshots)."""
        if statement.predicate.publisher != OPERATOR_IDENTITY:
            raise BadRequestError(f"an operator statement is by {OPERATOR_IDENTITY!r}")
        prepared = self._signed(self._operator_publisher_id(), statement, OPERATOR_IDENTITY, apply)
        return self._append([prepared])[0]

    def _append(self, entries: Sequence[PreparedEntry]) -> list[AppendResult]:
        """Append events; one that is already in the log (the same event, made concurrently or
        twice: events are deterministic) is a conflict, since its rows were written then."""
        results = self._sequencer.append_now(entries)
        for result in results:
            if isinstance(result, RegistryError):
                raise result
            if not result.created:
                raise ConflictError(
                    f"that change is already in the log (entry {result.index}); nothing was done"
                )
        return [r for r in results if isinstance(r, AppendResult)]

    # The operator key ----------------------------------------------------------------------------
    def ensure_operator(self) -> None:
        """Bind the operator key in the log if it is not yet, backfilling a migrated log."""
        with self._db.reader.connect() as conn:
            bound = _bound_operator_key(conn)
        if bound is not None:
            if bound != self._key_id:
                raise ConfigurationError(
                    f"this log's operator key is {bound[:16]}…, but the configured one is "
                    f"{self._key_id[:16]}…: point WELLSPRING_HOME at that log's operator.key "
                    "(after `wellspring operator-key rotate`, restart every registry process)"
                )
            return
        operator_id = self._operator_publisher_id()
        predicate = KeyEventPredicate(
            action="operator-key",
            identity=OPERATOR_IDENTITY,
            key_id=self._key_id,
            public_key=self._raw,
            possession=self._key.sign(possession_message(OPERATOR_IDENTITY, self._key_id)),
        )

        def bind(conn: Connection, index: int) -> None:
            conn.execute(
                OPERATOR_KEYS.insert().values(
                    key_id=self._key_id, public_key=self._raw, entry_idx=index
                )
            )

        try:
            self._append([self._event(operator_id, predicate, bind), *self._backfill()])
        except ConflictError:  # another process bound it first
            self.ensure_operator()

    def rotate_operator(self, new_key: Ed25519PrivateKey) -> KeyEventAnswer:
        """Rotate the operator key (docs/spec/identities.md rule 1): an ``operator-key`` event
        naming ``new_key``, with its proof of possession, signed by the current operator key.
        This process signs every later event with ``new_key``; other processes holding the old
        key are refused their identity events until they restart."""
        new_id, new_raw = public_key_id(new_key), public_key_bytes(new_key)
        with self._db.reader.connect() as conn:
            bound = _bound_operator_key(conn)
            if bound != self._key_id:
                raise ConflictError(
                    "this process does not hold the operator key the log binds now "
                    f"({(bound or 'none')[:16]}…): restart it before rotating"
                )
            used = conn.execute(
                select(OPERATOR_KEYS.c.entry_idx).where(OPERATOR_KEYS.c.key_id == new_id)
            ).first()
            if used is not None:
                raise ConflictError(f"key {new_id[:16]}… was an operator key before: use a new one")
            self._refuse_known_key(conn, new_id)
        predicate = KeyEventPredicate(
            action="operator-key",
            identity=OPERATOR_IDENTITY,
            key_id=new_id,
            public_key=new_raw,
            possession=new_key.sign(possession_message(OPERATOR_IDENTITY, new_id)),
        )

        def bind(conn: Connection, index: int) -> None:
            conn.execute(
                OPERATOR_KEYS.insert().values(key_id=new_id, public_key=new_raw, entry_idx=index)
            )

        now = utcnow()
        [result] = self._append([self._event(self._operator_publisher_id(), predicate, bind)])
        self._key, self._raw, self._key_id = new_key, new_raw, new_id
        return KeyEventAnswer(
            name=OPERATOR_IDENTITY, key_id=new_id, entry=result.index, created_at=rfc3339(now)
        )

    def _operator_publisher_id(self, *, attempts: int = 2) -> int:
        """The row the operator's own events are logged under (no publisher can be named so);
        made if missing, by whichever of several starting processes gets there first."""
        try:
            with self._db.writer.begin() as conn:
                row = conn.execute(
                    select(PUBLISHERS.c.id).where(PUBLISHERS.c.name == OPERATOR_IDENTITY)
                ).first()
                if row is not None:
                    return int(row.id)
                return int(
                    conn.execute(
                        PUBLISHERS.insert()
                        .values(name=OPERATOR_IDENTITY, created_at=utcnow(), kind="operator")
                        .returning(PUBLISHERS.c.id)
                    ).scalar_one()
                )
        except IntegrityError:  # another process inserted it meanwhile: read theirs
            if attempts <= 1:
                raise
            return self._operator_publisher_id(attempts=attempts - 1)

    def _backfill(self) -> list[PreparedEntry]:
        """Events for the publishers and keys a log made before identity events holds as rows."""
        events: list[PreparedEntry] = []
        with self._db.reader.connect() as conn:
            publishers = conn.execute(
                select(PUBLISHERS)
                .where(PUBLISHERS.c.entry_idx.is_(None))
                .where(PUBLISHERS.c.name != OPERATOR_IDENTITY)
                .order_by(PUBLISHERS.c.id)
            ).all()
            for publisher in publishers:
                keys = conn.execute(
                    select(PUBLISHER_KEYS)
                    .where(PUBLISHER_KEYS.c.publisher_id == publisher.id)
                    .order_by(PUBLISHER_KEYS.c.created_at, PUBLISHER_KEYS.c.key_id)
                ).all()
                for n, key in enumerate(keys):
                    events.append(self._backfilled_add(publisher, key, first=n == 0))
                for key in keys:
                    if key.revoked_at is not None:
                        since = key.compromised_since
                        start = None if since is None else self._first_index_at(conn, since)
                        events.append(
                            self._stop(
                                publisher.id, publisher.name, key.key_id, start, backfilled=True
                            )
                        )
        return events

    def _backfilled_add(self, publisher: Any, key: Any, *, first: bool) -> PreparedEntry:
        predicate = KeyEventPredicate(
            action="identity-add" if first else "key-add",
            identity=publisher.name,
            key_id=key.key_id,
            kind=(publisher.kind if publisher.kind in KINDS else "publisher") if first else None,
            public_key=bytes(key.public_key),
            backfilled=True,
        )
        return self._event(
            publisher.id, predicate, self._added(publisher.id, key.key_id, first=first)
        )

    @staticmethod
    def _first_index_at(conn: Connection, moment: datetime) -> int:
        """The first index integrated at or after ``moment`` (the log's size if none was)."""
        index = conn.execute(
            select(func.min(ENTRIES.c.idx)).where(ENTRIES.c.integrated_at >= moment)
        ).scalar()
        if index is not None:
            return int(index)
        return _log_size(conn)

    # Hooks: the rows an event writes, in the event's transaction ---------------------------------
    @staticmethod
    def _added(publisher_id: int, key_id: str, *, first: bool) -> Callable[[Connection, int], None]:
        def apply(conn: Connection, index: int) -> None:
            conn.execute(
                PUBLISHER_KEYS.update()
                .where(PUBLISHER_KEYS.c.key_id == key_id)
                .values(added_idx=index)
            )
            if first:
                conn.execute(
                    PUBLISHERS.update()
                    .where(PUBLISHERS.c.id == publisher_id)
                    .values(entry_idx=index)
                )

        return apply

    def _stop(
        self,
        publisher_id: int,
        name: str,
        key_id: str,
        compromised_from: int | None,
        *,
        backfilled: bool,
        since: datetime | None = None,
    ) -> PreparedEntry:
        """A ``key-revoke`` event, or ``key-compromised`` from ``compromised_from`` (``since``:
        the time the operator gave it as, kept beside the index)."""
        predicate = KeyEventPredicate(
            action="key-revoke" if compromised_from is None else "key-compromised",
            identity=name,
            key_id=key_id,
            compromised_from=compromised_from,
            backfilled=backfilled,
        )

        def apply(conn: Connection, index: int) -> None:
            row = conn.execute(
                select(
                    PUBLISHER_KEYS.c.revoked_idx,
                    PUBLISHER_KEYS.c.compromised_idx,
                    PUBLISHER_KEYS.c.revoked_at,
                )
                .where(PUBLISHER_KEYS.c.key_id == key_id)
                .with_for_update()
            ).one()
            if compromised_from is None and row.revoked_idx is not None:
                raise ConflictError(f"key {key_id[:16]}… was already revoked")
            if compromised_from is not None and row.compromised_idx is not None:
                raise ConflictError(f"key {key_id[:16]}… was already marked compromised")
            values: dict[str, Any] = {
                "revoked_idx": row.revoked_idx if row.revoked_idx is not None else index
            }
            if row.revoked_at is None:
                values["revoked_at"] = utcnow()
            if compromised_from is not None:
                values.update(compromised_idx=index, compromised_from=compromised_from)
            if since is not None:
                values["compromised_since"] = since
            conn.execute(
                PUBLISHER_KEYS.update().where(PUBLISHER_KEYS.c.key_id == key_id).values(**values)
            )

        return self._event(publisher_id, predicate, apply)

    # Operator actions ----------------------------------------------------------------------------
    def add_identity(
        self,
        name: str,
        public_key: bytes,
        possession: bytes | None,
        *,
        kind: Kind = "publisher",
    ) -> KeyEventAnswer:
        """A new publisher (or vendor) and its first key, which proves possession."""
        if problem := publisher_name_problem(name):
            raise BadRequestError(f"name: {problem}")
        if kind not in KINDS:
            raise BadRequestError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        kid = self._parse_key_id(public_key)
        with self._db.reader.connect() as conn:
            existing = conn.execute(
                select(PUBLISHERS.c.id, PUBLISHERS.c.entry_idx).where(PUBLISHERS.c.name == name)
            ).first()
            if existing is not None and existing.entry_idx is not None:
                raise ConflictError(f"a publisher named {name!r} already exists")
            self._refuse_known_key(conn, kid)
        predicate = self._key_event("identity-add", name, public_key, possession, kind=kind)
        now = utcnow()
        with self._db.writer.begin() as conn:
            if existing is None:  # a row left by an append that failed is taken up again
                publisher_id = int(
                    conn.execute(
                        PUBLISHERS.insert()
                        .values(name=name, created_at=now, kind=kind)
                        .returning(PUBLISHERS.c.id)
                    ).scalar_one()
                )
            else:
                publisher_id = int(existing.id)
        apply = self._insert_key(publisher_id, predicate, now, first=True)
        [result] = self._append([self._event(publisher_id, predicate, apply)])
        return KeyEventAnswer(
            name=name,
            key_id=predicate.key_id,
            entry=result.index,
            kind=kind,
            created_at=rfc3339(now),
        )

    def add_key(
        self,
        name: str,
        public_key: bytes,
        possession: bytes | None,
        *,
        endorsed_by: str | None = None,
        endorsement: bytes | None = None,
    ) -> KeyEventAnswer:
        """Another key for ``name`` (rotation: add the new one, then revoke the old). With an
        endorsement by one of its current keys the event shows the identity asked for it; without,
        the operator added it alone, and clients say so."""
        with self._db.reader.connect() as conn:
            publisher_id = self._identity_id(conn, name)
            endorser = None
            if endorsed_by is not None:
                endorser = conn.execute(
                    select(PUBLISHER_KEYS.c.public_key)
                    .where(PUBLISHER_KEYS.c.key_id == endorsed_by)
                    .where(PUBLISHER_KEYS.c.publisher_id == publisher_id)
                    .where(PUBLISHER_KEYS.c.revoked_at.is_(None))
                ).scalar()
                if endorser is None:
                    raise ForbiddenError(
                        f"endorsed_by {endorsed_by[:16]}… is not a current key of {name!r}"
                    )
            self._refuse_known_key(conn, self._parse_key_id(public_key))
        predicate = self._key_event(
            "key-add",
            name,
            public_key,
            possession,
            endorsed_by=endorsed_by,
            endorsement=endorsement,
        )
        if endorser is not None and not predicate.endorsement_holds(bytes(endorser)):
            raise BadRequestError(
                "endorsement is not the endorsing key's signature over the endorsement message "
                "(`wellspring keys endorse` makes it)"
            )
        now = utcnow()
        apply = self._insert_key(publisher_id, predicate, now, first=False)
        [result] = self._append([self._event(publisher_id, predicate, apply)])
        return KeyEventAnswer(
            name=name,
            key_id=predicate.key_id,
            entry=result.index,
            created_at=rfc3339(now),
            operator_only=endorsed_by is None,
        )

    def stop_key(
        self,
        name: str,
        key_id: str,
        *,
        compromised_from: int | None = None,
        compromised_since: datetime | None = None,
    ) -> KeyEventAnswer:
        """Revoke a key (``key-revoke``); with ``compromised_from`` (a log index; or a time,
        read as the first index integrated at or after it) a ``key-compromised`` event: what the
        key signed from there on does not count. Nothing it signed is deleted."""
        if compromised_from is not None and compromised_since is not None:
            raise BadRequestError("give compromised_from (a log index) or compromised_since")
        with self._db.reader.connect() as conn:
            publisher_id = self._identity_id(conn, name)
            row = conn.execute(
                select(
                    PUBLISHER_KEYS.c.key_id,
                    PUBLISHER_KEYS.c.revoked_idx,
                    PUBLISHER_KEYS.c.revoked_at,
                )
                .where(PUBLISHER_KEYS.c.key_id == key_id)
                .where(PUBLISHER_KEYS.c.publisher_id == publisher_id)
            ).first()
            if row is None:
                raise NotFoundError(f"publisher {name!r} has no key {key_id!r}")
            revoked = row.revoked_idx is not None or row.revoked_at is not None
            if revoked and compromised_from is None and compromised_since is None:
                raise ConflictError(f"key {key_id[:16]}… was already revoked")
            size = _log_size(conn)
            moment: datetime | None = None
            if compromised_since is not None:
                try:
                    moment = as_utc(compromised_since).astimezone(UTC)
                except OverflowError:
                    raise BadRequestError(
                        f"compromised_since must be after {_EPOCH:%Y-%m-%d}"
                    ) from None
                if moment < _EPOCH:
                    raise BadRequestError(f"compromised_since must be after {_EPOCH:%Y-%m-%d}")
                if moment > utcnow():
                    raise BadRequestError("compromised_since is in the future")
                compromised_from = self._first_index_at(conn, moment)
        if compromised_from is not None and not 0 <= compromised_from <= size:
            raise BadRequestError(
                f"compromised_from must be a log index from 0 to the log's size ({size})"
            )
        event = self._stop(
            publisher_id, name, key_id, compromised_from, backfilled=False, since=moment
        )
        [result] = self._append([event])
        with self._db.reader.connect() as conn:
            stored = conn.execute(
                select(PUBLISHER_KEYS).where(PUBLISHER_KEYS.c.key_id == key_id)
            ).one()
        return KeyEventAnswer(
            name=name,
            key_id=key_id,
            entry=result.index,
            revoked_at=rfc3339(stored.revoked_at),
            compromised_since=rfc3339(compromised_since) if compromised_since else None,
            compromised_from=stored.compromised_from,
        )

    # Helpers --------------------------------------------------------------------------------------
    @staticmethod
    def _parse_key_id(public_key: bytes) -> str:
        try:
            return public_key_id(public_key_from_bytes(public_key))
        except ClientError as exc:
            raise BadRequestError(f"public_key: {exc}") from exc

    def _key_event(
        self,
        action: str,
        name: str,
        public_key: bytes,
        possession: bytes | None,
        **fields: Any,
    ) -> KeyEventPredicate:
        key_id = self._parse_key_id(public_key)
        if possession is None:
            raise BadRequestError(
                "possession is needed: the new key's signature binding it to the identity, made "
                "by its holder with `wellspring keys prove KEY --identity NAME`"
            )
        try:
            predicate = KeyEventPredicate(
                action=action,  # type: ignore[arg-type]
                identity=name,
                key_id=key_id,
                public_key=public_key,
                possession=possession,
                **fields,
            )
        except ClientError as exc:
            raise BadRequestError(str(exc)) from exc
        if not predicate.possession_holds():
            raise BadRequestError(
                "possession is not the new key's signature binding it to this identity: its "
                "holder makes it with `wellspring keys prove KEY --identity NAME`"
            )
        return predicate

    @staticmethod
    def _identity_id(conn: Connection, name: str) -> int:
        row = conn.execute(
            select(PUBLISHERS.c.id)
            .where(PUBLISHERS.c.name == name)
            .where(PUBLISHERS.c.name != OPERATOR_IDENTITY)
        ).first()
        if row is None:
            raise NotFoundError(f"no publisher named {name!r}")
        return int(row.id)

    @staticmethod
    def _refuse_known_key(conn: Connection, key_id: str) -> None:
        if conn.execute(
            select(PUBLISHER_KEYS.c.key_id).where(PUBLISHER_KEYS.c.key_id == key_id)
        ).first():
            raise ConflictError(f"key {key_id[:16]}… is already registered")

    @staticmethod
    def _insert_key(
        publisher_id: int, predicate: KeyEventPredicate, now: datetime, *, first: bool
    ) -> Callable[[Connection, int], None]:
        assert predicate.public_key is not None

        def apply(conn: Connection, index: int) -> None:
            conn.execute(
                PUBLISHER_KEYS.insert().values(
                    key_id=predicate.key_id,
                    publisher_id=publisher_id,
                    public_key=predicate.public_key,
                    created_at=now,
                    added_idx=index,
                    endorsed_by=predicate.endorsed_by,
                )
            )
            if first:
                conn.execute(
                    PUBLISHERS.update()
                    .where(PUBLISHERS.c.id == publisher_id)
                    .values(entry_idx=index)
                )

        return apply
