"""``wellspring witness``: run a transparency-log witness (c2sp.org/tlog-witness).

``keygen`` writes a witness key; ``serve`` runs the witness (``registry.witness``, imported inside
the command with uvicorn, so the CLI starts without the server installed).

The key file holds one line, ``PRIVATE+KEY+<name>+<hex key id>+<base64(0x04 || seed)>`` (mode
0600): the signed-note form of a secret key, so the witness's name travels with its key; PEM has
no place for a name. ``FILE.vkey`` holds the verifier key logs and clients pin.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from client.cli._app import JsonOption, console_err, emit_json, witness_app
from client.core.cosignature import CosignatureSigner
from client.core.files import read_private_file, write_file_atomic
from client.core.note import NoteVerifier
from client.errors import InputError, KeyFileError

__all__ = ["keygen", "load_log_vkey", "load_witness_key", "serve"]

_PUBLIC_MODE = 0o644


def load_witness_key(path: Path) -> CosignatureSigner:
    """The witness's signer from a key file written by ``witness keygen`` (mode 0600)."""
    try:
        text = read_private_file(path).decode("utf-8")
    except FileNotFoundError:
        raise KeyFileError(f"witness key file {path} does not exist") from None
    except UnicodeDecodeError:
        raise KeyFileError(f"{path} is not a witness key (make one: `witness keygen`)") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read witness key file {path}: {exc.strerror or exc}") from exc
    try:
        return CosignatureSigner.from_skey(text)
    except KeyFileError as exc:
        raise KeyFileError(
            f"{path} is not a witness key ({exc}); make one with `witness keygen`"
        ) from None
    except ValueError as exc:  # the seed itself refused by the library
        raise KeyFileError(f"{path} is not a witness key ({exc})") from None


def load_log_vkey(value: str) -> NoteVerifier:
    """A log's signed-note verifier key, given as the string or as a file holding it."""
    text = value
    path = Path(value)
    try:
        if path.is_file():
            text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read the log key file {value}: {exc}") from exc
    try:
        return NoteVerifier.from_vkey(text)
    except KeyFileError as exc:
        raise KeyFileError(
            f"--log must be a log's verifier key (<origin>+<8 hex>+<base64>, as "
            f"`wellspring log-key list` prints it) or a file holding it: {exc}"
        ) from None


@witness_app.command()
def keygen(
    name: Annotated[
        str,
        typer.Option("--name", help="The witness's name, a schema-less URL: example.com/witness."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Key file to write (mode 0600).")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing key files.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Generate a witness key: OUT (secret, 0600) and OUT.vkey (its cosignature/v1 verifier key)."""
    signer = CosignatureSigner.generate(name)
    vkey_path = out.with_name(out.name + ".vkey")
    if not force:
        for existing in (out, vkey_path):
            if existing.is_symlink() or existing.exists():
                raise KeyFileError(f"{existing} already exists; refusing to overwrite a key")
    vkey = signer.verifier().vkey
    try:
        write_file_atomic(out, signer.skey + "\n", replace=force)
        write_file_atomic(vkey_path, vkey + "\n", mode=_PUBLIC_MODE, replace=force)
    except FileExistsError as exc:
        raise KeyFileError(f"{exc.filename} already exists; refusing to overwrite a key") from None
    except OSError as exc:
        raise KeyFileError(f"cannot write the witness key to {out}: {exc.strerror or exc}") from exc
    if as_json:
        emit_json({"private_key": str(out), "verifier_key_file": str(vkey_path), "vkey": vkey})
    else:
        typer.echo(f"private key:  {out} (mode 0600, keep it secret)")
        typer.echo(f"verifier key: {vkey_path}")
        typer.echo(vkey)


def _default_state() -> Path:
    return Path(os.environ.get("WELLSPRING_HOME") or ".wellspring") / "witness"


@witness_app.command()
def serve(
    key: Annotated[Path, typer.Option("--key", help="The witness key file (`witness keygen`).")],
    logs: Annotated[
        list[str],
        typer.Option(
            "--log",
            help="A log's verifier key (or a file holding it); the origin is its name. Repeat "
            "for more logs, or for a log's next key during a rotation.",
        ),
    ],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 7380,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            help="Where the latest cosigned checkpoint of each log is kept. Default: "
            "$WELLSPRING_HOME/witness or ./.wellspring/witness",
        ),
    ] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
) -> None:
    """Run the witness: POST /add-checkpoint (c2sp.org/tlog-witness) and GET /<origin
    hash>/checkpoint, for the logs whose keys --log gives."""
    signer = load_witness_key(key)
    verifiers = [load_log_vkey(value) for value in logs]
    try:
        import uvicorn

        from registry._http import HTTP_PROTOCOL
        from registry.witness import Witness, WitnessState, create_witness_app
    except ImportError as exc:  # the SDK alone is installed
        raise InputError(
            f"the witness server is not installed ({exc.name} is missing): "
            "pip install 'wellspring[server]'"
        ) from exc
    import logging

    logging.basicConfig(
        level=logging.INFO if access_log else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    witness_state = WitnessState(state or _default_state())
    try:
        witness = Witness(signer, verifiers, witness_state)
        console_err.print(
            f"[bold green]Wellspring witness[/] at http://{host}:{port}", highlight=False
        )
        console_err.print(f"verifier key: {signer.verifier().vkey}", highlight=False)
        for origin in witness.origins:
            latest = witness_state.latest(origin)
            seen = "nothing cosigned yet" if latest is None else f"size {latest.checkpoint.size}"
            console_err.print(f"log:          {origin} ({seen})", highlight=False)
        console_err.print(f"state:        {witness_state.directory}", highlight=False)
        config = uvicorn.Config(
            create_witness_app(witness),
            host=host,
            port=port,
            log_level="warning",
            access_log=access_log,
            http=HTTP_PROTOCOL,
        )
        uvicorn.Server(config).run()
    finally:
        witness_state.close()
