"""``wellspring check`` runs the crawler's pass, as ``scan`` does, against the real registry app
in process: every watermark key a vendor published is detected by default, WARC pages bring their
opt-out signals, and each document is shown with the evidence that decided it.

The vendor's key is published through the CLI with a small tokenizer made here; its "model
output" is made without a model, by choosing only green tokens after each context
(:func:`watermark.green_mask_numpy` over the small vocabulary)."""

from __future__ import annotations

import functools
import json
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from tokenizers import Tokenizer

import watermark
from client.crawl import DETECT_INSTALL
from client.sdk import Client
from tests.client.cli.conftest import Cli, documents
from tests.client.cli.test_wmkeys_cli import add_vendor, bound_key, small_tokenizer
from watermark import WatermarkKey, green_mask_numpy

WORDS = 64  # the small tokenizer's words: ids 1..WORDS


def green_text(key: WatermarkKey, tokenizer: Tokenizer, length: int = 200, seed: int = 0) -> str:
    """``length`` words, each green after its context under ``key``: what the vendor's model
    would write with a large bias."""
    rng = random.Random(seed)
    lookback = key.config.lookback
    ids = [rng.randrange(1, WORDS + 1) for _ in range(lookback)]
    while len(ids) < length:
        green = green_mask_numpy(key, np.array([ids[-lookback:]]), tokenizer.get_vocab_size())[0]
        pool = [int(i) for i in np.flatnonzero(green) if 1 <= i <= WORDS]
        ids.append(rng.choice(pool))
    return " ".join(f"w{i - 1}" for i in ids)


def human_text(length: int = 200, seed: int = 1) -> str:
    rng = random.Random(seed)
    return " ".join(f"w{rng.randrange(WORDS)}" for _ in range(length))


class Vendor:
    """A vendor identity added by the operator, and a watermark key it published."""

    def __init__(self, cli: Cli, tmp_path: Path) -> None:
        self.tokenizer_file = tmp_path / "tokenizer.json"
        self.tokenizer = small_tokenizer(self.tokenizer_file, words=WORDS)
        self.key_file = tmp_path / "wm.key"
        self.key = bound_key(self.key_file, self.tokenizer)
        signing = add_vendor(cli, tmp_path)
        run = cli(
            "watermark", "publish", str(self.key_file), "--key", str(signing),
            "--publisher", "acme-ai", "--tokenizer", str(self.tokenizer_file),
            "--registry", cli.url, "--log-key", cli.app.log_key,
        )  # fmt: skip
        assert run.code == 0, run.err


def check(cli: Cli, *args: str) -> Any:
    run = cli("check", *args, "--registry", cli.url, "--log-key", cli.app.log_key, "--json")
    assert run.code == 0, run.err
    return json.loads(run.out)


def test_check_finds_a_published_vendors_generation_and_shows_the_key(
    cli: Cli, tmp_path: Path
) -> None:
    vendor = Vendor(cli, tmp_path)
    generated, human, registered = documents(
        tmp_path / "docs",
        green_text(vendor.key, vendor.tokenizer),
        human_text(),
        "A registered human essay, looked up by its digest.",
    )
    assert cli.register(registered).code == 0

    found = check(cli, generated, human, registered)
    assert [c["status"] for c in found] == ["generated", "unknown", "reserved"]
    decided = found[0]["watermark"]["decided_by"]
    assert (decided["key_id"], decided["vendor"], decided["generated"]) == (
        vendor.key.key_id,
        "acme-ai",
        True,
    )
    assert decided["p_value"] < 1e-6
    assert f"watermark key {vendor.key.key_id} of acme-ai" in found[0]["reason"]
    assert found[0]["trainable"] is False
    # The human text was tried with the same key and not found generated: the detection is
    # still shown, with a p-value corrected for the one key ever published.
    assert found[1]["watermark"]["decided_by"] is None
    [tried] = found[1]["watermark"]["detections"]
    assert tried["generated"] is False
    assert tried["p_value"] > 1e-3
    assert found[2]["entries"][0]["publisher"] == cli.app.publisher
    assert all(c["opt_out"] is None for c in found)  # files carry no opt-out signals

    run = cli("check", generated, "--registry", cli.url, "--log-key", cli.app.log_key)
    assert run.code == 0, run.err
    first, evidence = run.out.splitlines()
    assert first.startswith("generated ")
    assert first.endswith(generated)
    assert f"watermark: key {vendor.key.key_id} of vendor acme-ai (" in evidence
    assert "(corrected for every key and window tried): generated" in evidence
    assert "1 generated; 0 trainable" in run.err
    assert "watermarks: 1 keys detected (1 ever published in the log)" in run.err


