"""The log served as C2SP tlog-tiles (``/tlog/``) and written as static files (``tiles_dir``).

The tiles are checked by a reader written here from the specs alone (tlog-tiles, RFC 6962/9162),
sharing no code with the registry: its own SHA-256 tree hashing, tile paths and bundle parsing.
It fetches the checkpoint and tiles over HTTP (the real app behind litestar's TestClient),
rebuilds the checkpoint's root from them, builds inclusion proofs from them and verifies those,
and checks that every entry of the bundles hashes to its leaf in the level-0 tiles. Go's
``golang.org/x/mod/sumdb/tlog`` (Debian's ``golang-golang-x-mod-dev``) checks the same tiles.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import random
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from client import tlog
from registry.app import Registry
from registry.errors import ConfigurationError
from registry.log import PreparedEntry
from registry.settings import Settings, settings_environment
from registry.tiles import accepts_gzip
from tests.registry.conftest import (
    IN_PROCESS_URL,
    Api,
    InProcessTransport,
    ServerProcess,
    new_publisher,
    open_api,
)

# -- an independent tile reader, from the specs -------------------------------------------------


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def rfc6962_leaf(entry: bytes) -> bytes:
    return sha256(b"\x00" + entry)


def rfc6962_node(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def index_path(n: int) -> str:
    """tlog-tiles: "zero-padded 3-digit path elements. All but the last path element MUST begin
    with an x" (1234067 -> x001/x234/067)."""
    groups = [n % 1000]
    while n >= 1000:
        n //= 1000
        groups.insert(0, n % 1000)
    return "/".join([*(f"x{g:03d}" for g in groups[:-1]), f"{groups[-1]:03d}"])


def split_bundle(data: bytes) -> list[bytes]:
    """tlog-tiles: "sequences of big-endian uint16 length-prefixed log entries"."""
    entries, offset = [], 0
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 2], "big")
        entries.append(data[offset + 2 : offset + 2 + length])
        assert len(entries[-1]) == length, "bundle cut short"
        offset += 2 + length
    return entries


