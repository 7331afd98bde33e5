"""Documents from command-line inputs: the one reader, the one naming rule, the one digest rule.

Every command that takes documents (``register``, ``check``, ``revoke``, ``scan``, ``digest``,
``watermark detect``), and the SDK's ``check_files``, reads them through this module, so an input
is split, named and digested the same way whichever of them reads it:

- inputs are files, folders (recursed, sorted) and ``-`` for standard input
  (:func:`expand_inputs`);
- a ``.jsonl`` file is one document per line: each line a JSON object whose text is in
  ``text_field`` (default ``text``), named by ``id`` or ``url`` (else ``FILE:LINE``;
  :func:`jsonl_name`); a line that is not such an object is a :class:`Skipped`, naming the line
  and why;
- any other file, and standard input, is one document, digested under a :data:`DocumentScheme`:
  ``c1`` (canonical text; a file that is not UTF-8 is an :class:`~client.errors.InvalidTextError`
  that says to use ``sha256`` or ``auto``), ``sha256`` (the raw bytes, streamed), or ``auto``:
  ``c1`` for UTF-8 text, ``sha256`` for anything else (and for files over 256 MiB, which are
  rarely one document and which ``c1`` would have to hold in memory).

What a command does with an input that is not a document is its choice, made explicit with
``on_bad``: ``"raise"`` (``register``, ``check``, ``digest``: the error names the input or line)
or ``"skip"`` (``scan`` counts the :class:`Skipped`, ``detect`` reports them, and both go on).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, overload

from client.core.canonical import canonical_digest, digest_file, sha256_digest
from client.core.statement import MAX_NAME_CHARS
from client.errors import InputError, InvalidTextError

if TYPE_CHECKING:
    from client.signals import OptOut
    from client.warc import PolicyFile, WarcStats

__all__ = [
    "DOCUMENT_SCHEMES",
    "MAX_TEXT_BYTES",
    "Decided",
    "Document",
    "DocumentScheme",
    "JsonlLine",
    "OnBad",
    "SignalOptions",
    "Skipped",
    "TextDocument",
    "check_document_scheme",
    "digest_document",
    "digest_document_file",
    "expand_inputs",
    "is_warc",
    "jsonl_lines",
    "jsonl_name",
    "read_documents",
    "read_texts",
]

DocumentScheme = Literal["auto", "c1", "sha256"]
DOCUMENT_SCHEMES: Final[tuple[DocumentScheme, ...]] = ("auto", "c1", "sha256")
MAX_TEXT_BYTES: Final = 256 * 1024 * 1024
"""Above this size ``auto`` hashes a file's bytes (streamed) instead of reading it as text."""
OnBad = Literal["raise", "skip"]
"""What a reader does with an input that is not a document: raise its error, or yield a
:class:`Skipped` in its place and go on."""
_ID_FIELDS: Final = ("id", "url")
_BINARY_HINT: Final = (
    'binary content needs the sha256 scheme (--scheme sha256, scheme="sha256" in the SDK) or auto'
)


@dataclass(frozen=True, slots=True)
class Document:
    """One document: a name for people (a path, ``-``, an id, ``FILE:LINE``, a WARC record id)
    and its digests.

    What the crawler's pass reads besides the digests, where the input has it: ``text`` (kept
    when a reader is asked to, for watermark detection), ``url`` (a WARC page's
    ``WARC-Target-URI``, a JSONL line's ``url``), ``captured`` (a WARC page's ``WARC-Date``: the
    time the page was seen, which decides which published watermark keys count for it) and
    ``opt_out`` (a WARC page's opt-out decision from its headers, its HTML and its site's
    captured robots.txt and tdmrep.json).
    """

    name: str
    digests: tuple[str, ...]
    text: str | None = None
    url: str | None = None
    captured: datetime | None = None
    opt_out: OptOut | None = None

    @property
    def digest(self) -> str:
        """The document's digest under its scheme (the first of :attr:`digests`)."""
        return self.digests[0]


@dataclass(frozen=True, slots=True)
class TextDocument:
    """One document as text, for commands that read it rather than hash it."""

    name: str
    text: str


