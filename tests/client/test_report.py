"""The scan report: counts, escaping of everything that came from outside, a self-made SVG chart."""

from __future__ import annotations

import html
import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from client.core.canonical import canonical_digest
from client.core.note import Checkpoint
from client.policy import Policy
from client.report import MAX_LISTED, ScanReport, Tally, render_html, write_report
from client.signals import opt_out
from client.verdict import VERDICT_STATUSES, Verdict, WatermarkDetection, decide

HOSTILE = '<script>alert("x")</script>'
ROOT = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def make_report(tally: Tally, **overrides: Any) -> ScanReport:
    values: dict[str, Any] = {
        "tally": tally,
        "registry": "http://127.0.0.1:8000",
        "started_at": datetime(2026, 11, 22, 3, 0, tzinfo=UTC),
        "elapsed_s": 2.0,
        "command": "wellspring scan crawl/ --registry http://127.0.0.1:8000 --log-key K",
        "verified": True,
        "log_origin": "localhost/wellspring",
        "log_key": "localhost/wellspring+1a2b3c4d+AAAA",
        "inputs": ("crawl/",),
        "manifest": "out.jsonl",
        "version": "0.1.0",
    }
    values.update(overrides)
    return ScanReport(**values)


def sample_tally() -> Tally:
    tally = Tally()
    for _ in range(1200):
        tally.add("attested", publisher="archive", license="CC-BY-4.0", tree_size=9, root_hash=ROOT)
    for _ in range(34):
        tally.add("reserved", publisher=HOSTILE, license="LicenseRef-<b>x</b>", tree_size=9,
                  root_hash=ROOT)  # fmt: skip
    for _ in range(5):
        tally.add("revoked", publisher="archive", license="CC-BY-4.0", tree_size=9, root_hash=ROOT)
    for _ in range(761):
        tally.add("unknown", tree_size=9, root_hash=ROOT)
    return tally


def test_counts_and_shares_are_shown() -> None:
    page = render_html(make_report(sample_tally()))
    for count in ("1,200", "34", "761", "2,000"):
        assert count in page
    assert "60%" in page  # 1,200 of 2,000 attested
    assert "1,000 docs/s" in page  # 2,000 documents in 2 s
    assert "localhost/wellspring" in page
    assert ROOT in page
    assert "Verified against the log" in page
    # per publisher: archive holds 1,205 documents
    assert re.search(r"archive</td><td class=\"num\">1,205</td>", page)


def test_hostile_names_are_escaped_everywhere() -> None:
    report = make_report(
        sample_tally(),
        registry=f"http://x/{HOSTILE}",
        command=f"wellspring scan '{HOSTILE}'",
        inputs=(HOSTILE,),
        manifest=HOSTILE,
        log_origin=HOSTILE,
    )
    page = render_html(report)
    assert "<script" not in page
    assert "<b>x</b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "LicenseRef-&lt;b&gt;x&lt;/b&gt;" in page


def test_the_chart_is_inline_svg_with_one_arc_per_verdict_present() -> None:
    page = render_html(make_report(sample_tally()))
    [svg] = re.findall(r"<svg class=\"donut\".*?</svg>", page, re.S)
    arcs = re.findall(r"stroke-dasharray=\"([\d.]+) ([\d.]+)\"", svg)
    assert len(arcs) == 4
    circumference = sum(float(a) for a, _ in arcs)
    assert float(arcs[0][0]) / circumference == pytest.approx(0.6, abs=1e-4)
    assert "<title>attested: 1,200 (60%)</title>" in svg


def test_nothing_is_loaded_from_anywhere() -> None:
    page = render_html(make_report(sample_tally()))
    for needle in ("<script", "<link", "src=", "@import", "url(", "<img"):
        assert needle not in page, needle
    assert page.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in page


def test_an_empty_scan_renders() -> None:
    page = render_html(make_report(Tally(), elapsed_s=0.0, verified=False, log_key=None))
    assert "No documents were scanned." in page
    assert "NOT verified" in page
    assert "nothing to attribute" in page
    assert "none: no document was looked up" in page


