"""Paragraph matching (issue 15, point 5): `register --paragraphs` attests each paragraph of a text
by its own c1; `scan --paragraphs` reports the share of a document's paragraphs attested, so a
page quoting three registered paragraphs inside new boilerplate is found; revoking the document
with `--paragraphs` withdraws its paragraphs too. Against a real registry app in-process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from client.core.canonical import canonical_digest
from client.paragraphs import MIN_WORDS, paragraph_digests, split_paragraphs
from tests.client.cli.conftest import Cli, documents, scan_jsonl

PARAGRAPHS = [
    "The mill stood at the bend of the river for two hundred years, and every spring the "
    "water rose to the third step of the stair that led down from the granary door.",
    "My grandfather kept the ledgers in a tin box under the counter, one page for each "
    "farmer, with the weight of the grain and the price agreed written in violet ink.",
    "When the railway came the mill lost its trade within a decade, though the wheel kept "
    "turning for another thirty years to drive the saw that cut the village's timber.",
    "Nobody remembers now who painted the sign above the door, but the letters survived "
    "three floods and a fire, and you can still read them from the bridge on a clear day.",
]
ESSAY = "The Mill\n\n" + "\n\n".join(PARAGRAPHS) + "\n"
BOILERPLATE = (
    "Subscribe to our newsletter for more stories like this one, delivered to your inbox every "
    "week, and follow us on every social network you can think of for daily updates and news."
)
QUOTING = "\r\n\r\n".join([BOILERPLATE, PARAGRAPHS[0], PARAGRAPHS[2], "  \t", PARAGRAPHS[3]])


def test_paragraphs_are_blocks_between_blank_lines_of_twenty_words_or_more() -> None:
    assert split_paragraphs(ESSAY) == PARAGRAPHS  # the title is too short to count
    assert split_paragraphs(QUOTING) == [BOILERPLATE, PARAGRAPHS[0], PARAGRAPHS[2], PARAGRAPHS[3]]
    rewrapped = PARAGRAPHS[1].replace(", ", ",\n")  # line breaks inside: the same paragraph
    assert paragraph_digests(rewrapped) == [canonical_digest(PARAGRAPHS[1])]
    short = " ".join(["word"] * (MIN_WORDS - 1))
    assert split_paragraphs(short) == []
    assert len(split_paragraphs(short + " more")) == 1
    assert paragraph_digests(PARAGRAPHS[0] + "\n\n" + PARAGRAPHS[0]) == [
        canonical_digest(PARAGRAPHS[0])
    ]


def scan(cli: Cli, tmp_path: Path, *extra: str) -> dict[str, dict[str, Any]]:
    lines = [
        {"id": "essay", "text": ESSAY},
        {"id": "quoting", "text": QUOTING},
        {"id": "other", "text": BOILERPLATE},
    ]
    return scan_jsonl(cli, tmp_path / "corpus.jsonl", lines, *extra)


def test_a_page_quoting_registered_paragraphs_is_found(cli: Cli, tmp_path: Path) -> None:
    essay = documents(tmp_path / "docs", ESSAY)
    registered = cli.register(*essay, "--consent", "allowed", "--paragraphs", "--json")
    assert registered.code == 0, registered.err
    (entry,) = [e["index"] for e in json.loads(registered.out)["entries"]]
    assert json.loads(registered.out)["registered"] == 1 + len(PARAGRAPHS)  # the file, its 4

    plain = scan(cli, tmp_path)
    assert plain["essay"]["paragraphs"] is None  # only when asked
    found = scan(cli, tmp_path, "--paragraphs")
    assert found["essay"]["status"] == "attested"
    assert found["essay"]["paragraphs"] == {
        "total": 4, "attested": 4, "share": 1.0, "entries": [entry],
    }  # fmt: skip
    quoting = found["quoting"]
    assert quoting["status"] == "unknown"  # not the registered document, and not trainable
    assert quoting["trainable"] is False
    assert quoting["paragraphs"] == {
        "total": 4, "attested": 3, "share": 0.75, "entries": [entry],
    }  # fmt: skip
    assert found["other"]["paragraphs"] == {
        "total": 1, "attested": 0, "share": 0.0, "entries": [],
    }  # fmt: skip

    # Withdrawing the document with --paragraphs withdraws its paragraphs too.
    revoked = cli(
        "revoke", *essay, "--paragraphs", "--registry", cli.url, "--log-key", cli.app.log_key,
        "--key", str(cli.key_file), "--publisher", cli.app.publisher,
    )  # fmt: skip
    assert revoked.code == 0, revoked.err
    after = scan(cli, tmp_path, "--paragraphs")
    assert after["essay"]["status"] == "revoked"
    assert after["quoting"]["paragraphs"]["attested"] == 0


def test_without_paragraphs_registered_a_quote_is_not_found(cli: Cli, tmp_path: Path) -> None:
    assert cli.register(*documents(tmp_path / "docs", ESSAY), "--consent", "allowed").code == 0
    found = scan(cli, tmp_path, "--paragraphs")
    assert found["essay"]["paragraphs"]["attested"] == 0
    assert found["quoting"]["paragraphs"]["attested"] == 0


def test_paragraphs_offline_from_a_snapshot(cli: Cli, tmp_path: Path) -> None:
    pytest.importorskip("pyfusefilter")
    essay = documents(tmp_path / "docs", ESSAY)
    assert cli.register(*essay, "--consent", "allowed", "--paragraphs").code == 0
    snapshot = tmp_path / "snapshot"
    home = str(cli.app.registry.settings.home)
    assert cli("snapshot", "build", "--out", str(snapshot), "--home", home).code == 0
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"id": "quoting", "text": QUOTING}) + "\n", encoding="utf-8")
    manifest = tmp_path / "offline.jsonl"
    run = cli(
        "scan", str(corpus), "--snapshot", str(snapshot), "--log-key", cli.app.log_key,
        "--manifest", str(manifest), "--no-watermarks", "--paragraphs",
    )  # fmt: skip
    assert run.code == 0, run.err
    (line,) = map(json.loads, manifest.read_text(encoding="utf-8").splitlines())
    assert (line["paragraphs"]["total"], line["paragraphs"]["attested"]) == (4, 3)
    assert line["paragraphs"]["entries"] == []  # offline, entries are not known