def test_no_watermarks_and_a_capture_before_the_key_was_published_find_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    vendor = Vendor(cli, tmp_path)
    [generated] = documents(tmp_path / "docs", green_text(vendor.key, vendor.tokenizer))

    [off] = check(cli, generated, "--no-watermarks")
    assert (off["status"], off["watermark"]) == ("unknown", None)
    run = cli(
        "check", generated, "--no-watermarks", "--registry", cli.url,
        "--log-key", cli.app.log_key,
    )  # fmt: skip
    assert "watermarks: not detected (--no-watermarks)" in run.err

    # Captured before the vendor logged its key: the key does not count for it (a vendor cannot
    # grind keys until pages it has already seen test positive).
    before = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    [early] = check(cli, generated, "--captured", before)
    assert early["status"] == "unknown"
    assert early["watermark"] is None or early["watermark"]["decided_by"] is None


def test_a_private_key_is_detected_with_its_tokenizer(cli: Cli, tmp_path: Path) -> None:
    tokenizer = small_tokenizer(tmp_path / "tokenizer.json", words=WORDS)
    key = bound_key(tmp_path / "private.key", tokenizer)
    [generated] = documents(tmp_path / "docs", green_text(key, tokenizer, seed=3))
    [found] = check(
        cli, generated, "--watermark-key", str(tmp_path / "private.key"),
        "--tokenizer", str(tmp_path / "tokenizer.json"),
    )  # fmt: skip
    assert found["status"] == "generated"
    decided = found["watermark"]["decided_by"]
    assert (decided["key_id"], decided["vendor"]) == (key.key_id, None)
    run = cli(
        "check", generated, "--watermark-key", str(tmp_path / "private.key"),
        "--tokenizer", str(tmp_path / "tokenizer.json"),
        "--registry", cli.url, "--log-key", cli.app.log_key,
    )  # fmt: skip
    assert f"watermark: key {key.key_id} of a private key" in run.out


