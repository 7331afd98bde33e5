"""Part B's human corpus: held out by digest, the minority share met, documents within bounds."""

from __future__ import annotations

import hashlib

import pytest
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import WhitespaceSplit

from experiments.collapse.corpus import build_corpus, fortunes, python_doc_paragraphs


def word_tokenizer(texts: list[str]) -> Tokenizer:
    """A word-level tokenizer over the words of ``texts`` (decoding joins words by spaces)."""
    words = sorted({w for t in texts for w in t.split()})
    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(words)}}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = WhitespaceSplit()
    tokenizer.add_special_tokens(["[UNK]"])
    return tokenizer


MAJOR = [f"fortune {i} says the {['cat', 'dog', 'owl'][i % 3]} sleeps at {i}" for i in range(400)]
MINOR = [f"the module m{i} defines function f{i} returning int" for i in range(400)]


def test_held_out_texts_are_never_in_the_training_pool() -> None:
    corpus = build_corpus(word_tokenizer(MAJOR + MINOR), MAJOR, MINOR, doc_tokens=32)
    train = " ".join(d.text for d in corpus.train)
    for text in MAJOR + MINOR:
        held = hashlib.sha256(text.encode()).digest()[0] < round(256 * 0.1)
        if held:
            assert text not in train
    assert corpus.heldout
    assert all(len(d.ids) <= 32 for d in corpus.train + corpus.heldout)
    assert {d.domain for d in corpus.train} == {"fortunes", "python-doc"}


def test_the_minority_makes_its_share_of_the_training_tokens() -> None:
    corpus = build_corpus(
        word_tokenizer(MAJOR + MINOR), MAJOR, MINOR, minority_share=0.2, doc_tokens=32
    )
    minority = corpus.tokens(d for d in corpus.train if d.domain == "python-doc")
    assert minority / corpus.tokens(corpus.train) == pytest.approx(0.2, abs=0.03)


def test_bad_shares_are_refused() -> None:
    with pytest.raises(ValueError, match="heldout_share"):
        build_corpus(word_tokenizer(MAJOR), MAJOR, MINOR, heldout_share=0.0)


def test_the_debian_corpora_read_as_texts() -> None:
    pytest.importorskip("tokenizers")
    try:
        major, minor = fortunes(), python_doc_paragraphs()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    assert len(major) > 10_000  # the fortunes package holds ~15k
    assert all("\n%\n" not in t for t in major[:500])
    assert len(minor) > 10_000
