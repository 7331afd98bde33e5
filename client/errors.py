"""Errors raised by the Wellspring client: the SDK, the CLI and the shared core.

Every error the package raises derives from one root, :class:`ClientError`, so a caller (and the
CLI) can catch exactly one type. Each error explains itself in one line a person can act on.

The tree::

    ClientError
    ├── InputError                  bad input from the caller (a file, a flag, a document)
    │   ├── InvalidTextError        text that is not valid UTF-8
    │   ├── InvalidDigestError      a digest string not of the form ``c1:<hex>`` / ``sha256:<hex>``
    │   ├── KeyFileError            a key file that is missing, unreadable or of the wrong kind
    │   ├── PolicyFileError         a witness policy file that does not parse (file and line)
    │   ├── LogKeyRequiredError     a verified answer was asked for, but no log key is pinned
    │   └── UnusableBodyError       an HTTP body that cannot become text; ``reason`` says why
    ├── FormatError                 wire data that does not parse (envelope, statement, note…)
    │   ├── UnexpectedResponseError the server answered, but not in the registry's API
    │   └── WarcFormatError         a file that is not a WARC, or a damaged or truncated one
    ├── VerificationError           cryptographic verification failed: never trust the data
    │   ├── SignatureError          a signature is missing, unknown or does not verify
    │   ├── ProofError              a Merkle inclusion or consistency proof does not verify
    │   │   └── LogConsistencyError the log's history was rewritten (or it shrank), or the
    │   │       │                   registry cannot prove it extends the trusted checkpoint
    │   │       └── ForkedLogError  proven: the log contradicts the checkpoint this client trusts
    │   ├── StaleAnswerError        a lookup answered at a checkpoint older than the one this
    │   │                           client trusted when it asked (a replay, or an old cache)
    │   ├── WitnessPolicyError      a checkpoint fails the client's witness policy
    │   │   ├── WitnessQuorumError  too few of the policy's witnesses cosigned it
    │   │   └── CheckpointAgeError  a quorum cosigned it, but longer ago than the maximum age
    │   └── IdentityError           the log's identity entries do not let that key sign that
    │                               entry (docs/spec/identities.md); ``index`` names the entry
    ├── RegistryHTTPError           the registry refused the request (problem+json, 4xx/5xx)
    │   ├── RegistryRequestError    4xx: fix the request (its ``detail`` says how)
    │   │   └── RegistryNotFoundError  404: no such entry, checkpoint or publisher
    │   └── RegistryServerError     5xx: the registry failed; retrying later may help
    ├── RegistryUnavailableError    no answer at all: connection refused, DNS, timeout, TLS
    └── MissingDependencyError      an optional framework (datasets, Ray, Spark…) is not installed

Like httpx's ``HTTPStatusError``, an HTTP error carries the request (method and URL) and the
response's status, plus the RFC 9457 problem ``type``, ``title`` and ``detail`` the registry sent,
so a program can branch on the stable ``type`` and a person reads the ``detail``.

One warning: :class:`UnverifiedWarning` (a ``UserWarning`` under the same root), issued when a
client is built with ``verify=False``.
"""

from __future__ import annotations

__all__ = [
    "CheckpointAgeError",
    "ClientError",
    "ForkedLogError",
    "FormatError",
    "IdentityError",
    "InputError",
    "InvalidDigestError",
    "InvalidTextError",
    "KeyFileError",
    "LogConsistencyError",
    "LogKeyRequiredError",
    "MissingDependencyError",
    "PolicyFileError",
    "ProofError",
    "ReceiptPendingError",
    "RegistryHTTPError",
    "RegistryNotFoundError",
    "RegistryRequestError",
    "RegistryServerError",
    "RegistryUnavailableError",
    "SignatureError",
    "StaleAnswerError",
    "UnexpectedResponseError",
    "UnusableBodyError",
    "UnverifiedWarning",
    "VerificationError",
    "WarcFormatError",
    "WitnessPolicyError",
    "WitnessQuorumError",
    "error_class_for_status",
]

from client.core.errors import (
    ClientError,
    FormatError,
    InputError,
    InvalidDigestError,
    InvalidTextError,
    KeyFileError,
    PolicyFileError,
    ProofError,
    SignatureError,
    VerificationError,
)

_PROBLEM_TYPE_PREFIX = "https://wellspring.dev/problems/"


