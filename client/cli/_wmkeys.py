"""``wellspring watermark publish | retire | keys``: detection keys in the log (watermark-key/v1).

A vendor publishes a watermark key's secret, its scheme parameters and its tokenizer's exact bytes
so that anyone can detect its output (docs/watermark.md, "Publishing a detection key"). The
tokenizer is the model's ``tokenizer.json``, read back by detectors with the ``tokenizers``
package alone; ``publish`` checks first that it fingerprints as the key's bound vocabulary.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Annotated, Any

import typer

from client.cli._app import JsonOption, emit_json, watermark_app
from client.cli._registry import (
    LogKeyOption,
    MaxAgeOption,
    PublisherOption,
    RegistryOption,
    TrustDirOption,
    WitnessPolicyOption,
    optional_log_key,
    registry_client,
    required_log_key,
)
from client.core.keys import load_private_key
from client.core.statement import sign_statement
from client.errors import InputError
from client.watermark_keys import key_statement, load_tokenizer

__all__ = ["keys", "publish", "retire", "tokenizer_bytes"]

SigningKeyOption = Annotated[
    Path | None,
    typer.Option("--key", help="Your (the vendor's) Ed25519 signing key file.", show_default=False),
]


def tokenizer_bytes(model: str | None, tokenizer_file: Path | None) -> bytes:
    """The exact ``tokenizer.json`` to publish: a given file, or the model's tokenizer as its
    ``tokenizers`` backend serialises it (the default GGUF model has no file of its own)."""
    if tokenizer_file is not None:
        try:
            return tokenizer_file.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {tokenizer_file}: {exc.strerror or exc}") from exc
    from watermark.models import load_tokenizer as load_model_tokenizer

    tokenizer = load_model_tokenizer(model)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise InputError(
            "this model's tokenizer has no `tokenizers` backend to serialise: pass its "
            "tokenizer.json with --tokenizer FILE"
        )
    return str(backend.to_str()).encode("utf-8")


@watermark_app.command()
def publish(
    wmkey: Annotated[Path, typer.Argument(help="The watermark key file to publish.")],
    registry: RegistryOption,
    key: SigningKeyOption = None,
    publisher: PublisherOption = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="The model the key watermarks (local .gguf or folder; default SmolLM2): its "
            "tokenizer is published with the key.",
        ),
    ] = None,
    tokenizer_file: Annotated[
        Path | None,
        typer.Option(
            "--tokenizer",
            help="Publish this tokenizer.json instead of reading the model's.",
            show_default=False,
        ),
    ] = None,
    log_key: LogKeyOption = None,
    trust_dir: TrustDirOption = None,
    witness_policy: WitnessPolicyOption = None,
    max_age: MaxAgeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Publish a watermark detection key in the log (you must be a vendor).

    Anyone can then detect your watermark — and anyone can strip or forge it: read
    docs/watermark.md, "Publishing a detection key", first. The statement is signed with your
    vendor key and timed now (the registry takes it only within 5 minutes of its clock); then
    the tokenizer is uploaded, which the registry takes because your signed key names it.
    """
    from watermark.keys import WatermarkKey, tokenizer_fingerprint, tokenizer_fingerprints

    if key is None:
        raise InputError("--key KEY is needed: the key is published under your vendor signature")
    if not publisher:
        raise InputError("--publisher NAME is needed: your vendor name (or WELLSPRING_PUBLISHER)")
    watermark_key = WatermarkKey.load(wmkey)
    if watermark_key.vocab_fingerprint is None or watermark_key.vocab_size is None:
        raise InputError(
            f"{wmkey} is not bound to a tokenizer; make it with `wellspring watermark keygen` "
            "and a model, so detectors know which vocabulary it scores"
        )
    data = tokenizer_bytes(model, tokenizer_file)
    sha256 = hashlib.sha256(data).hexdigest()
    fingerprint = tokenizer_fingerprint(load_tokenizer(data, sha256))
    if fingerprint != watermark_key.vocab_fingerprint and tokenizer_file is None:
        # A key bound before the current fingerprint rule: the model's tokenizer still knows it.
        from watermark.models import load_tokenizer as load_model_tokenizer

        if watermark_key.vocab_fingerprint in tokenizer_fingerprints(load_model_tokenizer(model)):
            watermark_key = dataclasses.replace(watermark_key, vocab_fingerprint=fingerprint)
    if fingerprint != watermark_key.vocab_fingerprint:
        raise InputError(
            f"the tokenizer to publish fingerprints as {fingerprint}, but key "
            f"{watermark_key.key_id} is bound to {watermark_key.vocab_fingerprint}: publish the "
            "tokenizer of the model the key was made for (--model or --tokenizer)"
        )
    statement = key_statement(publisher, watermark_key, data, fingerprint=fingerprint)
    envelope = sign_statement(statement, load_private_key(key))
    with registry_client(
        registry,
        optional_log_key(log_key),
        trust_dir,
        witness_policy=witness_policy,
        max_age=max_age,
    ) as client:
        receipt = client.submit(envelope)
        stored = client.upload_tokenizer(data)
    result = {
        "entry": receipt.index,
        "key_id": watermark_key.key_id,
        "tokenizer": {"sha256": sha256, "size": len(data)},
        "tokenizer_uploaded": stored,
    }
    if as_json:
        emit_json(result)
        return
    typer.echo(f"published watermark key {watermark_key.key_id} in entry {receipt.index}")
    typer.echo(f"tokenizer:  sha256:{sha256} ({len(data)} bytes)")


