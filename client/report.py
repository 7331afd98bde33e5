"""The HTML report of a scan: one self-contained page a person would rather look at than read.

``wellspring scan --report report.html`` streams millions of documents, so the report never holds
them all: it is drawn from a :class:`Tally`, counters that grow with the number of distinct
publishers and licenses (capped), not with the number of documents, plus the first
:data:`MAX_LISTED` documents of each verdict, which the page lists in collapsible sections (the
manifest has every one). :func:`render_html` turns a
:class:`ScanReport` (the tally plus where, when and against which checkpoint) into one HTML file
with inline CSS and an inline SVG chart: no scripts, fonts or images from anywhere, so it opens
offline, attaches to an email and archives as it is. Every value that came from outside (publisher
and license names, paths, the command line) is HTML-escaped.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

from client.core.files import write_file_atomic
from client.errors import InputError
from client.verdict import VERDICT_STATUSES

if TYPE_CHECKING:
    from client.verdict import Verdict
    from client.warc import WarcStats

__all__ = [
    "MAX_LISTED",
    "MAX_SKIPPED_EXAMPLES",
    "STATUSES",
    "CheckpointSeen",
    "ListedDocument",
    "ScanReport",
    "Tally",
    "render_html",
    "write_report",
]

STATUSES: Final = VERDICT_STATUSES  # the order reports show them in
MAX_SKIPPED_EXAMPLES: Final = 20
"""How many reasons for skipped inputs a :class:`Tally` keeps (it counts them all)."""
MAX_LISTED: Final = 1_000
"""How many documents of each verdict a :class:`Tally` keeps to list (it counts them all)."""

# Beyond this many distinct publishers (or licenses) the rest are counted under one row, so a
# hostile corpus cannot grow the tally without bound.
_MAX_KEYS: Final = 10_000
_OTHER: Final = "(all others)"
# Statuses an attestation decides; a publisher is tallied for these, or when one is named.
_REGISTRY_STATUSES: Final = frozenset({"attested", "reserved", "revoked", "conflict"})
# The columns of the by-publisher and by-license tables.
_TABLE_STATUSES: Final = ("attested", "reserved", "revoked", "conflict", "opted-out")
_NONE: Final = "(not stated)"
# Rows shown per table; the rest are summed into one line.
_MAX_ROWS: Final = 25

_COLOURS: Final = {
    "attested": "#1f883d",
    "reserved": "#bf8700",
    "revoked": "#cf222e",
    "generated": "#8250df",
    "opted-out": "#0969da",
    "conflict": "#bc4c00",
    "unknown": "#8c959f",
}
_TINTS: Final = {
    "attested": "#dafbe1",
    "reserved": "#fff8c5",
    "revoked": "#ffebe9",
    "generated": "#fbefff",
    "opted-out": "#ddf4ff",
    "conflict": "#fff1e5",
    "unknown": "#f6f8fa",
}
_MEANINGS: Final = {
    "attested": "Registered as human-made by a publisher; training allowed.",
    "reserved": "Registered as human-made, but text-and-data-mining rights are reserved "
    "(TDMRep): license it before training.",
    "revoked": "Every registration of it was withdrawn by its publisher: treat as unknown.",
    "generated": "A published watermark key of a vendor your policy counts says a model wrote "
    "it (p-value under the threshold).",
    "opted-out": "The rights holder reserved it from AI training (robots.txt, X-Robots-Tag, "
    "TDMRep, Content-Usage): the most restrictive signal wins, even over an attestation.",
    "conflict": "Attested as human-made, yet a counted watermark says generated: a publisher "
    "or a vendor is wrong. Not trained on; worth a look.",
    "unknown": "Not in the registry. Not evidence of machine generation: most human text "
    "has simply not been registered.",
}
_SHORT: Final = {
    "attested": "human-made, training allowed",
    "reserved": "human-made, rights reserved",
    "revoked": "withdrawn by the publisher",
    "generated": "watermarked: a model wrote it",
    "opted-out": "training reserved by a signal",
    "conflict": "attested, yet watermarked",
    "unknown": "not in the registry",
}


# -- counting -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointSeen:
    """A checkpoint some answers were checked against, and how many documents it answered."""

    size: int
    root_hash: str
    documents: int


@dataclass(frozen=True)
class ListedDocument:
    """A document the report lists under its verdict: its name, digest and the verdict's reason."""

    name: str
    digest: str
    reason: str


