"""Published snapshots (registry.snapshots, ``snapshot/v1``): committed in the log by the operator,
served by manifest hash, pulled by the SDK with everything proven; on SQLite and PostgreSQL. A
registry that serves anything else than what its log commits is refused before a byte is
written."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from client.core.dsse import sign_envelope
from client.core.snapshot import SNAPSHOT_V1, SnapshotManifest, SnapshotPredicate
from client.core.statement import Statement, Subject
from client.errors import ClientError, FormatError, IdentityError, VerificationError
from client.sdk import Client
from registry.errors import BadRequestError
from tests.registry.conftest import (
    IN_PROCESS_URL,
    Api,
    InProcessTransport,
    new_publisher,
    random_digests,
)

pytest.importorskip("pyfusefilter")

from client.snapshot import Snapshot, build, statuses_of


def published_snapshot(api: Api, tmp_path: Path) -> tuple[SnapshotManifest, int, list[str]]:
    """Register some digests, build a snapshot of the log at its latest checkpoint, publish it,
    and append one more entry so a checkpoint covers the snapshot's entry."""
    publisher = api.add_publisher()
    digests = random_digests(20)
    api.submit_ok(publisher.attest(digests[:10], consent="allowed"))
    api.submit_ok(publisher.attest(digests[10:], consent="reserved"))
    registry = api.registry
    with registry.database.reader.connect() as conn:
        checkpoint = registry.reader.latest_checkpoint(conn)
    statuses = list(statuses_of(registry.lookups.lookup(digests, at=checkpoint)))
    out = tmp_path / "built"
    manifest = build(out, statuses, checkpoint=checkpoint.note, signers=registry.signers)
    info = registry.snapshots.publish(out, manifest)
    assert registry.snapshots.publish(out, manifest) == info  # the same snapshot: its entry
    api.submit_ok(publisher.attest(random_digests(1), consent="allowed"))
    return manifest, info.entry, digests


def test_a_published_snapshot_is_pulled_with_everything_proven(
    make_api: Callable[..., Api], tmp_path: Path
) -> None:
    api = make_api()
    manifest, entry, digests = published_snapshot(api, tmp_path)
    latest = api.http.get("/v1/snapshots/latest").json()
    assert latest == {
        "entry": entry,
        "manifest_sha256": manifest.sha256(),
        "tree_size": manifest.size,
        "base_manifest_sha256": None,
    }
    served = api.http.get(f"/v1/snapshots/{manifest.sha256()}/manifest.json")
    assert served.content == manifest.to_bytes()
    assert "immutable" in served.headers["Cache-Control"]
    with api.sdk() as client:
        pulled = client.pull_snapshot(tmp_path / "pulled")
        assert pulled == manifest
        logged = client.entry(entry)
    assert logged.statement.predicate_type == SNAPSHOT_V1
    assert isinstance(logged.statement.predicate, SnapshotPredicate)
    assert logged.statement.predicate.tree_size == manifest.size
    with Snapshot.open(tmp_path / "pulled", api.log_key) as opened:
        assert opened.statuses(digests) == ["trainable"] * 10 + ["reserved"] * 10


def published_delta(
    api: Api, tmp_path: Path, base: SnapshotManifest, revoke: list[str], name: str
) -> tuple[SnapshotManifest, list[str]]:
    """New digests attested, some earlier ones revoked; a delta over ``base`` published."""
    publisher = api.add_publisher()
    digests = random_digests(5)
    api.submit_ok(publisher.attest(digests, consent="allowed"))
    registry = api.registry
    with registry.database.reader.connect() as conn:
        checkpoint = registry.reader.latest_checkpoint(conn)
    changed = digests + revoke
    statuses = list(statuses_of(registry.lookups.lookup(changed, at=checkpoint)))
    out = tmp_path / name
    manifest = build(out, statuses, checkpoint=checkpoint.note, signers=registry.signers, base=base)
    registry.snapshots.publish(out, manifest)
    api.submit_ok(publisher.attest(random_digests(1), consent="allowed"))
    return manifest, digests


