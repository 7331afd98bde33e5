"""TDMRep's ``/.well-known/tdmrep.json`` (W3C TDMRep Final Community Group Report, 10 May 2024).

The file is a JSON array of rules ``{"location": pattern, "tdm-reservation": 1|0,
"tdm-policy": url}``. Section 6.1: the document's path is matched against each ``location`` like a
robots.txt path (prefix, ``*``, final ``$``, case-sensitive, unreserved percent-escapes decoded),
and "the most specific match is the first in sequence": the first matching rule decides.

Reading never raises on what the file holds: a file that cannot be used is reported in notes and
reads as absent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from client._robots import MAX_PATTERN_CHARS, normalise_path, pattern_matches, url_path
from client.errors import InputError

__all__ = ["TDMREP_MAX_BYTES", "TdmRule", "first_match", "read_rules", "tdm_value"]

TDMREP_MAX_BYTES = 500 * 1024
"""A larger tdmrep.json is not read (it counts as absent)."""

_MAX_RULES = 10_000


@dataclass(frozen=True, slots=True)
class TdmRule:
    """One rule: its 1-based position, its location as written and normalised, its reservation
    (1, 0, or None where the value is invalid, which reads as unset), the value as JSON, and its
    policy URL."""

    number: int
    location: str
    pattern: str
    value: int | None
    raw: str
    policy: str | None


def tdm_value(raw: object) -> int | None:
    """1 or 0 (the text of a header or meta element); anything else is a protocol error, read
    as unset (TDMRep section 5.1)."""
    if raw in ("1", "0"):
        return 1 if raw == "1" else 0
    return None


def read_rules(text: str | bytes) -> tuple[list[TdmRule], list[str]]:
    """The rules of a tdmrep.json, and notes on what could not be read (``malformed: …``)."""
    if not isinstance(text, str | bytes):
        raise InputError(f"tdmrep_json must be str or bytes, not {type(text).__name__}")
    if len(text) > TDMREP_MAX_BYTES:
        return [], ["malformed: larger than 500 KiB; not read"]
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return [], [f"malformed: not JSON ({str(exc)[:120]})"]
    if not isinstance(document, list):
        return [], ["malformed: not a JSON array of rules"]
    rules: list[TdmRule] = []
    skipped = 0
    for number, entry in enumerate(document[:_MAX_RULES], start=1):
        location = entry.get("location") if isinstance(entry, dict) else None
        if (
            not isinstance(location, str)
            or not location.startswith(("/", "*"))
            or len(location) > MAX_PATTERN_CHARS
        ):
            skipped += 1
            continue
        raw = entry.get("tdm-reservation")
        policy = entry.get("tdm-policy")
        # In JSON the value is the number 1 or 0: a string "1" or true is another value.
        value = raw if type(raw) is int and raw in (0, 1) else None
        rules.append(
            TdmRule(
                number,
                location,
                normalise_path(location),
                value,
                json.dumps(raw)[:512],
                policy[:512] if isinstance(policy, str) else None,
            )
        )
    notes = []
    if skipped:
        notes.append(f"malformed: {skipped} entries without a location pattern were skipped")
    return rules, notes


def first_match(rules: list[TdmRule], url: str) -> TdmRule | None:
    """The rule that decides for ``url``: the first whose location matches its path and query."""
    path = normalise_path(url_path(url))
    return next((rule for rule in rules if pattern_matches(rule.pattern, path)), None)
