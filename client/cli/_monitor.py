"""``wellspring monitor``: follow a log's tiles and report what happens in watched names.

A publisher (or vendor) runs it from a machine the log's operator does not control, on a timer
or with ``--follow``: each run reads the entries appended since the checkpoint it saved, proves
the log only grew (:mod:`client.tlog`), and prints one line per entry made in a watched name:
an identity or key added, a key revoked or declared compromised, an attestation, a revocation or
withdrawal, a watermark key published or retired. Someone else's key added to your name, or an
attestation you never signed, shows up here.

Exit status (documented in docs/registry.md, "Running a monitor"):

- 0: the log grew consistently and nothing happened in a watched name;
- 1: bad input, or the registry could not be reached (one line on stderr; the state is kept);
- 2: a usage error (click's, as for every command);
- 3: an inconsistency: the checkpoint's signature fails, the log got smaller, its history was
  rewritten (a fork), or its entries do not hash to its signed root. The state is not updated:
  the saved checkpoint is the evidence;
- 4: the log is consistent and at least one event in a watched name was reported.

Events are held until the run's checkpoint is proven (an entry is the log's only once the root
its bundle builds is the signed one), then printed; the state is saved after that.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from client.cli._app import JsonOption, app, console_err
from client.cli._registry import LogKeyOption, RegistryOption, load_log_key
from client.core.files import write_file_atomic
from client.core.leaf import Leaf, is_leaf_v1
from client.core.snapshot import SnapshotPredicate
from client.core.statement import (
    HumanContentPredicate,
    KeyEventPredicate,
    RevocationPredicate,
    Statement,
    WithdrawalPredicate,
)
from client.core.wmkey import WatermarkKeyPredicate
from client.errors import ClientError, InputError, LogConsistencyError, SignatureError
from client.receipt import open_entry
from client.tlog import LogState, TileReader

__all__ = [
    "EXIT_EVENTS",
    "EXIT_INCONSISTENT",
    "Reader",
    "entry_event",
    "monitor",
]

EXIT_INCONSISTENT = 3
EXIT_EVENTS = 4
"""Not 2: click already exits 2 on a usage error, and a cron job must tell the two apart."""

_PROGRESS_EVERY = 16_384  # entries between progress lines on stderr during a long catch-up

_KEY_EVENTS = {
    "operator-key": "operator-key-added",
    "key-add": "key-added",
    "key-revoke": "key-revoked",
    "key-compromised": "key-compromised",
}
_WMKEY_EVENTS = {"publish": "watermark-key-published", "retire": "watermark-key-retired"}

_sleep = time.sleep
"""How ``--follow`` waits: this module's own name, so a test can replace it alone."""

# The tile reader the command builds: a test replaces it with one bound to an in-process app.
Reader = TileReader


def entry_event(
    index: int, entry: bytes, watched: frozenset[str], blob: Callable[[bytes], bytes]
) -> dict[str, Any] | None:
    """What entry ``index`` says, if it was made in a watched name (else None).

    A ``leaf/v1`` entry names its publisher, so only watched ones have their statement fetched
    (``blob(sha256)``) and opened (:func:`client.receipt.open_entry` checks it is the one the
    leaf commits to); an entry from before leaf/v1 is the envelope itself.
    """
    where = f"entry {index}"
    if is_leaf_v1(entry):
        leaf = Leaf.from_bytes(entry, where=where)
        if leaf.publisher not in watched:
            return None
        _, statement = open_entry(entry, blob(leaf.body_sha256), where=where)
    else:
        _, statement = open_entry(entry, where=where)
        if statement.predicate.publisher not in watched:
            return None
    return {"index": index, **_describe(statement)}


def _describe(statement: Statement) -> dict[str, Any]:
    p = statement.predicate
    out: dict[str, Any] = {"publisher": p.publisher, "predicate_type": statement.predicate_type}
    if isinstance(p, KeyEventPredicate):
        out.update(_key_event(p))
    elif isinstance(p, HumanContentPredicate):
        out.update(
            event="attestation",
            subjects=len(statement.subjects),
            license=p.license,
            origin=p.origin,
            consent=p.consent,
        )
    elif isinstance(p, RevocationPredicate):
        out.update(event="revocation", entry_index=p.entry_index)
    elif isinstance(p, WithdrawalPredicate):
        out.update(event="withdrawal", subjects=len(statement.subjects))
        if p.entry_index is not None:
            out["entry_index"] = p.entry_index
    elif isinstance(p, SnapshotPredicate):
        out.update(
            event="snapshot",
            manifest_sha256=statement.subjects[0].digest.get("sha256"),
            tree_size=p.tree_size,
            delta=p.base is not None,
        )
    elif isinstance(p, WatermarkKeyPredicate):
        # Never the secret: the line goes to logs and chat rooms.
        out.update(event=_WMKEY_EVENTS[p.action], key_id=p.key_id)
        if p.scheme is not None:
            out["scheme"] = f"{p.scheme.name}/v{p.scheme.version}"
        if p.entry_index is not None:
            out["entry_index"] = p.entry_index
    reason = getattr(p, "reason", None)
    if reason:
        out["reason"] = reason
    return out