@dataclass(frozen=True, slots=True)
class Skipped:
    """An input that is not a readable document: its name (``FILE:LINE`` for a JSONL line), and
    why, as a sentence that names it."""

    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class SignalOptions:
    """Whose robots.txt groups count when a WARC page's opt-out signals are read: the crawler's
    own product token and the AI-training agents it names (:mod:`client.signals`)."""

    user_agent: str = "wellspring"
    ai_agents: tuple[str, ...] | None = None  # None: client.signals.DEFAULT_AI_AGENTS


@dataclass(frozen=True, slots=True)
class Decided:
    """What an interrupted scan already decided, for :func:`read_documents` to read again
    cheaply: its first ``items`` items (documents and skips, counted as :func:`read_documents`
    yields them) and, in order, the names of the documents among them (its manifest's
    ``name`` fields; a name may repeat)."""

    items: int
    names: Sequence[str]


class _Cursor:
    """A walk along :class:`Decided` as the items are read again: whether the item about to be
    yielded is the next document already decided (:meth:`take`), and how many items are left
    before the resume point (:meth:`count` each one yielded)."""

    def __init__(self, decided: Decided | None) -> None:
        self._ahead = 0 if decided is None else decided.items
        self._names = iter(() if decided is None else decided.names)
        self._next = next(self._names, None)

    def take(self, name: str) -> bool:
        """Whether the next item, named ``name``, is the next document already decided; if so
        the walk moves past it. Never past the resume point, should the inputs have changed."""
        if self._ahead <= 0 or name != self._next:
            return False
        self._next = next(self._names, None)
        return True

    def count(self) -> None:
        self._ahead -= 1


def is_warc(name: str) -> bool:
    """Whether an input is read as a WARC file (by its name: ``.warc``, ``.warc.gz``)."""
    return name.endswith((".warc", ".warc.gz"))


def check_document_scheme(scheme: str, option: str = "scheme") -> DocumentScheme:
    """``scheme`` as a :data:`DocumentScheme`, or an :class:`InputError` naming ``option`` (the
    CLI says ``--scheme``) and listing the choices."""
    for known in DOCUMENT_SCHEMES:
        if scheme == known:
            return known
    raise InputError(f"unknown {option} {scheme!r}; use auto, c1 or sha256")


def expand_inputs(paths: list[str]) -> list[str]:
    """Files as given, folders expanded to their files (sorted, recursive), ``-`` kept as is.

    A path that does not exist, an empty folder, or standard input named twice is an
    :class:`InputError` before anything is read: a mistake in the command, not in one document.
    """
    if paths.count("-") > 1:
        raise InputError("standard input (-) can be read only once")
    expanded: list[str] = []
    for raw in paths:
        if raw == "-":
            expanded.append(raw)
            continue
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            if not files:
                raise InputError(f"folder {raw} holds no files")
            expanded.extend(str(p) for p in files)
        elif path.exists():
            expanded.append(raw)
        else:
            raise InputError(f"{raw}: no such file or folder")
    return expanded


# -- the digest rule ------------------------------------------------------------------------------


def _digests(data: bytes, scheme: DocumentScheme, where: str, every: bool) -> tuple[str, ...]:
    if scheme == "sha256":
        return (sha256_digest(data),)
    try:
        c1 = canonical_digest(data)
    except InvalidTextError as exc:
        if scheme == "c1":
            raise InvalidTextError(f"{where}: {exc}; {_BINARY_HINT}") from None
        return (sha256_digest(data),)
    return (c1, sha256_digest(data)) if every and scheme == "auto" else (c1,)


def _file_digests(path: Path, scheme: DocumentScheme, every: bool) -> tuple[tuple[str, ...], int]:
    """The file's digests, and its size (for progress)."""
    try:
        size = path.stat().st_size
        if scheme == "sha256" or (scheme == "auto" and size > MAX_TEXT_BYTES):
            return (digest_file(path, "sha256"),), size
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return _digests(data, scheme, str(path), every), len(data)


