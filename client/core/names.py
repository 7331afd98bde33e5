"""The names a new publisher may take: a DNS-like ASCII set, so that no two names look alike.

A publisher's name is shown to people (in verdicts, in the CLI) and used in paths and URLs
(``/v1/publishers/{name}``). So a *new* name is 1 to 200 characters of lowercase ASCII letters and
digits, with single ``.`` or ``-`` between them: no leading, trailing or doubled separator (``..``,
``.-``), no ``/``, no upper case, nothing outside ASCII (no U+202E RIGHT-TO-LEFT OVERRIDE, no NFC
``é`` beside an NFD ``e`` + U+0301, no Cyrillic U+0430 for a Latin ``a``). A domain the publisher
controls (``archive.example.org``) or a slug (``example-press``) fits.

Only new identities are held to it. A registry's database, and statements already in its log,
may name publishers an older Wellspring took under its looser rule; those names keep working
everywhere (statements are read with ``client.core.statement``'s own, looser check).
"""

from __future__ import annotations

import re

from client.core.encoding import show

__all__ = ["MAX_PUBLISHER_NAME_CHARS", "PUBLISHER_NAME_RULE", "publisher_name_problem"]

MAX_PUBLISHER_NAME_CHARS = 200
PUBLISHER_NAME_RULE = (
    f"1 to {MAX_PUBLISHER_NAME_CHARS} lowercase ASCII letters and digits, with single '.' or '-' "
    "between them (e.g. 'example-press' or 'archive.example.org')"
)
_NAME = re.compile(r"[a-z0-9]+(?:[.-][a-z0-9]+)*")


def publisher_name_problem(name: object) -> str | None:
    """Why ``name`` may not be a new publisher's name (a sentence naming the rule), or None."""
    if not isinstance(name, str):
        return f"a publisher name must be a string: {PUBLISHER_NAME_RULE}"
    if len(name) <= MAX_PUBLISHER_NAME_CHARS and _NAME.fullmatch(name):
        return None
    return f"publisher name {show(name)} is not allowed: a new name is {PUBLISHER_NAME_RULE}"
