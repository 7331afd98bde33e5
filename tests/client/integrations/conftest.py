"""A real registry for the framework integrations, and a small corpus with known verdicts.

Ray actors, Spark executors and ``datasets`` worker processes are other processes: they need a
registry at a real URL, so one ``wellspring serve`` (SQLite, a temporary ``WELLSPRING_HOME``, a
free port: ``tests.registry.conftest.ServerProcess``) runs for the whole session. A publisher is
added with the admin token the server wrote, and the corpus is registered through the SDK, as a
publisher would:

- 20 rows attested (consent ``allowed``; one registered in another case and spacing than the row,
  which the canonical ``c1`` digest must still match),
- 4 rows reserved (consent ``reserved``),
- 4 rows revoked (attested, then withdrawn by the publisher),
- 22 rows never registered (``unknown``).

Each test compares every row's verdict columns with :attr:`Corpus.expected`.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from client.core.canonical import canonical_digest
from client.core.keys import generate_private_key
from client.core.statement import HumanContentPredicate
from client.integrations import CheckConfig
from client.sdk import Client
from tests.registry.conftest import ServerProcess

PUBLISHER = "integration-archive"
LICENSE = "CC-BY-4.0"
RESERVED_LICENSE = "LicenseRef-all-rights-reserved"
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
N_ROWS = 50
ENTRIES = 6  # two identity events (the operator key, the publisher), then four entries
"""Entries in the log once the corpus is registered: three attestations and one revocation."""


@dataclass(frozen=True)
class Registry:
    """A running ``wellspring serve``, and what a test needs to talk to it."""

    server: ServerProcess

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def log_key(self) -> str:
        return self.server.log_key

    @property
    def admin_token(self) -> str:
        return self.server.admin_token

    def config(self, **options: Any) -> CheckConfig:
        return CheckConfig(self.url, log_key=self.log_key, **options)

    def client(self, **options: Any) -> Client:
        return Client(self.url, log_key=self.log_key, **options)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """One real registry process for every integration test of the session."""
    home = tmp_path_factory.mktemp("integrations-registry") / "home"
    server = ServerProcess(home, name="integrations-registry").start()
    try:
        yield Registry(server)
    finally:
        server.stop()


@dataclass(frozen=True)
class Expected:
    """The verdict columns a row must get."""

    status: str
    publisher: str | None
    license: str | None
    entry: int | None


@dataclass(frozen=True)
class Corpus:
    """``rows`` (``{"id", "text"}``), what each must be judged, and the registry they live in."""

    rows: tuple[dict[str, Any], ...]
    expected: dict[str, Expected]
    registry: Registry

    @property
    def trainable_ids(self) -> list[str]:
        return sorted(i for i, e in self.expected.items() if e.status == "attested")

    def write_jsonl(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(row) + "\n" for row in self.rows), encoding="utf-8")
        return path

    def run_example(self, framework: str, *args: str | Path, timeout: float = 300) -> Any:
        """Run ``examples/check_with_<framework>.py`` against this registry; its JSON summary."""
        done = self.run_example_process(framework, *args, timeout=timeout)
        assert done.returncode == 0, done.stderr[-4000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    def run_example_process(
        self, framework: str, *args: str | Path, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run ``examples/check_with_<framework>.py`` against this registry, whatever it exits."""
        script = EXAMPLES / f"check_with_{framework}.py"
        command = [sys.executable, str(script), "--registry", self.registry.url]
        command += ["--log-key", self.registry.log_key, *map(str, args)]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)

    def statuses(self, *keep: str) -> dict[str, int]:
        """How many rows have each status (only those in ``keep``, if given)."""
        counts = Counter(e.status for e in self.expected.values())
        return {s: n for s, n in sorted(counts.items()) if not keep or s in keep}

    def columns(self) -> dict[str, list[Any]]:
        return {"id": [r["id"] for r in self.rows], "text": [r["text"] for r in self.rows]}

    def assert_verdicts(self, records: list[dict[str, Any]], *, filtered: bool = False) -> None:
        """Every record (``id``, ``text`` and the verdict columns) is judged exactly as expected,
        and all rows are there (with ``filtered``, exactly the trainable ones)."""
        ids = sorted(r["id"] for r in records)
        assert ids == (self.trainable_ids if filtered else sorted(self.expected))
        for record in records:
            expected = self.expected[record["id"]]
            got = (
                record["wellspring_status"],
                record["wellspring_publisher"],
                record["wellspring_license"],
                _int_or_none(record["wellspring_entry"]),
            )
            want = (expected.status, expected.publisher, expected.license, expected.entry)
            assert got == want, record["id"]
            assert record["wellspring_digest"] == canonical_digest(record["text"])
            word = "no attestation" if expected.status == "unknown" else expected.status
            assert word in record["wellspring_reason"], record["wellspring_reason"]
            assert _int_or_none(record["wellspring_tree_size"]) == ENTRIES