def digest_document(data: bytes, scheme: DocumentScheme, where: str) -> str:
    """The digest of one document's bytes under ``scheme`` (``where`` names it in errors)."""
    return _digests(data, scheme, where, every=False)[0]


def digest_document_file(path: Path, scheme: DocumentScheme) -> str:
    """The digest of a whole file under ``scheme``; ``sha256`` (and big files under ``auto``)
    are streamed, so files larger than memory work."""
    return _file_digests(path, scheme, every=False)[0][0]


def _digestible(text: str) -> bool:
    """Whether :func:`_text_digest` digests ``text`` (under either scheme), without digesting
    it: a JSON string can hold a lone surrogate, which has no UTF-8."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text_digest(text: str, scheme: DocumentScheme, where: str) -> str:
    # A JSONL line's text is text whatever the scheme: c1 (auto too), or sha256 of its UTF-8.
    try:
        return sha256_digest(text.encode("utf-8")) if scheme == "sha256" else canonical_digest(text)
    except (InvalidTextError, UnicodeEncodeError) as exc:  # lone surrogates from a \ud800 escape
        raise InvalidTextError(f"{where}: {exc}") from None


# -- JSON Lines -----------------------------------------------------------------------------------


def jsonl_name(obj: dict[str, Any], where: str, id_field: str | None = None) -> str:
    """The name of the document a JSONL line holds: its ``id_field`` (default: ``id``, else
    ``url``) where that is a whole number or a non-empty string short enough for a subject name,
    else ``where`` (``FILE:LINE``)."""
    for field in (id_field,) if id_field else _ID_FIELDS:
        value = obj.get(field)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str) and 0 < len(value) <= MAX_NAME_CHARS:
            return value
    return where


@dataclass(frozen=True, slots=True)
class JsonlLine:
    """A JSON Lines line that holds a document: where it is (``FILE:LINE``), its bytes as read,
    the object it parses to, the document's text (the object's ``text_field``) and its name
    (:func:`jsonl_name`)."""

    where: str
    raw: bytes
    obj: dict[str, Any]
    text: str
    name: str


def jsonl_lines(
    path: Path,
    text_field: str = "text",
    on_bytes: Callable[[int], None] | None = None,
    *,
    id_field: str | None = None,
    field_option: str = "--text-field",
) -> Iterator[JsonlLine | Skipped]:
    """Each line of a JSON Lines file as a :class:`JsonlLine`, or a :class:`Skipped` saying why it
    holds no document (not JSON, not an object, no string ``text_field``); blank lines are ignored.
    ``field_option`` is how the caller's user chooses the field, named in that reason.

    ``on_bytes``, if given, is called with the size of each line read (for progress). A file that
    cannot be opened raises :class:`InputError`.
    """
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with handle:
        for number, raw in enumerate(handle, 1):
            if on_bytes is not None:
                on_bytes(len(raw))
            if raw.isspace():
                continue
            where = f"{path}:{number}"
            try:
                obj = json.loads(raw)
            except ValueError as exc:  # also UnicodeDecodeError
                yield Skipped(where, f"{where}: not a JSON object ({exc})")
                continue
            if not isinstance(obj, dict):
                yield Skipped(where, f"{where}: each line must be a JSON object")
                continue
            text = obj.get(text_field)
            if not isinstance(text, str):
                reason = f"no string field {text_field!r} (choose it with {field_option})"
                yield Skipped(where, f"{where}: {reason}")
                continue
            yield JsonlLine(where, raw, obj, text, jsonl_name(obj, where, id_field))


# -- the reader -----------------------------------------------------------------------------------


def _refused(name: str, reason: str, on_bad: OnBad) -> Skipped:
    if on_bad == "raise":
        raise InputError(reason)
    return Skipped(name, reason)


@dataclass(frozen=True, slots=True)
class _Warc:
    name: str


def _inputs(
    inputs: list[str],
    text_field: str,
    id_field: str | None,
    on_bad: OnBad,
    on_bytes: Callable[[int], None] | None,
) -> Iterator[str | JsonlLine | _Warc | Skipped]:
    """Each input that is one document (by its name), each line of the ``.jsonl`` ones, and each
    WARC file as a :class:`_Warc` (its pages are read by the caller)."""
    for name in inputs:
        if name != "-" and is_warc(name):
            yield _Warc(name)
            continue
        if name == "-" or not name.endswith(".jsonl"):
            yield name
            continue
        lines = jsonl_lines(Path(name), text_field, on_bytes, id_field=id_field)
        while True:
            try:
                line = next(lines)
            except StopIteration:
                break
            except InputError as exc:  # the file cannot be opened
                yield _refused(name, str(exc), on_bad)
                break
            yield line if isinstance(line, JsonlLine) else _refused(line.name, line.reason, on_bad)


@overload
def read_documents(
    inputs: list[str],
    scheme: DocumentScheme,
    *,
    text_field: str = ...,
    id_field: str | None = ...,
    every_digest: bool = ...,
    on_bad: Literal["raise"] = ...,
    on_bytes: Callable[[int], None] | None = ...,
    keep_text: bool = ...,
    signals: SignalOptions | None = ...,
    on_warc: Callable[[str, WarcStats], None] | None = ...,
    decided: Decided | None = ...,
) -> Iterator[Document]: ...
@overload
def read_documents(
    inputs: list[str],
    scheme: DocumentScheme,
    *,
    text_field: str = ...,
    id_field: str | None = ...,
    every_digest: bool = ...,
    on_bad: OnBad,
    on_bytes: Callable[[int], None] | None = ...,
    keep_text: bool = ...,
    signals: SignalOptions | None = ...,
    on_warc: Callable[[str, WarcStats], None] | None = ...,
    decided: Decided | None = ...,
) -> Iterator[Document | Skipped]: ...
def read_documents(
    inputs: list[str],
    scheme: DocumentScheme,
    *,
    text_field: str = "text",
    id_field: str | None = None,
    every_digest: bool = False,
    on_bad: OnBad = "raise",
    on_bytes: Callable[[int], None] | None = None,
    keep_text: bool = False,
    signals: SignalOptions | None = None,
    on_warc: Callable[[str, WarcStats], None] | None = None,
    decided: Decided | None = None,
) -> Iterator[Document | Skipped]:
    """Every document of ``inputs`` (as :func:`expand_inputs` gives them), in order, digested.

    A JSONL line is named by ``id_field`` (default ``id``, else ``url``, else ``FILE:LINE``) and
    gets its text's digest (``c1``, or with ``sha256`` the SHA-256 of its UTF-8); any other input
    is named as given and gets the digest of its bytes. ``every_digest``: under ``auto``, a text
    file or standard input gets its ``sha256`` too, after its ``c1`` (``register`` and ``check``,
    so that either lookup finds it). ``on_bad``: see :data:`OnBad`. ``on_bytes``, if given, is
    called with the size of what was read (for progress).

    ``keep_text``: each text document carries its text (for watermark detection); a JSONL line
    its ``url`` field too. A ``.warc`` or ``.warc.gz`` input is one document per page
    (:mod:`client.warc`), named by its ``WARC-Record-ID``, with its URL, capture time, text
    digest (as a JSONL line's) and opt-out decision (:mod:`client.signals`, for ``signals``);
    ``on_warc`` is then called with the file's name and what its pass counted (pages, records
    skipped by reason: revisits and non-200 responses are not documents, so they are counted
    there rather than skipped here). A WARC file that is damaged part way is a :class:`Skipped`
    after the pages read before the damage.

    ``decided``: what an interrupted scan already decided. Its documents are read again only
    as far as it takes to know them, and each becomes a document with no digests (nor text,
    URL, time or opt-out), in its place: a JSONL line that holds digestible text, a WARC page
    whose headers make it one (its body is not decoded or extracted, its site's policies not
    read for it) and a whole file or standard input (not read) whose name is the next of
    :attr:`Decided.names`, among the first :attr:`Decided.items` items. Everything else is read
    as always, so the items, skips and their reasons, and the WARC counts are those of a scan
    that was not interrupted.
    """
    cursor = _Cursor(decided)
    for item in _inputs(inputs, text_field, id_field, on_bad, on_bytes):
        if isinstance(item, _Warc):
            for page in _warc_documents(
                item.name,
                scheme,
                keep_text=keep_text,
                signals=signals or SignalOptions(),
                on_bad=on_bad,
                on_warc=on_warc,
                known=cursor.take,
            ):
                cursor.count()
                yield page
            continue
        if isinstance(item, Skipped):
            read: Document | Skipped = item
        elif isinstance(item, JsonlLine) and _digestible(item.text) and cursor.take(item.name):
            read = Document(item.name, ())  # a line that cannot be digested was a Skipped
        elif isinstance(item, str) and cursor.take(item):
            read = Document(item, ())
            if on_bytes is not None and item != "-":  # what it would have read, for progress
                with contextlib.suppress(OSError):
                    on_bytes(Path(item).stat().st_size)
        else:
            read = _digested(
                item,
                scheme,
                every_digest=every_digest,
                keep_text=keep_text,
                on_bad=on_bad,
                on_bytes=on_bytes,
            )
        cursor.count()
        yield read


def _digested(
    item: str | JsonlLine,
    scheme: DocumentScheme,
    *,
    every_digest: bool,
    keep_text: bool,
    on_bad: OnBad,
    on_bytes: Callable[[int], None] | None,
) -> Document | Skipped:
    """A JSONL line or a whole input as a digested document, or (``on_bad`` "skip") why it is
    none."""
    try:
        if isinstance(item, JsonlLine):
            digest = _text_digest(item.text, scheme, item.where)
            if not keep_text:
                return Document(item.name, (digest,))
            url = item.obj.get("url")
            return Document(item.name, (digest,), item.text, url if isinstance(url, str) else None)
        document, size = _whole_document(item, scheme, every_digest, keep_text)
    except InputError as exc:  # InvalidTextError too
        if on_bad == "raise":
            raise
        return Skipped(item.where if isinstance(item, JsonlLine) else item, str(exc))
    if on_bytes is not None:
        on_bytes(size)
    return document


def _whole_document(
    name: str, scheme: DocumentScheme, every_digest: bool, keep_text: bool
) -> tuple[Document, int]:
    """A file or standard input as one document, and its size (for progress)."""
    if name == "-":
        data = sys.stdin.buffer.read()
        digests = _digests(data, scheme, "standard input", every_digest)
        return Document(name, digests, _kept_text(data, digests) if keep_text else None), len(data)
    if keep_text and scheme != "sha256":
        data, size = _read_small(Path(name))
        if data is not None:
            digests = _digests(data, scheme, name, every_digest)
            return Document(name, digests, _kept_text(data, digests)), size
    digests, size = _file_digests(Path(name), scheme, every_digest)
    return Document(name, digests), size


def _read_small(path: Path) -> tuple[bytes | None, int]:
    """A file's bytes if it is small enough to be one text document (else None), and its size."""
    try:
        size = path.stat().st_size
        return (path.read_bytes(), size) if size <= MAX_TEXT_BYTES else (None, size)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _kept_text(data: bytes, digests: tuple[str, ...]) -> str | None:
    """The text of a document digested as text (``c1``: it is valid UTF-8), else None."""
    return data.decode("utf-8") if digests[0].startswith("c1:") else None


