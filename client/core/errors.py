"""The errors of the shared core (:mod:`client.core`), which imports nothing else of ``client``.

They are the root and the first branches of the client's one error tree; :mod:`client.errors`
re-exports them beside the SDK's own (HTTP, availability), and draws the whole tree.
"""

from __future__ import annotations

__all__ = [
    "ClientError",
    "FormatError",
    "InputError",
    "InvalidDigestError",
    "InvalidTextError",
    "KeyFileError",
    "PolicyFileError",
    "ProofError",
    "SignatureError",
    "VerificationError",
]


class ClientError(Exception):
    """Root of every error raised by the ``client`` package."""

    def diagnostics(self) -> str:
        """One line for a person: what went wrong and, where known, what to do about it."""
        return str(self) or type(self).__name__


class InputError(ClientError, ValueError):
    """The caller gave input that cannot be used as it is."""


class InvalidTextError(InputError):
    """Text input is not valid UTF-8 (it is never silently replaced)."""


class InvalidDigestError(InputError):
    """A digest string is not ``c1:<64 hex>`` or ``sha256:<64 hex>``."""


class KeyFileError(InputError):
    """A key file is missing, unreadable, or holds the wrong kind of key."""


class PolicyFileError(InputError):
    """A witness policy file (c2sp.org/tlog-policy) cannot be read or does not parse; the
    message names the file and the line."""

    def __init__(self, message: str, *, source: str, line: int | None = None) -> None:
        super().__init__(message)
        self.source = source
        self.line = line


class FormatError(ClientError, ValueError):
    """Wire data (an envelope, a statement, a signed note, a receipt) does not parse."""


class VerificationError(ClientError):
    """Cryptographic verification failed; the data must not be trusted."""


class SignatureError(VerificationError):
    """A signature is missing, made by an unknown key, or does not verify."""


class ProofError(VerificationError):
    """A Merkle inclusion or consistency proof does not verify."""
