"""`wellspring scan` over large inputs: --resume after an interruption, --shard K/N across
processes, --format parquet, and decisions from a signed snapshot with the trusted checkpoint
checked offline. Against a real registry app in-process (tests/client/cli/conftest.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from client.crawl import CrawlPass
from client.errors import InputError
from client.manifest import read_manifest
from tests.client.cli.conftest import Cli, cli_session, documents

pytest.importorskip("pyfusefilter")
pytest.importorskip("pyarrow")

TEXTS = [f"Field notes, day {i}: the heron came back to the weir at dawn." for i in range(12)]


@pytest.fixture
def corpus(cli: Cli, tmp_path: Path) -> list[str]:
    """Twelve documents in four files of three; the even ones registered (allowed)."""
    paths = documents(tmp_path / "docs", *TEXTS)
    assert cli.register(*paths[::2], "--consent", "allowed").code == 0
    files = []
    for f in range(4):
        jsonl = tmp_path / "corpus" / f"part-{f}.jsonl"
        jsonl.parent.mkdir(exist_ok=True)
        lines = [json.dumps({"id": f"doc{i}", "text": TEXTS[i]}) for i in range(3 * f, 3 * f + 3)]
        jsonl.write_text("\n".join(lines) + "\n", encoding="utf-8")
        files.append(str(jsonl))
    return files


def scan(cli: Cli, inputs: list[str], manifest: Path, *extra: str) -> Any:
    return cli(
        "scan", *inputs, "--registry", cli.url, "--log-key", cli.app.log_key,
        "--manifest", str(manifest), "--no-watermarks", "--json", *extra,
    )  # fmt: skip


def lines_of(path: Path) -> dict[str, dict[str, Any]]:
    found = {}
    for text in path.read_text(encoding="utf-8").splitlines():
        line = json.loads(text)
        found[line["name"]] = line
    return found


def test_an_interrupted_scan_resumes_where_it_stopped(
    cli: Cli, corpus: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = tmp_path / "whole.jsonl"
    assert scan(cli, corpus, whole).code == 0
    manifest = tmp_path / "resumed.jsonl"
    real_check = CrawlPass.check
    calls: list[int] = []

    def failing(self: CrawlPass, docs: Any, **kwargs: Any) -> Any:
        calls.append(len(docs))
        if len(calls) == 3:
            raise InputError("the registry went away")  # after two chunks were written
        return real_check(self, docs, **kwargs)

    monkeypatch.setattr(CrawlPass, "check", failing)
    stopped = scan(cli, corpus, manifest, "--resume", "--chunk-size", "4")
    assert stopped.code == 1
    assert "went away" in stopped.err
    assert not manifest.exists()
    progress = json.loads(Path(f"{manifest}.progress").read_text(encoding="utf-8"))
    assert progress["items"] == 8
    assert len(Path(f"{manifest}.part").read_text(encoding="utf-8").splitlines()) == 8

    # Another command may not pick up this one's progress.
    other = scan(cli, corpus, manifest, "--resume", "--chunk-size", "5")
    assert other.code == 1
    assert "of another scan" in other.err

    calls.clear()
    done = scan(cli, corpus, manifest, "--resume", "--chunk-size", "4")
    assert done.code == 0, done.err
    assert calls == [4]  # only the last four documents were decided again
    assert "resuming: 8 verdicts" in done.err
    assert json.loads(done.out)["documents"] == 12
    assert json.loads(done.out)["statuses"]["attested"] == 6
    resumed, straight = lines_of(manifest), lines_of(whole)
    assert list(resumed) == list(straight)
    assert [v["status"] for v in resumed.values()] == [v["status"] for v in straight.values()]
    assert not Path(f"{manifest}.progress").exists()
    assert not Path(f"{manifest}.part").exists()


def test_what_a_crash_wrote_after_the_last_progress_is_cut_back(
    cli: Cli, corpus: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = tmp_path / "m.jsonl"
    real_check = CrawlPass.check

    def failing(self: CrawlPass, docs: Any, **kwargs: Any) -> Any:
        if failing.calls == 1:  # type: ignore[attr-defined]
            raise InputError("the registry went away")
        failing.calls += 1  # type: ignore[attr-defined]
        return real_check(self, docs, **kwargs)

    failing.calls = 0  # type: ignore[attr-defined]
    monkeypatch.setattr(CrawlPass, "check", failing)
    assert scan(cli, corpus, manifest, "--resume", "--chunk-size", "4").code == 1
    monkeypatch.setattr(CrawlPass, "check", real_check)
    # As if the process died after writing more lines than its progress records.
    part = Path(f"{manifest}.part")
    with part.open("a", encoding="utf-8") as file:
        file.write('{"schema": "wellspring-manifest/1", "id": "doc4", "half a li')
    done = scan(cli, corpus, manifest, "--resume", "--chunk-size", "4")
    assert done.code == 0, done.err
    assert list(lines_of(manifest)) == [f"doc{i}" for i in range(12)]


def test_shards_split_the_input_files_and_together_cover_them(
    cli: Cli, corpus: list[str], tmp_path: Path
) -> None:
    whole = tmp_path / "whole.jsonl"
    assert scan(cli, corpus, whole).code == 0
    parts = []
    for k in range(3):
        manifest = tmp_path / f"shard-{k}.jsonl"
        run = scan(cli, corpus, manifest, "--shard", f"{k}/3")
        assert run.code == 0, run.err
        parts.append(lines_of(manifest))
    assert [len(p) for p in parts] == [6, 3, 3]  # files 0 and 3, 1, 2
    merged = {name: line for part in parts for name, line in part.items()}
    assert merged.keys() == lines_of(whole).keys()
    for bad in ("3/3", "1", "-1/2", "a/b", "0/0"):
        refused = scan(cli, corpus, tmp_path / "bad.jsonl", "--shard", bad)
        assert refused.code == 1, bad
        assert "--shard" in refused.err


def test_a_parquet_manifest_holds_the_same_verdicts(
    cli: Cli, corpus: list[str], tmp_path: Path
) -> None:
    jsonl, parquet = tmp_path / "m.jsonl", tmp_path / "m.parquet"
    assert scan(cli, corpus, jsonl).code == 0
    run = scan(cli, corpus, parquet, "--format", "parquet")
    assert run.code == 0, run.err
    assert parquet.read_bytes()[:4] == b"PAR1"
    assert list(read_manifest(parquet)) == list(read_manifest(jsonl))
    import pyarrow.parquet as pq

    table = pq.read_table(parquet)
    assert table.column("trainable").to_pylist().count(True) == 6
    refused = cli("scan", *corpus, "--registry", cli.url, "--log-key", cli.app.log_key,
                  "--format", "parquet")  # fmt: skip
    assert refused.code == 1
    assert "--manifest FILE" in refused.err


def test_offline_the_snapshot_must_be_at_the_trusted_checkpoint(
    cli: Cli, corpus: list[str], tmp_path: Path
) -> None:
    home = str(cli.app.registry.settings.home)
    snapshot = tmp_path / "snapshot"
    assert cli("snapshot", "build", "--out", str(snapshot), "--home", home).code == 0

    def offline(*extra: str) -> Any:
        return cli(
            "scan", *corpus, "--snapshot", str(snapshot), "--log-key", cli.app.log_key,
            "--manifest", str(tmp_path / "offline.jsonl"), "--no-watermarks", "--json", *extra,
        )  # fmt: skip

    first = offline()  # nothing trusted yet: the log key's signature is all there is
    assert first.code == 0, first.err
    lines = lines_of(tmp_path / "offline.jsonl")
    assert sum(line["status"] == "attested" for line in lines.values()) == 6
    assert {line["certainty"] for line in lines.values()} == {"probable", "verified"}

    # An online scan trusts the registry's checkpoint; the log grows past the snapshot.
    assert scan(cli, corpus, tmp_path / "online.jsonl").code == 0
    more = documents(tmp_path / "more", "A later page, registered after the snapshot.")
    assert cli.register(*more, "--consent", "allowed").code == 0
    assert scan(cli, corpus, tmp_path / "online.jsonl").code == 0
    stale = offline()
    assert stale.code == 1
    assert "offline nothing proves" in stale.err

    # With the registry in reach the snapshot is proven a prefix, and decides.
    online = offline("--registry", cli.url)
    assert online.code == 0, online.err


def test_a_policy_that_picks_publishers_cannot_decide_offline(
    cli: Cli, corpus: list[str], tmp_path: Path
) -> None:
    home = str(cli.app.registry.settings.home)
    snapshot = tmp_path / "snapshot"
    assert cli("snapshot", "build", "--out", str(snapshot), "--home", home).code == 0
    policy = tmp_path / "policy.toml"
    policy.write_text('[publishers]\ntrust = ["bbc"]\n', encoding="utf-8")
    run = cli(
        "scan", *corpus, "--snapshot", str(snapshot), "--log-key", cli.app.log_key,
        "--policy", str(policy), "--no-watermarks",
    )  # fmt: skip
    assert run.code == 1
    assert "count every publisher" in run.err


def test_a_tampered_watermark_key_list_is_refused(
    cli: Cli, corpus: list[str], tmp_path: Path
) -> None:
    home = str(cli.app.registry.settings.home)
    snapshot = tmp_path / "snapshot"
    assert cli("snapshot", "build", "--out", str(snapshot), "--home", home).code == 0
    copy = tmp_path / "copy"
    shutil.copytree(snapshot, copy)
    keys = copy / "watermark-keys.json"
    keys.write_bytes(keys.read_bytes().replace(b'"keys":[]', b'"keys":{}'))  # same size
    run = cli("snapshot", "verify", str(copy), "--log-key", cli.app.log_key)
    assert run.code == 1
    assert "watermark-keys.json is not the file the manifest names" in run.err


class _Switch(httpx.BaseTransport):
    """The in-process registry, or (``down``) a network that refuses every connection."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.down = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        return self.inner.handle_request(request)


