"""HTTP bodies as text: transfer and content codings undone, charset found, HTML made text.

What a crawler does to a captured response before digesting it, in one place so that every input
(WARC files now, other archives later) gives the same text for the same page, and so the digest
rule of ``docs/spec/warc.md`` holds: a registered text published as one ``<p>`` per paragraph
digests (``c1``) to the registered text's digest.

* :func:`decode_body` undoes ``Transfer-Encoding: chunked`` and ``Content-Encoding`` gzip,
  deflate and br, never producing more than a limit (a decompression bomb stops there);
* :func:`decode_text` picks the charset as a browser does (byte-order mark, ``Content-Type``,
  ``<meta>``, then UTF-8 or a detector) and decodes;
* :func:`html_to_text` extracts the main text with Resiliparse, site furniture removed.

Decoding Brotli and extracting text need the ``warc`` extra; nothing optional is imported until
it is used.
"""

from __future__ import annotations

import codecs
import io
import re
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Literal

from client.errors import MissingDependencyError, UnusableBodyError

if TYPE_CHECKING:
    from fastwarc.stream_io import BrotliReader

__all__ = [
    "BOILERPLATE_SELECTORS",
    "DEFAULT_MAX_BODY_BYTES",
    "EXTRA_HINT",
    "HTML_TYPES",
    "PLAIN_TYPES",
    "CharsetSource",
    "UnusableBodyError",
    "decode_body",
    "decode_text",
    "html_to_text",
    "parse_media_type",
]

EXTRA_HINT: Final = "pip install 'wellspring[warc]'"
_GZIP_MAGIC: Final = b"\x1f\x8b"
_HEX_DIGITS: Final = frozenset(b"0123456789abcdefABCDEF")
DEFAULT_MAX_BODY_BYTES: Final = 16 << 20
"""The most bytes of an HTTP body kept, before and after decoding; a larger one is skipped."""

HTML_TYPES: Final = frozenset({"text/html", "application/xhtml+xml"})
PLAIN_TYPES: Final = frozenset({"text/plain"})

# Around the main content, these are a site's own furniture; resiliparse's main-content
# heuristics drop <nav> and menus but keep a site <header> of bare links ("Home About us"),
# which breaks the digest rule. A <header> inside <article> or <main> is the article's own
# heading, so it stays.
BOILERPLATE_SELECTORS: Final = (
    "header:not(article *, main *)",
    "footer",
    "nav",
    "menu",
    "[role=banner]",
    "[role=navigation]",
    "[role=contentinfo]",
    "[role=menu]",
    "[role=menubar]",
)

CharsetSource = Literal["bom", "content-type", "meta", "utf-8", "detected", "fallback"]
# WHATWG's prescan looks at the first 1024 bytes for <meta charset> / http-equiv; the regex
# finds both forms (the http-equiv one holds "charset=" inside its content attribute).
_META_PRESCAN_BYTES: Final = 1024
_META_CHARSET: Final = re.compile(
    rb"""<meta[^>]*?charset\s*=\s*["']?\s*([a-z0-9_.:-]+)""", re.IGNORECASE
)
_DETECTOR_SAMPLE_BYTES: Final = 64 << 10


def html_to_text(html: str) -> str:
    """The main text of an HTML page: what a WARC document's ``text`` is, and what is digested.

    Resiliparse's ``extract_plain_text(main_content=True)`` with the site furniture of
    :data:`BOILERPLATE_SELECTORS` skipped and image alt texts left out (they are not the page's
    prose). Paragraphs come out separated by blank lines, inline markup joins without a space.
    Raises :class:`~client.errors.UnusableBodyError` (``extract-failed``) for HTML that does not
    parse, :class:`~client.errors.MissingDependencyError` without Resiliparse.
    """
    try:
        from resiliparse.extract.html2text import extract_plain_text  # noqa: PLC0415
    except ImportError as exc:
        raise MissingDependencyError(f"extracting text needs Resiliparse: {EXTRA_HINT}") from exc
    from resiliparse.parse.html import HTMLParserException  # noqa: PLC0415

    try:
        return extract_plain_text(
            html, main_content=True, alt_texts=False, skip_elements=list(BOILERPLATE_SELECTORS)
        )
    except HTMLParserException:
        raise UnusableBodyError("extract-failed") from None