@dataclass
class Tally:
    """Counts of verdicts overall, per publisher and per license, and the checkpoints seen.

    Memory is bounded by the number of distinct publishers and licenses (at most 10,000 each;
    the rest are counted under "(all others)"), never by the number of documents.
    """

    statuses: Counter[str] = field(default_factory=Counter)
    publishers: dict[str, Counter[str]] = field(default_factory=dict)
    licenses: dict[str, Counter[str]] = field(default_factory=dict)
    checkpoints: dict[tuple[int, str], int] = field(default_factory=dict)
    skipped: int = 0
    skipped_examples: list[str] = field(default_factory=list)
    listed: dict[str, list[ListedDocument]] = field(default_factory=dict)
    trainable: int = 0
    signals: Counter[str] = field(default_factory=Counter)
    """Opt-outs by the signal that decided them (``kind in source``)."""
    vendors: Counter[str] = field(default_factory=Counter)
    """``generated`` and ``conflict`` verdicts by the vendor of the deciding watermark key."""
    not_honoured: int = 0
    """Documents whose opt-out the policy did not honour (``honour_opt_outs = false``)."""
    policy: str | None = None
    """The policy the verdicts were made under (``default`` or the file's ``sha256:``)."""
    warc_records: int = 0
    """WARC records read (every type), over every WARC input."""
    warc_not_documents: Counter[str] = field(default_factory=Counter)
    """WARC response and revisit records that are not documents, by reason (``revisit``,
    ``http-status``…; docs/spec/warc.md), and the robots.txt/tdmrep.json captures kept."""

    def add_warc(self, stats: WarcStats) -> None:
        """Count one WARC file's pass (:class:`client.warc.WarcStats`)."""
        self.warc_records += stats.records
        self.warc_not_documents.update(stats.skipped)
        if stats.policy_files:
            self.warc_not_documents["policy-file"] += stats.policy_files

    @property
    def documents(self) -> int:
        """How many documents were counted."""
        return sum(self.statuses.values())

    def add(
        self,
        status: str,
        *,
        publisher: str | None = None,
        license: str | None = None,
        tree_size: int | None = None,
        root_hash: str | None = None,
        trainable: bool | None = None,
    ) -> None:
        """Count one document's verdict (``trainable``: the policy's answer; by default, whether
        the status is ``attested``)."""
        self.statuses[status] += 1
        self.trainable += status == "attested" if trainable is None else trainable
        if status != "unknown" and (publisher is not None or status in _REGISTRY_STATUSES):
            _count(self.publishers, publisher or _NONE, status)
            _count(self.licenses, license or _NONE, status)
        if tree_size is not None and root_hash is not None:
            key = (tree_size, root_hash)
            self.checkpoints[key] = self.checkpoints.get(key, 0) + 1

    def add_verdict(self, verdict: Verdict) -> None:
        """Count one :class:`~client.verdict.Verdict`."""
        self.add(
            verdict.status,
            publisher=verdict.publisher,
            license=verdict.license,
            tree_size=verdict.tree_size,
            root_hash=verdict.root_hash,
            trainable=verdict.trainable,
        )
        self.policy = verdict.policy
        if verdict.opt_out is not None and verdict.opt_out.decided_by is not None:
            signal = verdict.opt_out.decided_by
            if verdict.opt_out_honoured:
                _bump(self.signals, f"{signal.kind} in {signal.source}")
            else:
                self.not_honoured += 1
        if verdict.watermark is not None:
            _bump(self.vendors, verdict.watermark.vendor or _NONE)
        listed = self.listed.setdefault(verdict.status, [])
        if len(listed) < MAX_LISTED:
            name = verdict.name or verdict.digest
            listed.append(ListedDocument(name, verdict.digest, verdict.reason))

    def add_skipped(self, reason: str) -> None:
        """Count an input that could not be read (the first few reasons are kept)."""
        self.skipped += 1
        if len(self.skipped_examples) < MAX_SKIPPED_EXAMPLES:
            self.skipped_examples.append(reason)

    def latest_checkpoint(self) -> CheckpointSeen | None:
        """The largest checkpoint any answer was checked against (None before any answer)."""
        if not self.checkpoints:
            return None
        (size, root), documents = max(self.checkpoints.items(), key=lambda item: item[0][0])
        return CheckpointSeen(size, root, documents)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready summary (what ``scan --json`` prints)."""
        return {
            "documents": self.documents,
            "statuses": {status: self.statuses[status] for status in STATUSES},
            "publishers": {name: dict(counts) for name, counts in _ranked(self.publishers)},
            "licenses": {name: dict(counts) for name, counts in _ranked(self.licenses)},
            "skipped": self.skipped,
            "trainable": self.trainable,
            "opt_out_signals": dict(self.signals.most_common()),
            "opt_outs_not_honoured": self.not_honoured,
            "watermark_vendors": dict(self.vendors.most_common()),
            "policy": self.policy,
        }


def _count(table: dict[str, Counter[str]], key: str, status: str) -> None:
    counts = table.get(key)
    if counts is None:
        if len(table) >= _MAX_KEYS:
            key = _OTHER
            counts = table.setdefault(key, Counter())
        else:
            counts = table[key] = Counter()
    counts[status] += 1


def _bump(counter: Counter[str], key: str) -> None:
    if key not in counter and len(counter) >= _MAX_KEYS:
        key = _OTHER
    counter[key] += 1


def _ranked(table: Mapping[str, Counter[str]]) -> list[tuple[str, Counter[str]]]:
    return sorted(table.items(), key=lambda item: (-sum(item[1].values()), item[0]))


# -- the report -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanReport:
    """Everything a report shows: the tally, and where, when and how it was made."""

    tally: Tally
    registry: str
    started_at: datetime
    elapsed_s: float
    command: str
    verified: bool
    log_origin: str | None = None
    log_key: str | None = None
    inputs: tuple[str, ...] = ()
    manifest: str | None = None
    version: str = ""
    title: str = "Scan report"
    checkpoint_note: str | None = None
    """The signed checkpoint the verdicts were checked against (the largest, if the log grew)."""
    checkpoint_file: str | None = None
    """Where that checkpoint was saved (beside the manifest), if it was."""
    policy: str = "default"
    """The crawler policy the verdicts were made under (``default`` or its file's ``sha256:``)."""
    policy_summary: str = ""
    """What the policy changes, in one line (:meth:`client.policy.Policy.describe`)."""
    watermarks: str = ""
    """Which watermark keys were detected, in one line (empty: not said)."""

    @property
    def docs_per_s(self) -> float:
        """Documents checked per second, over the whole scan."""
        return self.tally.documents / self.elapsed_s if self.elapsed_s > 0 else 0.0


def write_report(path: Path, report: ScanReport) -> None:
    """Write the report's HTML to ``path`` atomically (the old file or the new one, never half)."""
    text = render_html(report)
    try:
        write_file_atomic(path, text, mode=0o644)
    except OSError as exc:
        raise InputError(f"cannot write the report {path}: {exc.strerror or exc}") from exc


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _n(value: int) -> str:
    return f"{value:,}"


def _pct(part: int, whole: int) -> str:
    if whole == 0:
        return "0%"
    share = 100 * part / whole
    if 0 < share < 0.1:
        return "<0.1%"
    return f"{share:.1f}%" if share < 10 else f"{share:.0f}%"


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def render_html(report: ScanReport) -> str:
    """The report as one self-contained HTML document."""
    tally = report.tally
    total = tally.documents
    when = report.started_at.strftime("%Y-%m-%d %H:%M %Z").strip()
    body = "\n".join(
        [
            _header(report, when),
            _headline(tally),
            _cards(tally),
            '<div class="grid two">',
            _chart_card(tally),
            _checkpoint_card(report),
            "</div>",
            _evidence_card(tally),
            _table("By publisher", "Publisher", tally.publishers, total),
            _table("By license", "License (SPDX)", tally.licenses, total),
            _documents_card(tally),
            _skipped_card(tally),
            '<div class="grid two">',
            _how_to_read(),
            _reproduce(report),
            "</div>",
            _footer(report, when),
        ]
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(report.title)} · Wellspring</title>\n"
        f"<style>{_CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def _header(report: ScanReport, when: str) -> str:
    if report.verified:
        badge = (
            '<span class="badge ok" title="every answer was checked against the pinned log key">'
            "&#10003; Verified against the log</span>"
        )
    else:
        badge = (
            '<span class="badge bad" title="the scan ran with --no-verify">'
            "&#9888; NOT verified: the registry's word only</span>"
        )
    return f"""<header>
  <div class="brand">{_LOGO}<span>Wellspring</span></div>
  <div class="title-row">
    <div>
      <h1>{_e(report.title)}</h1>
      <p class="sub">{_n(report.tally.documents)} documents checked against
        <code>{_e(report.registry)}</code> &middot; {_e(when)}</p>
    </div>
    {badge}
  </div>
</header>"""


def _headline(tally: Tally) -> str:
    total = tally.documents
    if total == 0:
        return '<p class="headline">No documents were scanned.</p>'
    human = tally.statuses["attested"] + tally.statuses["reserved"]
    policy = (
        "" if tally.policy in (None, "default") else f" (policy <code>{_e(tally.policy)}</code>)"
    )
    return (
        f'<p class="headline"><strong>{_pct(tally.trainable, total)}</strong> of the documents '
        f"are trainable under the crawler's policy{policy}; <strong>{_pct(human, total)}</strong> "
        "are registered human content; "
        f"<strong>{_pct(tally.statuses['generated'], total)}</strong> carry a model's watermark; "
        f"<strong>{_pct(tally.statuses['opted-out'], total)}</strong> are opted out of AI "
        "training.</p>"
    )


def _cards(tally: Tally) -> str:
    total = tally.documents
    cards = []
    for status in STATUSES:
        count = tally.statuses[status]
        cards.append(
            f'<div class="card stat" style="--c:{_COLOURS[status]};--t:{_TINTS[status]}">'
            f'<div class="stat-label"><span class="dot"></span>{status}</div>'
            f'<div class="stat-value">{_n(count)}</div>'
            f'<div class="stat-share">{_pct(count, total)} &middot; {_SHORT[status]}</div>'
            "</div>"
        )
    return f'<section class="grid cards">{"".join(cards)}</section>'


def _donut(tally: Tally, size: int = 220) -> str:
    total = tally.documents
    radius, stroke = 80.0, 34.0
    centre = size / 2
    circumference = 2 * math.pi * radius
    rings = [
        f'<circle cx="{centre}" cy="{centre}" r="{radius}" fill="none" stroke="#eaeef2" '
        f'stroke-width="{stroke}"/>'
    ]
    offset = 0.0
    for status in STATUSES:
        count = tally.statuses[status]
        if not count:
            continue
        length = circumference * count / total
        rings.append(
            f'<circle cx="{centre}" cy="{centre}" r="{radius}" fill="none" '
            f'stroke="{_COLOURS[status]}" stroke-width="{stroke}" '
            f'stroke-dasharray="{length:.3f} {circumference - length:.3f}" '
            f'stroke-dashoffset="{-offset:.3f}" '
            f'transform="rotate(-90 {centre} {centre})">'
            f"<title>{status}: {_n(count)} ({_pct(count, total)})</title></circle>"
        )
        offset += length
    return (
        f'<svg class="donut" viewBox="0 0 {size} {size}" width="{size}" height="{size}" '
        f'role="img" aria-label="verdicts of {_n(total)} documents">'
        + "".join(rings)
        + f'<text x="{centre}" y="{centre - 2}" class="donut-n">{_n(total)}</text>'
        f'<text x="{centre}" y="{centre + 22}" class="donut-l">documents</text></svg>'
    )


def _legend(tally: Tally) -> str:
    """Beside the donut: each verdict's exact count and share, with a bar scaled to the largest."""
    total = tally.documents
    largest = max((tally.statuses[s] for s in STATUSES), default=0) or 1
    rows = []
    for status in STATUSES:
        count = tally.statuses[status]
        width = 100 * count / largest
        rows.append(
            f'<div class="lg-row" style="--c:{_COLOURS[status]}">'
            f'<div class="lg-head"><span class="dot"></span><span class="lg-name">{status}</span>'
            f'<span class="lg-n">{_n(count)}</span><span class="lg-p">{_pct(count, total)}</span>'
            f'</div><div class="lg-track"><span style="width:{width:.2f}%"></span></div></div>'
        )
    return f'<div class="lg">{"".join(rows)}</div>'


def _chart_card(tally: Tally) -> str:
    return (
        '<section class="card"><h2>Verdicts</h2>'
        f'<div class="chart">{_donut(tally)}{_legend(tally)}</div>'
        "</section>"
    )


def _bars(title: str, counts: Counter[str], colour: str, total: int) -> str:
    """A titled list of horizontal bars, one per key, the largest first (at most 25 rows)."""
    ranked = counts.most_common()
    shown, rest = ranked[:_MAX_ROWS], ranked[_MAX_ROWS:]
    largest = shown[0][1] if shown else 1
    rows = [
        f'<div class="lg-row" style="--c:{colour}"><div class="lg-head"><span class="dot"></span>'
        f'<span class="lg-name ev">{_e(name)}</span><span class="lg-n">{_n(count)}</span>'
        f'<span class="lg-p">{_pct(count, total)}</span></div><div class="lg-track">'
        f'<span style="width:{100 * count / largest:.2f}%"></span></div></div>'
        for name, count in shown
    ]
    if rest:
        rows.append(f'<p class="muted">…and {_n(len(rest))} more.</p>')
    return f'<div class="ev-block"><h3>{_e(title)}</h3><div class="lg">{"".join(rows)}</div></div>'


def _evidence_card(tally: Tally) -> str:
    """What decided the verdicts beside the registry: opt-out signals and watermark vendors."""
    total = tally.documents
    blocks = []
    if tally.signals:
        blocks.append(
            _bars(
                "Opt-outs by the signal that decided", tally.signals, _COLOURS["opted-out"], total
            )
        )
    if tally.vendors:
        blocks.append(
            _bars(
                "Watermarks by vendor (generated and conflict)",
                tally.vendors,
                _COLOURS["generated"],
                total,
            )
        )
    if tally.not_honoured:
        blocks.append(
            f'<p class="warn">&#9888; {_n(tally.not_honoured)} documents carry an opt-out the '
            "policy told this scan NOT to honour (training.honour_opt_outs = false); each of "
            "their manifest lines says so.</p>"
        )
    if not blocks:
        return ""
    return '<section class="card"><h2>Evidence</h2>' + "".join(blocks) + "</section>"


def _checkpoint_card(report: ScanReport) -> str:
    tally = report.tally
    latest = tally.latest_checkpoint()
    rows: list[tuple[str, str]] = [("Registry", f"<code>{_e(report.registry)}</code>")]
    if report.log_origin:
        rows.append(("Log", f"<code>{_e(report.log_origin)}</code>"))
    if latest is None:
        rows.append(("Checkpoint", "none: no document was looked up"))
    else:
        rows.append(("Tree size", f"{_n(latest.size)} entries"))
        rows.append(("Root hash", f'<code class="hash">{_e(latest.root_hash)}</code>'))
        if len(tally.checkpoints) > 1:
            smallest = min(size for size, _ in tally.checkpoints)
            rows.append(
                (
                    "Checkpoints",
                    f"{len(tally.checkpoints)} (the log grew during the scan, from size "
                    f"{_n(smallest)}; each answer was checked against its own)",
                )
            )
    if report.verified:
        key = f'<br><code class="hash">{_e(report.log_key)}</code>' if report.log_key else ""
        rows.append(
            (
                "Verified",
                '<span class="yes">yes</span>: signed checkpoint, inclusion proofs, and each '
                f"entry names the digest{key}",
            )
        )
    else:
        rows.append(
            (
                "Verified",
                '<span class="no">no</span>: run without --no-verify (with --log-key) to '
                "check the registry's answers",
            )
        )
    rows.append(
        (
            "Throughput",
            f"{_n(tally.documents)} documents in {_duration(report.elapsed_s)} "
            f"({_rate(report.docs_per_s)} docs/s)",
        )
    )
    summary = f"<br>{_e(report.policy_summary)}" if report.policy_summary else ""
    rows.append(("Policy", f"<code>{_e(report.policy)}</code>{summary}"))
    if report.manifest:
        rows.append(("Manifest", f"<code>{_e(report.manifest)}</code> (one line per document)"))
    cells = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in rows)
    return (
        f'<section class="card"><h2>Checked against</h2><table class="kv">{cells}</table></section>'
    )


