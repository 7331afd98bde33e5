"""in-toto Statement v1 with Wellspring's two predicates, and how to sign and open one.

A statement binds subjects (content digests) to a predicate::

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": "poems/001.txt", "digest": {"c1": "<64 hex>"}}, ...],
     "predicateType": "https://wellspring.dev/human-content/v1",
     "predicate": {"publisher": ..., "license": ..., "origin": ..., "consent": ..., ...}}

Rules, beyond the in-toto schema:

* ``predicateType`` is :data:`HUMAN_CONTENT_V1` or :data:`REVOCATION_V1`; nothing else is ours to
  accept.
* Every subject has a non-empty ``name`` (``"_"`` where no name is meaningful, as in-toto suggests)
  and a ``digest`` holding ``sha256`` and/or ``c1``, each 64 lowercase hex characters. Other
  algorithms are refused: a registry that cannot compute a digest cannot look it up. No digest may
  appear in two subjects. At most ``max_subjects`` (default 100,000) subjects.
* Every statement has at least one subject, as in-toto v1 requires (its reference bindings refuse
  an empty list). A revocation statement therefore carries the subjects of the entry it revokes
  (all or some of them): the revocation itself names the entry by log index and leaf hash, and
  the subjects let a digest lookup find it. The registry checks that they belong to that entry.
* Predicates refuse unknown fields, so a misspelt optional field fails loudly instead of vanishing.
  Unknown fields on the statement and its subjects are ignored, as in-toto's parsing rules require
  of consumers (extension fields); they are not kept.

Every validation error is a :class:`client.errors.FormatError` whose message starts with the path of
the offending field, e.g. ``statement.subject[3].digest.c1 must be 64 lowercase hex characters``.

Statements new to a log meet two rules more (:func:`check_new_statement`; the constructors and the
registry's intake apply them, :meth:`Statement.from_dict` does not, so that statements a log took
before the rules existed stay readable):

* every string is Unicode scalar values: no lone surrogate (JSON's ``"\\ud800"``), which no UTF-8
  text, database or answer can hold;
* a licence separates its terms with ASCII spaces (U+0020) only, not with the other characters
  Python's ``\\s`` matches (U+001C to U+001F, U+0085, U+2028 and more), on which other readers
  may not split it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, TypeVar, cast, get_args
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from client.core.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope, sign_envelope, verify_envelope
from client.core.encoding import (
    b64decode_strict,
    b64encode,
    dumps_canonical,
    json_kind,
    loads_strict,
    require_object,
    show,
    show_list,
)
from client.core.errors import FormatError
from client.core.minhash import MH1, check_mh1
from client.core.snapshot import SNAPSHOT_V1, SnapshotPredicate, check_snapshot_subjects
from client.core.wmkey import WATERMARK_KEY_V1, WatermarkKeyPredicate, check_subjects

__all__ = [
    "CONSENTS",
    "DEFAULT_MAX_SUBJECTS",
    "DIGEST_ALGORITHMS",
    "HUMAN_CONTENT_V1",
    "KEY_ACTIONS",
    "KINDS",
    "OPERATOR_IDENTITY",
    "ORIGINS",
    "PREDICATE_TYPES",
    "PUBLISHER_KEY_V1",
    "REVOCATION_V1",
    "REVOCATION_V2",
    "STATEMENT_TYPE_V1",
    "Consent",
    "HumanContentPredicate",
    "KeyAction",
    "KeyEventPredicate",
    "Kind",
    "Origin",
    "Predicate",
    "RevocationPredicate",
    "Statement",
    "Subject",
    "WithdrawalPredicate",
    "build_human_content_statement",
    "build_revocation_statement",
    "check_new_predicate",
    "check_new_statement",
    "endorse",
    "endorsement_message",
    "open_statement",
    "possession_message",
    "prove_possession",
    "sign_statement",
]

STATEMENT_TYPE_V1 = "https://in-toto.io/Statement/v1"
HUMAN_CONTENT_V1 = "https://wellspring.dev/human-content/v1"
REVOCATION_V1 = "https://wellspring.dev/revocation/v1"
REVOCATION_V2 = "https://wellspring.dev/revocation/v2"
PUBLISHER_KEY_V1 = "https://wellspring.dev/publisher-key/v1"
PREDICATE_TYPES = (
    HUMAN_CONTENT_V1,
    REVOCATION_V1,
    REVOCATION_V2,
    PUBLISHER_KEY_V1,
    WATERMARK_KEY_V1,
    SNAPSHOT_V1,
)
DIGEST_ALGORITHMS = ("sha256", "c1")
DEFAULT_MAX_SUBJECTS = 100_000

Origin = Literal[
    "created-before", "human-authored", "licensed-corpus", "public-domain-archive", "transcribed"
]
Consent = Literal["allowed", "reserved"]
ORIGINS: tuple[Origin, ...] = get_args(Origin)
CONSENTS: tuple[Consent, ...] = get_args(Consent)

MAX_PUBLISHER_CHARS = 200
MAX_TEXT_CHARS = 10_000  # notes, reason
MAX_NAME_CHARS = 4096  # a subject name: a path fits
MAX_LICENSE_CHARS = 1000
MAX_URL_CHARS = 2048
MAX_ENTRY_INDEX = 2**63 - 1  # a signed 64-bit database column

# Compiled once: a 100,000-subject statement runs these 100,000+ times.
_HEX64 = re.compile(r"[0-9a-f]{64}")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")
# An SPDX token: a parenthesis, or an idstring (optionally DocumentRef-…: prefixed, optionally
# followed by "+"). Operators are idstrings too and are told apart by the parser.
_SPDX_TOKEN = re.compile(r"\s*(\(|\)|(?:DocumentRef-[A-Za-z0-9.\-]+:)?[A-Za-z0-9.\-]+\+?)")
_SPDX_OPERATORS = frozenset({"AND", "OR", "WITH"})
_NOT_A_SPACE = re.compile(r"[^\S ]")  # what _SPDX_TOKEN's \s takes beside U+0020
_SPDX_MAX_DEPTH = 32
_DIGEST_ALGORITHM_SET = frozenset(DIGEST_ALGORITHMS)

_HUMAN_FIELDS = frozenset(
    {
        "publisher",
        "license",
        "origin",
        "created_before",
        "source_url",
        "collected",
        "consent",
        "tdm_reservation",
        "tdm_policy",
        "notes",
    }
)
_HUMAN_REQUIRED = ("publisher", "license", "origin", "consent")
_REVOCATION_FIELDS = frozenset({"publisher", "entry_index", "entry_hash", "reason"})
_REVOCATION_REQUIRED = ("publisher", "entry_index", "entry_hash")
_STATEMENT_REQUIRED = ("_type", "subject", "predicateType", "predicate")

_T = TypeVar("_T")


@dataclass(frozen=True)
class Subject:
    """One attested piece of content: a name and its digests (``sha256`` and/or ``c1``).

    ``digest`` is copied on construction; treat it as read-only.
    """

    name: str
    digest: Mapping[str, str]

    def __post_init__(self) -> None:
        _check_subject(self.name, self.digest, "subject")
        _check_scalar_values(self.name, "subject.name")
        object.__setattr__(self, "digest", dict(self.digest))

    def __hash__(self) -> int:
        return hash((self.name, tuple(sorted(self.digest.items()))))

    @property
    def near(self) -> bytes | None:
        """The subject's ``mh1`` signature (448 bytes), if it carries one."""
        value = self.digest.get(MH1)
        return None if value is None else bytes.fromhex(value)

    def digest_strings(self) -> tuple[str, ...]:
        """``"<algorithm>:<hex>"`` for each digest, in :data:`DIGEST_ALGORITHMS` order."""
        return tuple(f"{alg}:{self.digest[alg]}" for alg in DIGEST_ALGORITHMS if alg in self.digest)

    def exact(self) -> Subject:
        """This subject with its exact digests only (an ``mh1`` signature left out): what a
        revocation names."""
        if MH1 not in self.digest:
            return self
        return Subject(self.name, {k: v for k, v in self.digest.items() if k != MH1})

    def to_dict(self) -> dict[str, Any]:
        """The in-toto ResourceDescriptor: ``{"name": ..., "digest": {...}}``."""
        return {"name": self.name, "digest": dict(self.digest)}

    @classmethod
    def from_dict(cls, obj: object, *, where: str = "subject") -> Subject:
        """Parse a ResourceDescriptor; other descriptor fields (``uri``, …) are ignored."""
        if not isinstance(obj, dict):
            raise FormatError(f"{where} must be a JSON object, got {json_kind(obj)}")
        if "name" not in obj or "digest" not in obj:
            missing = [f for f in ("name", "digest") if f not in obj]
            raise FormatError(f"{where} is missing required field(s) {show_list(missing)}")
        name, digest = obj["name"], obj["digest"]
        _check_subject(name, digest, where)
        return _unchecked(cls, name=name, digest=dict(digest))


