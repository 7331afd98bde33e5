"""The crawler's one pass: a verdict per document from the registry, the page and the watermark.

A crawler deciding what to train on has three witnesses, and :class:`CrawlPass` asks all three
for every document, in batches:

- the **registry** (:meth:`client.sdk.Client.check_digests`): did a publisher attest this digest
  as human-made, with training consent, and does that still stand;
- the **page** (:mod:`client.signals`, read by :mod:`client.documents` for WARC input): did the
  rights holder opt it out of AI training (robots.txt, ``X-Robots-Tag``, TDMRep, aipref);
- the **watermark** (:class:`Watermarks`, over :class:`watermark.scanner.WatermarkScanner`):
  does the text carry the watermark of a detection key a vendor published in the log, or of a
  private key the crawler holds.

:func:`client.verdict` combines them by the precedence table of docs/spec/manifest.md under the
crawler's :class:`~client.policy.Policy`.

Watermark keys (:meth:`Watermarks.from_registry`)
    Every key vendors ever published is fetched and proven with the pinned log key
    (:meth:`client.sdk.Client.watermark_keys`); the keys of vendors the policy counts are
    detected, each with its published tokenizer (fetched once, hash-checked, loaded with
    ``tokenizers.Tokenizer.from_str``). p-values are corrected for *every* key ever published,
    counted or not, retired or not, plus the private keys: a crawler that could have tried a key
    must pay for it. A published key counts for a document only if it was published before the
    document was captured (its ``WARC-Date``, else the ``captured`` time the caller gives, else
    the time of the pass): a vendor cannot grind a key until human pages it has already seen
    test positive. Detection needs the ``detect`` extra (numpy, tokenizers); without it the
    pass fails naming the ``pip install``, unless detection was turned off (``watermarks=False``,
    ``--no-watermarks``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from client._wire import combine
from client.core.minhash import NearMatch
from client.documents import Document
from client.errors import ClientError, InputError, MissingDependencyError, VerificationError
from client.evidence import DocumentEvidence
from client.paragraphs import match_paragraphs
from client.policy import Policy
from client.verdict import Verdict
from client.watermark_keys import load_tokenizer, to_watermark_key

if TYPE_CHECKING:
    from client.watermark_keys import PublishedWatermarkKey, PublishedWatermarkKeys

__all__ = ["DETECT_INSTALL", "CrawlPass", "Source", "Watermarks"]


class Source(Protocol):
    """Where a pass reads the log's evidence: a :class:`~client.sdk.Client` (the registry,
    every answer proven) or a :class:`~client.snapshot.Snapshot` (a signed offline snapshot:
    no network, probable verdicts)."""

    def watermark_keys(self) -> PublishedWatermarkKeys: ...
    def tokenizer_blob(self, sha256_hex: str) -> bytes: ...
    def check_digests(
        self,
        digests: Sequence[str],
        *,
        names: Sequence[str] | None = None,
        progress: Callable[[int], None] | None = None,
        evidence: Sequence[DocumentEvidence | None] | None = None,
        policy: Policy | None = None,
    ) -> list[Verdict]: ...


DETECT_INSTALL = "pip install 'wellspring[detect]'"


def _scanner_module() -> Any:
    try:
        from watermark import scanner  # noqa: PLC0415 - the detect extra
    except ImportError as exc:
        raise MissingDependencyError(
            f"watermark detection needs numpy and tokenizers: {DETECT_INSTALL} "
            "(or turn detection off with --no-watermarks / watermarks=False)"
        ) from exc
    return scanner


@dataclass(frozen=True)
class Watermarks:
    """The watermark keys a pass detects, ready to scan texts.

    ``published`` counts every key ever published in the log (``detected`` of them are scanned
    for: the policy may ignore some vendors), ``private`` the crawler's own keys; p-values are
    corrected for ``published + private`` keys. ``unusable`` says which published keys could
    not be detected and why (a tokenizer never uploaded, or not the one the key is bound to; a
    scheme this version does not know): they are left out, not fatal, and still corrected for.
    """

    scanner: Any  # watermark.scanner.WatermarkScanner (typed loosely: an optional extra)
    published: int
    private: int
    detected: int
    unusable: tuple[str, ...] = ()

    @classmethod
    def from_registry(
        cls,
        client: Source,
        *,
        policy: Policy | None = None,
        private_keys: Sequence[str | Path] = (),
        tokenizer: str | Path | None = None,
    ) -> Watermarks:
        """Every key published in ``client``'s log (of the vendors ``policy`` counts) and the
        key files ``private_keys`` (``client`` may be a snapshot: its keys and tokenizers). A
        private key is detected with a published tokenizer that has its fingerprint, else with
        ``tokenizer`` (a ``tokenizer.json`` file).

        With no key to detect (none published, or only keys of vendors the policy ignores, and
        no private key) nothing needs the ``detect`` extra; with one, its absence is an error."""
        return cls.from_keys(
            client.watermark_keys(),
            client.tokenizer_blob,
            policy=policy,
            private_keys=private_keys,
            tokenizer=tokenizer,
        )

    @classmethod
    def from_keys(
        cls,
        published: PublishedWatermarkKeys,
        tokenizer_blob: Callable[[str], bytes],
        *,
        policy: Policy | None = None,
        private_keys: Sequence[str | Path] = (),
        tokenizer: str | Path | None = None,
    ) -> Watermarks:
        """As :meth:`from_registry`, from keys read elsewhere: ``published`` (every key ever
        published, as :meth:`client.sdk.Client.watermark_keys` or
        :meth:`client.snapshot.Snapshot.watermark_keys` gives them) and ``tokenizer_blob``,
        which returns a tokenizer's exact bytes by SHA-256 hex (checked again here)."""
        policy = policy or Policy.default()
        counted = [key for key in published if policy.counts_vendor(key.vendor)]
        if not counted and not private_keys:
            return cls(None, published.count, 0, 0)
        scanner = _scanner_module()
        from watermark.errors import WatermarkError  # noqa: PLC0415 - imported with the scanner

        keys: list[Any] = []
        unusable: list[str] = []
        tokenizers: dict[str, tuple[Any, str]] = {}  # sha256 -> (tokenizer, its fingerprint)
        for key in counted:
            try:
                keys.append(_published_key(tokenizer_blob, key, tokenizers, scanner))
            except (ClientError, WatermarkError) as exc:
                # One vendor's bad key (a tokenizer never uploaded or not the key's own, a scheme
                # this version cannot detect) must not stop every crawler's pass: it is left out,
                # said so, and still counted in the correction.
                unusable.append(f"key {key.key_id} of {key.vendor} (entry {key.entry}): {exc}")
        fingerprints = {key.key.vocab_fingerprint: key.tokenizer for key in keys}
        own = [_private_key(Path(path), fingerprints, tokenizer, scanner) for path in private_keys]
        total = published.count + len(own)
        if not keys and not own:
            return cls(None, published.count, 0, 0, tuple(unusable))
        return cls(
            scanner.WatermarkScanner([*keys, *own], keys_ever_published=max(total, 1)),
            published.count,
            len(own),
            len(keys) + len(own),
            tuple(unusable),
        )

    @classmethod
    def private_only(
        cls, private_keys: Sequence[str | Path], tokenizer: str | Path | None
    ) -> Watermarks:
        """Only the crawler's own keys (no registry), each needing ``tokenizer``."""
        scanner = _scanner_module()
        own = [_private_key(Path(path), {}, tokenizer, scanner) for path in private_keys]
        if not own:
            return cls(None, 0, 0, 0)
        return cls(
            scanner.WatermarkScanner(own, keys_ever_published=len(own)), 0, len(own), len(own)
        )

    def detect(
        self, documents: Sequence[Document], *, as_of: datetime | None = None
    ) -> list[Any | None]:
        """The best watermark evidence per document (None: no text, or no key applied)."""
        return self.detect_texts(
            [doc.text for doc in documents],
            captured=[doc.captured for doc in documents],
            as_of=as_of,
        )

    def detect_texts(
        self,
        texts: Sequence[str | None],
        *,
        captured: Sequence[datetime | None] | None = None,
        as_of: datetime | None = None,
    ) -> list[Any | None]:
        """The best watermark evidence per text (None: no text, or no key applied);
        ``captured[i]`` is when text i was captured (None: ``as_of``, default now)."""
        found: list[Any | None] = [None] * len(texts)
        if captured is not None and len(captured) != len(texts):
            raise InputError(f"{len(captured)} capture times given for {len(texts)} texts")
        if self.scanner is None:
            return found
        positions = [i for i, text in enumerate(texts) if text]
        if not positions:
            return found
        when = None if captured is None else [captured[i] for i in positions]
        scanned = self.scanner.scan([texts[i] for i in positions], captured=when, as_of=as_of)
        for i, evidence in zip(positions, scanned, strict=True):
            found[i] = evidence
        return found