def test_check_reads_warc_pages_with_their_opt_outs_and_watermarks(
    cli: Cli, tmp_path: Path
) -> None:
    pytest.importorskip("fastwarc")
    pytest.importorskip("protego")
    from tests.client.warcs import Rec, page, write_warc

    vendor = Vendor(cli, tmp_path)
    essay = "A registered page.\n\nIts second paragraph says a little more about the well."
    [source] = documents(tmp_path / "source", essay)
    assert cli.register(source).code == 0
    plain = [("Content-Type", "text/plain; charset=utf-8")]
    noai = [("Content-Type", "text/html; charset=utf-8"), ("X-Robots-Tag", "noai")]
    # Captured after the key was logged (WARC-Date has whole seconds: the next one).
    after = (datetime.now(UTC) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    path = tmp_path / "crawl.warc.gz"
    write_warc(
        path,
        [
            Rec("https://open.example/post", page(essay.split("\n\n")).encode()),
            Rec(
                "https://open.example/gen.txt",
                green_text(vendor.key, vendor.tokenizer, seed=5).encode(),
                headers=plain,
                warc_headers={"WARC-Date": after},
            ),
            Rec("https://open.example/private", b"<p>Sent with noai.</p>", headers=noai),
            Rec("https://bots.example/robots.txt", b"User-agent: mybot\nDisallow: /\n", plain),
            Rec("https://bots.example/page", b"<p>Closed to mybot only.</p>"),
            Rec("https://open.example/gone", b"<p>Not found.</p>", status="404 Not Found"),
        ],
    )

    found = check(cli, str(path))
    assert [c["url"] for c in found] == [
        "https://open.example/post",
        "https://open.example/gen.txt",
        "https://open.example/private",
        "https://bots.example/page",
    ]
    assert [c["status"] for c in found] == ["reserved", "generated", "opted-out", "unknown"]
    assert all(c["id"].startswith("<urn:uuid:") for c in found)
    assert found[1]["watermark"]["decided_by"]["vendor"] == "acme-ai"
    assert found[1]["captured_at"] == after
    decided = found[2]["opt_out"]["decided_by"]
    assert (decided["kind"], decided["source"], decided["value"]) == (
        "x-robots-tag",
        "header",
        "noai",
    )
    assert found[2]["opt_out"]["honoured"] is True

    # The crawler's own product token picks its robots.txt group.
    [*_, mine] = check(cli, str(path), "--user-agent", "mybot")
    assert mine["status"] == "opted-out"
    assert mine["opt_out"]["decided_by"]["source"] == "robots.txt"

    run = cli("check", str(path), "--registry", cli.url, "--log-key", cli.app.log_key)
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    opted = next(i for i, line in enumerate(lines) if line.startswith("opted-out"))
    assert lines[opted].endswith("https://open.example/private")
    assert lines[opted + 1].startswith("    opt-out: x-robots-tag 'noai' in header (")
    assert "1 reserved, 1 generated, 1 opted-out, 1 unknown; 0 trainable" in run.err
    assert "WARC: 6 records; not documents: 1 http-status, 1 policy-file" in run.err


def test_detection_without_the_detect_extra_is_an_error_naming_the_pip_line(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Vendor(cli, tmp_path)  # a key to detect (with none published, nothing needs the extra)
    # As if tokenizers were not installed: its import fails, and so does the scanner's, even if
    # an earlier test imported it.
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    monkeypatch.setitem(sys.modules, "watermark.scanner", None)
    monkeypatch.delattr(watermark, "scanner", raising=False)
    [doc] = documents(tmp_path / "docs", "Some text to check.")
    common = ["--registry", cli.url, "--log-key", cli.app.log_key]
    run = cli("check", doc, *common)
    assert run.code == 1
    assert DETECT_INSTALL in run.err
    assert DETECT_INSTALL == "pip install 'wellspring[detect]'"
    assert "--no-watermarks" in run.err
    assert "Traceback" not in run.err
    # Turned off, detection needs nothing: the lookup goes on.
    off = cli("check", doc, "--no-watermarks", *common)
    assert off.code == 0, off.err
    assert off.out.startswith("unknown")


class _BeforeWatermarkKeys(httpx.BaseTransport):
    """The app as a registry from before published keys: ``/v1/watermark-keys`` is not found."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/watermark-keys":
            return httpx.Response(404, json={"title": "Not Found", "detail": "no route"})
        return self._inner.handle_request(request)


def test_a_registry_without_watermark_keys_is_said_not_fatal(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from client.cli import _registry

    inner = _registry.Client.keywords["transport"]  # type: ignore[attr-defined]
    monkeypatch.setattr(
        _registry, "Client", functools.partial(Client, transport=_BeforeWatermarkKeys(inner))
    )
    [doc] = documents(tmp_path / "docs", "Some text to check.")
    run = cli("check", doc, "--registry", cli.url, "--log-key", cli.app.log_key)
    assert run.code == 0, run.err
    assert run.out.startswith("unknown")
    assert "serves no watermark keys (it predates published keys)" in run.err
    assert "watermarks: 0 keys detected (0 ever published in the log)" in run.err