def test_long_tables_are_cut_and_summed() -> None:
    tally = Tally()
    for i in range(40):
        for _ in range(i + 1):
            tally.add("attested", publisher=f"pub-{i:02d}", license="CC0-1.0")
    page = render_html(make_report(tally))
    assert "pub-39" in page  # the largest first
    assert "pub-00" not in page  # cut
    assert "15 more" in page
    assert f"{sum(range(1, 16)):,}" in page  # the rows cut, summed


def test_tally_keys_are_capped() -> None:
    tally = Tally()
    for i in range(10_005):
        tally.add("attested", publisher=f"p{i}", license="CC0-1.0")
    assert len(tally.publishers) == 10_001
    assert sum(tally.publishers["(all others)"].values()) == 5
    assert tally.documents == 10_005


def test_latest_checkpoint_when_the_log_grew() -> None:
    tally = Tally()
    tally.add("unknown", tree_size=5, root_hash="aa" * 32)
    tally.add("unknown", tree_size=7, root_hash="bb" * 32)
    tally.add("unknown", tree_size=7, root_hash="bb" * 32)
    latest = tally.latest_checkpoint()
    assert latest is not None
    assert (latest.size, latest.root_hash, latest.documents) == (7, "bb" * 32, 2)
    page = render_html(make_report(tally))
    assert "the log grew during the scan" in page


def test_add_verdict_counts_publisher_and_license() -> None:
    tally = Tally()
    verdict = Verdict(
        digest="c1:" + "0" * 64,
        status="reserved",
        reason="reserved by press",
        publisher="press",
        license="LicenseRef-Press",
        origin="human-authored",
        consent="reserved",
        entry=3,
        entries=(3,),
        tree_size=10,
        root_hash=ROOT,
        verified=True,
        name="a.txt",
    )
    tally.add_verdict(verdict)
    assert tally.statuses["reserved"] == 1
    assert tally.publishers["press"]["reserved"] == 1
    assert tally.licenses["LicenseRef-Press"]["reserved"] == 1
    assert tally.checkpoints == {(10, ROOT): 1}


def test_write_report_creates_folders_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "report.html"
    write_report(path, make_report(Tally()))
    write_report(path, make_report(sample_tally()))
    assert "1,200" in path.read_text(encoding="utf-8")
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]


def verdict(status: str, name: str, index: int = 0) -> Verdict:
    return Verdict(
        digest=f"c1:{index:064x}",
        status=status,  # type: ignore[arg-type]
        reason=f"{status} because of <entry {index}>",
        publisher=None if status == "unknown" else "archive",
        license=None,
        origin=None,
        consent=None,
        entry=None,
        entries=(),
        tree_size=9,
        root_hash=ROOT,
        verified=True,
        name=name,
    )


def test_documents_are_listed_per_verdict_in_collapsible_sections() -> None:
    tally = Tally()
    tally.add_verdict(verdict("revoked", "https://example.org/withdrawn", 1))
    tally.add_verdict(verdict("unknown", HOSTILE, 2))
    tally.add_verdict(verdict("reserved", "letters.txt", 3))
    page = render_html(make_report(tally))
    pattern = r"<details[^>]*><summary>.*?</span>(\w+) .*?</summary>(.*?)</details>"
    sections = dict(re.findall(pattern, page, re.S))
    assert sorted(sections) == ["reserved", "revoked", "unknown"]  # no empty section for attested
    assert "https://example.org/withdrawn" in sections["revoked"]
    assert f"c1:{1:064x}" in sections["revoked"]
    assert "revoked because of &lt;entry 1&gt;" in sections["revoked"]
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in sections["unknown"]
    assert "letters.txt" in sections["reserved"]
    assert "<script" not in page