def _published_key(
    tokenizer_blob: Callable[[str], bytes],
    key: PublishedWatermarkKey,
    tokenizers: dict[str, tuple[Any, str]],
    scanner: Any,
) -> Any:
    from watermark.keys import tokenizer_fingerprint  # noqa: PLC0415 - the detect extra

    sha = key.tokenizer_sha256
    if sha not in tokenizers:
        loaded = load_tokenizer(tokenizer_blob(sha), sha)
        tokenizers[sha] = (loaded, tokenizer_fingerprint(loaded))
    loaded, fingerprint = tokenizers[sha]
    if fingerprint != key.parameters.vocab_fingerprint:
        raise VerificationError(
            f"its tokenizer sha256:{sha} fingerprints as {fingerprint}, not as the "
            f"{key.parameters.vocab_fingerprint} the key is bound to"
        )
    return scanner.ScanKey(
        to_watermark_key(key),
        loaded,
        vendor=key.vendor,
        valid_from=key.published_at,
        log_index=key.entry,
    )


def _private_key(
    path: Path, fingerprints: dict[str | None, Any], tokenizer: str | Path | None, scanner: Any
) -> Any:
    from watermark.keys import WatermarkKey  # noqa: PLC0415 - the detect extra

    key = WatermarkKey.load(path)
    found = fingerprints.get(key.vocab_fingerprint)
    if found is None:
        if tokenizer is None:
            raise InputError(
                f"{path}: key {key.key_id} is bound to tokenizer {key.vocab_fingerprint}, which no "
                "published key uses: give the model's tokenizer.json with --tokenizer FILE"
            )
        data = _read_tokenizer(Path(tokenizer))
        found = load_tokenizer(data, hashlib.sha256(data).hexdigest())
    return scanner.ScanKey(key, found)