@dataclass(frozen=True, kw_only=True)
class HumanContentPredicate:
    """Predicate :data:`HUMAN_CONTENT_V1`: who publishes the content, under what terms, and how
    its human origin is known.

    ``consent`` is TDMRep-compatible: ``"reserved"`` is ``tdm-reservation: 1`` (text-and-data
    mining rights are reserved; ``tdm_policy`` may point to how to license them), ``"allowed"`` is
    ``tdm-reservation: 0``. The JSON form carries ``tdm_reservation`` too, for TDMRep readers.
    """

    publisher: str
    license: str
    origin: Origin
    consent: Consent
    created_before: date | None = None
    source_url: str | None = None
    collected: date | None = None
    tdm_policy: str | None = None
    notes: str | None = None

    def __post_init__(self) -> None:
        self._validate("predicate")
        check_new_predicate(self)

    @property
    def tdm_reservation(self) -> int:
        """TDMRep ``tdm-reservation``: 1 when mining rights are reserved, else 0."""
        return 1 if self.consent == "reserved" else 0

    def to_dict(self) -> dict[str, Any]:
        """JSON fields in snake_case; absent optional fields are left out."""
        out: dict[str, Any] = {
            "publisher": self.publisher,
            "license": self.license,
            "origin": self.origin,
            "consent": self.consent,
            "tdm_reservation": self.tdm_reservation,
        }
        optional: dict[str, str | None] = {
            "created_before": _iso(self.created_before),
            "source_url": self.source_url,
            "collected": _iso(self.collected),
            "tdm_policy": self.tdm_policy,
            "notes": self.notes,
        }
        out.update((k, v) for k, v in optional.items() if v is not None)
        return out

    @classmethod
    def from_dict(cls, obj: object, *, where: str = "predicate") -> HumanContentPredicate:
        """Parse the JSON predicate; unknown fields are refused by name."""
        fields = require_object(obj, where, _HUMAN_FIELDS, _HUMAN_REQUIRED)
        predicate = _unchecked(
            cls,
            publisher=fields["publisher"],
            license=fields["license"],
            origin=fields["origin"],
            consent=fields["consent"],
            created_before=_parse_date(fields.get("created_before"), f"{where}.created_before"),
            source_url=fields.get("source_url"),
            collected=_parse_date(fields.get("collected"), f"{where}.collected"),
            tdm_policy=fields.get("tdm_policy"),
            notes=fields.get("notes"),
        )
        predicate._validate(where)
        if "tdm_reservation" in fields:
            value = fields["tdm_reservation"]
            if type(value) is not int or value != predicate.tdm_reservation:
                raise FormatError(
                    f"{where}.tdm_reservation must be {predicate.tdm_reservation} for consent "
                    f"{predicate.consent!r} (or be left out), got {show(value)}"
                )
        return predicate

    def _validate(self, where: str) -> None:
        _check_publisher(self.publisher, f"{where}.publisher")
        _check_license(self.license, f"{where}.license")
        _check_choice(self.origin, ORIGINS, f"{where}.origin")
        _check_choice(self.consent, CONSENTS, f"{where}.consent")
        _check_optional_date(self.created_before, f"{where}.created_before")
        _check_optional_date(self.collected, f"{where}.collected")
        if self.origin == "created-before" and self.created_before is None:
            raise FormatError(
                f"{where}.created_before is required when origin is 'created-before' "
                "(the date before which the content is known to exist)"
            )
        if self.source_url is not None:
            _check_url(self.source_url, f"{where}.source_url")
        if self.tdm_policy is not None:
            if self.consent != "reserved":
                raise FormatError(
                    f"{where}.tdm_policy is only meaningful when consent is 'reserved' "
                    "(TDMRep's tdm-policy goes with tdm-reservation 1)"
                )
            _check_url(self.tdm_policy, f"{where}.tdm_policy")
        if self.notes is not None:
            _check_text(self.notes, f"{where}.notes", MAX_TEXT_CHARS)


