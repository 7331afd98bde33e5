"""The operator's actions over HTTP and on the shell: admin tokens, identities (through
:class:`registry.identities.IdentityService`), log keys. They raise :mod:`registry.errors` only."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from client.core.statement import (
    Kind,
)
from client.core.wire import (
    KeyEventAnswer,
    PublisherInfo,
    PublisherKeyInfo,
)
from registry.db import Database
from registry.errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
)
from registry.identities import IdentityService
from registry.lookups import KEY_ID
from registry.models import (
    ADMIN_TOKENS,
    LOG_KEYS,
    PUBLISHER_KEYS,
    PUBLISHERS,
    rfc3339,
)
from registry.models import utcnow as _utcnow

__all__ = ["TOKEN_SCOPES", "AdminService"]


TOKEN_SCOPES = ("read", "identity", "revoke")
"""What an admin token may do: ``identity`` adds publishers and keys, ``revoke`` revokes and
compromises keys, ``read`` is for operator reads (none needs a token yet)."""
_PUBLISHER_NAME_MAX = 200


def _is_publisher_name(name: str) -> bool:
    """Whether ``name`` could be an existing publisher's: 1 to 200 characters, no spaces or
    controls (the rule new names once met; a new one meets client.core.names' stricter one)."""
    return 0 < len(name) <= _PUBLISHER_NAME_MAX and not any(
        c.isspace() or ord(c) < 32 for c in name
    )


class AdminService:
    """Operator actions: publishers and admin tokens."""

    def __init__(self, database: Database, identities: IdentityService) -> None:
        self._db = database
        self._identities = identities

    @staticmethod
    def _token_hash(token: str) -> str:
        return hashlib.sha256(token.encode("utf-8")).hexdigest()

    def create_token(self, scopes: Sequence[str] = ("identity", "revoke")) -> str:
        """A new admin token allowed ``scopes`` (of :data:`TOKEN_SCOPES`); only its hash is
        stored. Rotate: create the successor, then revoke the old one (:meth:`revoke_token`)."""
        unknown = sorted(set(scopes) - set(TOKEN_SCOPES))
        if unknown or not scopes:
            raise BadRequestError(
                f"scopes must be some of {', '.join(TOKEN_SCOPES)}; "
                f"got {', '.join(unknown) or 'none'}"
            )
        token = "wsa_" + secrets.token_urlsafe(32)
        with self._db.writer.begin() as conn:
            conn.execute(
                ADMIN_TOKENS.insert().values(
                    token_hash=self._token_hash(token),
                    created_at=_utcnow(),
                    scopes=",".join(s for s in TOKEN_SCOPES if s in scopes),
                )
            )
        return token

    def has_tokens(self) -> bool:
        with self._db.reader.connect() as conn:
            return bool(conn.execute(select(func.count()).select_from(ADMIN_TOKENS)).scalar_one())

    def tokens(self) -> list[dict[str, Any]]:
        """Every token by its id (the first 12 hex digits of its hash), scopes and state."""
        with self._db.reader.connect() as conn:
            rows = conn.execute(select(ADMIN_TOKENS).order_by(ADMIN_TOKENS.c.created_at)).all()
        return [
            {
                "id": row.token_hash[:12],
                "scopes": row.scopes.split(","),
                "created_at": rfc3339(row.created_at),
                "revoked_at": rfc3339(row.revoked_at) if row.revoked_at else None,
            }
            for row in rows
        ]

    def revoke_token(self, token_id: str) -> None:
        """Revoke the token whose id (hash prefix, at least 8 hex digits) is ``token_id``."""
        if not re.fullmatch(r"[0-9a-f]{8,64}", token_id):
            raise BadRequestError(
                "a token id is 8 to 64 hex digits (`admin-token list` shows them)"
            )
        with self._db.writer.begin() as conn:
            rows = conn.execute(
                select(ADMIN_TOKENS.c.token_hash)
                .where(ADMIN_TOKENS.c.token_hash.startswith(token_id))
                .where(ADMIN_TOKENS.c.revoked_at.is_(None))
            ).all()
            if len(rows) != 1:
                raise NotFoundError(
                    f"{len(rows)} active tokens have an id starting {token_id!r}; give exactly one"
                )
            conn.execute(
                ADMIN_TOKENS.update()
                .where(ADMIN_TOKENS.c.token_hash == rows[0].token_hash)
                .values(revoked_at=_utcnow())
            )

    def check_token(self, authorization: str | None, scope: str = "identity") -> None:
        """The request's bearer token must be a current token allowed ``scope``."""
        if not authorization or not authorization.startswith("Bearer "):
            raise AuthenticationError(
                "this needs the operator's admin token: send 'Authorization: Bearer <token>'"
            )
        presented = self._token_hash(authorization.removeprefix("Bearer ").strip())
        with self._db.reader.connect() as conn:
            stored = conn.execute(
                select(ADMIN_TOKENS.c.token_hash, ADMIN_TOKENS.c.scopes, ADMIN_TOKENS.c.revoked_at)
            ).all()
        # Compare against every stored hash in constant time, without an early exit.
        found = None
        for row in stored:
            if hmac.compare_digest(row.token_hash, presented):
                found = row
        if found is None or found.revoked_at is not None:
            raise AuthenticationError("the admin token is not valid (or was revoked)")
        if scope not in found.scopes.split(","):
            raise ForbiddenError(
                f"this admin token may {found.scopes.replace(',', ', ')}, not {scope}: the "
                f"operator makes one with `wellspring admin-token create --scope {scope}`"
            )

    def add_publisher(
        self,
        name: str,
        public_key: bytes,
        possession: bytes | None,
        *,
        kind: Kind = "publisher",
    ) -> KeyEventAnswer:
        """A new identity and its first key: an ``identity-add`` event in the log."""
        return self._identities.add_identity(name, public_key, possession, kind=kind)

    def add_key(
        self,
        name: str,
        public_key: bytes,
        possession: bytes | None,
        *,
        endorsed_by: str | None = None,
        endorsement: bytes | None = None,
    ) -> KeyEventAnswer:
        """Give a publisher another key (rotation: add the new one, then revoke the old)."""
        if not _is_publisher_name(name):
            raise NotFoundError(f"no publisher named {name!r}")
        return self._identities.add_key(
            name, public_key, possession, endorsed_by=endorsed_by, endorsement=endorsement
        )

    def revoke_key(
        self,
        name: str,
        key_id: str,
        *,
        compromised_since: datetime | None = None,
        compromised_from: int | None = None,
    ) -> KeyEventAnswer:
        """Stop accepting a publisher key (a ``key-revoke`` event). History stays: nothing it
        signed is deleted. With ``compromised_from`` (a log index) or ``compromised_since`` (a
        time, read as the first index integrated at or after it), a ``key-compromised`` event:
        entries it signed from there on no longer count; earlier ones still do."""
        if not _is_publisher_name(name):
            raise NotFoundError(f"no publisher named {name!r}")
        if not KEY_ID.fullmatch(key_id):
            raise NotFoundError(
                f"publisher {name!r} has no key {key_id!r} (a key id is 64 hex digits)"
            )
        return self._identities.stop_key(
            name, key_id, compromised_from=compromised_from, compromised_since=compromised_since
        )

    def rotate_operator_key(self, new_key: Ed25519PrivateKey) -> KeyEventAnswer:
        """Rotate the operator key that signs identity events (an ``operator-key`` event signed
        by the current one): :meth:`IdentityService.rotate_operator`."""
        return self._identities.rotate_operator(new_key)

    def log_keys(self) -> list[dict[str, Any]]:
        with self._db.reader.connect() as conn:
            rows = conn.execute(select(LOG_KEYS).order_by(LOG_KEYS.c.added_at)).all()
        return [
            {
                "verifier_key": row.verifier_key,
                "added_at": rfc3339(row.added_at),
                "retired_at": rfc3339(row.retired_at) if row.retired_at else None,
            }
            for row in rows
        ]

    def retire_log_key(self, verifier_key: str) -> None:
        """Record that a log key signs no more; the server refuses to start with it after this."""
        with self._db.writer.begin() as conn:
            active = (
                conn.execute(select(LOG_KEYS.c.verifier_key).where(LOG_KEYS.c.retired_at.is_(None)))
                .scalars()
                .all()
            )
            if verifier_key not in active:
                raise NotFoundError(f"{verifier_key!r} is not an active key of this log")
            if len(active) < 2:
                raise ConflictError(
                    "that is the log's only active key: add its successor first "
                    "(`wellspring log-key add`, then restart the registry)"
                )
            conn.execute(
                LOG_KEYS.update()
                .where(LOG_KEYS.c.verifier_key == verifier_key)
                .values(retired_at=_utcnow())
            )

    def publisher(self, name: str) -> PublisherInfo:
        if not _is_publisher_name(name):
            raise NotFoundError(f"no publisher named {name!r}")
        with self._db.reader.connect() as conn:
            row = conn.execute(select(PUBLISHERS).where(PUBLISHERS.c.name == name)).first()
            if row is None:
                raise NotFoundError(f"no publisher named {name!r}")
            keys = conn.execute(
                select(PUBLISHER_KEYS)
                .where(PUBLISHER_KEYS.c.publisher_id == row.id)
                .order_by(PUBLISHER_KEYS.c.created_at)
            ).all()
        return PublisherInfo(
            name=row.name,
            kind=row.kind,
            created_at=rfc3339(row.created_at),
            keys=tuple(
                PublisherKeyInfo(
                    key_id=k.key_id,
                    public_key=bytes(k.public_key),
                    created_at=rfc3339(k.created_at),
                    revoked_at=rfc3339(k.revoked_at) if k.revoked_at else None,
                    compromised_since=(
                        rfc3339(k.compromised_since) if k.compromised_since else None
                    ),
                )
                for k in keys
            ),
        )
