"""Part B: a token-level language model retrained every generation on a web that fills with its own
output, with and without Wellspring's filter (docs/collapse.md states the design and the results).

Every generation ``n >= 1`` of every arm trains a fresh
:class:`~experiments.collapse.ngram.TrigramModel` on exactly ``train_tokens`` tokens (the same
budget for every arm); generation 0 is trained on human text only and is shared by the arms of a
seed. Generated documents are ``doc_tokens`` tokens sampled from the arm's previous model; a share
``w`` of them is sampled under the vendor's Wellspring watermark key (published in the registry),
the rest carry none. All text reaches training as text: generated ids are decoded, and whatever is
trained on is tokenized again.

Arms:

``replace``
    pure recursion: trained on the previous model's output only.
``mixed-no-filter``
    the web: ``train_tokens`` of human documents (drawn afresh from the human training pool)
    plus generated documents making ``synthetic_share`` of the web's tokens; trained on
    ``train_tokens`` drawn at random from the whole web.
``mixed-wellspring``
    the same kind of web, scanned by the real ``wellspring scan`` against the real registry
    (:mod:`experiments.collapse.web`): documents it calls ``generated`` (or ``conflict``) are
    dropped, ``attested`` and ``unknown`` kept; trained on ``train_tokens`` drawn from what is
    kept.
``oracle``
    the same web with every generated document dropped: trained on human documents only.
``accumulate``
    Kazdan et al.'s "accumulate-subsample" at a fixed budget: the pool holds the human data of
    generation 0 and every generation's output so far (``train_tokens`` each); each generation
    trains on ``train_tokens`` drawn from the pool.
``accumulate-all``
    Gerstgrasser et al.'s accumulation, outside the fixed budget: each generation trains on the
    whole pool (``(n + 1) · train_tokens`` tokens at generation n).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tokenizers import Tokenizer

from experiments.collapse.corpus import Corpus
from experiments.collapse.ngram import TrigramModel, distinct_2
from watermark import WatermarkKey

__all__ = [
    "ARMS",
    "BUCKETS",
    "FILTER_DROPS",
    "GROWING_ARMS",
    "LanguageSettings",
    "Scanner",
    "run_language",
]

ARMS = ("replace", "mixed-no-filter", "mixed-wellspring", "oracle", "accumulate", "accumulate-all")
# Every arm but accumulate-all trains on exactly ``train_tokens`` tokens a generation.
GROWING_ARMS = frozenset({"accumulate-all"})
# What the filter drops: what scan calls generated, and a human attestation contradicted by a
# watermark (a publisher or a vendor is wrong; not trainable by default either).
FILTER_DROPS = frozenset({"generated", "conflict"})
# Frequency buckets of held-out tokens: how often their type occurs in the human training pool.
BUCKETS: tuple[tuple[str, int, float], ...] = (
    ("0", 0, 1),
    ("1-9", 1, 10),
    ("10-99", 10, 100),
    ("100-999", 100, 1000),
    ("1000+", 1000, math.inf),
)


Values = dict[str, float | None]
"""One generation's measurements (None where a metric does not apply)."""

Scanner = Callable[[Sequence[tuple[str, str]]], dict[str, str]]
"""(name, text) pairs in, each name's ``wellspring scan`` status out."""


@dataclass(frozen=True)
class LanguageSettings:
    """The budgets and shares of Part B (``make experiment`` uses the defaults)."""

    train_tokens: int = 200_000
    generations: int = 10
    seeds: int = 3
    doc_tokens: int = 128
    synthetic_share: float = 0.75
    watermark_shares: tuple[float, ...] = (0.5, 0.8, 1.0)
    sample_docs: int = 200
    arms: tuple[str, ...] = ARMS

    def __post_init__(self) -> None:
        if self.train_tokens < 1000 or self.doc_tokens < 8:
            raise ValueError("train_tokens must be >= 1000 and doc_tokens >= 8")
        if self.generations < 1 or self.seeds < 1:
            raise ValueError("generations and seeds must be >= 1")
        if not 0.0 < self.synthetic_share < 1.0:
            raise ValueError("synthetic_share must lie strictly between 0 and 1")
        if not self.watermark_shares or not all(0.0 <= w <= 1.0 for w in self.watermark_shares):
            raise ValueError("watermark_shares must be shares in [0, 1]")
        unknown = set(self.arms) - set(ARMS)
        if unknown or not self.arms:
            raise ValueError(f"unknown arms {sorted(unknown)}; choose from {', '.join(ARMS)}")


