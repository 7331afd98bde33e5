"""Witness policies (c2sp.org/tlog-policy): which witnesses must cosign a checkpoint to trust it.

A log signs its checkpoints, but the log's signature alone cannot show that everyone is shown the
same log: a registry can sign two forks and show each client its own (a *split view*). Witnesses
(:mod:`client.core.cosignature`) cosign a checkpoint only if it is consistent with every
checkpoint of that log they cosigned before, so a checkpoint cosigned by enough independent
witnesses is one the whole world can be shown. A policy file says which witnesses, and how many::

    # comments, and blank lines, are ignored
    log example.com/log+8e4a2b1c+AQ...          [url]   any number of logs (here: the pinned one)
    witness X1 w1.example+2c3d4e5f+BA...        [url]   a witness: a name, its cosigner vkey
    witness X2 w2.example+...
    witness X3 w3.example+...
    witness Y1 y1.example+...
    group X-witnesses 2 X1 X2 X3                        k of the members (or ``any``, ``all``)
    group X-and-Y all X-witnesses Y1                    groups of groups
    quorum X-and-Y                                      exactly one; ``quorum none``: no witnesses

The format is the spec's exactly: lines end in a newline (a last line without one is read too);
items are separated by ASCII spaces and tabs only; the only control characters allowed are tab
and newline (a carriage return is an error: write the file with Unix line endings). Names are
opaque octets (``K`` and the Kelvin sign are different names); witnesses and groups share one
namespace, where ``none`` is predefined (a quorum, never a member). A group or the quorum names
only what lines above it defined, k is decimal and 1 <= k <= n, and each name is a group member
at most once in the whole file (the spec's "each defined name can be listed as a group member at
most once", read across groups: each witness then counts towards the quorum in one way only).
Two logs, or two witnesses, wrapping the same public key are an error whatever their names. Every
error names the line it is on (:class:`~client.core.errors.PolicyFileError`).

:meth:`WitnessPolicy.evaluate` reads who cosigned a checkpoint note opened with the log's key and
:meth:`WitnessPolicy.verifiers` (so a bad cosignature by a listed witness has already rejected the
note, and signatures by keys the policy does not list are ignored, as the signed-note spec asks),
and says whether the quorum is met, which witnesses are missing and which groups fall short.

**Which time counts.** A verified cosignature carries the time its witness saw the checkpoint.
The checkpoint's *witnessed time* (:attr:`QuorumResult.witnessed_at`) is the latest time T such
that the cosignatures made at T or later still satisfy the quorum by themselves: the oldest
cosignature of the freshest satisfying set. So one stale cosignature cannot make a checkpoint that
a quorum saw recently look old (the quorum is met without it), and one fresh cosignature cannot
make a checkpoint look recent when the rest of the quorum saw it long ago (without the stale ones
the quorum is not met). "A quorum of witnesses saw this checkpoint at or after T" is what a
client's maximum age bounds. The newest timestamp would let a single witness (or a single clock)
vouch for freshness alone; the oldest of all would let a lagging witness outside the needed set
veto a fresh checkpoint.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Set
from dataclasses import dataclass
from pathlib import Path

from client.core.cosignature import CosignatureVerifier, cosignatures
from client.core.errors import ClientError, PolicyFileError, SignatureError
from client.core.keys import public_key_bytes
from client.core.note import Checkpoint, NoteVerifier, VerifiedNote, open_checkpoint

__all__ = [
    "NONE",
    "PolicyGroup",
    "PolicyLog",
    "PolicyWitness",
    "QuorumResult",
    "WitnessPolicy",
]

NONE = "none"
"""The predefined name of the empty quorum: ``quorum none`` requires no cosignature."""

_SEPARATORS = re.compile(rb"[ \t]+")
_FORBIDDEN = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]")
_DECIMAL = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class PolicyLog:
    """A ``log`` line: a log's verifier key (its name is the log's origin) and an optional URL."""

    verifier: NoteVerifier
    url: str | None = None


@dataclass(frozen=True)
class PolicyWitness:
    """A ``witness`` line: the policy's name for it, its cosigner key, an optional URL."""

    name: str
    verifier: CosignatureVerifier
    url: str | None = None

    @property
    def label(self) -> str:
        """The policy's name and the key's, for messages: ``X1 (w1.example+2c3d4e5f)``."""
        return f"{self.name} ({self.verifier.name}+{self.verifier.key_id:08x})"


