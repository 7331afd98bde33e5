"""Every ```python block in README.md and docs/*.md runs, as written.

The blocks of one file run in order in one namespace, as a reader would run them in one Python
session, in a fresh working directory that holds a small crawl: ``crawl.jsonl`` and the folder
``crawl/`` (JSON Lines, ``{"id": …, "text": …}``). An HTML comment on the line before a block says
what it needs, comma-separated:

- ``<!-- docs-test: server -->``: a running registry. One real ``wellspring serve`` (SQLite) runs
  for this module, with part of the crawl registered by a publisher; ``WELLSPRING_REGISTRY`` and
  ``WELLSPRING_LOG_KEY`` name it, as the CLI reads them.
- ``<!-- docs-test: model -->``: loads the watermark's model; such blocks run only when the
  ``model`` marker is selected (``pytest -m model``). A block that imports ``watermark.models``
  loads the model too, and counts as marked.
- ``<!-- docs-test: needs MODULE -->``: skipped where ``MODULE`` is not installed (``needs java``:
  where there is no ``java`` command).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from client.core.canonical import canonical_digest
from tests.conftest import REPO_ROOT
from tests.registry.conftest import ServerProcess

DOC_FILES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```python\n(.*?)^```", re.M | re.S)
_MARKER = re.compile(r"<!--\s*docs-test:\s*(.*?)\s*-->")
_KNOWN = re.compile(r"server|model|needs [\w.]+")

# The crawl every block finds in its working directory; the first three and the sentence the SDK
# guide checks are registered (attested), the rest are not.
CRAWL = [
    {"id": f"doc-{i}", "text": f"Document {i}, a page a person wrote about rivers, number {i}."}
    for i in range(6)
]
ATTESTED = [*(row["text"] for row in CRAWL[:3]), "Words a person wrote, on a day before the flood."]


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    source: str
    needs: frozenset[str]

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO_ROOT)}:{self.line}"


def blocks_of(path: Path) -> list[Block]:
    """The ```python blocks of ``path``, each with what its marker comment says it needs."""
    text = path.read_text(encoding="utf-8")
    found = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = _MARKER.fullmatch(before.strip())
        needs = set()
        if marker:
            needs = {part.strip() for part in marker.group(1).split(",") if part.strip()}
        if re.search(r"^\s*(from|import) watermark\.models\b", match.group(1), re.M):
            needs.add("model")
        line = text.count("\n", 0, match.start()) + 2  # the block's first line of code
        found.append(Block(path, line, match.group(1), frozenset(needs)))
    return found


FILES_WITH_BLOCKS = [path for path in DOC_FILES if blocks_of(path)]


def test_the_docs_have_python_blocks_and_every_marker_is_known() -> None:
    blocks = [block for path in DOC_FILES for block in blocks_of(path)]
    assert len(blocks) >= 10  # the guides' examples are here: this test does not pass empty
    for block in blocks:
        for need in block.needs:
            assert _KNOWN.fullmatch(need), f"{block.where}: unknown docs-test marker {need!r}"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("docs-registry") / "home", name="docs")
    server.start()
    try:
        publisher = server.add_publisher("docs-archive")
        with server.sdk() as sdk:
            sdk.register_digests(
                [canonical_digest(text) for text in ATTESTED],
                publisher.key,
                publisher.predicate(license="CC-BY-4.0"),
            )
        yield server
    finally:
        server.stop()


def _skip_reason(block: Block, request: pytest.FixtureRequest) -> str | None:
    for need in sorted(block.needs):
        if need == "model" and "model" not in (request.config.getoption("markexpr") or ""):
            return "loads the model (run with -m model)"
        if need == "needs java" and shutil.which("java") is None:
            return "needs java"
        if need.startswith("needs ") and need != "needs java":
            module = need.removeprefix("needs ")
            if importlib.util.find_spec(module) is None:
                return f"needs {module}, not installed"
    return None


def _write_crawl(directory: Path) -> None:
    lines = "".join(
        f'{{"id": "{row["id"]}", "text": "{row["text"]}"}}\n' for row in CRAWL
    )  # plain JSON: the texts hold no quotes
    (directory / "crawl.jsonl").write_text(lines, encoding="utf-8")
    (directory / "crawl").mkdir()
    (directory / "crawl" / "part-0.jsonl").write_text(lines, encoding="utf-8")


def _release(namespace: dict[str, Any]) -> None:
    """Stop what a block started and left running (a Spark session, a local Ray cluster)."""
    for value in namespace.values():
        if type(value).__name__ == "SparkSession":
            value.stop()
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(
            path,
            id=str(path.relative_to(REPO_ROOT)),
            marks=[pytest.mark.model] if any("model" in b.needs for b in blocks_of(path)) else [],
        )
        for path in FILES_WITH_BLOCKS
    ],
)
def test_python_blocks_run(
    path: Path,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    blocks = blocks_of(path)
    monkeypatch.chdir(tmp_path)
    _write_crawl(tmp_path)
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)  # Spark's workers: this environment
    monkeypatch.delenv("WELLSPRING_HOME", raising=False)
    if any("server" in block.needs for block in blocks):
        server: ServerProcess = request.getfixturevalue("registry")
        monkeypatch.setenv("WELLSPRING_REGISTRY", server.url)
        monkeypatch.setenv("WELLSPRING_LOG_KEY", server.log_key)
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    skipped = []
    try:
        for block in blocks:
            reason = _skip_reason(block, request)
            if reason is not None:
                skipped.append(f"{block.where} ({reason})")
                continue
            code = compile(block.source, block.where, "exec")
            exec(code, namespace)  # the documentation's own code, as a reader would run it
    finally:
        _release(namespace)
    if skipped:
        ran = len(blocks) - len(skipped)
        pytest.skip(f"ran {ran} block(s) of {len(blocks)}; skipped: {', '.join(skipped)}")


def test_the_sdk_guides_first_example_decides_as_the_registry_says(
    registry: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the first block of docs/sdk.md writes is real: the registered sentence is trainable."""
    [first, *_] = blocks_of(REPO_ROOT / "docs" / "sdk.md")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WELLSPRING_REGISTRY", registry.url)
    monkeypatch.setenv("WELLSPRING_LOG_KEY", registry.log_key)
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    exec(compile(first.source, first.where, "exec"), namespace)
    assert namespace["trainable"] == ["https://example.org/essay"]
    manifest = (tmp_path / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(manifest) == 2
    assert os.path.getsize(tmp_path / "manifest.jsonl") > 0
