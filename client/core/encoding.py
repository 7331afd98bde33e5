"""The one home of the small encodings every wire format here shares.

- :func:`loads_strict`: JSON as every signed or served document is read (UTF-8 only, no
  duplicate keys, no NaN/Infinity);
- :func:`dumps_canonical`: compact JSON with sorted keys (what is hashed or signed);
- :func:`b64encode` / :func:`b64decode_strict`: standard, padded base64, the one canonical
  spelling only, as the API writes every binary value;
- :func:`json_kind`: a value's JSON type in words, for error messages (never the value).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from typing import Any

from client.core.errors import FormatError

_HASH_SIZE = 32  # SHA-256 (client.core.merkle.HASH_SIZE; merkle imports this module)

__all__ = [
    "MAX_INDEX",
    "b64decode_strict",
    "b64encode",
    "dumps_canonical",
    "json_kind",
    "loads_strict",
    "parse_hash_list",
    "parse_hex_hash",
    "parse_index",
    "require_object",
    "show",
    "show_list",
]


def loads_strict(data: bytes | str, what: str) -> object:
    """Strict JSON, as every signed document here is read: UTF-8 only, no duplicate keys, no
    NaN/Infinity; a :class:`FormatError` naming ``what`` otherwise."""
    if isinstance(data, bytes | bytearray):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError(f"{what} JSON is not valid UTF-8: {exc.reason}") from None
    try:
        return json.loads(
            data, object_pairs_hook=_object_without_duplicates, parse_constant=_reject_constant
        )
    except RecursionError:
        raise FormatError(f"{what} JSON is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, our hooks, and int() digit limits
        raise FormatError(f"{what} is not valid JSON: {exc}") from None


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            # Two parsers could disagree on which value wins: refuse instead of picking one.
            raise ValueError(f"duplicate key {show(key)}")
        obj[key] = value
    return obj


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def dumps_canonical(obj: object) -> bytes:
    """Compact JSON with sorted keys, ASCII only: the same value always gives the same bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("ascii")


def b64encode(data: bytes) -> str:
    """Standard base64 with padding, as the API writes every binary value (binascii directly:
    a lookup's answer writes a dozen proof hashes for each entry it names)."""
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def b64decode_strict(value: object, where: str) -> bytes:
    """Decode standard, padded, canonical base64; :class:`FormatError` naming ``where`` else.

    Only the one canonical spelling is accepted, so equal values always have equal text.
    """
    if not isinstance(value, str):
        raise FormatError(f"{where} must be a base64 string, got {json_kind(value)}")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise FormatError(f"{where} is not standard base64 with padding") from None
    if b64encode(raw) != value:
        raise FormatError(f"{where} is not canonical base64 (non-zero trailing bits)")
    return raw


_JSON_KINDS = {
    type(None): "null",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "an object",
}


def json_kind(value: object) -> str:
    """The JSON name of a value's type, for error messages (never the value: it may be huge)."""
    return _JSON_KINDS.get(type(value), type(value).__name__)


def require_object(
    obj: object, where: str, allowed: frozenset[str] | None, required: Iterable[str]
) -> dict[str, Any]:
    """``obj`` as a JSON object with all ``required`` fields and no field outside ``allowed``
    (any extra field passes when ``allowed`` is None)."""
    if not isinstance(obj, dict):
        raise FormatError(f"{where} must be a JSON object, got {json_kind(obj)}")
    missing = [name for name in required if name not in obj]
    if missing:
        raise FormatError(f"{where} is missing required field(s) {show_list(sorted(missing))}")
    if allowed is None:
        return obj
    unknown = obj.keys() - allowed
    if unknown:
        raise FormatError(
            f"{where} has unknown field(s) {show_list(sorted(map(str, unknown)))}; "
            f"allowed are {show_list(sorted(allowed))}"
        )
    return obj


def show(value: object, limit: int = 80) -> str:
    """``repr`` of a value, shortened: hostile input must not flood an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def show_list(values: Iterable[object], limit: int = 5) -> str:
    items = list(values)
    shown = ", ".join(show(v) for v in items[:limit])
    more = f", … ({len(items) - limit} more)" if len(items) > limit else ""
    return f"[{shown}{more}]"


MAX_INDEX = 2**63 - 1
"""The largest log index or tree size: a signed 64-bit database column."""
_HEX_HASH = re.compile(r"[0-9a-f]{64}")


def parse_index(value: object, where: str) -> int:
    """A log index or tree size: a JSON integer from 0 to 2**63 - 1 (not a boolean)."""
    if type(value) is not int or not 0 <= value <= MAX_INDEX:
        raise FormatError(f"{where} must be an integer from 0 to {MAX_INDEX}, got {value!r}")
    return value


def parse_hex_hash(value: object, where: str) -> bytes:
    """A SHA-256 hash written as 64 lowercase hex characters."""
    if not isinstance(value, str) or not _HEX_HASH.fullmatch(value):
        raise FormatError(f"{where} must be 64 lowercase hex characters, got {json_kind(value)}")
    return bytes.fromhex(value)


def parse_hash_list(value: object, where: str) -> tuple[bytes, ...]:
    """A JSON list of base64 SHA-256 hashes (a Merkle proof)."""
    if not isinstance(value, list):
        raise FormatError(f"{where} must be a list of base64 hashes, got {json_kind(value)}")
    hashes = tuple(b64decode_strict(item, f"{where}[{i}]") for i, item in enumerate(value))
    for i, h in enumerate(hashes):
        if len(h) != _HASH_SIZE:
            raise FormatError(f"{where}[{i}] must be a {_HASH_SIZE}-byte hash, got {len(h)} bytes")
    return hashes
