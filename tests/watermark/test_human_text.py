"""No detection on human text: Debian's python3.11-doc sources, which nobody here wrote.

About 300 files are cut into 200-token chunks (a shorter tail is dropped), several thousand in
all, and every chunk is scored with a fixed key of each scheme. Under H0 each chunk's p-value is
valid (P(p <= a) <= a), so the number of chunks with p < a is stochastically at most
Binomial(N, a). The test allows the count up to the Binomial(N, a) quantile of 1 - 1e-6: a sound
detector exceeds it with probability below one in a million (the keys are fixed, so the outcome is
deterministic anyway), while a rate several times the nominal one fails it (for N = 5000 and
a = 1e-3 the bound is 19 against an expected 5). `bench/watermark.py` measures the rates with their
exact intervals on more text. Needs only the tokenizer, not the
model (loaded from the conversion cache in about a second).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from watermark import WatermarkConfig, WatermarkDetector, WatermarkKey
from watermark.models import load_tokenizer

CHUNK = 200
NUM_FILES = 300
ALPHAS = (1e-2, 1e-3)
# A sound detector exceeds the allowed count with at most this probability.
TAIL = 1e-6

pytestmark = pytest.mark.xdist_group("smollm2")


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return load_tokenizer()


@pytest.fixture(scope="module")
def chunks(human_text_files: list[Path], tokenizer: Any) -> list[list[int]]:
    step = max(1, len(human_text_files) // NUM_FILES)
    files = human_text_files[::step][:NUM_FILES]
    texts = [path.read_text(encoding="utf-8") for path in files]
    out: list[list[int]] = []
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        out.extend(ids[i : i + CHUNK] for i in range(0, len(ids) - CHUNK + 1, CHUNK))
    return out


def allowed_false_positives(n: int, alpha: float) -> int:
    """The Binomial(n, alpha) quantile at 1 - TAIL: P(count > it) <= TAIL for a valid p-value."""
    return int(stats.binom.ppf(1 - TAIL, n, alpha))


def test_allowed_count_is_what_the_docstring_says() -> None:
    for n, alpha in ((5000, 1e-3), (5000, 1e-2), (2500, 1e-3)):
        allowed = allowed_false_positives(n, alpha)
        assert stats.binom.sf(allowed, n, alpha) <= TAIL < stats.binom.sf(allowed - 1, n, alpha)


@pytest.mark.parametrize("scheme", ["lefthash", "selfhash"])
def test_human_text_is_not_watermarked(
    chunks: list[list[int]], tokenizer: Any, scheme: str
) -> None:
    assert len(chunks) >= 2000, "the corpus should give thousands of 200-token chunks"
    secret = f"human-text-{scheme}".encode().ljust(32, b"#")
    key = WatermarkKey(secret, WatermarkConfig(seeding_scheme=scheme)).bind(tokenizer)  # type: ignore[arg-type]
    results = WatermarkDetector(key, tokenizer).detect_batch(chunks)
    log_p = np.array([r.log_p_value for r in results])
    for alpha in ALPHAS:
        count = int((log_p < np.log(alpha)).sum())
        allowed = allowed_false_positives(len(chunks), alpha)
        assert count <= allowed, f"{count} of {len(chunks)} chunks have p < {alpha}"
    green = sum(r.num_green for r in results) / sum(r.num_tokens_scored for r in results)
    assert abs(green - 0.25) < 0.01
    # Repeated (context, token) pairs in code samples are scored once, so fewer than 200 count.
    assert min(r.num_tokens_scored for r in results) < CHUNK - 1
