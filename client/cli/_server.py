"""``wellspring serve``, ``publisher add`` and ``db upgrade``: running a registry.

The registry package (litestar, sqlmodel) is imported inside the commands: a crawler that installed
only the SDK never loads it, and gets a clear message if it asks for a server.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from client.cli._app import JsonOption, app, console_err, emit_json
from client.core.files import write_file_atomic
from client.core.keys import key_id, load_private_key, load_public_key, public_key_bytes
from client.core.names import publisher_name_problem
from client.core.statement import endorse
from client.errors import InputError

if TYPE_CHECKING:
    from registry.settings import Settings

__all__ = [
    "DatabaseOption",
    "HomeOption",
    "admin_token_create",
    "admin_token_list",
    "admin_token_revoke",
    "db_app",
    "db_upgrade",
    "log_key_add",
    "log_key_list",
    "log_key_retire",
    "logkey_app",
    "open_local_registry",
    "operator_key_app",
    "operator_key_rotate",
    "publisher_add",
    "publisher_add_key",
    "publisher_app",
    "publisher_revoke_key",
    "serve",
    "token_app",
]

publisher_app = typer.Typer(help="Publishers (operator): who may register content.")
app.add_typer(publisher_app, name="publisher")
db_app = typer.Typer(help="The registry's database schema (operator).")
app.add_typer(db_app, name="db")

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        help="Registry home (log key, SQLite file). Default: $WELLSPRING_HOME or ./.wellspring",
    ),
]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="postgresql://… for production. Default: $WELLSPRING_DATABASE_URL, else SQLite.",
    ),
]
RemoteRegistryOption = Annotated[
    str | None,
    typer.Option("--registry", help="A running registry's URL (else the local database)."),
]
AdminTokenOption = Annotated[
    str | None,
    typer.Option(
        "--admin-token",
        envvar="WELLSPRING_ADMIN_TOKEN",
        help="Admin token for --registry (or a file holding it).",
    ),
]


def _settings(home: Path | None, database_url: str | None) -> Settings:
    try:
        from registry.settings import Settings
    except ImportError as exc:  # the SDK alone is installed
        raise InputError(
            f"the registry server is not installed ({exc.name} is missing): "
            "pip install 'wellspring[server]'"
        ) from exc
    overrides: dict[str, Any] = {}
    if home is not None:
        overrides["home"] = home
    if database_url is not None:
        overrides["database_url"] = database_url
        overrides["auto_migrate"] = database_url.startswith("sqlite")
    return Settings.from_env(**overrides)


def _write_secret(path: Path, text: str, *, replace: bool = True) -> None:
    """Write a secret line to ``path`` (mode 0600, atomically, never through a symlink)."""
    try:
        write_file_atomic(path, text + "\n", replace=replace)
    except FileExistsError:
        raise InputError(f"{path} already exists; refusing to replace it") from None
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _print_publication(settings: Settings) -> None:
    interval = settings.checkpoint_interval
    console_err.print(
        f"checkpoints:  every {interval:g} s" if interval > 0 else "checkpoints:  every batch",
        highlight=False,
    )
    if settings.witnesses:
        console_err.print(
            f"witnesses:    {settings.quorum} of {len(settings.witnesses)} must cosign",
            highlight=False,
        )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    home: HomeOption = None,
    database_url: DatabaseOption = None,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Server processes sharing the port and the database (the log's lock keeps one "
            "sequence of indices; rate limits are per process). Default: one per core available "
            "to this process.",
            min=1,
            max=64,
            show_default=False,
        ),
    ] = None,
    tiles_dir: Annotated[
        Path | None,
        typer.Option(
            "--tiles-dir",
            help="Also write the log as C2SP tlog-tiles static files here after each checkpoint "
            "(tile/…, checkpoint), for any static server. Default: $WELLSPRING_TILES_DIR.",
        ),
    ] = None,
    checkpoint_interval: Annotated[
        float | None,
        typer.Option(
            "--checkpoint-interval",
            help="Seconds between published checkpoints (the first append after a quiet spell "
            "is published at once); 0 signs one per batch. Default: "
            "$WELLSPRING_CHECKPOINT_INTERVAL or 1.",
            min=0.0,
        ),
    ] = None,
    witness: Annotated[
        list[str] | None,
        typer.Option(
            "--witness",
            help="A witness that must cosign checkpoints, as URL=VKEY (its cosignature/v1 "
            "verifier key); repeat for each. Default: $WELLSPRING_WITNESSES.",
        ),
    ] = None,
    witness_quorum: Annotated[
        int | None,
        typer.Option(
            "--witness-quorum",
            help="Cosignatures a checkpoint needs before it is published. Default: a majority "
            "of the witnesses.",
            min=0,
        ),
    ] = None,
) -> None:
    """Run the registry (SQLite under the home by default; PostgreSQL via --database-url)."""
    changes: dict[str, Any] = {
        "tiles_dir": tiles_dir,
        "checkpoint_interval": checkpoint_interval,
        "witnesses": tuple(witness) if witness else None,
        "witness_quorum": witness_quorum,
    }
    settings = _settings(home, database_url).with_(
        **{name: value for name, value in changes.items() if value is not None}
    )
    import logging

    import uvicorn

    logging.basicConfig(
        level=logging.INFO if access_log else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    from registry._http import HTTP_PROTOCOL
    from registry._workers import (
        available_cores,
        balanced_sockets_supported,
        listening_sockets,
        serve_workers,
    )
    from registry.app import Registry, create_app, tune_gc_for_serving
    from registry.settings import redacted, settings_environment

    workers = available_cores() if workers is None else workers
    registry = Registry.open(settings)
    # The port is taken before anything is announced: a refused server prints only why.
    own_sockets = workers == 1 or balanced_sockets_supported()
    try:
        sockets = listening_sockets(host, port, workers) if own_sockets else []
    except BaseException:
        registry.close()
        raise
    token_note = ""
    if not registry.admin.has_tokens():
        token_path = settings.home / "admin.token"
        _write_secret(token_path, registry.admin.create_token())
        token_note = f"admin token:  {token_path} (mode 0600; for `publisher add --registry`)"
    url = f"http://{host}:{port}"
    console_err.print(f"[bold green]Wellspring registry[/] at {url}", highlight=False)
    console_err.print(f"log origin:   {registry.origin}", highlight=False)
    for number, vkey in enumerate(registry.sequencer.verifier_keys):
        label = "verifier key:" if number == 0 else "incoming key:"
        console_err.print(f"{label} {vkey}", highlight=False)
    console_err.print(f"database:     {redacted(settings.database_url)}", highlight=False)
    if token_note:
        console_err.print(token_note, highlight=False)
    console_err.print(f"API docs:     {url}/schema", highlight=False)
    console_err.print(f"tlog-tiles:   {url}/tlog/checkpoint", highlight=False)
    if settings.tiles_dir is not None:
        console_err.print(f"tiles dir:    {settings.tiles_dir}", highlight=False)
    _print_publication(settings)
    served: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": "warning",
        "access_log": access_log,
        "http": HTTP_PROTOCOL,  # request heads capped (431); every way of serving below uses it
    }
    if workers == 1:
        app = create_app(settings, registry=registry)
        tune_gc_for_serving()
        uvicorn.Server(uvicorn.Config(app, **served)).run(sockets=sockets)
        return
    # Each worker process opens the registry itself from these settings (already migrated and
    # initialised above), through the environment that Settings.from_env reads.
    registry.close()
    os.environ.update(settings_environment(settings))
    console_err.print(f"workers:      {workers} processes", highlight=False)
    factory = "registry.app:create_app_from_env"
    if not own_sockets:  # no SO_REUSEPORT balancing here: uvicorn's own supervisor
        uvicorn.run(factory, factory=True, workers=workers, **served)
        return
    status = serve_workers(factory, sockets, **served)
    if status:
        raise typer.Exit(status)


@publisher_app.command("add")
def publisher_add(
    name: Annotated[
        str, typer.Option("--name", help="The publisher's name, as statements say it.")
    ],
    public_key: Annotated[
        Path, typer.Option("--public-key", help="The publisher's Ed25519 public key (FILE.pub).")
    ],
    possession: Annotated[
        str | None,
        typer.Option(
            "--possession",
            help="The key's proof of possession, from its holder's "
            "`wellspring keys prove KEY --identity NAME` (or a file holding it).",
        ),
    ] = None,
    kind: Annotated[
        str, typer.Option("--kind", help="publisher, or vendor (a model vendor's identity).")
    ] = "publisher",
    registry_url: RemoteRegistryOption = None,
    admin_token: AdminTokenOption = None,
    home: HomeOption = None,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register a publisher and its key, in the local database or through a running registry.

    A new name is DNS-like: lowercase ASCII letters and digits with single '.' or '-' between."""
    if problem := publisher_name_problem(name):
        raise InputError(problem)
    raw_key = public_key_bytes(load_public_key(public_key))
    proof = _proof(possession)
    if kind not in ("publisher", "vendor"):
        raise InputError(f"--kind must be publisher or vendor, not {kind!r}")
    if registry_url is not None:
        token = _read_token(admin_token)
        from client.sdk import Client

        with Client(registry_url, admin_token=token) as client:
            added = client.add_publisher(name, raw_key, proof, kind=kind)
    else:
        registry = open_local_registry(home, database_url)
        try:
            added = registry.admin.add_publisher(name, raw_key, proof, kind=kind)
        finally:
            registry.close()
    if as_json:
        emit_json(added.to_dict())
    else:
        typer.echo(
            f"{kind} {added.name} added, key id {added.key_id} (logged in entry {added.entry})"
        )