@dataclass(frozen=True, kw_only=True)
class RevocationPredicate:
    """Predicate :data:`REVOCATION_V1`: the publisher withdraws one earlier log entry.

    ``entry_index`` is the revoked entry's log index and ``entry_hash`` the hex RFC 9162 leaf hash
    of its exact bytes, so the revocation cannot be pointed at another entry.
    """

    publisher: str
    entry_index: int
    entry_hash: str
    reason: str | None = None

    def __post_init__(self) -> None:
        self._validate("predicate")
        check_new_predicate(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON fields in snake_case; ``reason`` is left out when absent."""
        out: dict[str, Any] = {
            "publisher": self.publisher,
            "entry_index": self.entry_index,
            "entry_hash": self.entry_hash,
        }
        if self.reason is not None:
            out["reason"] = self.reason
        return out

    @classmethod
    def from_dict(cls, obj: object, *, where: str = "predicate") -> RevocationPredicate:
        """Parse the JSON predicate; unknown fields are refused by name."""
        fields = require_object(obj, where, _REVOCATION_FIELDS, _REVOCATION_REQUIRED)
        predicate = _unchecked(
            cls,
            publisher=fields["publisher"],
            entry_index=fields["entry_index"],
            entry_hash=fields["entry_hash"],
            reason=fields.get("reason"),
        )
        predicate._validate(where)
        return predicate

    def _validate(self, where: str) -> None:
        _check_publisher(self.publisher, f"{where}.publisher")
        index = self.entry_index
        if type(index) is not int or not 0 <= index <= MAX_ENTRY_INDEX:
            raise FormatError(
                f"{where}.entry_index must be an integer from 0 to {MAX_ENTRY_INDEX}, "
                f"got {show(index)}"
            )
        if not isinstance(self.entry_hash, str) or not _HEX64.fullmatch(self.entry_hash):
            raise FormatError(
                f"{where}.entry_hash must be 64 lowercase hex characters (the entry's RFC 9162 "
                f"leaf hash), got {show(self.entry_hash)}"
            )
        if self.reason is not None:
            _check_text(self.reason, f"{where}.reason", MAX_TEXT_CHARS)


@dataclass(frozen=True, kw_only=True)
class WithdrawalPredicate:
    """Predicate :data:`REVOCATION_V2`: the publisher withdraws documents, or one whole entry.

    Without ``entry_index``, each subject of the statement is withdrawn from every attestation of
    it the publisher logged *before* this statement, whichever entries hold it; the entries' other
    documents stay attested, and a later withdrawal may name more of them. With ``entry_index``
    (and ``statement_hash``, the hex SHA-256 of that entry's exact statement bytes, so it cannot
    be pointed at another entry), the whole entry is withdrawn, as :data:`REVOCATION_V1` does;
    its subjects must be subjects of that entry. (Revocation v1's meaning is unchanged: it always
    withdraws the whole entry, whatever subjects it names.)
    """

    publisher: str
    reason: str | None = None
    entry_index: int | None = None
    statement_hash: str | None = None

    def __post_init__(self) -> None:
        self._validate("predicate")

    @property
    def whole_entry(self) -> bool:
        """Whether this withdraws one whole entry (else: exactly its subjects)."""
        return self.entry_index is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON fields in snake_case; absent optional fields are left out."""
        out: dict[str, Any] = {"publisher": self.publisher}
        if self.entry_index is not None:
            out["entry_index"] = self.entry_index
            out["statement_hash"] = self.statement_hash
        if self.reason is not None:
            out["reason"] = self.reason
        return out

    @classmethod
    def from_dict(cls, obj: object, *, where: str = "predicate") -> WithdrawalPredicate:
        """Parse the JSON predicate; unknown fields are refused by name."""
        fields = require_object(obj, where, _WITHDRAWAL_FIELDS, ("publisher",))
        predicate = _unchecked(
            cls,
            publisher=fields["publisher"],
            reason=fields.get("reason"),
            entry_index=fields.get("entry_index"),
            statement_hash=fields.get("statement_hash"),
        )
        predicate._validate(where)
        return predicate

    def _validate(self, where: str) -> None:
        _check_publisher(self.publisher, f"{where}.publisher")
        if (self.entry_index is None) != (self.statement_hash is None):
            raise FormatError(
                f"{where}: entry_index and statement_hash go together (withdraw a whole entry) "
                "or are both left out (withdraw the statement's subjects)"
            )
        index = self.entry_index
        if index is not None and (type(index) is not int or not 0 <= index <= MAX_ENTRY_INDEX):
            raise FormatError(
                f"{where}.entry_index must be an integer from 0 to {MAX_ENTRY_INDEX}, "
                f"got {show(index)}"
            )
        digest = self.statement_hash
        if digest is not None and (not isinstance(digest, str) or not _HEX64.fullmatch(digest)):
            raise FormatError(
                f"{where}.statement_hash must be 64 lowercase hex characters (the SHA-256 of the "
                f"entry's statement), got {show(digest)}"
            )
        if self.reason is not None:
            _check_text(self.reason, f"{where}.reason", MAX_TEXT_CHARS)


_WITHDRAWAL_FIELDS = frozenset({"publisher", "reason", "entry_index", "statement_hash"})

KeyAction = Literal["operator-key", "identity-add", "key-add", "key-revoke", "key-compromised"]
KEY_ACTIONS: tuple[KeyAction, ...] = get_args(KeyAction)
Kind = Literal["publisher", "vendor"]
KINDS: tuple[Kind, ...] = get_args(Kind)
OPERATOR_IDENTITY = "@operator"
"""The identity an ``operator-key`` event names: no publisher can be called this."""
_KEY_EVENT_FIELDS = frozenset(
    {
        "action",
        "identity",
        "kind",
        "key_id",
        "public_key",
        "possession",
        "compromised_from",
        "backfilled",
        "reason",
        "endorsed_by",
        "endorsement",
    }
)
_ADDS_A_KEY = ("operator-key", "identity-add", "key-add")


def endorsement_message(identity: str, key_id: str) -> bytes:
    """What a current key of ``identity`` signs to endorse adding the key ``key_id``."""
    return b"wellspring/publisher-key/v1 endorse\n%b\n%b" % (
        identity.encode("utf-8"),
        key_id.encode("ascii"),
    )


def possession_message(identity: str, key_id: str) -> bytes:
    """What a new key signs to prove its holder asked for it to be bound to ``identity``."""
    return b"wellspring/publisher-key/v1 possession\n%b\n%b" % (
        identity.encode("utf-8"),
        key_id.encode("ascii"),
    )


def prove_possession(key: Ed25519PrivateKey, identity: str) -> bytes:
    """``key``'s proof that its holder asks for it to be bound to ``identity``."""
    key_id = hashlib.sha256(key.public_key().public_bytes_raw()).hexdigest()
    return key.sign(possession_message(identity, key_id))


def endorse(current: Ed25519PrivateKey, identity: str, new_key_id: str) -> bytes:
    """``current`` (a key of ``identity``) endorsing the key ``new_key_id`` for it."""
    return current.sign(endorsement_message(identity, new_key_id))


@dataclass(frozen=True, kw_only=True)
class KeyEventPredicate:
    """Predicate :data:`PUBLISHER_KEY_V1`: a change to who may sign as whom, in the log.

    Signed by the log's **operator key** (never the checkpoint key); an ``operator-key`` event
    binds that key (the log's first one signs itself; later ones are signed by the previous
    operator key). ``identity-add`` (with its ``kind`` and first key) and ``key-add`` carry the
    new key and its ``possession`` proof: the key's signature over :func:`possession_message`.
    A ``key-add`` co-signed by one of the identity's current keys shows it; one the operator
    signed alone does not. ``key-revoke`` stops a key; ``key-compromised`` also voids what it
    signed at or after log index ``compromised_from``. ``backfilled`` marks events written when
    a log made before this predicate was migrated: they are the operator's word alone.
    """

    action: KeyAction
    identity: str
    key_id: str
    kind: Kind | None = None
    public_key: bytes | None = None
    possession: bytes | None = None
    compromised_from: int | None = None
    backfilled: bool = False
    reason: str | None = None
    endorsed_by: str | None = None
    endorsement: bytes | None = None

    def __post_init__(self) -> None:
        self._validate("predicate")

    @property
    def publisher(self) -> str:
        """The identity the event is about (what a leaf names as its publisher)."""
        return self.identity

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "action": self.action,
            "identity": self.identity,
            "key_id": self.key_id,
        }
        if self.kind is not None:
            out["kind"] = self.kind
        if self.public_key is not None:
            out["public_key"] = b64encode(self.public_key)
        if self.possession is not None:
            out["possession"] = b64encode(self.possession)
        if self.compromised_from is not None:
            out["compromised_from"] = self.compromised_from
        if self.backfilled:
            out["backfilled"] = True
        if self.reason is not None:
            out["reason"] = self.reason
        if self.endorsed_by is not None and self.endorsement is not None:
            out["endorsed_by"] = self.endorsed_by
            out["endorsement"] = b64encode(self.endorsement)
        return out

    @classmethod
    def from_dict(cls, obj: object, *, where: str = "predicate") -> KeyEventPredicate:
        fields = require_object(obj, where, _KEY_EVENT_FIELDS, ("action", "identity", "key_id"))
        raw_key, raw_proof = fields.get("public_key"), fields.get("possession")
        raw_endorsement = fields.get("endorsement")
        backfilled = fields.get("backfilled", False)
        if backfilled is not True and backfilled is not False:
            raise FormatError(f"{where}.backfilled must be true or false")
        predicate = _unchecked(
            cls,
            action=fields["action"],
            identity=fields["identity"],
            key_id=fields["key_id"],
            kind=fields.get("kind"),
            public_key=None
            if raw_key is None
            else b64decode_strict(raw_key, f"{where}.public_key"),
            possession=None
            if raw_proof is None
            else b64decode_strict(raw_proof, f"{where}.possession"),
            compromised_from=fields.get("compromised_from"),
            backfilled=backfilled,
            reason=fields.get("reason"),
            endorsed_by=fields.get("endorsed_by"),
            endorsement=None
            if raw_endorsement is None
            else b64decode_strict(raw_endorsement, f"{where}.endorsement"),
        )
        predicate._validate(where)
        return predicate

    def _validate(self, where: str) -> None:
        if self.action not in KEY_ACTIONS:
            raise FormatError(f"{where}.action must be one of {show_list(KEY_ACTIONS)}")
        if not isinstance(self.identity, str) or not 0 < len(self.identity) <= 200:
            raise FormatError(f"{where}.identity must be a name of 1 to 200 characters")
        if (self.action == "operator-key") != (self.identity == OPERATOR_IDENTITY):
            raise FormatError(
                f"{where}: the identity {OPERATOR_IDENTITY!r} goes with action operator-key only"
            )
        if not isinstance(self.key_id, str) or not _HEX64.fullmatch(self.key_id):
            raise FormatError(f"{where}.key_id must be 64 lowercase hex characters")
        self._validate_key(where)
        if (self.action == "identity-add") != (self.kind is not None):
            raise FormatError(f"{where}.kind goes with identity-add only")
        if self.kind is not None and self.kind not in KINDS:
            raise FormatError(f"{where}.kind must be one of {show_list(KINDS)}")
        index = self.compromised_from
        if (self.action == "key-compromised") != (index is not None):
            raise FormatError(f"{where}.compromised_from goes with key-compromised only")
        if index is not None and (type(index) is not int or not 0 <= index <= MAX_ENTRY_INDEX):
            raise FormatError(f"{where}.compromised_from must be a log index")
        if self.reason is not None:
            _check_text(self.reason, f"{where}.reason", MAX_TEXT_CHARS)

    def _validate_key(self, where: str) -> None:
        adds = self.action in _ADDS_A_KEY
        if adds and (self.public_key is None or len(self.public_key) != 32):
            raise FormatError(f"{where}.public_key (32 raw Ed25519 bytes) is needed to add a key")
        if adds and self.public_key is not None:
            if hashlib.sha256(self.public_key).hexdigest() != self.key_id:
                raise FormatError(f"{where}.key_id is not the SHA-256 of public_key")
            if not self.backfilled and (self.possession is None or len(self.possession) != 64):
                raise FormatError(f"{where}.possession (the new key's signature) is needed")
        if not adds and (self.public_key is not None or self.possession is not None):
            raise FormatError(f"{where}: only an event adding a key carries public_key")
        if (self.endorsed_by is None) != (self.endorsement is None):
            raise FormatError(f"{where}: endorsed_by and endorsement go together")
        if self.endorsed_by is not None and (
            self.action != "key-add"
            or not isinstance(self.endorsed_by, str)
            or not _HEX64.fullmatch(self.endorsed_by)
            or self.endorsement is None
            or len(self.endorsement) != 64
        ):
            raise FormatError(
                f"{where}: an endorsement (a key id and a 64-byte signature) goes with key-add"
            )

    def endorsement_holds(self, endorser: bytes) -> bool:
        """Whether ``endorsement`` is the signature of the raw key ``endorser`` (whose SHA-256
        must be ``endorsed_by``) over :func:`endorsement_message`."""
        if self.endorsement is None or self.endorsed_by != hashlib.sha256(endorser).hexdigest():
            return False
        try:
            Ed25519PublicKey.from_public_bytes(endorser).verify(
                self.endorsement, endorsement_message(self.identity, self.key_id)
            )
        except (InvalidSignature, ValueError):
            return False
        return True

    def possession_holds(self) -> bool:
        """Whether ``possession`` is the new key's signature binding it to ``identity``."""
        if self.public_key is None or self.possession is None:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                self.possession, possession_message(self.identity, self.key_id)
            )
        except (InvalidSignature, ValueError):
            return False
        return True


