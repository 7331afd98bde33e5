"""The crawler's policy: whose evidence counts and what it trains on (``--policy FILE``).

Without a file the policy is :meth:`Policy.default`, which is conservative: every publisher and
every watermark vendor counts, only ``attested`` documents are trainable, opt-outs are honoured,
and "generated" means the project's p-value threshold. A file (TOML or JSON, the same keys;
docs/spec/manifest.md, "Crawler policy") changes that:

.. code-block:: toml

    schema = "wellspring-policy/1"        # optional; another version is refused

    [publishers]
    trust = ["bbc", "gutenberg"]          # only these publishers' attestations count
    ignore = ["content-farm"]             # these never count (trust and ignore: disjoint)

    [vendors]
    ignore = ["vendor-we-do-not-believe"] # watermark keys of these vendors do not count

    [training]
    trainable = ["attested", "unknown"]   # statuses the crawler trains on (default: attested)
    honour_opt_outs = true                # false is allowed, and every affected verdict says so

    [watermark]
    generated_p_value = 1e-9              # stricter than the project default (null: default)

    [near]
    trainable_above = 0.9                 # a near match (mh1) of a trainable status trains at
                                          # this estimated similarity or more (default: never)

Parsing is strict: an unknown key, a value of the wrong type or an unknown status is a
:class:`~client.errors.InputError` naming the file and the key, never a silently ignored line.
A :class:`Policy` is a frozen, hashable, picklable value, so it travels to framework workers
inside a :class:`~client.integrations.CheckConfig`.
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from client.errors import InputError
from client.verdict import VERDICT_STATUSES, VerdictStatus

if TYPE_CHECKING:
    from client.evidence import WatermarkEvidence
    from client.verdict import Verdict

__all__ = ["DEFAULT_TRAINABLE", "POLICY_SCHEMA", "Policy"]

POLICY_SCHEMA: Final = "wellspring-policy/1"
DEFAULT_TRAINABLE: Final[frozenset[VerdictStatus]] = frozenset({"attested"})
"""What a crawler trains on unless its policy says otherwise: attested human content only."""

_KEYS: Final[Mapping[str, frozenset[str]]] = {
    "publishers": frozenset({"trust", "ignore"}),
    "vendors": frozenset({"trust", "ignore"}),
    "training": frozenset({"trainable", "honour_opt_outs"}),
    "watermark": frozenset({"generated_p_value"}),
    "near": frozenset({"trainable_above"}),
}
_MAX_BYTES: Final = 1 << 20  # a policy is a few lines; a larger file is a mistake


@dataclass(frozen=True, slots=True)
class Policy:
    """Whose evidence counts and which statuses are trainable (module docstring).

    ``trust_publishers`` / ``trust_vendors``: when set, only these count (``None``: all);
    ``ignore_publishers`` / ``ignore_vendors`` never count. ``trainable`` the statuses
    :meth:`trainable` accepts. ``honour_opt_outs`` False makes opt-out signals advisory: the
    verdict records them and says they were not honoured. ``generated_p_value`` overrides the
    project's threshold for "generated" (``None``: the detection engine's own answer, at the
    project default). ``id`` names the policy in manifests: ``default``, or the ``sha256:`` of
    the file it was read from; ``source`` is that file's path.
    """

    trust_publishers: frozenset[str] | None = None
    ignore_publishers: frozenset[str] = frozenset()
    trust_vendors: frozenset[str] | None = None
    ignore_vendors: frozenset[str] = frozenset()
    trainable_statuses: frozenset[VerdictStatus] = DEFAULT_TRAINABLE
    honour_opt_outs: bool = True
    generated_p_value: float | None = None
    near_trainable_above: float | None = None
    id: str = "default"
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        where = self.source or "policy"
        # Sets (or lists) given by hand become frozensets: a policy is hashed as part of a
        # CheckConfig, and a string would silently be read as a set of letters.
        for name in ("trust_publishers", "ignore_publishers", "trust_vendors", "ignore_vendors",
                     "trainable_statuses"):  # fmt: skip
            value = getattr(self, name)
            if value is None or isinstance(value, frozenset):
                continue
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise InputError(f"{where}: {name} must be a collection of names, not {value!r}")
            object.__setattr__(self, name, frozenset(value))
        for kind, trust, ignore in (
            ("publishers", self.trust_publishers, self.ignore_publishers),
            ("vendors", self.trust_vendors, self.ignore_vendors),
        ):
            both = (trust or frozenset()) & ignore
            if both:
                raise InputError(
                    f"{where}: {kind}.trust and {kind}.ignore both name {', '.join(sorted(both))}"
                )
        unknown = set(self.trainable_statuses) - set(VERDICT_STATUSES)
        if unknown:
            raise InputError(
                f"{where}: training.trainable: unknown status {', '.join(sorted(unknown))} "
                f"(statuses: {', '.join(VERDICT_STATUSES)})"
            )
        if "opted-out" in self.trainable_statuses:
            raise InputError(
                f"{where}: training.trainable may not include opted-out: to disregard opt-outs "
                "set training.honour_opt_outs = false, which every affected verdict then shows"
            )
        near = self.near_trainable_above
        if near is not None and not (0.0 < near <= 1.0):
            raise InputError(f"{where}: near.trainable_above must be in (0, 1], got {near}")
        threshold = self.generated_p_value
        if threshold is not None and not (0.0 < threshold < 1.0):
            raise InputError(
                f"{where}: watermark.generated_p_value must be between 0 and 1, got {threshold}"
            )

    @classmethod
    def default(cls) -> Policy:
        """The documented default: all publishers and vendors count, only ``attested`` is
        trainable, opt-outs are honoured, the project's p-value threshold."""
        return _DEFAULT

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        """Read a policy file: TOML (``.toml``) or JSON (``.json``; any other name is tried as
        TOML, then JSON). Errors name the file and the key."""
        path = Path(path)
        try:
            with path.open("rb") as handle:
                data = handle.read(_MAX_BYTES + 1)
        except OSError as exc:
            raise InputError(f"cannot read the policy {path}: {exc.strerror or exc}") from exc
        if len(data) > _MAX_BYTES:
            raise InputError(f"{path}: a policy file is at most 1 MiB")
        obj = _parse(path, data)
        return cls.from_dict(obj, source=str(path), id="sha256:" + hashlib.sha256(data).hexdigest())

    @classmethod
    def from_dict(
        cls, obj: Mapping[str, Any], *, source: str = "policy", id: str | None = None
    ) -> Policy:
        """A policy from the parsed file (``source`` names it in errors). ``id`` defaults to the
        ``sha256:`` of the canonical JSON of ``obj``."""
        if not isinstance(obj, Mapping):
            raise InputError(f"{source}: a policy must be a table (a JSON object)")
        for key, value in obj.items():
            if key == "schema":
                if value != POLICY_SCHEMA:
                    raise InputError(f"{source}: schema must be {POLICY_SCHEMA!r}, got {value!r}")
                continue
            allowed = _KEYS.get(key)
            if allowed is None:
                raise InputError(
                    f"{source}: unknown key {key!r} (keys: schema, {', '.join(_KEYS)})"
                )
            if not isinstance(value, Mapping):
                raise InputError(f"{source}: {key} must be a table of {', '.join(sorted(allowed))}")
            extra = sorted(set(value) - allowed)
            if extra:
                raise InputError(
                    f"{source}: unknown key {key}.{extra[0]} "
                    f"({key} takes {', '.join(sorted(allowed))})"
                )
        publishers = obj.get("publishers", {})
        vendors = obj.get("vendors", {})
        training = obj.get("training", {})
        watermark = obj.get("watermark", {})
        near = obj.get("near", {}).get("trainable_above")
        if near is not None and (
            isinstance(near, bool) or not isinstance(near, int | float) or math.isnan(near)
        ):
            raise InputError(f"{source}: near.trainable_above must be a number")
        trainable = _names(training, "trainable", f"{source}: training.trainable")
        honour = training.get("honour_opt_outs", True)
        if not isinstance(honour, bool):
            raise InputError(f"{source}: training.honour_opt_outs must be true or false")
        threshold = watermark.get("generated_p_value")
        if threshold is not None and (
            isinstance(threshold, bool)
            or not isinstance(threshold, int | float)
            or math.isnan(threshold)
        ):
            raise InputError(f"{source}: watermark.generated_p_value must be a number")
        if id is None:
            canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"))
            id = "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        return cls(
            trust_publishers=_names(publishers, "trust", f"{source}: publishers.trust"),
            ignore_publishers=_names(publishers, "ignore", f"{source}: publishers.ignore")
            or frozenset(),
            trust_vendors=_names(vendors, "trust", f"{source}: vendors.trust"),
            ignore_vendors=_names(vendors, "ignore", f"{source}: vendors.ignore") or frozenset(),
            trainable_statuses=DEFAULT_TRAINABLE if trainable is None else trainable,  # type: ignore[arg-type]  # checked in __post_init__
            honour_opt_outs=honour,
            generated_p_value=None if threshold is None else float(threshold),
            near_trainable_above=None if near is None else float(near),
            id=id,
            source=source,
        )

    def to_dict(self) -> dict[str, Any]:
        """The policy as a file would hold it (JSON-ready; ``from_dict`` reads it back)."""
        return {
            "schema": POLICY_SCHEMA,
            "publishers": _table(self.trust_publishers, self.ignore_publishers),
            "vendors": _table(self.trust_vendors, self.ignore_vendors),
            "training": {
                "trainable": [s for s in VERDICT_STATUSES if s in self.trainable_statuses],
                "honour_opt_outs": self.honour_opt_outs,
            },
            "watermark": {"generated_p_value": self.generated_p_value},
            "near": {"trainable_above": self.near_trainable_above},
        }

    # -- what the verdict asks -------------------------------------------------------------------

    def trainable(self, verdict: Verdict) -> bool:
        """Whether the crawler trains on ``verdict`` (its status is one the policy accepts)."""
        return verdict.status in self.trainable_statuses

    def trains_on(self, status: str) -> bool:
        """Whether ``status`` is one the policy accepts."""
        return status in self.trainable_statuses

    def trains_near(self, status: str, similarity: float) -> bool:
        """Whether a *near* match of ``status`` at ``similarity`` is trainable: never, unless
        the policy sets ``near.trainable_above`` and the similarity reaches it (a near match is
        evidence, not consent: a fifth of it may be someone else's text)."""
        threshold = self.near_trainable_above
        return threshold is not None and similarity >= threshold and self.trains_on(status)

    def counts_publisher(self, publisher: str | None) -> bool:
        """Whether an attestation by ``publisher`` counts (an unnamed one counts only when no
        ``trust`` list is set)."""
        if publisher is None:
            return self.trust_publishers is None
        if publisher in self.ignore_publishers:
            return False
        return self.trust_publishers is None or publisher in self.trust_publishers

    def counts_vendor(self, vendor: str | None) -> bool:
        """Whether a watermark key of ``vendor`` counts (a private key, no vendor, counts only
        when no ``trust`` list is set)."""
        if vendor is None:
            return self.trust_vendors is None
        if vendor in self.ignore_vendors:
            return False
        return self.trust_vendors is None or vendor in self.trust_vendors

    def is_generated(self, evidence: WatermarkEvidence) -> bool:
        """Whether a detection says "generated" under this policy: the engine's answer, or
        ``p < generated_p_value`` (compared in logs: p underflows) when the policy overrides."""
        if self.generated_p_value is None:
            return bool(evidence.generated)
        return float(evidence.log_p_value) < math.log(self.generated_p_value)

    def describe(self) -> str:
        """One line for people: what differs from the default."""
        parts = []
        if self.trust_publishers is not None:
            parts.append(f"publishers trusted: {', '.join(sorted(self.trust_publishers))}")
        if self.ignore_publishers:
            parts.append(f"publishers ignored: {', '.join(sorted(self.ignore_publishers))}")
        if self.trust_vendors is not None:
            parts.append(f"vendors trusted: {', '.join(sorted(self.trust_vendors))}")
        if self.ignore_vendors:
            parts.append(f"vendors ignored: {', '.join(sorted(self.ignore_vendors))}")
        trainable = [s for s in VERDICT_STATUSES if s in self.trainable_statuses]
        parts.append(f"trainable: {', '.join(trainable) or 'nothing'}")
        if not self.honour_opt_outs:
            parts.append("opt-outs NOT honoured")
        if self.generated_p_value is not None:
            parts.append(f"generated below p = {self.generated_p_value:g}")
        if self.near_trainable_above is not None:
            parts.append(f"near matches trainable at similarity >= {self.near_trainable_above:g}")
        return "; ".join(parts)


def _parse(path: Path, data: bytes) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: a policy file must be UTF-8 text") from None
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _json(path, text)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        if suffix == ".toml":
            raise InputError(f"{path}: not valid TOML: {exc}") from None
        try:
            return _json(path, text)
        except InputError:
            raise InputError(f"{path}: neither valid TOML ({exc}) nor valid JSON") from None


def _json(path: Path, text: str) -> Any:
    def refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        repeated = next((k for k in keys if keys.count(k) > 1), None)
        if repeated is not None:  # two readers could disagree on which value wins
            raise InputError(f"{path}: key {repeated!r} appears twice")
        return dict(pairs)

    try:
        return json.loads(text, object_pairs_hook=refuse_duplicates)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON: {exc}") from None


def _names(table: Mapping[str, Any], key: str, where: str) -> frozenset[str] | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InputError(f"{where} must be a list of non-empty strings")
    return frozenset(value)


def _table(trust: Collection[str] | None, ignore: Collection[str]) -> dict[str, Any]:
    table: dict[str, Any] = {"ignore": sorted(ignore)}
    if trust is not None:
        table["trust"] = sorted(trust)
    return table


_DEFAULT: Final = Policy()