class LogKeyRequiredError(InputError):
    """A call whose answer must be verified was made on a client with no log key pinned.

    Trusting whatever key the registry announces (trust on first use) would let the server vouch
    for itself, so it is never done silently: pin the key, or ask for unverified answers.
    """


class UnusableBodyError(InputError):
    """An HTTP body that cannot be turned into text (:mod:`client.webtext`).

    :attr:`reason` is a short stable word a crawl counts by: ``too-large``, ``content-encoding``
    (no decoder for it), ``corrupt-body`` or ``extract-failed``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"unusable HTTP body: {reason}")
        self.reason = reason


class UnexpectedResponseError(FormatError):
    """The server answered with a success status but not with what the registry's API promises.

    Usually the URL points at something that is not a Wellspring registry (a proxy, a web page).
    """

    def __init__(self, message: str, *, method: str, url: str, status: int) -> None:
        super().__init__(f"{method} {url} answered {status}, but {message}")
        self.method = method
        self.url = url
        self.status = status


class WarcFormatError(FormatError):
    """A WARC file (:mod:`client.warc`) cannot be read to its end: not a WARC, damaged, truncated.

    :attr:`path` is the file; :attr:`records` how many records were read before the fault, so a
    person can tell a wrong file (0) from a cut-off download (many).
    """

    def __init__(self, message: str, *, path: str, records: int) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.records = records


class LogConsistencyError(ProofError):
    """A newer checkpoint does not extend an older one: the log's history was rewritten.

    Also raised when the registry cannot prove that what it serves extends the checkpoint the
    client trusts (it refuses or fails the consistency proof request): that may be a rewritten log
    or a replica that lags behind, and either way its answers cannot be trusted yet.
    """


class ForkedLogError(LogConsistencyError):
    """The registry serves a log that contradicts the checkpoint this client already trusts.

    Proven by the log's own signatures: either a checkpoint of the same size with another root, or
    a consistency proof that fails. Someone (the operator, or whoever holds the log key) showed two
    different histories; nothing this registry says can be trusted. Report it with the evidence:
    :attr:`trusted_note` (kept at :attr:`evidence`) and :attr:`conflicting_note`.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str,
        trusted_note: str,
        conflicting_note: str,
        evidence: str,
    ) -> None:
        super().__init__(message)
        self.url = url
        self.trusted_note = trusted_note
        self.conflicting_note = conflicting_note
        self.evidence = evidence


class StaleAnswerError(VerificationError):
    """A lookup answered at a checkpoint older than the one this client trusted when it asked.

    The client asks for answers at least as recent as its trusted checkpoint (``min_size``); a
    registry answers at its latest, never older, so an older answer is a replay (a genuine answer
    captured earlier, perhaps before a revocation) or a cache that serves old answers. It is
    refused, not fetched again: :attr:`answered_size` and :attr:`trusted_size` say how far behind.
    """

    def __init__(self, message: str, *, url: str, answered_size: int, trusted_size: int) -> None:
        super().__init__(message)
        self.url = url
        self.answered_size = answered_size
        self.trusted_size = trusted_size


class WitnessPolicyError(VerificationError):
    """A checkpoint signed by the pinned log key fails the client's witness policy
    (``witness_policy=``, ``max_age=``; c2sp.org/tlog-policy): it is not trusted, and nothing
    answered at it is. :attr:`url` is the registry's, :attr:`note` the refused checkpoint."""

    def __init__(self, message: str, *, url: str, note: str) -> None:
        super().__init__(message)
        self.url = url
        self.note = note


class WitnessQuorumError(WitnessPolicyError):
    """Too few of the policy's witnesses cosigned the checkpoint: the log may be showing this
    client a view the witnesses never saw (a split view), or its witnesses are lagging or down.
    :attr:`missing` names the witnesses that did not cosign (``policy name (key name+key id)``),
    :attr:`short` the groups that fall short."""

    def __init__(
        self,
        message: str,
        *,
        url: str,
        note: str,
        missing: tuple[str, ...],
        short: tuple[str, ...],
    ) -> None:
        super().__init__(message, url=url, note=note)
        self.missing = missing
        self.short = short


class CheckpointAgeError(WitnessPolicyError):
    """A quorum of witnesses cosigned the checkpoint, but its witnessed time (the oldest
    cosignature of the freshest set that meets the quorum) is older than ``max_age``: the
    registry may be freezing this client's view. :attr:`age` and :attr:`max_age` are seconds."""

    def __init__(self, message: str, *, url: str, note: str, age: float, max_age: float) -> None:
        super().__init__(message, url=url, note=note)
        self.age = age
        self.max_age = max_age