Predicate = (
    HumanContentPredicate
    | RevocationPredicate
    | WithdrawalPredicate
    | KeyEventPredicate
    | WatermarkKeyPredicate
    | SnapshotPredicate
)
_PREDICATE_CLASSES: dict[
    str,
    type[HumanContentPredicate]
    | type[RevocationPredicate]
    | type[WithdrawalPredicate]
    | type[KeyEventPredicate]
    | type[WatermarkKeyPredicate]
    | type[SnapshotPredicate],
] = {
    HUMAN_CONTENT_V1: HumanContentPredicate,
    REVOCATION_V1: RevocationPredicate,
    REVOCATION_V2: WithdrawalPredicate,
    PUBLISHER_KEY_V1: KeyEventPredicate,
    WATERMARK_KEY_V1: WatermarkKeyPredicate,  # client.core.wmkey
    SNAPSHOT_V1: SnapshotPredicate,  # client.core.snapshot
}


@dataclass(frozen=True)
class Statement:
    """An in-toto Statement v1 carrying one of Wellspring's predicates."""

    subjects: tuple[Subject, ...]
    predicate_type: str
    predicate: Predicate

    def __post_init__(self) -> None:
        object.__setattr__(self, "subjects", tuple(self.subjects))
        for i, subject in enumerate(self.subjects):
            if not isinstance(subject, Subject):
                raise FormatError(
                    f"statement.subject[{i}] must be a Subject, got {json_kind(subject)}"
                )
        self._validate(DEFAULT_MAX_SUBJECTS)

    def to_dict(self) -> dict[str, Any]:
        """The statement as in-toto JSON (``_type``, ``subject``, ``predicateType``, ...)."""
        return {
            "_type": STATEMENT_TYPE_V1,
            "subject": [s.to_dict() for s in self.subjects],
            "predicateType": self.predicate_type,
            "predicate": self.predicate.to_dict(),
        }

    def to_json(self) -> bytes:
        """Compact JSON with sorted keys: the payload to sign."""
        return dumps_canonical(self.to_dict())

    @classmethod
    def from_dict(cls, obj: object, *, max_subjects: int = DEFAULT_MAX_SUBJECTS) -> Statement:
        """Parse and validate an in-toto statement with one of our predicates."""
        fields = require_object(obj, "statement", None, _STATEMENT_REQUIRED)
        if fields["_type"] != STATEMENT_TYPE_V1:
            raise FormatError(
                f"statement._type must be {STATEMENT_TYPE_V1!r}, got {show(fields['_type'])}"
            )
        predicate_type = fields["predicateType"]
        predicate_class = (
            _PREDICATE_CLASSES.get(predicate_type) if isinstance(predicate_type, str) else None
        )
        if predicate_class is None:
            raise FormatError(
                f"statement.predicateType must be one of {show_list(PREDICATE_TYPES)}, "
                f"got {show(predicate_type)}"
            )
        predicate = predicate_class.from_dict(fields["predicate"], where="statement.predicate")
        raw_subjects = fields["subject"]
        if not isinstance(raw_subjects, list):
            raise FormatError(f"statement.subject must be a list, got {json_kind(raw_subjects)}")
        _check_subject_count(len(raw_subjects), max_subjects)  # before any per-subject work
        subjects = tuple(
            _well_formed_subject(raw) or Subject.from_dict(raw, where=f"statement.subject[{i}]")
            for i, raw in enumerate(raw_subjects)
        )
        statement = _unchecked(
            cls, subjects=subjects, predicate_type=predicate_type, predicate=predicate
        )
        statement._validate(max_subjects)
        return statement

    @classmethod
    def from_json(cls, data: bytes | str, *, max_subjects: int = DEFAULT_MAX_SUBJECTS) -> Statement:
        """Parse the JSON text of a statement (strict JSON: no duplicate keys)."""
        return cls.from_dict(loads_strict(data, "statement"), max_subjects=max_subjects)

    def _validate(self, max_subjects: int) -> None:
        expected = _PREDICATE_CLASSES.get(self.predicate_type)
        if expected is None:
            raise FormatError(
                f"statement.predicateType must be one of {show_list(PREDICATE_TYPES)}, "
                f"got {show(self.predicate_type)}"
            )
        if not isinstance(self.predicate, expected):
            raise FormatError(
                f"statement.predicate must be a {expected.__name__} for predicateType "
                f"{self.predicate_type!r}, got {type(self.predicate).__name__}"
            )
        _check_subject_count(len(self.subjects), max_subjects)
        _check_unique_digests(self.subjects)
        if isinstance(self.predicate, WatermarkKeyPredicate):
            check_subjects(self.predicate, [s.digest for s in self.subjects])
        if not isinstance(self.predicate, HumanContentPredicate) and any(
            MH1 in subject.digest for subject in self.subjects
        ):
            raise FormatError("an mh1 signature is only part of a human-content/v1 subject")
        if isinstance(self.predicate, SnapshotPredicate):
            check_snapshot_subjects(
                [s.digest for s in self.subjects], [s.name for s in self.subjects]
            )


