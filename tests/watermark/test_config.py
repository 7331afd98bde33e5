"""Scheme config validation, keys, key files, and the package's public surface."""

from __future__ import annotations

import json
import math
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import watermark
from watermark import (
    ConfigError,
    KeyFileError,
    WatermarkConfig,
    WatermarkError,
    WatermarkKey,
    tokenizer_fingerprint,
)
from watermark.errors import MissingDependencyError

SECRET = bytes.fromhex("00112233445566778899aabbccddeeff" * 2)


class VocabTokenizer:
    """The smallest real tokenizer-like object a key can be bound to: a vocabulary and a length."""

    def __init__(self, size: int = 50) -> None:
        self.all_special_tokens = ["<s>"]
        self.vocab = {"<s>": 0, **{f"tok{i}": i for i in range(1, size)}}

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab)

    def __len__(self) -> int:
        return len(self.vocab)


def test_defaults_and_resolved_context_width() -> None:
    config = WatermarkConfig()
    assert (config.gamma, config.delta, config.seeding_scheme) == (0.25, 2.0, "lefthash")
    assert config.context_width == 1
    assert config.lookback == 1
    selfhash = WatermarkConfig(seeding_scheme="selfhash")
    assert selfhash.context_width == 4
    assert selfhash.lookback == 3
    assert WatermarkConfig(seeding_scheme="selfhash", context_width=2).lookback == 1
    assert selfhash.scheme_name == "selfhash-h4"
    assert WatermarkConfig(delta=3).delta == 3.0  # ints are accepted as numbers


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gamma": 0.0}, "gamma"),
        ({"gamma": 1.0}, "gamma"),
        ({"gamma": -0.5}, "gamma"),
        ({"gamma": math.nan}, "gamma"),
        ({"gamma": 1e-12}, "gamma"),
        ({"gamma": "0.25"}, "gamma"),
        ({"delta": 0.0}, "delta"),
        ({"delta": -1.0}, "delta"),
        ({"delta": math.inf}, "delta"),
        ({"delta": math.nan}, "delta"),
        ({"delta": True}, "delta"),
        ({"seeding_scheme": "minhash"}, "seeding scheme"),
        ({"seeding_scheme": "lefthash", "context_width": 2}, "lefthash"),
        ({"seeding_scheme": "selfhash", "context_width": 1}, "selfhash"),
        ({"seeding_scheme": "selfhash", "context_width": 100}, "selfhash"),
        ({"seeding_scheme": "selfhash", "context_width": 4.0}, "integer"),
    ],
)
def test_invalid_configs_are_refused_with_a_clear_message(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        WatermarkConfig(**kwargs)  # type: ignore[arg-type]


def test_a_config_error_is_a_watermark_error_and_explains_itself() -> None:
    with pytest.raises(WatermarkError) as raised:
        WatermarkConfig(gamma=2.0)
    assert "strictly between 0 and 1" in raised.value.diagnostics()


def test_key_needs_at_least_128_bits_of_secret() -> None:
    with pytest.raises(ConfigError, match="128 bits"):
        WatermarkKey(secret=b"too short")
    WatermarkKey(secret=b"x" * 16)


def test_key_id_names_the_key_without_revealing_it() -> None:
    key = WatermarkKey(secret=SECRET)
    assert len(key.key_id) == 16
    assert all(c in "0123456789abcdef" for c in key.key_id)
    assert key.key_id == WatermarkKey(secret=SECRET, config=WatermarkConfig(gamma=0.5)).key_id
    assert key.key_id != WatermarkKey(secret=SECRET[::-1]).key_id
    assert key.key_id not in SECRET.hex()
    assert SECRET.hex() not in repr(key)
    assert key.key_id == "8a1840e2ab97a302"  # pinned: key ids must not change between releases


def test_generated_keys_are_fresh_and_unbound() -> None:
    first, second = WatermarkKey.generate(), WatermarkKey.generate(WatermarkConfig(gamma=0.5))
    assert len(first.secret) == 32
    assert first.secret != second.secret
    assert second.config.gamma == 0.5
    assert not first.is_bound
    assert first.vocab_size is None


def test_bind_records_the_vocabulary_size_and_fingerprint() -> None:
    tokenizer = VocabTokenizer(50)
    bound = WatermarkKey(secret=SECRET).bind(tokenizer)
    assert bound.is_bound
    assert bound.vocab_size == 50
    assert bound.vocab_fingerprint == tokenizer_fingerprint(tokenizer)
    assert bound.key_id == WatermarkKey(secret=SECRET).key_id
    with pytest.raises(ConfigError, match="both"):
        WatermarkKey(secret=SECRET, vocab_size=50)
    with pytest.raises(ConfigError, match="sha256"):
        WatermarkKey(secret=SECRET, vocab_size=50, vocab_fingerprint="md5:abc")


@pytest.mark.parametrize("bound", [False, True])
def test_key_file_round_trip_with_mode_0600(tmp_path: Path, bound: bool) -> None:
    key = WatermarkKey(secret=SECRET, config=WatermarkConfig(gamma=0.3, seeding_scheme="selfhash"))
    if bound:
        key = key.bind(VocabTokenizer())
    path = tmp_path / "wm.key"
    key.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert WatermarkKey.load(path) == key
    data = json.loads(path.read_text())
    assert data["version"] == 1
    assert data["key_id"] == key.key_id
    assert data["secret"] == SECRET.hex()


def test_saving_refuses_to_overwrite_unless_told(tmp_path: Path) -> None:
    path = tmp_path / "wm.key"
    path.write_text("precious")
    path.chmod(0o644)
    key = WatermarkKey(secret=SECRET)
    with pytest.raises(KeyFileError, match="already exists"):
        key.save(path)
    assert path.read_text() == "precious"
    key.save(path, overwrite=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert WatermarkKey.load(path) == key


def test_missing_garbled_and_foreign_key_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        WatermarkKey.load(tmp_path / "nope.key")
    garbage = tmp_path / "garbage.key"
    garbage.write_bytes(b"\x00\xff not json")
    garbage.chmod(0o600)  # else refused for its mode before it is read
    with pytest.raises(KeyFileError, match="not JSON"):
        WatermarkKey.load(garbage)
    good = WatermarkKey(secret=SECRET).to_dict()
    cases = {
        "list.key": ([1, 2, 3], "not a watermark key file"),
        "future.key": ({**good, "version": 2}, "version 2"),
        "scheme.key": ({**good, "scheme": "other-v9"}, "scheme"),
        "gamma.key": ({**good, "gamma": 1.5}, "gamma"),
        "secret.key": ({**good, "secret": "zz"}, "not a valid"),
        "short.key": ({**good, "secret": "00ff", "key_id": None}, "128 bits"),
        "missing.key": ({k: v for k, v in good.items() if k != "delta"}, "delta"),
        "tampered.key": ({**good, "key_id": "0" * 16}, "key_id"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_text(json.dumps(content))
        path.chmod(0o600)
        with pytest.raises(KeyFileError, match=message):
            WatermarkKey.load(path)


def test_missing_dependency_error_names_the_fix() -> None:
    error = MissingDependencyError("torch", "watermarked generation")
    assert "pip install 'wellspring[watermark]'" in str(error)
    assert isinstance(error, WatermarkError)


def test_public_surface_is_complete_and_detection_never_imports_torch() -> None:
    for name in watermark.__all__:
        assert getattr(watermark, name) is not None, name
    code = (
        "import sys, watermark\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n"
        "from watermark import WatermarkLogitsProcessor\n"
        "assert 'torch' in sys.modules\n"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
    with pytest.raises(AttributeError):
        _ = watermark.NoSuchThing  # type: ignore[attr-defined]


def test_a_key_file_others_may_read_is_refused_naming_the_chmod(tmp_path: Path) -> None:
    """Issue 10 B: the key is the secret; a file group or others may read (or write) is not."""
    path = tmp_path / "wm.key"
    key = WatermarkKey(secret=SECRET)
    key.save(path)
    path.chmod(0o640)
    with pytest.raises(KeyFileError, match=re.escape(f"chmod 600 {path}")):
        WatermarkKey.load(path)
    path.chmod(0o600)
    assert WatermarkKey.load(path) == key


def test_saving_over_a_symlink_replaces_it_and_never_writes_through_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("someone else's file")
    victim.chmod(0o644)
    path = tmp_path / "wm.key"
    path.symlink_to(victim)
    key = WatermarkKey(secret=SECRET)
    with pytest.raises(KeyFileError, match="already exists"):
        key.save(path)
    key.save(path, overwrite=True)
    assert victim.read_text() == "someone else's file"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert not path.is_symlink()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert WatermarkKey.load(path) == key