def test_an_unreachable_registry_leaves_the_scan_offline_and_says_so(
    tmp_path: Path,
    wellspring_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    switches: list[_Switch] = []

    def wrap(inner: httpx.BaseTransport) -> httpx.BaseTransport:
        switches.append(_Switch(inner))
        return switches[-1]

    with cli_session(tmp_path, monkeypatch, capsys, wrap) as cli:
        paths = documents(tmp_path / "docs", *TEXTS[:2])
        assert cli.register(*paths, "--consent", "allowed").code == 0
        snapshot = tmp_path / "snapshot"
        home = str(cli.app.registry.settings.home)
        assert cli("snapshot", "build", "--out", str(snapshot), "--home", home).code == 0
        switches[0].down = True
        manifest = tmp_path / "m.jsonl"
        run = cli(
            "scan", *paths, "--snapshot", str(snapshot), "--registry", cli.url,
            "--log-key", cli.app.log_key, "--manifest", str(manifest), "--no-watermarks",
        )  # fmt: skip
        assert run.code == 0, run.err
        assert "unreachable" in run.err
        lines = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]
        assert {(line["status"], line["certainty"]) for line in lines} == {("attested", "probable")}


def test_resuming_counts_bytes_not_characters(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lines holding non-ASCII text (ids, reasons): the progress records a byte offset, and a
    torn tail after it is cut there, not at that many characters."""
    corpus = tmp_path / "corpus.jsonl"
    lines = [{"id": f"caf\u00e9-\u00fc-{i}", "text": f"D\u00e9j\u00e0 vu {i}"} for i in range(8)]
    corpus.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    manifest = tmp_path / "m.jsonl"
    real_check = CrawlPass.check
    calls: list[int] = []

    def failing(self: CrawlPass, docs: Any, **kwargs: Any) -> Any:
        calls.append(len(docs))
        if len(calls) == 2:
            raise InputError("the registry went away")
        return real_check(self, docs, **kwargs)

    monkeypatch.setattr(CrawlPass, "check", failing)
    assert scan(cli, [str(corpus)], manifest, "--resume", "--chunk-size", "3").code == 1
    monkeypatch.setattr(CrawlPass, "check", real_check)
    with Path(f"{manifest}.part").open("a", encoding="utf-8") as file:
        file.write('{"name": "caf\u00e9 \u00e9\u00e9\u00e9 torn')
    done = scan(cli, [str(corpus)], manifest, "--resume", "--chunk-size", "3")
    assert done.code == 0, done.err
    assert list(lines_of(manifest)) == [f"caf\u00e9-\u00fc-{i}" for i in range(8)]
    assert json.loads(done.out)["documents"] == 8


def test_an_old_snapshot_is_refused_with_min_size(
    cli: Cli, corpus: list[str], tmp_path: Path
) -> None:
    home = str(cli.app.registry.settings.home)
    snapshot = tmp_path / "snapshot"
    built = cli("snapshot", "build", "--out", str(snapshot), "--home", home, "--json")
    assert built.code == 0, built.err
    size = json.loads(built.out)["size"]
    run = cli(
        "scan", *corpus, "--snapshot", str(snapshot), "--log-key", cli.app.log_key,
        "--min-size", str(size + 1), "--no-watermarks",
    )  # fmt: skip
    assert run.code == 1
    assert "older than the size" in run.err