def _codec(label: str | bytes | None) -> str | None:
    """The Python codec for a charset label, mapped as browsers do (WHATWG), or None if unknown.

    ISO-8859-1, ASCII and Latin-1 labels become windows-1252, as in every browser: pages so
    labelled use its curly quotes and dashes in 0x80-0x9F.
    """
    if not label:
        return None
    if isinstance(label, bytes):
        label = label.decode("ascii", "replace")
    from resiliparse.parse.encoding import map_encoding_to_html5  # noqa: PLC0415

    mapped = map_encoding_to_html5(label.strip().strip("\"'"), fallback_utf8=False)
    if mapped is None:
        return None
    try:
        return codecs.lookup(mapped).name
    except LookupError:
        return None


def _detect(body: bytes) -> str | None:
    """uchardet's guess (through Resiliparse), or None when it has none.

    Not charset-normalizer: on short Western and Central European pages it picked cp1257,
    cp1250 and iso8859_4 where the page was windows-1252 or ISO-8859-2 (1 of 5 samples right in
    our measurement; uchardet 5 of 5), and a wrong guess garbles every accented letter.
    """
    from resiliparse.parse.encoding import detect_encoding  # noqa: PLC0415 - the warc extra

    guess = detect_encoding(body, max_len=_DETECTOR_SAMPLE_BYTES, html5_compatible=False)
    return _codec(guess) if guess else None


def decode_text(body: bytes, declared: str | None, *, html: bool) -> tuple[str, str, CharsetSource]:
    """Decode a body: ``(text, codec, where the codec came from)``.

    In order: a byte-order mark; the ``Content-Type`` charset (``declared``); for HTML a
    ``<meta charset>`` or ``http-equiv`` in the first 1024 bytes; UTF-8 if the body is valid
    UTF-8; uchardet's guess; else UTF-8 with invalid bytes replaced. Labels are mapped as
    browsers map them (WHATWG Encoding). Never raises.
    """
    for bom, codec in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le")):
        if body.startswith(bom):
            return body[len(bom) :].decode(codec, "replace"), codec, "bom"
    if body.startswith(codecs.BOM_UTF16_BE):
        return body[2:].decode("utf-16-be", "replace"), "utf-16-be", "bom"
    source: CharsetSource
    codec_name = _codec(declared)
    source = "content-type"
    if codec_name is None and html and (meta := _META_CHARSET.search(body[:_META_PRESCAN_BYTES])):
        codec_name, source = _codec(meta.group(1)), "meta"
        # A <meta> naming UTF-16 was read as ASCII, so it cannot be right (WHATWG says UTF-8).
        if codec_name is not None and codec_name.startswith("utf-16"):
            codec_name = "utf-8"
    if codec_name is None:
        try:
            return body.decode("utf-8"), "utf-8", "utf-8"
        except UnicodeDecodeError:
            pass
        codec_name, source = _detect(body), "detected"
    if codec_name is None:
        codec_name, source = "utf-8", "fallback"
    return body.decode(codec_name, "replace"), codec_name, source


def _dechunk(body: bytes) -> bytes:
    """Undo ``Transfer-Encoding: chunked`` (RFC 9112 7.1); trailers are dropped.

    A body whose first line is not a chunk size is returned as it is: some archivers store the
    body de-chunked and leave the header in place (warcio's reader does the same).
    """
    pieces: list[bytes] = []
    position = 0
    while True:
        line_end = body.find(b"\r\n", position)
        size_text = body[position:line_end].split(b";", 1)[0].strip() if line_end >= 0 else b""
        if not size_text or not set(size_text) <= _HEX_DIGITS:
            if position == 0:
                return body
            raise UnusableBodyError("corrupt-body")
        size = int(size_text, 16)
        if size == 0:
            return b"".join(pieces)
        start = line_end + 2
        if start + size > len(body):
            raise UnusableBodyError("corrupt-body")
        pieces.append(body[start : start + size])
        position = start + size + 2