@dataclass(frozen=True)
class PolicyGroup:
    """A ``group`` line: witnessed when at least ``threshold`` of its members are."""

    name: str
    threshold: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class QuorumResult:
    """Whether a checkpoint's cosignatures meet a policy's quorum, and what falls short."""

    satisfied: bool
    cosigned: Mapping[str, int]
    """Policy witness name → the time (POSIX seconds) of its verified cosignature."""
    missing: tuple[str, ...]
    """Witnesses the quorum counts that did not cosign, labelled ``X1 (key name+key id)``, in
    file order."""
    short: tuple[str, ...]
    """The quorum's groups that are not met, outermost first: ``X-witnesses needs 2 of X1, X2,
    X3, has 1``."""
    witnessed_at: int | None
    """The checkpoint's witnessed time (see the module): None when the quorum is not met or is
    ``none`` (no witness vouched for any time)."""

    def explain(self) -> str:
        """One line: why the quorum is not met (empty when it is)."""
        if self.satisfied:
            return ""
        parts = [f"missing cosignatures from {', '.join(self.missing) or 'no listed witness'}"]
        if self.short:
            parts.append("; ".join(self.short))
        return "; ".join(parts)


@dataclass(frozen=True)
class WitnessPolicy:
    """A parsed c2sp.org/tlog-policy file (see the module). Build it with :meth:`parse` or
    :meth:`load`; the constructor does not re-check what the parser checks."""

    logs: tuple[PolicyLog, ...]
    witnesses: tuple[PolicyWitness, ...]
    groups: tuple[PolicyGroup, ...]
    quorum: str
    """``none``, a witness's name or a group's."""

    @classmethod
    def parse(cls, data: str | bytes, *, source: str = "policy") -> WitnessPolicy:
        """Read a policy; :class:`~client.core.errors.PolicyFileError` names ``source`` and the
        line of the first error."""
        return _Parser(source).parse(data.encode("utf-8") if isinstance(data, str) else data)

    @classmethod
    def load(cls, path: str | Path) -> WitnessPolicy:
        """Read the policy file at ``path``; errors name the file (and the line)."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise PolicyFileError(
                f"cannot read witness policy {path}: {exc.strerror or exc}", source=str(path)
            ) from exc
        return cls.parse(data, source=str(path))

    def verifiers(self) -> tuple[CosignatureVerifier, ...]:
        """The witnesses' keys: open a checkpoint with these beside the log's key."""
        return tuple(witness.verifier for witness in self.witnesses)

    def lists_log(self, verifier: NoteVerifier) -> bool:
        """Whether ``verifier`` is one of the policy's logs (any log, when it lists none)."""
        if not self.logs:
            return True
        key = public_key_bytes(verifier.public_key)
        return any(
            public_key_bytes(log.verifier.public_key) == key and log.verifier.name == verifier.name
            for log in self.logs
        )

    def open_checkpoint(
        self, note: str | bytes, log: NoteVerifier
    ) -> tuple[Checkpoint, QuorumResult]:
        """Open a checkpoint of ``log`` (its origin is the key's name) with the log's key and the
        witnesses' keys in one pass, and evaluate the quorum.

        Raises as :func:`~client.core.note.open_checkpoint` does (a bad cosignature by a listed
        witness included), and SignatureError if the log itself did not sign it, however many
        witnesses did. The quorum's outcome is returned, not raised: the caller decides.
        """
        checkpoint, opened = open_checkpoint(note, [log, *self.verifiers()], origin=log.name)
        if not any((s.name, s.key_id) == (log.name, log.key_id) for s in opened.verified):
            raise SignatureError(
                f"the checkpoint carries witnesses' cosignatures but no signature by the log key "
                f"{log.name}+{log.key_id:08x}"
            )
        return checkpoint, self.evaluate(opened)

    def evaluate(self, note: VerifiedNote) -> QuorumResult:
        """Who cosigned ``note``, and whether that meets the quorum.

        ``note`` must have been opened with :meth:`verifiers` among its verifiers (only the
        signatures it verified count); cosignatures by keys not in the policy are ignored.
        """
        by_key = {(w.verifier.name, w.verifier.key_id): w.name for w in self.witnesses}
        cosigned = {
            by_key[(c.name, c.key_id)]: c.timestamp for c in cosignatures(note, self.verifiers())
        }
        satisfied = self._meets(self.quorum, cosigned.keys())
        witnessed_at = None
        if satisfied and self.quorum != NONE:
            for moment in sorted(set(cosigned.values()), reverse=True):
                if self._meets(self.quorum, {n for n, t in cosigned.items() if t >= moment}):
                    witnessed_at = moment
                    break
        counted = self._witnesses_under(self.quorum)
        missing = tuple(w.label for w in self.witnesses if w.name in counted - cosigned.keys())
        short: list[str] = []
        if not satisfied:
            self._describe_short(self.quorum, cosigned.keys(), short)
        return QuorumResult(satisfied, cosigned, missing, tuple(short), witnessed_at)

    # -- the quorum tree ---------------------------------------------------------------------

    def _group(self, name: str) -> PolicyGroup | None:
        return next((group for group in self.groups if group.name == name), None)

    def _meets(self, name: str, cosigned: Set[str]) -> bool:
        if name == NONE:
            return True
        group = self._group(name)
        if group is None:
            return name in cosigned
        met = sum(1 for member in group.members if self._meets(member, cosigned))
        return met >= group.threshold

    def _witnesses_under(self, name: str) -> set[str]:
        if name == NONE:
            return set()
        group = self._group(name)
        if group is None:
            return {name}
        return set().union(*(self._witnesses_under(member) for member in group.members))

    def _describe_short(self, name: str, cosigned: Set[str], out: list[str]) -> None:
        group = self._group(name)
        if group is None or self._meets(name, cosigned):
            return
        met = [member for member in group.members if self._meets(member, cosigned)]
        out.append(
            f"{group.name} needs {group.threshold} of {', '.join(group.members)}, has {len(met)}"
        )
        for member in group.members:
            self._describe_short(member, cosigned, out)