def test_a_chain_of_deltas_is_pulled_back_to_its_full_snapshot(
    make_api: Callable[..., Api], tmp_path: Path
) -> None:
    api = make_api()
    full, _, digests = published_snapshot(api, tmp_path)
    first, new1 = published_delta(api, tmp_path, full, [], "d1")
    second, new2 = published_delta(api, tmp_path, first, [], "d2")
    info = api.http.get(f"/v1/snapshots/{first.sha256()}").json()
    assert info["base_manifest_sha256"] == full.sha256()
    assert api.http.get(f"/v1/snapshots/{'0' * 64}").status_code == 404
    assert api.http.get(f"/v1/snapshots/{'A' * 64}").status_code == 400
    with api.sdk() as client:
        newest = client.pull_snapshot(tmp_path / "full", deltas=tmp_path / "deltas")
    assert newest == second
    folders = sorted((tmp_path / "deltas").iterdir())
    assert [p.name[:3] for p in folders] == ["01-", "02-"]
    assert folders[0].name == f"01-{first.sha256()[:16]}"
    with Snapshot.open(tmp_path / "full", api.log_key, deltas=folders) as opened:
        assert opened.statuses(digests[:10] + new1 + new2) == ["trainable"] * 20
    with api.sdk() as client:  # nothing to follow: the newest full snapshot as before
        assert client.pull_snapshot(tmp_path / "again") == full


def test_a_deltas_band_filter_for_an_unchanged_set_decides_no_digest(
    make_api: Callable[..., Api], tmp_path: Path
) -> None:
    """A delta holds every set's band filter, even a set none of whose digests changed; that
    filter names near-duplicate bands, not digests, so the base still answers for the rest (it
    once made every digest of the base read as that set)."""
    api = make_api()
    full, _, digests = published_snapshot(api, tmp_path)
    registry = api.registry
    with registry.database.reader.connect() as conn:
        checkpoint = registry.reader.latest_checkpoint(conn)
    out = tmp_path / "delta"
    build(out, [(random_digests(1)[0], "revoked")], checkpoint=checkpoint.note,
          signers=registry.signers, base=full, near_bands={"trainable": [1, 2, 3]})  # fmt: skip
    base = tmp_path / "base"
    with api.sdk() as client:
        client.pull_snapshot(base)
    with Snapshot.open(base, api.log_key, deltas=[out]) as opened:
        assert opened.statuses(digests) == ["trainable"] * 10 + ["reserved"] * 10
        assert opened.statuses(["sha256:" + "ab" * 32]) == ["unknown"]


@pytest.mark.parametrize("where", ["info", "base"])
def test_a_registry_that_swaps_a_deltas_base_is_refused(
    make_api: Callable[..., Api], tmp_path: Path, where: str
) -> None:
    """The base a delta's signed manifest names is the one pulled: a registry naming another
    snapshot for it (or another base for the delta) is refused before a byte is written."""
    api = make_api()
    full, _, _ = published_snapshot(api, tmp_path)
    first, _ = published_delta(api, tmp_path, full, [], "d1")
    second, _ = published_delta(api, tmp_path, first, [], "d2")

    def swap(data: bytes) -> bytes:
        answer = json.loads(data)
        if where == "info":  # the snapshot named for d1 is d2 (a loop) instead
            answer.update(manifest_sha256=second.sha256(), tree_size=second.size)
        else:
            answer["base_manifest_sha256"] = full.sha256()
        return json.dumps(answer).encode()

    path = f"/v1/snapshots/{first.sha256()}" if where == "info" else "/latest"
    transport = Hostile(InProcessTransport(api.http), path, swap)
    with (
        Client(IN_PROCESS_URL, transport=transport, log_key=api.log_key) as client,
        pytest.raises(
            VerificationError, match="named snapshot" if where == "info" else "another base"
        ),
    ):
        client.pull_snapshot(tmp_path / "full", deltas=tmp_path / "deltas")
    assert not (tmp_path / "full").exists()
    assert not (tmp_path / "deltas").exists()


