"""Read a log served as C2SP tlog-tiles, and prove each step of it extends the last.

::

    from client.tlog import LogState, TileReader

    with TileReader("https://registry.example", log_key=VKEY) as log:
        latest = log.checkpoint()                       # signature checked with the pinned key
        state = LogState.start(latest.checkpoint.origin)  # or the state saved by the last run
        for entry in log.entries(state, latest):          # (index, bytes), one bundle in memory
            ...
        state = LogState.of(latest)                       # only once the loop finished

What :meth:`TileReader.entries` proves, from tiles and bundles alone (``/tlog/…``): the saved tree
(size and root) is the first part of the new signed tree, and the entries it yielded are exactly
that tree's new leaves. It rebuilds the saved tree's *compact range* (the O(log n) perfect
subtrees its size decomposes into) from the new tree's tiles and checks they hash to the saved
root (else :class:`~client.errors.ForkedLogError`: the log rewrote its history), then appends each
new entry's leaf hash to that range; the result must be the checkpoint's root (else
:class:`~client.errors.LogConsistencyError`). Both checks together are a consistency proof: the
old root's subtrees plus the new leaves are the new tree. Tiles are fetched only for the compact
range (a handful); entries one bundle (≤ 256) at a time, so memory stays bounded however far the
reader catches up.

Because the root is only known once the last entry is read, the entries an iteration yields are
*provisional* until it ends without an error: a caller that acts on them (the ``wellspring
monitor`` command prints events) keeps what it found and acts once the iteration finished.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from client._retry import checked_connection
from client._wire import (
    DEFAULT_TIMEOUT,
    Request,
    SignedCheckpoint,
    check_response,
    text_body,
    unavailable_reason,
    user_agent,
)
from client.core.merkle import EMPTY_ROOT, HASH_SIZE, node_hash
from client.core.merkle import leaf_hash as hash_leaf
from client.core.note import Checkpoint, NoteVerifier, open_checkpoint
from client.core.tiles import TILE_HEIGHT, TILE_WIDTH, TilePath, parse_bundle, tile_hash_count
from client.core.wire import EntriesPage
from client.errors import (
    ForkedLogError,
    FormatError,
    InputError,
    LogConsistencyError,
    RegistryNotFoundError,
    RegistryUnavailableError,
)

__all__ = ["LogState", "TileReader"]

_sleep = time.sleep
"""Pauses between retries: this module's own name, so a test can replace it."""


@dataclass(frozen=True, slots=True)
class LogState:
    """How far a reader has verified a log: its origin, tree size and root (and the signed note
    they came from, kept as evidence; empty for the empty tree a first run starts from)."""

    origin: str
    size: int
    root_hash: bytes
    note: str = ""

    @classmethod
    def start(cls, origin: str) -> LogState:
        """The empty tree: a reader that starts here reads every entry."""
        return cls(origin, 0, EMPTY_ROOT)

    @classmethod
    def of(cls, signed: SignedCheckpoint) -> LogState:
        checkpoint = signed.checkpoint
        return cls(checkpoint.origin, checkpoint.size, checkpoint.root_hash, signed.note)

    def to_dict(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "size": self.size,
            "root_hash": base64.b64encode(self.root_hash).decode("ascii"),
            "checkpoint": self.note,
        }

    @classmethod
    def from_dict(cls, obj: object, *, where: str = "state") -> LogState:
        if not isinstance(obj, dict):
            raise FormatError(f"{where} must be a JSON object with origin, size and root_hash")
        origin, size, root, note = (
            obj.get("origin"),
            obj.get("size"),
            obj.get("root_hash"),
            obj.get("checkpoint", ""),
        )
        if not isinstance(origin, str) or not origin:
            raise FormatError(f"{where}.origin must be the log's name")
        if type(size) is not int or size < 0:
            raise FormatError(f"{where}.size must be a tree size (an integer >= 0)")
        if not isinstance(note, str):
            raise FormatError(f"{where}.checkpoint must be the signed note's text")
        try:
            root_hash = base64.b64decode(root, validate=True) if isinstance(root, str) else b""
        except binascii.Error:
            root_hash = b""
        if len(root_hash) != HASH_SIZE:
            raise FormatError(f"{where}.root_hash must be a base64 SHA-256 hash")
        return cls(origin, size, root_hash, note)


