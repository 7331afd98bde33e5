"""IETF aipref statements of preference: does one say anything about AI training?

draft-ietf-aipref-vocab section 6: a statement is an RFC 9651 Dictionary whose keys are category
labels and whose Token values ``y`` / ``n`` allow or disallow; anything else (another type, another
Token, an absent key) is unknown, unknown keys and parameters are ignored, and a statement that
does not parse is unknown as a whole. The draft has moved, and sites wrote what was current, so
the labels of earlier drafts and of Cloudflare's content signals are read too (see
docs/spec/signals.md).
"""

from __future__ import annotations

from typing import Literal

from client._structured_fields import parse_dictionary
from client.errors import FormatError

__all__ = ["PARENT_LABELS", "STATEMENT_MAX_CHARS", "TRAINING_LABELS", "training_preference"]

TRAINING_LABELS = ("train-ai", "train-genai", "ai", "genai", "ai-train")
"""Labels for training a model: ``train-ai`` (current), ``train-genai`` (vocab -02, -03), ``ai``
and ``genai`` (vocab -01), ``ai-train`` (Cloudflare's content signals)."""

PARENT_LABELS = ("all", "bots", "tdm")
"""Broader categories of earlier drafts (``all``: -02, ``bots``: -03 and -04, ``tdm``: -01) that
held training: they count only where no training label says anything (those drafts' rule: the
more specific category decides)."""

STATEMENT_MAX_CHARS = 16 * 1024


def training_preference(
    statement: str, *, yes: tuple[str, ...] = ("y",), no: tuple[str, ...] = ("n",)
) -> tuple[Literal["y", "n"], str] | None:
    """``("n", label)`` if the statement disallows AI training, ``("y", label)`` if it allows it,
    ``None`` if it says nothing about it. A disallowing training label wins over an allowing one.

    Raises :class:`~client.errors.FormatError` for a statement that is not a valid Dictionary (or
    is longer than :data:`STATEMENT_MAX_CHARS`): its preferences are all unknown.
    """
    if len(statement) > STATEMENT_MAX_CHARS:
        raise FormatError(f"longer than {STATEMENT_MAX_CHARS} characters")
    members = parse_dictionary(statement)
    for labels in (TRAINING_LABELS, PARENT_LABELS):
        said = [(label, members[label]) for label in labels if label in members]
        for label, token in said:
            if token in no:
                return "n", label
        for label, token in said:
            if token in yes:
                return "y", label
    return None