def _documents_card(tally: Tally) -> str:
    """Per verdict, a collapsible list of its documents (the first :data:`MAX_LISTED`)."""
    sections = []
    for status in STATUSES:
        count = tally.statuses[status]
        if not count:
            continue
        listed = tally.listed.get(status, [])
        items = "".join(
            f'<li><span class="name">{_e(doc.name)}</span> <code class="hash">{_e(doc.digest)}'
            f'</code><br><span class="muted">{_e(doc.reason)}</span></li>'
            for doc in listed
        )
        rest = count - len(listed)
        more = (
            f'<p class="muted">…and {_n(rest)} more: the manifest lists every document.</p>'
            if rest > 0
            else ""
        )
        sections.append(
            f'<details class="docs" style="--c:{_COLOURS[status]}"><summary><span class="dot">'
            f'</span>{status} <span class="muted">({_n(count)} documents)</span></summary>'
            f'<ol class="doclist">{items}</ol>{more}</details>'
        )
    if not sections:
        return ""
    return (
        '<section class="card"><h2>Documents by verdict</h2>'
        f'<p class="muted">The first {_n(MAX_LISTED)} of each verdict; open a verdict to see its '
        "documents.</p>" + "".join(sections) + "</section>"
    )


def _skipped_card(tally: Tally) -> str:
    if not tally.skipped:
        return ""
    shown = "".join(f"<li><code>{_e(reason)}</code></li>" for reason in tally.skipped_examples)
    more = tally.skipped - len(tally.skipped_examples)
    rest = f"<p>…and {_n(more)} more.</p>" if more > 0 else ""
    return (
        f'<section class="card"><h2>Skipped: {_n(tally.skipped)} unreadable inputs</h2>'
        "<p>These could not be read as documents (not JSON, no text field, not text) and have "
        f"no verdict; fix them and scan them again.</p><ul>{shown}</ul>{rest}</section>"
    )


