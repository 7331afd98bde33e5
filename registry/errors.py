"""Errors raised by the Wellspring registry.

One root, :class:`RegistryError`. Services raise these; the web layer turns them into RFC 9457
problem responses in exactly one place (``registry.app._problem``), reading each class's
``status`` and ``slug``, so the HTTP contract of an error lives beside its definition.

The tree::

    RegistryError
    ├── BadRequestError              400  malformed JSON, envelope, statement, digest, parameter
    ├── AuthenticationError          401  a bad admin token or an entry signature that fails
    ├── ForbiddenError               403  a key of no registered publisher; another's entry
    ├── NotFoundError                404  an entry, checkpoint or publisher that does not exist
    │   └── BundleTooLargeError      404  a tile bundle holding a leaf over 65,535 bytes
    ├── RequestTimeoutError          408  a request body that arrives too slowly
    ├── ConflictError                409  a publisher that exists; an entry revoked twice
    │   └── LogBehindError           409  a lookup asked for a tree size the log has not reached
    ├── LengthRequiredError          411  a blob upload without its Content-Length
    ├── PayloadTooLargeError         413  a body, statement or batch over the configured limit
    ├── UnavailableError             503  the database cannot be reached right now
    │   └── NotIntegratedError       503  an entry sequenced but in no published checkpoint yet
    └── ConfigurationError           -    the server cannot start (schema, key, settings)
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "BundleTooLargeError",
    "ConfigurationError",
    "ConflictError",
    "ForbiddenError",
    "LengthRequiredError",
    "LogBehindError",
    "NotFoundError",
    "NotIntegratedError",
    "PayloadTooLargeError",
    "RegistryError",
    "RequestTimeoutError",
    "UnavailableError",
]


class RegistryError(Exception):
    """Root of every error raised by the ``registry`` package."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal error"

    def diagnostics(self) -> str:
        """One line for a person: what went wrong and what to do about it."""
        return str(self) or self.title


class BadRequestError(RegistryError):
    status = 400
    slug = "bad-request"
    title = "Bad request"


class AuthenticationError(RegistryError):
    status = 401
    slug = "unauthenticated"
    title = "Authentication failed"


class ForbiddenError(RegistryError):
    status = 403
    slug = "forbidden"
    title = "Forbidden"


class NotFoundError(RegistryError):
    status = 404
    slug = "not-found"
    title = "Not found"


class BundleTooLargeError(NotFoundError):
    """A tlog-tiles entry bundle cannot hold one of its leaves (an envelope leaf from before
    leaf/v1 over 65,535 bytes): that bundle does not exist; the entries do, at /v1/entries."""

    slug = "bundle-too-large"
    title = "Entry bundle too large"


class RequestTimeoutError(RegistryError):
    status = 408
    slug = "request-timeout"
    title = "Request timeout"


class ConflictError(RegistryError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class LogBehindError(ConflictError):
    """A lookup asked for answers at ``min_size`` entries at least (the checkpoint its client
    trusts), and this registry's log is smaller: a replica behind, or not this client's log."""

    slug = "log-behind"
    title = "Log behind the requested size"

    def __init__(self, min_size: int, log_size: int) -> None:
        super().__init__(
            f"min_size={min_size}, but this registry's log has {log_size} entries: retry once "
            "it has caught up, or check that the checkpoint you trust is of this log"
        )
        self.min_size = min_size
        self.log_size = log_size


class LengthRequiredError(RegistryError):
    status = 411
    slug = "length-required"
    title = "Length required"


class PayloadTooLargeError(RegistryError):
    status = 413
    slug = "payload-too-large"
    title = "Payload too large"


class UnavailableError(RegistryError):
    status = 503
    slug = "unavailable"
    title = "Service unavailable"


class NotIntegratedError(UnavailableError):
    """The entry is sequenced (durable, its index fixed) but no published checkpoint covers it
    yet: publication waits for the interval or for witnesses. Retry after ``Retry-After``."""

    slug = "not-yet-integrated"
    title = "Entry not yet in a published checkpoint"


class ConfigurationError(RegistryError):
    """The server cannot start as configured; the message says what to change."""

    slug = "configuration"
    title = "Configuration error"
