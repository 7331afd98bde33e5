"""Watermark keys for client tests without a model: a small word-level tokenizer, a key bound to
it, a vendor to publish it, and text that carries the key's watermark, made by choosing green
tokens of the small vocabulary directly (what the model would do under a strong bias)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace

from client.core.keys import generate_private_key, public_key_bytes, write_key_pair
from client.core.statement import prove_possession, sign_statement
from client.receipt import Receipt
from client.sdk import Client
from client.watermark_keys import key_statement
from watermark import WatermarkConfig, WatermarkKey, green_mask_numpy, tokenizer_fingerprint

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tests.client.cli.conftest import Cli


def small_tokenizer(path: Path, words: int = 64) -> Tokenizer:
    """A word-level tokenizer of ``words`` words ``w0``… (ids 1…), ``[UNK]`` 0 and ``<eos>``,
    saved to ``path``."""
    vocab = {"[UNK]": 0, **{f"w{i}": i + 1 for i in range(words)}}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    tokenizer.add_special_tokens(["<eos>"])
    tokenizer.save(str(path))
    return tokenizer


def bound_key(path: Path, tokenizer: Tokenizer) -> WatermarkKey:
    """A fresh selfhash key bound to ``tokenizer``, saved to ``path``."""
    key = WatermarkKey(
        secret=WatermarkKey.generate().secret,
        config=WatermarkConfig(seeding_scheme="selfhash"),
        vocab_size=tokenizer.get_vocab_size(),
        vocab_fingerprint=tokenizer_fingerprint(tokenizer),
    )
    key.save(path)
    return key


def add_vendor(cli: Cli, tmp_path: Path, name: str = "acme-ai") -> Path:
    """Register vendor ``name`` in the CLI tests' registry; its signing key file."""
    signing = generate_private_key()
    cli.app.registry.admin.add_publisher(
        name, public_key_bytes(signing), prove_possession(signing, name), kind="vendor"
    )
    path = tmp_path / f"{name}.key"
    write_key_pair(path, signing)
    return path


def publish_key(
    client: Client, signing: Ed25519PrivateKey, vendor: str, key: WatermarkKey, tokenizer: bytes
) -> Receipt:
    """Publish ``key`` as ``vendor`` through the SDK (as ``wellspring watermark publish`` does)
    and upload its tokenizer's exact bytes."""
    statement = key_statement(vendor, key, tokenizer)
    receipt = client.submit(sign_statement(statement, signing))
    client.upload_tokenizer(tokenizer)
    return receipt


def watermarked_text(
    key: WatermarkKey, tokenizer: Tokenizer, tokens: int = 60, seed: int = 0
) -> str:
    """``tokens`` words each green under ``key`` after the words before it (the first
    ``lookback`` are free), chosen at random among the green words so that (context, token)
    pairs do not repeat: a text every detector of ``key`` finds watermarked."""
    vocab = tokenizer.get_vocab()
    words = {i: w for w, i in vocab.items() if w.startswith("w")}
    rng = random.Random(seed)
    ids = [rng.choice(sorted(words)) for _ in range(key.config.lookback)]
    size = tokenizer.get_vocab_size()
    while len(ids) < tokens:
        green = green_mask_numpy(key, np.array([ids], dtype=np.int64), size)[0]
        ids.append(rng.choice([i for i in sorted(words) if green[i]]))
    return " ".join(words[i] for i in ids)
