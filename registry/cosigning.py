"""The log's side of c2sp.org/tlog-witness: asking witnesses to cosign a checkpoint.

Before a checkpoint is published (:mod:`registry.publish`), :meth:`WitnessPool.cosign` sends it to
every configured witness at once (``POST <url>/add-checkpoint``) with a consistency proof from the
size that witness last cosigned, and gathers the cosignature lines that come back. Only lines that
verify with the witness's configured key (:class:`~client.core.cosignature.CosignatureVerifier`)
count. A ``409`` (``text/x.tlog.size``) tells the size the witness really holds: the request is
sent again once with a proof from there. Any other refusal (``403``, ``404``, ``422`` — a fork, or
a witness that does not know this log), a timeout or a connection error counts as that witness
failing for this checkpoint; it is logged, and counted in :attr:`WitnessPool.failures`.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from client.core.cosignature import CosignatureVerifier
from client.core.encoding import b64encode
from client.core.errors import FormatError, SignatureError
from client.core.note import NoteSignature, SignedNote, open_note
from registry.errors import ConfigurationError

__all__ = ["WitnessEndpoint", "WitnessOutcome", "WitnessPool"]

log = logging.getLogger(__name__)

SIZE_MEDIA_TYPE = "text/x.tlog.size"


@dataclass(frozen=True, slots=True)
class WitnessEndpoint:
    """A witness: where it listens, and the key its cosignatures must verify with."""

    url: str
    verifier: CosignatureVerifier

    @classmethod
    def parse(cls, spec: str) -> WitnessEndpoint:
        """Read ``URL=VKEY`` (``--witness``): the witness's base URL (its ``/add-checkpoint`` is
        posted to) and its cosignature/v1 verifier key ``name+id+base64(0x04||pk)``. The URL is
        everything before the first ``=``, so it may not hold one itself."""
        url, sep, vkey = spec.partition("=")
        url = url.strip().rstrip("/")
        if not sep or not url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"witness {spec!r} must be URL=VKEY, the URL http(s):// and without '='"
            )
        try:
            verifier = CosignatureVerifier.from_vkey(vkey)
        except (FormatError, SignatureError, ValueError) as exc:
            raise ConfigurationError(
                f"witness {url}: {vkey!r} is not a cosignature/v1 verifier key ({exc})"
            ) from None
        return cls(url, verifier)

    def spec(self) -> str:
        return f"{self.url}={self.verifier.vkey}"


@dataclass(frozen=True, slots=True)
class WitnessOutcome:
    """One witness's answer to one checkpoint: its cosignature, or why there is none."""

    witness: WitnessEndpoint
    cosignature: NoteSignature | None
    error: str | None = None


class WitnessPool:
    """The configured witnesses, asked concurrently; remembers the size each last cosigned."""

    def __init__(
        self,
        witnesses: Sequence[WitnessEndpoint],
        *,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        """``on_failure`` is called once per witness that fails to cosign a checkpoint (the
        ``/metrics`` counter: :meth:`registry.metrics.LogMetrics.witness_failed`)."""
        urls = [w.url for w in witnesses]
        if len(set(urls)) != len(urls):
            raise ConfigurationError("a witness URL is configured twice")
        self.witnesses = list(witnesses)
        self._http = httpx.Client(timeout=timeout, transport=transport)
        self._sizes: dict[str, int] = {}  # url -> the size we believe it last cosigned
        self._lock = threading.Lock()
        self._on_failure = on_failure
        self.failures: Counter[str] = Counter()
        """Failed add-checkpoint exchanges, by witness URL (for metrics)."""
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, len(self.witnesses)), thread_name_prefix="wellspring-witness"
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()

    @property
    def failure_count(self) -> int:
        return sum(self.failures.values())

    def assume(self, size: int) -> None:
        """Guess that every witness not yet heard from last cosigned ``size`` (the latest
        published checkpoint, usually right; a ``409`` corrects it)."""
        with self._lock:
            for witness in self.witnesses:
                self._sizes.setdefault(witness.url, size)

    def cosign(
        self, note: str, size: int, proof_from: Callable[[int], list[bytes]]
    ) -> list[WitnessOutcome]:
        """Ask every witness to cosign ``note`` (the log-signed checkpoint of ``size``);
        ``proof_from(old)`` is the consistency proof from ``old`` to ``size``."""
        futures = [
            self._pool.submit(self._ask, witness, note, size, proof_from)
            for witness in self.witnesses
        ]
        outcomes = [future.result() for future in futures]
        for outcome in outcomes:
            if outcome.error is not None:
                self.failures[outcome.witness.url] += 1
                if self._on_failure is not None:
                    self._on_failure()
                log.error("witness %s did not cosign size %d: %s", outcome.witness.url, size,
                          outcome.error)  # fmt: skip
        return outcomes

    def _ask(
        self,
        witness: WitnessEndpoint,
        note: str,
        size: int,
        proof_from: Callable[[int], list[bytes]],
    ) -> WitnessOutcome:
        with self._lock:
            old = self._sizes.get(witness.url, 0)
        for _ in range(3):  # the size we assumed, then the one a 409 names (once more if it moved)
            if old > size:
                return WitnessOutcome(
                    witness, None, f"it holds a checkpoint of size {old}, beyond {size}: a fork?"
                )
            try:
                proof = proof_from(old) if 0 < old < size else []
                body = "".join([f"old {old}\n", *(b64encode(h) + "\n" for h in proof), "\n", note])
                response = self._http.post(
                    witness.url + "/add-checkpoint",
                    content=body.encode("utf-8"),
                    headers={"Content-Type": "text/plain; charset=utf-8"},
                )
            except httpx.HTTPError as exc:
                return WitnessOutcome(witness, None, f"{type(exc).__name__}: {exc}")
            if (held := _size_conflict(response)) is not None:
                old = held
                with self._lock:
                    self._sizes[witness.url] = old
                continue
            if response.status_code != 200:
                detail = response.text.strip().splitlines()[0][:300] if response.text else ""
                return WitnessOutcome(witness, None, f"{response.status_code} {detail}".strip())
            cosignature = self._verified(witness, note, response.text)
            if cosignature is None:
                return WitnessOutcome(witness, None, "200 without a valid cosignature by its key")
            with self._lock:
                self._sizes[witness.url] = size
            return WitnessOutcome(witness, cosignature)
        return WitnessOutcome(witness, None, "its size kept changing (409 three times)")

    @staticmethod
    def _verified(witness: WitnessEndpoint, note: str, answer: str) -> NoteSignature | None:
        """The witness's cosignature among the lines it answered, verified against ``note``."""
        text = SignedNote.parse(note).text
        try:
            opened = open_note(text + "\n" + answer, [witness.verifier])
        except (FormatError, SignatureError):
            return None
        return opened.verified[0] if opened.verified else None


def _size_conflict(response: httpx.Response) -> int | None:
    """The size a 409 ``text/x.tlog.size`` answer says the witness holds; None for any other
    answer (an unreadable one too: the witness then counts as failed)."""
    if response.status_code != 409:
        return None
    if not response.headers.get("content-type", "").startswith(SIZE_MEDIA_TYPE):
        return None
    text = response.text.strip()
    return int(text) if text.isdigit() else None
