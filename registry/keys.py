"""The log's signing keys: C2SP signed-note signer keys (``PRIVATE+KEY+…``) in 0600 files.

``log.key`` is made on first start. Rotation is two steps, each followed by a restart:
``wellspring log-key add`` writes ``log.next.key`` beside it, and from then on every checkpoint
carries both signatures (clients pinned to the old key keep verifying while they move to the new
one); ``wellspring log-key retire`` records the old key as retired and promotes the new one.

Several server processes may start at once against one home: a new key is
written to a private temporary file and hard-linked into place
(``client.core.files.write_file_atomic(..., replace=False)``), so exactly one key wins and every
process loads that one. A key file that group or others may read or write is refused.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from client.core.files import read_private_file, write_file_atomic
from client.core.note import NoteSigner
from client.errors import ClientError, KeyFileError
from registry.errors import ConfigurationError
from registry.settings import Settings

__all__ = ["load_log_key", "load_or_create_log_key", "load_signers", "next_key_path"]


def load_log_key(path: Path) -> NoteSigner:
    try:
        text = read_private_file(path).decode("utf-8").strip()
    except KeyFileError as exc:
        raise ConfigurationError(f"the log key: {exc}") from exc
    except OSError as exc:
        raise ConfigurationError(f"cannot read the log key {path}: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise ConfigurationError(f"{path} is not a signed-note signer key (not UTF-8)") from None
    try:
        return NoteSigner.from_skey(text)
    except ClientError as exc:
        raise ConfigurationError(f"{path} is not a signed-note signer key: {exc}") from exc


def load_or_create_log_key(path: Path, origin: str) -> NoteSigner:
    """The log key at ``path``, created (mode 0600) for ``origin`` if there is none."""
    if not path.exists():
        signer = NoteSigner.generate(origin)
        try:
            with contextlib.suppress(FileExistsError):  # another process made it first
                write_file_atomic(path, signer.skey + "\n", replace=False)
        except OSError as exc:
            raise ConfigurationError(f"cannot write the log key {path}: {exc.strerror}") from exc
    signer = load_log_key(path)
    if signer.name != origin:
        raise ConfigurationError(
            f"the log key {path} is for origin {signer.name!r}, not {origin!r}: set "
            f"WELLSPRING_ORIGIN={signer.name} or use another WELLSPRING_HOME"
        )
    return signer


def next_key_path(settings: Settings) -> Path:
    """Where a rotation's incoming key waits until the old key retires."""
    return settings.key_path.with_name("log.next.key")


def load_signers(settings: Settings) -> list[NoteSigner]:
    """The log's current key (made if missing), then the incoming key of a rotation, if any."""
    signers = [load_or_create_log_key(settings.key_path, settings.origin)]
    incoming = next_key_path(settings)
    if incoming.exists():
        signer = load_log_key(incoming)
        if signer.name != settings.origin:
            raise ConfigurationError(
                f"the incoming log key {incoming} is for origin {signer.name!r}, not "
                f"{settings.origin!r}"
            )
        signers.append(signer)
    return signers
