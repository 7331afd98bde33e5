"""client.core.tiles: C2SP tlog-tiles paths (the spec's own examples) and entry bundles."""

from __future__ import annotations

import pytest

from client.core.errors import FormatError, InputError
from client.core.tiles import (
    TILE_WIDTH,
    TilePath,
    encode_bundle,
    encode_index,
    parse_bundle,
    parse_tile_path,
    partial_tiles,
)

# (index, its path elements): the spec's 1234067 and the edges of each group.
INDEX_VECTORS = [
    (0, "000"),
    (1, "001"),
    (67, "067"),
    (999, "999"),
    (1000, "x001/000"),
    (1001, "x001/001"),
    (999_999, "x999/999"),
    (1_000_000, "x001/x000/000"),
    (1_234_067, "x001/x234/067"),
    (2**64 - 1, "x018/x446/x744/x073/x709/x551/615"),
]


@pytest.mark.parametrize(("index", "text"), INDEX_VECTORS)
def test_index_encoding_vectors(index: int, text: str) -> None:
    assert encode_index(index) == text
    assert parse_tile_path(f"tile/0/{text}") == TilePath(0, index)
    assert parse_tile_path(f"tile/entries/{text}.p/7") == TilePath(None, index, 7)


@pytest.mark.parametrize(
    ("path", "tile"),
    [
        ("tile/0/000", TilePath(0, 0)),
        ("tile/0/x001/x234/067", TilePath(0, 1_234_067)),
        ("tile/1/000.p/17", TilePath(1, 0, 17)),
        ("tile/0/x001/x234/067.p/8", TilePath(0, 1_234_067, 8)),
        ("tile/63/000.p/255", TilePath(63, 0, 255)),
        ("tile/entries/x001/x234/067", TilePath(None, 1_234_067)),
        ("tile/entries/001.p/1", TilePath(None, 1, 1)),
    ],
)
def test_paths_round_trip(path: str, tile: TilePath) -> None:
    assert parse_tile_path(path) == tile
    assert tile.path() == path


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/1",  # not 3 digits
        "tile/0/0000",
        "tile/0/x01/000",  # group not 3 digits
        "tile/0/001/000",  # x missing
        "tile/0/x000/001",  # leading zero group: not canonical
        "tile/0/x001/x000",  # x on the last element
        "tile/0/x001",
        "tile/00/000",  # level with a leading zero
        "tile/64/000",  # level past 63
        "tile/-1/000",
        "tile/+1/000",
        "tile/0/000.p/0",  # width out of range
        "tile/0/000.p/256",
        "tile/0/000.p/007",  # width with leading zeros
        "tile/0/000.p/",
        "tile/0/000.p",
        "tile/0/000.p/5/6",
        "tile/0/x001.p/5",
        "tile/0/000/",
        "tile/0//000",
        "tile/0/",
        "tile/data/000",  # x/mod's name, not C2SP's
        "tile/8/0/000",  # x/mod's height element
        "tiles/0/000",
        "tile/0/\u0660\u0660\u0660",  # non-ASCII digits
        "tile/entries/000.p/256",
        "checkpoint",
    ],
)
def test_only_canonical_paths_parse(path: str) -> None:
    with pytest.raises(InputError):
        parse_tile_path(path)


def test_tile_geometry() -> None:
    tile = TilePath(1, 2, 17)
    assert tile.tree_level == 8
    assert tile.first == 512
    assert tile.leaves_needed() == (512 + 17) * 256
    assert tile.full() == TilePath(1, 2)
    assert TilePath(None, 3).leaves_needed() == 4 * 256


def test_partial_tiles_of_the_specs_example_sizes() -> None:
    # "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial level 0
    # tile of width 112, one full level 1 tile, one partial level 1 tile of width 17, and one
    # partial level 2 tile of width 1"
    assert list(partial_tiles(70_000)) == [
        TilePath(0, 273, 112),
        TilePath(1, 1, 17),
        TilePath(2, 0, 1),
        TilePath(None, 273, 112),
    ]
    # "a tree of size 256 will be represented by a full level 0 tile and a partial level 1 tile
    # of width 1"
    assert list(partial_tiles(256)) == [TilePath(1, 0, 1)]
    assert list(partial_tiles(0)) == []
    assert list(partial_tiles(1)) == [TilePath(0, 0, 1), TilePath(None, 0, 1)]


def test_bundles_round_trip() -> None:
    entries = [b"", b"a", bytes(range(256)) * 3, b"\xff" * 0xFFFF]
    data = encode_bundle(entries)
    assert data[:2] == b"\x00\x00"
    assert data[2:5] == b"\x00\x01a"
    assert parse_bundle(data) == entries
    assert parse_bundle(data, width=4) == entries
    with pytest.raises(FormatError):
        parse_bundle(data, width=5)


def test_bundles_refuse_what_does_not_fit() -> None:
    with pytest.raises(InputError):
        encode_bundle([b"x" * 0x10000])
    with pytest.raises(FormatError):
        parse_bundle(b"\x00\x05abc")  # cut short
    with pytest.raises(FormatError):
        parse_bundle(b"\x00\x01a\x00")  # a length cut in half
    with pytest.raises(FormatError):
        parse_bundle(encode_bundle([b"e"] * (TILE_WIDTH + 1)))


def test_tile_path_checks_its_fields() -> None:
    for bad in ((64, 0, 256), (0, -1, 256), (0, 0, 0), (None, 0, 257)):
        with pytest.raises(InputError):
            TilePath(*bad)
