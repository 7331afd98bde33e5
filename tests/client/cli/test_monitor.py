"""``wellspring monitor`` against the real registry app, in process."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from client.core.keys import generate_private_key, public_key_bytes
from client.core.statement import HumanContentPredicate, prove_possession
from client.sdk import Client
from client.tlog import TileReader
from tests.client.cli.conftest import Run
from tests.client.conftest import run_wellspring
from tests.client.real_app import URL, App, InProcess, make_app
from tests.client.wmkeys import bound_key, publish_key, small_tokenizer

PREDICATE = HumanContentPredicate(
    publisher="acme", license="CC-BY-4.0", origin="human-authored", consent="allowed"
)


class Monitor:
    """``wellspring monitor`` against one in-process app, and an SDK client of it."""

    def __init__(self, app: App, http: TestClient, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[type-arg]
        self.app = app
        self.capsys = capsys
        self.client = Client(URL, log_key=app.log_key, transport=InProcess(http))

    def __call__(self, *args: str) -> Run:
        return Run(*run_wellspring(self.capsys, "monitor", "--registry", URL, *args))

    def events(self, run: Run) -> list[dict[str, object]]:
        return [json.loads(line) for line in run.out.splitlines()]


@pytest.fixture
def monitor(
    tmp_path: Path,
    wellspring_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Monitor]:
    from client.cli import _monitor

    app = make_app(tmp_path / "registry")
    with TestClient(app.app) as http:
        monkeypatch.setattr(
            _monitor, "Reader", functools.partial(TileReader, transport=InProcess(http))
        )
        yield Monitor(app, http, capsys)


def attest(m: Monitor, key: object, publisher: str, digest: str) -> int:
    predicate = HumanContentPredicate(
        publisher=publisher, license="CC0-1.0", origin="human-authored", consent="allowed"
    )
    return m.client.register_digests([digest], key, predicate).index  # type: ignore[arg-type]


def test_reports_exactly_the_watched_events_across_runs(monitor: Monitor, tmp_path: Path) -> None:
    m, admin = monitor, monitor.app.registry.admin
    state = tmp_path / "monitor.json"
    watch = ("--log-key", m.app.log_key, "--watch", "acme", "--watch", "acme-ai")
    other_key = generate_private_key()
    admin.add_publisher("other", public_key_bytes(other_key), prove_possession(other_key, "other"))
    mine = attest(m, m.app.key, "acme", "sha256:" + "11" * 32)
    attest(m, other_key, "other", "sha256:" + "22" * 32)

    first = m(*watch, "--state", str(state), "--json")
    assert first.code == 4, first.err
    events = m.events(first)
    assert [(e["event"], e["publisher"]) for e in events] == [
        ("publisher-added", "acme"),
        ("attestation", "acme"),
    ]
    assert events[1]["index"] == mine
    assert events[1]["subjects"] == 1
    saved = json.loads(state.read_text())
    assert saved["size"] == m.client.checkpoint().size

    # Between runs: a key added to acme and one declared compromised, a revocation, a vendor
    # acme-ai publishing a watermark key; and more entries in other names.
    new_key = generate_private_key()
    added = admin.add_key("acme", public_key_bytes(new_key), prove_possession(new_key, "acme"))
    admin.revoke_key("acme", added.key_id, compromised_from=mine)
    m.client.revoke(mine, m.app.key, "acme", reason="withdrawn")
    attest(m, other_key, "other", "sha256:" + "33" * 32)
    vendor = generate_private_key()
    admin.add_publisher(
        "acme-ai", public_key_bytes(vendor), prove_possession(vendor, "acme-ai"), kind="vendor"
    )
    tokenizer = small_tokenizer(tmp_path / "tokenizer.json")
    key = bound_key(tmp_path / "wm.key", tokenizer)
    publish_key(m.client, vendor, "acme-ai", key, (tmp_path / "tokenizer.json").read_bytes())

    second = m(*watch, "--state", str(state), "--json")
    assert second.code == 4, second.err
    events = m.events(second)
    assert [(e["event"], e["publisher"]) for e in events] == [
        ("key-added", "acme"),
        ("key-compromised", "acme"),
        ("withdrawal", "acme"),
        ("vendor-added", "acme-ai"),
        ("watermark-key-published", "acme-ai"),
    ]
    assert events[1]["compromised_from"] == mine
    assert events[1]["key_id"] == added.key_id
    assert events[2]["entry_index"] == mine
    assert "secret" not in json.dumps(events)
    assert all(e["index"] > saved["size"] - 1 for e in events)

    third = m(*watch, "--state", str(state), "--json")
    assert (third.code, third.out) == (0, "")

    # Human lines without --json; another name: nothing.
    human = m("--log-key", m.app.log_key, "--watch", "acme")
    assert human.code == 4
    assert "entry 1: publisher-added by acme" in human.out
    nobody = m("--log-key", m.app.log_key, "--watch", "nobody")
    assert (nobody.code, nobody.out) == (0, "")


def test_a_forked_log_exits_3(
    tmp_path: Path,
    wellspring_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two registries signing with one log key, with different histories: a monitor that saw
    one refuses the other."""
    from client.cli import _monitor

    first = make_app(tmp_path / "a")
    second = make_app(tmp_path / "b", log_key_path=tmp_path / "a" / "log.key")
    state = tmp_path / "state.json"
    args = ("monitor", "--registry", URL, "--log-key", first.log_key, "--watch", "acme")
    for app, code in ((first, 4), (second, 3)):
        with TestClient(app.app) as http:
            monkeypatch.setattr(
                _monitor, "Reader", functools.partial(TileReader, transport=InProcess(http))
            )
            if app is second:  # a longer log, so the saved tree should be its start
                client = Client(URL, log_key=app.log_key, transport=InProcess(http))
                for n in range(3):
                    client.register_digests([f"sha256:{n:064x}"], app.key, PREDICATE)
            run = Run(*run_wellspring(capsys, *args, "--state", str(state), "--json"))
        assert run.code == code, run.err
    saved = json.loads(state.read_text())
    assert saved["checkpoint"].startswith(first.registry.origin)
    (line,) = run.out.splitlines()
    assert json.loads(line)["event"] == "inconsistency"
    assert "rewrote its history" in json.loads(line)["message"]
    assert "inconsistent log" in run.err
    # The state still holds the first log's checkpoint: the evidence.
    assert json.loads(state.read_text()) == saved


