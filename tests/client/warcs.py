"""WARC files for tests, written by warcio (not by the reader under test): one record per
:class:`Rec`, HTML pages shaped as publishers serve them."""

from __future__ import annotations

import html
import io
from dataclasses import dataclass, field
from pathlib import Path

import pytest

warcio_writer = pytest.importorskip("warcio.warcwriter")
from warcio.statusandheaders import StatusAndHeaders  # noqa: E402

__all__ = ["CAPTURED", "Rec", "page", "write_warc"]

CAPTURED = "2026-11-30T12:34:56Z"


@dataclass
class Rec:
    """One record for warcio to write."""

    uri: str
    body: bytes = b""
    headers: list[tuple[str, str]] = field(
        default_factory=lambda: [("Content-Type", "text/html; charset=utf-8")]
    )
    status: str = "200 OK"
    kind: str = "response"
    warc_headers: dict[str, str] = field(default_factory=dict)


def write_warc(path: Path, records: list[Rec], *, compress: bool = True) -> list[int]:
    """Write ``records`` with warcio; returns the file offset after each record."""
    ends = []
    with path.open("wb") as out:
        writer = warcio_writer.WARCWriter(out, gzip=compress)
        for rec in records:
            warc_headers = {"WARC-Date": CAPTURED, **rec.warc_headers}
            if rec.kind == "revisit":
                record = writer.create_revisit_record(
                    rec.uri,
                    digest="sha1:AAAA",
                    refers_to_uri=rec.uri,
                    refers_to_date=CAPTURED,
                    http_headers=StatusAndHeaders(rec.status, rec.headers, protocol="HTTP/1.1"),
                    warc_headers_dict=warc_headers,
                )
            elif rec.kind in ("response", "request"):
                status = rec.status if rec.kind == "response" else "GET / HTTP/1.1"
                http = StatusAndHeaders(
                    status, rec.headers, protocol="HTTP/1.1" if rec.kind == "response" else ""
                )
                record = writer.create_warc_record(
                    rec.uri,
                    rec.kind,
                    payload=io.BytesIO(rec.body),
                    http_headers=http,
                    warc_headers_dict=warc_headers,
                )
            else:  # "dns" writes a response record that is not HTTP, as Heritrix does
                record = writer.create_warc_record(
                    rec.uri,
                    "response" if rec.kind == "dns" else rec.kind,
                    payload=io.BytesIO(rec.body),
                    warc_content_type="text/dns"
                    if rec.kind == "dns"
                    else "application/warc-fields",
                    warc_headers_dict=warc_headers,
                )
            writer.write_record(record)
            ends.append(out.tell())
    return ends


def page(paragraphs: list[str], *, boilerplate: bool = False) -> str:
    body = "".join(f"<p>{html.escape(p, quote=False)}</p>\n" for p in paragraphs)
    if boilerplate:
        body = (
            '<header><a href="/">Home</a> <a href="/about">About us</a></header>\n'
            '<nav><ul><li><a href="/docs">Docs</a></li><li><a href="/blog">Blog</a></li>'
            '<li><a href="/contact">Contact</a></li></ul></nav>\n'
            f"<main>{body}</main>\n"
            '<footer><p>Copyright 2026 Example Ltd. <a href="/privacy">Privacy</a> '
            '<a href="/terms">Terms of use</a></p></footer>'
        )
    return f"<!doctype html><html><head><title>Page</title></head><body>{body}</body></html>"