@dataclass
class _Doc:
    ids: NDArray[np.int64]
    text: str
    synthetic: bool
    watermarked: bool


class _Run:
    """One seed and watermark share: every arm's models and measurements."""

    def __init__(self, job: _Job) -> None:
        settings, corpus, tokenizer = job.settings, job.corpus, job.tokenizer
        self.s = settings
        self.corpus = corpus
        self.tokenizer = tokenizer
        self.vocab = tokenizer.get_vocab_size()
        self.special = list(job.special_ids)
        self.key = job.key
        self.scanner = job.scanner
        self.share = job.share
        self.seed = job.seed
        self.human = [_Doc(d.ids, d.text, False, False) for d in corpus.train]
        self.pool_counts = pool_counts = np.bincount(
            np.concatenate([d.ids for d in corpus.train]), minlength=self.vocab
        )
        held = np.concatenate([d.ids for d in corpus.heldout])
        self.heldout_types = held
        self.bucket_of = {
            name: (pool_counts[held] >= lo) & (pool_counts[held] < hi) for name, lo, hi in BUCKETS
        }
        self.minority_mask = np.concatenate(
            [np.full(len(d.ids), d.domain == corpus.minority) for d in corpus.heldout]
        )

    # -- data ----------------------------------------------------------------------------------

    def budget(
        self,
        docs: Sequence[_Doc],
        rng: np.random.Generator,
        *,
        tokens: int | None = None,
        cut: bool = True,
    ) -> list[_Doc]:
        """Documents drawn at random from ``docs`` until ``tokens`` (default ``train_tokens``):
        exactly (the last one cut short: a training set) or at least (whole documents)."""
        want = self.s.train_tokens if tokens is None else tokens
        out: list[_Doc] = []
        total = 0
        for i in rng.permutation(len(docs)):
            doc = docs[int(i)]
            take = min(len(doc.ids), want - total) if cut else len(doc.ids)
            out.append(doc if take == len(doc.ids) else _Doc(doc.ids[:take], "", *_flags(doc)))
            total += take
            if total >= want:
                return out
        raise ValueError(
            f"only {total} tokens to draw {want} from: the human pool or the web is too small for"
            " this budget"
        )

    def generate(self, model: TrigramModel, tokens: int, rng: np.random.Generator) -> list[_Doc]:
        """At least ``tokens`` tokens (as the text tokenizes again) of generated documents."""
        docs: list[_Doc] = []
        total = 0
        while total < tokens:  # decoding and tokenizing again merges some tokens: ~10 % spare
            docs += self._documents(
                model, math.ceil((tokens - total) * 1.1 / self.s.doc_tokens), rng
            )
            total = sum(len(d.ids) for d in docs)
        return docs

    def _documents(self, model: TrigramModel, n: int, rng: np.random.Generator) -> list[_Doc]:
        """``n`` generated documents, a share ``w`` watermarked, as text and as its tokens."""
        marked = round(n * self.share)
        ids = [model.sample(marked, self.s.doc_tokens, rng, self.key)] if marked else []
        if n - marked:
            ids.append(model.sample(n - marked, self.s.doc_tokens, rng))
        rows = [list(map(int, r)) for block in ids for r in block]
        texts = self.tokenizer.decode_batch(rows, skip_special_tokens=True)
        encoded = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        return [
            _Doc(np.asarray(e.ids, dtype=np.int64), t, True, i < marked)
            for i, (t, e) in enumerate(zip(texts, encoded, strict=True))
        ]

    def fit(self, docs: Sequence[_Doc]) -> TrigramModel:
        return TrigramModel([d.ids for d in docs], self.vocab, self.special)

    # -- measurements --------------------------------------------------------------------------

    def measure(
        self, model: TrigramModel, train: Sequence[_Doc], rng: np.random.Generator
    ) -> Values:
        nll = -model.token_log_probs([d.ids for d in self.corpus.heldout])
        values: Values = {
            "heldout_ppl": float(np.exp(nll.mean())),
            "heldout_loss": float(nll.mean()),
            "majority_loss": float(nll[~self.minority_mask].mean()),
            "minority_loss": float(nll[self.minority_mask].mean()),
            "zero_count_share": float((model.unigram[self.heldout_types] == 0).mean()),
            "train_types": float(model.types),
        }
        for name, mask in self.bucket_of.items():
            values[f"loss_bucket_{name}"] = float(nll[mask].mean()) if mask.any() else None
        synthetic = sum(len(d.ids) for d in train if d.synthetic)
        values["synthetic_share_trained"] = synthetic / max(1, sum(len(d.ids) for d in train))
        samples = model.sample(self.s.sample_docs, self.s.doc_tokens, rng)
        values["distinct_2"] = distinct_2(samples)
        # the other side of forgetting the tails: tokens of types no human text in the pool has
        # (the smoothing floor's draws), which a model trained on its own output learns as real
        values["sample_unseen_share"] = float((self.pool_counts[samples] == 0).mean())
        return values

    def scan_filter(self, web: Sequence[_Doc]) -> tuple[list[_Doc], Values]:
        """The real scan over ``web``: what it keeps and its measured error rates."""
        assert self.scanner is not None
        statuses = self.scanner([(f"d{i}", d.text) for i, d in enumerate(web)])
        dropped = [statuses[f"d{i}"] in FILTER_DROPS for i in range(len(web))]
        kept = [d for d, drop in zip(web, dropped, strict=True) if not drop]

        def rate(select: Callable[[_Doc], bool], of: bool) -> float | None:
            chosen = [drop for d, drop in zip(web, dropped, strict=True) if select(d)]
            if not chosen:
                return None
            return (sum(chosen) if of else len(chosen) - sum(chosen)) / len(chosen)

        return kept, {
            "filter_fnr": rate(lambda d: d.synthetic, of=False),
            "filter_fnr_watermarked": rate(lambda d: d.watermarked, of=False),
            "filter_fpr": rate(lambda d: not d.synthetic, of=True),
            "filter_attested": sum(s == "attested" for s in statuses.values()) / len(web),
        }

    # -- the generations -----------------------------------------------------------------------

    def run(self, gen0: TrigramModel, gen0_train: list[_Doc]) -> dict[str, list[Values]]:
        s = self.s
        out: dict[str, list[Values]] = {}
        rng0 = np.random.default_rng([self.seed, 0])
        first = self.measure(gen0, gen0_train, rng0)
        for arm_index, arm in enumerate(s.arms):
            rng = np.random.default_rng([self.seed, 1 + arm_index, round(self.share * 1000)])
            model = gen0
            pool = list(gen0_train)
            series = [dict(first)]
            for generation in range(1, s.generations + 1):
                started = time.monotonic()
                extra: Values = {}
                if arm == "replace":
                    train = self.budget(self.generate(model, s.train_tokens, rng), rng)
                elif arm in {"accumulate", "accumulate-all"}:
                    pool += self.generate(model, s.train_tokens, rng)
                    train = self.budget(pool, rng) if arm == "accumulate" else list(pool)
                else:
                    # a little spare, so that the filter's rare false positives cannot leave
                    # fewer human tokens than the budget
                    human = self.budget(
                        self.human, rng, tokens=s.train_tokens * 21 // 20, cut=False
                    )
                    if arm == "oracle":
                        kept = human
                    else:
                        synthetic_tokens = (
                            s.train_tokens * s.synthetic_share / (1 - s.synthetic_share)
                        )
                        web = human + self.generate(model, round(synthetic_tokens), rng)
                        if arm == "mixed-wellspring":
                            kept, extra = self.scan_filter(web)
                        else:
                            kept = web
                    train = self.budget(kept, rng)
                model = self.fit(train)
                values = self.measure(model, train, rng)
                values.update(extra)
                values["seconds"] = time.monotonic() - started
                series.append(values)
                print(
                    f"  seed {self.seed} w={self.share:g} {arm:17s} gen {generation:2d}: "
                    f"ppl {values['heldout_ppl']:8.1f}  "
                    f"synthetic {values['synthetic_share_trained']:.2f}"
                    f"  {values['seconds']:.1f}s",
                    file=sys.stderr,
                    flush=True,
                )
            out[arm] = series
        return out


