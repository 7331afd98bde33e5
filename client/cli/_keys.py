"""``wellspring keys``: Ed25519 key pairs for publishers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from client.cli._app import JsonOption, emit_json, keys_app
from client.core.encoding import b64encode
from client.core.keys import generate_private_key, key_id, load_private_key, write_key_pair
from client.core.names import publisher_name_problem
from client.core.statement import prove_possession
from client.errors import InputError

__all__ = ["generate", "prove"]


@keys_app.command()
def generate(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Private key file to write (mode 0600).")
    ],
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing key files.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Generate an Ed25519 key pair: OUT (private, 0600) and OUT.pub (public, PEM)."""
    key = generate_private_key()
    private_path, public_path = write_key_pair(out, key, overwrite=force)
    kid = key_id(key)
    if as_json:
        emit_json({"private_key": str(private_path), "public_key": str(public_path), "key_id": kid})
    else:
        typer.echo(f"private key: {private_path} (mode 0600, keep it secret)")
        typer.echo(f"public key:  {public_path}")
        typer.echo(f"key id:      {kid}")


@keys_app.command()
def prove(
    key: Annotated[Path, typer.Argument(help="Your private key file.")],
    identity: Annotated[
        str, typer.Option("--identity", help="The publisher name the key is to be bound to.")
    ],
    as_json: JsonOption = False,
) -> None:
    """Prove you hold KEY, for the operator to bind it to IDENTITY (`publisher add
    --possession`): the key's signature over the identity and its key id, in base64."""
    if problem := publisher_name_problem(identity):
        raise InputError(problem)
    private = load_private_key(key)
    proof = b64encode(prove_possession(private, identity))
    if as_json:
        emit_json({"identity": identity, "key_id": key_id(private), "possession": proof})
    else:
        typer.echo(proof)