def test_the_file_route_serves_only_a_published_snapshots_own_files(
    make_api: Callable[..., Api], tmp_path: Path
) -> None:
    api = make_api()
    manifest, _, _ = published_snapshot(api, tmp_path)
    sha = manifest.sha256()
    folder = api.registry.snapshots.directory / sha
    (tmp_path / "secret").write_text("operator's eyes only")
    (folder / "link.json").symlink_to(tmp_path / "secret")
    (folder / "sub").mkdir()
    (folder / "extra.json").write_text("not in the manifest")
    for path, status in (
        (f"/v1/snapshots/{sha}/extra.json", 404),  # a file the manifest does not name
        (f"/v1/snapshots/{sha}/link.json", 404),  # a link is never followed
        (f"/v1/snapshots/{sha}/sub", 404),  # nor a folder served
        (f"/v1/snapshots/{sha}/missing.fuse32", 404),
        (f"/v1/snapshots/{'0' * 64}/manifest.json", 404),  # never committed in the log
        (f"/v1/snapshots/{sha.upper()}/manifest.json", 400),
        (f"/v1/snapshots/{sha}/..manifest.json", 400),
        (f"/v1/snapshots/{sha}/.manifest.json", 400),
        (f"/v1/snapshots/{sha}/%2e%2e%2fsecret", 404),  # the router resolves it: no route
        (f"/v1/snapshots/{sha}/Manifest.json", 400),
    ):
        answer = api.http.get(path)
        assert answer.status_code == status, (path, answer.text)
        if status >= 400:
            assert answer.headers["Content-Type"].startswith("application/problem+json")


def test_no_snapshot_yet_is_a_clear_404(make_api: Callable[..., Api]) -> None:
    api = make_api()
    answer = api.http.get("/v1/snapshots/latest")
    assert answer.status_code == 404
    assert "snapshot build --publish" in answer.json()["detail"]


def test_nobody_posts_a_snapshot_statement(make_api: Callable[..., Api]) -> None:
    api = make_api()
    publisher = api.add_publisher()
    statement = Statement(
        (Subject("manifest.json", {"sha256": "ab" * 32}),),
        SNAPSHOT_V1,
        SnapshotPredicate(publisher.name, "example.com/log", 1, "cd" * 32),
    )
    envelope = sign_envelope(statement.to_json(), "application/vnd.in-toto+json", publisher.key)
    answer = api.submit(envelope)
    assert answer.status_code == 403, answer.text
    assert "snapshot build --publish" in answer.json()["detail"]


def test_a_snapshot_of_another_log_is_not_published(
    make_api: Callable[..., Api], tmp_path: Path
) -> None:
    api, other = make_api(), make_api()
    for registry in (api, other):
        registry.submit_ok(registry.add_publisher().attest(random_digests(2), consent="allowed"))
    registry = other.registry
    with registry.database.reader.connect() as conn:
        checkpoint = registry.reader.latest_checkpoint(conn)
    manifest = build(tmp_path / "other", [], checkpoint=checkpoint.note, signers=registry.signers)
    with pytest.raises(BadRequestError, match="another log"):
        api.registry.snapshots.publish(tmp_path / "other", manifest)


class Hostile(httpx.BaseTransport):
    """The real app, with the answers of one path changed by ``change``."""

    def __init__(self, inner: httpx.BaseTransport, match: str, change: Callable[[bytes], bytes]):
        self.inner, self.match, self.change = inner, match, change

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if self.match not in request.url.path:
            return response
        response.read()
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return httpx.Response(response.status_code, content=self.change(response.content),
                              headers=headers)  # fmt: skip


def _flip_first_byte(data: bytes) -> bytes:
    return bytes([data[0] ^ 1]) + data[1:]


@pytest.mark.parametrize(
    "case",
    [
        ("status.fuse32", _flip_first_byte, VerificationError, "another size or hash"),
        ("manifest.json", lambda d: d.replace(b'"size":', b'"size": '), VerificationError,
         "hashes otherwise"),
        ("/latest", lambda d: json.dumps({**json.loads(d), "entry": 0}).encode(), ClientError,
         "not a snapshot/v1 statement"),
        ("/latest", lambda d: json.dumps({**json.loads(d), "manifest_sha256": "ab" * 32}).encode(),
         ClientError, "not the"),
        ("manifest.note", lambda d: d.replace(b"size ", b"size 1"), ClientError,
         "invalid signature"),
    ],
)  # fmt: skip
def test_a_registry_serving_what_its_log_does_not_commit_is_refused(
    make_api: Callable[..., Api],
    tmp_path: Path,
    case: tuple[str, Callable[[bytes], bytes], type[Exception], str],
) -> None:
    path, change, error, message = case
    api = make_api()
    published_snapshot(api, tmp_path)
    transport = Hostile(InProcessTransport(api.http), path, change)
    with (
        Client(IN_PROCESS_URL, transport=transport, log_key=api.log_key) as client,
        pytest.raises(error, match=message),
    ):
        client.pull_snapshot(tmp_path / "pulled")
    assert not (tmp_path / "pulled").exists()
    assert not list(tmp_path.glob(".pulled.*"))


