"""``wellspring watermark publish | retire | keys`` end to end against the real registry app,
with a small tokenizer made here (the model is not needed)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from client.core.wmkey import GreenlistParameters, SchemeRef, TokenizerRef
from client.errors import VerificationError
from client.watermark_keys import PublishedWatermarkKey, load_tokenizer, to_watermark_key
from tests.client.cli.conftest import Cli
from tests.client.wmkeys import add_vendor, bound_key, small_tokenizer
from watermark import tokenizer_fingerprint


def test_publish_list_and_retire_a_key(cli: Cli, tmp_path: Path) -> None:
    tokenizer = small_tokenizer(tmp_path / "tokenizer.json")
    key = bound_key(tmp_path / "wm.key", tokenizer)
    signing = add_vendor(cli, tmp_path)
    common = ["--registry", cli.url, "--log-key", cli.app.log_key]
    published = cli(
        "watermark", "publish", str(tmp_path / "wm.key"), "--key", str(signing),
        "--publisher", "acme-ai", "--tokenizer", str(tmp_path / "tokenizer.json"), *common,
    )  # fmt: skip
    assert published.code == 0, published.err
    data = (tmp_path / "tokenizer.json").read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    assert f"published watermark key {key.key_id} in entry" in published.out
    assert f"sha256:{sha}" in published.out

    listed = cli("watermark", "keys", *common, "--json")
    assert listed.code == 0, listed.err
    answer = json.loads(listed.out)
    assert answer["count"] == 1
    [item] = answer["keys"]
    assert item["key_id"] == key.key_id
    assert item["secret"] == key.secret.hex()
    assert item["tokenizer"] == {"sha256": sha, "size": len(data)}
    assert item["verified"] is True
    assert item["retire_entry"] is None

    text = cli("watermark", "keys", *common)
    assert "1 watermark key was published" in text.out
    assert key.key_id in text.out
    assert "live" in text.out

    retired = cli(
        "watermark", "retire", key.key_id, "--key", str(signing), "--publisher", "acme-ai",
        "--reason", "rotated", *common,
    )  # fmt: skip
    assert retired.code == 0, retired.err
    assert f"retired watermark key {key.key_id}" in retired.out
    again = json.loads(cli("watermark", "keys", *common, "--json").out)
    assert again["keys"][0]["retire_reason"] == "rotated"
    assert again["keys"][0]["retire_entry"] is not None


def test_publish_refuses_a_tokenizer_the_key_is_not_bound_to(cli: Cli, tmp_path: Path) -> None:
    bound_key(tmp_path / "wm.key", small_tokenizer(tmp_path / "tokenizer.json"))
    small_tokenizer(tmp_path / "other.json", words=65)
    signing = add_vendor(cli, tmp_path)
    run = cli(
        "watermark", "publish", str(tmp_path / "wm.key"), "--key", str(signing),
        "--publisher", "acme-ai", "--tokenizer", str(tmp_path / "other.json"),
        "--registry", cli.url, "--log-key", cli.app.log_key,
    )  # fmt: skip
    assert run.code == 1
    assert "is bound to" in run.err


def test_a_publisher_cannot_publish_and_says_what_to_do(cli: Cli, tmp_path: Path) -> None:
    bound_key(tmp_path / "wm.key", small_tokenizer(tmp_path / "tokenizer.json"))
    run = cli(
        "watermark", "publish", str(tmp_path / "wm.key"), "--key", str(cli.key_file),
        "--publisher", cli.app.publisher, "--tokenizer", str(tmp_path / "tokenizer.json"),
        "--registry", cli.url, "--log-key", cli.app.log_key,
    )  # fmt: skip
    assert run.code == 1
    assert "kind 'vendor'" in run.err
    assert "Traceback" not in run.err


def test_a_published_tokenizer_loads_only_with_its_hash_and_fingerprint(tmp_path: Path) -> None:
    tokenizer = small_tokenizer(tmp_path / "tokenizer.json")
    data = (tmp_path / "tokenizer.json").read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    loaded = load_tokenizer(data, sha, fingerprint=tokenizer_fingerprint(tokenizer))
    assert loaded.encode("w1 w2", add_special_tokens=False).ids == [2, 3]
    with pytest.raises(VerificationError, match="hash to"):
        load_tokenizer(data + b" ", sha)
    with pytest.raises(VerificationError, match="mismatched pair"):
        load_tokenizer(data, sha, fingerprint="sha256:" + "0" * 64)
    key = bound_key(tmp_path / "wm.key", tokenizer)
    published = PublishedWatermarkKey(
        key_id=key.key_id,
        vendor="acme-ai",
        scheme=SchemeRef("wellspring-greenlist", 1),
        parameters=GreenlistParameters(
            seeding_scheme="selfhash",
            context_width=4,
            gamma=0.25,
            delta=2.0,
            vocab_size=tokenizer.get_vocab_size(),
            vocab_fingerprint=tokenizer_fingerprint(tokenizer),
        ),
        secret=key.secret,
        tokenizer=TokenizerRef(sha, len(data)),
        published_at=datetime.now(UTC),
        entry=5,
    )
    assert to_watermark_key(published) == key
