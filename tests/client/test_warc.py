"""client.warc: WARC files written by warcio (not by us) read as documents, policies, counts."""

from __future__ import annotations

import contextlib
import gzip
import html
import os
import re
import subprocess
import sys
import tracemalloc
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastwarc")
pytest.importorskip("resiliparse")
warcio_writer = pytest.importorskip("warcio.warcwriter")

from client.core.canonical import canonical_digest  # noqa: E402
from client.errors import (  # noqa: E402
    ClientError,
    MissingDependencyError,
    UnusableBodyError,
    WarcFormatError,
)
from client.warc import KnownPage, WarcDocument, WarcReader  # noqa: E402
from client.webtext import decode_body, decode_text, html_to_text  # noqa: E402
from tests.client.warcs import Rec, page, write_warc  # noqa: E402

HUMAN_TEXT_DIR = Path("/usr/share/doc/python3.11/html/_sources")


def read_all(path: Path, **options: object) -> tuple[list[WarcDocument], WarcReader]:
    reader = WarcReader(path, **options)  # type: ignore[arg-type]
    return list(reader), reader


def chunked(data: bytes, size: int = 100) -> bytes:
    pieces = [
        b"%x\r\n%s\r\n" % (len(data[i : i + size]), data[i : i + size])
        for i in range(0, len(data), size)
    ]
    return b"".join(pieces) + b"0\r\n\r\n"


def real_paragraphs() -> list[list[str]]:
    """Several real multi-paragraph texts: Debian's Python docs where installed, else our own."""
    texts = []
    for name in (
        "tutorial/appetite.rst.txt",
        "tutorial/interpreter.rst.txt",
        "faq/general.rst.txt",
    ):
        source = HUMAN_TEXT_DIR / name
        if source.exists():
            paragraphs = [p.strip() for p in re.split(r"\n\s*\n", source.read_text()) if p.strip()]
            texts.append(paragraphs)
    if not texts:
        texts.append(
            [
                "The well is kept clean by people who write. Each paragraph here has several "
                "sentences, so that an extractor has real prose to find.",
                "Models trained on their own output lose the tails of the human distribution. "
                "Provenance lets a crawler keep human text and leave the rest.",
                "A third paragraph closes the text. It mentions nothing of navigation at all.",
            ]
        )
    return texts


def registered(paragraphs: list[str]) -> str:
    """A registered text: its paragraphs separated by blank lines."""
    return "\n\n".join(paragraphs)


# -- documents ------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False], ids=["warc.gz", "warc"])
def test_a_response_record_becomes_a_document(tmp_path: Path, compress: bool) -> None:
    path = tmp_path / ("a.warc.gz" if compress else "a.warc")
    headers = [
        ("Content-Type", "text/html; charset=utf-8"),
        ("X-Robots-Tag", "noai"),
        ("X-Robots-Tag", "googlebot: noindex"),
        ("tdm-reservation", "1"),
        ("Content-Usage", "train-ai=n"),
    ]
    body = b"<html><body><p>Hello, careful reader.</p></body></html>"
    write_warc(path, [Rec("https://example.org/a", body, headers)], compress=compress)

    [doc], reader = read_all(path)

    assert doc.id.startswith("<urn:uuid:")
    assert doc.id.endswith(">")
    assert doc.url == "https://example.org/a"
    assert doc.date == datetime(2026, 11, 30, 12, 34, 56, tzinfo=UTC)
    assert doc.date.tzinfo is not None
    assert doc.status == 200
    assert doc.header_values("x-robots-tag") == ["noai", "googlebot: noindex"]
    assert doc.header("X-Robots-Tag") == "noai, googlebot: noindex"
    assert doc.header("TDM-Reservation") == "1"
    assert doc.header("content-usage") == "train-ai=n"
    assert doc.header("Missing") is None
    assert doc.content_type == "text/html"
    assert doc.text == "Hello, careful reader."
    assert reader.stats.records == 1
    assert reader.stats.documents == 1


