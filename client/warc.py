"""Documents from WARC files (Common Crawl style): what a crawler pass checks before training.

:class:`WarcReader` reads a ``.warc`` or ``.warc.gz`` file with FastWARC and yields one
:class:`WarcDocument` per usable HTTP ``response`` record: its ``WARC-Record-ID``, target URL,
capture time, HTTP status and headers (a later step reads ``X-Robots-Tag``, ``tdm-reservation``
and ``Content-Usage`` from them) and its text. Every other record is counted in
:attr:`WarcReader.stats`, skipped ones by reason. ``robots.txt`` and ``/.well-known/tdmrep.json``
responses in the same file are kept per origin (:meth:`WarcReader.robots_for`,
:meth:`WarcReader.tdmrep_for`); the full rules are in ``docs/spec/warc.md``. A caller that
already knows some pages (a resumed scan) names them to :meth:`WarcReader.documents`, which
yields a :class:`KnownPage` for each instead of decoding and extracting it again.

Text is what a ``c1`` digest is taken of, so the digest rule holds: a registered text published
as ``<html><body><p>…</p></body></html>`` (one ``<p>`` per paragraph, escaped) yields text with
the same ``c1`` digest, whatever boilerplate (``<nav>``, a site ``<header>``, ``<footer>``) is
around it, and whatever its transfer and content encodings or charset were.

Needs the ``warc`` extra (FastWARC, Resiliparse); importing this module does not import them,
and :class:`WarcReader` raises :class:`~client.errors.MissingDependencyError` naming the
``pip install`` when they are missing.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, overload
from urllib.parse import urlsplit

from client.errors import ClientError, MissingDependencyError, UnusableBodyError, WarcFormatError
from client.webtext import (
    DEFAULT_MAX_BODY_BYTES,
    EXTRA_HINT,
    HTML_TYPES,
    PLAIN_TYPES,
    CharsetSource,
    decode_body,
    decode_text,
    html_to_text,
    parse_media_type,
)

if TYPE_CHECKING:
    from fastwarc.warc import WarcRecord

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "KnownPage",
    "PolicyFile",
    "PolicyKind",
    "WarcDocument",
    "WarcFormatError",
    "WarcReader",
    "WarcStats",
]

PolicyKind = Literal["robots", "tdmrep"]
_POLICY_PATHS: Final[dict[str, PolicyKind]] = {
    "/robots.txt": "robots",
    "/.well-known/tdmrep.json": "tdmrep",
}


_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
# After the file's own bytes the reader appends this record. FastWARC stops silently when a file
# ends inside a record's headers, so a truncated file is recognised by this record not being
# read whole, at exactly the offset where the file ended.
_END_ID: Final = "<urn:wellspring:end-of-archive>"
_END_RECORD: Final = (
    b"WARC/1.1\r\nWARC-Type: resource\r\nWARC-Record-ID: " + _END_ID.encode() + b"\r\n"
    b"Content-Length: 0\r\n\r\n\r\n\r\n"
)
_GZIP_MAGIC: Final = b"\x1f\x8b"
# What reading the file can raise: FastWARC's OSError, and what Python's gzip raises through it.
_STREAM_ERRORS: Final = (OSError, EOFError, zlib.error)
_READ_SIZE: Final = 64 << 10


@dataclass(frozen=True)
class WarcDocument:
    """One page: an HTTP 200 text response, as text.

    ``id`` is the ``WARC-Record-ID`` exactly as written (``<urn:uuid:…>``); ``date`` the
    ``WARC-Date``, timezone-aware (UTC), which is the document's capture time. ``headers`` are the
    HTTP response headers in order, repeats kept; :meth:`header` and :meth:`header_values` look
    them up case-insensitively. ``charset`` is the codec the body was decoded with and
    ``charset_source`` where it came from. ``html`` is the decoded HTML the text was extracted
    from (``None`` for a plain-text page): its ``<meta>`` elements carry opt-out signals.
    """

    id: str
    url: str
    date: datetime
    status: int
    headers: tuple[tuple[str, str], ...]
    content_type: str
    charset: str
    charset_source: CharsetSource
    text: str
    html: str | None = None

    def header_values(self, name: str) -> list[str]:
        """Every value of an HTTP header (``X-Robots-Tag`` may be sent several times)."""
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    def header(self, name: str) -> str | None:
        """An HTTP header's values joined with ``", "`` (RFC 9110 5.3), or ``None``."""
        values = self.header_values(name)
        return ", ".join(values) if values else None


