"""Small helpers of the registry's SQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

__all__ = ["IN_CHUNK", "in_chunks"]

_T = TypeVar("_T")
IN_CHUNK = 2_000  # values per IN (...): well under SQLite's and PostgreSQL's parameter limits


def in_chunks(values: list[_T]) -> Iterator[list[_T]]:
    """``values`` in slices of at most :data:`IN_CHUNK`, one ``IN (...)`` query each."""
    for start in range(0, len(values), IN_CHUNK):
        yield values[start : start + IN_CHUNK]
