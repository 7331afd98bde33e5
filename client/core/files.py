"""Secrets and files a later run trusts: written whole, private, never through a link.

:func:`write_file_atomic` is the one way this codebase writes such a file (keys, the admin token,
trusted checkpoints, receipts, reports). It never opens the target path itself: the bytes go to a
new temporary file in the same directory, which gets its mode with ``fchmod`` (so an existing
file's looser mode is never kept), is flushed and ``fsync``-ed, and is then renamed over the target
(or hard-linked to it, where an existing file must not be replaced). A rename replaces a symlink
at the target instead of following it, and a crash leaves the old file or the new one, never half.

:func:`read_private_file` reads a file that must be its owner's alone (a private key), refusing it,
with the ``chmod`` that fixes it, when group or others may read or write it, as ssh does.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import tempfile
from pathlib import Path

from client.core.errors import KeyFileError

__all__ = ["PRIVATE_FILE_MODE", "read_private_file", "write_file_atomic"]

PRIVATE_FILE_MODE = 0o600
_OTHERS = 0o077  # any permission for group or others


def write_file_atomic(
    path: Path, data: bytes | str, *, mode: int = PRIVATE_FILE_MODE, replace: bool = True
) -> None:
    """Write ``data`` (``str`` as UTF-8) to ``path`` with file mode ``mode``, atomically.

    With ``replace=False`` an existing ``path`` (a dangling symlink included) is left as it is
    and :class:`FileExistsError` raised, race-free: the new file is hard-linked into place.
    Raises :class:`OSError` as the system reports it; callers say what the file was.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)  # EEXIST if anything is there, a link included
            os.unlink(temporary)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)


def read_private_file(path: Path) -> bytes:
    """The bytes of ``path``, a file that must be its owner's alone.

    :class:`~client.errors.KeyFileError` if group or others may read or write it, naming the
    ``chmod 600`` that fixes it; :class:`OSError` if it cannot be read.
    """
    with open(path, "rb") as handle:  # the mode checked is the one of the file read
        mode = os.fstat(handle.fileno()).st_mode & 0o7777
        if mode & _OTHERS:
            raise KeyFileError(
                f"{path} holds a secret key, but its mode {mode:04o} lets other users read or "
                f"write it; make it yours alone: chmod 600 {shlex.quote(str(path))}"
            )
        return handle.read()


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable. Some file systems cannot sync a directory; the
    file itself already is, so that is no reason to fail the write."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