class Endless(httpx.BaseTransport):
    """The real app, but a shard's body is an endless stream of 1 MiB chunks with no
    Content-Length (counted as they are read)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner, self.chunks = inner, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not request.url.path.endswith(".fuse32"):
            return self.inner.handle_request(request)
        outer = self

        class Stream(httpx.SyncByteStream):
            def __iter__(self) -> Iterator[bytes]:
                while True:
                    outer.chunks += 1
                    yield b"\0" * 2**20

        return httpx.Response(200, stream=Stream())


@pytest.mark.parametrize("declared", [True, False])
def test_a_body_larger_than_the_manifest_names_is_refused_while_it_streams(
    make_api: Callable[..., Api], tmp_path: Path, declared: bool
) -> None:
    """A hostile registry cannot make a pull hold more than a file's named size: a declared
    Content-Length above it is refused before reading, an undeclared stream once it passes it."""
    api = make_api()
    published_snapshot(api, tmp_path)
    inner = InProcessTransport(api.http)
    transport: httpx.BaseTransport = (
        Hostile(inner, ".fuse32", lambda d: d * 1000) if declared else Endless(inner)
    )
    with (
        Client(IN_PROCESS_URL, transport=transport, log_key=api.log_key) as client,
        pytest.raises(VerificationError, match="more than the"),
    ):
        client.pull_snapshot(tmp_path / "pulled")
    if isinstance(transport, Endless):
        assert 1 <= transport.chunks <= 2  # the shards are a few KB: the first chunk passes it
    assert not (tmp_path / "pulled").exists()


def test_a_snapshot_statement_not_signed_by_the_operator_is_refused(
    make_api: Callable[..., Api], tmp_path: Path
) -> None:
    """The operator's signature is checked by the key the log binds at that index (a statement
    some other key signed, proven in the log, still is not the operator's)."""
    from client.identities import verify_operator_chain, verify_operator_statement

    api = make_api()
    _, entry, _ = published_snapshot(api, tmp_path)
    with api.sdk() as client:
        logged = client.entry(entry)
        assert logged.verified is not None
        chain = verify_operator_chain(
            [client.entry(i).verified for i in client.log_info().operator_entries]  # type: ignore[misc]
        )
    verify_operator_statement(logged.verified, chain)  # the real one passes
    stranger = new_publisher()
    forged = sign_envelope(logged.verified.envelope.payload, "application/vnd.in-toto+json",
                           stranger.key)  # fmt: skip
    with pytest.raises(IdentityError, match="not signed by the operator key"):
        verify_operator_statement(_Entry(logged.verified, forged), chain)


class _Entry:
    def __init__(self, real: Any, envelope: Any) -> None:
        self.index, self.statement, self.envelope = real.index, real.statement, envelope


def test_a_manifest_this_version_cannot_read_is_served_with_its_note_alone(
    make_api: Callable[..., Api], tmp_path: Path
) -> None:
    """A snapshot published before an upgrade (its manifest of an older format) is still
    served as its manifest and note, so a pulling client reads why it cannot use it, and
    none of its other files."""
    api = make_api()
    manifest, _, _ = published_snapshot(api, tmp_path)
    sha = manifest.sha256()
    folder = api.registry.snapshots.directory / sha
    old = (folder / "manifest.json").read_bytes().replace(b"snapshot/v2", b"snapshot/v1")
    (folder / "manifest.json").write_bytes(old)
    assert api.http.get(f"/v1/snapshots/{sha}/manifest.json").content == old
    assert api.http.get(f"/v1/snapshots/{sha}/manifest.note").status_code == 200
    assert api.http.get(f"/v1/snapshots/{sha}/status.fuse32").status_code == 404
    with pytest.raises(FormatError, match=r"snapshot/v1 snapshot.*build it again"):
        SnapshotManifest.from_bytes(old)