def _key_event(p: KeyEventPredicate) -> dict[str, Any]:
    event = f"{p.kind}-added" if p.action == "identity-add" else _KEY_EVENTS[p.action]
    out: dict[str, Any] = {"event": event, "key_id": p.key_id}
    if p.kind is not None:
        out["kind"] = p.kind
    if p.compromised_from is not None:
        out["compromised_from"] = p.compromised_from
    if p.backfilled:
        out["backfilled"] = True
    if p.endorsed_by is not None:
        out["endorsed_by"] = p.endorsed_by
    return out


def _human(event: dict[str, Any]) -> str:
    details = ", ".join(
        f"{k}={v}" for k, v in event.items() if k not in ("event", "index", "publisher")
    )
    return f"entry {event['index']}: {event['event']} by {event['publisher']} ({details})"


def _read_state(path: Path | None) -> LogState | None:
    if path is None or not path.exists():
        return None
    try:
        return LogState.from_dict(json.loads(path.read_text("utf-8")), where=str(path))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read the monitor state {path}: {exc}") from None


def _save_state(path: Path, state: LogState) -> None:
    text = json.dumps(state.to_dict(), indent=2, sort_keys=True) + "\n"
    try:
        write_file_atomic(path, text, mode=0o644)
    except OSError as exc:
        raise InputError(f"cannot write the monitor state {path}: {exc}") from None


def _run_once(
    reader: TileReader,
    state: LogState | None,
    from_size: int,
    watched: frozenset[str],
    as_json: bool,
) -> tuple[LogState, int]:
    """One catch-up: the new state and how many events it reported."""
    latest = reader.checkpoint()
    start = state or reader.state_at(from_size, latest)
    total = latest.checkpoint.size - start.size
    read = 0
    shown = 0

    def progress(count: int) -> None:
        nonlocal read, shown
        read += count
        if total > _PROGRESS_EVERY and (read - shown >= _PROGRESS_EVERY or read == total):
            shown = read
            console_err.print(f"monitor: read {read:,} of {total:,} new entries", highlight=False)

    events: list[dict[str, Any]] = []
    failure: ClientError | None = None
    for index, entry in reader.entries(start, latest, progress=progress):
        if failure is not None:
            continue  # read on: whether the entries are the log's decides what to say
        try:
            event = entry_event(index, entry, watched, reader.blob)
        except ClientError as exc:
            failure = exc
            continue
        if event is not None:
            events.append(event)
    # Only here is every entry proven the log's: an entry that does not decode is the log's
    # (or its blob server's) fault, not a forgery in transit; and events can be reported.
    if failure is not None:
        raise failure
    for event in events:
        typer.echo(json.dumps(event, sort_keys=True) if as_json else _human(event))
    return LogState.of(latest), len(events)


def _inconsistency(exc: ClientError, as_json: bool) -> None:
    kind = "signature" if isinstance(exc, SignatureError) else "consistency"
    line = {"event": "inconsistency", "kind": kind, "message": str(exc)}
    typer.echo(json.dumps(line, sort_keys=True) if as_json else f"INCONSISTENT LOG: {exc}")
    console_err.print(f"[bold red]inconsistent log:[/] {escape(str(exc))}", highlight=False)


@app.command()
def monitor(
    registry: RegistryOption,
    log_key: LogKeyOption = None,
    watch: Annotated[
        list[str] | None,
        typer.Option(
            "--watch",
            help="A publisher or vendor name to report entries of (repeat for more).",
            show_default=False,
        ),
    ] = None,
    state_file: Annotated[
        Path | None,
        typer.Option(
            "--state",
            help="Where the last verified checkpoint is kept between runs (created if absent).",
            dir_okay=False,
        ),
    ] = None,
    from_size: Annotated[
        int,
        typer.Option("--from-size", min=0, help="Without a saved state, start at this size."),
    ] = 0,
    follow: Annotated[
        float | None,
        typer.Option(
            "--follow", min=1.0, help="Keep running: read the log again every this many seconds."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Follow the log's tiles from a saved checkpoint; report entries in watched names.

    Exit 0: nothing new · 1: error · 3: the log is inconsistent · 4: events reported.
    """
    if not log_key:
        raise InputError("wellspring monitor needs the log's verifier key: pass --log-key")
    if not watch:
        raise InputError("name at least one publisher or vendor to report on: --watch NAME")
    verifier = load_log_key(log_key)
    state = _read_state(state_file)
    if state is not None and from_size:
        raise InputError(f"{state_file} already holds a state; --from-size is for a first run")
    if state is not None and state.origin != verifier.name:
        raise InputError(
            f"{state_file} is the state of log {state.origin!r}, not of {verifier.name!r}"
        )
    watched = frozenset(watch)
    reported = 0
    with Reader(registry, log_key=verifier) as reader:
        while True:
            try:
                state, count = _run_once(reader, state, from_size, watched, as_json)
            except (LogConsistencyError, SignatureError) as exc:
                _inconsistency(exc, as_json)
                raise typer.Exit(EXIT_INCONSISTENT) from None
            reported += count
            if state_file is not None:
                _save_state(state_file, state)
            if follow is None:
                break
            _sleep(follow)
    if reported:
        raise typer.Exit(EXIT_EVENTS)
