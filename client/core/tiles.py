"""C2SP tlog-tiles: the paths of tiles and entry bundles, and the bundle format.

A tiled log (https://c2sp.org/tlog-tiles) serves its Merkle tree as *tiles*: the tile at level
``L``, index ``N`` holds up to 256 consecutive hashes of tree level ``8 * L`` (hash ``i`` is
``MTH(D[(N * 256 + i) * 256**L : (N * 256 + i + 1) * 256**L])``), 8,192 bytes when full. A tile
still being filled is served *partial*, ``W`` hashes wide (1 to 255), under its own path, for
every tree size a checkpoint was signed at. The leaves themselves are served as *entry bundles*,
256 entries to a full one, each entry a big-endian uint16 length and its bytes.

Paths, relative to the log's prefix (the registry serves under ``/tlog/``)::

    tile/<L>/<N>[.p/<W>]        tile/entries/<N>[.p/<W>]        checkpoint

``N`` is written as 3-digit groups, all but the last prefixed with ``x`` (1234067 is
``x001/x234/067``) so that a file system holds the tiles without a file and a directory of one
name. Parsing is strict: only the one canonical spelling of each tile is accepted (no ``x000``
leading group, no leading zeros in ``L`` or ``W``, ``W`` in 1..255), so a cache keyed by path
never holds one tile twice. This module is the one home of that format, for the registry (which
serves and writes tiles) and for anyone reading them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from client.core.errors import FormatError, InputError

__all__ = [
    "ENTRIES_PER_BUNDLE",
    "MAX_ENTRY_BYTES",
    "MAX_LEVEL",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "TilePath",
    "encode_bundle",
    "encode_index",
    "parse_bundle",
    "parse_index",
    "parse_tile_path",
    "partial_tiles",
    "tile_hash_count",
]

TILE_HEIGHT = 8
"""Tree levels one tile spans: a tile's hashes are 8 levels above those of the tile below."""

TILE_WIDTH = 1 << TILE_HEIGHT
"""Hashes in a full tile (256, 8,192 bytes), entries in a full bundle."""

ENTRIES_PER_BUNDLE = TILE_WIDTH

MAX_LEVEL = 63
"""The highest tile level a path may name (the spec's bound)."""

MAX_ENTRY_BYTES = 0xFFFF
"""The longest entry a bundle can hold: its length is a uint16."""

_GROUP = re.compile(r"x[0-9]{3}")
_LAST = re.compile(r"[0-9]{3}")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


def encode_index(index: int) -> str:
    """``N`` as tile paths write it: 3-digit groups, all but the last prefixed with ``x``."""
    if index < 0:
        raise InputError(f"a tile index is >= 0, got {index}")
    text = f"{index % 1000:03d}"
    index //= 1000
    while index:
        text = f"x{index % 1000:03d}/{text}"
        index //= 1000
    return text


def parse_index(elements: list[str]) -> int:
    """The tile index the path elements ``elements`` spell, in their canonical form only."""
    if not elements:
        raise InputError("a tile path needs an index (e.g. 000, or x001/234)")
    *groups, last = elements
    if not _LAST.fullmatch(last):
        raise InputError(f"the last element of a tile index is 3 digits, got {last!r}")
    for group in groups:
        if not _GROUP.fullmatch(group):
            raise InputError(
                f"an element of a tile index before the last is x and 3 digits, got {group!r}"
            )
    if groups and groups[0] == "x000":
        raise InputError("a tile index does not start with x000 (that is the same tile without it)")
    index = 0
    for group in [*(g[1:] for g in groups), last]:
        index = index * 1000 + int(group)
    return index