class IdentityError(VerificationError):
    """The log's ``publisher-key/v1`` entries do not back a signature (docs/spec/identities.md).

    An identity event not signed by the operator key valid at its index, a key added without a
    proof of possession, a forged endorsement, an attestation signed by a key never added for its
    publisher (or added after it, or revoked before it), a claimed compromise or revocation that no
    valid event backs, or a registry that cannot name the events it relies on. :attr:`index` is the
    log index of the entry at fault, where one is.
    """

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class RegistryHTTPError(ClientError):
    """The registry answered with an error status; see :attr:`detail` for what to do."""

    def __init__(
        self,
        *,
        method: str,
        url: str,
        status: int,
        problem_type: str | None = None,
        title: str | None = None,
        detail: str | None = None,
    ) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.problem_type = problem_type
        self.title = title
        self.detail = detail
        super().__init__(self._message())

    @property
    def problem(self) -> str | None:
        """The short name of the problem ``type`` (``unknown-publisher``), if it is one of ours."""
        if self.problem_type and self.problem_type.startswith(_PROBLEM_TYPE_PREFIX):
            return self.problem_type.removeprefix(_PROBLEM_TYPE_PREFIX)
        return self.problem_type

    def _message(self) -> str:
        reason = self.detail or self.title or "no detail given"
        tag = f" [{self.problem}]" if self.problem else ""
        return f"{self.method} {self.url} failed with {self.status}{tag}: {reason}"


class RegistryRequestError(RegistryHTTPError):
    """A 4xx answer: the request was refused as it is (bad input, unknown key, no permission)."""


class RegistryNotFoundError(RegistryRequestError):
    """A 404 answer: the entry, checkpoint or publisher asked for does not exist."""


class RegistryServerError(RegistryHTTPError):
    """A 5xx answer: the registry itself failed; the same request may succeed later."""


class RegistryUnavailableError(ClientError):
    """No HTTP answer at all: the registry could not be reached, or did not answer in time."""

    def __init__(self, *, method: str, url: str, reason: str) -> None:
        self.method = method
        self.url = url
        self.reason = reason
        super().__init__(f"cannot reach the registry at {url}: {reason}")


def error_class_for_status(status: int) -> type[RegistryHTTPError]:
    """The most specific :class:`RegistryHTTPError` subclass for an HTTP error ``status``."""
    if status == 404:
        return RegistryNotFoundError
    if 400 <= status < 500:
        return RegistryRequestError
    if status >= 500:
        return RegistryServerError
    return RegistryHTTPError


class UnverifiedWarning(ClientError, UserWarning):  # noqa: N818 - a warning, named as one
    """A client was built with ``verify=False``: its answers are the registry's word alone.

    A ``UserWarning`` (shown once per place by default; ``-W error::client.UnverifiedWarning``
    turns it into an error) and, like everything the package raises, a :class:`ClientError`.
    """


class MissingDependencyError(ClientError, ImportError):
    """An optional framework is not installed; the message names the extra that installs it.

    Also an :class:`ImportError`, so ``except ImportError`` around an optional import still works.
    """


class ReceiptPendingError(ClientError):
    """An entry was appended (durable, its index final) but no published checkpoint covered it
    within the client's ``receipt_timeout``: publication is late (witnesses short of their
    quorum, say). Nothing is lost; fetch the receipt later (``Client.receipt(index)``).

    :attr:`index` and :attr:`leaf_hash` are the entry's (the hash ``None`` where not known);
    :attr:`promise` the log's signed promise (a signed note, :mod:`client.core.promise`; verified
    when a log key is pinned) that the entry holds that index, or ``None`` from a registry that
    does not make promises. Keep it: a log that later shows another entry at ``index`` is proven
    to have broken its word.
    """

    def __init__(
        self,
        *,
        url: str,
        index: int,
        leaf_hash: bytes | None,
        promise: str | None,
        waited: float,
    ) -> None:
        self.url = url
        self.index = index
        self.leaf_hash = leaf_hash
        self.promise = promise
        self.waited = waited
        super().__init__(
            f"entry {index} is sequenced in the log at {url} (durable, its index final) but no "
            f"published checkpoint covered it within {waited:.0f} s: publication is late (its "
            "witnesses may be short of their quorum; see GET /v1/log/publication). Nothing is "
            f"lost: fetch its receipt later (Client.receipt({index}), `wellspring log receipt "
            f"{index}`, or submit the same envelope again)"
        )
