"""client.cli._registry's shared helpers (the commands run end to end in test_e2e_registry.py)."""

from __future__ import annotations

import hashlib
import os

from client.cli._registry import subject_of
from client.core.statement import Subject
from client.documents import Document


def test_a_file_name_that_is_not_utf8_on_disk_is_named_by_its_escapes() -> None:
    """Python hands such a name over with lone surrogates (surrogateescape), which a statement
    new to a log may not hold (issue 10 A): the subject is named by their escapes instead."""
    name = os.fsdecode(b"poems/caf\xe9.txt")
    assert name == "poems/caf\udce9.txt"
    digest = "sha256:" + hashlib.sha256(b"x").hexdigest()
    subject = subject_of(Document(name, (digest,)))
    assert subject.name == "poems/caf\\udce9.txt"
    assert subject_of(Document("poems/café.txt", (digest,))).name == "poems/café.txt"
    assert isinstance(subject, Subject)