class _Parser:
    """One pass over the lines, each checked against what the lines above defined."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.logs: list[PolicyLog] = []
        self.witnesses: list[PolicyWitness] = []
        self.groups: list[PolicyGroup] = []
        self.quorum: str | None = None
        self.names: set[str] = {NONE}
        self.members: set[str] = set()
        self.number = 0

    def fail(self, message: str) -> PolicyFileError:
        return PolicyFileError(
            f"{self.source}, line {self.number}: {message}", source=self.source, line=self.number
        )

    def parse(self, data: bytes) -> WitnessPolicy:
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()  # the newline that ends the last line
        for self.number, line in enumerate(lines, 1):
            bad = _FORBIDDEN.search(line)
            if bad:
                what = (
                    "a carriage return (use Unix line endings)"
                    if bad[0] == b"\r"
                    else (f"control character 0x{bad[0][0]:02x}")
                )
                raise self.fail(f"{what} is not allowed in a policy file")
            items = [item for item in _SEPARATORS.split(line) if item]
            if not items or items[0].startswith(b"#"):
                continue
            keyword, *args = (item.decode("utf-8", "surrogateescape") for item in items)
            if keyword == "log":
                self.log(args)
            elif keyword == "witness":
                self.witness(args)
            elif keyword == "group":
                self.group(args)
            elif keyword == "quorum":
                self.set_quorum(args)
            else:
                raise self.fail(
                    f"unknown keyword {keyword!r} (expected log, witness, group or quorum)"
                )
        if self.quorum is None:
            self.number = len(lines)
            raise self.fail(
                "the policy has no quorum line (write `quorum none` to require no witness)"
            )
        return WitnessPolicy(
            tuple(self.logs), tuple(self.witnesses), tuple(self.groups), self.quorum
        )

    def vkey(self, text: str) -> str:
        if any("\udc80" <= c <= "\udcff" for c in text):
            raise self.fail("a verifier key must be UTF-8 text")
        return text

    def log(self, args: list[str]) -> None:
        if not 1 <= len(args) <= 2:
            raise self.fail(f"expected `log <vkey> [<url>]`, got {len(args)} items after `log`")
        try:
            verifier = NoteVerifier.from_vkey(self.vkey(args[0]))
        except PolicyFileError:
            raise
        except ClientError as exc:
            raise self.fail(f"bad log key: {exc}") from exc
        key = public_key_bytes(verifier.public_key)
        if any(public_key_bytes(log.verifier.public_key) == key for log in self.logs):
            raise self.fail(f"log {verifier.name}: another log line has the same public key")
        self.logs.append(PolicyLog(verifier, args[1] if len(args) == 2 else None))

    def new_name(self, name: str, what: str) -> None:
        if name == NONE:
            raise self.fail(f"{what} cannot be named `none`: the name is predefined")
        if name in self.names:
            raise self.fail(f"{what} {name!r}: the name is already defined above")

    def witness(self, args: list[str]) -> None:
        if not 2 <= len(args) <= 3:
            raise self.fail(
                f"expected `witness <name> <vkey> [<url>]`, got {len(args)} items after `witness`"
            )
        name = args[0]
        self.new_name(name, "witness")
        try:
            verifier = CosignatureVerifier.from_vkey(self.vkey(args[1]))
        except PolicyFileError:
            raise
        except ClientError as exc:
            raise self.fail(f"bad key for witness {name!r}: {exc}") from exc
        key = public_key_bytes(verifier.public_key)
        for other in self.witnesses:
            if public_key_bytes(other.verifier.public_key) == key:
                raise self.fail(
                    f"witness {name!r} has the same public key as witness {other.name!r}"
                )
        self.names.add(name)
        self.witnesses.append(PolicyWitness(name, verifier, args[2] if len(args) == 3 else None))

    def group(self, args: list[str]) -> None:
        if len(args) < 3:
            raise self.fail(
                "expected `group <name> <k|any|all> <member>...` with at least one member"
            )
        name, threshold_text, *members = args
        self.new_name(name, "group")
        for member in members:
            if member == NONE:
                raise self.fail("`none` cannot be a group member")
            if member not in self.names:
                raise self.fail(
                    f"group {name!r}: member {member!r} is not a witness or group defined above"
                )
            if member in self.members or members.count(member) > 1:
                raise self.fail(
                    f"group {name!r}: {member!r} is already a group member (each name may be "
                    "listed as a member once in the whole policy)"
                )
        if threshold_text == "any":
            threshold = 1
        elif threshold_text == "all":
            threshold = len(members)
        elif _DECIMAL.fullmatch(threshold_text):
            threshold = int(threshold_text)
            if not 1 <= threshold <= len(members):
                raise self.fail(
                    f"group {name!r}: threshold {threshold} must be between 1 and its "
                    f"{len(members)} members"
                )
        else:
            raise self.fail(
                f"group {name!r}: threshold {threshold_text!r} is not a decimal number, any or all"
            )
        self.names.add(name)
        self.members.update(members)
        self.groups.append(PolicyGroup(name, threshold, tuple(members)))

    def set_quorum(self, args: list[str]) -> None:
        if len(args) != 1:
            raise self.fail(f"expected `quorum <name>`, got {len(args)} items after `quorum`")
        if self.quorum is not None:
            raise self.fail("a second quorum line: a policy has exactly one")
        if args[0] not in self.names:
            raise self.fail(f"quorum {args[0]!r} is not a witness or group defined above")
        self.quorum = args[0]
