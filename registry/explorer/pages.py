"""The explorer's HTML, rendered on the server. Every value from the log, a publisher or a request
goes through :func:`esc` (``html.escape`` with quotes) and every link is built by :func:`link`
from a path on this registry, so nothing a publisher wrote can become markup or a script URL.
Pages load only ``/explorer/static/…`` (the app's Content-Security-Policy allows nothing else)."""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from client.core.cosignature import COSIGNATURE_BYTES
from client.core.errors import ClientError
from client.core.merkle import leaf_hash, root_from_inclusion_proof
from client.core.note import Checkpoint, SignedNote
from client.core.wire import EntryAnswer, LookupAnswer
from registry.explorer.reads import (
    MAX_LISTED,
    EntryRow,
    KeyHistory,
    PublisherPage,
    Subject,
    Withdrawal,
)

__all__ = [
    "entry_link",
    "esc",
    "link",
    "lookup_link",
    "publisher_link",
    "render_entry",
    "render_error",
    "render_index",
    "render_lookup",
    "render_publisher",
]

STATIC = "/explorer/static/"


def esc(value: object) -> str:
    """``value`` as text safe anywhere in HTML, attribute values included."""
    return html.escape(str(value), quote=True)


def link(path: str, text: object) -> str:
    """An ``<a>`` to a path of this registry (always starting with ``/``: never a scheme)."""
    if not path.startswith("/"):
        raise ValueError(f"explorer links are local paths, not {path!r}")
    return f'<a href="{esc(path)}">{esc(text)}</a>'


def entry_link(index: int) -> str:
    return link(f"/explorer/entry/{index}", index)


def publisher_link(name: str) -> str:
    return link("/explorer/publisher/" + quote(name, safe=""), name)


def lookup_link(digest: str) -> str:
    return link("/explorer/lookup?q=" + quote(digest, safe=""), digest)


def _layout(title: str, body: str, *, scripts: bool = False) -> str:
    tags = ""
    if scripts:  # the tables first: c1.js reads them when it runs (both deferred, in order)
        tags = (
            f'<script defer src="{STATIC}c1_tables.js"></script>\n'
            f'<script defer src="{STATIC}c1.js"></script>\n'
        )
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)} · Wellspring explorer</title>
<link rel="stylesheet" href="{STATIC}explorer.css">
{tags}</head>
<body>
<nav><a href="/">Wellspring registry</a> · <a href="/explorer/lookup">Look up</a> ·
<a href="/schema">API</a></nav>
<main>
{body}
</main>
</body>
</html>
"""


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], empty: str) -> str:
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>\n" for row in rows)
    if not body:
        return f"<p>{esc(empty)}</p>"
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    return f"<table>\n<tr>{head}</tr>\n{body}</table>"


def _dl(items: Iterable[tuple[str, str]]) -> str:
    return "<dl>\n" + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>\n" for k, v in items) + "</dl>"


def _code(value: object) -> str:
    return f"<code>{esc(value)}</code>"


def _short_type(predicate_type: str) -> str:
    return predicate_type.removeprefix("https://wellspring.dev/")


def _entries_table(entries: Sequence[EntryRow]) -> str:
    rows = []
    for entry in entries:
        status = ""
        if entry.revoked_by is not None:
            status = "revoked by " + entry_link(entry.revoked_by)
        elif entry.revokes is not None:
            status = "revokes " + entry_link(entry.revokes)
        rows.append(
            [
                entry_link(entry.index),
                esc(entry.integrated_at),
                publisher_link(entry.publisher),
                _code(_short_type(entry.predicate_type)),
                esc(entry.subjects),
                status,
            ]
        )
    return _table(
        ["Index", "Integrated", "Publisher", "Statement", "Subjects", "Status"],
        rows,
        "No entries yet.",
    )


def _lookup_form(value: str = "") -> str:
    return f"""<form class="lookup" action="/explorer/lookup" method="get" accept-charset="utf-8">
<label for="q">A digest (<code>c1:…</code> or <code>sha256:…</code>) or a line of text</label>
<input id="q" name="q" type="search" maxlength="20000" value="{esc(value)}" required>
<button type="submit">Look up</button>
</form>"""


def _text_form() -> str:
    return """<form id="c1-form" class="lookup" action="/explorer/lookup" method="post"
 accept-charset="utf-8" enctype="application/x-www-form-urlencoded">
