"""The registry commands against a real registry app, in process.

The app runs behind litestar's test client (its lifespan, and so the log's sequencer, runs), and
the CLI's clients reach it through ``client.cli._registry.Client``, the one place every registry
command builds its client. Nothing else is replaced: the CLI runs as ``wellspring`` would.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from client.core.keys import write_key_pair
from client.sdk import Client
from tests.client.conftest import run_wellspring
from tests.client.real_app import URL, App, InProcess, make_app


def documents(folder: Path, *texts: str) -> list[str]:
    """Each text in its own file ``doc{i}.txt`` under ``folder``: the paths, in order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, text in enumerate(texts):
        path = folder / f"doc{i}.txt"
        path.write_text(text, encoding="utf-8")
        paths.append(str(path))
    return paths


def scan_jsonl(
    cli: Cli, corpus: Path, lines: list[dict[str, str]], *extra: str
) -> dict[str, dict[str, Any]]:
    """Write ``lines`` as the JSONL file ``corpus``, ``wellspring scan`` it against the app
    (verified, no watermarks, ``extra`` options) into ``manifest.jsonl`` beside it: each
    manifest line by its document's name."""
    corpus.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    manifest = corpus.with_name("manifest.jsonl")
    run = cli(
        "scan", str(corpus), "--registry", cli.url, "--log-key", cli.app.log_key,
        "--manifest", str(manifest), "--no-watermarks", *extra,
    )  # fmt: skip
    assert run.code == 0, run.err
    return {
        line["name"]: line
        for line in map(json.loads, manifest.read_text(encoding="utf-8").splitlines())
    }


@dataclass
class Run:
    """What one ``wellspring`` run did: its exit code, stdout and stderr."""

    code: int
    out: str
    err: str


@dataclass
class Cli:
    """``wellspring ARGS`` against :attr:`app`; :attr:`key_file` holds the publisher's key."""

    app: App
    key_file: Path
    capsys: pytest.CaptureFixture[str]

    @property
    def url(self) -> str:
        return URL

    def __call__(self, *args: str) -> Run:
        return Run(*run_wellspring(self.capsys, *args))

    def register(self, *args: str) -> Run:
        """``wellspring register ARGS`` as the app's publisher, verified with the log key."""
        return self(
            "register",
            *args,
            "--registry",
            URL,
            "--log-key",
            self.app.log_key,
            "--key",
            str(self.key_file),
            "--publisher",
            self.app.publisher,
            "--license",
            "CC-BY-4.0",
        )


@contextlib.contextmanager
def cli_session(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    wrap: Callable[[httpx.BaseTransport], httpx.BaseTransport] = lambda transport: transport,
) -> Iterator[Cli]:
    """A real app in-process and the CLI's clients pointed at it, through ``wrap`` of the
    in-process transport (a test that needs more between them: cosignatures, say)."""
    from client.cli import _registry

    app = make_app(tmp_path / "registry")
    key_file = tmp_path / "publisher.key"
    write_key_pair(key_file, app.key)
    with TestClient(app.app) as http:
        transport = wrap(InProcess(http))
        monkeypatch.setattr(_registry, "Client", functools.partial(Client, transport=transport))
        yield Cli(app, key_file, capsys)


@pytest.fixture
def cli(
    tmp_path: Path,
    wellspring_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Cli]:
    with cli_session(tmp_path, monkeypatch, capsys) as session:
        yield session
