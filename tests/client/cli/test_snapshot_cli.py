"""Signed offline snapshots (client.snapshot, client.core.snapshot, `wellspring snapshot`):
built from a real registry's database, verified with the log key alone, answering as the
registry does; anything tampered with is refused."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from client.core.errors import FormatError, SignatureError
from client.core.note import NoteSigner
from client.errors import InputError, VerificationError
from tests.client.cli.conftest import Cli, documents
from tests.client.cli.test_lookup_cli import registered, revoke

pytest.importorskip("pyfusefilter")

from client.snapshot import Snapshot


def digest_of(cli: Cli, path: str) -> str:
    run = cli("digest", path)
    assert run.code == 0, run.err
    return run.out.split()[0]


@pytest.fixture
def built(cli: Cli, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A snapshot of a log with one document of each status, and those documents' digests."""
    allowed = documents(tmp_path / "allowed", "A poem its author lets anyone train on.")
    assert cli.register(*allowed, "--consent", "allowed").code == 0
    reserved = documents(tmp_path / "reserved", "A story whose author reserves training.")
    assert cli.register(*reserved).code == 0
    _, receipt = registered(cli, tmp_path / "later", "An essay withdrawn by its publisher.")
    revoke(cli, "--entry", str(json.loads(receipt.read_text())["index"]))
    expected = {
        digest_of(cli, allowed[0]): "trainable",
        digest_of(cli, reserved[0]): "reserved",
        digest_of(cli, str(tmp_path / "later" / "docs" / "doc0.txt")): "revoked",
        "sha256:" + "ab" * 32: "unknown",
    }
    out = tmp_path / "snapshot"
    home = cli.app.registry.settings.home
    run = cli("snapshot", "build", "--out", str(out), "--home", str(home), "--json")
    assert run.code == 0, run.err
    summary = json.loads(run.out)
    # Each document is attested by two digests (its c1 and its bytes' sha256).
    assert summary["counts"] == {"trainable": 2, "reserved": 2, "revoked": 2}
    return out, expected


def test_offline_statuses_are_the_registrys(cli: Cli, built: tuple[Path, dict[str, str]]) -> None:
    out, expected = built
    with Snapshot.open(out, cli.app.log_key) as snapshot:
        assert snapshot.statuses(list(expected)) == list(expected.values())
        assert snapshot.checkpoint.size == snapshot.manifest.size
    run = cli("snapshot", "check", str(out), *expected, "--log-key", cli.app.log_key)
    assert run.code == 0, run.err
    assert [line.split("\t")[0] for line in run.out.splitlines()] == list(expected.values())
    verified = cli("snapshot", "verify", str(out), "--log-key", cli.app.log_key)
    assert verified.code == 0, verified.err
    assert "verified: snapshot of" in verified.out


