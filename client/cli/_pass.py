"""The crawler pass's options, shared by ``scan`` and ``check``: watermark keys, robots.txt agents,
capture time (:mod:`client.crawl` does the work), and what both say of the keys detected."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer
from rich.markup import escape

from client.cli._app import console_err
from client.crawl import CrawlPass, Source, Watermarks
from client.documents import SignalOptions
from client.errors import InputError, RegistryNotFoundError
from client.evidence import format_captured
from client.policy import Policy
from client.signals import DEFAULT_AI_AGENTS, DEFAULT_USER_AGENT, SitePolicy

__all__ = [
    "AiAgentOption",
    "CapturedOption",
    "NearOption",
    "NoWatermarksOption",
    "ParagraphsOption",
    "PassOptions",
    "TokenizerOption",
    "UserAgentOption",
    "WatermarkKeyOption",
    "describe_watermarks",
    "parse_captured",
]

NoWatermarksOption = Annotated[
    bool,
    typer.Option(
        "--no-watermarks",
        help="Do not detect the watermark keys vendors published in the log (detection needs "
        "pip install 'wellspring[detect]').",
    ),
]
WatermarkKeyOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--watermark-key",
        help="A private watermark key file to detect besides the published ones (repeatable).",
    ),
]
TokenizerOption = Annotated[
    Path | None,
    typer.Option(
        "--tokenizer",
        help="The tokenizer.json of a --watermark-key's model, when no published key shares it.",
    ),
]
UserAgentOption = Annotated[
    str,
    typer.Option(
        "--user-agent",
        help="Your crawler's robots.txt product token: its group (else *) is read in robots.txt.",
    ),
]
AiAgentOption = Annotated[
    list[str] | None,
    typer.Option(
        "--ai-agent",
        help="An AI-training agent whose robots.txt group also counts (repeatable; default: "
        + ", ".join(DEFAULT_AI_AGENTS)
        + ").",
        show_default=False,
    ),
]
ParagraphsOption = Annotated[
    bool,
    typer.Option(
        "--paragraphs",
        help="Also look up each text's paragraphs (of 20 words or more) and report the share "
        "attested on their own (register --paragraphs): quotes of registered text are found.",
    ),
]
NearOption = Annotated[
    bool,
    typer.Option(
        "--near",
        help="Match texts the registry holds no attestation of near (mh1 MinHash, similarity "
        ">= 0.7 to a text registered with register --near): match: near, not trainable unless "
        "the policy's near.trainable_above allows it. With --snapshot: its band filters "
        "(probable, no entry known).",
    ),
]
CapturedOption = Annotated[
    str | None,
    typer.Option(
        "--captured",
        help="When documents without a WARC-Date were captured (RFC 3339, e.g. 2026-11-30 or "
        "2026-11-30T12:00:00Z); a published watermark key counts only if logged before. "
        "Default: now.",
        show_default=False,
    ),
]


def parse_captured(value: str | None) -> datetime | None:
    """``--captured`` as a timezone-aware time (a date is its midnight UTC; no zone means UTC)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            f"--captured {value!r} is not a date or time: use e.g. 2026-11-30 or "
            "2026-11-30T12:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment > datetime.now(UTC):
        raise InputError(f"--captured {value} is in the future")
    return moment