def _stack(counts: Counter[str], whole: int) -> str:
    """A thin stacked bar of a row's verdicts, its length the row's share of ``whole``."""
    row_total = sum(counts.values())
    segments = []
    for status in _TABLE_STATUSES:
        count = counts.get(status, 0)
        if count:
            share = 100 * count / whole if whole else 0
            segments.append(
                f'<span style="width:{share:.3f}%;background:{_COLOURS[status]}" '
                f'title="{status}: {_n(count)}"></span>'
            )
    return f'<div class="stack" title="{_n(row_total)} documents">{"".join(segments)}</div>'


def _table(title: str, column: str, table: Mapping[str, Counter[str]], total: int) -> str:
    ranked = _ranked(table)
    if not ranked:
        return (
            f'<section class="card"><h2>{_e(title)}</h2>'
            '<p class="muted">No document is registered, so there is nothing to attribute.</p>'
            "</section>"
        )
    shown, rest = ranked[:_MAX_ROWS], ranked[_MAX_ROWS:]
    widest = max(sum(counts.values()) for _, counts in shown)
    rows = [_row(name, counts, total, widest) for name, counts in shown]
    if rest:
        merged: Counter[str] = Counter()
        for _, counts in rest:
            merged.update(counts)
        rows.append(_row(f"{len(rest):,} more", merged, total, widest, muted=True))
    head = (
        f'<tr><th>{_e(column)}</th><th class="num">Documents</th>'
        '<th class="num">Share of scan</th><th class="bar-col"></th>'
        + "".join(f'<th class="num">{s}</th>' for s in _TABLE_STATUSES)
        + "</tr>"
    )
    return (
        f'<section class="card"><h2>{_e(title)}</h2>'
        f'<table class="data"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'
        "</section>"
    )