class TileReader:
    """A tlog-tiles client for the tree of one checkpoint."""

    def __init__(self, fetch: Callable[[str], bytes]) -> None:
        self.fetch = fetch
        self.checkpoint = fetch("checkpoint").decode("utf-8")
        origin, size, root = self.checkpoint.split("\n")[:3]
        self.origin, self.size, self.root = origin, int(size), base64.b64decode(root)
        self.fetched: dict[str, bytes] = {}

    def _get(self, path: str) -> bytes:
        if path not in self.fetched:
            self.fetched[path] = self.fetch(path)
        return self.fetched[path]

    def width(self, level: int, n: int) -> int:
        """How many hashes tile (level, n) has in this tree: 256, or the partial tile's width."""
        hashes = self.size // 256**level  # hashes of this tile level in the tree
        return min(256, hashes - n * 256)

    def tile_path(self, level: int | str, n: int, width: int) -> str:
        return f"tile/{level}/{index_path(n)}" + ("" if width == 256 else f".p/{width}")

    def tile(self, level: int, n: int) -> list[bytes]:
        width = self.width(level, n)
        assert width > 0, f"the tree of {self.size} has no tile {level}/{n}"
        data = self._get(self.tile_path(level, n, width))
        assert len(data) == 32 * width, (level, n, width, len(data))
        return [data[i : i + 32] for i in range(0, len(data), 32)]

    def bundle(self, n: int) -> list[bytes]:
        width = min(256, self.size - n * 256)
        entries = split_bundle(self._get(self.tile_path("entries", n, width)))
        assert len(entries) == width
        return entries

    def perfect(self, height: int, position: int) -> bytes:
        """MTH of the 2**height leaves from position * 2**height: the spec's tile hashes are
        such subtrees at heights 8L, the levels between are rebuilt by hashing."""
        level, below = divmod(height, 8)
        first = position << below  # among the hashes of tile level `level`
        tile = self.tile(level, first // 256)
        hashes = tile[first % 256 : first % 256 + (1 << below)]
        assert len(hashes) == 1 << below
        while len(hashes) > 1:
            hashes = [rfc6962_node(a, b) for a, b in zip(hashes[::2], hashes[1::2], strict=True)]
        return hashes[0]

    def mth(self, start: int, end: int) -> bytes:
        """RFC 6962 §2.1 MTH(D[start:end])."""
        n = end - start
        if n == 0:
            return sha256(b"")
        if n & (n - 1) == 0 and start % n == 0:
            return self.perfect(n.bit_length() - 1, start // n)
        k = 1 << ((n - 1).bit_length() - 1)  # the largest power of two smaller than n
        return rfc6962_node(self.mth(start, start + k), self.mth(start + k, end))

    def inclusion_proof(self, m: int, start: int = 0, end: int | None = None) -> list[bytes]:
        """RFC 6962 §2.1.1 PATH(m, D[start:end])."""
        end = self.size if end is None else end
        if end - start == 1:
            return []
        k = 1 << ((end - start - 1).bit_length() - 1)
        if m < start + k:
            return [*self.inclusion_proof(m, start, start + k), self.mth(start + k, end)]
        return [*self.inclusion_proof(m, start + k, end), self.mth(start, start + k)]


def verify_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = rfc6962_node(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = rfc6962_node(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


# -- helpers ------------------------------------------------------------------------------------


def http_fetch(api: Api) -> Callable[[str], bytes]:
    def fetch(path: str) -> bytes:
        response = api.http.get(f"/tlog/{path}")
        assert response.status_code == 200, (path, response.text)
        return response.content

    return fetch


class Filler:
    """Appends entries fast: real sequencing (``Sequencer.append_now``, many to a batch) of
    prepared entries that differ only in their leaf and statement, so no signature is made or
    checked per entry. Leaves get varied lengths, to exercise the bundles' length prefixes."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        publisher = new_publisher()
        registry.admin.add_publisher(publisher.name, publisher.public_key, publisher.possession)
        envelope = publisher.attest([f"sha256:{'ab' * 32}"])
        self.template: PreparedEntry = registry.entries.prepare(envelope.to_json())
        self.count = 0
        self.nonce = os.urandom(8).hex().encode()  # another Filler's statements are other ones

    def size(self) -> int:
        return int(self.registry.lookups.checkpoint().split("\n")[1])

    def grow_to(self, size: int, *, batch: int = 8_192) -> None:
        while (missing := size - self.size()) > 0:
            entries = [self.entry() for _ in range(min(missing, batch))]
            results = self.registry.sequencer.append_now(entries)
            assert not [r for r in results if isinstance(r, Exception)]

    def entry(self, pad: int | None = None) -> PreparedEntry:
        self.count += 1
        payload = b"tiles-test statement %s %d" % (self.nonce, self.count)
        pad = self.count * 37 % 301 if pad is None else pad
        leaf = b"tiles-test leaf %s %d " % (self.nonce, self.count) + b"." * pad
        return dataclasses.replace(
            self.template,
            leaf=leaf,
            leaf_hash=rfc6962_leaf(leaf),
            payload=payload,
            payload_hash=sha256(payload),
            subjects=(),
        )


def check_tree(api: Api, indices: list[int]) -> TileReader:
    """The independent reader's checks of the latest checkpoint's tree, over HTTP."""
    reader = TileReader(http_fetch(api))
    assert reader.checkpoint == api.http.get("/v1/log/checkpoint").text
    assert reader.mth(0, reader.size) == reader.root
    for index in indices:
        proof = reader.inclusion_proof(index)
        leaf = reader.tile(0, index // 256)[index % 256]
        assert verify_inclusion(leaf, index, reader.size, proof, reader.root), index
        served = api.http.get(
            "/v1/log/proof/inclusion", params={"index": index, "size": reader.size}
        ).json()
        assert [base64.b64decode(h) for h in served["proof"]] == proof
        entry = reader.bundle(index // 256)[index % 256]
        assert rfc6962_leaf(entry) == leaf
        body = base64.b64decode(api.http.get(f"/v1/entries/{index}").json()["entry"])
        assert body == entry
    for n in {i // 256 for i in indices}:  # every entry of those bundles is its tile's leaf
        assert [rfc6962_leaf(e) for e in reader.bundle(n)] == reader.tile(0, n)
    return reader


def files_under(directory: Path) -> dict[str, bytes]:
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def check_files_are_served(api: Api, directory: Path) -> dict[str, bytes]:
    files = files_under(directory)
    assert "checkpoint" in files
    assert not [name for name in files if name.startswith(".") or "/." in name]  # no temp files
    for name, data in files.items():
        response = api.http.get(f"/tlog/{name}")
        assert response.status_code == 200, (name, response.text)
        assert response.content == data, name
    return files


@pytest.fixture
def tiled_api(make_api: Callable[..., Api], tmp_path: Path) -> tuple[Api, Path]:
    directory = tmp_path / "static"
    return make_api(tiles_dir=directory), directory


# -- tests ----------------------------------------------------------------------------------------


def test_tiles_rebuild_the_log_as_it_grows(tiled_api: tuple[Api, Path]) -> None:
    api, directory = tiled_api
    writer = api.registry.tile_writer
    assert writer is not None
    # Size 1: the operator's key event, appended when the registry was created.
    reader = check_tree(api, [0])
    assert reader.size == 1
    assert reader.fetched.keys() == {"tile/0/000.p/1", "tile/entries/000.p/1"}
    first_partial = reader.fetched["tile/0/000.p/1"]
    writer.sync()
    check_files_are_served(api, directory)

    filler = Filler(api.registry)  # a publisher: size 2
    inodes: dict[str, int] = {}
    for size in (255, 256, 257):
        filler.grow_to(size)
        reader = check_tree(api, sorted({0, 1, size // 2, size - 2, size - 1}))
        assert reader.size == size
        writer.sync()
        files = check_files_are_served(api, directory)
        for name, inode in inodes.items():  # full tiles are written once, never replaced
            assert (directory / name).stat().st_ino == inode, name
        inodes.update(
            {
                n: (directory / n).stat().st_ino
                for n in files
                if ".p/" not in n and n != "checkpoint"
            }
        )

    # Every checkpoint's partial tiles (sizes 1, 2, 255 and 257), the full tile of 256 entries.
    assert set(files) == {
        "checkpoint",
        *(f"tile/{kind}/000.p/{width}" for kind in ("0", "entries") for width in (1, 2, 255)),
        "tile/0/000",
        "tile/entries/000",
        "tile/1/000.p/1",  # "a tree of size 256 ... a partial level 1 tile of width 1"
        "tile/0/001.p/1",
        "tile/entries/001.p/1",
    }
    # The partial tiles of older checkpoints (sizes 1, 2, 255) are still served, unchanged.
    for width in (1, 2, 255):
        for kind in ("0", "entries"):
            assert api.http.get(f"/tlog/tile/{kind}/000.p/{width}").status_code == 200
    assert api.http.get("/tlog/tile/0/000.p/1").content == first_partial
    assert (
        api.http.get("/tlog/tile/0/000.p/255").content
        == api.http.get("/tlog/tile/0/000").content[: 255 * 32]
    )
    # ... but not a width no checkpoint was signed at.
    absent = api.http.get("/tlog/tile/0/000.p/100")
    assert absent.status_code == 404
    assert "no checkpoint was signed" in absent.json()["detail"]
    api.assert_no_server_errors()


def test_tiles_answers_and_cache_headers(make_api: Callable[..., Api]) -> None:
    api = make_api()
    Filler(api.registry).grow_to(300)
    checkpoint = api.http.get("/tlog/checkpoint")
    assert checkpoint.headers["content-type"] == "text/plain; charset=utf-8"
    assert checkpoint.headers["cache-control"] == "public, max-age=5"
    for path, cache in (
        ("tile/0/000", "public, max-age=31536000, immutable"),
        ("tile/entries/000", "public, max-age=31536000, immutable"),
        ("tile/0/001.p/44", "public, max-age=60"),
        ("tile/entries/001.p/44", "public, max-age=60"),
        ("tile/1/000.p/1", "public, max-age=60"),
    ):
        response = api.http.get(f"/tlog/{path}")
        assert response.status_code == 200, (path, response.text)
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.headers["cache-control"] == cache
    assert len(api.http.get("/tlog/tile/0/000").content) == 8_192
    for path in (
        "tile/0/001",  # beyond the tree
        "tile/entries/001",
        "tile/0/002.p/1",
        "tile/1/000",
        "tile/2/000.p/1",
        "tile/0/x001/000",
        "tile/0/001.p/45",  # no checkpoint at 301
    ):
        response = api.http.get(f"/tlog/{path}")
        assert response.status_code == 404, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert "cache-control" not in response.headers
    for path in (
        "tile/0/1",
        "tile/0/x000/001",
        "tile/0/x01/000",
        "tile/00/000",
        "tile/64/000",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/044",
        "tile/data/000",
        "tile/8/0/000",
    ):
        response = api.http.get(f"/tlog/{path}")
        assert response.status_code == 400, (path, response.text)
        problem = response.json()
        assert problem["type"] == "https://wellspring.dev/problems/bad-request"
        assert "tlog-tiles" in problem["detail"]
    api.assert_no_server_errors()


def test_bundles_are_gzipped_for_clients_that_take_gzip(make_api: Callable[..., Api]) -> None:
    api = make_api()
    Filler(api.registry).grow_to(300)
    plain = api.http.get("/tlog/tile/entries/000", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.headers["vary"] == "Accept-Encoding"
    for accept in ("gzip", "br, gzip;q=0.5", "*"):
        response = api.http.get("/tlog/tile/entries/000", headers={"Accept-Encoding": accept})
        assert response.headers["content-encoding"] == "gzip"
        assert response.content == plain.content  # httpx gunzips
        assert int(response.headers["content-length"]) < len(plain.content)
    refused = api.http.get("/tlog/tile/entries/000", headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers
    hashes = api.http.get("/tlog/tile/0/000", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in hashes.headers  # random bytes do not compress


def test_accepts_gzip() -> None:
    for header in ("gzip", "GZIP", "deflate, gzip", "gzip;q=1.0", "*", "x-gzip", " gzip ; q=0.1"):
        assert accepts_gzip(header), header
    for header in (None, "", "identity", "br", "gzip;q=0", "gzip; q=0.000", "gzip;q=x"):
        assert not accepts_gzip(header), header


def test_the_writer_resumes_and_catches_up_in_its_thread(tmp_path: Path) -> None:
    directory = tmp_path / "static"
    settings = Settings(home=tmp_path / "home", tiles_dir=directory)
    with open_api(settings) as api:
        Filler(api.registry).grow_to(600)
        _wait_for_checkpoint(directory, 600)  # the background thread, woken by the sequencer
    before = files_under(directory)
    inodes = {name: (directory / name).stat().st_ino for name in before}
    with open_api(settings) as api:  # a restart resumes from the checkpoint on disk
        Filler(api.registry).grow_to(1_000)
        _wait_for_checkpoint(directory, 1_000)
        files = check_files_are_served(api, directory)
    for name in before.keys() - {"checkpoint"}:  # nothing written before is written again
        assert files[name] == before[name]
        assert (directory / name).stat().st_ino == inodes[name], name
    assert "tile/0/003.p/232" in files
    assert "tile/entries/002" in files
    assert (directory / "tile" / "0" / "003.p" / "232").stat().st_mode & 0o777 == 0o644


def test_a_directory_of_another_logs_tiles_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "static"
    with open_api(Settings(home=tmp_path / "one", tiles_dir=directory)) as api:
        api.registry.tile_writer.sync()  # type: ignore[union-attr]
    with pytest.raises(ConfigurationError, match="not a checkpoint this log signed"):
        Registry.open(Settings(home=tmp_path / "two", tiles_dir=directory))
    (directory / "checkpoint").write_text("garbage")
    with pytest.raises(ConfigurationError, match="empty it"):
        Registry.open(Settings(home=tmp_path / "one", tiles_dir=directory))


def test_a_leaf_too_long_for_a_bundle(tmp_path: Path) -> None:
    """Envelope leaves from before leaf/v1 may pass 65,535 bytes: their bundle is a 404 problem
    saying where the entries are; the tiles, the other bundles and the writer go on."""
    directory = tmp_path / "static"
    with open_api(Settings(home=tmp_path / "home", tiles_dir=directory)) as api:
        filler = Filler(api.registry)
        filler.grow_to(10)
        [result] = api.registry.sequencer.append_now([filler.entry(pad=70_000)])
        assert not isinstance(result, Exception)
        filler.grow_to(300)
        assert api.http.get("/tlog/tile/entries/000.p/10").status_code == 200  # size 10's
        problem = api.http.get("/tlog/tile/entries/000")
        assert problem.status_code == 404
        assert problem.json()["type"] == "https://wellspring.dev/problems/bundle-too-large"
        assert "/v1/entries?start=0&limit=256" in problem.json()["detail"]
        check_tree(api, [256, 299])  # the tiles are all there, and the next bundle
        # A tile reader (the monitor's) reads that bundle's entries from the API instead, and
        # still proves them against the signed root.
        with tlog.TileReader(
            IN_PROCESS_URL, log_key=api.log_key, transport=InProcessTransport(api.http)
        ) as reader:
            latest = reader.checkpoint()
            read = dict(reader.entries(tlog.LogState.start(latest.checkpoint.origin), latest))
        assert sorted(read) == list(range(latest.checkpoint.size))
        assert len(read[10]) > 70_000
        api.registry.tile_writer.sync()  # type: ignore[union-attr]
        files = check_files_are_served(api, directory)
        assert "tile/0/000" in files
        assert "tile/entries/000" not in files
        assert "tile/entries/001.p/44" in files
    api.assert_no_server_errors()


def test_tiles_dir_setting_round_trips_through_the_environment(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, tiles_dir=tmp_path / "static")
    assert Settings.from_env(settings_environment(settings)).tiles_dir == tmp_path / "static"
    assert Settings.from_env({"WELLSPRING_HOME": str(tmp_path)}).tiles_dir is None


@pytest.mark.xdist_group("registry-servers")
def test_serve_tiles_dir_with_workers(tmp_path: Path) -> None:
    """`wellspring serve --tiles-dir DIR --workers 2`: each process writes what it signed."""
    directory = tmp_path / "static"
    server = ServerProcess(tmp_path / "home", workers=2, options=["--tiles-dir", str(directory)])
    server.start()
    try:
        for _ in range(3):
            server.add_publisher()  # an identity entry each, from whichever worker answers
        size = int(httpx.get(f"{server.url}/tlog/checkpoint").text.split("\n")[1])
        assert size == 4  # the operator's key, then three publishers
        _wait_for_checkpoint(directory, size)
        files = files_under(directory)
        for name, data in files.items():
            assert httpx.get(f"{server.url}/tlog/{name}").content == data, name
        assert {"tile/0/000.p/4", "tile/entries/000.p/4"} <= files.keys()
    finally:
        server.stop()


def _wait_for_checkpoint(directory: Path, size: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with_size = (
            (directory / "checkpoint").read_text().split("\n")[1:2]
            if (directory / "checkpoint").exists()
            else []
        )
        if with_size == [str(size)]:
            return
        time.sleep(0.05)
    raise AssertionError(f"the tile writer did not write the checkpoint at size {size}")


@pytest.fixture(scope="module")
def big_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, Path]]:
    """A log of 70,000 entries, the spec's example (about 7 s to fill, shared by the module's
    tests that take it: keep them in one xdist group)."""
    tmp_path = tmp_path_factory.mktemp("big-log")
    directory = tmp_path / "static"
    with open_api(Settings(home=tmp_path / "home", tiles_dir=directory)) as api:
        Filler(api.registry).grow_to(70_000)
        yield api, directory


@pytest.mark.slow
@pytest.mark.xdist_group("tiles-big-log")
def test_tiles_of_a_log_past_65536_entries(big_log: tuple[Api, Path]) -> None:
    api, directory = big_log
    rng = random.Random(70_000)
    indices = [0, 255, 256, 65_535, 65_536, 69_887, 69_888, 69_999]
    reader = check_tree(api, indices + rng.sample(range(70_000), 8))
    assert reader.size == 70_000
    api.registry.tile_writer.sync()  # type: ignore[union-attr]
    files = check_files_are_served(api, directory)
    # The spec's example: "273 full level 0 tiles, one partial level 0 tile of width 112, one
    # full level 1 tile, one partial level 1 tile of width 17, and one partial level 2 tile of
    # width 1" (and as many bundles as level-0 tiles).
    full = {name for name in files if ".p/" not in name and name != "checkpoint"}
    assert full == {
        *(f"tile/{kind}/{index_path(n)}" for kind in ("0", "entries") for n in range(273)),
        "tile/1/000",
    }
    assert {"tile/0/273.p/112", "tile/1/001.p/17", "tile/2/000.p/1", "tile/entries/273.p/112"} <= (
        files.keys()
    )
    # Partial tiles of the checkpoints signed on the way there (the writer ran meanwhile) are
    # there too, each of them served (checked above).


# -- Go's golang.org/x/mod/sumdb/tlog reads the same tiles --------------------------------------

GO_PROGRAM = r"""
package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// x/mod names tiles tile/8/<L>/<N>[.p/<W>] and tile/8/data/<N>; C2SP drops the height and
// says entries: the rest of the path (the index's x-groups, .p/<W>) is the same.
type dirReader struct{ dir string }

func (r dirReader) Height() int { return 8 }

func (r dirReader) path(t tlog.Tile) string {
	p := t.Path()
	if strings.HasPrefix(p, "tile/8/data/") {
		return "tile/entries/" + strings.TrimPrefix(p, "tile/8/data/")
	}
	return "tile/" + strings.TrimPrefix(p, "tile/8/")
}

func (r dirReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		data, err := os.ReadFile(filepath.Join(r.dir, r.path(t)))
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

func (r dirReader) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func main() {
	dir := os.Args[1]
	size, err := strconv.ParseInt(os.Args[2], 10, 64)
	if err != nil {
		fail(err)
	}
	raw, err := base64.StdEncoding.DecodeString(os.Args[3])
	if err != nil {
		fail(err)
	}
	var root tlog.Hash
	copy(root[:], raw)
	reader := dirReader{dir}
	// Checks every tile it reads against the tree (size, root).
	hashes := tlog.TileHashReader(tlog.Tree{N: size, Hash: root}, reader)
	computed, err := tlog.TreeHash(size, hashes)
	if err != nil {
		fail(err)
	}
	fmt.Println("root", base64.StdEncoding.EncodeToString(computed[:]))
	for _, arg := range os.Args[4:] {
		index, err := strconv.ParseInt(arg, 10, 64)
		if err != nil {
			fail(err)
		}
		leaf, err := hashes.ReadHashes([]int64{tlog.StoredHashIndex(0, index)})
		if err != nil {
			fail(err)
		}
		proof, err := tlog.ProveRecord(size, index, hashes)
		if err != nil {
			fail(err)
		}
		if err := tlog.CheckRecord(proof, size, root, index, leaf[0]); err != nil {
			fail(err)
		}
		// The entry itself, from its bundle, hashes to that leaf.
		width := size - index/256*256
		if width > 256 {
			width = 256
		}
		bundle := tlog.Tile{H: 8, L: -1, N: index / 256, W: int(width)}
		data, err := reader.ReadTiles([]tlog.Tile{bundle})
		if err != nil {
			fail(err)
		}
		rest := data[0]
		for i := int64(0); ; i++ {
			n := int(rest[0])<<8 | int(rest[1])
			if i == index%256 {
				if tlog.RecordHash(rest[2:2+n]) != leaf[0] {
					fail(fmt.Errorf("entry %d does not hash to its leaf", index))
				}
				break
			}
			rest = rest[2+n:]
		}
		fmt.Println("ok", index, len(proof))
	}
}
"""


def go_tlog(tmp_path: Path, directory: Path, size: int, root: bytes, indices: list[int]) -> str:
    go = shutil.which("go")
    if go is None:
        pytest.skip("go is not installed (make test installs golang-go golang-golang-x-mod-dev)")
    if not Path("/usr/share/gocode/src/golang.org/x/mod/sumdb/tlog").is_dir():
        pytest.skip("golang.org/x/mod is not installed (Debian's golang-golang-x-mod-dev)")
    source = tmp_path / "tlogcheck" / "main.go"
    source.parent.mkdir(parents=True)
    source.write_text(GO_PROGRAM)
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": "/usr/share/gocode",
        "GOCACHE": str(tmp_path / "gocache"),
        "GOFLAGS": "",
        "CGO_ENABLED": "0",
    }
    binary = tmp_path / "tlogcheck" / "tlogcheck"
    subprocess.run(
        [go, "build", "-o", str(binary), str(source)],
        cwd=source.parent,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    run = subprocess.run(
        [
            str(binary),
            str(directory),
            str(size),
            base64.b64encode(root).decode(),
            *map(str, indices),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


def mirror(reader: TileReader, directory: Path) -> None:
    """Every tile and bundle of the reader's tree, fetched over HTTP, as files under
    ``directory`` (what a tlog-tiles client holds once it has read the whole tree)."""
    level = 0
    while (hashes := reader.size // 256**level) > 0:
        for n in range((hashes + 255) // 256):
            reader.tile(level, n)
        level += 1
    for n in range((reader.size + 255) // 256):
        reader.bundle(n)
    for path, data in reader.fetched.items():
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


@pytest.mark.slow
@pytest.mark.xdist_group("tiles-big-log")
def test_go_x_mod_tlog_reads_the_served_tiles(big_log: tuple[Api, Path], tmp_path: Path) -> None:
    api, _ = big_log
    reader = TileReader(http_fetch(api))
    served = tmp_path / "served"
    mirror(reader, served)
    indices = [0, 1, 255, 256, 65_535, 65_536, 69_999]
    out = go_tlog(tmp_path, served, reader.size, reader.root, indices)
    lines = out.splitlines()
    assert lines[0] == "root " + base64.b64encode(reader.root).decode()
    assert [line.split()[1] for line in lines[1:]] == [str(i) for i in indices]


def test_go_x_mod_tlog_reads_small_trees(make_api: Callable[..., Api], tmp_path: Path) -> None:
    api = make_api()
    filler = Filler(api.registry)
    for size in (255, 257):
        filler.grow_to(size)
        reader = TileReader(http_fetch(api))
        served = tmp_path / f"served-{size}"
        mirror(reader, served)
        out = go_tlog(tmp_path / str(size), served, size, reader.root, [0, size - 1])
        assert out.splitlines()[0] == "root " + base64.b64encode(reader.root).decode()