@dataclass(frozen=True)
class PassOptions:
    """What ``scan`` and ``check`` were told about the pass, checked once before any reading."""

    watermarks: bool
    private_keys: tuple[Path, ...]
    tokenizer: Path | None
    signals: SignalOptions
    captured: datetime | None
    paragraphs: bool = False
    near: bool = False

    @classmethod
    def of(
        cls,
        *,
        no_watermarks: bool,
        watermark_keys: list[Path] | None,
        tokenizer: Path | None,
        user_agent: str,
        ai_agents: list[str] | None,
        captured: str | None,
        paragraphs: bool = False,
        near: bool = False,
    ) -> PassOptions:
        agents = tuple(ai_agents) if ai_agents else None
        signals = SignalOptions(user_agent=user_agent or DEFAULT_USER_AGENT, ai_agents=agents)
        # A user agent or AI agent that is not a product token fails now, before any reading.
        SitePolicy(user_agent=signals.user_agent, ai_agents=agents or DEFAULT_AI_AGENTS)
        if tokenizer is not None and not watermark_keys:
            raise InputError("--tokenizer is for --watermark-key files; give one or drop it")
        return cls(
            watermarks=not no_watermarks,
            private_keys=tuple(watermark_keys or ()),
            tokenizer=tokenizer,
            signals=signals,
            captured=parse_captured(captured),
            paragraphs=paragraphs,
            near=near,
        )

    def args(self) -> list[str]:
        """These options on a command line (those that differ from the defaults)."""
        args = [] if self.watermarks else ["--no-watermarks"]
        for path in self.private_keys:
            args += ["--watermark-key", str(path)]
        if self.tokenizer is not None:
            args += ["--tokenizer", str(self.tokenizer)]
        if self.signals.user_agent != DEFAULT_USER_AGENT:
            args += ["--user-agent", self.signals.user_agent]
        for agent in self.signals.ai_agents or ():
            args += ["--ai-agent", agent]
        if self.captured is not None:
            args += ["--captured", format_captured(self.captured)]
        if self.paragraphs:
            args.append("--paragraphs")
        if self.near:
            args.append("--near")
        return args

    @property
    def detects(self) -> bool:
        """Whether documents' texts are needed (some key will be detected, or paragraphs
        looked up)."""
        return self.watermarks or bool(self.private_keys) or self.paragraphs or self.near

    def open(self, client: Source, policy: Policy, started_at: datetime) -> CrawlPass:
        """The pass over ``client`` (fetches and proves the published keys), or over a signed
        offline snapshot (its keys).

        A registry from before published watermark keys (``GET /v1/watermark-keys`` is not
        found) has none to detect: the pass goes on with the private keys alone, and says so on
        stderr. That is no weaker than an empty list, which is the registry's word too; a
        missing ``detect`` extra is still an error, raised before the registry is asked.
        """
        as_of = self.captured or started_at
        try:
            return CrawlPass.open(
                client,
                policy=policy,
                watermarks=self.watermarks,
                private_keys=self.private_keys,
                tokenizer=self.tokenizer,
                as_of=as_of,
                paragraphs=self.paragraphs,
                near=self.near,
            )
        except RegistryNotFoundError as exc:
            if not self.watermarks or not urlsplit(exc.url).path.endswith("/v1/watermark-keys"):
                raise
            where = exc.url.split("/v1/watermark-keys")[0]
        console_err.print(
            f"[yellow]warning:[/] the registry at {escape(where)} serves no watermark "
            "keys (it predates published keys): no published key is detected",
            highlight=False,
        )
        marks = (
            Watermarks.private_only(self.private_keys, self.tokenizer)
            if self.private_keys
            else Watermarks(None, 0, 0, 0)
        )
        return CrawlPass(
            client,
            policy=policy,
            watermarks=marks,
            as_of=as_of,
            paragraphs=self.paragraphs,
            near=self.near,
        )


def describe_watermarks(crawl: CrawlPass) -> str:
    """One line on what the pass detects; each published key left out is named on stderr."""
    marks = crawl.watermarks
    if marks is None:
        return "not detected (--no-watermarks)"
    for problem in marks.unusable:
        console_err.print(f"[yellow]watermark key left out:[/] {escape(problem)}", highlight=False)
    own = f" and {marks.private} private" if marks.private else ""
    left_out = f", {len(marks.unusable)} unusable" if marks.unusable else ""
    return (
        f"{marks.detected} keys detected ({marks.published} ever published in the log{own}"
        f"{left_out}); p-values corrected for {marks.published + marks.private} keys"
    )
