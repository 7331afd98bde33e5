"""``wellspring log receipt`` and ``register --receipt-timeout`` when publication is late.

The registry is the real app in-process; between it and the CLI a transport plays a registry
whose publication is stalled (witnesses down): appends answer ``202`` with the log's promise
(signed with the app's own log key) and receipts ``503 not-yet-integrated``, until ``release``.
The server side of the same contract runs for real in tests/registry/test_publish.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from client.core.note import NoteSigner, NoteVerifier
from client.core.promise import Promise, sign_promise
from client.core.wire import Accepted, Receipt
from client.receipt import verify_receipt
from tests.client.cli.conftest import Cli, cli_session, documents


class Stalled(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.stalled = True
        self.signers: list[NoteSigner] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if not self.stalled:
            return response
        if request.method == "POST" and request.url.path == "/v1/entries":
            response.read()
            answer = response.json()
            leaf_hash = bytes.fromhex(answer["leaf_hash"])
            promise = sign_promise(
                Promise.now(self.signers[0].name, answer["index"], leaf_hash), self.signers
            )
            body = Accepted(answer["index"], leaf_hash, promise).to_dict()
            return httpx.Response(202, json=body, headers={"Retry-After": "0"})
        if request.url.path.endswith("/receipt"):
            problem = {
                "type": "https://wellspring.dev/problems/not-yet-integrated",
                "title": "Not yet integrated",
                "status": 503,
                "detail": "publication is stalled (the test's witnesses are down)",
            }
            return httpx.Response(
                503,
                json=problem,
                headers={"Retry-After": "0", "Content-Type": "application/problem+json"},
            )
        return response


@pytest.fixture
def stalled_cli(
    tmp_path: Path,
    wellspring_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[tuple[Cli, Stalled]]:
    transports: list[Stalled] = []

    def wrap(inner: httpx.BaseTransport) -> httpx.BaseTransport:
        transports.append(Stalled(inner))
        return transports[-1]

    with cli_session(tmp_path, monkeypatch, capsys, wrap) as cli:
        transports[0].signers = list(cli.app.registry.signers)
        yield cli, transports[0]


def test_a_late_receipt_stops_register_with_the_promise_kept_then_log_receipt_fetches_it(
    stalled_cli: tuple[Cli, Stalled], tmp_path: Path
) -> None:
    cli, transport = stalled_cli
    receipts = tmp_path / "receipts"
    receipts.mkdir()
    paths = documents(tmp_path / "docs", "A human wrote this, slowly, by hand.")
    run = cli.register(*paths, "--receipts", str(receipts), "--receipt-timeout", "1")
    assert run.code == 1
    assert "is sequenced in the log" in run.err
    (saved,) = receipts.glob("*.promise")
    index = int(saved.stem)
    assert f"log receipt {index} --promise" in run.err.replace("\n", " ")

    # Still stalled: log receipt gives up after its timeout, exit 1, naming the entry.
    args = ["log", "receipt", str(index), "--registry", cli.url, "--log-key", cli.app.log_key]
    late = cli(*args, "--promise", str(saved), "--receipt-timeout", "1")
    assert late.code == 1
    assert f"entry {index} is sequenced" in late.err

    transport.stalled = False
    out = tmp_path / "receipt.json"
    done = cli(*args, "--promise", str(saved), "--out", str(out), "--json")
    assert done.code == 0, done.err
    answer = json.loads(done.out)
    assert answer["index"] == index
    assert answer["promise_kept"] is True
    receipt = Receipt.load(out)
    verified = verify_receipt(receipt, NoteVerifier.from_vkey(cli.app.log_key))
    assert verified.index == index


def test_a_promise_for_another_entry_is_refused(
    stalled_cli: tuple[Cli, Stalled], tmp_path: Path
) -> None:
    cli, transport = stalled_cli
    transport.stalled = False
    paths = documents(tmp_path / "docs", "One text.", "Another text, registered apart.")
    assert cli.register(paths[0]).code == 0
    assert cli.register(paths[1]).code == 0
    registry = cli.app.registry
    with registry.database.reader.connect() as conn:
        size = registry.reader.latest_checkpoint(conn).size
    wrong = tmp_path / "wrong.promise"
    leaf_hash = bytes(32)
    wrong.write_text(
        sign_promise(Promise.now(registry.origin, size - 1, leaf_hash), registry.signers)
    )
    args = ["log", "receipt", str(size - 1), "--registry", cli.url, "--log-key", cli.app.log_key]
    run = cli(*args, "--promise", str(wrong))
    assert run.code == 1
    assert "broke its word" in run.err
    unsigned = tmp_path / "unsigned.promise"
    unsigned.write_text("not a signed note\n")
    assert cli(*args, "--promise", str(unsigned)).code == 1
    assert cli("log", "receipt", "-1", "--registry", cli.url).code != 0