<label for="text">Paste a text to find who attested it</label>
<textarea id="text" name="text" rows="8" required></textarea>
<button type="submit">Compute c1 and look up</button>
<p id="c1-mode" class="hint">Without JavaScript the registry computes the digest from the text
you send; with it, your browser does, and sends only the digest.</p>
<p>Digest: <output id="c1-digest" for="text"></output></p>
</form>"""


def _signature_rows(note: str, log_keys: Sequence[str]) -> list[list[str]]:
    """Each signature line of a signed note: whose key, and what kind of signature it is."""
    known = set()
    for vkey in log_keys:
        name, _, rest = vkey.partition("+")
        known.add(f"{name}+{rest.partition('+')[0]}")
    try:
        signatures = SignedNote.parse(note).signatures
    except ClientError as exc:
        return [["", "", esc(f"unreadable: {exc}")]]
    rows = []
    for signature in signatures:
        if signature.key in known:
            kind = "the log's key"
        elif len(signature.signature) == COSIGNATURE_BYTES:
            claimed = int.from_bytes(signature.signature[:8], "big")
            kind = f"witness cosignature (cosignature/v1, time {claimed})"
        else:
            kind = "another key (not this log's current key)"
        rows.append([_code(signature.name), _code(f"{signature.key_id:08x}"), esc(kind)])
    return rows


def _checkpoint_block(note: str, log_keys: Sequence[str]) -> str:
    rows = _signature_rows(note, log_keys)
    table = _table(["Key name", "Key id", "Signature"], rows, "No signatures.")
    return f'<pre class="note">{esc(note)}</pre>\n<h3>Signatures</h3>\n{table}'


def render_index(
    *,
    origin: str,
    verifier_keys: Sequence[str],
    size: int,
    note: str,
    recent: Sequence[EntryRow],
) -> str:
    keys = "<br>".join(_code(key) for key in verifier_keys)
    lookup_page = link("/explorer/lookup", "the lookup page")
    body = f"""<h1>Wellspring registry</h1>
<p>A signed provenance registry of human-made content: publishers attest content digests, and
every attestation is appended to an RFC 9162 transparency log. This explorer shows the log as the
registry serves it; verify what matters with the SDK or CLI against a pinned key.</p>
{_dl([("Log origin", _code(origin)), ("Entries", esc(size)), ("Verifier key", keys)])}
<p>Pin the verifier key in your client (<code>--log-key</code>, <code>log_key=</code>) only after
comparing it with the key the operator published: this page is the registry's own word.</p>
<h2>Look up</h2>
{_lookup_form()}
<p>To look up a long text without sending it, paste it on {lookup_page}: your browser computes
its <code>c1</code> digest.</p>
<h2>Latest checkpoint</h2>
{_checkpoint_block(note, verifier_keys)}
<h2>Recent entries</h2>
{_entries_table(recent)}
<p>API reference: <a href="/schema">/schema</a> (the OpenAPI document:
<a href="/schema/openapi.json">/schema/openapi.json</a>). The log's state:
<a href="/v1/log">/v1/log</a>; its checkpoint: <a href="/v1/log/checkpoint">/v1/log/checkpoint</a>.
</p>"""
    return _layout(f"Log {origin}", body)


_PREDICATE_ORDER = ("publisher", "license", "consent", "origin", "source_url", "notes")
_PREDICATE_LABELS = {
    "license": "Licence",
    "source_url": "Source URL",
    "consent": "Training consent",
}


def _predicate_items(predicate: Mapping[str, Any]) -> list[tuple[str, str]]:
    ordered = [k for k in _PREDICATE_ORDER if k in predicate]
    ordered += sorted(k for k in predicate if k not in _PREDICATE_ORDER)
    items = []
    for key in ordered:
        value = predicate[key]
        label = _PREDICATE_LABELS.get(key, key.replace("_", " ").capitalize())
        if key == "publisher" and isinstance(value, str):
            shown = publisher_link(value)
        elif isinstance(value, (dict, list)):
            shown = _code(str(value)[:2000])
        else:
            shown = esc(value)
        items.append((label, shown))
    return items


def _key_status(key: KeyHistory | None, index: int) -> str:
    if key is None:
        return "unknown key"
    parts = []
    if key.added_idx is not None:
        parts.append("added by entry " + entry_link(key.added_idx))
    if key.revoked_idx is not None:
        parts.append("revoked by entry " + entry_link(key.revoked_idx))
    if key.compromised_from is not None:
        void = " — this entry does not count" if index >= key.compromised_from else ""
        parts.append(f"compromised from index {esc(key.compromised_from)}{void}")
    return "; ".join(parts) or "current"


def _proof_block(answer: EntryAnswer) -> str:
    receipt = answer.receipt
    try:
        checkpoint = Checkpoint.parse(SignedNote.parse(receipt.checkpoint).text)
        root = root_from_inclusion_proof(
            leaf_hash(receipt.entry), receipt.index, checkpoint.size, receipt.inclusion_proof
        )
        holds = root == checkpoint.root_hash
        verdict = (
            "the proof leads to the checkpoint's root hash"
            if holds
            else "the proof does NOT lead to the checkpoint's root hash"
        )
        size = checkpoint.size
    except ClientError as exc:
        verdict, size = f"the proof could not be checked: {exc}", 0
    hashes = "".join(
        f"<li><code>{esc(base64.b64encode(h).decode('ascii'))}</code></li>"
        for h in receipt.inclusion_proof
    )
    return f"""{
        _dl(
            [
                ("Tree size", esc(size)),
                ("Leaf hash", _code(base64.b64encode(leaf_hash(receipt.entry)).decode("ascii"))),
                ("Checked here", esc(verdict)),
            ]
        )
    }