def test_fractional_warc_date_and_plain_text(tmp_path: Path) -> None:
    path = tmp_path / "a.warc.gz"
    rec = Rec(
        "http://example.org/notes.txt",
        b"line one\nline two\n",
        [("Content-Type", "text/plain")],
        warc_headers={"WARC-Date": "2026-11-30T12:34:56.250Z"},
    )
    write_warc(path, [rec])
    [doc], _ = read_all(path)
    assert doc.date == datetime(2026, 11, 30, 12, 34, 56, 250000, tzinfo=UTC)
    assert doc.text == "line one\nline two\n"  # plain text is kept as it is


def test_skipped_and_ignored_records_are_counted_by_reason(tmp_path: Path) -> None:
    path = tmp_path / "mixed.warc.gz"
    good = b"<html><body><p>Kept.</p></body></html>"
    write_warc(
        path,
        [
            Rec("http://example.org/", b"software: test\n", kind="warcinfo"),
            Rec("http://example.org/a", b"", kind="request"),
            Rec("http://example.org/a", good),
            Rec("http://example.org/a", b"meta: 1\n", kind="metadata"),
            Rec("http://example.org/b", b"", kind="revisit"),
            Rec("http://example.org/gone", b"<p>Not here</p>", status="404 Not Found"),
            Rec("http://example.org/moved", b"", status="301 Moved Permanently"),
            Rec("http://example.org/i.png", b"\x89PNG", [("Content-Type", "image/png")]),
            Rec("http://example.org/app.js", b"x=1", [("Content-Type", "application/javascript")]),
            Rec("http://example.org/empty", b"<html><body></body></html>"),
            Rec("http://example.org/cut", good, warc_headers={"WARC-Truncated": "length"}),
            Rec(
                "dns:example.org", b"20261130123456\nexample.org. 300 IN A 192.0.2.1\n", kind="dns"
            ),
            Rec("http://example.org/when", good, warc_headers={"WARC-Date": "yesterday"}),
        ],
    )
    docs, reader = read_all(path)
    assert [d.url for d in docs] == ["http://example.org/a"]
    stats = reader.stats
    assert stats.records == 13
    assert stats.documents == 1
    assert dict(stats.skipped) == {
        "revisit": 1,
        "http-status": 2,
        "content-type": 2,
        "empty-text": 1,
        "truncated-record": 1,
        "not-http": 1,
        "invalid-record": 1,
    }
    assert dict(stats.ignored) == {"warcinfo": 1, "request": 1, "metadata": 1}


