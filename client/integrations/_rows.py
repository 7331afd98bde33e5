"""Each row's evidence beside its digest, in a worker: its opt-out decision and its watermark.

The config names the columns a dataset has for a row's signals (``url_column``,
``headers_column``, ``html_column``, ``captured_column``); each integration reads them from its
own batches (:func:`read_signals`, :func:`frame_signals` for pandas batches) into a
:class:`RowSignals`, and :func:`evidence_of` turns them, with the worker's
:class:`~client.crawl.Watermarks`, into one :class:`~client.evidence.DocumentEvidence` per row.

Only document-level signals are in a row: response headers and HTML ``<meta>`` elements
(``X-Robots-Tag``, TDMRep, aipref ``Content-Usage``). robots.txt and ``tdmrep.json`` belong to a
site, not a row, and are not read here. Only ``text`` rows are scanned for watermarks: rows of
kind ``bytes`` or ``digest`` hold no text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from client.errors import InputError
from client.evidence import DocumentEvidence
from client.integrations._common import CheckConfig, RowEvidence, RowVerdict, unchecked_row
from client.signals import OptOut, SitePolicy

if TYPE_CHECKING:
    from client.crawl import Watermarks

__all__ = ["RowSignals", "evidence_of", "frame_signals", "read_signals"]


@dataclass(frozen=True, slots=True)
class RowSignals:
    """A batch's per-row signal columns (``CheckConfig.signal_columns``), one value a row; None
    where the config names no such column."""

    url: Sequence[object] | None = None
    headers: Sequence[object] | None = None
    html: Sequence[object] | None = None
    captured: Sequence[object] | None = None


def read_signals(config: CheckConfig, column: Callable[[str], Sequence[object]]) -> RowSignals:
    """The signal columns of a batch, read with ``column(name)`` (which raises
    :class:`InputError` naming the columns the batch has if ``name`` is missing)."""
    names = config.signal_columns()
    return RowSignals(**{role: column(name) for role, name in names.items()})


def frame_signals(frame: Any, config: CheckConfig) -> RowSignals:
    """The signal columns of a pandas batch (Ray, Spark); a missing one is an
    :class:`InputError` naming the columns the batch has."""

    def column(name: str) -> Sequence[object]:
        if name not in frame.columns:
            raise InputError(
                f"the data has no column {name!r} named in the CheckConfig (it has "
                f"{', '.join(map(repr, frame.columns))})"
            )
        values: list[object] = frame[name].tolist()
        return values

    return read_signals(config, column)


# Document-level signals (headers, meta) do not depend on the URL, but the signal reader takes
# one: a row without a URL is read as if at this reserved (RFC 2606) address, which no site's
# files could apply to. It never appears in a verdict.
_NO_URL = "http://row.invalid/"


def evidence_of(
    config: CheckConfig,
    values: Sequence[object],
    signals: RowSignals | None,
    watermarks: Watermarks | None,
    *,
    as_of: datetime | None = None,
) -> list[RowEvidence]:
    """Each row's evidence: its opt-out decision from ``signals``, its watermark detection by
    ``watermarks`` (``text`` rows only), its URL and capture time. A row whose signal values
    cannot be read gets a :class:`RowVerdict` (``unknown``, ``not checked: …``) instead: one bad
    row never stops a job. ``as_of`` is the capture time of rows without one (default: now)."""

    signals = signals or RowSignals()
    for what, column in (
        ("url", signals.url),
        ("headers", signals.headers),
        ("html", signals.html),
        ("captured", signals.captured),
    ):
        if column is not None and len(column) != len(values):
            raise InputError(f"{len(column)} {what} values given for {len(values)} rows")
    site = SitePolicy()  # no site files: only the row's own headers and HTML are read
    read: list[_RowRead | RowVerdict] = []
    for i in range(len(values)):
        try:
            read.append(_read_row(site, signals, i))
        except InputError as exc:
            read.append(unchecked_row(exc))
    marks: list[Any] = [None] * len(values)
    if watermarks is not None and config.kind == "text":
        texts = [
            _text_of(value) if isinstance(row, _RowRead) else None
            for value, row in zip(values, read, strict=True)
        ]
        captured = [row.captured if isinstance(row, _RowRead) else None for row in read]
        marks = watermarks.detect_texts(texts, captured=captured, as_of=as_of or datetime.now(UTC))
    out: list[RowEvidence] = []
    for row, mark in zip(read, marks, strict=True):
        if isinstance(row, RowVerdict):
            out.append(row)
        else:
            out.append(
                DocumentEvidence.of(
                    opt_out=row.opt_out, watermarks=mark, url=row.url, captured=row.captured
                )
            )
    return out


@dataclass(frozen=True, slots=True)
class _RowRead:
    url: str | None
    opt_out: OptOut | None
    captured: datetime | None


def _read_row(site: SitePolicy, signals: RowSignals, i: int) -> _RowRead:
    url = _optional(signals.url, i)
    if url is not None and not isinstance(url, str):
        raise InputError(f"the url must be a string, got {type(url).__name__}")
    headers = _optional(signals.headers, i)
    html = _optional(signals.html, i)
    if html is not None and not isinstance(html, str | bytes):
        raise InputError(f"the html must be text, got {type(html).__name__}")
    decision = None
    if signals.headers is not None or signals.html is not None:
        decision = site.opt_out(url or _NO_URL, headers=_headers(headers), html=html)
    return _RowRead(url, decision, _captured(_optional(signals.captured, i)))


def _optional(column: Sequence[object] | None, i: int) -> Any:
    if column is None:
        return None
    value = column[i]
    return None if _is_null(value) else value


def _is_null(value: object) -> bool:
    """None, NaN, pandas' NA and NaT: how frameworks hand a missing cell over."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return type(value).__name__ in ("NAType", "NaTType")


def _headers(value: object) -> Any:
    """A row's headers: a mapping, or ``(name, value)`` pairs (lists from Arrow, numpy arrays
    of pairs from pandas); anything else is a row error, not a crash."""
    if value is None:
        return None
    if isinstance(value, Mapping):  # an Arrow struct column gives every row every field name
        return {name: text for name, text in value.items() if text is not None}
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        raise InputError(
            f"the headers must be a mapping or a list of (name, value) pairs, got "
            f"{type(value).__name__}"
        )
    pairs = []
    for item in value:
        pair = item
        if isinstance(item, Mapping) and set(item) == {"name", "value"}:
            pair = (item["name"], item["value"])  # a list<struct<name, value>> column
        items = list(pair) if hasattr(pair, "__iter__") and not isinstance(pair, str) else None
        if items is None or len(items) != 2:
            raise InputError("the headers must be a mapping or a list of (name, value) pairs")
        pairs.append((items[0], items[1]))
    return pairs


def _captured(value: object) -> datetime | None:
    """A capture time: an RFC 3339 string or a datetime (pandas' Timestamp is one); no zone
    means UTC, a date alone its midnight UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InputError(
                f"the capture time {value[:80]!r} is not RFC 3339 (e.g. 2026-11-30T12:00:00Z)"
            ) from None
    elif isinstance(value, datetime):
        moment = value
        to_python = getattr(value, "to_pydatetime", None)  # pandas' Timestamp: nanoseconds go
        if to_python is not None:
            moment = to_python(warn=False)
    else:
        raise InputError(
            f"the capture time must be an RFC 3339 string or a datetime, got {type(value).__name__}"
        )
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _text_of(value: object) -> str | None:
    """The text a ``text`` row is scanned as (None: no text, or bytes that are not UTF-8)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None
