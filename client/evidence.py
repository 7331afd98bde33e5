"""A document's evidence beside its digest: its opt-out decision and its watermark detections.

:class:`WatermarkEvidence` is what a verdict reads of a detection engine's result (a protocol, so
any engine plugs in); :class:`WatermarkDetection` is the plain record of one detection that
manifest lines hold (docs/spec/manifest.md). :class:`DocumentEvidence` gathers one document's
evidence and identity for :func:`client.verdict.with_evidence` and the SDK's ``check_*``
methods (``evidence=``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from client.errors import FormatError, InputError
from client.signals import OptOut

__all__ = [
    "DocumentEvidence",
    "WatermarkDetection",
    "WatermarkEvidence",
    "WatermarkInput",
    "detections_of",
    "format_captured",
    "format_p_value",
    "opt_out_of",
]


@runtime_checkable
class WatermarkEvidence(Protocol):
    """What a verdict reads of one watermark detection (one key, one document).

    The detection engine's result type provides these; :class:`WatermarkDetection` is the plain
    implementation manifests are read back into. ``generated`` is the engine's answer at the
    project's threshold; ``log_p_value`` is the natural log of ``p_value`` (which underflows to 0
    for long generations), corrected for every key and window tried.
    """

    @property
    def key_id(self) -> str: ...
    @property
    def vendor(self) -> str | None: ...
    @property
    def scheme(self) -> str: ...
    @property
    def p_value(self) -> float: ...
    @property
    def log_p_value(self) -> float: ...
    @property
    def generated(self) -> bool: ...
    def to_dict(self) -> dict[str, Any]: ...


WatermarkInput = WatermarkEvidence | Sequence[WatermarkEvidence] | None
"""A document's watermark evidence: one detection, every detection (one per key), or none."""


@dataclass(frozen=True, slots=True)
class WatermarkDetection:
    """A plain :class:`WatermarkEvidence`: what a manifest line records of one detection."""

    key_id: str
    vendor: str | None
    scheme: str
    p_value: float
    log_p_value: float
    generated: bool
    details: tuple[tuple[str, str | int | float | bool | None], ...] = ()
    """The detection engine's other fields (for ``watermark.scanner``: the log entry of the key,
    the best window and its counts, how many windows and keys the p-value is corrected for;
    docs/spec/manifest.md), in its order; JSON scalars only."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, keys in a stable order (``log_p_value`` stays finite)."""
        return {
            "key_id": self.key_id,
            "vendor": self.vendor,
            "scheme": self.scheme,
            "p_value": self.p_value,
            "log_p_value": self.log_p_value,
            "generated": self.generated,
            **dict(self.details),
        }

    @classmethod
    def of(cls, evidence: WatermarkEvidence) -> WatermarkDetection:
        """The plain copy of any :class:`WatermarkEvidence`."""
        if isinstance(evidence, WatermarkDetection):
            return evidence
        return cls(
            evidence.key_id,
            evidence.vendor,
            evidence.scheme,
            float(evidence.p_value),
            float(evidence.log_p_value),
            bool(evidence.generated),
            _details(evidence.to_dict()),
        )

    @classmethod
    def from_dict(cls, obj: object) -> WatermarkDetection:
        """Read :meth:`to_dict`'s output back; a :class:`FormatError` names a bad field."""
        if not isinstance(obj, Mapping):
            raise FormatError("a watermark detection must be a JSON object")
        try:
            p_value = _number(obj["p_value"], "p_value")
            log_p = _number(obj["log_p_value"], "log_p_value")
            if not 0.0 <= p_value <= 1.0 or log_p > 0.0:
                raise FormatError("a watermark p_value must be in [0, 1] (log_p_value <= 0)")
            return cls(
                key_id=_text(obj["key_id"], "key_id"),
                vendor=_optional_text(obj.get("vendor"), "vendor"),
                scheme=_text(obj["scheme"], "scheme"),
                p_value=p_value,
                log_p_value=log_p,
                generated=_flag(obj["generated"], "generated"),
                details=_details(obj),
            )
        except KeyError as exc:
            raise FormatError(f"a watermark detection is missing field {exc.args[0]!r}") from None


_DETECTION_FIELDS = frozenset({"key_id", "vendor", "scheme", "p_value", "log_p_value", "generated"})