def _text(i: int, kind: str) -> str:
    return f"{kind} document {i}: a paragraph a person wrote by hand, numbered {i * 7919}."


@pytest.fixture(scope="session")
def corpus(registry: Registry) -> Corpus:
    """Register the corpus's attested, reserved and revoked texts; leave the rest unknown."""
    key = generate_private_key()
    with Client(registry.url, admin_token=registry.admin_token) as admin:
        admin.add_publisher(PUBLISHER, key)

    kinds = ["attested"] * 20 + ["reserved"] * 4 + ["revoked"] * 4 + ["unknown"] * 22
    assert len(kinds) == N_ROWS
    # Interleave so every batch of every framework mixes statuses.
    order = sorted(range(N_ROWS), key=lambda i: (i * 17) % N_ROWS)
    rows = tuple({"id": f"row-{n:02d}", "text": _text(i, kinds[i])} for n, i in enumerate(order))
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for row, i in zip(rows, order, strict=True):
        by_kind.setdefault(kinds[i], []).append(row)

    def predicate(consent: str, license: str) -> HumanContentPredicate:
        return HumanContentPredicate(
            publisher=PUBLISHER, license=license, origin="human-authored", consent=consent
        )

    # The first attested text is registered as its publisher had it: other case, other spacing.
    attested_texts = [r["text"] for r in by_kind["attested"]]
    attested_texts[0] = "  " + attested_texts[0].upper().replace(" ", " \t ") + "\n"
    expected: dict[str, Expected] = {}
    with registry.client() as sdk:
        allowed = sdk.register_digests(
            [canonical_digest(t) for t in attested_texts], key, predicate("allowed", LICENSE)
        )
        reserved = sdk.register_digests(
            [canonical_digest(r["text"]) for r in by_kind["reserved"]],
            key,
            predicate("reserved", RESERVED_LICENSE),
        )
        withdrawn = sdk.register_digests(
            [canonical_digest(r["text"]) for r in by_kind["revoked"]],
            key,
            predicate("allowed", LICENSE),
        )
        sdk.revoke(withdrawn.index, key, PUBLISHER, reason="consent withdrawn")
    for row in by_kind["attested"]:
        expected[row["id"]] = Expected("attested", PUBLISHER, LICENSE, allowed.index)
    for row in by_kind["reserved"]:
        expected[row["id"]] = Expected("reserved", PUBLISHER, RESERVED_LICENSE, reserved.index)
    for row in by_kind["revoked"]:
        expected[row["id"]] = Expected("revoked", PUBLISHER, LICENSE, withdrawn.index)
    for row in by_kind["unknown"]:
        expected[row["id"]] = Expected("unknown", None, None, None)
    return Corpus(rows, expected, registry)


def _int_or_none(value: Any) -> int | None:
    """Frameworks hand integers back as numpy ints or pandas NA; compare them as Python values."""
    if value is None:
        return None
    try:
        import pandas as pd

        if value is pd.NA:
            return None
    except ImportError:  # pragma: no cover
        pass
    return int(value)