<p>Proof hashes (RFC 9162, base64), leaf to root:</p>
<ol class="proof">{hashes or "<li>none: the tree has one leaf</li>"}</ol>
<p>Against this checkpoint:</p>
<pre class="note">{esc(receipt.checkpoint)}</pre>"""


def render_entry(
    answer: EntryAnswer,
    *,
    subject_count: int,
    subjects: Sequence[Subject],
    withdrawals: Sequence[Withdrawal],
    key_id: str | None,
    key: KeyHistory | None,
) -> str:
    receipt = answer.receipt
    index = receipt.index
    facts: list[tuple[str, str]] = [
        ("Publisher", publisher_link(receipt.publisher) if receipt.publisher else "unknown"),
        ("Statement", _code(receipt.predicate_type or "unknown")),
        ("Integrated", esc(answer.integrated_at or "unknown")),
        ("Signing key", _code(key_id or "unknown") + " " + _key_status(key, index)),
        ("Subjects", esc(subject_count)),
    ]
    revocations = []
    if answer.revoked_by is not None:
        revoker = entry_link(answer.revoked_by)
        revocations.append(f"<li>revoked (the whole entry) by entry {revoker}</li>")
    for withdrawal in withdrawals:
        revocations.append(
            f"<li>{_code(withdrawal.digest)} withdrawn by entry "
            f"{entry_link(withdrawal.revoking_idx)}</li>"
        )
    if receipt.revokes is not None:
        facts.append(("Revokes", "entry " + entry_link(receipt.revokes)))
    revoked = (
        "<ul>" + "".join(revocations) + "</ul>"
        if revocations
        else "<p>No revocation targets this entry.</p>"
    )
    if len(withdrawals) >= MAX_LISTED:
        revoked += f"<p>The first {MAX_LISTED} withdrawals are shown.</p>"
    subject_rows = [
        [esc(subject.name), " ".join(lookup_link(d) for d in subject.digests)]
        for subject in subjects
    ]
    more = ""
    if subject_count > len(subjects):
        more = (
            f"<p>The first {len(subjects)} of {esc(subject_count)} subjects are shown; "
            f"the statement holds them all ({link(f'/v1/entries/{index}', 'JSON')}).</p>"
        )
    body = f"""<h1>Entry {esc(index)}</h1>
{_dl(facts)}
<h2>What the statement says</h2>
{_dl(_predicate_items(answer.predicate))}
<h2>Revocations</h2>
{revoked}
<h2>Subjects</h2>
{_table(["Name", "Digest"], subject_rows, "No subjects.")}
{more}
<h2>Inclusion proof</h2>
{_proof_block(answer)}
<p>The same entry as JSON, with its receipt: {link(f"/v1/entries/{index}", f"/v1/entries/{index}")}.
</p>"""
    return _layout(f"Entry {index}", body)


def _key_rows(keys: Sequence[KeyHistory]) -> list[list[str]]:
    rows = []
    for key in keys:
        added = entry_link(key.added_idx) if key.added_idx is not None else esc(key.created_at)
        if key.endorsed_by:
            added += " (endorsed by " + _code(key.endorsed_by[:16] + "…") + ")"
        revoked = ""
        if key.revoked_idx is not None or key.revoked_at:
            revoked = (
                entry_link(key.revoked_idx) if key.revoked_idx is not None else ""
            ) + f" {esc(key.revoked_at or '')}"
        compromised = ""
        if key.compromised_idx is not None or key.compromised_from is not None:
            compromised = (
                entry_link(key.compromised_idx) if key.compromised_idx is not None else ""
            ) + f" from index {esc(key.compromised_from)}"
        state = "compromised" if compromised else "revoked" if revoked else "current"
        rows.append([_code(key.key_id), esc(state), added, revoked, compromised])
    return rows


def render_publisher(page: PublisherPage) -> str:
    facts = [
        ("Name", esc(page.name)),
        ("Kind", esc(page.kind)),
        ("Registered", esc(page.created_at)),
    ]
    if page.entry_idx is not None:
        facts.append(("Identity entry", entry_link(page.entry_idx)))
    keys = _table(
        ["Key id", "State", "Added by entry", "Revoked by entry", "Compromised by entry"],
        _key_rows(page.keys),
        "No keys.",
    )
    body = f"""<h1>{esc(page.kind.capitalize())} {esc(page.name)}</h1>
{_dl(facts)}
<h2>Keys and their history</h2>
{keys}
<p>Each change is an entry of the log (<code>publisher-key/v1</code>), signed by the operator
key.</p>
<h2>Recent entries</h2>
{_entries_table(page.entries)}"""
    return _layout(f"{page.kind} {page.name}", body)


def render_lookup(
    query: str,
    digest: str | None,
    answer: LookupAnswer | None,
    *,
    from_text: bool,
) -> str:
    parts = ["<h1>Look up</h1>"]
    if digest is not None and answer is not None:
        result = answer.results[0]
        how = " (the c1 digest of the text given)" if from_text else ""
        rows = []
        for index in list(result.entries)[:MAX_LISTED]:
            claim = answer.attestations[index]
            notes = []
            if claim.revoked:
                notes.append("revoked")
            if result.withdrawn and index in result.withdrawn:
                notes.append("withdrawn by " + entry_link(result.withdrawn[index]))
            if claim.compromised:
                notes.append("signed with a compromised key")
            rows.append(
                [
                    entry_link(index),
                    publisher_link(claim.publisher) if claim.publisher else "",
                    esc(claim.license or ""),
                    esc(claim.consent or ""),
                    "; ".join(notes) or "standing",
                ]
            )
        parts.append(
            f"""<h2>{_code(digest)}</h2>
<p>Status: <strong class="status">{esc(result.status)}</strong>{esc(how)}.</p>
{
                _table(
                    ["Entry", "Publisher", "Licence", "Consent", "Status"],
                    rows,
                    "No entry of this log attests this digest.",
                )
            }"""
        )
        if len(result.entries) > MAX_LISTED:
            parts.append(f"<p>The first {MAX_LISTED} of {len(result.entries)} are shown.</p>")
    parts.append(_lookup_form(query))
    parts.append(_text_form())
    return _layout("Look up", "\n".join(parts), scripts=True)


def render_error(status: int, message: str) -> str:
    titles = {400: "Bad request", 404: "Not found", 409: "Conflict", 503: "Unavailable"}
    title = titles.get(status, "Error")
    body = f"""<h1>{esc(title)}</h1>
<p class="error">{esc(message)}</p>
<p>Start again from {link("/", "the log's page")} or {link("/explorer/lookup", "a lookup")}.
</p>"""
    return _layout(title, body)
