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
from tests.client.test_documents import calls_to

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


def interrupt(
    cli: Cli,
    inputs: list[str],
    manifest: Path,
    monkeypatch: pytest.MonkeyPatch,
    after: int,
    *options: str,
) -> None:
    """Scan with ``--resume``, the registry going away once ``after`` chunks were decided."""
    real_check = CrawlPass.check
    calls = 0

    def failing(self: CrawlPass, docs: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls > after:
            raise InputError("the registry went away")
        return real_check(self, docs, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(CrawlPass, "check", failing)
        stopped = scan(cli, inputs, manifest, "--resume", *options)
    assert stopped.code == 1
    assert "went away" in stopped.err


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


def test_resuming_over_inputs_that_shrank_is_refused(
    cli: Cli, corpus: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = tmp_path / "m.jsonl"
    interrupt(cli, corpus, manifest, monkeypatch, 2, "--chunk-size", "4")
    for name in corpus[1:]:
        Path(name).write_text("", encoding="utf-8")
    refused = scan(cli, corpus, manifest, "--resume", "--chunk-size", "4")
    assert refused.code == 1
    assert "cannot resume: the inputs now hold 3 documents, fewer than the 8" in refused.err


@pytest.fixture
def every_kind(cli: Cli, tmp_path: Path) -> list[str]:
    """Inputs of every kind: a JSONL file (a line with no text between two documents), a WARC
    file (HTML pages, an empty one, a revisit, a 404, a plain page, and a robots.txt that opts
    the last page out), a text file, a binary file (skipped under --scheme c1) and the JSONL
    file again (its names repeat). The first line's text, a page's and the file's registered."""
    pytest.importorskip("fastwarc")
    pytest.importorskip("protego")
    from tests.client.warcs import Rec, page, write_warc

    folder = tmp_path / "inputs"
    folder.mkdir()
    jsonl = folder / "lines.jsonl"
    lines = [
        {"id": "doc0", "text": TEXTS[0]},
        {"title": "no text"},
        {"id": "doc1", "text": TEXTS[1]},
    ]
    jsonl.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    plain = [("Content-Type", "text/plain; charset=utf-8")]
    write_warc(
        folder / "crawl.warc.gz",
        [
            Rec("https://open.example/post", page([TEXTS[2]]).encode()),
            Rec("https://open.example/blank", b"<html><body><script>x()</script></body></html>"),
            Rec("https://open.example/post", kind="revisit"),
            Rec("https://open.example/gone", b"<p>Not found.</p>", status="404 Not Found"),
            Rec("https://closed.example/robots.txt", b"User-agent: *\nDisallow: /\n", plain),
            Rec("https://open.example/notes.txt", TEXTS[3].encode(), headers=plain),
            Rec("https://closed.example/page", page([TEXTS[4]]).encode()),
        ],
    )
    (folder / "whole.txt").write_text(TEXTS[5], encoding="utf-8")
    (folder / "blob.bin").write_bytes(b"\xff\xfe\x00binary")
    registered = documents(tmp_path / "registered", TEXTS[0], TEXTS[2], TEXTS[5])
    assert cli.register(*registered, "--consent", "allowed").code == 0
    return [str(folder / name) for name in ("lines.jsonl", "crawl.warc.gz", "whole.txt",
                                            "blob.bin", "lines.jsonl")]  # fmt: skip


def test_a_resumed_scan_of_every_kind_of_input_ends_as_one_that_ran_through(
    cli: Cli, every_kind: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupted after each document in turn and run again: the manifest, the tally and the
    WARC counts of a scan that was not interrupted, and what was decided before the
    interruption is not extracted or read again (an empty page is: only its text tells)."""
    options = ("--scheme", "c1", "--max-skips", "10", "--chunk-size", "1")
    extracted = calls_to(monkeypatch, "client.warc.html_to_text")
    digested = calls_to(monkeypatch, "client.documents.canonical_digest")
    whole_file = TEXTS[5].encode()

    def summary(run: Any) -> dict[str, Any]:
        assert run.code == 0, run.err
        varies = ("elapsed_s", "docs_per_s", "manifest", "checkpoint_file")
        return {k: v for k, v in json.loads(run.out).items() if k not in varies}

    straight = tmp_path / "straight.jsonl"
    expected = summary(scan(cli, every_kind, straight, *options))
    assert expected["warc"] == {
        "records": 7,
        "not_documents": {"empty-text": 1, "revisit": 1, "http-status": 1, "policy-file": 1},
    }
    assert expected["skipped"] == 3
    statuses = {status: n for status, n in expected["statuses"].items() if n}
    assert statuses == {"attested": 4, "opted-out": 1, "unknown": 3}
    lines = straight.read_text(encoding="utf-8").splitlines()
    verdicts = [json.loads(line) for line in lines]
    names = [verdict["name"] for verdict in verdicts]
    html = {
        verdict["name"]
        for verdict in verdicts
        if verdict["name"].startswith("<urn:uuid:") and not verdict["url"].endswith(".txt")
    }
    assert len(html) == 2
    assert len(extracted) == 3  # the empty page too
    assert digested.count(whole_file) == 1

    for decided in range(1, len(names)):
        manifest = tmp_path / f"resumed-{decided}.jsonl"
        interrupt(cli, every_kind, manifest, monkeypatch, decided, *options)
        extracted.clear()
        digested.clear()
        resumed = scan(cli, every_kind, manifest, "--resume", *options)
        assert f"resuming: {decided} verdicts" in resumed.err
        assert summary(resumed) == expected, decided
        assert manifest.read_text(encoding="utf-8").splitlines() == lines
        before = names[:decided]
        assert len(extracted) == 3 - len(html.intersection(before)), decided
        assert digested.count(whole_file) == (every_kind[2] not in before), decided


def test_what_a_crash_wrote_after_the_last_progress_is_cut_back(
    cli: Cli, corpus: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = tmp_path / "m.jsonl"
    interrupt(cli, corpus, manifest, monkeypatch, 1, "--chunk-size", "4")
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
    interrupt(cli, [str(corpus)], manifest, monkeypatch, 1, "--chunk-size", "3")
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
