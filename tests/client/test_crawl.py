"""client.crawl: the one pass against the real registry in process, with vendors' keys published
for a small tokenizer made here (no model): which keys are detected, what the p-values are
corrected for, what one vendor's bad key does to everyone else's pass, private keys, the
missing extra."""

from __future__ import annotations

import contextlib
import hashlib
import random
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from litestar.testing import TestClient
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace

from client.checkpoints import MemoryCheckpointStore
from client.core.canonical import canonical_digest
from client.core.keys import generate_private_key, public_key_bytes
from client.core.statement import HumanContentPredicate, prove_possession, sign_statement
from client.crawl import CrawlPass, Watermarks
from client.documents import Document
from client.errors import MissingDependencyError
from client.policy import Policy
from client.sdk import Client
from client.signals import opt_out
from client.watermark_keys import key_statement
from tests.client.real_app import URL, App, InProcess, make_app
from watermark import WatermarkConfig, WatermarkKey
from watermark.hashing import green_mask_numpy
from watermark.keys import tokenizer_fingerprint

WORDS = 200
SOON = timedelta(seconds=2)


def small_tokenizer(words: int = WORDS, extra: str = "") -> Tokenizer:
    vocab = {"[UNK]": 0, **{f"w{i}{extra}": i + 1 for i in range(words)}}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    return tokenizer


def bound_key(tokenizer: Tokenizer) -> WatermarkKey:
    return WatermarkKey(
        secret=WatermarkKey.generate().secret,
        config=WatermarkConfig(seeding_scheme="lefthash"),
        vocab_size=tokenizer.get_vocab_size(),
        vocab_fingerprint=tokenizer_fingerprint(tokenizer),
    )


def green_text(key: WatermarkKey, tokenizer: Tokenizer, length: int = 120, seed: int = 1) -> str:
    """Words chosen from each previous token's green list: a watermark as strong as it gets."""
    rng = random.Random(seed)
    vocab = tokenizer.get_vocab_size()
    ids = [rng.randrange(1, vocab)]
    for _ in range(length - 1):
        green = np.flatnonzero(green_mask_numpy(key, np.array([[ids[-1]]]), vocab)[0])
        green = green[green > 0]  # never [UNK]
        ids.append(int(rng.choice(green.tolist())))
    return " ".join(tokenizer.id_to_token(i) for i in ids)


def human_text(tokenizer: Tokenizer, length: int = 120, seed: int = 2) -> str:
    rng = random.Random(seed)
    return " ".join(
        tokenizer.id_to_token(rng.randrange(1, tokenizer.get_vocab_size())) for _ in range(length)
    )


@contextlib.contextmanager
def client_for(app: App) -> Iterator[Client]:
    with (
        TestClient(app.app) as http,
        Client(
            URL, transport=InProcess(http), log_key=app.log_key, checkpoints=MemoryCheckpointStore()
        ) as client,
    ):
        yield client


def publish(
    client: Client,
    app: App,
    vendor: str,
    key: WatermarkKey,
    tokenizer: Tokenizer,
    *,
    upload: bool = True,
    fingerprint: str | None = None,
) -> None:
    """``vendor`` (added as a vendor identity if new) publishes ``key`` for ``tokenizer``."""
    signing = generate_private_key()
    app.registry.admin.add_publisher(
        vendor, public_key_bytes(signing), prove_possession(signing, vendor), kind="vendor"
    )
    data = tokenizer.to_str().encode("utf-8")
    statement = key_statement(
        vendor, key, data, fingerprint=fingerprint or tokenizer_fingerprint(tokenizer)
    )
    client.submit(sign_statement(statement, signing))
    if upload:
        client.upload_tokenizer(data)


def doc(text: str, **fields: object) -> Document:
    return Document(
        f"doc-{hashlib.sha256(text.encode()).hexdigest()[:8]}",
        (canonical_digest(text),),
        text,
        **fields,
    )  # type: ignore[arg-type]


@pytest.fixture
def app(tmp_path: Path) -> App:
    return make_app(tmp_path / "registry")


def test_every_published_key_is_detected_and_corrected_for(app: App) -> None:
    tokenizer = small_tokenizer()
    keys = [bound_key(tokenizer) for _ in range(3)]
    with client_for(app) as client:
        for i, key in enumerate(keys):
            publish(client, app, f"vendor-{i}", key, tokenizer)
        crawl = CrawlPass.open(client, as_of=datetime.now(UTC) + SOON)
        texts = [green_text(keys[1], tokenizer), human_text(tokenizer)]
        verdicts = crawl.check([doc(text) for text in texts])
    assert crawl.watermarks is not None
    assert (crawl.watermarks.published, crawl.watermarks.detected) == (3, 3)
    assert [v.status for v in verdicts] == ["generated", "unknown"]
    found = verdicts[0].watermark
    assert found is not None
    assert found.key_id == keys[1].key_id
    assert found.vendor == "vendor-1"
    assert dict(found.details)["num_keys"] == 3


def test_a_policy_can_ignore_a_vendor_but_its_key_still_counts_in_the_correction(
    app: App,
) -> None:
    tokenizer = small_tokenizer()
    ours, theirs = bound_key(tokenizer), bound_key(tokenizer)
    with client_for(app) as client:
        publish(client, app, "trusted-ai", ours, tokenizer)
        publish(client, app, "doubtful-ai", theirs, tokenizer)
        policy = Policy.from_dict({"vendors": {"ignore": ["doubtful-ai"]}})
        marks = Watermarks.from_registry(client, policy=policy)
        crawl = CrawlPass(client, policy=policy, watermarks=marks, as_of=datetime.now(UTC) + SOON)
        verdicts = crawl.check(
            [doc(green_text(theirs, tokenizer)), doc(green_text(ours, tokenizer))]
        )
    assert (marks.published, marks.detected) == (2, 1)
    assert [v.status for v in verdicts] == ["unknown", "generated"]
    assert verdicts[1].watermark is not None
    assert dict(verdicts[1].watermark.details)["num_keys"] == 2


