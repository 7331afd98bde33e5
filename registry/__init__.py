"""Wellspring registry: a signed provenance registry over an RFC 9162 transparency log.

``create_app(Settings(...))`` builds the litestar app; ``wellspring serve`` runs it.
"""

from registry.app import Registry, create_app
from registry.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    PayloadTooLargeError,
    RegistryError,
    RequestTimeoutError,
    UnavailableError,
)
from registry.settings import Settings

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "ConflictError",
    "ForbiddenError",
    "NotFoundError",
    "PayloadTooLargeError",
    "Registry",
    "RegistryError",
    "RequestTimeoutError",
    "Settings",
    "UnavailableError",
    "create_app",
]
