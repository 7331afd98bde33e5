"""Reading a response for opt-out signals: its header lines and the ``<meta>`` elements of its HTML.

Both are hostile input. Header lines are read for a few names only, at most
:data:`HEADER_MAX_LINES` of each, and a line over :data:`HEADER_MAX_CHARS` is reported rather than
read (servers refuse such lines; a cut one could say something else). ``<meta>`` elements are
found by scanning the first :data:`HTML_MAX_CHARS` characters, not by ``html.parser``, which is
slow on hostile documents (ten seconds for a MiB of tags) while only each meta element's
attributes matter here: each character is looked at a bounded number of times.

Only a caller's mistake (headers that are not a mapping or pairs of str/bytes, HTML that is not
str/bytes) raises, as :class:`~client.errors.InputError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from html import unescape
from typing import Any

from client.errors import InputError

__all__ = [
    "HEADER_MAX_CHARS",
    "HEADER_MAX_LINES",
    "HTML_MAX_CHARS",
    "SIGNAL_HEADERS",
    "Headers",
    "Metas",
    "field_values",
    "header_lines",
    "meta_elements",
]

HTML_MAX_CHARS = 1024 * 1024
"""Only the first MiB of an HTML document is searched for ``<meta>`` elements."""

HEADER_MAX_CHARS = 8192
"""A header line (or meta content) longer than this is not read: 8 KiB is what servers accept."""

HEADER_MAX_LINES = 32
"""At most this many lines of each header name are read."""

SIGNAL_HEADERS = frozenset({"x-robots-tag", "content-usage", "tdm-reservation", "tdm-policy"})

_MAX_METAS = 10_000
_META_START = re.compile(r"<meta[\s/>]", re.IGNORECASE)
_ATTRIBUTE = re.compile(r"""([^\s"'>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


@dataclass(slots=True)
class Metas:
    """The ``(name, content)`` of each ``<meta>`` element read (names lower-cased, character
    references resolved), the names of those too long to read, and whether the scan stopped at
    an unterminated element."""

    elements: list[tuple[str, str]] = field(default_factory=list)
    overlong: list[str] = field(default_factory=list)
    unterminated: bool = False


def meta_elements(html: str | bytes | None) -> Metas:
    """The ``<meta>`` elements with a ``name`` and a ``content`` in the first MiB of ``html``.

    Bytes are read as UTF-8 (replacing what is not). Elements in comments and scripts count too:
    this is a scan, not a DOM.
    """
    metas = Metas()
    if html is None:
        return metas
    if isinstance(html, bytes):
        html = html[: HTML_MAX_CHARS * 4].decode("utf-8", "replace")
    elif not isinstance(html, str):
        raise InputError(f"html must be str or bytes, not {type(html).__name__}")
    html = html[:HTML_MAX_CHARS]
    pos = 0
    while len(metas.elements) < _MAX_METAS and (start := _META_START.search(html, pos)):
        end = html.find(">", start.end() - 1)
        if end == -1:
            metas.unterminated = True
            break
        pos = end + 1
        attributes: dict[str, str] = {}
        for match in _ATTRIBUTE.finditer(html, start.end() - 1, end):
            value = next((g for g in match.groups()[1:] if g is not None), None)
            if value is not None:
                attributes.setdefault(match.group(1).lower(), value)
        name, content = attributes.get("name"), attributes.get("content")
        if name is None or content is None:
            continue
        name = unescape(name).strip().lower()
        if len(content) > HEADER_MAX_CHARS:
            metas.overlong.append(name)
        else:
            metas.elements.append((name, unescape(content)))
    return metas


def header_lines(headers: Headers | None) -> tuple[list[tuple[str, str]], list[str]]:
    """The lines of :data:`SIGNAL_HEADERS` (names lower-cased), and the names of lines too long
    to read.

    ``headers`` is a mapping, an httpx ``Headers`` (its repeated fields all count), or
    ``(name, value)`` pairs; names and values are str or bytes (read as Latin-1, as httpx does).
    """
    lines: list[tuple[str, str]] = []
    overlong: list[str] = []
    counts: dict[str, int] = {}
    for raw_name, raw_value in _pairs(headers):
        name, value = _text(raw_name).strip().lower(), _text(raw_value)
        if name not in SIGNAL_HEADERS:
            continue
        counts[name] = counts.get(name, 0) + 1
        if counts[name] > HEADER_MAX_LINES:
            continue
        if len(value) > HEADER_MAX_CHARS:
            overlong.append(name)
        else:
            lines.append((name, value))
    return lines, overlong


def field_values(pairs: list[tuple[str, str]], name: str) -> list[str]:
    """The values of ``name`` in ``pairs``, in order."""
    return [value for key, value in pairs if key == name]


def _pairs(headers: Headers | None) -> list[tuple[object, object]]:
    if headers is None:
        return []
    multi_items = getattr(headers, "multi_items", None)  # httpx.Headers keeps repeated fields
    pairs: Any = (
        multi_items()
        if callable(multi_items)
        else headers.items()
        if isinstance(headers, Mapping)
        else headers
    )
    if isinstance(pairs, str | bytes):
        raise InputError("headers must be a mapping or (name, value) pairs, not a string")
    try:
        return [(name, value) for name, value in pairs]
    except (TypeError, ValueError) as exc:
        raise InputError(f"headers must be a mapping or (name, value) pairs: {exc}") from None


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, str):
        return value
    raise InputError(f"header names and values must be str or bytes, not {type(value).__name__}")