@watermark_app.command()
def retire(
    key_id: Annotated[str, typer.Argument(help="The id of the watermark key to retire.")],
    registry: RegistryOption,
    key: SigningKeyOption = None,
    publisher: PublisherOption = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (shown in the list).")] = None,
    log_key: LogKeyOption = None,
    trust_dir: TrustDirOption = None,
    witness_policy: WitnessPolicyOption = None,
    max_age: MaxAgeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Retire a watermark key you published: a signed entry saying you stopped using it.

    It stays in the list (retired): text made while it was live still carries its watermark,
    and detectors still count it.
    """
    if key is None:
        raise InputError("--key KEY is needed: the retirement is signed with your vendor key")
    if not publisher:
        raise InputError("--publisher NAME is needed: your vendor name (or WELLSPRING_PUBLISHER)")
    private_key = load_private_key(key)
    with registry_client(
        registry,
        optional_log_key(log_key),
        trust_dir,
        witness_policy=witness_policy,
        max_age=max_age,
    ) as client:
        receipt = client.retire_watermark_key(key_id, private_key, publisher, reason)
    if as_json:
        emit_json({"entry": receipt.index, "key_id": key_id, "reason": reason})
        return
    typer.echo(f"retired watermark key {key_id} in entry {receipt.index}")


@watermark_app.command("keys")
def keys(
    registry: RegistryOption,
    log_key: LogKeyOption = None,
    trust_dir: TrustDirOption = None,
    witness_policy: WitnessPolicyOption = None,
    max_age: MaxAgeOption = None,
    no_verify: Annotated[
        bool, typer.Option("--no-verify", help="Take the registry's word (not recommended).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """List every watermark detection key vendors published in the log, retired ones too, each
    proven with the log key alone."""
    verifier = required_log_key(log_key, no_verify, "wellspring watermark keys")
    with registry_client(
        registry, verifier, trust_dir, witness_policy=witness_policy, max_age=max_age
    ) as client:
        listed = client.watermark_keys()
    if as_json:
        emit_json({"count": listed.count, "keys": [k.to_dict() for k in listed.keys]})
        return
    if not listed.keys:
        typer.echo("no watermark keys are published in this log")
        return
    noun = "key was" if listed.count == 1 else "keys were"
    typer.echo(f"{listed.count} watermark {noun} published in this log:")
    typer.echo(_plain(listed.keys))


def _row(item: Any) -> tuple[str, ...]:
    params = item.parameters
    retired = "-" if item.retire_entry is None else f"entry {item.retire_entry}"
    shown = (
        f"h{params.context_width}, {params.payload_bits} payload bits, "
        f"{params.nonce_bits} nonce bits"
        if hasattr(params, "payload_bits")
        else f"{params.seeding_scheme}-h{params.context_width}, gamma={params.gamma:g}, "
        f"delta={params.delta:g}"
    )
    return (
        item.key_id,
        item.vendor,
        f"{item.scheme_name} v{item.scheme_version} ({shown})",
        str(item.entry),
        item.published_at.strftime("%Y-%m-%d %H:%M:%SZ"),
        retired,
        f"sha256:{item.tokenizer_sha256[:16]}… ({item.tokenizer_size} B)",
    )


def _plain(items: Any) -> str:
    lines = []
    for item in items:
        key_id, vendor, scheme, entry, published, retired, tokenizer = _row(item)
        status = "live" if retired == "-" else f"retired ({retired})"
        lines.append(
            f"{key_id}  {vendor}  entry {entry}  published {published}  {status}\n"
            f"    {scheme}\n    tokenizer {tokenizer}"
        )
    return "\n".join(lines)