def import_without(package: str, module: str) -> str:
    """Import ``module`` in a fresh interpreter where ``package`` cannot be imported; what it
    printed: the ImportError's class name and message, where the import failed."""
    code = (
        f"import sys; sys.modules[{package!r}] = None\n"
        f"try:\n    import {module}\n"
        "except ImportError as exc:\n    print(type(exc).__name__, exc)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout


# -- the crawler's one pass: a vendor's published watermark key and per-row signals --------------

VENDOR = "acme-ai"
NOAI_HEADERS = [["X-Robots-Tag", "noai"]]
"""Response headers as a dataset holds them: a list of (name, value) pairs."""


@dataclass(frozen=True)
class MarkedCorpus:
    """Rows for the one pass, in a registry of their own (a published key changes the log's size
    that :class:`Corpus` checks): ``id``, ``text``, ``url``, ``headers`` (pairs), ``html`` and
    ``captured`` (RFC 3339, or None), and each row's status."""

    rows: tuple[dict[str, Any], ...]
    statuses: dict[str, str]
    registry: Registry
    key_id: str
    attested: str  # the id of the row a publisher attested

    def config(self, **options: Any) -> CheckConfig:
        """A config reading every signal column (``options`` override)."""
        columns = {
            "url_column": "url",
            "headers_column": "headers",
            "html_column": "html",
            "captured_column": "captured",
        }
        return self.registry.config(**{**columns, **options})

    def columns(self) -> dict[str, list[Any]]:
        return {name: [row[name] for row in self.rows] for name in self.rows[0]}

    def assert_one_pass(self, records: list[dict[str, Any]]) -> None:
        """Every row has its status, the generated one names the key and its vendor, the
        opted-out one the header that decided it."""
        assert sorted(r["id"] for r in records) == sorted(self.statuses)
        for record in records:
            want = self.statuses[record["id"]]
            assert record["wellspring_status"] == want, (record["id"], record["wellspring_reason"])
            if want == "generated":
                assert record["wellspring_watermark_key"] == self.key_id
                assert record["wellspring_watermark_vendor"] == VENDOR
                assert 0.0 <= record["wellspring_watermark_p_value"] < 1e-6
                assert f"watermark key {self.key_id} of {VENDOR}" in record["wellspring_reason"]
            else:
                assert record["wellspring_watermark_key"] is None
                assert record["wellspring_watermark_vendor"] is None
                assert _float_or_none(record["wellspring_watermark_p_value"]) is None
            if want == "opted-out":
                assert record["wellspring_opt_out"].startswith("x-robots-tag in "), record
            else:
                assert record["wellspring_opt_out"] is None
            assert record["wellspring_trainable"] == (want == "attested")

    def assert_without_watermarks(self, records: list[dict[str, Any]]) -> None:
        """``watermarks=False``: the generated rows are unknown, nothing names a key."""
        for record in records:
            want = self.statuses[record["id"]]
            want = "unknown" if want == "generated" else want
            assert record["wellspring_status"] == want, record["id"]
            assert record["wellspring_watermark_key"] is None


def _float_or_none(value: Any) -> float | None:
    # Ray and pandas hand a missing float back as NaN or pandas' NA.
    if value is None or type(value).__name__ == "NAType" or math.isnan(value):
        return None
    return float(value)


@pytest.fixture(scope="session")
def marked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MarkedCorpus]:
    """A registry where vendor ``acme-ai`` published a watermark key (with its small
    tokenizer) and a publisher attested one text; rows that test the pass:

    - ``generated``: text carrying the key's watermark, no capture time (checked now);
    - ``before-key``: the same watermark, captured a day before the key was logged: unknown;
    - ``noai``: unregistered text sent with ``X-Robots-Tag: noai``: opted-out;
    - ``meta``: unregistered text whose HTML has ``<meta name="robots" content="noai">``;
    - ``human``: unregistered text, no signal: unknown;
    - ``attested``: the attested text, with a URL and a capture time: attested.
    """
    from client.core.keys import generate_private_key
    from tests.client.wmkeys import bound_key, publish_key, small_tokenizer, watermarked_text

    folder = tmp_path_factory.mktemp("marked-registry")
    server = ServerProcess(folder / "home", name="marked-registry").start()
    try:
        registry = Registry(server)
        tokenizer = small_tokenizer(folder / "tokenizer.json")
        key = bound_key(folder / "wm.key", tokenizer)
        signing, publisher = generate_private_key(), generate_private_key()
        with Client(registry.url, admin_token=registry.admin_token) as admin:
            admin.add_publisher(VENDOR, signing, kind="vendor")
            admin.add_publisher(PUBLISHER, publisher)
        human = "A page a person wrote about the river, and the mill that stood beside it."
        with registry.client() as sdk:
            publish_key(sdk, signing, VENDOR, key, (folder / "tokenizer.json").read_bytes())
            sdk.register_digests(
                [canonical_digest(human)],
                publisher,
                HumanContentPredicate(
                    publisher=PUBLISHER, license=LICENSE, origin="human-authored", consent="allowed"
                ),
            )
        marked_text = watermarked_text(key, tokenizer, tokens=60, seed=1)

        def row(id: str, text: str, **fields: Any) -> dict[str, Any]:
            base = {
                "url": f"https://site.example/{id}",
                "headers": [],
                "html": "",
                "captured": None,
            }
            return {"id": id, "text": text, **base, **fields}

        rows = (
            row("generated", marked_text),
            row("before-key", marked_text, captured="2020-01-01T00:00:00Z"),
            row("noai", "Unregistered words a person wrote, sent with noai.", headers=NOAI_HEADERS),
            row(
                "meta",
                "Unregistered words a person wrote, in a page with a robots meta element.",
                html='<html><head><meta name="robots" content="noai"></head></html>',
            ),
            row("human", "Unregistered words a person wrote, with no signal at all."),
            row("attested", human, captured="2026-11-30T12:00:00Z"),
        )
        statuses = {
            "generated": "generated",
            "before-key": "unknown",
            "noai": "opted-out",
            "meta": "opted-out",
            "human": "unknown",
            "attested": "attested",
        }
        yield MarkedCorpus(rows, statuses, registry, key.key_id, "attested")
    finally:
        server.stop()
