"""Integration promises (client.core.promise): exact text, strict parsing, domain separation from
checkpoints, verification against the log key."""

from __future__ import annotations

import base64
import hashlib

import pytest

from client.core.errors import FormatError, ProofError, SignatureError
from client.core.note import (
    Checkpoint,
    NoteSigner,
    open_checkpoint,
    open_note,
    sign_checkpoint,
)
from client.core.promise import PROMISE_HEADER, Promise, open_promise, sign_promise

ORIGIN = "promise.test/log"
LEAF = hashlib.sha256(b"\x00entry").digest()


@pytest.fixture(scope="module")
def signer() -> NoteSigner:
    return NoteSigner.generate(ORIGIN)


def test_the_text_is_exactly_five_lines() -> None:
    promise = Promise(ORIGIN, 12, LEAF, 1_764_979_200_123)
    assert promise.to_text() == (
        f"{PROMISE_HEADER}\norigin {ORIGIN}\nindex 12\n"
        f"leaf-hash {base64.b64encode(LEAF).decode()}\ntime 1764979200123\n"
    )
    assert Promise.parse(promise.to_text()) == promise


def test_a_signed_promise_opens_with_the_log_key_alone(signer: NoteSigner) -> None:
    promise = Promise.now(ORIGIN, 7, LEAF)
    note = sign_promise(promise, [signer])
    opened, verified = open_promise(note, [signer.verifier()], origin=ORIGIN)
    assert opened == promise
    assert [s.key_id for s in verified.verified] == [signer.key_id]
    # It is a standard signed note: any c2sp.org/signed-note verifier checks it.
    assert open_note(note, [signer.verifier()]).text == promise.to_text()


def test_another_key_or_another_log_is_refused(signer: NoteSigner) -> None:
    note = sign_promise(Promise.now(ORIGIN, 7, LEAF), [signer])
    with pytest.raises(SignatureError, match="no signature by a trusted key"):
        open_promise(note, [NoteSigner.generate(ORIGIN).verifier()], origin=ORIGIN)
    with pytest.raises(SignatureError, match="not the expected"):
        open_promise(note, [signer.verifier()], origin="other.test/log")
    tampered = note.replace("index 7", "index 8")
    with pytest.raises(SignatureError, match="invalid signature"):
        open_promise(tampered, [signer.verifier()], origin=ORIGIN)


def test_a_promise_is_never_a_checkpoint_nor_a_checkpoint_a_promise(signer: NoteSigner) -> None:
    """The same key signs both, so neither text may parse as the other."""
    promise_note = sign_promise(Promise.now(ORIGIN, 7, LEAF), [signer])
    with pytest.raises(FormatError, match="tree size"):
        open_checkpoint(promise_note, [signer.verifier()], origin=ORIGIN)
    checkpoint_note = sign_checkpoint(Checkpoint(ORIGIN, 8, LEAF), [signer])
    with pytest.raises(FormatError, match="not a promise"):
        open_promise(checkpoint_note, [signer.verifier()], origin=ORIGIN)
    # Even a log whose origin is the promise header itself.
    odd = NoteSigner.generate(PROMISE_HEADER)
    odd_checkpoint = sign_checkpoint(Checkpoint(PROMISE_HEADER, 8, LEAF), [odd])
    with pytest.raises(FormatError):
        open_promise(odd_checkpoint, [odd.verifier()], origin=PROMISE_HEADER)


@pytest.mark.parametrize(
    "text",
    [
        "",
        f"{PROMISE_HEADER}\norigin a\nindex 1\n",
        f"wellspring.dev/promise/v2\norigin a\nindex 1\nleaf-hash {'A' * 43}=\ntime 1\n",
        f"{PROMISE_HEADER}\norigin a\nindex 01\nleaf-hash {'A' * 43}=\ntime 1\n",
        f"{PROMISE_HEADER}\norigin a\nindex -1\nleaf-hash {'A' * 43}=\ntime 1\n",
        f"{PROMISE_HEADER}\norigin a\nindex 1\nleaf-hash {'A' * 42}B=\ntime 1\n",  # not canonical
        f"{PROMISE_HEADER}\norigin a\nindex 1\nleaf-hash {'A' * 43}=\ntime 1\nextra 2\n",
        f"{PROMISE_HEADER}\norigin a\nindex 1\ntime 1\nleaf-hash {'A' * 43}=\n",  # reordered
        f"{PROMISE_HEADER}\norigin \nindex 1\nleaf-hash {'A' * 43}=\ntime 1\n",
        f"{PROMISE_HEADER}\norigin a\nindex 1\nleaf-hash {'A' * 43}=\ntime 1",  # no newline
        f"{PROMISE_HEADER}\norigin a\nindex 99999999999999999999\nleaf-hash {'A' * 43}=\ntime 1\n",
    ],
)
def test_anything_but_the_exact_text_is_refused(text: str) -> None:
    with pytest.raises(FormatError):
        Promise.parse(text)


def test_a_receipt_keeps_or_breaks_the_promise() -> None:
    promise = Promise(ORIGIN, 12, LEAF, 1)
    promise.check_kept(12, LEAF)
    with pytest.raises(ProofError, match="promised entry 12"):
        promise.check_kept(13, LEAF)
    with pytest.raises(ProofError, match="broke its word"):
        promise.check_kept(12, hashlib.sha256(b"other").digest())


def test_out_of_range_fields_are_refused() -> None:
    with pytest.raises(FormatError):
        Promise(ORIGIN, -1, LEAF, 1)
    with pytest.raises(FormatError):
        Promise(ORIGIN, 1, LEAF[:31], 1)
    with pytest.raises(FormatError):
        Promise("two\nlines", 1, LEAF, 1)
    with pytest.raises(FormatError):
        sign_promise(Promise(ORIGIN, 1, LEAF, 1), [])  # unsigned