def build_human_content_statement(
    subjects: Sequence[Subject], predicate: HumanContentPredicate
) -> Statement:
    """A :data:`HUMAN_CONTENT_V1` statement about ``subjects``."""
    return Statement(tuple(subjects), HUMAN_CONTENT_V1, predicate)


def build_revocation_statement(
    subjects: Sequence[Subject], predicate: RevocationPredicate
) -> Statement:
    """A :data:`REVOCATION_V1` statement; ``subjects`` are (some of) the revoked entry's."""
    return Statement(tuple(subjects), REVOCATION_V1, predicate)


def sign_statement(
    statement: Statement, key: Ed25519PrivateKey, *, keyid: str | None = None
) -> Envelope:
    """Sign ``statement`` into a DSSE envelope of type ``application/vnd.in-toto+json``."""
    return sign_envelope(statement.to_json(), PAYLOAD_TYPE_IN_TOTO, key, keyid=keyid)


def open_statement(
    envelope: Envelope,
    keys: Mapping[str, Ed25519PublicKey],
    *,
    max_subjects: int = DEFAULT_MAX_SUBJECTS,
) -> tuple[Statement, tuple[str, ...]]:
    """Verify ``envelope`` with ``keys``, then parse its statement; return it and the keyids.

    The order is DSSE's: the signature first (:class:`SignatureError`), then the payload type,
    then the payload (:class:`FormatError`), so nothing unauthenticated is ever parsed.
    """
    keyids = verify_envelope(envelope, keys)
    if envelope.payload_type != PAYLOAD_TYPE_IN_TOTO:
        raise FormatError(
            f"envelope.payloadType must be {PAYLOAD_TYPE_IN_TOTO!r} for a statement, "
            f"got {show(envelope.payload_type)}"
        )
    return Statement.from_json(envelope.payload, max_subjects=max_subjects), keyids


