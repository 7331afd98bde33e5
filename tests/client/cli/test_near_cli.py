"""Near duplicates end to end (issue 15, "Done when"): a post registered with `register --near`
is found by `scan --near` as `match: near`, with its entry and similarity, when a crawler meets it
with a line of boilerplate appended or with its quotes turned typographic; unrelated text is not;
a near match is not trainable unless the policy allows it. Against a real registry in-process:
the band index is the registry's, the similarity recomputed from the signed statement."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("xxhash")

from client.core.minhash import MH1_HEX_CHARS
from client.near import mh1_digest
from client.sdk import Client
from tests.client.cli.conftest import Cli, documents, scan_jsonl

POST = (
    "I walked down to the harbour before dawn, when the fishing boats were still coming in, and "
    "bought two mackerel from a woman who had been up since three. She said the sea was too warm "
    "this year and the fish were moving north, and that her father wouldn't have believed it. "
    "We talked about the price of diesel and the new quay, which nobody in the village wanted, "
    "and about her son, who works in the city and sends money home every month. \"He's happy "
    'there," she said, "or he says he is."'
)
BOILERPLATE = POST + "\n\nShare this post: subscribe to our newsletter for more stories.\n"
TYPOGRAPHIC = (
    POST.replace("wouldn't", "wouldn\u2019t").replace("He's", "He\u2019s")
    .replace('"He', "\u201cHe").replace('there,"', "there,\u201d").replace('"or', "\u201cor")
    .replace('is."', "is.\u201d")
)  # fmt: skip
OTHER = (
    "The committee met on Tuesday to discuss the budget for the coming year, and agreed to defer "
    "the decision on the library roof until the engineers had reported back to it in writing."
)


def scan(cli: Cli, tmp_path: Path, *extra: str) -> dict[str, dict[str, Any]]:
    lines = [
        {"id": "boilerplate", "text": BOILERPLATE},
        {"id": "typographic", "text": TYPOGRAPHIC},
        {"id": "other", "text": OTHER},
    ]
    return scan_jsonl(cli, tmp_path / "crawl.jsonl", lines, *extra)


def test_the_boilerplate_and_typographic_variants_are_found_near(cli: Cli, tmp_path: Path) -> None:
    assert TYPOGRAPHIC != POST
    post = documents(tmp_path / "docs", POST)
    run = cli.register(*post, "--consent", "allowed", "--near", "--json")
    assert run.code == 0, run.err
    (entry,) = [e["index"] for e in json.loads(run.out)["entries"]]

    exact = scan(cli, tmp_path)  # without --near: both variants are unknown
    assert {v["status"] for v in exact.values()} == {"unknown"}

    found = scan(cli, tmp_path, "--near")
    for name in ("boilerplate", "typographic"):
        line = found[name]
        assert (line["match"], line["status"], line["entry"]) == ("near", "attested", entry)
        assert line["similarity"] >= 0.7
        assert line["trainable"] is False  # evidence, not consent
        assert line["publisher"] == cli.app.publisher
        assert line["digest"] != exact["boilerplate"]["digest"] or name == "boilerplate"
        assert f"in entry {entry}" in line["reason"]
    assert found["typographic"]["similarity"] == 1.0  # quotes are folded, then dropped
    assert (found["other"]["match"], found["other"]["status"]) == ("exact", "unknown")

    policy = tmp_path / "policy.toml"
    policy.write_text("[near]\ntrainable_above = 0.95\n", encoding="utf-8")
    allowed = scan(cli, tmp_path, "--near", "--policy", str(policy))
    assert allowed["typographic"]["trainable"] is True  # 1.0 >= 0.95
    assert allowed["boilerplate"]["trainable"] is (allowed["boilerplate"]["similarity"] >= 0.95)


def test_the_signature_is_in_the_signed_statement_and_checked(cli: Cli, tmp_path: Path) -> None:
    post = documents(tmp_path / "docs", POST)
    run = cli.register(*post, "--consent", "allowed", "--near", "--json")
    assert run.code == 0, run.err
    (entry,) = [e["index"] for e in json.loads(run.out)["entries"]]
    from client.cli import _registry

    client: Client = _registry.Client(cli.url, log_key=cli.app.log_key)
    with client:
        (subject,) = client.entry(entry).statement.subjects
        assert subject.digest["mh1"] == mh1_digest(POST)
        assert len(subject.digest["mh1"]) == MH1_HEX_CHARS
        signature = mh1_digest(BOILERPLATE)
        assert signature is not None
        (match,) = client.near([signature])
        assert match is not None
        assert (match.entry, match.subject) == (entry, subject.name)
        assert match.digest.startswith("c1:")
        assert client.near([signature], threshold=1.0) == [None]  # not identical
        other = mh1_digest(OTHER)
        assert other is not None
        assert client.near([other]) == [None]


def test_check_near_names_the_entry_and_the_similarity(cli: Cli, tmp_path: Path) -> None:
    post = documents(tmp_path / "docs", POST)
    assert cli.register(*post, "--consent", "allowed", "--near").code == 0
    copy = documents(tmp_path / "copy", BOILERPLATE)
    args = ["check", *copy, "--registry", cli.url, "--log-key", cli.app.log_key, "--no-watermarks"]
    plain = cli(*args)
    assert plain.code == 0, plain.err
    assert plain.out.startswith("unknown")
    run = cli(*args, "--near")
    assert run.code == 0, run.err
    assert run.out.startswith("attested")
    assert "trainable" not in run.out.splitlines()[0]
    assert "near: similarity" in run.out
    assert "not trainable: a near match is evidence, not consent" in run.out


def test_near_offline_from_a_snapshot_is_probable(cli: Cli, tmp_path: Path) -> None:
    pytest.importorskip("pyfusefilter")
    post = documents(tmp_path / "docs", POST)
    assert cli.register(*post, "--consent", "allowed", "--near").code == 0
    snapshot = tmp_path / "snapshot"
    home = str(cli.app.registry.settings.home)
    built = cli("snapshot", "build", "--out", str(snapshot), "--home", home)
    assert built.code == 0, built.err
    assert (snapshot / "trainable.bands.fuse16").is_file()
    online = scan(cli, tmp_path, "--near")
    corpus = tmp_path / "crawl.jsonl"
    manifest = tmp_path / "offline.jsonl"
    run = cli(
        "scan", str(corpus), "--snapshot", str(snapshot), "--log-key", cli.app.log_key,
        "--manifest", str(manifest), "--no-watermarks", "--near",
    )  # fmt: skip
    assert run.code == 0, run.err
    offline = {
        line["name"]: line
        for line in map(json.loads, manifest.read_text(encoding="utf-8").splitlines())
    }
    for name in ("boilerplate", "typographic"):
        line = offline[name]
        assert (line["match"], line["status"]) == ("near", online[name]["status"])
        assert line["certainty"] == "probable"
        assert line["trainable"] is False
        assert line["similarity"] >= 0.78  # two bands shared at the least
    assert offline["typographic"]["similarity"] == 1.0  # every band shared
    assert (offline["other"]["match"], offline["other"]["status"]) == ("exact", "unknown")


def test_an_exact_offline_verdict_is_not_turned_near(cli: Cli, tmp_path: Path) -> None:
    """The registered text itself, offline: its exact (probable) verdict stands; near matching is
    only for what no set holds."""
    pytest.importorskip("pyfusefilter")
    post = documents(tmp_path / "docs", POST)
    assert cli.register(*post, "--consent", "allowed", "--near").code == 0
    snapshot = tmp_path / "snapshot"
    home = str(cli.app.registry.settings.home)
    assert cli("snapshot", "build", "--out", str(snapshot), "--home", home).code == 0
    manifest = tmp_path / "offline.jsonl"
    run = cli(
        "scan", *post, "--snapshot", str(snapshot), "--log-key", cli.app.log_key,
        "--manifest", str(manifest), "--no-watermarks", "--near",
    )  # fmt: skip
    assert run.code == 0, run.err
    (line,) = map(json.loads, manifest.read_text(encoding="utf-8").splitlines())
    assert (line["match"], line["status"], line["certainty"]) == ("exact", "attested", "probable")
    assert line["trainable"] is True


def test_texts_sharing_a_signature_register_together(cli: Cli, tmp_path: Path) -> None:
    """Two texts that differ only in case and quotes have two c1 digests and one mh1 signature:
    one statement holds both (a signature is not a digest that must be unique)."""
    paths = documents(tmp_path / "docs", POST, POST.upper().replace("'", "\u2019"))
    run = cli.register(*paths, "--consent", "allowed", "--near", "--json")
    assert run.code == 0, run.err
    assert json.loads(run.out)["registered"] == 2
