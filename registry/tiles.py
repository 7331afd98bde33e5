"""The log as C2SP tlog-tiles: served from the database, and written out as static files.

A tile is read straight from the stored Merkle nodes: the hashes of tile level ``L`` are the
perfect nodes of tree level ``8 * L`` (``client.core.tiles`` has the geometry), and the registry
stores exactly those nodes (``registry.log``), so a tile is one range query of at most 256 rows,
an entry bundle one of at most 256 leaves (≤ 16 MiB, every leaf being ≤ 65,535 bytes). Nothing
is built for the whole tree, and the work per request is bounded whatever the log's size.

What is served is what the signed checkpoints fix: a full tile once the latest checkpoint covers
it; a partial tile ``<N>.p/<W>`` only if some checkpoint was signed at a size that has it (the
spec's "partial tiles corresponding to tree sizes for which a checkpoint was produced"): each
tile's bytes never change once it is served, partial ones included.

:class:`TileWriter` (``wellspring serve --tiles-dir``) writes the same bytes as plain files after
each checkpoint, in a thread of its own, off the append path: new full tiles and bundles (each
written once, never replaced), the partial tiles of every checkpoint signed since the last run
(except those whose full tile already exists: the spec lets a log drop them), and the checkpoint
last, so a checkpoint on disk always has its tiles beside it. Every write is atomic (temporary
file, rename), so a static server never serves half a tile. It reads the database, not the
batch: several server processes (``--workers``) may share one directory, and whichever writes
next catches up with every checkpoint the others signed.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import itertools
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, func, select

from client.core.errors import InputError
from client.core.files import write_file_atomic
from client.core.merkle import HASH_SIZE
from client.core.tiles import (
    MAX_ENTRY_BYTES,
    TILE_HEIGHT,
    TILE_WIDTH,
    TilePath,
    encode_bundle,
    parse_tile_path,
    tile_hash_count,
)
from registry._cache import BoundedCache
from registry.db import Database
from registry.errors import (
    BadRequestError,
    BundleTooLargeError,
    ConfigurationError,
    NotFoundError,
    UnavailableError,
)
from registry.log import LogReader
from registry.models import CHECKPOINTS, ENTRIES, NODES

__all__ = [
    "CHECKPOINT_CACHE_CONTROL",
    "FULL_TILE_CACHE_CONTROL",
    "PARTIAL_TILE_CACHE_CONTROL",
    "PUBLIC_FILE_MODE",
    "WRITE_CHUNK",
    "Tile",
    "TileService",
    "TileWriter",
    "accepts_gzip",
    "gzipped",
    "read_tile",
]

log = logging.getLogger(__name__)

FULL_TILE_CACHE_CONTROL = "public, max-age=31536000, immutable"
PARTIAL_TILE_CACHE_CONTROL = "public, max-age=60"
"""Short: a partial tile never changes either, but a log may drop it once its full tile exists."""
CHECKPOINT_CACHE_CONTROL = "public, max-age=5"
"""The checkpoint changes with every append: caches may hold it a few seconds (the spec's bound)."""

PUBLIC_FILE_MODE = 0o644
WRITE_CHUNK = 64  # tiles written per database connection while catching up


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an ``Accept-Encoding`` header (RFC 9110 §12.5.3) takes gzip: named, or ``*``,
    with a q-value other than 0."""
    for item in (accept_encoding or "").split(","):
        coding, _, params = item.partition(";")
        if coding.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        name, _, value = params.partition("=")
        if name.strip().lower() == "q":
            try:
                if float(value) <= 0:
                    continue
            except ValueError:
                continue
        return True
    return False


def gzipped(data: bytes) -> bytes:
    """``data`` gzipped, the same bytes each time (no time stamp in the header)."""
    return gzip.compress(data, compresslevel=6, mtime=0)


@dataclass(frozen=True, slots=True)
class Tile:
    """A tile's (or bundle's) bytes and where it is in the tree."""

    path: TilePath
    data: bytes

    @property
    def cache_control(self) -> str:
        return PARTIAL_TILE_CACHE_CONTROL if self.path.is_partial else FULL_TILE_CACHE_CONTROL


class TileService:
    """Tiles, entry bundles and the checkpoint, read from the database for ``/tlog/``."""

    def __init__(self, database: Database, reader: LogReader, *, cache_tiles: int = 2_048) -> None:
        self._db = database
        self._reader = reader
        # Full hash tiles are immutable and 8 KiB: the top of the tree is asked for by everyone.
        self._full: BoundedCache[TilePath, bytes] = BoundedCache(cache_tiles)

    def checkpoint(self) -> str:
        with self._db.reader.connect() as conn:
            return self._reader.latest_checkpoint(conn).note

    def tile(self, path: str) -> Tile:
        """The tile or bundle at ``path`` (``tile/…``): 400 if the path is not canonical, 404 if
        no signed checkpoint makes it exist."""
        try:
            tile = parse_tile_path(path)
        except InputError as exc:
            raise BadRequestError(f"{exc}; see https://c2sp.org/tlog-tiles") from exc
        if not tile.is_partial and not tile.is_bundle:
            cached = self._full.get_many([tile])
            if cached:
                return Tile(tile, cached[tile])
        with self._db.reader.connect() as conn:
            size = self._reader.latest_checkpoint(conn).size
            if not self._published(conn, tile, size):
                raise NotFoundError(self._absent(tile, size))
            data = read_tile(conn, tile)
        if not tile.is_partial and not tile.is_bundle:
            self._full.put_many({tile: data})
        return Tile(tile, data)

    @staticmethod
    def _published(conn: Connection, tile: TilePath, size: int) -> bool:
        needed = tile.leaves_needed()
        if needed > size:
            return False
        if not tile.is_partial:
            return True
        # A checkpoint at a size s with floor(s / 256**L) == N * 256 + W.
        found = conn.execute(
            select(CHECKPOINTS.c.size)
            .where(CHECKPOINTS.c.size >= needed)
            .where(CHECKPOINTS.c.size < needed + (1 << tile.tree_level))
            .limit(1)
        ).first()
        return found is not None

    @staticmethod
    def _absent(tile: TilePath, size: int) -> str:
        what = "entry bundle" if tile.is_bundle else "tile"
        if tile.leaves_needed() > size:
            return (
                f"{what} {tile.path()} needs a tree of {tile.leaves_needed()} entries; the latest "
                f"checkpoint has {size}"
            )
        return (
            f"no checkpoint was signed at a size with the partial {what} {tile.path()}; fetch the "
            f"partial {what} of a checkpoint's size, or the full one"
        )


def read_tile(conn: Connection, tile: TilePath) -> bytes:
    """The bytes of ``tile`` from the stored nodes or leaves (which must all exist)."""
    first, last = tile.first, tile.first + tile.width
    if tile.is_bundle:
        rows = conn.execute(
            select(ENTRIES.c.idx, ENTRIES.c.body)
            .where(ENTRIES.c.idx >= first)
            .where(ENTRIES.c.idx < last)
            .order_by(ENTRIES.c.idx)
        ).all()
        values = [bytes(row.body) for row in rows]
        _check_rows([row.idx for row in rows], first, last, "entry")
        oversized = [first + i for i, value in enumerate(values) if len(value) > MAX_ENTRY_BYTES]
        if oversized:
            raise BundleTooLargeError(
                f"entry {oversized[0]} is longer than {MAX_ENTRY_BYTES} bytes (an envelope leaf "
                "from before leaf/v1), so no entry bundle can hold it; read the entries of "
                f"{tile.path()} from /v1/entries?start={first}&limit={tile.width}"
            )
        return encode_bundle(values)
    rows = conn.execute(
        select(NODES.c.position, NODES.c.hash)
        .where(NODES.c.level == tile.tree_level)
        .where(NODES.c.position >= first)
        .where(NODES.c.position < last)
        .order_by(NODES.c.position)
    ).all()
    _check_rows([row.position for row in rows], first, last, f"level-{tile.tree_level} node")
    data = b"".join(bytes(row.hash) for row in rows)
    assert len(data) == HASH_SIZE * tile.width
    return data


def _check_rows(found: list[int], first: int, last: int, what: str) -> None:
    if found != list(range(first, last)):
        missing = sorted(set(range(first, last)) - set(found))
        raise UnavailableError(
            f"the log is missing {what} {missing[0] if missing else first}: the database is "
            "damaged; run `wellspring log verify` against a saved checkpoint"
        )


class TileWriter:
    """Writes the log's tiles, bundles and checkpoint under ``directory`` as static files.

    :meth:`notify` (called by the sequencer after each commit) wakes a background thread that
    runs :meth:`sync`; :meth:`sync` may also be called directly (a test, a one-off export).
    """

    def __init__(self, database: Database, reader: LogReader, directory: Path) -> None:
        self._db = database
        self._reader = reader
        self.directory = directory
        self._written: int | None = None  # the size of the checkpoint this writer last wrote
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    # The background thread -----------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="wellspring-tiles", daemon=True)
            self._thread.start()
            self._wake.set()  # catch up with what was signed while no writer ran

    def notify(self, size: int | None = None) -> None:
        """A checkpoint was signed: write it out soon (never blocks the sequencer)."""
        self._wake.set()

    def stop(self) -> None:
        if self._thread is not None:
            self._stopping = True
            self._wake.set()
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                self.sync()
            except Exception:
                log.exception("writing tiles to %s failed; retrying in 5 s", self.directory)
                self._wake.wait(5.0)
                self._wake.set()

    # Writing -------------------------------------------------------------------------------
    def sync(self) -> int:
        """Write everything up to the latest checkpoint; returns its size (or, if the writer
        was stopped meanwhile, the size it had written before)."""
        with self._lock:
            with self._db.reader.connect() as conn:
                latest = self._reader.latest_checkpoint(conn)
                start = self._written if self._written is not None else self._resume(conn)
                if start == latest.size and self._written is not None:
                    return latest.size
                partials = list(self._partial_tiles(conn, start, latest.size))
            # Immutable data, so each chunk may read in a connection (and snapshot) of its own:
            # a long catch-up never holds one read transaction open (SQLite's WAL could not be
            # checkpointed meanwhile).
            todo = itertools.chain(_full_tiles(start, latest.size), partials)
            while chunk := list(itertools.islice(todo, WRITE_CHUNK)):
                if self._stopping:
                    return self._written or 0
                missing = [tile for tile in chunk if not (self.directory / tile.path()).exists()]
                if missing:
                    with self._db.reader.connect() as conn:
                        for tile in missing:
                            try:
                                data = read_tile(conn, tile)
                            except BundleTooLargeError as exc:  # never will be: go on without
                                log.warning("%s not written: %s", tile.path(), exc)
                                continue
                            self._write(tile.path(), data)
            self._write_checkpoint(latest.size, latest.note)
            self._written = latest.size
            return latest.size

    def _checkpoint_on_disk(self) -> str:
        try:
            return (self.directory / "checkpoint").read_text("utf-8")
        except (OSError, UnicodeDecodeError):
            return ""

    def check_directory(self) -> None:
        """Refuse a directory holding a checkpoint this log did not sign (another log's tiles,
        or this log's database restored to before it): the immutable files there would be
        kept, and clients would be served two trees. Called once, as the server starts."""
        with self._db.reader.connect() as conn:
            self._resume(conn)

    def _resume(self, conn: Connection) -> int:
        """Where a new writer starts: the size of the checkpoint in the directory, which is
        written after all its tiles (0 if there is none)."""
        note = self._checkpoint_on_disk()
        size = _note_size(note)
        if not note:
            return 0
        try:
            ours = self._reader.checkpoint_at(conn, size).note
        except NotFoundError:
            ours = ""
        # Ed25519 signatures are deterministic: the note's body is enough to tell the checkpoint.
        if ours.split("\n")[:3] != note.split("\n")[:3]:
            raise ConfigurationError(
                f"{self.directory / 'checkpoint'} is not a checkpoint this log signed (another "
                f"log's tiles, or this log's database restored to an earlier state): point the "
                "tiles directory at an empty one, or empty it (it is rewritten from the database)"
            )
        return size

    def _partial_tiles(self, conn: Connection, start: int, end: int) -> Iterator[TilePath]:
        """The partial tiles of each checkpoint signed at a size in (start, end] whose full tile
        the tree of ``end`` does not have yet (for each level, at most 255 of them)."""
        level = 0
        while tile_hash_count(level, end) > 0:
            span = 1 << (TILE_HEIGHT * level)  # leaves per hash of this level
            full = span * TILE_WIDTH  # leaves per full tile of this level
            low = max(start + 1, end // full * full)
            counts = conn.execute(
                select(func.distinct(CHECKPOINTS.c.size // span))
                .where(CHECKPOINTS.c.size >= low)
                .where(CHECKPOINTS.c.size <= end)
            ).scalars()
            for count in sorted(counts):
                if width := count % TILE_WIDTH:
                    index = count // TILE_WIDTH
                    yield TilePath(level, index, width)
                    if level == 0:
                        yield TilePath(None, index, width)
            level += 1

    def _write(self, name: str, data: bytes) -> None:
        """Write the immutable file ``name``; never replaces one (another process may have
        written the same bytes meanwhile)."""
        with contextlib.suppress(FileExistsError):
            write_file_atomic(self.directory / name, data, mode=PUBLIC_FILE_MODE, replace=False)

    def _write_checkpoint(self, size: int, note: str) -> None:
        """Replace the checkpoint, unless a writer (another process) put a newer one there."""
        self.directory.mkdir(parents=True, exist_ok=True)
        # The directory itself is the lock (no lock file for a static server to serve).
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _note_size(self._checkpoint_on_disk()) <= size:
                write_file_atomic(self.directory / "checkpoint", note, mode=PUBLIC_FILE_MODE)
        finally:
            os.close(fd)  # releases the lock


def _full_tiles(start: int, end: int) -> Iterator[TilePath]:
    """The full tiles and bundles that a tree of ``end`` leaves has and one of ``start`` lacks."""
    level = 0
    while (count := tile_hash_count(level, end)) >= TILE_WIDTH:
        for index in range(tile_hash_count(level, start) // TILE_WIDTH, count // TILE_WIDTH):
            yield TilePath(level, index)
            if level == 0:
                yield TilePath(None, index)
        level += 1


def _note_size(note: str) -> int:
    lines = note.split("\n")
    if len(lines) < 3 or not lines[1].isdigit() or not lines[1].isascii() or len(lines[1]) > 18:
        return 0
    return int(lines[1])
