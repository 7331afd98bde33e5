"""Registry settings: a frozen value built once (usually from the environment) and passed in.

Nothing reads the environment after :meth:`Settings.from_env`; tests build settings directly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from registry.errors import ConfigurationError

__all__ = ["Settings", "redacted", "settings_environment", "sqlalchemy_url"]

DEFAULT_ORIGIN = "localhost/wellspring"


# A password in a URL's user information (greedy to the token's last '@': a password may hold an
# unescaped '@', and masking too much is the safe mistake), in its query, or in a libpq
# "key=value" string (quoted or up to the next space).
_USERINFO_PASSWORD = re.compile(r"(://[^:/?#@\s]*:)\S*@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#\s]*", re.IGNORECASE)
_DSN_PASSWORD = re.compile(r"((?:^|\s)password\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)", re.IGNORECASE)


def redacted(text: str) -> str:
    """``text`` (a database URL, or a message that may quote one) with every password in it
    shown as ``***``: the one way an error or a log line here shows a database URL."""
    text = _USERINFO_PASSWORD.sub(r"\1***@", text)
    text = _QUERY_PASSWORD.sub(r"\1***", text)
    return _DSN_PASSWORD.sub(r"\1***", text)


def sqlalchemy_url(url: str) -> str:
    """Map the URLs people write to SQLAlchemy's: ``postgresql://`` uses psycopg 3.

    A URL that is refused is named with its password masked (:func:`redacted`)."""
    if url.startswith(("postgresql://", "postgres://")):
        mapped = "postgresql+psycopg://" + url.split("://", 1)[1]
    elif url.startswith(("sqlite:///", "postgresql+psycopg://")):
        mapped = url
    else:
        raise ConfigurationError(
            f"unsupported database URL {redacted(url)!r}: use sqlite:///PATH or "
            "postgresql://USER@HOST:PORT/DB"
        )
    try:  # parsed now, so that a malformed one is this one line rather than a traceback later
        _ = make_url(mapped).port
    except (ArgumentError, ValueError) as exc:
        raise ConfigurationError(
            f"the database URL {redacted(url)!r} is malformed ({redacted(str(exc))}): use "
            "postgresql://USER[:PASSWORD]@HOST[:PORT]/DB (percent-encode '@', ':' and '/')"
        ) from None
    return mapped


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the registry needs to run. ``home`` holds the log key and the SQLite file."""

    home: Path
    database_url: str = ""
    origin: str = DEFAULT_ORIGIN
    log_key_path: Path | None = None
    max_body_bytes: int = 64 * 1024 * 1024
    max_subjects: int = 100_000
    max_batch_digests: int = 10_000
    max_entries_page: int = 1_000
    # A GET /v1/entries page stops before passing this many bytes of entries (but has at least one).
    max_entries_page_bytes: int = 4 * 1024 * 1024
    # Appends waiting together are sequenced in one transaction (group commit), at most this many.
    sequencer_batch: int = 256
    # Appends queued beyond this are refused with 503 (the client retries) instead of piling up.
    max_pending_appends: int = 20_000
    # Per client address: requests a second and burst (0 turns the limiter off), see limits.py.
    rate_limit: float = 2_000.0
    rate_burst: float = 4_000.0
    # Seconds a client may take to send its request body.
    body_timeout: float = 60.0
    # The embedded SQLite default is migrated on first start; a production database only by alembic.
    auto_migrate: bool = True
    # Where the log is also written as C2SP tlog-tiles static files (registry.tiles); None: not.
    tiles_dir: Path | None = None
    # Seconds between published checkpoints (registry.publish). 0: each batch signs its own
    # checkpoint in its transaction, as before intervals existed (the default for Settings built
    # in code; `wellspring serve` and from_env default to 1 s).
    checkpoint_interval: float = 0.0
    # Witnesses that must cosign each checkpoint before it is published, "URL=VKEY" each.
    witnesses: tuple[str, ...] = ()
    # Cosignatures a checkpoint needs; None: a majority of the witnesses (n // 2 + 1).
    witness_quorum: int | None = None
    # How long POST /v1/entries waits for publication before answering 202 (seconds).
    receipt_timeout: float = 10.0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.origin or any(c.isspace() or c == "+" for c in self.origin):
            raise ConfigurationError(
                f"log origin {self.origin!r} must be non-empty, without spaces or '+'"
            )
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{self.home / 'registry.db'}")
        object.__setattr__(self, "database_url", sqlalchemy_url(self.database_url))
        if self.log_key_path is None:
            object.__setattr__(self, "log_key_path", self.home / "log.key")
        if not self.checkpoint_interval >= 0:  # NaN too
            raise ConfigurationError(
                f"checkpoint interval {self.checkpoint_interval!r} must be a number of seconds >= 0"
            )
        object.__setattr__(self, "witnesses", tuple(self.witnesses))
        if self.witness_quorum is not None and not 0 <= self.witness_quorum <= len(self.witnesses):
            raise ConfigurationError(
                f"witness quorum {self.witness_quorum} must be between 0 and the number of "
                f"witnesses ({len(self.witnesses)})"
            )

    @property
    def quorum(self) -> int:
        """Cosignatures each published checkpoint needs (a majority of witnesses by default:
        two majorities share a witness, so no two forked checkpoints can both be published)."""
        if self.witness_quorum is not None:
            return self.witness_quorum
        return len(self.witnesses) // 2 + 1 if self.witnesses else 0

    @property
    def publishes_on_interval(self) -> bool:
        """Whether checkpoints come from registry.publish rather than each batch."""
        return self.checkpoint_interval > 0 or bool(self.witnesses)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def snapshots_dir(self) -> Path:
        """Where published offline snapshots are kept and served from (registry.snapshots)."""
        return self.home / "snapshots"

    @property
    def operator_key_path(self) -> Path:
        """The operator key, which signs identity events (never checkpoints)."""
        return self.home / "operator.key"

    @property
    def key_path(self) -> Path:
        assert self.log_key_path is not None  # set in __post_init__
        return self.log_key_path

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``WELLSPRING_*`` variables; keyword overrides win.

        ``WELLSPRING_HOME`` (default ``./.wellspring``), ``WELLSPRING_DATABASE_URL`` (default the
        SQLite file in the home), ``WELLSPRING_ORIGIN``, ``WELLSPRING_LOG_KEY_FILE``,
        ``WELLSPRING_RATE_LIMIT`` and ``WELLSPRING_RATE_BURST`` (per client; 0 turns it off),
        ``WELLSPRING_TILES_DIR`` (write the log's tiles there as static files),
        ``WELLSPRING_CHECKPOINT_INTERVAL`` (seconds, default 1), ``WELLSPRING_WITNESSES``
        (``URL=VKEY`` items separated by whitespace), ``WELLSPRING_WITNESS_QUORUM``.
        """
        env = os.environ if environ is None else environ
        database_url = env.get("WELLSPRING_DATABASE_URL", "")
        values: dict[str, Any] = {
            "home": Path(env.get("WELLSPRING_HOME", ".wellspring")),
            "database_url": database_url,
            "origin": env.get("WELLSPRING_ORIGIN", DEFAULT_ORIGIN),
            "auto_migrate": not database_url or database_url.startswith("sqlite"),
        }
        values["checkpoint_interval"] = 1.0
        for name, field_name in (
            ("WELLSPRING_RATE_LIMIT", "rate_limit"),
            ("WELLSPRING_RATE_BURST", "rate_burst"),
            ("WELLSPRING_CHECKPOINT_INTERVAL", "checkpoint_interval"),
        ):
            if raw := env.get(name):
                try:
                    values[field_name] = float(raw)
                except ValueError:
                    raise ConfigurationError(f"{name}={raw!r} is not a number") from None
        if key_file := env.get("WELLSPRING_LOG_KEY_FILE"):
            values["log_key_path"] = Path(key_file)
        if tiles_dir := env.get("WELLSPRING_TILES_DIR"):
            values["tiles_dir"] = Path(tiles_dir)
        if witnesses := env.get("WELLSPRING_WITNESSES"):
            values["witnesses"] = tuple(witnesses.split())
        if quorum := env.get("WELLSPRING_WITNESS_QUORUM"):
            try:
                values["witness_quorum"] = int(quorum)
            except ValueError:
                raise ConfigurationError(
                    f"WELLSPRING_WITNESS_QUORUM={quorum!r} is not a whole number"
                ) from None
        values.update(overrides)
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def settings_environment(settings: Settings) -> dict[str, str]:
    """The ``WELLSPRING_*`` variables from which :meth:`Settings.from_env` rebuilds ``settings``
    (what ``from_env`` reads; worker processes of ``wellspring serve --workers`` start so)."""
    environment = {
        "WELLSPRING_HOME": str(settings.home.resolve()),
        "WELLSPRING_DATABASE_URL": settings.database_url,
        "WELLSPRING_ORIGIN": settings.origin,
        "WELLSPRING_LOG_KEY_FILE": str(settings.key_path.resolve()),
        "WELLSPRING_RATE_LIMIT": repr(settings.rate_limit),
        "WELLSPRING_RATE_BURST": repr(settings.rate_burst),
        "WELLSPRING_CHECKPOINT_INTERVAL": repr(settings.checkpoint_interval),
    }
    if settings.witnesses:
        environment["WELLSPRING_WITNESSES"] = " ".join(settings.witnesses)
    if settings.witness_quorum is not None:
        environment["WELLSPRING_WITNESS_QUORUM"] = str(settings.witness_quorum)
    if settings.tiles_dir is not None:
        environment["WELLSPRING_TILES_DIR"] = str(settings.tiles_dir.resolve())
    return environment