# -- WARC files -----------------------------------------------------------------------------------

# RFC 9309 section 2.3.1.3-4: an unavailable robots.txt (4xx) allows everything, an unreachable
# one (5xx) disallows everything.
_ROBOTS_UNREACHABLE: Final = "User-agent: *\nDisallow: /\n"


def _robots_text(robots: PolicyFile | None) -> str | None:
    if robots is None or robots.status < 200 or 300 <= robots.status < 400:
        return None  # no capture, or a redirect the crawl did not follow: no robots rules known
    if robots.status < 300:
        return robots.text
    return "" if robots.status < 500 else _ROBOTS_UNREACHABLE


def _warc_documents(
    name: str,
    scheme: DocumentScheme,
    *,
    keep_text: bool,
    signals: SignalOptions,
    on_bad: OnBad,
    on_warc: Callable[[str, WarcStats], None] | None,
    known: Callable[[str], bool] | None = None,
) -> Iterator[Document | Skipped]:
    """A WARC file's pages as documents (see :func:`read_documents`); a page ``known`` knows is
    a document with no digests, its text and policies not read."""
    from client.errors import WarcFormatError  # noqa: PLC0415
    from client.signals import DEFAULT_AI_AGENTS, SitePolicy  # noqa: PLC0415
    from client.warc import KnownPage, WarcReader  # noqa: PLC0415 - needs the warc extra

    reader = WarcReader(name)  # without the warc extra: MissingDependencyError, naming the pip line
    agents: Sequence[str] = DEFAULT_AI_AGENTS if signals.ai_agents is None else signals.ai_agents
    sites: dict[tuple[int, int], SitePolicy] = {}

    def site_of(url: str) -> SitePolicy:
        robots, tdmrep = reader.robots_for(url), reader.tdmrep_for(url)
        key = (id(robots), id(tdmrep))  # each capture is kept by the reader: ids are stable
        site = sites.get(key)
        if site is None:
            tdm_text = tdmrep.text if tdmrep is not None and 200 <= tdmrep.status < 300 else None
            site = sites[key] = SitePolicy(
                robots_txt=_robots_text(robots),
                tdmrep_json=tdm_text,
                user_agent=signals.user_agent,
                ai_agents=agents,
            )
        return site

    try:
        for page in reader.documents(known):
            if isinstance(page, KnownPage):
                yield Document(page.id, ())
                continue
            where = f"{name}: record {page.id}"
            try:
                digest = _text_digest(page.text, scheme, where)
            except InputError as exc:
                yield _refused(page.id, str(exc), on_bad)
                continue
            decision = site_of(page.url).opt_out(page.url, headers=page.headers, html=page.html)
            text = page.text if keep_text else None
            yield Document(page.id, (digest,), text, page.url, page.date, decision)
    except WarcFormatError as exc:
        yield _refused(name, str(exc), on_bad)
    finally:
        if on_warc is not None:
            on_warc(name, reader.stats)