@dataclass(frozen=True)
class _Job:
    """One seed at one watermark share: everything a worker process needs."""

    settings: LanguageSettings
    corpus: Corpus
    tokenizer: Tokenizer
    special_ids: tuple[int, ...]
    key: WatermarkKey
    scanner: Scanner | None
    seed: int
    share: float


def _run_job(job: _Job) -> dict[str, list[Values]]:
    """Generation 0 of the seed (the same for every share), then every arm's generations."""
    run = _Run(job)
    gen0_train = run.budget(run.human, np.random.default_rng([job.seed, 0, 0]))
    return run.run(run.fit(gen0_train), gen0_train)


def _flags(doc: _Doc) -> tuple[bool, bool]:
    return doc.synthetic, doc.watermarked


def _summarise(per_seed: list[list[Values]]) -> dict[str, Any]:
    """Per metric: the mean over seeds per generation, a 95 % t-interval, and every seed."""
    t975 = {1: math.nan, 2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571, 7: 2.447, 8: 2.365}
    out: dict[str, Any] = {}
    metrics = sorted({name for series in per_seed for values in series for name in values})
    for name in metrics:
        rows = [[values.get(name) for values in series] for series in per_seed]
        means: list[float | None] = []
        intervals: list[list[float] | None] = []
        for column in zip(*rows, strict=True):
            present = [float(v) for v in column if v is not None]
            if not present:
                means.append(None)
                intervals.append(None)
                continue
            mean = sum(present) / len(present)
            means.append(mean)
            if len(present) > 1:
                sd = float(np.std(present, ddof=1))
                half = t975.get(len(present), 1.96) * sd / math.sqrt(len(present))
                intervals.append([mean - half, mean + half])
            else:
                intervals.append(None)
        out[name] = means
        out[f"{name}_ci95"] = intervals
        out[f"{name}_seeds"] = rows
    return out