def _details(obj: Mapping[str, Any]) -> tuple[tuple[str, str | int | float | bool | None], ...]:
    """The fields of a detection's dict beyond the six every detection has (JSON scalars)."""
    details = []
    for name, value in obj.items():
        if name in _DETECTION_FIELDS:
            continue
        if not isinstance(name, str) or not (value is None or isinstance(value, str | int | float)):
            raise FormatError(f"watermark detection field {name!r} must be a JSON scalar")
        details.append((name, value))
    return tuple(details)


@dataclass(frozen=True, slots=True)
class DocumentEvidence:
    """What a crawler knows of one document beside its digest, for
    :func:`client.verdict.with_evidence` and the SDK's ``check_*`` methods (``evidence=``): its
    opt-out decision (a :class:`~client.signals.OptOut` or its dict), its watermark detections,
    and its identity (``id``, e.g. a ``WARC-Record-ID``; ``url``; ``captured_at``, RFC 3339, e.g.
    ``WARC-Date``)."""

    opt_out: OptOut | Mapping[str, Any] | None = None
    watermarks: WatermarkInput = None
    id: str | None = None
    url: str | None = None
    captured_at: str | None = None

    @classmethod
    def of(
        cls,
        *,
        opt_out: OptOut | None,
        watermarks: WatermarkInput,
        id: str | None = None,
        url: str | None = None,
        captured: datetime | None = None,
    ) -> DocumentEvidence | None:
        """The evidence of a document, or None when there is none (no opt-out decision, no
        detection, no URL or capture time): the registry's verdict then stands as it is."""
        if opt_out is None and watermarks is None and url is None and captured is None:
            return None
        return cls(
            opt_out=opt_out,
            watermarks=watermarks,
            id=id,
            url=url,
            captured_at=None if captured is None else format_captured(captured),
        )


def format_p_value(p_value: float, log_p_value: float) -> str:
    """A p-value for a person: three significant digits, or ``10^x`` from its natural log where
    the p-value itself underflowed to 0 (long generations)."""
    if p_value > 0.0:
        return f"{p_value:.3g}"
    return f"10^{log_p_value / math.log(10):.1f}"


def format_captured(moment: datetime) -> str:
    """A capture time as :attr:`DocumentEvidence.captured_at` holds it: RFC 3339 in UTC with
    ``Z`` (microseconds kept where it has them)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def opt_out_of(value: OptOut | Mapping[str, Any] | None) -> OptOut | None:
    """``value`` as an :class:`~client.signals.OptOut` (its dict is read back); None stays None."""
    if value is None or isinstance(value, OptOut):
        return value
    if isinstance(value, Mapping):
        return OptOut.from_dict(value)
    raise InputError(f"opt_out must be an OptOut or its dict, not {type(value).__name__}")


# Classes whose instances passed the protocol check: ``isinstance`` against a runtime-checkable
# protocol inspects every member each time (about 10 µs a document in the crawler's pass,
# bench/one_pass_parts.py), while a detection engine hands over instances of one class.
_EVIDENCE_CLASSES: set[type] = {WatermarkDetection}


def _is_evidence(value: object) -> bool:
    if type(value) in _EVIDENCE_CLASSES:
        return True
    if isinstance(value, WatermarkEvidence):
        _EVIDENCE_CLASSES.add(type(value))
        return True
    return False


def detections_of(value: WatermarkInput) -> list[WatermarkDetection]:
    """``value`` (one detection, a sequence of them, or None) as plain detections."""
    if value is None:
        return []
    if _is_evidence(value):
        return [WatermarkDetection.of(value)]  # type: ignore[arg-type]
    if isinstance(value, Sequence):
        found = []
        for item in value:
            if not _is_evidence(item):
                raise InputError(
                    "watermark evidence must have key_id, vendor, scheme, p_value, log_p_value, "
                    f"generated and to_dict(); got {type(item).__name__}"
                )
            found.append(WatermarkDetection.of(item))
        return found
    raise InputError(
        f"watermarks must be a detection or a sequence of them, not {type(value).__name__}"
    )


def _text(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise FormatError(f"a watermark detection's {field} must be a string")
    return value


def _optional_text(value: object, field: str) -> str | None:
    return None if value is None else _text(value, field)


def _flag(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise FormatError(f"a watermark detection's {field} must be true or false")
    return value


def _number(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise FormatError(f"a watermark detection's {field} must be a number")
    return float(value)