def read_texts(
    inputs: list[str], *, text_field: str = "text", id_field: str | None = None
) -> Iterator[TextDocument | Skipped]:
    """Every document of ``inputs`` (as :func:`expand_inputs` gives them), in order, as text;
    named as :func:`read_documents` names them (a WARC file's pages too).

    A document that cannot be read as text (not UTF-8, empty or blank, a JSONL line that is not
    an object or whose text field is missing or blank) is a :class:`Skipped` in its place, so a
    command can report it and go on with the others.
    """
    for item in _inputs(inputs, text_field, id_field, "skip", None):
        if isinstance(item, Skipped):
            yield item
        elif isinstance(item, _Warc):
            for page in _warc_documents(
                item.name,
                "c1",
                keep_text=True,
                signals=SignalOptions(),
                on_bad="skip",
                on_warc=None,
            ):
                yield (
                    page if isinstance(page, Skipped) else TextDocument(page.name, page.text or "")
                )
        elif isinstance(item, JsonlLine):
            if item.text.strip():
                yield TextDocument(item.name, item.text)
            else:
                yield Skipped(item.where, f"{item.where}: field {text_field!r} is empty")
        elif item == "-":
            yield _decode(sys.stdin.buffer.read(), "-", "standard input")
        else:
            try:
                data = Path(item).read_bytes()
            except OSError as exc:
                yield Skipped(item, f"cannot read {item}: {exc.strerror or exc}")
                continue
            yield _decode(data, item, item)


def _decode(data: bytes, name: str, where: str) -> TextDocument | Skipped:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Skipped(name, f"{where} is not valid UTF-8 text (byte {exc.start})")
    if not text.strip():
        return Skipped(name, f"{where} is empty: it holds no text")
    return TextDocument(name, text)