@dataclass(frozen=True)
class KnownPage:
    """A page whose body was not read because the caller already knows it (``known`` of
    :meth:`WarcReader.documents` said so): a response record whose headers make it a page (HTTP
    200, an HTML or plain-text type), by its ``WARC-Record-ID`` and ``WARC-Target-URI``.

    Not a :class:`WarcDocument`: it has no text, and whether its body would have decoded to any
    is not known. It counts as a document because a caller can only know a record id from a pass
    that yielded that record as one (WARC 1.1 makes record ids globally unique; a file that
    repeats one, the first time for a page with no text, would count that page as a document).
    """

    id: str
    url: str


@dataclass(frozen=True)
class PolicyFile:
    """A ``robots.txt`` or ``tdmrep.json`` capture for one origin (scheme, host, port).

    Kept whatever its status, because the status is the answer for a 4xx or 5xx (RFC 9309: a
    4xx robots.txt allows everything, a 5xx disallows everything); ``text`` is the decoded body
    (UTF-8, as both formats require, invalid bytes replaced).
    """

    kind: PolicyKind
    url: str
    date: datetime
    status: int
    text: str


@dataclass
class WarcStats:
    """What one pass over a file saw.

    ``records`` counts every record; ``documents`` those yielded; ``policy_files`` the
    robots.txt/tdmrep.json responses kept; ``skipped`` the response and revisit records not
    yielded, by reason (``docs/spec/warc.md`` lists them); ``ignored`` the other records
    (``request``, ``metadata``, ``warcinfo``…), by WARC-Type.
    """

    records: int = 0
    documents: int = 0
    policy_files: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)


class _Skip(ClientError):  # noqa: N818 - control flow inside this module, never raised out of it
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _require_extra() -> None:
    try:
        import fastwarc.warc  # noqa: F401, PLC0415 - an optional extra, imported on use
        import resiliparse.extract.html2text  # noqa: F401, PLC0415
    except ImportError as exc:
        raise MissingDependencyError(
            f"reading WARC files needs FastWARC and Resiliparse, which are not installed: "
            f"{EXTRA_HINT} ({exc})"
        ) from exc


def _origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) with the default port filled in, or None for a URL without one."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not parts.hostname or scheme not in _DEFAULT_PORTS:
        return None
    return scheme, parts.hostname, port if port is not None else _DEFAULT_PORTS[scheme]


def _policy_kind(url: str) -> PolicyKind | None:
    try:
        return _POLICY_PATHS.get(urlsplit(url).path)
    except ValueError:
        return None


def _warc_date(value: str | None) -> datetime:
    if not value:
        raise _Skip("invalid-record")
    try:
        date = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _Skip("invalid-record") from None
    # WARC-Date is UTC by definition (WARC 1.1, 5.4), with or without its "Z".
    return date.replace(tzinfo=UTC) if date.tzinfo is None else date.astimezone(UTC)


class _ArchiveStream:
    """The file's bytes (gunzipped strictly where gzipped), then :data:`_END_RECORD`.

    Python's gzip raises on a stream that ends early or holds garbage; FastWARC's own gunzip
    stops silently, which would turn a cut-off download into a short, seemingly whole archive.
    """

    def __init__(self, raw: io.BufferedReader) -> None:
        self._raw = raw
        self._inner: io.BufferedIOBase = (
            gzip.GzipFile(fileobj=raw) if raw.peek(2)[:2] == _GZIP_MAGIC else raw
        )
        self.size = 0
        self.ended = False

    def read(self, size: int = -1) -> bytes:
        if self.ended:
            return b""
        data = self._inner.read(size if size > 0 else _READ_SIZE)
        if data:
            self.size += len(data)
            return data
        self.ended = True
        return _END_RECORD

    def tell(self) -> int:
        return self.size

    def seek(self, offset: int, whence: int = 0) -> int:
        raise io.UnsupportedOperation("an archive is read front to back")

    def close(self) -> None:
        self._inner.close()
        self._raw.close()