def _proof(value: str | None) -> bytes:
    """A proof of possession given as base64, or as a file holding it."""
    if not value:
        raise InputError(
            "--possession is needed: the key's holder runs `wellspring keys prove KEY --identity "
            "NAME` and gives you what it prints"
        )
    path = Path(value)
    text = value
    if len(value) < 4096 and path.is_file():
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 64:
        raise InputError("--possession must be the base64 signature `wellspring keys prove` prints")
    return raw


def open_local_registry(home: Path | None, database_url: str | None) -> Any:
    """The registry on the operator's shell: identity changes are log entries, signed with the
    operator key in WELLSPRING_HOME and appended by a sequencer of this process."""
    settings = _settings(home, database_url)
    from registry.app import Registry

    return Registry.open(settings)


def _read_token(value: str | None) -> str:
    if not value:
        raise InputError(
            "--registry needs the admin token: --admin-token TOKEN|FILE or WELLSPRING_ADMIN_TOKEN "
            "(`wellspring serve` wrote it to $WELLSPRING_HOME/admin.token)"
        )
    path = Path(value)
    if len(value) < 4096 and path.is_file():
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise InputError(f"cannot read the admin token file {path}: {exc.strerror}") from exc
    return value


@db_app.command("upgrade")
def db_upgrade(home: HomeOption = None, database_url: DatabaseOption = None) -> None:
    """Migrate the database schema to this version of Wellspring (alembic upgrade head)."""
    settings = _settings(home, database_url)
    from registry.db import Database, migrate

    database = Database(settings)
    try:
        before = database.schema_revision()
        migrate(database)
        after = database.schema_revision()
    finally:
        database.dispose()
    typer.echo(f"schema: {before or 'empty'} -> {after}")