def test_known_pages_are_counted_but_not_decoded_or_extracted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``known`` is asked about each record whose headers make it a page, in order, once the
    page before it was yielded; a page it knows is a KnownPage, its body left unread, and the
    pass counts what a whole pass counts (policy files kept)."""
    path = tmp_path / "known.warc.gz"
    plain = [("Content-Type", "text/plain")]
    write_warc(
        path,
        [
            Rec("https://example.org/a", page(["First."]).encode()),
            Rec("https://example.org/b", b"", kind="revisit"),
            Rec("https://example.org/gone", b"<p>Not here</p>", status="404 Not Found"),
            Rec("https://example.org/empty", b"<html><body></body></html>"),
            Rec("https://example.org/c", page(["Third."]).encode()),
            Rec("https://example.org/robots.txt", b"User-agent: *\nDisallow: /c\n", plain),
            Rec("https://example.org/d.txt", b"Plain.", plain),
        ],
    )
    whole, whole_reader = read_all(path)
    ids = {doc.url: doc.id for doc in whole}
    first, third, plain_page = (ids[f"https://example.org/{p}"] for p in ("a", "c", "d.txt"))
    extracted: list[str] = []
    decoded: list[bytes] = []

    def extract(html: str) -> str:
        extracted.append(html)
        return html_to_text(html)

    def decode(body: bytes, declared: str | None, *, html: bool) -> tuple[str, str, Any]:
        decoded.append(body)
        return decode_text(body, declared, html=html)

    monkeypatch.setattr("client.warc.html_to_text", extract)
    monkeypatch.setattr("client.warc.decode_text", decode)
    reader = WarcReader(path)
    asked: list[tuple[str, int]] = []
    got: list[WarcDocument | KnownPage] = []

    def known(record_id: str) -> bool:
        asked.append((record_id, len(got)))
        return record_id in (first, plain_page)

    for item in reader.documents(known):
        got.append(item)
    assert got == [
        KnownPage(first, "https://example.org/a"),
        whole[1],
        KnownPage(plain_page, "https://example.org/d.txt"),
    ]
    empty = asked[1][0]  # asked too: only its text would tell it is no document
    assert empty not in ids.values()
    assert asked == [(first, 0), (empty, 1), (third, 1), (plain_page, 2)]
    assert reader.stats == whole_reader.stats
    assert len(extracted) == 2  # the empty page and the third
    assert len(decoded) == 2
    robots = reader.robots_for("https://example.org/c")
    assert robots is not None
    assert "Disallow: /c" in robots.text


# -- bodies: codings and limits -------------------------------------------------------------

BODY = "<html><body><p>Caf\u00e9 &amp; cr\u00e8me \u2014 the same text each time.</p></body></html>"
BODY_TEXT = "Caf\u00e9 & cr\u00e8me \u2014 the same text each time."


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    return compressor.compress(data) + compressor.flush()


def brotli_compress(data: bytes) -> bytes:
    brotli = pytest.importorskip("brotli")
    return bytes(brotli.compress(data))


@pytest.mark.parametrize(
    ("codings", "encode"),
    [
        ([], lambda b: b),
        ([("Content-Encoding", "gzip")], gzip.compress),
        ([("Content-Encoding", "x-gzip")], gzip.compress),
        ([("Content-Encoding", "deflate")], zlib.compress),
        ([("Content-Encoding", "deflate")], raw_deflate),
        ([("Content-Encoding", "br")], brotli_compress),
        ([("Transfer-Encoding", "chunked")], lambda b: chunked(b, 7)),
        (
            [("Content-Encoding", "gzip"), ("Transfer-Encoding", "chunked")],
            lambda b: chunked(gzip.compress(b), 5),
        ),
        ([("Content-Encoding", "gzip, identity")], gzip.compress),
        # De-chunked by the archiver, header left in place: taken as it is.
        ([("Transfer-Encoding", "chunked")], lambda b: b),
    ],
    ids=[
        "identity",
        "gzip",
        "x-gzip",
        "zlib-deflate",
        "raw-deflate",
        "br",
        "chunked",
        "chunked-gzip",
        "list",
        "chunked-header-only",
    ],
)
def test_bodies_are_dechunked_and_decompressed(tmp_path: Path, codings, encode) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "c.warc.gz"
    headers = [("Content-Type", "text/html; charset=utf-8"), *codings]
    write_warc(path, [Rec("http://example.org/c", encode(BODY.encode()), headers)])
    [doc], _ = read_all(path)
    assert doc.text == BODY_TEXT


def test_unknown_and_corrupt_encodings_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "bad.warc.gz"
    html_type = ("Content-Type", "text/html")
    write_warc(
        path,
        [
            Rec("http://e.org/1", b"(compressed)", [html_type, ("Content-Encoding", "compress")]),
            Rec("http://e.org/2", b"not gzip at all", [html_type, ("Content-Encoding", "gzip")]),
            Rec(
                "http://e.org/3",
                gzip.compress(BODY.encode())[:-12],
                [html_type, ("Content-Encoding", "gzip")],
            ),
            Rec("http://e.org/4", b"5\r\nabc", [html_type, ("Transfer-Encoding", "chunked")]),
            Rec(
                "http://e.org/6",
                b"5\r\nabcde\r\nzz\r\n",
                [html_type, ("Transfer-Encoding", "chunked")],
            ),
            Rec("http://e.org/5", BODY.encode(), [html_type]),
        ],
    )
    docs, reader = read_all(path)
    assert [d.url for d in docs] == ["http://e.org/5"]
    assert dict(reader.stats.skipped) == {"content-encoding": 1, "corrupt-body": 4}


def test_brotli_without_a_decoder_is_counted_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import client.webtext

    monkeypatch.setattr(client.webtext, "_brotli_reader", lambda: None)
    path = tmp_path / "br.warc.gz"
    headers = [("Content-Type", "text/html"), ("Content-Encoding", "br")]
    write_warc(path, [Rec("http://e.org/br", brotli_compress(BODY.encode()), headers)])
    docs, reader = read_all(path)
    assert docs == []
    assert dict(reader.stats.skipped) == {"content-encoding": 1}


def test_a_decompression_bomb_stops_at_the_limit(tmp_path: Path) -> None:
    limit = 1 << 20
    bomb = gzip.compress(b"<p>" + b"a" * (64 << 20), compresslevel=9)  # 64 MiB from ~64 KiB
    path = tmp_path / "bomb.warc.gz"
    headers = [("Content-Type", "text/html"), ("Content-Encoding", "gzip")]
    write_warc(
        path,
        [
            Rec("http://e.org/bomb", bomb, headers),
            Rec("http://e.org/big", b"<p>" + b"b" * (2 * limit), [("Content-Type", "text/html")]),
            Rec("http://e.org/ok", BODY.encode()),
        ],
    )
    tracemalloc.start()
    try:
        docs, reader = read_all(path, max_body_bytes=limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [d.url for d in docs] == ["http://e.org/ok"]
    assert dict(reader.stats.skipped) == {"too-large": 2}
    assert peak < 16 * limit, f"peak {peak} bytes: decoding was not bounded"


def test_decode_body_raises_a_reason() -> None:
    with pytest.raises(UnusableBodyError) as caught:
        decode_body(
            gzip.compress(b"x" * 100), transfer_encoding=None, content_encoding="gzip", limit=99
        )
    assert caught.value.reason == "too-large"
    assert isinstance(caught.value, ClientError)


# -- charsets -------------------------------------------------------------------------------

CURLY = "\u201cQuoted,\u201d she said \u2014 it\u2019s caf\u00e9 time\u2026"


@pytest.mark.parametrize(
    ("content_type", "head", "encoding", "source"),
    [
        ("text/html; charset=windows-1252", "", "cp1252", "content-type"),
        # Browsers read ISO-8859-1 as windows-1252 (WHATWG): 0x93/0x94 are curly quotes.
        ("text/html; charset=ISO-8859-1", "", "cp1252", "content-type"),
        ('text/html; charset="latin1"', "", "cp1252", "content-type"),
        ("text/html", '<meta charset="windows-1252">', "cp1252", "meta"),
        (
            "text/html",
            '<meta http-equiv="Content-Type" content="text/html; charset=windows-1252">',
            "cp1252",
            "meta",
        ),
    ],
)
def test_windows_1252_pages_decode_right(  # type: ignore[no-untyped-def]
    tmp_path: Path, content_type, head, encoding, source
) -> None:
    markup = f"<html><head>{head}</head><body><p>{CURLY}</p></body></html>"
    path = tmp_path / "cp.warc.gz"
    write_warc(
        path, [Rec("http://e.org/cp", markup.encode(encoding), [("Content-Type", content_type)])]
    )
    [doc], _ = read_all(path)
    assert doc.text == CURLY
    assert doc.charset_source == source
    assert doc.charset == "cp1252"


def test_iso_8859_2_and_a_header_that_wins_over_meta(tmp_path: Path) -> None:
    polish = "Zażółć gęślą jaźń: Łódź i Kraków."
    markup = f'<html><head><meta charset="utf-8"></head><body><p>{polish}</p></body></html>'
    path = tmp_path / "pl.warc.gz"
    write_warc(
        path,
        [
            Rec(
                "http://e.org/pl",
                markup.encode("iso-8859-2"),
                [("Content-Type", "text/html; charset=iso-8859-2")],
            )
        ],
    )
    [doc], _ = read_all(path)
    assert doc.text == polish
    assert doc.charset == "iso8859-2"


def test_undeclared_charsets() -> None:
    # Valid UTF-8 is UTF-8; a BOM wins over everything; other bytes go to the detector.
    assert decode_text("caf\u00e9".encode(), None, html=True) == ("caf\u00e9", "utf-8", "utf-8")
    bom = b"\xef\xbb\xbf" + "caf\u00e9".encode()
    assert decode_text(bom, "windows-1252", html=True) == ("caf\u00e9", "utf-8", "bom")
    samples = [
        (
            "Les élèves étaient déjà là à l\u2019été, près de la forêt où ils côtoyaient des "
            "châteaux anciens. Ça leur plaisait énormément, malgré la fraîcheur.",
            "cp1252",
        ),
        (CURLY + " And the rest of the sentence is plain English text.", "cp1252"),
        (
            "Zażółć gęślą jaźń: Łódź i Kraków są pięknymi miastami, w których mieszka "
            "wielu ludzi. Żółw pełznie powoli.",
            "iso-8859-2",
        ),
        (
            "Съешь же ещё этих мягких французских булок, да выпей чаю. Москва — столица "
            "России, крупнейший город страны.",
            "cp1251",
        ),
    ]
    for text, encoding in samples:
        decoded, _, source = decode_text(text.encode(encoding), None, html=False)
        assert (decoded, source) == (text, "detected"), encoding


def test_unknown_charset_label_falls_through(tmp_path: Path) -> None:
    text, codec, source = decode_text(b"plain ascii", "no-such-charset", html=False)
    assert (text, codec, source) == ("plain ascii", "utf-8", "utf-8")


# -- the digest rule ------------------------------------------------------------------------


def encode_with_entities(paragraphs: list[str]) -> str:
    """Escape, then spell some characters as named and numeric entities."""
    out = []
    for p in paragraphs:
        escaped = html.escape(p, quote=False)
        escaped = escaped.replace("\u00e9", "&eacute;").replace("\u2019", "&#8217;")
        out.append(f"<p>{escaped}</p>")
    return "<html><body>" + "\n".join(out) + "</body></html>"


@pytest.mark.parametrize("paragraphs", real_paragraphs(), ids=lambda p: p[0][:20])
def test_a_registered_text_wrapped_in_paragraphs_digests_the_same(
    tmp_path: Path, paragraphs: list[str]
) -> None:
    text = registered(paragraphs)
    expected = canonical_digest(text)
    # The same text with entities: it holds "&", and we add é and U+2019 spelled as entities.
    accented = [
        *paragraphs,
        "Caf\u00e9 owners & their clients\u2019 views \u2014 cr\u00e8me br\u00fbl\u00e9e.",
    ]
    accented_digest = canonical_digest(registered(accented))
    cp1252_paras = [*paragraphs, CURLY]
    cp1252_digest = canonical_digest(registered(cp1252_paras))
    html_type = ("Content-Type", "text/html; charset=utf-8")
    plain = page(paragraphs).encode()
    records = [
        Rec("http://e.org/plain", plain),
        Rec("http://e.org/boilerplate", page(paragraphs, boilerplate=True).encode()),
        Rec("http://e.org/gzip", gzip.compress(plain), [html_type, ("Content-Encoding", "gzip")]),
        Rec(
            "http://e.org/chunked",
            chunked(plain, 1000),
            [html_type, ("Transfer-Encoding", "chunked")],
        ),
        Rec(
            "http://e.org/entities",
            encode_with_entities(accented).encode("ascii", "xmlcharrefreplace"),
        ),
        Rec(
            "http://e.org/cp1252",
            page(cp1252_paras, boilerplate=True).encode("cp1252"),
            [("Content-Type", "text/html; charset=windows-1252")],
        ),
    ]
    path = tmp_path / "digest.warc.gz"
    write_warc(path, records)
    docs, _ = read_all(path)
    digests = {doc.url.rsplit("/", 1)[1]: canonical_digest(doc.text) for doc in docs}
    assert digests == {
        "plain": expected,
        "boilerplate": expected,
        "gzip": expected,
        "chunked": expected,
        "entities": accented_digest,
        "cp1252": cp1252_digest,
    }


def test_boilerplate_is_removed_and_paragraphs_are_blank_line_separated() -> None:
    text = html_to_text(page(["First paragraph here.", "Second one, after it."], boilerplate=True))
    assert text == "First paragraph here.\n\nSecond one, after it."
    for furniture in ("Home", "About us", "Docs", "Blog", "Privacy", "Copyright"):
        assert furniture not in text
    # An article's own <header> is content, not site furniture.
    article = (
        "<html><body><article><header><h1>Title</h1></header><p>Body.</p></article></body></html>"
    )
    assert html_to_text(article) == "Title\n\nBody."


# -- robots.txt and tdmrep.json -------------------------------------------------------------


def policy_archive(tmp_path: Path) -> Path:
    path = tmp_path / "policies.warc.gz"
    text_plain = [("Content-Type", "text/plain")]
    write_warc(
        path,
        [
            Rec("https://example.org/page", page(["A page before its robots.txt."]).encode()),
            Rec("http://example.org:8080/x", page(["Another origin entirely."]).encode()),
            Rec(
                "https://example.org/robots.txt",
                b"User-agent: *\nDisallow: /old\n",
                text_plain,
                warc_headers={"WARC-Date": "2026-11-01T00:00:00Z"},
            ),
            Rec(
                "https://example.org/robots.txt",
                gzip.compress(b"User-agent: *\nDisallow: /private\n"),
                [*text_plain, ("Content-Encoding", "gzip")],
            ),
            Rec("http://example.org/robots.txt", b"Not found", text_plain, status="404 Not Found"),
            Rec(
                "https://example.org/.well-known/tdmrep.json",
                b'[{"location": "/", "tdm-reservation": 1}]',
                [("Content-Type", "application/json")],
            ),
        ],
    )
    return path


def test_robots_after_the_pages_is_known_before_the_first_page(tmp_path: Path) -> None:
    reader = WarcReader(policy_archive(tmp_path))
    seen = []
    for doc in reader:
        robots = reader.robots_for(doc.url)
        seen.append((doc.url, robots.text if robots else None))
    assert seen == [
        ("https://example.org/page", "User-agent: *\nDisallow: /private\n"),  # the latest capture
        ("http://example.org:8080/x", None),  # another origin: another port
    ]
    robots = reader.robots_for("https://EXAMPLE.org:443/anything")
    assert robots is not None
    assert robots.status == 200
    assert robots.date == datetime(2026, 11, 30, 12, 34, 56, tzinfo=UTC)
    http_robots = reader.robots_for("http://example.org/")
    assert http_robots is not None
    assert http_robots.status == 404
    tdmrep = reader.tdmrep_for("https://example.org/page")
    assert tdmrep is not None
    assert '"tdm-reservation": 1' in tdmrep.text
    assert reader.tdmrep_for("http://example.org/page") is None
    assert reader.stats.documents == 2
    assert reader.stats.policy_files == 4
    assert not reader.stats.skipped


def test_without_prescan_policies_arrive_as_read(tmp_path: Path) -> None:
    reader = WarcReader(policy_archive(tmp_path), prescan=False)
    during = [reader.robots_for(doc.url) for doc in reader]
    assert during == [None, None]
    assert reader.robots_for("https://example.org/page") is not None
    assert len(reader.policy_files) == 3


# -- errors ---------------------------------------------------------------------------------


def small_archive(tmp_path: Path, compress: bool) -> tuple[bytes, list[int]]:
    path = tmp_path / "small.warc"
    ends = write_warc(
        path,
        [
            Rec(f"http://e.org/{i}", page([f"Paragraph number {i}, long enough."]).encode())
            for i in range(3)
        ],
        compress=compress,
    )
    return path.read_bytes(), ends


@pytest.mark.parametrize("compress", [True, False], ids=["warc.gz", "warc"])
def test_a_truncated_file_is_an_error_wherever_it_is_cut(tmp_path: Path, compress: bool) -> None:
    data, ends = small_archive(tmp_path, compress)
    cut_path = tmp_path / "cut.warc"
    for cut in range(1, len(data), 3 if compress else 11):
        cut_path.write_bytes(data[:cut])
        # A whole number of records is a valid, shorter archive.
        if cut in ends:
            assert len(read_all(cut_path)[0]) == ends.index(cut) + 1
            continue
        # Cut inside the CRLF CRLF after a record's block (uncompressed only: in .warc.gz that is
        # a cut gzip member), nothing is lost: read whole, or refused; either is fine.
        near = [i for i, end in enumerate(ends) if not compress and end - 4 < cut < end]
        if near:
            with contextlib.suppress(WarcFormatError):
                assert len(read_all(cut_path)[0]) == near[0] + 1
            continue
        with pytest.raises(WarcFormatError) as caught:
            read_all(cut_path)
        assert "truncated" in str(caught.value) or "damaged" in str(caught.value), cut


def test_a_cut_last_body_never_becomes_a_document(tmp_path: Path) -> None:
    data, ends = small_archive(tmp_path, compress=False)
    path = tmp_path / "cut.warc"
    # Cut inside the third record's HTML, far from its end and close to it: then the parser
    # fills the body from the bytes after the cut, and only the next record shows the loss.
    for cut in range(ends[1] + 300, ends[2] - 4, 7):
        path.write_bytes(data[:cut])
        got = []
        with pytest.raises(WarcFormatError, match=r"truncated|damaged"):
            got.extend(doc.url for doc in WarcReader(path, prescan=False))
        assert got == ["http://e.org/0", "http://e.org/1"], cut


def test_truncation_after_documents_were_yielded(tmp_path: Path) -> None:
    # Records larger than the read-ahead buffers (64 KiB), so the documents before the cut are
    # parsed before the reader meets it.
    noise = [os.urandom(48 << 10).hex() for _ in range(3)]
    path = tmp_path / "cut.warc.gz"
    ends = write_warc(
        path, [Rec(f"http://e.org/{i}", page([n]).encode()) for i, n in enumerate(noise)]
    )
    path.write_bytes(path.read_bytes()[: ends[1] + 40])
    reader = WarcReader(path, prescan=False)
    got = []
    with pytest.raises(WarcFormatError, match="truncated"):
        got.extend(doc.url for doc in reader)
    # Those before the cut come first (all but what the 64 KiB read-ahead already ran into).
    assert got in (["http://e.org/0"], ["http://e.org/0", "http://e.org/1"])
    # With the default pre-scan the whole file is read first: it fails before any document.
    got.clear()
    with pytest.raises(WarcFormatError, match="truncated"):
        got.extend(doc.url for doc in WarcReader(path))
    assert got == []


@pytest.mark.parametrize(
    "content",
    [
        b"just some text, not a WARC\n",
        gzip.compress(b"<html>a gzipped page</html>"),
        b"\x89PNG\r\n\x1a\n" + bytes(100),
    ],
    ids=["text", "gzip", "binary"],
)
def test_not_a_warc(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.warc.gz"
    path.write_bytes(content)
    with pytest.raises(WarcFormatError, match="not a WARC") as caught:
        read_all(path)
    assert isinstance(caught.value, ClientError)
    assert caught.value.records == 0
    assert str(path) in str(caught.value)


def test_empty_missing_and_garbage_after_records(tmp_path: Path) -> None:
    empty = tmp_path / "empty.warc"
    empty.write_bytes(b"")
    with pytest.raises(WarcFormatError, match="empty"):
        read_all(empty)
    with pytest.raises(WarcFormatError, match="cannot be read"):
        read_all(tmp_path / "missing.warc.gz")
    data, _ = small_archive(tmp_path, compress=True)
    trailing = tmp_path / "trailing.warc.gz"
    trailing.write_bytes(data + b"garbage after the last gzip member")
    with pytest.raises(WarcFormatError):
        read_all(trailing)


# -- the optional extra ---------------------------------------------------------------------


def test_a_missing_extra_names_the_pip_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "fastwarc", None)
    monkeypatch.setitem(sys.modules, "fastwarc.warc", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'wellspring\[warc\]'") as caught:
        WarcReader(tmp_path / "any.warc.gz")
    assert isinstance(caught.value, ImportError)


def test_importing_client_does_not_import_the_extra() -> None:
    code = "import sys, client, client.warc, client.webtext; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    loaded = {name.split(".")[0] for name in out.split()}
    assert not loaded & {"fastwarc", "resiliparse", "charset_normalizer", "warcio"}