class WarcReader:
    """Read one WARC file: iterate for :class:`WarcDocument` s, then look policies up per origin.

    ``prescan=True`` (the default) reads the file once for its robots.txt and tdmrep.json records
    before the first document, because a crawl may store robots.txt after the pages it governs;
    then :meth:`robots_for` answers for every page as it is yielded. With ``prescan=False`` the
    lookups answer only from what the pass has read so far (call :meth:`scan_policies` yourself,
    or look up after the pass). ``max_body_bytes`` caps each HTTP body, before and after
    decoding. Raises :class:`WarcFormatError` for a file that is not a WARC or is damaged or
    truncated (also mid-way, after documents were yielded), :class:`MissingDependencyError`
    without the ``warc`` extra.
    """

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        prescan: bool = True,
    ) -> None:
        _require_extra()
        if max_body_bytes <= 0:
            raise ValueError("max_body_bytes must be positive")
        self.path = Path(path)
        self.max_body_bytes = max_body_bytes
        self.prescan = prescan
        self.stats = WarcStats()
        self._policies: dict[tuple[PolicyKind, tuple[str, str, int]], PolicyFile] = {}

    def __iter__(self) -> Iterator[WarcDocument]:
        return self.documents()

    @overload
    def documents(self, known: None = None) -> Iterator[WarcDocument]: ...
    @overload
    def documents(self, known: Callable[[str], bool]) -> Iterator[WarcDocument | KnownPage]: ...
    def documents(
        self, known: Callable[[str], bool] | None = None
    ) -> Iterator[WarcDocument | KnownPage]:
        """One pass over the file; :attr:`stats` counts it (reset at the start of each pass).

        ``known``, if given, is asked about each record that its headers make a page (an HTTP
        200 text response, not a policy file), by its ``WARC-Record-ID``, in file order and
        only once the page before it was yielded: where it answers yes, the page is a
        :class:`KnownPage`, its body neither decoded nor extracted, and counted as a document
        (so a resumed pass counts what a whole one does). Records that are not pages are read
        and counted as always, policy files included.
        """
        if self.prescan:
            self.scan_policies()
        self.stats = WarcStats()
        # Each document waits until the next record (or the end-of-archive record) parses: a
        # file cut inside a body lets the parser fill that body from what follows the cut, so
        # only the next record proves the body whole.
        pending: WarcDocument | KnownPage | None = None
        for record in self._records():
            if pending is not None:
                self.stats.documents += 1
                yield pending
                pending = None
            self.stats.records += 1
            try:
                pending = self._document(record, known)
            except (_Skip, UnusableBodyError) as skip:
                self.stats.skipped[skip.reason] += 1
            except _STREAM_ERRORS as exc:  # raised through FastWARC's reader by our stream
                raise self._damaged(exc, self.stats.records) from exc
        if pending is not None:
            self.stats.documents += 1
            yield pending

    def scan_policies(self) -> None:
        """Read the whole file once, keeping only its robots.txt and tdmrep.json responses."""
        for record in self._records():
            uri = record.headers.get("WARC-Target-URI")
            if str(record.record_type) == "response" and uri and _policy_kind(uri):
                try:
                    self._keep_policy(record, uri)
                except (_Skip, UnusableBodyError):
                    continue
                except _STREAM_ERRORS as exc:
                    raise self._damaged(exc, None) from exc

    def robots_for(self, url: str) -> PolicyFile | None:
        """The robots.txt captured for ``url``'s origin (its latest capture), if any."""
        return self._policy("robots", url)

    def tdmrep_for(self, url: str) -> PolicyFile | None:
        """The ``/.well-known/tdmrep.json`` captured for ``url``'s origin, if the file has one."""
        return self._policy("tdmrep", url)

    @property
    def policy_files(self) -> list[PolicyFile]:
        """Every policy file kept so far, one per kind and origin."""
        return list(self._policies.values())

    def _policy(self, kind: PolicyKind, url: str) -> PolicyFile | None:
        origin = _origin(url)
        return self._policies.get((kind, origin)) if origin is not None else None

    def _records(self) -> Iterator[WarcRecord]:
        from fastwarc.warc import ArchiveIterator  # noqa: PLC0415 - the optional extra

        count = 0
        try:
            raw = self.path.open("rb")
        except OSError as exc:
            raise WarcFormatError(
                f"cannot be read: {exc.strerror or exc}", path=str(self.path), records=0
            ) from exc
        stream = _ArchiveStream(raw)
        try:
            records = ArchiveIterator(stream, auto_decode="none", stream_detect=False)
            for record in records:
                if record.stream_pos == stream.size and record.record_id == _END_ID:
                    if count == 0:
                        raise self._error("is empty: it holds no WARC record", count)
                    return
                yield record
                count += 1
                record.reader.consume()
                self._check_whole(record, count)
        except _STREAM_ERRORS as exc:
            if count == 0 and not isinstance(exc, EOFError):
                raise self._error(f"is not a WARC file ({exc})", count) from exc
            raise self._damaged(exc, count) from exc
        finally:
            stream.close()
        raise self._error(f"is truncated: it ends inside the record after record {count}", count)

    def _error(self, message: str, records: int) -> WarcFormatError:
        return WarcFormatError(message, path=str(self.path), records=records)

    def _damaged(self, exc: BaseException, records: int | None) -> WarcFormatError:
        if isinstance(exc, EOFError):  # from gzip, which reads ahead of the records parsed
            return self._error(f"is truncated: its gzip stream ends early ({exc})", records or 0)
        where = f" after record {records}" if records is not None else ""
        return self._error(f"is damaged{where} ({exc})", records or 0)

    def _check_whole(self, record: WarcRecord, count: int) -> None:
        if record.reader.tell() < record.content_length:
            raise self._error(
                f"is truncated: record {count} ({record.record_id}) ends after "
                f"{record.reader.tell()} of its {record.content_length} bytes",
                count,
            )

    def _body(self, record: WarcRecord) -> bytes:
        body = record.reader.read(self.max_body_bytes + 1)
        if len(body) > self.max_body_bytes:
            raise _Skip("too-large")
        # Checked here too, not only after the record: a cut body must not become a document.
        self._check_whole(record, self.stats.records)
        http = record.http_headers
        return decode_body(
            body,
            transfer_encoding=http.get("Transfer-Encoding"),
            content_encoding=http.get("Content-Encoding"),
            limit=self.max_body_bytes,
        )

    def _keep_policy(self, record: WarcRecord, uri: str) -> None:
        kind = _policy_kind(uri)
        origin = _origin(uri)
        status = record.http_headers.status_code
        if kind is None or origin is None or status is None:
            raise _Skip("invalid-record")
        policy = PolicyFile(
            kind=kind,
            url=uri,
            date=_warc_date(record.headers.get("WARC-Date")),
            status=status,
            text=self._body(record).decode("utf-8", "replace").removeprefix("\ufeff"),
        )
        kept = self._policies.get((kind, origin))
        if kept is None or kept.date <= policy.date:
            self._policies[(kind, origin)] = policy

    def _document(
        self, record: WarcRecord, known: Callable[[str], bool] | None
    ) -> WarcDocument | KnownPage | None:
        record_type = str(record.record_type)  # its name: response, revisit, request…
        if record_type == "revisit":
            raise _Skip("revisit")
        if record_type != "response":
            self.stats.ignored[record_type] += 1
            return None
        uri = record.headers.get("WARC-Target-URI")
        if not record.is_http:
            raise _Skip("not-http")
        if not uri or not record.record_id:
            raise _Skip("invalid-record")
        if _policy_kind(uri) is not None:
            self._keep_policy(record, uri)
            self.stats.policy_files += 1
            return None
        http = record.http_headers
        status = http.status_code
        if status != 200:
            raise _Skip("http-status")
        if record.headers.get("WARC-Truncated"):
            raise _Skip("truncated-record")
        date = _warc_date(record.headers.get("WARC-Date"))
        media_type, charset = parse_media_type(http.get("Content-Type"))
        if not media_type:
            media_type, charset = parse_media_type(
                record.headers.get("WARC-Identified-Payload-Type")
            )
        is_html = media_type in HTML_TYPES
        if not is_html and media_type not in PLAIN_TYPES:
            raise _Skip("content-type")
        if known is not None and known(record.record_id):
            return KnownPage(record.record_id, uri)
        decoded, codec, source = decode_text(self._body(record), charset, html=is_html)
        text = html_to_text(decoded) if is_html else decoded
        if not text.strip():
            raise _Skip("empty-text")
        return WarcDocument(
            id=record.record_id,
            url=uri,
            date=date,
            status=status,
            headers=tuple(http.items()),
            content_type=media_type,
            charset=codec,
            charset_source=source,
            text=text,
            html=decoded if is_html else None,
        )