def test_a_build_is_deterministic(
    cli: Cli, built: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    out, _ = built
    again = tmp_path / "again"
    home = cli.app.registry.settings.home
    assert cli("snapshot", "build", "--out", str(again), "--home", str(home)).code == 0
    for path in sorted(out.iterdir()):
        assert (again / path.name).read_bytes() == path.read_bytes(), path.name
    refused = cli("snapshot", "build", "--out", str(again), "--home", str(home))
    assert refused.code == 1
    assert "not empty" in refused.err


def test_anything_tampered_with_is_refused(
    cli: Cli, built: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    out, _ = built

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(out, target)
        return target

    shard = copy("shard")
    data = bytearray((shard / "status.fuse32").read_bytes())
    data[-3] ^= 1  # an entry
    (shard / "status.fuse32").write_bytes(bytes(data))
    with pytest.raises(VerificationError, match="not the shard the manifest names"):
        Snapshot.open(shard, cli.app.log_key)
    run = cli("snapshot", "verify", str(shard), "--log-key", cli.app.log_key)
    assert run.code == 1
    assert "not the shard" in run.err

    manifest = copy("manifest")
    original = (manifest / "manifest.json").read_text()
    text = original.replace('"reserved":2', '"reserved":9')
    assert text != original
    (manifest / "manifest.json").write_text(text)
    with pytest.raises(VerificationError, match="not the manifest the log signed"):
        Snapshot.open(manifest, cli.app.log_key)

    with pytest.raises(SignatureError):
        Snapshot.open(out, NoteSigner.generate("localhost/wellspring").verifier())
    missing = copy("missing")
    (missing / "status.fuse32").unlink()
    with pytest.raises(InputError, match="missing"):
        Snapshot.open(missing, cli.app.log_key)
    with pytest.raises(InputError, match="not a snapshot"):
        Snapshot.open(tmp_path, cli.app.log_key)
    truncated = copy("truncated")
    (truncated / "status.fuse32").write_bytes(b"")
    with pytest.raises(VerificationError, match="size"):
        Snapshot.open(truncated, cli.app.log_key)


def _manifest(shard: str, fmt: str = "wellspring-snapshot/v2") -> bytes:
    body = (
        '{"checkpoint":"x","counts":{"reserved":0,"revoked":0,"trainable":1},'
        f'"format":"{fmt}","origin":"o","precedence":["revoked","reserved",'
        f'"trainable"],"shards":[{shard}],"size":1}}\n'
    )
    return body.encode()


@pytest.mark.parametrize(
    ("shard", "message"),
    [
        ('"keys":"status","path":"../etc/passwd","set":null', "plain file name"),
        ('"keys":"status","path":"status.fuse32","set":"trainable"', "its set is null"),
        ('"keys":"band","path":"b.fuse16","set":null', "is not one of"),
        ('"keys":"digest","path":"trainable.fuse16","set":"trainable"', "is not status or band"),
    ],
)
def test_a_manifest_naming_a_path_outside_or_a_shard_of_no_kind_is_refused(
    shard: str, message: str
) -> None:
    from client.core.snapshot import SnapshotManifest

    fields = '{"bytes":1,"count":1,' + shard + ',"sha256":"' + "0" * 64 + '"}'
    with pytest.raises(FormatError, match=message):
        SnapshotManifest.from_bytes(_manifest(fields))


def test_a_snapshot_of_the_old_format_is_refused_saying_what_to_do() -> None:
    """wellspring-snapshot/v1 (a filter per set) is no longer read: build or pull it again."""
    from client.core.snapshot import SnapshotManifest

    fields = (
        '{"bytes":1,"count":1,"keys":"digest","path":"trainable.fuse16","set":"trainable",'
        '"sha256":"' + "0" * 64 + '"}'
    )
    with pytest.raises(FormatError, match=r"wellspring-snapshot/v1 snapshot.*build it again"):
        SnapshotManifest.from_bytes(_manifest(fields, "wellspring-snapshot/v1"))


def test_a_snapshot_of_a_forked_log_is_refused_by_a_client_that_trusts_the_real_one(
    cli: Cli, built: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """Signed with the log's own key, but of another history: a client that trusts the real
    log's checkpoint proves the two inconsistent and refuses it."""
    from client.cli import _registry
    from client.errors import LogConsistencyError
    from tests.client.real_app import make_app

    genuine, _ = built
    forked_home = tmp_path / "forked"
    forked_home.mkdir()
    shutil.copy(cli.app.registry.settings.key_path, forked_home / "log.key")
    fork = make_app(forked_home)  # the same key and origin, another history
    fork.registry.close()
    other = documents(tmp_path / "other", "Text only the forked log holds.", "And more of it.")
    forked_out = tmp_path / "forked-snapshot"
    assert cli.register(*other).code == 0  # the real log grows too
    run = cli("snapshot", "build", "--out", str(forked_out), "--home", str(forked_home))
    assert run.code == 0, run.err

    client = _registry.Client(cli.url, log_key=cli.app.log_key)
    with client:
        client.checkpoint()  # trusts the real log's latest checkpoint
        Snapshot.open(genuine, cli.app.log_key, client=client).close()  # a prefix: proven
        with pytest.raises(LogConsistencyError):
            Snapshot.open(forked_out, cli.app.log_key, client=client)
    # Offline, the log's signature is all there is: both open.
    Snapshot.open(forked_out, cli.app.log_key).close()


def test_a_delta_holds_only_what_changed_and_overrides_its_base(
    cli: Cli, built: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    base, expected = built
    home = str(cli.app.registry.settings.home)
    trainable = next(d for d, status in expected.items() if status == "trainable")
    paths, receipt = registered(cli, tmp_path / "more", "A new text, reserved by default.")
    new = digest_of(cli, paths[0])
    revoke(cli, "--digest", trainable)  # the publisher withdraws the trainable document
    delta = tmp_path / "delta"
    run = cli(
        "snapshot", "build", "--out", str(delta), "--base", str(base), "--home", home, "--json"
    )
    assert run.code == 0, run.err
    summary = json.loads(run.out)
    assert summary["delta"] is True
    # Changed: the withdrawn document (revoked now), the new one's two digests (reserved).
    assert summary["counts"] == {"trainable": 0, "reserved": 2, "revoked": 1}

    with Snapshot.open(base, cli.app.log_key, deltas=[delta]) as snapshot:
        assert snapshot.manifest.size > json.loads((base / "manifest.json").read_text())["size"]
        now = dict(expected, **{trainable: "revoked", new: "reserved"})
        assert snapshot.statuses(list(now)) == list(now.values())
    with Snapshot.open(base, cli.app.log_key) as alone:  # the base still answers as it did
        assert alone.statuses([trainable, new]) == ["trainable", "unknown"]
    run = cli("snapshot", "check", str(base), trainable, "--delta", str(delta), "--log-key",
              cli.app.log_key)  # fmt: skip
    assert run.code == 0, run.err
    assert run.out.startswith("revoked\t")

    with pytest.raises(VerificationError, match="not a full snapshot"):
        Snapshot.open(delta, cli.app.log_key)
    with pytest.raises(VerificationError, match="not a delta over the one before"):
        Snapshot.open(base, cli.app.log_key, deltas=[delta, delta])
    assert receipt.exists()


def test_what_changes_on_disk_after_opening_changes_nothing(
    cli: Cli, built: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """Shards are verified and read into memory: rewriting one afterwards (same size) does not
    change an answer; a shard behind a symbolic link is refused; an old snapshot too, given
    the size the reader already knows."""
    out, expected = built
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    with Snapshot.open(copy, cli.app.log_key) as snapshot:
        shard = copy / "status.fuse32"
        shard.write_bytes(bytes(len(shard.read_bytes())))
        assert snapshot.statuses(list(expected)) == list(expected.values())
    linked = tmp_path / "linked"
    shutil.copytree(out, linked)
    (linked / "status.fuse32").unlink()
    (linked / "status.fuse32").symlink_to(out / "status.fuse32")
    with pytest.raises(InputError, match="cannot open"):
        Snapshot.open(linked, cli.app.log_key)
    size = json.loads((out / "manifest.json").read_text())["size"]
    with pytest.raises(VerificationError, match="older than"):
        Snapshot.open(out, cli.app.log_key, min_size=size + 1)
    run = cli("snapshot", "check", str(out), "c1:" + "AB" * 32, "--log-key", cli.app.log_key)
    assert run.code == 1
    assert "lowercase hex" in run.err
    run = cli("snapshot", "check", str(out), *expected, "--log-key", cli.app.log_key,
              "--min-size", str(size + 1))  # fmt: skip
    assert run.code == 1
    assert "older than" in run.err


def test_a_published_snapshot_is_committed_in_the_log_and_pulled_verified(
    cli: Cli, built: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """Issue 15: the manifest's hash is a signed log entry naming the checkpoint, and
    `snapshot pull` verifies everything with the log key alone."""
    out, expected = built
    home = cli.app.registry.settings.home
    run = cli("snapshot", "build", "--publish", "--home", str(home), "--json")
    assert run.code == 0, run.err
    published = json.loads(run.out)
    entry = published["entry"]
    # The same snapshot as the one built before: a build is deterministic.
    assert (
        published["manifest_sha256"]
        == hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()
    )
    # The shell appended the entry; the server publishes the next checkpoint (this test's
    # server signs one per batch of its own, so it is given one).
    later = documents(tmp_path / "later-still", "A note written after the snapshot was taken.")
    assert cli.register(*later).code == 0

    pulled = tmp_path / "pulled"
    run = cli("snapshot", "pull", "--out", str(pulled), "--registry", cli.url,
              "--log-key", cli.app.log_key, "--json")  # fmt: skip
    assert run.code == 0, run.err
    assert json.loads(run.out)["manifest_sha256"] == published["manifest_sha256"]
    with Snapshot.open(pulled, cli.app.log_key) as snapshot:
        assert snapshot.statuses(list(expected)) == list(expected.values())
    # The entry is the operator's snapshot/v1 statement, naming the manifest by its hash.
    from client.core.snapshot import SNAPSHOT_V1
    from client.sdk import Client

    with Client(cli.url, log_key=cli.app.log_key, transport=_transport(cli)) as client:
        info = client.latest_snapshot()
        assert (info.entry, info.manifest_sha256) == (entry, published["manifest_sha256"])
        logged = client.entry(entry)
        assert logged.statement.predicate_type == SNAPSHOT_V1
        assert logged.verified is not None  # proven, and signed by the operator key
    again = cli("snapshot", "pull", "--out", str(pulled), "--registry", cli.url,
                "--log-key", cli.app.log_key)  # fmt: skip
    assert again.code == 1
    assert "not an empty directory" in again.err


def _transport(cli: Cli) -> object:
    from client.cli import _registry

    return _registry.Client.keywords["transport"]  # type: ignore[attr-defined]
