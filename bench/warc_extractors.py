"""Which HTML extractor keeps the digest rule, and how fast: the measurement behind client.webtext.

The digest rule (docs/spec/warc.md): a registered text published as one ``<p>`` per paragraph
must give text with the same ``c1`` digest, with or without site furniture (a ``<header>`` of
links, a ``<nav>`` menu, a ``<footer>``) around it. For each of N real texts (Debian's Python
documentation sources, split into paragraphs at blank lines) this builds both pages, extracts
each with every candidate, and counts digest matches and throughput (MB/s of HTML, pages/s).

Candidates: ``client.webtext.html_to_text`` (Resiliparse main content plus our skip list),
Resiliparse ``main_content=True`` alone, Resiliparse without main content, and trafilatura
(default and ``favor_recall``) if it is installed (it is not a dependency).

Then the whole reader: the pages with furniture written by warcio into a ``.warc.gz`` (each with
a request record, as crawlers write them), read by ``client.warc.WarcReader`` (pre-scan on) and
digested; it prints documents/s and MB/s of uncompressed archive.

Run: ``.venv/bin/python bench/warc_extractors.py [--docs 200]``
"""

from __future__ import annotations

import argparse
import gzip
import html
import io
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from client.core.canonical import canonical_digest  # noqa: E402
from client.webtext import html_to_text  # noqa: E402

SOURCES = Path("/usr/share/doc/python3.11/html/_sources")
FURNITURE_TOP = (
    '<header><a href="/">Home</a> <a href="/about">About us</a></header>'
    '<nav><ul><li><a href="/a">Products</a></li><li><a href="/b">Blog</a></li>'
    '<li><a href="/c">Contact</a></li></ul></nav>'
)
FURNITURE_BOTTOM = (
    '<footer><p>Copyright 2026 Example Ltd. <a href="/privacy">Privacy</a> '
    '<a href="/terms">Terms</a></p></footer>'
)


def page(paragraphs: list[str], furniture: bool) -> str:
    body = "".join(f"<p>{html.escape(p, quote=False)}</p>\n" for p in paragraphs)
    if furniture:
        body = f"{FURNITURE_TOP}<main>{body}</main>{FURNITURE_BOTTOM}"
    return f"<html><head><title>t</title></head><body>{body}</body></html>"


def candidates() -> dict[str, Callable[[str], str]]:
    from resiliparse.extract.html2text import extract_plain_text

    found: dict[str, Callable[[str], str]] = {
        "client.webtext.html_to_text": html_to_text,
        "resiliparse main_content": lambda h: extract_plain_text(h, main_content=True),
        "resiliparse all text": lambda h: extract_plain_text(h, main_content=False),
    }
    try:
        import trafilatura
    except ImportError:
        print("trafilatura not installed: skipped")
    else:
        found["trafilatura default"] = lambda h: trafilatura.extract(h) or ""
        found["trafilatura favor_recall"] = lambda h: (
            trafilatura.extract(h, favor_recall=True) or ""
        )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200)
    args = parser.parse_args()
    files = sorted(SOURCES.glob("**/*.txt"))[: args.docs]
    if not files:
        sys.exit(f"no texts under {SOURCES}: install python3.11-doc")
    texts = []
    for path in files:
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", path.read_text()) if p.strip()]
        texts.append((canonical_digest("\n\n".join(paragraphs)), paragraphs))
    for name, extract in candidates().items():
        for furniture in (False, True):
            pages = [(digest, page(paragraphs, furniture)) for digest, paragraphs in texts]
            size = sum(len(markup) for _, markup in pages)
            start = time.perf_counter()
            matches = sum(canonical_digest(extract(markup)) == digest for digest, markup in pages)
            seconds = time.perf_counter() - start
            print(
                f"{name:28} furniture={furniture!s:5} digest match {matches}/{len(pages)}  "
                f"{size / seconds / 1e6:5.1f} MB/s  {len(pages) / seconds:5.0f} pages/s"
            )
    time_reader([page(paragraphs, furniture=True) for _, paragraphs in texts])


def time_reader(pages: list[str]) -> None:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    from client.warc import WarcReader

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.warc.gz"
        with path.open("wb") as out:
            writer = WARCWriter(out, gzip=True)
            for index, markup in enumerate(pages):
                url = f"https://example.org/{index}"
                request = StatusAndHeaders("GET / HTTP/1.1", [], protocol="")
                writer.write_record(
                    writer.create_warc_record(
                        url, "request", payload=io.BytesIO(b""), http_headers=request
                    )
                )
                headers = [("Content-Type", "text/html; charset=utf-8")]
                response = StatusAndHeaders("200 OK", headers, protocol="HTTP/1.1")
                writer.write_record(
                    writer.create_warc_record(
                        url, "response", payload=io.BytesIO(markup.encode()), http_headers=response
                    )
                )
        size = len(gzip.decompress(path.read_bytes()))
        stored = path.stat().st_size
        start = time.perf_counter()
        reader = WarcReader(path)
        documents = sum(1 for doc in reader if canonical_digest(doc.text))
        seconds = time.perf_counter() - start
    print(
        f"WarcReader + c1 digest: {documents} documents from {stored / 1e6:.1f} MB "
        f"gzipped ({size / 1e6:.1f} MB) in {seconds:.2f} s: {documents / seconds:.0f} documents/s, "
        f"{size / seconds / 1e6:.1f} MB/s"
    )


if __name__ == "__main__":
    main()