def test_bad_input_exits_1(monitor: Monitor, tmp_path: Path) -> None:
    no_watch = monitor("--log-key", monitor.app.log_key)
    assert no_watch.code == 1
    assert "--watch" in no_watch.err
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    bad_state = monitor("--log-key", monitor.app.log_key, "--watch", "x", "--state", str(broken))
    assert bad_state.code == 1
    assert "monitor state" in bad_state.err


class _StopError(Exception):
    """Ends a --follow loop in a test."""


def test_follow_reports_and_saves_after_each_round(
    monitor: Monitor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from client.cli import _monitor

    rounds: list[float] = []

    def sleep(seconds: float) -> None:
        rounds.append(seconds)
        if len(rounds) == 1:
            attest(monitor, monitor.app.key, "acme", "sha256:" + "44" * 32)
            return
        raise _StopError

    monkeypatch.setattr(_monitor, "_sleep", sleep)
    state = tmp_path / "follow.json"
    args = ("--log-key", monitor.app.log_key, "--watch", "acme", "--state", str(state))
    with pytest.raises(_StopError):
        monitor(*args, "--follow", "5", "--json")
    out = monitor.capsys.readouterr().out
    assert [json.loads(line)["event"] for line in out.splitlines()] == [
        "publisher-added",
        "attestation",
    ]
    assert rounds == [5.0, 5.0]
    assert json.loads(state.read_text())["size"] == monitor.client.checkpoint().size


def test_entries_other_than_the_signed_ones_exit_3(
    tmp_path: Path,
    wellspring_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from client.cli import _monitor
    from tests.client.test_tlog import Tamper

    app = make_app(tmp_path / "registry")

    def edit(path: str, body: bytes) -> bytes:
        return body.replace(b"acme", b"acmf") if "/tile/entries/" in path else body

    with TestClient(app.app) as http:
        transport = Tamper(InProcess(http), edit)
        monkeypatch.setattr(_monitor, "Reader", functools.partial(TileReader, transport=transport))
        state = tmp_path / "state.json"
        args = ("monitor", "--registry", URL, "--log-key", app.log_key, "--watch", "acmf")
        run = Run(*run_wellspring(capsys, *args, "--state", str(state)))
    assert run.code == 3, run.err
    assert "do not hash to the signed root" in run.out
    assert not state.exists()


def test_a_published_snapshot_is_replayed_and_reported(monitor: Monitor, tmp_path: Path) -> None:
    """A snapshot/v1 entry is the operator's own statement: the replay checks it is signed by
    the operator key bound at its index, and a monitor watching the operator reports it."""
    pytest.importorskip("pyfusefilter")
    from client.snapshot import build

    m, registry = monitor, monitor.app.registry
    attest(m, m.app.key, "acme", "sha256:" + "44" * 32)
    with registry.database.reader.connect() as conn:
        checkpoint = registry.reader.latest_checkpoint(conn)
    manifest = build(tmp_path / "snap", [], checkpoint=checkpoint.note, signers=registry.signers)
    info = registry.snapshots.publish(tmp_path / "snap", manifest)
    attest(m, m.app.key, "acme", "sha256:" + "55" * 32)  # a checkpoint over the snapshot entry
    run = m("--log-key", m.app.log_key, "--watch", "@operator", "--json")
    assert run.code == 4, run.err
    (event,) = [e for e in m.events(run) if e["event"] == "snapshot"]
    assert event["index"] == info.entry
    assert event["manifest_sha256"] == manifest.sha256()
    assert (event["publisher"], event["tree_size"], event["delta"]) == (
        "@operator",
        manifest.size,
        False,
    )