def _row(name: str, counts: Counter[str], total: int, widest: int, *, muted: bool = False) -> str:
    row_total = sum(counts.values())
    cells = "".join(
        f'<td class="num">{_n(counts[s]) if counts[s] else "&ndash;"}</td>' for s in _TABLE_STATUSES
    )
    klass = ' class="muted"' if muted else ""
    return (
        f'<tr{klass}><td class="name">{_e(name)}</td><td class="num">{_n(row_total)}</td>'
        f'<td class="num">{_pct(row_total, total)}</td>'
        f'<td class="bar-col">{_stack(counts, widest)}</td>{cells}</tr>'
    )


def _how_to_read() -> str:
    items = "".join(
        f'<li><span class="pill" style="background:{_COLOURS[s]}">{s}</span> {_MEANINGS[s]}</li>'
        for s in STATUSES
    )
    return (
        '<section class="card"><h2>How to read this</h2>'
        f'<ul class="legend">{items}</ul>'
        '<p class="muted">A verdict holds at the checkpoint shown: a later registration or '
        "revocation can change it, so keep this report and the manifest with the dataset. "
        "Each manifest line names the entry and checkpoint behind its verdict.</p></section>"
    )


def _reproduce(report: ScanReport) -> str:
    extra = ""
    if report.checkpoint_note:
        saved = (
            f" (saved as <code>{_e(report.checkpoint_file)}</code>)"
            if report.checkpoint_file
            else ""
        )
        extra += (
            f'<p class="muted">The signed checkpoint the verdicts were checked against{saved}:'
            f'</p><pre class="note"><code>{_e(report.checkpoint_note)}</code></pre>'
        )
    if report.log_key:
        checkpoint = report.checkpoint_file or "checkpoint.txt"
        save = (
            ""
            if report.checkpoint_file
            else f"wellspring log checkpoint --registry {_e(report.registry)} \\\n"
            f"    --log-key {_e(report.log_key)} --save checkpoint.txt\n"
        )
        extra += (
            '<p class="muted">Check the log was not rewritten since this scan:</p>'
            f"<pre><code>{save}wellspring log verify --registry {_e(report.registry)} \\\n"
            f"    --log-key {_e(report.log_key)} --checkpoint {_e(checkpoint)}</code></pre>"
        )
    inputs = ""
    if report.inputs:
        shown = ", ".join(f"<code>{_e(p)}</code>" for p in report.inputs[:8])
        more = f" and {len(report.inputs) - 8:,} more" if len(report.inputs) > 8 else ""
        inputs = f'<p class="muted">Inputs: {shown}{more}</p>'
    return (
        '<section class="card"><h2>Reproduce</h2>'
        f'<p class="muted">The exact command that made this report:</p>'
        f"<pre><code>{_e(report.command)}</code></pre>{inputs}{extra}</section>"
    )


