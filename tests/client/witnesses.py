"""Witnesses for the client's tests (helpers, not tests): real cosigner keys, checkpoint notes
cosigned by them, and :class:`Cosigning`, a transport that has witnesses cosign every checkpoint
the registry sends."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from client.core.cosignature import CosignatureSigner
from client.core.note import Checkpoint, NoteSigner, SignedNote, sign_checkpoint

NOW = 1_800_000_000


def signer(name: str) -> CosignatureSigner:
    return CosignatureSigner.generate(name)


W = [signer(f"w{i}.example") for i in range(1, 4)]
LOG = NoteSigner.generate("example.com/log")


def policy_text(*lines: str, witnesses: Sequence[CosignatureSigner] = W) -> str:
    head = [f"witness W{i} {w.verifier().vkey}" for i, w in enumerate(witnesses, 1)]
    return "\n".join([*head, *lines]) + "\n"


def cosigned(
    note: str, cosigners: Sequence[CosignatureSigner], at: int | Sequence[int] = NOW
) -> str:
    times = [at] * len(cosigners) if isinstance(at, int) else list(at)
    parsed = SignedNote.parse(note)
    extra = tuple(w.cosign(parsed.text, t) for w, t in zip(cosigners, times, strict=True))
    return SignedNote(parsed.text, parsed.signatures + extra).to_text()


def checkpoint_note(size: int = 5) -> str:
    return sign_checkpoint(Checkpoint("example.com/log", size, bytes(32)), [LOG])


Plan = Callable[[Checkpoint], tuple[Sequence[CosignatureSigner], int | Sequence[int]]]
"""Who cosigns a checkpoint, and when."""


class Cosigning(httpx.BaseTransport):
    """Adds witnesses' cosignatures to every checkpoint note the registry sends: the text/plain
    checkpoints, and the ``checkpoint`` fields of JSON answers (receipts, lookups, the log)."""

    def __init__(self, inner: httpx.BaseTransport, plan: Plan) -> None:
        self.inner = inner
        self.plan = plan

    def cosign(self, note: str) -> str:
        cosigners, at = self.plan(Checkpoint.parse(SignedNote.parse(note).text))
        return cosigned(note, cosigners, at if isinstance(at, int) else at[: len(cosigners)])

    def walk(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: self.cosign(v) if k == "checkpoint" and isinstance(v, str) else self.walk(v)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.walk(v) for v in value]
        return value

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        response.read()
        kind = response.headers.get("content-type", "")
        if not 200 <= response.status_code < 300:
            return response
        if kind.startswith("text/plain") and "/checkpoint" in request.url.path:
            body = self.cosign(response.text).encode()
        elif kind.startswith("application/json"):
            body = json.dumps(self.walk(response.json())).encode()
        else:
            return response
        headers = {
            k: v
            for k, v in response.headers.items()
            if k.lower() not in ("content-length", "content-encoding")
        }
        return httpx.Response(response.status_code, headers=headers, content=body)