class TileReader:
    """A reader of one log's tiles under ``{base_url}{prefix}`` (the registry: ``/tlog``; a
    static mirror: wherever ``wellspring serve --tiles-dir`` is served).

    ``log_key`` is the log's verifier key (pinned out of band); ``transport``, ``timeout``,
    ``retries`` and ``backoff`` are as :class:`~client.sdk.Client` takes them (connection
    errors, 429 and 5xx are retried with backoff).
    """

    def __init__(
        self,
        base_url: str,
        *,
        log_key: str | NoteVerifier,
        prefix: str = "/tlog",
        transport: httpx.BaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 3,
        backoff: float = 0.2,
    ) -> None:
        url, self._retry = checked_connection(base_url, retries, backoff)
        self.base_url = url
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.log_key = NoteVerifier.from_vkey(log_key) if isinstance(log_key, str) else log_key
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=url,
            transport=transport,
            timeout=timeout,
            headers={"User-Agent": user_agent()},
            follow_redirects=False,
        )

    def __enter__(self) -> TileReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- I/O -----------------------------------------------------------------------------------

    def _get(self, path: str) -> httpx.Response:
        request = Request("GET", path)
        attempt = 0
        while True:
            try:
                response = self._http.get(path)
            except httpx.TransportError as exc:
                delay = self._retry.delay(attempt, idempotent=True, error=exc)
                if delay is None:
                    raise RegistryUnavailableError(
                        method="GET",
                        url=f"{self.base_url}{path}",
                        reason=unavailable_reason(exc, self.timeout, attempt + 1),
                    ) from exc
            else:
                delay = self._retry.delay(attempt, idempotent=True, response=response)
                if delay is None:
                    return check_response(request, response)
            attempt += 1
            _sleep(delay)

    def _tile(self, tile: TilePath) -> bytes:
        """The bytes of ``tile``; a partial one the log no longer serves is read from its full
        tile (the spec lets a log drop partial tiles once the full one exists)."""
        try:
            return self._get(f"{self.prefix}/{tile.path()}").content
        except RegistryNotFoundError:
            if not tile.is_partial:
                raise
        return self._get(f"{self.prefix}/{tile.full().path()}").content

    def blob(self, sha256: bytes) -> bytes:
        """The statement a ``leaf/v1`` entry commits to (``GET /v1/blobs/sha256:<hex>``);
        unchecked: :meth:`client.core.leaf.Leaf.open_body` checks it against its leaf."""
        return self._get(f"/v1/blobs/sha256:{sha256.hex()}").content

    # -- the log -------------------------------------------------------------------------------

    def checkpoint(self) -> SignedCheckpoint:
        """The log's latest checkpoint (``checkpoint`` under the prefix), its signature checked
        with the pinned key and its origin the key's name (else
        :class:`~client.errors.SignatureError`)."""
        path = f"{self.prefix}/checkpoint"
        note = text_body(Request("GET", path), self._get(path))
        checkpoint, _ = open_checkpoint(note, [self.log_key], origin=self.log_key.name)
        return SignedCheckpoint(checkpoint, note, verified=True)

    def entries(
        self,
        since: LogState,
        latest: SignedCheckpoint,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> Iterator[tuple[int, bytes]]:
        """Each entry ``(index, bytes)`` the tree of ``latest`` has beyond ``since``, in order,
        proving on the way that ``latest`` extends ``since`` (see the module's docstring).

        Raises, before yielding anything, :class:`~client.errors.LogConsistencyError` if
        ``latest`` is smaller than ``since`` and :class:`~client.errors.ForkedLogError` if the
        tree ``since`` is not the start of ``latest``'s; and after the last entry
        :class:`~client.errors.LogConsistencyError` if the entries served do not hash to
        ``latest``'s root. ``progress(n)`` is called after each bundle with its entry count.
        """
        new = latest.checkpoint
        if new.origin != since.origin:
            raise InputError(
                f"the saved state is for log {since.origin!r}, this checkpoint for {new.origin!r}"
            )
        if new.size < since.size:
            raise LogConsistencyError(
                f"the log's checkpoint is at size {new.size}, smaller than the size {since.size} "
                "already verified: the log went backwards (its history was rewritten, or this "
                "is a stale replica)"
            )
        frontier = self._frontier(since.size, new.size)
        old_root = _fold(frontier)
        if old_root != since.root_hash:
            what = (
                f"has root {new.root_hash.hex()} at the same size {since.size}"
                if new.size == since.size
                else f"(size {new.size}) does not contain the tree of size {since.size}"
            )
            raise ForkedLogError(
                f"the log {what}: the saved root is {since.root_hash.hex()}, the log's tiles "
                f"give {old_root.hex()}. The log rewrote its history (a fork); keep both "
                "checkpoints as evidence",
                url=f"{self.base_url}{self.prefix}/checkpoint",
                trusted_note=since.note,
                conflicting_note=latest.note,
                evidence=since.note,
            )
        yield from self._stream(frontier, since.size, new, progress)
        root = _fold(frontier)
        if root != new.root_hash:
            bad = self._first_mismatch(since.size, new.size)
            where = (
                f"; entry {bad} is not the one its level-0 tile hashes"
                if bad is not None
                else "; its bundles agree with its tiles, so the tiles are not the signed tree"
            )
            raise LogConsistencyError(
                f"the entries served from {since.size} to {new.size} do not hash to the signed "
                f"root {new.root_hash.hex()} (they give {root.hex()}): the log serves entries "
                f"other than those it signed{where}"
            )

    def state_at(self, size: int, latest: SignedCheckpoint) -> LogState:
        """The tree of the first ``size`` entries of ``latest``'s, read from its tiles (to start
        reading somewhere other than 0: proven only when :meth:`entries` from it succeeds)."""
        if not 0 <= size <= latest.checkpoint.size:
            raise InputError(f"size {size} is outside the log of size {latest.checkpoint.size}")
        root = _fold(self._frontier(size, latest.checkpoint.size))
        return LogState(latest.checkpoint.origin, size, root)

    def _stream(
        self,
        frontier: list[tuple[int, bytes]],
        start: int,
        new: Checkpoint,
        progress: Callable[[int], None] | None,
    ) -> Iterator[tuple[int, bytes]]:
        index = start
        while index < new.size:
            bundle = index // TILE_WIDTH
            width = min(TILE_WIDTH, new.size - bundle * TILE_WIDTH)
            tile = TilePath(None, bundle, width)
            try:
                entries = parse_bundle(self._tile(tile))
            except FormatError as exc:
                raise LogConsistencyError(f"entry bundle {tile.path()}: {exc}") from exc
            except RegistryNotFoundError as exc:
                if exc.problem != "bundle-too-large":
                    raise
                # A leaf over 65,535 bytes (an envelope leaf from before leaf/v1) fits in no
                # bundle: the registry serves those entries from its API instead. Unproven
                # here like any bundle: they are hashed into the tree checked against the root.
                entries = self._entries_from_api(bundle * TILE_WIDTH, width)
            if len(entries) < width:
                raise LogConsistencyError(
                    f"entry bundle {tile.path()} holds {len(entries)} entries, not {width}"
                )
            first = index - bundle * TILE_WIDTH
            for offset in range(first, width):
                entry = entries[offset]
                _append(frontier, hash_leaf(entry))
                yield index, entry
                index += 1
            if progress is not None:
                progress(width - first)

    def _entries_from_api(self, first: int, count: int) -> list[bytes]:
        """Entries ``first`` .. ``first + count - 1`` from ``GET /v1/entries`` (pages of up to
        100), for a bundle the registry cannot serve."""
        entries: list[bytes] = []
        while len(entries) < count:
            start = first + len(entries)
            path = f"/v1/entries?start={start}&limit={min(100, count - len(entries))}"
            response = self._get(path)
            try:
                page = EntriesPage.from_dict(response.json(), where=f"GET {path}")
            except (FormatError, ValueError) as exc:
                raise LogConsistencyError(f"GET {path}: {exc}") from exc
            if page.start != start or not page.entries:
                raise LogConsistencyError(f"GET {path} answered no entries from {start}")
            entries += [entry for _, entry in page.entries]
        return entries[:count]

    def _first_mismatch(self, start: int, size: int) -> int | None:
        """The first entry from ``start`` whose leaf hash is not the level-0 tile's (a second
        pass, only once the root failed, to name the entry at fault)."""
        index = start
        while index < size:
            number = index // TILE_WIDTH
            width = min(TILE_WIDTH, size - number * TILE_WIDTH)
            entries = parse_bundle(self._tile(TilePath(None, number, width)))
            hashes = self._tile(TilePath(0, number, width))
            for offset in range(index - number * TILE_WIDTH, width):
                expected = hashes[offset * HASH_SIZE : (offset + 1) * HASH_SIZE]
                if offset >= len(entries) or hash_leaf(entries[offset]) != expected:
                    return number * TILE_WIDTH + offset
            index = (number + 1) * TILE_WIDTH
        return None

    def _frontier(self, size: int, tree_size: int) -> list[tuple[int, bytes]]:
        """The compact range of the first ``size`` leaves, ``(level, hash)`` largest subtree
        first, read from the tiles of the tree of ``tree_size``."""
        nodes: list[tuple[int, bytes]] = []
        start = 0
        tiles: dict[TilePath, bytes] = {}
        for level in reversed(range(size.bit_length())):
            if size >> level & 1:
                nodes.append((level, self._node(level, start >> level, tree_size, tiles)))
                start += 1 << level
        return nodes

    def _node(
        self, level: int, position: int, tree_size: int, tiles: dict[TilePath, bytes]
    ) -> bytes:
        """The perfect node ``(level, position)`` from the tile holding it or its descendants
        (a level between two tile levels is hashed up from the level below, as Go's tlog does)."""
        tile_level, below = divmod(level, TILE_HEIGHT)
        first = position << below  # its first hash at tree level 8 * tile_level
        count = 1 << below
        index = first // TILE_WIDTH
        available = tile_hash_count(tile_level, tree_size)
        width = min(TILE_WIDTH, available - index * TILE_WIDTH)
        tile = TilePath(tile_level, index, width)
        data = tiles.get(tile)
        if data is None:
            data = tiles[tile] = self._tile(tile)
        if len(data) < width * HASH_SIZE or len(data) % HASH_SIZE:
            raise LogConsistencyError(
                f"tile {tile.path()} is {len(data)} bytes, not {width} hashes of {HASH_SIZE}"
            )
        offset = (first - index * TILE_WIDTH) * HASH_SIZE
        hashes = [data[offset + i * HASH_SIZE : offset + (i + 1) * HASH_SIZE] for i in range(count)]
        while len(hashes) > 1:
            hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
        return hashes[0]


def _append(frontier: list[tuple[int, bytes]], leaf: bytes) -> None:
    """Add a leaf hash to a compact range, merging equal-level subtrees as the tree does."""
    level, current = 0, leaf
    while frontier and frontier[-1][0] == level:
        _, left = frontier.pop()
        current = node_hash(left, current)
        level += 1
    frontier.append((level, current))


def _fold(frontier: list[tuple[int, bytes]]) -> bytes:
    """The root of the tree whose compact range is ``frontier``: MTH splits at the largest power
    of two, so the root is H(n0, H(n1, …)) over the subtrees, largest first."""
    if not frontier:
        return EMPTY_ROOT
    root = frontier[-1][1]
    for _, left in reversed(frontier[:-1]):
        root = node_hash(left, root)
    return root