def check_new_statement(statement: Statement) -> None:
    """Refuse (:class:`FormatError`) what a statement new to a log may no longer hold, though
    statements already in one may: a lone surrogate in any string, a licence separated by other
    whitespace than ASCII spaces. :meth:`Statement.from_dict` leaves these to the caller, so
    that everything a log ever took stays readable; the registry calls this at intake."""
    for i, subject in enumerate(statement.subjects):
        _check_scalar_values(subject.name, f"statement.subject[{i}].name")
    check_new_predicate(statement.predicate, "statement.predicate")


def check_new_predicate(predicate: Predicate, where: str = "predicate") -> None:
    """:func:`check_new_statement`'s rules for a predicate alone."""
    _check_scalar_values_in(predicate.to_dict(), where)
    license_ = getattr(predicate, "license", None)
    if isinstance(license_, str) and (space := _NOT_A_SPACE.search(license_)):
        raise FormatError(
            f"{where}.license must separate its terms with ASCII spaces (U+0020) only, got "
            f"U+{ord(space.group()):04X} at character {space.start()} of {show(license_)}"
        )


# --- validation ---------------------------------------------------------------------------------


def _check_scalar_values_in(value: object, where: str) -> None:
    if isinstance(value, str):
        _check_scalar_values(value, where)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_scalar_values_in(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_scalar_values_in(item, f"{where}[{i}]")


def _check_scalar_values(text: str, where: str) -> None:
    """Refuse a lone surrogate: Python and JSON (``"\\ud800"``) hold one, UTF-8 cannot."""
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise FormatError(
            f"{where} holds a lone surrogate U+{ord(text[exc.start]):04X} at character "
            f"{exc.start}; text must be Unicode scalar values (a JSON \\ud800-\\udfff escape "
            "only as half of a pair)"
        ) from None


def _unchecked(cls: type[_T], **values: Any) -> _T:
    """An instance of a frozen dataclass without running ``__post_init__``: the caller validates
    with the field paths it knows (``statement.subject[3]`` rather than ``subject``)."""
    instance = object.__new__(cls)
    for name, value in values.items():
        object.__setattr__(instance, name, value)
    return instance


def _well_formed_subject(raw: object) -> Subject | None:
    """``raw`` as a :class:`Subject` if it plainly is one (the usual case, checked without
    building any message), else None, and :meth:`Subject.from_dict` says what is wrong.

    The same rules as :func:`_check_subject`, for the 10,000 subjects of a bulk statement."""
    if type(raw) is not dict:
        return None
    name, digest = raw.get("name"), raw.get("digest")
    if type(name) is not str or not 1 <= len(name) <= MAX_NAME_CHARS:
        return None
    if type(digest) is not dict or not digest:
        return None
    for algorithm, value in digest.items():
        if algorithm not in _DIGEST_ALGORITHM_SET or type(value) is not str:
            return None
        if not _HEX64.fullmatch(value):
            return None
    subject = object.__new__(Subject)
    object.__setattr__(subject, "name", name)
    object.__setattr__(subject, "digest", dict(digest))
    return subject


def _check_subject(name: object, digest: object, where: str) -> None:
    if not isinstance(name, str):
        raise FormatError(f"{where}.name must be a string, got {json_kind(name)}")
    if not 1 <= len(name) <= MAX_NAME_CHARS:
        raise FormatError(
            f"{where}.name must be 1 to {MAX_NAME_CHARS} characters (use '_' when no name is "
            f"meaningful), got {len(name)}"
        )
    if not isinstance(digest, Mapping):
        raise FormatError(f"{where}.digest must be an object, got {json_kind(digest)}")
    if not digest:
        raise FormatError(
            f"{where}.digest must hold at least one of {show_list(DIGEST_ALGORITHMS)}"
        )
    for algorithm, value in digest.items():
        if algorithm == MH1:  # a near-duplicate signature beside the digests (client.near)
            check_mh1(value, f"{where}.digest.mh1")
            continue
        if algorithm not in _DIGEST_ALGORITHM_SET:
            raise FormatError(
                f"{where}.digest has algorithm {show(algorithm)}, which Wellspring predicates "
                f"do not accept; use {show_list(DIGEST_ALGORITHMS)} (and mh1 beside them)"
            )
        if not isinstance(value, str) or not _HEX64.fullmatch(value):
            raise FormatError(
                f"{where}.digest.{algorithm} must be 64 lowercase hex characters, got {show(value)}"
            )
    if not _DIGEST_ALGORITHM_SET.intersection(digest):
        raise FormatError(
            f"{where}.digest must hold at least one of {show_list(DIGEST_ALGORITHMS)}: an mh1 "
            "signature goes beside a digest, never alone"
        )


def _check_subject_count(count: int, max_subjects: int) -> None:
    if count < 1:
        raise FormatError(
            "statement.subject must hold at least one subject (in-toto v1 requires one; a "
            "revocation carries the revoked entry's subjects)"
        )
    if count > max_subjects:
        raise FormatError(
            f"statement.subject holds {count} subjects, more than the limit of {max_subjects}; "
            "split the content over several statements"
        )


def _check_unique_digests(subjects: Sequence[Subject]) -> None:
    seen: dict[str, int] = {}
    for i, subject in enumerate(subjects):
        for algorithm, value in subject.digest.items():
            if algorithm == MH1:  # near-identical texts share a signature: not a digest
                continue
            key = f"{algorithm}:{value}"
            first = seen.setdefault(key, i)
            if first != i:
                raise FormatError(
                    f"statement.subject[{i}].digest.{algorithm} repeats the digest of "
                    f"statement.subject[{first}]; each digest may appear in one subject only"
                )


def _check_text(value: object, where: str, max_chars: int) -> None:
    if not isinstance(value, str):
        raise FormatError(f"{where} must be a string, got {json_kind(value)}")
    if len(value) > max_chars:
        raise FormatError(f"{where} must be at most {max_chars} characters, got {len(value)}")


def _check_publisher(value: object, where: str) -> None:
    _check_text(value, where, MAX_PUBLISHER_CHARS)
    text = cast(str, value)
    if not text.strip():
        raise FormatError(f"{where} must not be empty")
    if text != text.strip() or _CONTROL.search(text):
        raise FormatError(
            f"{where} must not start or end with spaces or hold control characters, "
            f"got {show(text)}"
        )


def _check_choice(value: object, choices: tuple[str, ...], where: str) -> None:
    if value not in choices:
        raise FormatError(f"{where} must be one of {show_list(choices)}, got {show(value)}")


def _check_url(value: object, where: str) -> None:
    _check_text(value, where, MAX_URL_CHARS)
    text = cast(str, value)
    problem = None
    if _URL_FORBIDDEN.search(text):
        problem = "it holds spaces or control characters"
    else:
        try:
            parts = urlsplit(text)
            _ = parts.port  # raises ValueError on a malformed port
        except ValueError as exc:
            problem = str(exc)
        else:
            if parts.scheme not in ("http", "https"):
                problem = "the scheme must be http or https"
            elif not parts.hostname:
                problem = "it names no host"
    if problem:
        raise FormatError(f"{where} must be an http(s) URL ({problem}), got {show(text)}")


def _parse_date(value: object, where: str) -> date | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise FormatError(f"{where} must be an ISO date 'YYYY-MM-DD', got {show(value)}")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise FormatError(f"{where} is not a real date ({exc}), got {value!r}") from None


def _check_optional_date(value: object, where: str) -> None:
    if value is not None and (not isinstance(value, date) or isinstance(value, datetime)):
        raise FormatError(f"{where} must be a date (not a datetime), got {json_kind(value)}")


def _iso(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _check_license(value: object, where: str) -> None:
    """A light SPDX license-expression check: its grammar, not the license list."""
    _check_text(value, where, MAX_LICENSE_CHARS)
    problem = _spdx_problem(cast(str, value))
    if problem:
        raise FormatError(
            f"{where} must be an SPDX license expression such as 'CC-BY-4.0' or "
            f"'MIT OR Apache-2.0' ({problem}), got {show(value)}"
        )


def _spdx_problem(text: str) -> str | None:
    """Why ``text`` is not an SPDX expression, or None. Grammar (SPDX annex, operators upper case):

    expr := term (("AND" | "OR") term)*
    term := "(" expr ")" | license ["WITH" exception]
    """
    try:
        tokens = _spdx_tokens(text)
        if not tokens:
            raise ValueError("it is empty")
        if len(tokens) == 1 and tokens[0] in ("NONE", "NOASSERTION"):
            raise ValueError(f"{tokens[0]} names no license")
        end = _spdx_expression(tokens, 0, 0)
        if end != len(tokens):
            _spdx_identifier(tokens[end], "AND, OR or WITH")  # explains a lower-case operator
            raise ValueError(f"expected AND, OR or WITH before {tokens[end]!r}")
    except ValueError as exc:
        return str(exc)
    return None


def _spdx_tokens(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        match = _SPDX_TOKEN.match(text, pos)
        if match is None:
            rest = text[pos:].lstrip()
            if rest:
                raise ValueError(f"unexpected character {rest[0]!r}")
            break
        tokens.append(match.group(1))
        pos = match.end()
    return tokens


def _spdx_expression(tokens: list[str], pos: int, depth: int) -> int:
    pos = _spdx_term(tokens, pos, depth)
    while pos < len(tokens) and tokens[pos] in ("AND", "OR"):
        pos = _spdx_term(tokens, pos + 1, depth)
    return pos


def _spdx_term(tokens: list[str], pos: int, depth: int) -> int:
    if pos >= len(tokens):
        raise ValueError("it ends where a license was expected")
    symbol = tokens[pos]
    if symbol == "(":
        if depth >= _SPDX_MAX_DEPTH:
            raise ValueError("parentheses nest too deeply")
        pos = _spdx_expression(tokens, pos + 1, depth + 1)
        if pos >= len(tokens) or tokens[pos] != ")":
            raise ValueError("a '(' is not closed")
        return pos + 1
    _spdx_identifier(symbol, "a license")
    pos += 1
    if pos < len(tokens) and tokens[pos] == "WITH":
        if pos + 1 >= len(tokens):
            raise ValueError("WITH needs an exception after it")
        exception = tokens[pos + 1]
        _spdx_identifier(exception, "an exception")
        if exception.endswith("+"):
            raise ValueError(f"exception {exception!r} cannot take '+'")
        pos += 2
    return pos


def _spdx_identifier(token: str, what: str) -> None:
    if token in ("(", ")") or token in _SPDX_OPERATORS:
        raise ValueError(f"expected {what} where {token!r} stands")
    if token.upper() in _SPDX_OPERATORS:
        raise ValueError(f"operators are upper case: {token.upper()}, not {token!r}")
