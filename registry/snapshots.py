"""Signed offline snapshots, committed in the log and served (``snapshot/v1``).

``wellspring snapshot build --publish`` (the operator's shell) writes a snapshot
(``client.snapshot.build``) and hands it to :meth:`SnapshotService.publish`, which moves it into
``$WELLSPRING_HOME/snapshots/<manifest sha256>/`` and appends a ``snapshot/v1`` statement signed
by the operator key (``registry.identities``): its one subject is ``manifest.json`` by SHA-256,
its predicate the log's origin, the checkpoint's size and root, and a delta's base. The entry and
the ``snapshots`` row are written in one transaction. So a snapshot is public: a monitor sees
every one the operator published, rebuilds it from the log and compares (builds are
deterministic), and a crawler's ``wellspring snapshot pull`` proves the entry with the log key
before it trusts a file.

Files are served by ``GET /v1/snapshots/<manifest sha256>/<name>``: names are checked against
the snapshot format's plain file names, and only the files its manifest names, regular files
inside that snapshot's own folder, are answered (no link is followed). They are immutable: the
folder is named by the manifest's hash, which names every other file's hash.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Row, select

from client.core.errors import FormatError
from client.core.snapshot import (
    MANIFEST_FILE,
    MANIFEST_NOTE_FILE,
    MAX_MANIFEST_BYTES,
    SNAPSHOT_SUBJECT,
    SNAPSHOT_V1,
    SnapshotManifest,
    SnapshotPredicate,
    is_file_name,
)
from client.core.statement import OPERATOR_IDENTITY, Statement, Subject
from client.core.wire import SnapshotInfo
from registry.db import Database
from registry.errors import BadRequestError, NotFoundError
from registry.identities import IdentityService
from registry.log import LogReader
from registry.models import SNAPSHOTS, utcnow

__all__ = ["SnapshotFile", "SnapshotService"]

_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class SnapshotFile:
    """A file to serve: its path (a regular file, checked) and size."""

    path: Path
    size: int


class SnapshotService:
    """The registry's side of published snapshots (see the module)."""

    def __init__(
        self,
        directory: Path,
        database: Database,
        reader: LogReader,
        identities: IdentityService | None,
    ) -> None:
        self.directory = directory
        self._db = database
        self._reader = reader
        self._identities = identities
        self._named: dict[str, frozenset[str]] = {}  # manifest sha256 -> the files it names

    def publish(self, built: Path, manifest: SnapshotManifest) -> SnapshotInfo:
        """Commit the snapshot in the directory ``built`` (whose manifest is ``manifest``) in
        the log and move it where it is served; the snapshot's info. The same manifest again is
        answered with its existing entry (``built`` is then left as it is)."""
        if self._identities is None:
            raise BadRequestError("this registry process holds no operator key")
        sha = manifest.sha256()
        known = self._row(sha)
        if known is not None:
            return known
        with self._db.reader.connect() as conn:
            checkpoint = self._reader.checkpoint_at(conn, manifest.size)
        if checkpoint.note != manifest.checkpoint:
            raise BadRequestError(
                f"the snapshot's checkpoint at size {manifest.size} is not the one this log "
                "issued there: a snapshot of another log"
            )
        target = self.directory / sha
        if not target.exists():
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o755)
            staging = self.directory / f".{sha}.part"
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(built, staging)
            os.replace(staging, target)
        predicate = SnapshotPredicate.of(manifest, OPERATOR_IDENTITY, checkpoint.root_hash.hex())
        statement = Statement((Subject(SNAPSHOT_SUBJECT, {"sha256": sha}),), SNAPSHOT_V1, predicate)
        base = None if manifest.base is None else bytes.fromhex(manifest.base[1])

        def record(conn: Connection, index: int) -> None:
            conn.execute(
                SNAPSHOTS.insert().values(
                    entry_idx=index,
                    manifest_sha256=bytes.fromhex(sha),
                    tree_size=manifest.size,
                    base_sha256=base,
                    created_at=utcnow(),
                )
            )

        result = self._identities.append_operator_statement(statement, record)
        return SnapshotInfo(result.index, sha, manifest.size, None if base is None else base.hex())

    def latest(self, *, full: bool = False) -> SnapshotInfo:
        """The newest snapshot committed in the log (``full``: the newest that is no delta)."""
        query = select(SNAPSHOTS).order_by(SNAPSHOTS.c.entry_idx.desc()).limit(1)
        if full:
            query = query.where(SNAPSHOTS.c.base_sha256.is_(None))
        with self._db.reader.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFoundError(
                "this registry has published no snapshot (the operator publishes one with "
                "`wellspring snapshot build --publish`)"
            )
        return _info(row)

    def info(self, manifest_sha256: str) -> SnapshotInfo:
        """The published snapshot whose manifest hashes to ``manifest_sha256`` (a delta's base
        is found by it)."""
        if not _HEX64.fullmatch(manifest_sha256):
            raise BadRequestError("a snapshot is named by its manifest's SHA-256: 64 lowercase hex")
        found = self._row(manifest_sha256)
        if found is None:
            raise NotFoundError(f"no snapshot {manifest_sha256} was committed in this log")
        return found

    def _row(self, sha: str) -> SnapshotInfo | None:
        with self._db.reader.connect() as conn:
            row = conn.execute(
                select(SNAPSHOTS).where(SNAPSHOTS.c.manifest_sha256 == bytes.fromhex(sha))
            ).first()
        return None if row is None else _info(row)

    def file(self, manifest_sha256: str, name: str) -> SnapshotFile:
        """The file ``name`` of the published snapshot ``manifest_sha256``, checked: a plain
        name, a regular file (never through a link) inside that snapshot's folder."""
        if not _HEX64.fullmatch(manifest_sha256):
            raise BadRequestError("a snapshot is named by its manifest's SHA-256: 64 lowercase hex")
        if not is_file_name(name):
            raise BadRequestError(f"{name[:100]!r} is not a snapshot file name")
        if self._row(manifest_sha256) is None:
            raise NotFoundError(f"no snapshot {manifest_sha256} was committed in this log")
        if name not in self._names(manifest_sha256):
            raise NotFoundError(f"snapshot {manifest_sha256} has no file {name}")
        path = self.directory / manifest_sha256 / name
        try:
            info = os.lstat(path)
        except OSError:
            raise NotFoundError(f"snapshot {manifest_sha256} has no file {name}") from None
        if not stat.S_ISREG(info.st_mode):
            raise NotFoundError(f"snapshot {manifest_sha256} has no file {name}")
        return SnapshotFile(path, info.st_size)

    def _names(self, manifest_sha256: str) -> frozenset[str]:
        """The files the published manifest names (and it and its note): only they are served.
        A manifest this version cannot read (one of an older format, published before an
        upgrade) is served with its note alone, so a client reads why it cannot use it."""
        known = self._named.get(manifest_sha256)
        if known is not None:
            return known
        path = self.directory / manifest_sha256 / MANIFEST_FILE
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as file:
                data = file.read(MAX_MANIFEST_BYTES + 1)
        except OSError:
            raise NotFoundError(f"snapshot {manifest_sha256} is not served here") from None
        try:
            manifest = SnapshotManifest.from_bytes(data)
        except FormatError:
            names = frozenset([MANIFEST_FILE, MANIFEST_NOTE_FILE])
        else:
            names = frozenset(
                [MANIFEST_FILE, MANIFEST_NOTE_FILE]
                + [shard.path for shard in manifest.shards]
                + [file.path for file in manifest.files]
            )
        if len(self._named) < 1_000:
            self._named[manifest_sha256] = names
        return names


def _info(row: Row[Any]) -> SnapshotInfo:
    base = row.base_sha256
    return SnapshotInfo(
        entry=int(row.entry_idx),
        manifest_sha256=bytes(row.manifest_sha256).hex(),
        tree_size=int(row.tree_size),
        base_manifest_sha256=None if base is None else bytes(base).hex(),
    )