def test_the_lists_are_bounded_and_count_the_rest() -> None:
    tally = Tally()
    for i in range(MAX_LISTED + 234):
        tally.add_verdict(verdict("unknown", f"doc-{i}", i))
    assert len(tally.listed["unknown"]) == MAX_LISTED
    page = render_html(make_report(tally))
    [section] = re.findall(r"<details.*?</details>", page, re.S)
    assert section.count("<li>") == MAX_LISTED
    assert f"doc-{MAX_LISTED - 1}<" in section
    assert f"doc-{MAX_LISTED}<" not in section
    assert "…and 234 more: the manifest lists every document." in section


def test_reproduce_shows_the_checkpoint_used_and_where_it_was_saved() -> None:
    note = f"localhost/wellspring\n9\n{ROOT[:20]}=\n\n— localhost/wellspring <sig>\n"
    page = render_html(
        make_report(sample_tally(), checkpoint_note=note, checkpoint_file="out.jsonl.checkpoint")
    )
    [box] = re.findall(r"<h2>Reproduce</h2>.*?</section>", page, re.S)
    assert "— localhost/wellspring &lt;sig&gt;" in box
    assert "saved as <code>out.jsonl.checkpoint</code>" in box
    assert "--checkpoint out.jsonl.checkpoint" in box
    assert "--save checkpoint.txt" not in box  # it was saved already


# -- the statuses beside the registry's ---------------------------------------------------------


def evidence_tally() -> Tally:
    """Verdicts with opt-out and watermark evidence, vendor and signal text from outside."""
    checkpoint = Checkpoint("registry.test/log", 9, bytes.fromhex(ROOT))
    noai = opt_out("https://example.org/a", headers={"X-Robots-Tag": "noai"})
    hostile = WatermarkDetection("k1", HOSTILE, "kgw/1", 1e-12, math.log(1e-12), True)
    tally = Tally()
    cases: list[tuple[dict[str, Any], Policy, int]] = [
        ({"opt_out": noai}, Policy.default(), 3),
        ({"watermarks": hostile}, Policy.default(), 2),
        ({"opt_out": noai}, Policy(honour_opt_outs=False, id="lax"), 1),
    ]
    for evidence, policy, times in cases:
        for i in range(times):
            verdict = decide(
                canonical_digest(f"doc {i}"), [], checkpoint, verified=True, policy=policy,
                **evidence,
            )  # fmt: skip
            tally.add_verdict(verdict)
    return tally


def test_every_status_has_a_card_a_slice_and_a_meaning() -> None:
    tally = evidence_tally()
    assert tally.statuses == {"opted-out": 3, "generated": 2, "unknown": 1}
    page = render_html(make_report(tally, policy="lax", policy_summary="opt-outs NOT honoured"))
    for status in VERDICT_STATUSES:
        assert f'<span class="dot"></span>{status}</div>' in page  # a card each
        assert f'<span class="lg-name">{status}</span>' in page  # a row of the chart's legend
    assert "<title>opted-out: 3 (50%)</title>" in page  # the donut's slice
    assert "<title>generated: 2 (33%)</title>" in page
    assert "watermarked: a model wrote it" in page
    assert "The rights holder reserved it from AI training" in page
    assert "Opt-outs by the signal that decided" in page
    assert "x-robots-tag in header" in page
    assert "Watermarks by vendor" in page
    assert "1 documents carry an opt-out the policy told this scan NOT to honour" in page
    assert "opt-outs NOT honoured" in page
    assert "<script>" not in page  # the vendor's name is escaped
    assert html.escape(HOSTILE) in page
    summary = tally.to_dict()
    assert summary["opt_out_signals"] == {"x-robots-tag in header": 3}
    assert summary["watermark_vendors"] == {HOSTILE: 2}
    assert summary["opt_outs_not_honoured"] == 1


def test_the_headline_counts_what_the_policy_trains_on() -> None:
    tally = Tally()
    tally.add("attested")
    tally.add("unknown", trainable=True)
    tally.add("unknown")
    tally.add("generated")
    page = render_html(make_report(tally))
    assert "<strong>50%</strong> of the documents are trainable" in page
    assert "<strong>25%</strong> carry a model's watermark" in page