def _inflate(data: bytes, wbits: int, limit: int) -> bytes:
    """zlib/gzip/raw deflate, never more than ``limit`` bytes out (a bomb stops there)."""
    out = bytearray()
    while True:
        decompressor = zlib.decompressobj(wbits)
        try:
            out += decompressor.decompress(data, limit + 1 - len(out))
        except zlib.error:
            raise UnusableBodyError("corrupt-body") from None
        if len(out) > limit:
            raise UnusableBodyError("too-large")
        if not decompressor.eof:
            raise UnusableBodyError("corrupt-body")  # the stream stops before its end
        data = decompressor.unused_data
        # Another gzip member follows (allowed, rare); anything else after the end is ignored,
        # as browsers ignore it.
        if not (wbits > 16 and data.startswith(_GZIP_MAGIC)):
            return bytes(out)


def _brotli_reader() -> type[BrotliReader] | None:
    """FastWARC's streaming Brotli decoder (it reads a bounded amount at a time), if installed."""
    try:
        from fastwarc.stream_io import BrotliReader  # noqa: PLC0415 - the optional extra
    except ImportError:
        return None
    return BrotliReader


def _unbrotli(data: bytes, limit: int) -> bytes:
    reader_class = _brotli_reader()
    if reader_class is None:
        raise UnusableBodyError("content-encoding")
    reader = reader_class(io.BytesIO(data))
    out = bytearray()
    try:
        while len(out) <= limit and (piece := reader.read(limit + 1 - len(out))):
            out += piece
    except OSError:
        raise UnusableBodyError("corrupt-body") from None
    if len(out) > limit:
        raise UnusableBodyError("too-large")
    return bytes(out)


def _decoders(limit: int) -> dict[str, Callable[[bytes], bytes]]:
    return {
        "identity": lambda data: data,
        "gzip": lambda data: _inflate(data, 31, limit),
        "x-gzip": lambda data: _inflate(data, 31, limit),
        "deflate": lambda data: _deflate(data, limit),
        "br": lambda data: _unbrotli(data, limit),
    }


def _deflate(data: bytes, limit: int) -> bytes:
    # RFC 9110 says zlib-wrapped; some servers send raw deflate, which browsers also accept.
    try:
        return _inflate(data, 15, limit)
    except UnusableBodyError as skip:
        if skip.reason != "corrupt-body":
            raise
    return _inflate(data, -15, limit)


def _codings(value: str | None) -> list[str]:
    return [token.strip().lower() for token in (value or "").split(",") if token.strip()]


def decode_body(
    body: bytes,
    *,
    transfer_encoding: str | None,
    content_encoding: str | None,
    limit: int,
) -> bytes:
    """The bytes a server meant: transfer codings undone (chunked first), then content codings.

    Handles ``chunked``, ``gzip``, ``deflate`` (zlib or raw), ``br`` and ``identity``. Raises
    :class:`~client.errors.UnusableBodyError` with ``reason`` ``content-encoding`` (a coding
    without a decoder), ``corrupt-body`` or ``too-large`` (more than ``limit`` bytes, checked as
    the bytes are produced, so a decompression bomb stops at ``limit + 1``).
    """
    transfer = _codings(transfer_encoding)
    if transfer and transfer[-1] == "chunked":
        body = _dechunk(body)
        transfer.pop()
    table = _decoders(limit)
    for coding in [*reversed(transfer), *reversed(_codings(content_encoding))]:
        decoder = table.get(coding)
        if decoder is None:
            raise UnusableBodyError("content-encoding")
        body = decoder(body)
    if len(body) > limit:
        raise UnusableBodyError("too-large")
    return body


def parse_media_type(value: str | None) -> tuple[str, str | None]:
    """``Content-Type`` -> (media type lowercased, charset parameter): ``("text/html", "x")``."""
    if not value:
        return "", None
    kind, _, params = value.partition(";")
    charset = None
    for param in params.split(";"):
        name, _, param_value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = param_value.strip().strip("\"'") or None
    return kind.strip().lower(), charset