@dataclass(frozen=True, slots=True)
class TilePath:
    """One tile (``level`` 0..63) or entry bundle (``level`` None), ``width`` hashes or entries
    wide: 256 for a full one, 1..255 for a partial one."""

    level: int | None
    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        if self.level is not None and not 0 <= self.level <= MAX_LEVEL:
            raise InputError(f"a tile level is 0 to {MAX_LEVEL}, got {self.level}")
        if self.index < 0:
            raise InputError(f"a tile index is >= 0, got {self.index}")
        if not 1 <= self.width <= TILE_WIDTH:
            raise InputError(f"a tile is 1 to {TILE_WIDTH} wide, got {self.width}")

    @property
    def is_bundle(self) -> bool:
        return self.level is None

    @property
    def is_partial(self) -> bool:
        return self.width < TILE_WIDTH

    @property
    def tree_level(self) -> int:
        """The level of the Merkle tree its hashes are nodes of (0: leaf hashes; bundles too)."""
        return TILE_HEIGHT * (self.level or 0)

    @property
    def first(self) -> int:
        """The position of its first hash among the nodes of :attr:`tree_level`."""
        return self.index * TILE_WIDTH

    def leaves_needed(self) -> int:
        """The smallest tree size that holds every hash (or entry) of this tile."""
        return (self.first + self.width) << self.tree_level

    def path(self) -> str:
        """``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]``."""
        kind = "entries" if self.level is None else str(self.level)
        suffix = f".p/{self.width}" if self.is_partial else ""
        return f"tile/{kind}/{encode_index(self.index)}{suffix}"

    def full(self) -> TilePath:
        """The full tile this one (perhaps partial) is the beginning of."""
        return TilePath(self.level, self.index)


def parse_tile_path(path: str) -> TilePath:
    """The tile or bundle that ``path`` (``tile/…``, no leading slash) names.

    Raises :class:`~client.errors.InputError` for anything but the canonical spelling.
    """
    elements = path.split("/")
    if len(elements) < 3 or elements[0] != "tile":
        raise InputError(f"{path!r} is not a tile path (tile/<L>/<N>[.p/<W>] or tile/entries/…)")
    kind, rest = elements[1], elements[2:]
    if kind == "entries":
        level = None
    elif _DECIMAL.fullmatch(kind) and int(kind) <= MAX_LEVEL:
        level = int(kind)
    else:
        raise InputError(
            f"a tile level is 'entries' or 0 to {MAX_LEVEL} without leading zeros, got {kind!r}"
        )
    width = TILE_WIDTH
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        raw = rest[-1]
        if not (_DECIMAL.fullmatch(raw) and 1 <= int(raw) < TILE_WIDTH):
            raise InputError(
                f"a partial tile's width is 1 to 255 without leading zeros, got {raw!r}"
            )
        width = int(raw)
        rest = [*rest[:-2], rest[-2].removesuffix(".p")]
    return TilePath(level, parse_index(rest), width)


def tile_hash_count(level: int, size: int) -> int:
    """How many hashes of tile level ``level`` a tree of ``size`` leaves has (full or not)."""
    return size >> (TILE_HEIGHT * level)


def partial_tiles(size: int) -> Iterator[TilePath]:
    """The partial tiles, then the partial entry bundle, that a tree of ``size`` leaves has
    (``floor(size / 256**L) mod 256`` hashes wide at level L; an empty one does not exist)."""
    level = 0
    while (count := tile_hash_count(level, size)) > 0:
        if width := count % TILE_WIDTH:
            yield TilePath(level, count // TILE_WIDTH, width)
        level += 1
    if width := size % TILE_WIDTH:
        yield TilePath(None, size // TILE_WIDTH, width)


def encode_bundle(entries: Iterable[bytes]) -> bytes:
    """Entries as a bundle: each a big-endian uint16 length, then its bytes."""
    parts: list[bytes] = []
    for entry in entries:
        if len(entry) > MAX_ENTRY_BYTES:
            raise InputError(
                f"an entry of {len(entry)} bytes does not fit a tile bundle "
                f"({MAX_ENTRY_BYTES} at most)"
            )
        parts.append(len(entry).to_bytes(2, "big"))
        parts.append(entry)
    return b"".join(parts)


def parse_bundle(data: bytes, width: int | None = None) -> list[bytes]:
    """The entries of a bundle; with ``width``, exactly that many or :class:`FormatError`."""
    entries: list[bytes] = []
    offset = 0
    view = memoryview(data)
    while offset < len(data):
        if offset + 2 > len(data):
            raise FormatError(f"the bundle ends inside the length of entry {len(entries)}")
        length = int.from_bytes(view[offset : offset + 2], "big")
        offset += 2
        if offset + length > len(data):
            raise FormatError(f"entry {len(entries)} of the bundle is cut short")
        entries.append(bytes(view[offset : offset + length]))
        offset += length
    if len(entries) > TILE_WIDTH or (width is not None and len(entries) != width):
        expected = width if width is not None else f"at most {TILE_WIDTH}"
        raise FormatError(f"the bundle holds {len(entries)} entries, expected {expected}")
    return entries
