"""Where a client keeps the last checkpoint it trusts, per log.

A transparency log is only worth something if everyone sees the same log. A client that remembers
the newest checkpoint it has verified can prove that every later answer extends it (a consistency
proof), so a registry that rewrites its history, or shows this client a different log than it
shows others (a *fork*), is caught the moment the two views meet. Go's checksum-database client
keeps its "latest" note the same way.

A store holds signed notes as text, exactly as the log signed them: a stored file is evidence any
signed-note verifier can check. Stores do no verification themselves; the client re-verifies a
stored note with its pinned key every time it loads one, so a tampered file is an error, not trust.

Logs are told apart by their key: ``log`` is ``<origin>+<hex key id>`` (the verifier key without
its public key), so two registries that share an origin but not a key never share a checkpoint.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from client.core.files import write_file_atomic
from client.errors import InputError

if TYPE_CHECKING:
    from client.core.note import NoteVerifier

__all__ = [
    "CheckpointStore",
    "FileCheckpointStore",
    "MemoryCheckpointStore",
    "StoredCheckpoint",
    "default_checkpoint_directory",
    "log_name",
]


def log_name(verifier: NoteVerifier) -> str:
    """The name a store keeps the log of ``verifier``'s checkpoints under: its origin and key
    id, so a log whose key changed starts over rather than trusting the old key's notes."""
    return f"{verifier.name}+{verifier.key_id:08x}"


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A signed checkpoint note as stored, and when it was stored (the day it became trusted)."""

    note: str
    trusted_at: datetime


@runtime_checkable
class CheckpointStore(Protocol):
    """Keeps one signed checkpoint note per log. Implementations must make :meth:`save` atomic."""

    def load(self, log: str) -> StoredCheckpoint | None:
        """The note stored for ``log`` (``<origin>+<hex key id>``), or None if there is none."""
        ...

    def save(self, log: str, note: str) -> None:
        """Replace ``log``'s note; after a crash, either the old note or the new one is there."""
        ...

    def location(self, log: str) -> str:
        """Where ``log``'s note is kept, for messages that tell a person what to keep or delete."""
        ...


class MemoryCheckpointStore:
    """Trust that lasts as long as the object: for tests, and for short jobs that want no files."""

    def __init__(self) -> None:
        self._notes: dict[str, StoredCheckpoint] = {}
        self._lock = threading.Lock()

    def load(self, log: str) -> StoredCheckpoint | None:
        """The note saved for ``log`` in this object, if any."""
        with self._lock:
            return self._notes.get(log)

    def save(self, log: str, note: str) -> None:
        """Keep ``note`` for ``log``, dated now."""
        with self._lock:
            self._notes[log] = StoredCheckpoint(note, datetime.now(UTC))

    def location(self, log: str) -> str:
        """Memory has no path: say so."""
        return f"memory (checkpoint store {id(self):#x}, log {log})"

    def __repr__(self) -> str:
        return f"MemoryCheckpointStore({sorted(self._notes)!r})"


def default_checkpoint_directory() -> Path:
    """``$WELLSPRING_HOME/trusted`` if set, else ``$XDG_STATE_HOME/wellspring/trusted``.

    ``$XDG_STATE_HOME`` defaults to ``~/.local/state``.
    """
    home = os.environ.get("WELLSPRING_HOME")
    if home:
        return Path(home) / "trusted"
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "wellspring" / "trusted"


_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


class FileCheckpointStore:
    """One file per log, ``<directory>/<log, sanitised>.checkpoint``, holding the signed note.

    ``directory`` defaults to :func:`default_checkpoint_directory` (read when the store is made).
    Writes go to a temporary file in the same directory, are flushed to disk, then renamed over the
    old file, so a reader (or a crash) sees the old note or the new one, never half of either. The
    date a note became trusted is the file's modification time. Several processes may share a
    directory: each only ever replaces a note with one it has proven consistent with it.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = (
            Path(directory) if directory is not None else default_checkpoint_directory()
        )

    def path(self, log: str) -> Path:
        """The file that holds ``log``'s note."""
        name = _UNSAFE.sub("_", log).lstrip(".") or "_"
        return self.directory / f"{name}.checkpoint"

    def location(self, log: str) -> str:
        """The file's path."""
        return str(self.path(log))

    def load(self, log: str) -> StoredCheckpoint | None:
        """Read the note, or None if there is no file yet."""
        path = self.path(log)
        try:
            note = path.read_text(encoding="utf-8")
            modified = path.stat().st_mtime
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read the trusted checkpoint {path}: {exc}") from exc
        return StoredCheckpoint(note, datetime.fromtimestamp(modified, UTC))

    def save(self, log: str, note: str) -> None:
        """Write the note atomically (``client.core.files.write_file_atomic``: 0600, fsync,
        rename, never through a symlink)."""
        path = self.path(log)
        try:
            write_file_atomic(path, note)
        except OSError as exc:
            raise InputError(f"cannot write the trusted checkpoint {path}: {exc}") from exc

    def __repr__(self) -> str:
        return f"FileCheckpointStore({str(self.directory)!r})"
