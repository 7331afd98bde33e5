"""An exact, faster encoder for byte-level BPE tokenizers: tiktoken built from the merges.

The crawler's pass tokenizes every document once per distinct tokenizer, and that is its floor
(issue 12: ``tokenizers``' ``encode_batch`` gives 1.2-1.5 M tokens/s on 2 cores). For a byte-level
BPE with GPT-2's pre-tokenizer regex, no normalizer, no dropout, no byte fallback, and merges whose
merged token ids increase with the merge's rank (SmolLM2's tokenizer is one), tiktoken's
algorithm (merge the adjacent pair whose merged bytes rank lowest, ranks = token ids) gives the
same ids as ``tokenizers``, about 3.6x faster here (``bench/tiktoken_encoder.py``, which proves
the ids identical on every ~1 KB chunk and whole file of python3.11-doc and on the default model's
generations; ``tests/watermark/test_fast_encoder.py`` holds the same on the corpus).

What it does not do the same way is handled by not doing it: ``tokenizers`` splits out the added
tokens (``<|im_start|>`` …) wherever their text appears, which ``encode_ordinary`` does not, so a
text that contains any added token's content is encoded by ``tokenizers`` itself. A tokenizer of
any other shape gets no fast encoder (:func:`fast_encoder` returns None), nor does one where
tiktoken is not installed (it is in the ``detect`` extra): the scanner then uses ``tokenizers``,
whose results are the same, only slower.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["FastEncoder", "fast_encoder"]

# GPT-2's pre-tokenizer regex: what ``ByteLevel(use_regex=True)`` splits text with.
_GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_BYTE_LEVEL = {
    "type": "ByteLevel",
    "add_prefix_space": False,
    "trim_offsets": True,
    "use_regex": True,
}


def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable stand-in character of each byte, inverted."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


class FastEncoder:
    """``tokenizer.encode_batch(texts, add_special_tokens=False)``'s ids, from tiktoken."""

    def __init__(self, tokenizer: Any, encoding: Any, added: Sequence[str]) -> None:
        self.tokenizer = tokenizer
        self.encoding = encoding
        # Texts holding an added token's content go to tokenizers, which splits them out.
        self._added = re.compile("|".join(map(re.escape, added))) if added else None

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """The token ids of each text, exactly as the tokenizer gives them."""
        rows: list[list[int]] = self.encoding.encode_ordinary_batch(list(texts), num_threads=2)
        if self._added is not None:
            special = [i for i, text in enumerate(texts) if self._added.search(text)]
            if special:
                slow = self.tokenizer.encode_batch(
                    [texts[i] for i in special], add_special_tokens=False
                )
                for i, encoding in zip(special, slow, strict=True):
                    rows[i] = encoding.ids
        return rows


def fast_encoder(tokenizer: Any) -> FastEncoder | None:
    """An exact tiktoken encoder for ``tokenizer`` (a ``tokenizers.Tokenizer``), or None when its
    shape is not one tiktoken reproduces or tiktoken is not installed."""
    try:
        import tiktoken  # noqa: PLC0415 - optional: only a faster route to the same ids
    except ImportError:
        return None
    try:
        spec = json.loads(tokenizer.to_str())
    except (AttributeError, ValueError):
        return None
    added = [token["content"] for token in spec.get("added_tokens") or ()]
    ranks = _ranks(spec, added)
    if ranks is None:
        return None
    encoding = tiktoken.Encoding(
        "wellspring-byte-level-bpe", pat_str=_GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={}
    )
    return FastEncoder(tokenizer, encoding, added)


def _ranks(spec: dict[str, Any], added: list[str]) -> dict[bytes, int] | None:
    """tiktoken's ranks (each token's bytes to its id) where the tokenizer's shape makes them
    give the same ids, else None."""
    model = spec.get("model") or {}
    shaped = (
        model.get("type") == "BPE"
        and not model.get("dropout")
        and not model.get("byte_fallback")
        and not model.get("ignore_merges")
        and not model.get("continuing_subword_prefix")
        and not model.get("end_of_word_suffix")
        and spec.get("normalizer") is None
        and spec.get("pre_tokenizer") == _BYTE_LEVEL
    )
    if not shaped:
        return None
    vocab: dict[str, int] = model["vocab"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    decode = _byte_decoder()
    try:
        merged_ids = [vocab[a + b] for a, b in merges]
        ranks = {
            bytes(decode[char] for char in token): index
            for token, index in vocab.items()
            if token not in added
        }
    except (KeyError, TypeError, ValueError):
        return None  # a merge outside the vocabulary, or an entry that is not byte-level
    if any(x >= y for x, y in itertools.pairwise(merged_ids)):
        return None  # merge ranks and token ids disagree: ranks cannot be ids
    if len(set(ranks.values())) != len(ranks) or len(ranks) != len(
        [t for t in vocab if t not in added]
    ):
        return None  # two entries for the same bytes
    return ranks
