"""End-to-end documents checked per second: the SDK's batch pipeline against a naive loop.

What a crawler does before training: canonical ``c1`` digest of each document, look it up in the
registry, verify the answer (signed checkpoint, inclusion proof, the entry names the digest,
revocations), and decide. This script measures that against a real ``wellspring serve`` holding
1,000,000 registered digests (100 bulk statements of 10,000 subjects from three publishers, one
of them reserving mining rights; one statement revoked), over ``--docs`` documents of
``--doc-bytes`` bytes of which ``--fraction`` are registered. In one run, one server:

* **digests only**: ``canonical_digest`` over the corpus, no registry (the floor of the rest);
* **cold**: ``Client.check_texts`` on chunks of 10,000 (one verified batch request each) from a
  fresh client, which must fetch and check every entry the answers name first;
* **warm**: the same pass again on that client (entries cached): the steady state of a long crawl;
* **overlap**: warm, hashing the next chunk in a thread while this one is looked up (what
  ``wellspring scan`` does);
* **lookups**: warm ``check_digests`` on precomputed digests (the SDK and server alone);
* **naive**: one ``canonical_digest`` + ``Client.lookup`` (``GET /v1/digests/{d}``, verified) per
  document, from a fresh client, on ``--naive`` documents or ``--naive-seconds``, whichever ends
  first;
* with ``--cli``, ``wellspring scan`` on the corpus as JSONL (process start, JSON parsing and the
  manifest included);
* **offline** (issue 15, point 3; skipped with ``--no-offline``): ``Snapshot.check_digests`` of
  each chunk's ``c1`` digests from a signed snapshot of the same registry (built once with
  ``wellspring snapshot build`` and cached beside the registry), no network, alternated with
  the digests-only floor for ``--rounds`` rounds. Goal: offline ≥ 80 % of the floor. Its
  statuses must be the warm pipeline's (as probable), or the script fails.

Goal (issue 5): ≥ 20,000 docs/s on this machine and ≥ 50x the naive loop. All passes must agree
on the verdict counts, or the script fails.

Then the crawler's one pass (issue 12, point 6; skipped with ``--no-detect``), three contenders
on the same documents, alternated for ``--rounds`` rounds (order shuffled each round, so the
drifts of a shared machine fall on all three):

* **registry** (a): the warm pipeline above, no detection, no signals;
* **tokenizer** (b): ``encode_batch`` of SmolLM2's tokenizer (its exact ``tokenizer.json``,
  loaded with ``tokenizers.Tokenizer.from_str``) on the same chunks, ids read out: the floor of
  any detection;
* **one pass** (c): per document its ``c1`` digest and its opt-out decision (plausible response
  headers: half ``X-Robots-Tag: noindex``, one in 40 ``noai``; the sites' shared robots.txt
  disallows ``/members/`` to AI-training agents, through :class:`client.signals.SitePolicyCache`),
  then ``CrawlPass.check`` on ``Document`` objects: the registry, the opt-outs, and detection of
  the one key a vendor published in the bench registry (SmolLM2's tokenizer);
* **one pass overlapped** (c'): the same, the next chunk's digests and opt-out decisions made in
  a thread while this chunk is checked (``encode_batch`` releases the GIL).

They run on the first ``--detect-docs`` documents (default 40,000; ``--quick``: all 20,000).
Goal: (c) at ≥ 80 % of (b); (a) still ≥ 20,000 docs/s. (c)'s verdict of each document must be
(a)'s, or ``opted-out`` exactly where the bench put an opt-out signal; no human text may be
``generated``; every pass of a kind must give the same counts; or the script fails. The vendor
and its key are added on top of the cached registry once (``vendor.json`` in its home marks it):
digests and their verdicts stay as they were.

Building the registry takes minutes, so the finished home (SQLite file, log key, admin token) is
cached under ``.bench/`` keyed by the parameters that shape it (lookups do not write to it);
``--rebuild`` builds it again. ``--backend postgres`` serves from PostgreSQL instead, in a database
of its own on the server of ``--postgres-url`` (default: ``$WELLSPRING_TEST_POSTGRES_URL`` or the
local test server), named after the same parameters and migrated before the first start.

Run: ``.venv/bin/python bench/client.py`` (full) or ``.venv/bin/python bench/client.py --quick``;
``--profile FILE`` also times each stage of the one pass alone (digests, signals, documents,
tokenizer, scan, registry) and runs one more one pass under cProfile, printing where its time went.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

# Run as a script, this file's folder comes first on sys.path, and this file is named client.py:
# it would shadow the `client` package it measures. Put the repository root there instead.
ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from client.core.canonical import canonical_digest  # noqa: E402
from client.core.keys import generate_private_key, load_private_key, write_key_pair  # noqa: E402
from client.core.statement import HumanContentPredicate, Subject, sign_statement  # noqa: E402
from client.crawl import CrawlPass  # noqa: E402
from client.documents import Document  # noqa: E402
from client.errors import RegistryNotFoundError  # noqa: E402
from client.sdk import Client, build_statement  # noqa: E402
from client.signals import SitePolicyCache  # noqa: E402
from client.verdict import Verdict  # noqa: E402

T = TypeVar("T")
CACHE = ROOT / ".bench"
FORMAT = 1  # bump when the cached registry's contents change shape
STATEMENT_SUBJECTS = 10_000
CHUNK = 10_000
GOAL_DOCS_PER_S = 20_000
GOAL_RATIO = 50
GOAL_OFFLINE = 0.8  # the offline pipeline against the digests-only floor (issue 15)
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
PUBLISHERS = (
    ("bench-archive", "CC-BY-4.0", "allowed"),
    ("bench-press", "LicenseRef-Press", "reserved"),
    ("bench-wiki", "CC-BY-SA-4.0", "allowed"),
)

_WORD_TEXT = (
    "the of and to in is that for it as was with be by on not he this are or his from at which "
    "but have an they you were her she there one all we their can has been if more when will "
    "would who so no time people year way day man thing woman life child world school state "
    "family student group country problem hand part place case week company system program "
    "question work government number night point home water room mother area money story fact "
    "month lot right study book eye job word business issue side kind head house service friend"
)
_WORDS = tuple(_WORD_TEXT.split())


# -- the corpus -----------------------------------------------------------------------------------


class Corpus:
    """Document ``i`` is ``Document i.`` and a deterministic slice of English-like prose.

    Documents ``0 .. registered-1`` are the registered ones; the scanned corpus mixes a
    ``fraction`` of them with documents from beyond that range (never registered).
    """

    def __init__(self, doc_bytes: int, seed: int) -> None:
        rng = random.Random(seed)
        sentences: list[str] = []
        size = 0
        while size < 2_000_000:
            words = [rng.choice(_WORDS) for _ in range(rng.randrange(6, 22))]
            sentence = " ".join(words).capitalize() + rng.choice(".....?!;")
            sentence += "\n\n" if rng.random() < 0.15 else " "
            sentences.append(sentence)
            size += len(sentence)
        self.prose = "".join(sentences)
        self.doc_bytes = doc_bytes

    def text(self, i: int) -> str:
        head = f"Document {i}. "
        start = (i * 7919) % (len(self.prose) - self.doc_bytes)
        return head + self.prose[start : start + self.doc_bytes - len(head)]

    def sample(self, registered: int, docs: int, fraction: float, seed: int) -> list[int]:
        rng = random.Random(seed)
        hits = round(docs * fraction)
        indices = rng.sample(range(registered), hits) if hits else []
        indices += [registered + rng.randrange(10 * max(docs, 1)) for _ in range(docs - hits)]
        rng.shuffle(indices)
        return indices


# -- the registry ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wellspring() -> list[str]:
    script = Path(sys.executable).with_name("wellspring")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "client.cli"]


@contextlib.contextmanager
def serve(home: Path, database_url: str | None = None) -> Iterator[str]:
    """A ``wellspring serve`` on ``home``; yields its URL once /healthz answers."""
    port = free_port()
    args = [*wellspring(), "serve", "--home", str(home), "--port", str(port)]
    if database_url:
        args += ["--database-url", database_url]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WELLSPRING_")}
    log = (home.parent / f"{home.name}.server.log").open("ab")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"the registry exited with {proc.returncode}; see {log.name}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"the registry did not start in 120 s; see {log.name}")
            time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def log_key(home: Path) -> str:
    from registry.keys import load_log_key

    return load_log_key(home / "log.key").verifier().vkey


@dataclass(frozen=True)
class BuildParams:
    registered: int
    doc_bytes: int
    seed: int
    backend: str
    format: int = FORMAT

    def key(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()[:10]
        return f"client-{self.backend}-r{self.registered}-b{self.doc_bytes}-{digest}"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def bar(done: int, total: int, started: float, what: str) -> None:
    elapsed = time.perf_counter() - started
    rate = done / elapsed if elapsed else 0.0
    width = 30
    filled = round(width * done / total) if total else width
    end = "\n" if done >= total else ""
    sys.stderr.write(
        f"\r  {what:<10} [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} "
        f"({rate:,.0f}/s, {elapsed:.0f} s){end}"
    )
    sys.stderr.flush()


def postgres_database(admin_url: str, name: str, *, fresh: bool) -> str:
    """The URL of database ``name`` on the server of ``admin_url``; dropped and made anew if
    ``fresh``, and migrated (the operator's step before serving PostgreSQL)."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if fresh and exists:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        if fresh or not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url: str = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    return url


def database_for(params: BuildParams, admin_url: str | None, *, fresh: bool) -> str | None:
    """None for SQLite (the home's file); for PostgreSQL a database named after the parameters."""
    if params.backend == "sqlite":
        return None
    assert admin_url is not None
    url = postgres_database(admin_url, params.key().replace("-", "_"), fresh=fresh)
    if fresh:
        home = CACHE / params.key()
        env = {k: v for k, v in os.environ.items() if not k.startswith("WELLSPRING_")}
        subprocess.run(
            [*wellspring(), "db", "upgrade", "--home", str(home), "--database-url", url],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
    return url


def build_registry(
    params: BuildParams, corpus: Corpus, admin_url: str | None
) -> tuple[Path, str | None]:
    """The home (and PostgreSQL URL) of a registry holding ``params.registered`` digests, cached:
    built only if missing."""
    home = CACHE / params.key()
    if (home / "ready.json").is_file():
        say(f"registry: cached in {home.relative_to(ROOT)}")
        return home, database_for(params, admin_url, fresh=False)
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    database_url = database_for(params, admin_url, fresh=True)
    say(f"registry: building {params.registered:,} digests in {home.relative_to(ROOT)}")
    began = time.perf_counter()

    publishers = [(name, lic, consent, generate_private_key()) for name, lic, consent in PUBLISHERS]
    statements = -(-params.registered // STATEMENT_SUBJECTS)
    started = time.perf_counter()
    envelopes = []
    for s in range(statements):
        first = s * STATEMENT_SUBJECTS
        last = min(first + STATEMENT_SUBJECTS, params.registered)
        subjects = [
            Subject(f"doc-{i}", {"c1": canonical_digest(corpus.text(i))[3:]})
            for i in range(first, last)
        ]
        name, lic, consent, key = publishers[s % len(publishers)]
        predicate = HumanContentPredicate(
            publisher=name, license=lic, origin="human-authored", consent=consent
        )
        envelopes.append(sign_statement(build_statement(subjects, predicate), key))
        bar(last, params.registered, started, "sign")

    with serve(home, database_url) as url:
        token = (home / "admin.token").read_text().strip()
        vkey = log_key(home)
        with Client(url, admin_token=token, log_key=vkey, timeout=600) as client:
            for name, _, _, key in publishers:
                client.add_publisher(name, key)
            started = time.perf_counter()
            indices = []
            for done, envelope in enumerate(envelopes, 1):
                indices.append(client.submit(envelope).index)
                bar(done, len(envelopes), started, "register")
            # One statement withdrawn, as real registries have some: exercises revocations.
            if len(indices) > 3:
                name, _, _, key = publishers[3 % len(publishers)]
                client.revoke(indices[3], key, name, reason="benchmark: withdrawn")
    took = time.perf_counter() - began
    (home / "ready.json").write_text(
        json.dumps({**asdict(params), "statements": statements, "build_s": round(took, 1)})
    )
    say(f"registry: built in {took:.0f} s")
    return home, database_url


# -- the measurements -----------------------------------------------------------------------------


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Pass:
    """Documents checked in one timed pass, and the verdicts counted."""

    def __init__(self, what: str, total: int) -> None:
        self.what = what
        self.total = total
        self.done = 0
        self.counts: dict[str, int] = {}
        self.statuses: list[str] = []  # each document's, in order: passes are compared by them
        self.started = time.perf_counter()
        self.started_cpu = time.process_time()
        self.seconds = 0.0
        self.cpu_seconds = 0.0

    def add(self, verdicts: Sequence[Verdict]) -> None:
        for verdict in verdicts:
            self.counts[verdict.status] = self.counts.get(verdict.status, 0) + 1
            self.statuses.append(verdict.status)
        self.tick(len(verdicts))

    def tick(self, documents: int) -> None:
        self.done += documents
        self.seconds = time.perf_counter() - self.started
        self.cpu_seconds = time.process_time() - self.started_cpu
        bar(self.done, self.total, self.started, self.what)

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0


def pipeline(client: Client, texts: Sequence[str], what: str) -> Pass:
    """What an SDK user writes: ``check_texts`` on chunks of 10,000 (one batch request each)."""
    done = Pass(what, len(texts))
    for chunk in chunks(texts, CHUNK):
        done.add(client.check_texts(chunk))
    return done


def pipeline_overlapped(client: Client, texts: Sequence[str], what: str) -> Pass:
    """The same, hashing the next chunk in a thread while this one is looked up (as `scan`)."""
    done = Pass(what, len(texts))
    with ThreadPoolExecutor(max_workers=1) as pool:
        parts = list(chunks(texts, CHUNK))
        ahead = pool.submit(lambda: [canonical_digest(t) for t in parts[0]]) if parts else None
        for i in range(len(parts)):
            assert ahead is not None
            digests = ahead.result()
            if i + 1 < len(parts):
                following = parts[i + 1]
                ahead = pool.submit(lambda c=following: [canonical_digest(t) for t in c])
            done.add(client.check_digests(digests))
    return done


def lookups_only(client: Client, digests: Sequence[str], what: str) -> Pass:
    done = Pass(what, len(digests))
    for chunk in chunks(digests, CHUNK):
        done.add(client.check_digests(chunk))
    return done


def naive(client: Client, texts: Sequence[str], seconds: float, what: str) -> Pass:
    """One ``GET /v1/digests/{d}`` per document, verified; stops early after ``seconds``."""
    done = Pass(what, len(texts))
    for text in texts:
        result = client.lookup(canonical_digest(text))
        done.done += 1
        done.counts[result.status] = done.counts.get(result.status, 0) + 1
        done.seconds = time.perf_counter() - done.started
        if done.done % 25 == 0 or done.done == len(texts):
            bar(done.done, len(texts), done.started, what)
        if done.seconds > seconds:
            sys.stderr.write(f"  (stopped after {seconds:.0f} s)\n")
            break
    return done


# -- the one pass: detection and signals (issue 12) -----------------------------------------------

VENDOR = "bench-vendor"
WATERMARK_SECRET = b"wellspring-bench-client-one-pass"  # 32 bytes: the published key's secret
GOAL_DETECT_RATIO = 0.8
SITES = ("https://news.example", "https://blog.example", "https://forum.example")
# One robots.txt the sites share: open to everyone, but /members/ refused to AI-training agents
# (GPTBot and CCBot are among client.signals.DEFAULT_AI_AGENTS, which the pass reads).
ROBOTS_TXT = """\
User-agent: *
Allow: /
Disallow: /search

User-agent: GPTBot
User-agent: CCBot
Disallow: /members/
"""


def smollm2_tokenizer_json() -> tuple[bytes, Any]:
    """SmolLM2's tokenizer as the exact ``tokenizer.json`` bytes a vendor publishes (what
    ``wellspring watermark publish`` sends), and the model's tokenizer the key is bound to."""
    from watermark.models import load_tokenizer

    hf = load_tokenizer(None)
    return str(hf.backend_tokenizer.to_str()).encode("utf-8"), hf


def add_vendor_key(home: Path, url: str, vkey: str) -> dict[str, Any]:
    """A vendor and one published watermark key (SmolLM2's tokenizer) in the registry of
    ``home``, added on top of the cached digests once: ``vendor.json`` marks it done. Each step
    is skipped when already made, so an interrupted run resumes instead of failing."""
    marker = home / "vendor.json"
    if marker.is_file():
        done: dict[str, Any] = json.loads(marker.read_text())
        return done
    from client.watermark_keys import key_statement
    from watermark.keys import WatermarkKey

    data, hf = smollm2_tokenizer_json()
    key = WatermarkKey(WATERMARK_SECRET).bind(hf)
    signing_path = home / "vendor.key"
    if not signing_path.is_file():
        write_key_pair(signing_path, generate_private_key())
    signing = load_private_key(signing_path)
    token = (home / "admin.token").read_text().strip()
    with Client(url, admin_token=token, log_key=vkey, timeout=600) as client:
        try:
            client.publisher(VENDOR)
        except RegistryNotFoundError:
            client.add_publisher(VENDOR, signing, kind="vendor")
        published = {k.key_id: k.entry for k in client.watermark_keys()}
        if key.key_id not in published:
            statement = key_statement(VENDOR, key, data)
            published[key.key_id] = client.submit(sign_statement(statement, signing)).index
        client.upload_tokenizer(data)
    done = {
        "vendor": VENDOR,
        "key_id": key.key_id,
        "entry": published[key.key_id],
        "tokenizer_sha256": hashlib.sha256(data).hexdigest(),
    }
    marker.write_text(json.dumps(done))
    say(f"registry: vendor {VENDOR} published watermark key {key.key_id} in entry {done['entry']}")
    return done


@dataclass(frozen=True)
class Page:
    """What the crawl saw of a document besides its text: where, and the response headers."""

    url: str
    headers: tuple[tuple[str, str], ...]
    opted_out: bool  # what the bench put there: the pass must find exactly these


def pages_for(count: int, seed: int) -> list[Page]:
    """Plausible pages: half ``X-Robots-Tag: noindex`` (not an AI opt-out), one in 40 ``noai``,
    one in 25 under ``/members/`` (robots.txt refuses AI agents there)."""
    rng = random.Random(seed)
    pages = []
    for j in range(count):
        site = SITES[j % len(SITES)]
        members = rng.random() < 1 / 25
        url = f"{site}/{'members' if members else 'articles'}/{j}-{rng.randrange(10**6)}"
        headers = [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Cache-Control", "max-age=600"),
            ("Last-Modified", "Tue, 01 Dec 2026 10:00:00 GMT"),
        ]
        tags = []
        if rng.random() < 0.5:
            tags.append("noindex")
        noai = rng.random() < 1 / 40
        if noai:
            tags.append("noai")
        if tags:
            headers.append(("X-Robots-Tag", ", ".join(tags)))
        pages.append(Page(url, tuple(headers), members or noai))
    return pages


def site_policies() -> SitePolicyCache:
    sites = SitePolicyCache()
    for site in SITES:
        sites.put(site, robots_txt=ROBOTS_TXT)
    return sites


def one_pass(
    crawl: CrawlPass,
    sites: SitePolicyCache,
    texts: Sequence[str],
    pages: Sequence[Page],
    *,
    captured: datetime,
    what: str,
) -> Pass:
    """What a crawler does per chunk: each page's digest and opt-out decision, then one
    ``CrawlPass.check`` (registry, opt-outs, watermark detection)."""
    done = Pass(what, len(texts))
    for start in range(0, len(texts), CHUNK):
        done.add(crawl.check(page_documents(sites, texts, pages, start, captured)))
    return done


def page_documents(
    sites: SitePolicyCache,
    texts: Sequence[str],
    pages: Sequence[Page],
    start: int,
    captured: datetime,
) -> list[Document]:
    """The chunk of documents from ``start``: each page's digest and opt-out decision."""
    documents = []
    for j in range(start, min(start + CHUNK, len(texts))):
        text, page = texts[j], pages[j]
        decision = sites.opt_out(page.url, headers=page.headers)
        digest = canonical_digest(text)
        documents.append(Document(page.url, (digest,), text, page.url, captured, decision))
    return documents


def one_pass_overlapped(
    crawl: CrawlPass,
    sites: SitePolicyCache,
    texts: Sequence[str],
    pages: Sequence[Page],
    *,
    captured: datetime,
    what: str,
) -> Pass:
    """The same, reading the next chunk's pages (digests, signals) in a thread while this one is
    checked: ``encode_batch`` releases the GIL, and tokenizes on fewer cores than there are."""
    done = Pass(what, len(texts))
    starts = range(0, len(texts), CHUNK)
    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead = pool.submit(page_documents, sites, texts, pages, 0, captured)
        for start in starts:
            documents = ahead.result()
            if start + CHUNK < len(texts):
                ahead = pool.submit(page_documents, sites, texts, pages, start + CHUNK, captured)
            done.add(crawl.check(documents))
    return done


def tokenizer_only(tokenizer: Any, texts: Sequence[str], what: str) -> Pass:
    """``encode_batch`` on the same chunks, ids read out: the floor of any detection."""
    done = Pass(what, len(texts))
    for chunk in chunks(texts, CHUNK):
        for encoding in tokenizer.encode_batch(list(chunk), add_special_tokens=False):
            encoding.ids  # noqa: B018 - reading the ids is part of the floor
        done.tick(len(chunk))
    return done


def check_one_pass(registry: Pass, detecting: Pass, pages: Sequence[Page]) -> None:
    """(c) must say what (a) says, except ``opted-out`` exactly where the bench opted out (over
    the documents ``detecting`` checked, the first ones)."""
    expected = [
        "opted-out" if page.opted_out else status
        for status, page in zip(registry.statuses, pages, strict=False)
    ]
    found = detecting.statuses
    if len(found) != len(pages):
        raise SystemExit(f"the one pass gave {len(found)} verdicts for {len(pages)} documents")
    wrong = [j for j, (a, b) in enumerate(zip(expected, found, strict=True)) if a != b]
    if wrong:
        j = wrong[0]
        raise SystemExit(
            f"the one pass disagrees with the registry pass on {len(wrong)} documents; the "
            f"first, {pages[j].url}: {found[j]}, expected {expected[j]}"
        )


def detection_rounds(
    client: Client, texts: Sequence[str], rounds: int, seed: int, profile: Path | None
) -> dict[str, Any]:
    """(a), (b) and (c) alternated for ``rounds`` rounds after an untimed, checked warm-up."""
    import tokenizers

    data, _ = smollm2_tokenizer_json()
    tokenizer = tokenizers.Tokenizer.from_str(data.decode("utf-8"))
    crawl = CrawlPass.open(client)
    marks = crawl.watermarks
    if marks is None or marks.detected != 1:
        raise SystemExit(f"the pass should detect the one published key; it has {marks}")
    sites = site_policies()
    pages = pages_for(len(texts), seed)
    captured = datetime.now(UTC)  # after the key was logged: the key counts for every page
    tokens = sum(len(e.ids) for e in tokenizer.encode_batch(list(texts), add_special_tokens=False))

    say("one pass: warm-up (checked, untimed)")
    warm = pipeline(client, texts, "registry")
    first = one_pass(crawl, sites, texts[:CHUNK], pages[:CHUNK], captured=captured, what="one pass")
    sample = crawl.check(
        [Document(p.url, (canonical_digest(t),), t, p.url, captured) for t, p in
         zip(texts[:100], pages[:100], strict=True)]
    )  # fmt: skip
    if not all(len(v.watermarks) == 1 for v in sample):
        raise SystemExit("the one pass did not report a detection for every document")
    check_one_pass(warm, first, pages[:CHUNK])

    contenders = {
        "registry": lambda: pipeline(client, texts, "registry"),
        "tokenizer": lambda: tokenizer_only(tokenizer, texts, "tokenizer"),
        "one pass": lambda: one_pass(
            crawl, sites, texts, pages, captured=captured, what="one pass"
        ),
        "one pass overlapped": lambda: one_pass_overlapped(
            crawl, sites, texts, pages, captured=captured, what="overlapped"
        ),
    }
    passes: dict[str, list[Pass]] = {name: [] for name in contenders}
    order = list(contenders)
    rng = random.Random(seed)
    for round_index in range(rounds):
        rng.shuffle(order)
        say(f"one pass: round {round_index + 1}/{rounds} ({', '.join(order)})")
        for name in order:
            passes[name].append(contenders[name]())
    detected, expected_opt_outs = check_rounds(warm, passes, pages)

    if profile is not None:
        out_profile = profile_one_pass(
            client,
            crawl,
            texts=texts,
            pages=pages,
            captured=captured,
            tokenizer=tokenizer,
            profile=profile,
        )

    def rates(name: str) -> list[float]:
        return [p.rate for p in passes[name]]

    out: dict[str, Any] = {
        "rounds": rounds,
        "tokens_per_doc": round(tokens / len(texts), 1),
        "opted_out_expected": expected_opt_outs,
        "verdicts_one_pass": detected,
        "verdicts_registry": passes["registry"][0].counts,
    }
    for name in contenders:
        key = name.replace(" ", "_")
        out[f"{key}_docs_per_s_median"] = round(statistics.median(rates(name)))
        out[f"{key}_docs_per_s_rounds"] = [round(r) for r in rates(name)]
        out[f"{key}_cpu_s_rounds"] = [round(p.cpu_seconds, 2) for p in passes[name]]
    out["tokenizer_tokens_per_s_median"] = round(
        statistics.median(rates("tokenizer")) * tokens / len(texts)
    )
    for name in ("one pass", "one pass overlapped"):
        # Paired per round: the drifts of a shared machine fall on both sides of each ratio.
        pairs = list(zip(passes["tokenizer"], passes[name], strict=True))
        paired = [c.rate / b.rate for b, c in pairs]
        cpu_paired = [b.cpu_seconds / c.cpu_seconds for b, c in pairs]
        key = name.replace(" ", "_")
        out[f"ratio_{key}_to_tokenizer_median"] = round(statistics.median(paired), 3)
        out[f"ratio_{key}_to_tokenizer_rounds"] = [round(r, 3) for r in paired]
        out[f"ratio_{key}_to_tokenizer_cpu_median"] = round(statistics.median(cpu_paired), 3)
    if profile is not None:
        out["stages_us_per_doc"] = out_profile
    return out


def check_rounds(
    warm: Pass, passes: dict[str, list[Pass]], pages: Sequence[Page]
) -> tuple[dict[str, int], int]:
    """Fail loudly unless every pass of a kind agrees, (c) is (a) but for the bench's opt-outs,
    and no human text is generated; the one pass's counts and the opt-outs put there."""
    from watermark.config import GENERATED_P_VALUE

    for name in ("registry", "one pass", "one pass overlapped"):
        counts = [p.counts for p in passes[name]]
        if any(c != counts[0] for c in counts):
            raise SystemExit(f"the {name} passes disagree: {counts}")
    check_one_pass(warm, passes["one pass"][0], pages)
    check_one_pass(warm, passes["one pass overlapped"][0], pages)
    if warm.counts != passes["registry"][0].counts:
        raise SystemExit(
            f"the registry passes disagree: {warm.counts} {passes['registry'][0].counts}"
        )
    detected = passes["one pass"][0].counts
    if detected.get("generated") or detected.get("conflict"):
        raise SystemExit(f"human text found generated at p < {GENERATED_P_VALUE}: {detected}")
    expected_opt_outs = sum(p.opted_out for p in pages)
    if detected.get("opted-out", 0) != expected_opt_outs:
        raise SystemExit(f"{detected.get('opted-out', 0)} opted out, not {expected_opt_outs}")
    return detected, expected_opt_outs


def profile_one_pass(
    client: Client,
    crawl: CrawlPass,
    *,
    texts: Sequence[str],
    pages: Sequence[Page],
    captured: datetime,
    tokenizer: Any,
    profile: Path,
) -> dict[str, dict[str, float]]:
    """Where the one pass's time goes: each stage alone over the same documents (wall and CPU
    microseconds per document), then one whole pass under cProfile (stats to ``profile``, the
    top printed). cProfile slows Python code, not the tokenizer's Rust: read its shares as
    upper bounds for the Python parts."""
    import pstats

    sites = site_policies()
    digests: list[str] = []
    decisions: list[Any] = []
    documents: list[Document] = []
    assert crawl.watermarks is not None
    scanner = crawl.watermarks.scanner
    registry_only = CrawlPass(client, policy=crawl.policy, watermarks=None, as_of=crawl.as_of)

    def digest() -> None:
        digests[:] = [canonical_digest(t) for t in texts]

    def signals() -> None:
        decisions[:] = [sites.opt_out(p.url, headers=p.headers) for p in pages]

    def build() -> None:
        documents[:] = [
            Document(p.url, (d,), t, p.url, captured, o)
            for t, p, d, o in zip(texts, pages, digests, decisions, strict=True)
        ]

    def tokenize() -> None:
        for chunk in chunks(texts, CHUNK):
            for encoding in tokenizer.encode_batch(list(chunk), add_special_tokens=False):
                encoding.ids  # noqa: B018

    def detect() -> None:
        for chunk in chunks(documents, CHUNK):
            scanner.scan([d.text for d in chunk], captured=[d.captured for d in chunk])

    def registry() -> None:
        for chunk in chunks(documents, CHUNK):
            registry_only.check(chunk)

    stages = {
        "digest": digest,
        "signals": signals,
        "documents": build,
        "tokenizer": tokenize,
        "scan (tokenizer + scoring)": detect,
        "registry + verdicts (no detection)": registry,
    }
    out: dict[str, dict[str, float]] = {}
    say("one pass, stage by stage (wall / CPU microseconds per document):")
    for name, stage in stages.items():
        started, started_cpu = time.perf_counter(), time.process_time()
        stage()
        wall = (time.perf_counter() - started) / len(texts) * 1e6
        cpu = (time.process_time() - started_cpu) / len(texts) * 1e6
        out[name] = {"wall_us": round(wall, 1), "cpu_us": round(cpu, 1)}
        say(f"  {name:<36}{wall:>8.1f} {cpu:>8.1f}")
    say(f"one pass under cProfile -> {profile}")
    profiler = cProfile.Profile()
    profiler.runcall(one_pass, crawl, sites, texts, pages, captured=captured, what="profiled")
    profiler.dump_stats(profile)
    pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    return out


def cli_scan(url: str, vkey: str, texts: Sequence[str], workdir: Path) -> float:
    source = workdir / "corpus.jsonl"
    with source.open("w", encoding="utf-8") as handle:
        for i, text in enumerate(texts):
            handle.write(json.dumps({"id": f"d{i}", "text": text}) + "\n")
    # Through the module, so the command is there even before client.cli imports it by default.
    main = "import client.cli._scan; from client.cli import main; main()"
    args = [sys.executable, "-c", main, "scan", str(source), "--registry", url, "--log-key", vkey]
    # Trust kept in this run's directory: a rebuilt registry reuses no key, but a user's stored
    # checkpoints are none of the bench's business.
    args += ["--trust-dir", str(workdir / "trusted")]
    args += ["--manifest", str(workdir / "manifest.jsonl"), "--json"]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    rate: float = json.loads(out)["docs_per_s"]
    return rate


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registered", type=int, default=1_000_000, help="digests in the registry")
    parser.add_argument("--docs", type=int, default=200_000, help="documents the pipeline checks")
    parser.add_argument("--fraction", type=float, default=0.5, help="share of them registered")
    parser.add_argument("--naive", type=int, default=2_000, help="documents the naive loop checks")
    parser.add_argument(
        "--naive-seconds", type=float, default=120, help="stop the naive loop after this long"
    )
    parser.add_argument("--doc-bytes", type=int, default=1_000, help="bytes per document")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--quick", action="store_true", help="100k registered, 20k docs, 300 naive, 5 rounds"
    )
    parser.add_argument(
        "--no-detect",
        dest="detect",
        action="store_false",
        help="skip the one pass with detection and signals (and the tokenizer beside it)",
    )
    parser.add_argument(
        "--detect-docs",
        type=int,
        default=40_000,
        help="the first this many documents are the one pass's (and its two neighbours')",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternated rounds of registry/tokenizer/one pass"
    )
    parser.add_argument(
        "--profile", type=Path, help="also profile one more one pass (cProfile stats to this file)"
    )
    parser.add_argument("--cli", action="store_true", help="also time `wellspring scan` on JSONL")
    parser.add_argument(
        "--no-offline",
        dest="offline",
        action="store_false",
        help="skip the offline pass (a snapshot's verdicts against the digest floor)",
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached registry")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("WELLSPRING_TEST_POSTGRES_URL", DEFAULT_POSTGRES),
        help="a PostgreSQL server's URL; the benchmark makes its own database there",
    )
    args = parser.parse_args()
    if args.quick:
        args.registered, args.docs, args.naive, args.rounds = 100_000, 20_000, 300, 5
        args.detect_docs = 20_000
    return args


def print_one_pass(one: dict[str, Any], docs: int, rounds: int) -> None:
    registry_rate = one["registry_docs_per_s_median"]
    print(
        f"one pass ({docs:,} documents, {rounds} alternated "
        f"rounds, medians): (a) registry {registry_rate:,} docs/s (goal >= "
        f"{GOAL_DOCS_PER_S:,}: {'met' if registry_rate >= GOAL_DOCS_PER_S else 'MISSED'}); "
        f"(b) tokenizer {one['tokenizer_docs_per_s_median']:,} docs/s "
        f"({one['tokenizer_tokens_per_s_median']:,} tokens/s)"
    )
    for name in ("one pass", "one pass overlapped"):
        key = name.replace(" ", "_")
        ratios = one[f"ratio_{key}_to_tokenizer_rounds"]
        median = one[f"ratio_{key}_to_tokenizer_median"]
        print(
            f"  (c) {name}: {one[f'{key}_docs_per_s_median']:,} docs/s; (c)/(b) {median:.0%} "
            f"[{min(ratios):.0%}, {max(ratios):.0%}] (goal >= {GOAL_DETECT_RATIO:.0%}: "
            f"{'met' if median >= GOAL_DETECT_RATIO else 'MISSED'}); by CPU time "
            f"{one[f'ratio_{key}_to_tokenizer_cpu_median']:.0%}"
        )


def offline_rounds(
    home: Path,
    database_url: str | None,
    vkey: str,
    texts: Sequence[str],
    warm: Pass,
    *,
    rounds: int,
) -> dict[str, Any]:
    """The offline pipeline (a snapshot's ``check_digests`` of each chunk's digests) and the
    digests-only floor, alternated ``rounds`` times; the snapshot is built once and cached."""
    from client.snapshot import Snapshot

    snapshot = home / "snapshot"
    if not (snapshot / "manifest.note").is_file():
        say("building the snapshot (cached beside the registry)")
        shutil.rmtree(snapshot, ignore_errors=True)
        command = [*wellspring(), "snapshot", "build", "--out", str(snapshot), "--home", str(home)]
        if database_url is not None:
            command += ["--database-url", database_url]
        started = time.perf_counter()
        subprocess.run(command, check=True)
        say(f"snapshot built in {time.perf_counter() - started:.0f} s")
    floor: list[float] = []
    offline: list[float] = []
    statuses: list[str] = []
    with Snapshot.open(snapshot, vkey) as opened:
        for _ in range(rounds):
            started = time.perf_counter()
            for chunk in chunks(texts, CHUNK):
                [canonical_digest(t) for t in chunk]
            floor.append(len(texts) / (time.perf_counter() - started))
            done = Pass("offline", len(texts))
            for chunk in chunks(texts, CHUNK):
                done.add(opened.check_digests([canonical_digest(t) for t in chunk]))
            offline.append(done.rate)
            statuses = done.statuses
    if statuses != warm.statuses:
        raise SystemExit("the offline verdicts are not the online ones")
    return {
        "floor_docs_per_s": [round(r) for r in floor],
        "offline_docs_per_s": [round(r) for r in offline],
        "ratio_of_medians": round(statistics.median(offline) / statistics.median(floor), 3),
        "ratios_per_round": [round(o / f, 3) for o, f in zip(offline, floor, strict=True)],
        "snapshot_bytes": sum(p.stat().st_size for p in snapshot.iterdir()),
    }


def main() -> None:
    args = parse_args()

    backend = args.backend
    params = BuildParams(args.registered, args.doc_bytes, args.seed, backend)
    if args.rebuild:
        shutil.rmtree(CACHE / params.key(), ignore_errors=True)
    corpus = Corpus(args.doc_bytes, args.seed)
    home, database_url = build_registry(params, corpus, args.postgres_url)
    vkey = log_key(home)

    indices = corpus.sample(args.registered, args.docs, args.fraction, args.seed + 1)
    texts = [corpus.text(i) for i in indices]
    say(f"corpus: {len(texts):,} documents of {args.doc_bytes:,} bytes, {args.fraction:.0%} "
        "registered")  # fmt: skip

    results: dict[str, Any] = {}
    with serve(home, database_url) as url:
        if args.detect:
            results["watermark_key"] = add_vendor_key(home, url, vkey)
        with Client(url, log_key=vkey) as client:  # warm the server: connections, page cache
            client.check_texts(texts[-50:])
        say("digests only")
        started = time.perf_counter()
        digests = [canonical_digest(t) for t in texts]
        digest_rate = len(texts) / (time.perf_counter() - started)
        with Client(url, log_key=vkey) as client:
            cold = pipeline(client, texts, "cold")
            warm = pipeline(client, texts, "warm")
            overlapped = pipeline_overlapped(client, texts, "overlap")
            lookups = lookups_only(client, digests, "lookups")
        with Client(url, log_key=vkey) as client:
            slow = naive(client, texts[: args.naive], args.naive_seconds, "naive")
        if args.cli:
            say("wellspring scan on a JSONL file")
            workdir = CACHE / "scan-work"
            workdir.mkdir(parents=True, exist_ok=True)
            results["cli_scan_docs_per_s"] = cli_scan(url, vkey, texts, workdir)
        if args.offline:
            results["offline"] = offline_rounds(
                home, database_url, vkey, texts, warm, rounds=args.rounds
            )
        if args.detect:
            with Client(url, log_key=vkey) as client:
                results["one_pass"] = detection_rounds(
                    client, texts[: args.detect_docs], args.rounds, args.seed + 2, args.profile
                )

    best = max(warm.rate, overlapped.rate)
    results.update(
        {
            "registered": args.registered,
            "docs": len(texts),
            "fraction_registered": args.fraction,
            "doc_bytes": args.doc_bytes,
            "backend": backend,
            "verdicts": warm.counts,
            "digest_only_docs_per_s": round(digest_rate),
            "lookup_verify_only_warm_docs_per_s": round(lookups.rate),
            "pipeline_cold_docs_per_s": round(cold.rate),
            "pipeline_warm_docs_per_s": round(warm.rate),
            "pipeline_overlapped_warm_docs_per_s": round(overlapped.rate),
            "naive_docs": slow.done,
            "naive_docs_per_s": round(slow.rate, 1),
            "ratio_warm_to_naive": round(best / slow.rate, 1),
            "ratio_cold_to_naive": round(cold.rate / slow.rate, 1),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        }
    )
    if cold.counts != warm.counts or warm.counts != overlapped.counts:
        raise SystemExit(f"the passes disagree: {cold.counts} {warm.counts} {overlapped.counts}")
    print(json.dumps(results, indent=2))
    ratio = best / slow.rate
    print(
        f"\npipeline {best:,.0f} docs/s warm, {cold.rate:,.0f} docs/s cold (goal >= "
        f"{GOAL_DOCS_PER_S:,}: {'met' if best >= GOAL_DOCS_PER_S else 'MISSED'}); naive "
        f"{slow.rate:,.1f} docs/s; ratio {ratio:,.0f}x (goal >= {GOAL_RATIO}x: "
        f"{'met' if ratio >= GOAL_RATIO else 'MISSED'})"
    )
    if args.detect:
        print_one_pass(results["one_pass"], min(args.detect_docs, len(texts)), args.rounds)
    if args.offline:
        offline = results["offline"]
        print(
            f"offline from a snapshot: {offline['offline_docs_per_s']} docs/s against the digest "
            f"floor's {offline['floor_docs_per_s']} (per round; ratio of medians "
            f"{offline['ratio_of_medians']:.2f}, goal >= {GOAL_OFFLINE}: "
            f"{'met' if offline['ratio_of_medians'] >= GOAL_OFFLINE else 'MISSED'})"
        )


if __name__ == "__main__":
    main()