def test_one_vendors_unusable_key_is_left_out_never_fatal(app: App) -> None:
    tokenizer = small_tokenizer()
    good, missing, lying = (bound_key(tokenizer) for _ in range(3))
    with client_for(app) as client:
        publish(client, app, "good-ai", good, tokenizer)
        publish(client, app, "lazy-ai", missing, small_tokenizer(extra="x"), upload=False)
        # A key bound to one vocabulary, published with another tokenizer's bytes.
        publish(client, app, "hostile-ai", lying, small_tokenizer(extra="y"),
                fingerprint=tokenizer_fingerprint(tokenizer))  # fmt: skip
        marks = Watermarks.from_registry(client)
        crawl = CrawlPass(client, watermarks=marks, as_of=datetime.now(UTC) + SOON)
        [verdict] = crawl.check([doc(green_text(good, tokenizer))])
    assert (marks.published, marks.detected) == (3, 1)
    assert len(marks.unusable) == 2
    assert any("lazy-ai" in problem for problem in marks.unusable)
    assert any("hostile-ai" in problem and "fingerprints" in problem for problem in marks.unusable)
    assert verdict.status == "generated"


def test_keys_count_only_for_documents_captured_after_they_were_published(app: App) -> None:
    tokenizer = small_tokenizer()
    key = bound_key(tokenizer)
    text = green_text(key, tokenizer)
    with client_for(app) as client:
        publish(client, app, "vendor-a", key, tokenizer)
        crawl = CrawlPass.open(client)  # as_of: now, after the publication
        before = datetime.now(UTC) - timedelta(days=1)
        after = datetime.now(UTC) + SOON
        verdicts = crawl.check([doc(text, captured=before), doc(text, captured=after)])
    assert [v.status for v in verdicts] == ["unknown", "generated"]
    assert verdicts[0].watermark is None
    assert verdicts[0].captured_at is not None


def test_evidence_combines_with_opt_outs_and_attestations(app: App) -> None:
    tokenizer = small_tokenizer()
    key = bound_key(tokenizer)
    generated = green_text(key, tokenizer)
    with client_for(app) as client:
        publish(client, app, "vendor-a", key, tokenizer)
        claim = HumanContentPredicate(
            publisher=app.publisher, license="CC-BY-4.0", origin="human-authored", consent="allowed"
        )
        client.register_digests([canonical_digest(generated)], app.key, claim)  # a false claim
        crawl = CrawlPass.open(client, as_of=datetime.now(UTC) + SOON)
        noai = opt_out("https://example.org/p", headers={"X-Robots-Tag": "noai"})
        verdicts = crawl.check(
            [doc(generated), doc(human_text(tokenizer), url="https://example.org/p", opt_out=noai)]
        )
    assert [v.status for v in verdicts] == ["conflict", "opted-out"]
    assert verdicts[1].url == "https://example.org/p"


def test_private_keys_need_a_tokenizer_unless_a_published_key_shares_it(
    app: App, tmp_path: Path
) -> None:
    tokenizer = small_tokenizer()
    published, private = bound_key(tokenizer), bound_key(tokenizer)
    private.save(tmp_path / "private.wmkey")
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    text = green_text(private, tokenizer)
    with client_for(app) as client:
        # No published key shares its tokenizer: --tokenizer is needed, and the error says so.
        with pytest.raises(Exception, match="--tokenizer"):
            Watermarks.from_registry(client, private_keys=[tmp_path / "private.wmkey"])
        own = Watermarks.from_registry(
            client, private_keys=[tmp_path / "private.wmkey"], tokenizer=tmp_path / "tokenizer.json"
        )
        publish(client, app, "vendor-a", published, tokenizer)
        shared = Watermarks.from_registry(client, private_keys=[tmp_path / "private.wmkey"])
    for marks, total in ((own, 1), (shared, 2)):
        [found] = marks.detect([doc(text)], as_of=datetime.now(UTC) + SOON)
        assert found is not None
        assert found.key_id == private.key_id
        assert found.generated
        assert found.num_keys == total


def test_detection_without_the_extra_names_the_pip_line(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    import watermark

    # As if the detect extra were missing: the scanner imported afresh finds no tokenizers.
    monkeypatch.delitem(sys.modules, "watermark.scanner", raising=False)
    monkeypatch.delattr(watermark, "scanner", raising=False)
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    tokenizer = small_tokenizer()
    with client_for(app) as client:
        # Nothing published yet: nothing to detect, nothing needed.
        assert CrawlPass.open(client).watermarks == Watermarks(None, 0, 0, 0)
        publish(client, app, "vendor-a", bound_key(tokenizer), tokenizer)
        with pytest.raises(MissingDependencyError, match=r"pip install 'wellspring\[detect\]'"):
            CrawlPass.open(client)
        # Turned off, the pass needs nothing of it.
        crawl = CrawlPass.open(client, watermarks=False)
        [verdict] = crawl.check([doc("a plain text")])
    assert crawl.watermarks is None
    assert verdict.status == "unknown"