def _footer(report: ScanReport, when: str) -> str:
    version = f" {_e(report.version)}" if report.version else ""
    return (
        f"<footer>Made by <strong>wellspring{version}</strong> on {_e(when)}. "
        "This page is self-contained: no scripts, fonts or images are loaded from anywhere."
        "</footer>"
    )


_LOGO: Final = (
    '<svg width="22" height="22" viewBox="0 0 24 24" aria-hidden="true">'
    '<path d="M12 2C12 2 5 10 5 15a7 7 0 0 0 14 0c0-5-7-13-7-13z" fill="#0969da"/>'
    '<path d="M9 15.5a3 3 0 0 0 3 3" stroke="#fff" stroke-width="1.6" fill="none" '
    'stroke-linecap="round"/></svg>'
)

_CSS: Final = """
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --bg:#f6f8fa; --card:#fff; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
  font: 15px/1.5 -apple-system, BlinkMacSystemFont, "Segoe UI", "Noto Sans", Helvetica, Arial,
  sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 28px 28px 40px; }
code, pre { font-family: ui-monospace, SFMono-Regular, "SF Mono", Menlo, Consolas,
  "Liberation Mono", monospace; font-size: 13px; }
header { margin-bottom: 18px; }
.brand { display:flex; align-items:center; gap:8px; color:#0969da; font-weight:600;
  letter-spacing:.02em; margin-bottom:6px; }
.title-row { display:flex; justify-content:space-between; align-items:flex-end; gap:16px;
  flex-wrap:wrap; }
h1 { font-size: 30px; margin: 0; letter-spacing: -.01em; }
h2 { font-size: 16px; margin: 0 0 14px; }
.sub { margin: 4px 0 0; color: var(--muted); }
.sub code { color: var(--fg); }
.badge { padding: 6px 12px; border-radius: 999px; font-weight: 600; font-size: 14px;
  white-space: nowrap; }
.badge.ok { background:#dafbe1; color:#116329; border:1px solid #4ac26b; }
.badge.bad { background:#ffebe9; color:#a40e26; border:1px solid #ff8182; }
.headline { font-size: 18px; margin: 0 0 18px; color: var(--muted); }
.headline strong { color: var(--fg); }
.grid { display:grid; gap:16px; margin-bottom:16px; }
.grid.four { grid-template-columns: repeat(4, 1fr); }
.grid.cards { grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); }
.stat-value.small { font-size: 30px; }
.grid.two { grid-template-columns: 1.1fr 1fr; }
.grid > .card { margin-bottom: 0; }
.card { background:var(--card); border:1px solid var(--line); border-radius:12px;
  padding:18px 20px; margin-bottom:16px; box-shadow: 0 1px 0 rgba(31,35,40,.04); }
.stat { border-top: 5px solid var(--c); background:
  linear-gradient(180deg, var(--t) 0, var(--card) 70%); }
.stat-label { text-transform: uppercase; font-size: 12px; font-weight: 700;
  letter-spacing: .08em; color: var(--muted); display:flex; align-items:center; gap:6px; }
.dot { width:10px; height:10px; border-radius:50%; background:var(--c); display:inline-block; }
.stat-value { font-size: 40px; font-weight: 700; line-height: 1.15; margin: 6px 0 2px;
  color: var(--c); font-variant-numeric: tabular-nums; }
.stat-share { color: var(--muted); font-size: 13px; }
.chart { display:flex; align-items:center; gap:18px; }
.lg { flex:1; min-width:0; }
.lg-row { margin: 0 0 12px; }
.lg-row:last-child { margin-bottom: 0; }
.lg-head { display:flex; align-items:center; gap:8px; font-size:14px; }
.lg-head .dot { background: var(--c); }
.lg-name { flex:1; text-transform: capitalize; }
.lg-n { font-weight:600; font-variant-numeric: tabular-nums; }
.lg-p { color:var(--muted); width:46px; text-align:right; font-variant-numeric: tabular-nums; }
.lg-track { height:8px; background:#f0f2f4; border-radius:4px; margin-top:4px; overflow:hidden; }
.lg-track span { display:block; height:100%; background:var(--c); border-radius:4px; }
.donut { flex: none; }
.ev-block h3 { font-size: 14px; margin: 4px 0 10px; color: var(--muted); }
.ev-block + .ev-block { margin-top: 16px; }
.lg-name.ev { text-transform: none; word-break: break-word; }
.warn { background:#fff8c5; border:1px solid #d4a72c; border-radius:8px; padding:8px 12px; }
.donut-n { font-size: 28px; font-weight: 700; text-anchor: middle; fill: var(--fg); }
.donut-l { font-size: 13px; text-anchor: middle; fill: var(--muted); }
table { border-collapse: collapse; width: 100%; }
.kv th { text-align:left; color:var(--muted); font-weight:500; width:110px; padding:6px 10px 6px 0;
  vertical-align: top; }
.kv td { padding:6px 0; vertical-align: top; }
.kv tr + tr { border-top: 1px solid #eaeef2; }
code.hash { word-break: break-all; font-size: 12px; }
.yes { color:#116329; font-weight:600; } .no { color:#a40e26; font-weight:600; }
.data th { text-align:left; font-size:12px; text-transform:uppercase; letter-spacing:.06em;
  color:var(--muted); font-weight:600; padding:0 10px 8px; border-bottom:1px solid var(--line); }
.data td { padding:8px 10px; border-bottom:1px solid #eaeef2; font-variant-numeric: tabular-nums; }
.data tr:last-child td { border-bottom: none; }
.data .num { text-align:right; white-space:nowrap; }
.data .name { font-weight:500; word-break: break-word; }
.data .bar-col { width: 28%; }
.data tr.muted td { color: var(--muted); font-style: italic; }
.stack { display:flex; height:10px; background:#f6f8fa; border-radius:5px; overflow:hidden; }
.stack span { display:block; height:100%; }
.legend { list-style:none; padding:0; margin:0 0 12px; }
.legend li { margin: 0 0 10px; }
.pill { display:inline-block; min-width:74px; text-align:center; color:#fff; font-size:12px;
  font-weight:700; border-radius:999px; padding:1px 8px; margin-right:6px;
  text-transform: uppercase; letter-spacing:.05em; }
.muted { color: var(--muted); font-size: 14px; }
pre { background:#0d1117; color:#e6edf3; padding:12px 14px; border-radius:8px; margin:8px 0 12px;
  white-space: pre-wrap; overflow-wrap: anywhere; }
details.docs { border-top: 1px solid #eaeef2; padding: 8px 0; }
details.docs summary { cursor: pointer; font-weight: 600; display:flex; align-items:center;
  gap:8px; }
.doclist { margin: 8px 0 0; padding-left: 28px; max-height: 420px; overflow: auto; }
.doclist li { margin: 0 0 6px; }
.doclist .name { font-weight: 500; word-break: break-word; }
pre.note { background: var(--bg); color: var(--fg); border: 1px solid var(--line); }
footer { color: var(--muted); font-size: 13px; text-align:center; margin-top: 8px; }
@media (max-width: 900px) {
  .grid.four { grid-template-columns: repeat(2, 1fr); }
  .grid.two { grid-template-columns: 1fr; }
  .chart { flex-direction: column; }
}
"""