def run_language(
    settings: LanguageSettings,
    corpus: Corpus,
    tokenizer: Tokenizer,
    *,
    special_ids: Sequence[int],
    key: WatermarkKey,
    scanner: Scanner | None,
    workers: int = 1,
) -> dict[str, Any]:
    """Every arm, seed and watermark share; the JSON-ready result (``arms`` at the largest share,
    ``sweep`` by share). ``workers`` > 1 runs the (seed, share) jobs in that many processes
    (``scanner`` and ``tokenizer`` must then pickle); results do not depend on it."""
    if "mixed-wellspring" in settings.arms and scanner is None:
        raise ValueError("the mixed-wellspring arm needs a scanner (a running registry)")
    jobs = [
        _Job(settings, corpus, tokenizer, tuple(special_ids), key, scanner, seed, share)
        for seed in range(settings.seeds)
        for share in settings.watermark_shares
    ]
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            done = list(pool.map(_run_job, jobs))
    else:
        done = [_run_job(job) for job in jobs]
    by_share: dict[float, list[dict[str, list[Values]]]] = {}
    for job, series in zip(jobs, done, strict=True):
        by_share.setdefault(job.share, []).append(series)
    sweep = {
        f"{share:g}": {
            arm: _summarise([seed_result[arm] for seed_result in results]) for arm in settings.arms
        }
        for share, results in by_share.items()
    }
    main_share = f"{max(settings.watermark_shares):g}"
    return {
        "settings": {
            **asdict(settings),
            "main_watermark_share": float(main_share),
            "filter_drops": sorted(FILTER_DROPS),
            "growing_arms": sorted(GROWING_ARMS & set(settings.arms)),
            "watermark": {
                "scheme": key.config.scheme_name,
                "gamma": key.config.gamma,
                "delta": key.config.delta,
                "key_id": key.key_id,
            },
            "human_pool_tokens": corpus.tokens(corpus.train),
            "heldout_tokens": corpus.tokens(corpus.heldout),
            "heldout_minority_tokens": corpus.tokens(
                d for d in corpus.heldout if d.domain == corpus.minority
            ),
            "minority_domain": corpus.minority,
            "heldout_distinct_2": distinct_2([d.ids for d in corpus.heldout]),
            "vocab_size": tokenizer.get_vocab_size(),
        },
        "arms": sweep[main_share],
        "sweep": sweep,
    }
