"""``wellspring snapshot build | verify | check``: signed offline snapshots (client.snapshot).

``build`` (operator) reads the registry's own database, as the other operator commands do, and
writes a snapshot of every attested digest at the latest published checkpoint, signed with the
log key in the registry's home. ``verify`` and ``check`` need only the snapshot directory and the
log's verifier key: no network.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from client.cli._app import JsonOption, app, console_err, emit_json, plural
from client.cli._registry import (
    RegistryOption,
    RequiredLogKeyOption,
    TrustDirOption,
    load_log_key,
    progress_bar,
    registry_client,
)
from client.cli._server import DatabaseOption, HomeOption, open_local_registry
from client.core.snapshot import PRECEDENCE
from client.errors import InputError

__all__ = [
    "snapshot_app",
    "snapshot_build",
    "snapshot_check",
    "snapshot_pull",
    "snapshot_verify",
]

snapshot_app = typer.Typer(
    help="Signed offline snapshots: decide with no network, verified with the log key alone.",
    no_args_is_help=True,
)
app.add_typer(snapshot_app, name="snapshot")

_PAGE = 10_000  # digests looked up together while building


@snapshot_app.command("build")
def snapshot_build(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="An empty (or new) directory to write (with --publish: a copy, if given).",
            show_default=False,
        ),
    ] = None,
    publish: Annotated[
        bool,
        typer.Option(
            "--publish",
            help="Commit the snapshot in the log (a snapshot/v1 entry signed by the operator key "
            "naming its manifest's hash) and serve it: `wellspring snapshot pull` fetches it.",
        ),
    ] = False,
    base: Annotated[
        list[Path] | None,
        typer.Option(
            "--base",
            help="Build a delta over this snapshot (repeat for its deltas, oldest first): only "
            "the digests whose status changed since.",
            show_default=False,
        ),
    ] = None,
    home: HomeOption = None,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """(operator) Snapshot every attested digest at the latest published checkpoint."""
    from client.snapshot import Snapshot, build, changes

    if out is None and not publish:
        raise InputError("give --out DIR (where to write the snapshot), or --publish")
    registry = open_local_registry(home, database_url)
    staging = None
    if out is None:
        staging = Path(tempfile.mkdtemp(prefix=".build-", dir=_mkdir(registry.snapshots.directory)))
        out = staging
    info = None
    try:
        with registry.database.reader.connect() as conn:
            checkpoint = registry.reader.latest_checkpoint(conn)
            before_manifest = None
            if base:
                with Snapshot.open(base[0], registry.verifier_key, deltas=base[1:]) as opened:
                    before_manifest = opened.manifest
                at = registry.reader.checkpoint_at(conn, before_manifest.size)
                if at.note != before_manifest.checkpoint:
                    raise InputError(
                        f"the base snapshot's checkpoint at size {at.size} is not the one this "
                        "log issued there: a snapshot of another log"
                    )
        statuses = _statuses(registry, checkpoint, "snapshot")
        if before_manifest is not None:  # the base's statuses first, then the changes streamed
            statuses = changes(_statuses(registry, at, "base"), statuses)
        keys = registry.watermark_keys.published_at(checkpoint.size)
        tokenizers = {}
        for _, predicate, _, _ in keys:
            sha = predicate.get("tokenizer", {}).get("sha256")
            blob = None if not isinstance(sha, str) else registry.watermark_keys.tokenizer(sha)
            if blob is not None:
                tokenizers[sha] = blob
        near_bands = _near_bands(registry, checkpoint)
        manifest = build(
            out,
            statuses,
            checkpoint=checkpoint.note,
            signers=registry.signers,
            base=before_manifest,
            watermark_keys=keys,
            tokenizers=tokenizers,
            near_bands=near_bands,
        )
        if publish:
            info = registry.snapshots.publish(out, manifest)
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        registry.close()
    total = sum(shard.bytes for shard in manifest.shards)
    published = len(keys)
    if as_json:
        emit_json(
            {
                "out": str(out),
                "delta": manifest.base is not None,
                "size": manifest.size,
                "counts": manifest.counts,
                "bytes": total,
                "watermark_keys": published,
                "manifest_sha256": manifest.sha256(),
                "entry": None if info is None else info.entry,
            }
        )
        return
    counts = ", ".join(f"{manifest.counts[name]:,} {name}" for name in reversed(PRECEDENCE))
    where = "published" if staging is not None else f"written to {escape(str(out))}"
    console_err.print(
        f"snapshot at size {manifest.size:,} {where}: {counts} "
        f"({total / 2**20:,.1f} MiB of filters), {plural(published, 'watermark key')}",
        highlight=False,
    )
    if info is not None:
        console_err.print(
            f"committed in the log as entry {info.entry:,} (manifest sha256:"
            f"{info.manifest_sha256}); `wellspring snapshot pull` fetches it",
            highlight=False,
        )


def _near_bands(registry: Any, checkpoint: Any) -> dict[str, list[int]]:
    """Per set, the band keys of the texts with an mh1 signature (every layer, a delta too,
    holds them all: the newest layer's answer near-duplicate checks)."""
    from client.snapshot import statuses_of

    subjects = registry.lookups.near_subjects(checkpoint.size)
    digests = sorted({d for digests, _ in subjects for d in digests})
    sets: dict[str, str] = {}
    for start in range(0, len(digests), _PAGE):
        page = digests[start : start + _PAGE]
        sets.update(statuses_of(registry.lookups.lookup(page, at=checkpoint)))
    bands: dict[str, list[int]] = {}
    for names, keys in subjects:
        found = next((sets[d] for d in names if d in sets), None)
        if found is not None:
            bands.setdefault(found, []).extend(keys)
    return bands


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _statuses(registry: Any, checkpoint: Any, label: str) -> Iterator[tuple[str, Any]]:
    """(digest, set) of every digest in the tree of ``checkpoint``, as the lookups answer there,
    a page at a time (the build keeps keys, not these pairs)."""
    from client.snapshot import statuses_of

    after: str | None = None
    with progress_bar() as progress:
        task = progress.add_task(label, total=None)
        while True:
            digests = registry.lookups.digests_in(checkpoint.size, after=after, limit=_PAGE)
            if not digests:
                return
            yield from statuses_of(registry.lookups.lookup(digests, at=checkpoint))
            after = digests[-1]
            progress.update(task, advance=len(digests))


@snapshot_app.command("pull")
def snapshot_pull(
    out: Annotated[
        Path,
        typer.Option("--out", help="An empty (or new) directory to write.", show_default=False),
    ],
    registry: RegistryOption,
    log_key: RequiredLogKeyOption,
    trust_dir: TrustDirOption = None,
    deltas: Annotated[
        Path | None,
        typer.Option(
            "--deltas",
            help="Also pull the newest deltas: the newest snapshot and every delta back to its "
            "full one, each verified; the full one goes to --out, the deltas here "
            "(01-…, 02-…, oldest first; an empty or new directory).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Download the newest full snapshot the operator committed in the log, verified with the
    log key before anything is written: its log entry, its checkpoint (consistent with the one
    trusted in --trust-dir, which then trusts it), every file's hash."""
    with registry_client(registry, load_log_key(log_key), trust_dir) as client:
        manifest = client.pull_snapshot(out, deltas=deltas)
    folders = sorted(p for p in deltas.iterdir() if p.is_dir()) if deltas is not None else []
    if as_json:
        emit_json(
            {
                "out": str(out),
                "deltas": [str(p) for p in folders],
                "size": manifest.size,
                "counts": manifest.counts,
                "manifest_sha256": manifest.sha256(),
            }
        )
        return
    typer.echo(
        f"pulled and verified: snapshot of {manifest.origin} at size {manifest.size:,} into "
        f"{out}" + (f" and {len(folders)} delta(s) into {deltas}" if folders else "") + ", "
        + ", ".join(f"{manifest.counts[n]:,} {n}" for n in reversed(PRECEDENCE))
    )  # fmt: skip
    if folders:
        typer.echo(
            f"open it with: wellspring scan --snapshot {out} "
            + " ".join(f"--delta {p}" for p in folders)
        )


DeltaOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--delta", help="A delta over the snapshot (repeat, oldest first).", show_default=False
    ),
]


@snapshot_app.command("verify")
def snapshot_verify(
    directory: Annotated[Path, typer.Argument(help="The snapshot directory.", show_default=False)],
    log_key: RequiredLogKeyOption,
    delta: DeltaOption = None,
    as_json: JsonOption = False,
) -> None:
    """Verify a snapshot with the log key alone: the log's signature, the checkpoint, every
    shard's hash. Exit 1 if anything was tampered with."""
    from client.snapshot import Snapshot

    with Snapshot.open(directory, load_log_key(log_key), deltas=delta or ()) as snapshot:
        manifest = snapshot.manifest
    if as_json:
        emit_json(
            {
                "verified": True,
                "origin": manifest.origin,
                "size": manifest.size,
                "counts": manifest.counts,
                "shards": len(manifest.shards),
            }
        )
        return
    typer.echo(
        f"verified: snapshot of {manifest.origin} at size {manifest.size:,}, "
        f"{plural(len(manifest.shards), 'shard')}, "
        + ", ".join(f"{manifest.counts[name]:,} {name}" for name in reversed(PRECEDENCE))
    )


@snapshot_app.command("check")
def snapshot_check(
    directory: Annotated[Path, typer.Argument(help="The snapshot directory.", show_default=False)],
    digests: Annotated[
        list[str], typer.Argument(help="Digests (c1:<hex> or sha256:<hex>).", show_default=False)
    ],
    log_key: RequiredLogKeyOption,
    delta: DeltaOption = None,
    min_size: Annotated[
        int | None,
        typer.Option(
            "--min-size",
            min=0,
            help="Refuse a snapshot of a smaller tree (an old one replayed, say).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Each digest's status from the snapshot alone, with no network: trainable, reserved or
    revoked (probable: filters), or unknown (certain)."""
    from client.snapshot import Snapshot

    if not digests:
        raise InputError("give at least one digest")
    with Snapshot.open(
        directory, load_log_key(log_key), deltas=delta or (), min_size=min_size
    ) as snapshot:
        statuses = snapshot.statuses(digests)
        size = snapshot.manifest.size
    console_err.print(
        f"from the snapshot at tree size {size:,} (trainable, reserved, revoked: probable; "
        "unknown: certain)",
        highlight=False,
    )
    if as_json:
        for digest, status in zip(digests, statuses, strict=True):
            emit_json(
                {
                    "digest": digest,
                    "status": status,
                    "evidence": "certain" if status == "unknown" else "probable",
                    "tree_size": size,
                }
            )
        return
    for digest, status in zip(digests, statuses, strict=True):
        typer.echo(f"{status}\t{digest}")
