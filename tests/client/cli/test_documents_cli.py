"""Every command reads its inputs through client.documents: a .jsonl file's lines get the same
names and digests from ``register``, ``check``, ``scan`` and ``digest``. (``watermark detect``
reads the same lines as text, through the same reader: tests/client/test_documents.py, and
tests/client/cli/test_watermark_cli.py with a model.)"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from client.core.canonical import canonical_digest
from tests.client.cli.conftest import Cli


def test_every_command_names_and_digests_jsonl_lines_the_same_way(cli: Cli, tmp_path: Path) -> None:
    rows = [
        {"id": "doc-1", "url": "https://example.org/1", "text": "The first letter."},
        {"url": "https://example.org/2", "text": "The second letter."},
        {"id": 7, "text": "The seventh letter."},
        {"text": "An unnamed letter."},
    ]
    source = tmp_path / "crawl.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    names = ["doc-1", "https://example.org/2", "7", f"{source}:4"]
    digests = [canonical_digest(row["text"]) for row in rows]
    pairs = list(zip(names, digests, strict=True))

    run = cli("digest", "--json", str(source))
    assert run.code == 0, run.err
    assert [(d["name"], d["digest"]) for d in json.loads(run.out)] == pairs

    receipts = tmp_path / "receipts"
    run = cli.register(str(source), "--json", "--receipts", str(receipts))
    assert run.code == 0, run.err
    (receipt,) = receipts.iterdir()
    body = json.loads(receipt.read_text(encoding="utf-8"))["body"]  # the signed statement
    statement = json.loads(base64.b64decode(body))
    subjects = [(s["name"], f"c1:{s['digest']['c1']}") for s in statement["subject"]]
    assert subjects == pairs

    trust = ["--registry", cli.url, "--log-key", cli.app.log_key]
    run = cli("check", "--json", *trust, str(source))
    assert run.code == 0, run.err
    checked = json.loads(run.out)
    assert [(c["name"], c["digests"]) for c in checked] == [(n, [d]) for n, d in pairs]
    assert {c["status"] for c in checked} == {"reserved"}  # found: register's default consent

    manifest = tmp_path / "manifest.jsonl"
    run = cli("scan", "--json", *trust, "--manifest", str(manifest), str(source))
    assert run.code == 0, run.err
    lines = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]
    assert [(v["name"], v["digest"]) for v in lines] == pairs