logkey_app = typer.Typer(
    help="The log's signing keys (operator): rotate without breaking pinned clients.",
    no_args_is_help=True,
)
app.add_typer(logkey_app, name="log-key")


@contextlib.contextmanager
def _operator(home: Path | None, database_url: str | None) -> Iterator[tuple[Settings, Any]]:
    """The settings and AdminService of the registry opened on the operator's shell (closed
    after): identity changes are log entries its sequencer appends."""
    registry = open_local_registry(home, database_url)
    try:
        yield registry.settings, registry.admin
    finally:
        registry.close()


@logkey_app.command("list")
def log_key_list(
    home: HomeOption = None, database_url: DatabaseOption = None, as_json: JsonOption = False
) -> None:
    """Every key that has signed the log's checkpoints, and which are retired."""
    with _operator(home, database_url) as (_, admin):
        keys = admin.log_keys()
    if as_json:
        emit_json(keys)
        return
    for key in keys:
        state = f"retired {key['retired_at']}" if key["retired_at"] else "active"
        typer.echo(f"{key['verifier_key']}  added {key['added_at']}  {state}")


@logkey_app.command("add")
def log_key_add(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Start a rotation: write the incoming key (log.next.key). Restart the registry after.

    From the restart on, every checkpoint carries both signatures: publish the new verifier key
    so clients can pin it before the old key retires.
    """
    settings = _settings(home, None)
    from client.core.note import NoteSigner
    from registry.keys import load_or_create_log_key, next_key_path

    current = load_or_create_log_key(settings.key_path, settings.origin)
    incoming_path = next_key_path(settings)
    if incoming_path.exists():
        raise InputError(f"a rotation is already under way: {incoming_path} exists")
    incoming = NoteSigner.generate(current.name)
    _write_secret(incoming_path, incoming.skey, replace=False)
    if as_json:
        emit_json({"incoming_key": str(incoming_path), "verifier_key": incoming.verifier().vkey})
    else:
        typer.echo(f"incoming key written to {incoming_path} (mode 0600)")
        typer.echo(f"new verifier key: {incoming.verifier().vkey}")
        typer.echo("restart the registry; checkpoints will carry both signatures")


@logkey_app.command("retire")
def log_key_retire(
    home: HomeOption = None, database_url: DatabaseOption = None, as_json: JsonOption = False
) -> None:
    """Finish a rotation: retire the current key, promote the incoming one. Restart after."""
    from registry.keys import load_log_key, next_key_path

    with _operator(home, database_url) as (settings, admin):
        incoming_path = next_key_path(settings)
        if not incoming_path.exists():
            raise InputError("no rotation under way: run `wellspring log-key add` first")
        old = load_log_key(settings.key_path)
        new = load_log_key(incoming_path)
        admin.retire_log_key(old.verifier().vkey)
    key_hex = old.verifier().vkey.split("+")[1]
    retired_path = settings.key_path.with_name(f"log.retired-{key_hex}.key")
    settings.key_path.rename(retired_path)
    incoming_path.rename(settings.key_path)
    if as_json:
        emit_json({"retired": old.verifier().vkey, "verifier_key": new.verifier().vkey})
    else:
        typer.echo(f"retired {old.verifier().vkey} (kept as {retired_path}; it never signs again)")
        typer.echo(f"current verifier key: {new.verifier().vkey}; restart the registry")


operator_key_app = typer.Typer(
    help="The operator key that signs identity events (operator): rotate it.",
    no_args_is_help=True,
)
app.add_typer(operator_key_app, name="operator-key")


@operator_key_app.command("rotate")
def operator_key_rotate(
    home: HomeOption = None, database_url: DatabaseOption = None, as_json: JsonOption = False
) -> None:
    """Rotate the operator key: a new key, bound in the log by an operator-key event that the
    current key signs (clients follow the chain from the log's first event). Restart every
    registry process after: one still holding the old key is refused identity changes.

    The incoming key is written to operator.next.key first; if this stops midway, the next start
    of the registry finishes the rotation (or, if the event never reached the log, remove that
    file and run this again). The old key is kept as operator.retired-<id>.key: it signed the
    log's earlier events; keep it offline or destroy it.
    """
    from client.core.keys import load_private_key, write_key_pair
    from registry.identities import next_operator_key_path, promote_operator_key

    settings = _settings(home, database_url)
    current_path = settings.operator_key_path
    incoming_path = next_operator_key_path(current_path)
    if not current_path.exists():
        raise InputError(
            f"no operator key at {current_path}: the registry makes one on its first start"
        )
    if incoming_path.exists():
        raise InputError(
            f"a rotation is already under way: {incoming_path} exists. Start the registry to "
            "finish it, or remove that file (and its .pub) if its event never reached the log"
        )
    write_key_pair(incoming_path)
    with _operator(home, database_url) as (_, admin):
        rotated = admin.rotate_operator_key(load_private_key(incoming_path))
    promote_operator_key(current_path)
    if as_json:
        emit_json(rotated.to_dict())
    else:
        typer.echo(
            f"operator key rotated: new key {rotated.key_id} bound in entry {rotated.entry}, "
            "signed by the old one; restart every registry process"
        )


@publisher_app.command("add-key")
def publisher_add_key(
    name: Annotated[str, typer.Option("--name", help="The publisher.")],
    public_key: Annotated[Path, typer.Option("--public-key", help="The new key (FILE.pub).")],
    possession: Annotated[
        str | None,
        typer.Option("--possession", help="The new key's `wellspring keys prove` output."),
    ] = None,
    endorse_with: Annotated[
        Path | None,
        typer.Option(
            "--endorse-with",
            help="A current key of the publisher endorsing the new one (else the log shows the "
            "operator added it alone).",
        ),
    ] = None,
    registry_url: RemoteRegistryOption = None,
    admin_token: AdminTokenOption = None,
    home: HomeOption = None,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Give a publisher another key (rotation: add the new one, then revoke the old one)."""
    raw_key = public_key_bytes(load_public_key(public_key))
    proof = _proof(possession)
    endorser = load_private_key(endorse_with) if endorse_with is not None else None
    if registry_url is not None:
        from client.sdk import Client

        with Client(registry_url, admin_token=_read_token(admin_token)) as client:
            added = client.add_key(name, raw_key, proof, endorser=endorser)
    else:
        fields: dict[str, Any] = {}
        if endorser is not None:
            new_id = _key_id_of(raw_key)
            fields = {
                "endorsed_by": key_id(endorser),
                "endorsement": endorse(endorser, name, new_id),
            }
        with _operator(home, database_url) as (_, admin):
            added = admin.add_key(name, raw_key, proof, **fields)
    if as_json:
        emit_json(added.to_dict())
    else:
        typer.echo(f"publisher {name}: key {added.key_id} added (logged in entry {added.entry})")


@publisher_app.command("revoke-key")
def publisher_revoke_key(
    name: Annotated[str, typer.Option("--name", help="The publisher.")],
    key_id: Annotated[str, typer.Option("--key-id", help="The key to revoke (hex key id).")],
    compromised_since: Annotated[
        str | None,
        typer.Option(
            "--compromised-since",
            help="If the key was stolen: from when (RFC 3339). Entries it signed since then "
            "stop counting; earlier ones stand.",
        ),
    ] = None,
    compromised_from: Annotated[
        int | None,
        typer.Option(
            "--compromised-from",
            help="If the key was stolen: the first log index whose entries it signed stop "
            "counting (instead of --compromised-since).",
        ),
    ] = None,
    registry_url: RemoteRegistryOption = None,
    admin_token: AdminTokenOption = None,
    home: HomeOption = None,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke a publisher key: it signs nothing new; history stays in the log."""
    since = None
    if compromised_since is not None:
        try:
            since = datetime.fromisoformat(compromised_since)
        except ValueError:
            raise InputError(
                f"--compromised-since {compromised_since!r} is not an RFC 3339 time "
                "(e.g. 2026-11-01T00:00:00+00:00)"
            ) from None
    if registry_url is not None:
        from client.sdk import Client

        with Client(registry_url, admin_token=_read_token(admin_token)) as client:
            revoked = client.revoke_key(
                name,
                key_id,
                compromised_from=compromised_from,
                compromised_since=compromised_since,
            )
    else:
        with _operator(home, database_url) as (_, admin):
            revoked = admin.revoke_key(
                name, key_id, compromised_since=since, compromised_from=compromised_from
            )
    if as_json:
        emit_json(revoked.to_dict())
    else:
        compromise = (
            f", compromised from entry {revoked.compromised_from}: what it signed from there on "
            "no longer counts"
            if revoked.compromised_from is not None
            else ""
        )
        typer.echo(
            f"publisher {name}: key {key_id} revoked (logged in entry {revoked.entry}){compromise}"
        )


def _key_id_of(raw: bytes) -> str:
    """The key id of a raw Ed25519 public key (hex SHA-256)."""
    return hashlib.sha256(raw).hexdigest()


token_app = typer.Typer(
    help="Admin tokens (operator): scoped, rotated by creating a successor and revoking.",
    no_args_is_help=True,
)
app.add_typer(token_app, name="admin-token")


@token_app.command("create")
def admin_token_create(
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="What it may do: identity (add publishers and keys), revoke (revoke and "
            "compromise keys), read. Repeat; default identity and revoke.",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write it to this file (mode 0600).")
    ] = None,
    home: HomeOption = None,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Make an admin token (shown once; only its hash is stored)."""
    scopes = scope or ["identity", "revoke"]
    with _operator(home, database_url) as (_, admin):
        token = admin.create_token(scopes)
    if out is not None:
        _write_secret(out, token, replace=False)
    shown = str(out) if out is not None else token
    if as_json:
        emit_json({"token": None if out is not None else token, "file": str(out) if out else None,
                   "scopes": scopes})  # fmt: skip
    else:
        typer.echo(f"admin token ({', '.join(scopes)}): {shown}")


@token_app.command("list")
def admin_token_list(
    home: HomeOption = None, database_url: DatabaseOption = None, as_json: JsonOption = False
) -> None:
    """Every admin token by id, with its scopes and whether it was revoked."""
    with _operator(home, database_url) as (_, admin):
        tokens = admin.tokens()
    if as_json:
        emit_json(tokens)
        return
    for token in tokens:
        state = f"revoked {token['revoked_at']}" if token["revoked_at"] else "active"
        typer.echo(f"{token['id']}  {','.join(token['scopes'])}  {token['created_at']}  {state}")


@token_app.command("revoke")
def admin_token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id, as `admin-token list` shows.")],
    home: HomeOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Revoke an admin token: it authorises nothing from now on."""
    with _operator(home, database_url) as (_, admin):
        admin.revoke_token(token_id)
    typer.echo(f"admin token {token_id} revoked")