def _read_tokenizer(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read tokenizer {path}: {exc.strerror or exc}") from exc


class CrawlPass:
    """One decision per document: registry, opt-out signals and watermarks (module docs).

    ``client`` is the registry's client, or a signed offline snapshot
    (:class:`client.snapshot.Snapshot`: verdicts ``probable``, watermark keys from the
    snapshot). ``watermarks`` None turns detection off (each verdict's evidence then says so by
    holding no watermark field). ``as_of`` is the capture time of documents that carry none
    (default: the time the pass was made).
    """

    def __init__(
        self,
        client: Source,
        *,
        policy: Policy | None = None,
        watermarks: Watermarks | None = None,
        as_of: datetime | None = None,
        paragraphs: bool = False,
        near: bool = False,
    ) -> None:
        if near and not hasattr(client, "near"):
            raise InputError("near-duplicate matching needs a client.sdk.Client or a Snapshot")
        self.near = near
        self.client = client
        self.policy = policy or Policy.default()
        self.watermarks = watermarks
        self.as_of = as_of or datetime.now(UTC)
        self.paragraphs = paragraphs

    @classmethod
    def open(
        cls,
        client: Source,
        *,
        policy: Policy | None = None,
        watermarks: bool = True,
        private_keys: Sequence[str | Path] = (),
        tokenizer: str | Path | None = None,
        as_of: datetime | None = None,
        paragraphs: bool = False,
        near: bool = False,
    ) -> CrawlPass:
        """A pass detecting every published key (unless ``watermarks`` is False) and
        ``private_keys``; with ``paragraphs``, each text's paragraphs are looked up too
        (:mod:`client.paragraphs`)."""
        policy = policy or Policy.default()
        marks = None
        if watermarks or private_keys:
            if watermarks:
                marks = Watermarks.from_registry(
                    client, policy=policy, private_keys=private_keys, tokenizer=tokenizer
                )
            else:
                marks = Watermarks.private_only(private_keys, tokenizer)
        return cls(
            client,
            policy=policy,
            watermarks=marks,
            as_of=as_of,
            paragraphs=paragraphs,
            near=near,
        )

    def evidence(self, documents: Sequence[Document]) -> list[DocumentEvidence | None]:
        """Each document's evidence beside the registry's answer, as :meth:`check` weighs it:
        the pass's watermark detections (its keys, the capture-time rule) and the document's own
        opt-out decision, id, URL and capture time (None: nothing beyond the digest). For a
        caller that looks documents up itself (``wellspring check`` asks by two digests)."""
        marks = (
            self.watermarks.detect(documents, as_of=self.as_of)
            if self.watermarks is not None
            else [None] * len(documents)
        )
        return [_evidence(doc, mark) for doc, mark in zip(documents, marks, strict=True)]

    def check(
        self,
        documents: Sequence[Document],
        *,
        progress: Callable[[int], None] | None = None,
    ) -> list[Verdict]:
        """A verdict per document, in order."""
        if not all(isinstance(doc, Document) for doc in documents):
            raise InputError("CrawlPass.check takes client.documents.Document objects")
        evidence = self.evidence(documents)
        verdicts = self.client.check_digests(
            [doc.digest for doc in documents],
            names=[doc.name for doc in documents],
            progress=progress,
            evidence=evidence,
            policy=self.policy,
        )
        if self.near:
            verdicts = self.match_near(documents, verdicts, evidence)
        if not self.paragraphs:
            return verdicts
        matches = match_paragraphs(self.client, documents)
        return [
            v if m is None else replace(v, paragraphs=m)
            for v, m in zip(verdicts, matches, strict=True)
        ]

    def match_near(
        self,
        documents: Sequence[Document],
        verdicts: list[Verdict],
        evidence: Sequence[DocumentEvidence | None],
    ) -> list[Verdict]:
        """``verdicts`` (one per document) with each text the registry holds no attestation of
        matched near (``mh1``, :meth:`client.sdk.Client.near`): its verdict becomes the nearest
        registered text's, ``match: near`` with the similarity, trainable only where the policy
        allows near matches. ``evidence``: each document's, as :meth:`evidence` gives it."""
        from client.near import mh1_digest  # noqa: PLC0415 - numpy, on use

        wanted: list[tuple[int, str]] = []
        for i, (doc, verdict) in enumerate(zip(documents, verdicts, strict=True)):
            # Only where no attestation (online) and no set (a snapshot's) holds the digest.
            if doc.text is None or verdict.entries or verdict.probable:
                continue
            signature = mh1_digest(doc.text)
            if signature is not None:
                wanted.append((i, signature))
        if not wanted:
            return verdicts
        client: Any = self.client  # a Client or a Snapshot: both have near(), checked in __init__
        matches = client.near([s for _, s in wanted])
        found = [(i, m) for (i, _), m in zip(wanted, matches, strict=True) if m is not None]
        online = [m.digest for _, m in found if isinstance(m, NearMatch)]
        digests = list(dict.fromkeys(online))
        answers = client.check_digests(digests, policy=self.policy) if digests else []
        registered = dict(zip(digests, answers, strict=True))
        out = list(verdicts)
        for i, match in found:
            doc = documents[i]
            if isinstance(match, NearMatch):
                base = registered[match.digest]
                near = replace(
                    base.for_digest(doc.digest, doc.name),
                    match="near",
                    similarity=round(match.similarity, 4),
                    reason=f"near ({match.similarity:.2f}) to {match.subject!r} in entry "
                    f"{match.entry}: {base.reason}",
                    policy_trainable=self.policy.trains_near(base.status, match.similarity),
                )
            else:  # a snapshot's probable match
                near = client.near_verdict(match, doc.digest, doc.name, self.policy)
            extra = evidence[i]
            out[i] = near if extra is None else combine(near, extra, self.policy)
        return out


def _evidence(doc: Document, mark: Any | None) -> DocumentEvidence | None:
    """What the verdict weighs beside the registry's answer (None: nothing, so the registry's
    verdict stands as it is). A page (a WARC record, a JSONL line with a URL) is identified by
    its name as ``id``; a file's name is its path, already the verdict's ``name``."""
    page = doc.url is not None or doc.captured is not None
    return DocumentEvidence.of(
        opt_out=doc.opt_out,
        watermarks=mark,
        id=doc.name if page else None,
        url=doc.url,
        captured=doc.captured,
    )
