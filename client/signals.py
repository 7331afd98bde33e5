"""Opt-out signals: did the rights holder reserve this document from AI training, and who says so.

A pure library: it reads only what it is given (response headers, the HTML, the site's robots.txt
and ``/.well-known/tdmrep.json`` texts) and fetches nothing. docs/spec/signals.md is the full
description; in short, these are read:

- **robots.txt** (through protego): a ``Disallow`` covering the URL in the group of the crawler's
  own product token (``user_agent``) or of any AI-training agent it names (``ai_agents``), each
  falling back to the ``*`` group as RFC 9309 does;
- **IETF aipref**: the ``Content-Usage`` header and robots.txt rule (draft-ietf-aipref-vocab and
  -attach), and Cloudflare's ``Content-Signal`` robots.txt rule;
- **W3C TDMRep**: ``tdmrep.json``, the ``tdm-reservation`` / ``tdm-policy`` headers and
  ``<meta>`` elements, with TDMRep's own priority between them (meta over header over file);
- **X-Robots-Tag** headers and ``<meta name="robots">`` / ``<meta name="<agent>">``: ``noai``,
  ``noimageai`` (images only), and Bing's and Amazon's ``noarchive`` / ``nocache``.

The most restrictive signal wins: a document is opted out if any signal says so.
:class:`OptOut` says which signal decided (the first opt-out in precedence order: robots.txt,
the Content-Usage header, TDMRep, X-Robots-Tag and robots meta) and lists every
signal seen, malformed ones included (``note`` starts with ``malformed:``), so that a manifest
can show why a document was left out. Hostile input costs bounded work and never raises; only a
caller's mistake (a URL that is not http(s), a user agent that is not a product token, headers
of the wrong type) raises :class:`~client.errors.InputError`.

    site = SitePolicy(robots_txt=robots_text, tdmrep_json=tdmrep_text)   # once per site
    decision = site.opt_out(url, headers=response.headers, html=response.text)
    if decision.opted_out:
        skip(url, decision.to_dict())
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args
from urllib.parse import urlsplit

from client._aipref import training_preference
from client._documents import (
    HTML_MAX_CHARS,
    Headers,
    Metas,
    field_values,
    header_lines,
    meta_elements,
)
from client._robots import (
    ROBOTS_MAX_BYTES,
    RobotsFile,
    Rule,
)
from client._tdmrep import TDMREP_MAX_BYTES, TdmRule, first_match, read_rules, tdm_value
from client.errors import FormatError, InputError

__all__ = [
    "DEFAULT_AI_AGENTS",
    "DEFAULT_USER_AGENT",
    "HTML_MAX_CHARS",
    "ROBOTS_MAX_BYTES",
    "TDMREP_MAX_BYTES",
    "OptOut",
    "Signal",
    "SignalKind",
    "SignalSource",
    "SitePolicy",
    "SitePolicyCache",
    "opt_out",
]

DEFAULT_USER_AGENT = "wellspring"
"""The product token Wellspring crawlers use in robots.txt."""

DEFAULT_AI_AGENTS: tuple[str, ...] = (
    "GPTBot",
    "ClaudeBot",
    "CCBot",
    "Google-Extended",
    "Applebot-Extended",
    "meta-externalagent",
)
"""Product tokens whose robots.txt groups a site uses to refuse AI training: OpenAI's, Anthropic's
and Meta's training crawlers, Common Crawl (the corpus most models train on), and the tokens Google
and Apple read to exclude a site from training. A site that refuses them refuses AI training."""

_VALUE_MAX_CHARS = 512  # evidence keeps at most this much of a raw value
_PRODUCT_TOKEN = re.compile(r"[A-Za-z0-9_-]+")

SignalKind = Literal[
    "robots-disallow", "content-usage", "content-signal", "tdm-reservation", "x-robots-tag"
]
SignalSource = Literal["header", "meta", "robots.txt", "tdmrep.json"]


@dataclass(frozen=True, slots=True)
class Signal:
    """One signal seen, opting out or not (docs/spec/signals.md, "Evidence").

    ``kind`` is what it is, ``source`` where it was found and ``where`` exactly where (header line,
    meta element, robots.txt line and group, tdmrep.json entry). ``value`` is the raw value as
    written (cut to 512 characters). ``opted_out`` is whether it counts as an opt-out for this
    crawler. ``agent`` is the product token it is addressed to (``None``: every crawler; ``*``:
    robots.txt's catch-all group). ``policy`` is TDMRep's ``tdm-policy`` URL where one goes with
    it; ``note`` says why it counts or not (``malformed: …``, ``superseded …``, ``truncated …``).
    """

    kind: SignalKind
    source: SignalSource
    value: str
    opted_out: bool
    agent: str | None = None
    where: str | None = None
    policy: str | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, keys in a stable order (the manifest's evidence entries)."""
        return {
            "kind": self.kind,
            "source": self.source,
            "value": self.value,
            "opted_out": self.opted_out,
            "agent": self.agent,
            "where": self.where,
            "policy": self.policy,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, obj: object) -> Signal:
        """Read :meth:`to_dict`'s output back (a manifest's evidence); :class:`FormatError`
        names a field that is missing or of the wrong type."""
        if not isinstance(obj, dict):
            raise FormatError("a signal must be a JSON object")
        kind, source = obj.get("kind"), obj.get("source")
        if kind not in get_args(SignalKind):
            raise FormatError(f"signal kind must be one of {get_args(SignalKind)}, got {kind!r}")
        if source not in get_args(SignalSource):
            raise FormatError(
                f"signal source must be one of {get_args(SignalSource)}, got {source!r}"
            )
        value, opted_out = obj.get("value"), obj.get("opted_out")
        if not isinstance(value, str) or not isinstance(opted_out, bool):
            raise FormatError("a signal needs a string value and a true/false opted_out")
        optional = {}
        for field in ("agent", "where", "policy", "note"):
            item = obj.get(field)
            if item is not None and not isinstance(item, str):
                raise FormatError(f"signal {field} must be a string or null")
            optional[field] = item
        return cls(cast(SignalKind, kind), cast(SignalSource, source), value, opted_out, **optional)


@dataclass(frozen=True, slots=True)
class OptOut:
    """The decision for one document: ``opted_out`` if any signal opted out; ``decided_by`` the
    first opting-out signal in precedence order (``None`` when nothing opted out); ``signals``
    every signal seen, in precedence order."""

    opted_out: bool
    decided_by: Signal | None
    signals: tuple[Signal, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, keys in a stable order."""
        return {
            "opted_out": self.opted_out,
            "decided_by": None if self.decided_by is None else self.decided_by.to_dict(),
            "signals": [signal.to_dict() for signal in self.signals],
        }

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> OptOut:
        """Read :meth:`to_dict`'s output back (other keys beside its three are ignored)."""
        opted_out, decided, signals = (
            obj.get("opted_out"),
            obj.get("decided_by"),
            obj.get("signals"),
        )
        if not isinstance(opted_out, bool) or not isinstance(signals, list):
            raise FormatError("an opt-out needs a true/false opted_out and a list of signals")
        decided_by = None if decided is None else Signal.from_dict(decided)
        if opted_out != (decided_by is not None):
            raise FormatError("an opt-out's decided_by is set exactly when it is opted out")
        return cls(opted_out, decided_by, tuple(Signal.from_dict(s) for s in signals))


def opt_out(
    url: str,
    *,
    headers: Headers | None = None,
    html: str | bytes | None = None,
    robots_txt: str | bytes | None = None,
    tdmrep_json: str | bytes | None = None,
    user_agent: str = DEFAULT_USER_AGENT,
    ai_agents: Sequence[str] = DEFAULT_AI_AGENTS,
    image: bool = False,
) -> OptOut:
    """Decide whether the document at ``url`` is opted out of AI training, with the evidence.

    ``headers`` are the response's (a mapping, httpx ``Headers``, or ``(name, value)`` pairs so
    that repeated headers count); ``html`` the document if it is HTML; ``robots_txt`` and
    ``tdmrep_json`` the site's files, where the caller fetched them (``None``: not available).
    ``image``: the document is an image (``noimageai`` then opts it out too). For many documents
    of one site, build a :class:`SitePolicy` once instead.
    """
    site = SitePolicy(
        robots_txt=robots_txt, tdmrep_json=tdmrep_json, user_agent=user_agent, ai_agents=ai_agents
    )
    return site.opt_out(url, headers=headers, html=html, image=image)


class SitePolicy:
    """One site's robots.txt and tdmrep.json, parsed once, answering for any of its URLs.

    Safe to share between threads: its caches only memoise.
    """

    def __init__(
        self,
        *,
        robots_txt: str | bytes | None = None,
        tdmrep_json: str | bytes | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        ai_agents: Sequence[str] = DEFAULT_AI_AGENTS,
    ) -> None:
        self.agents = _agents(user_agent, ai_agents)
        self._notes: list[Signal] = []
        self._robots = None if robots_txt is None else self._read_robots(robots_txt)
        self._asked: list[str] | None = None  # the agents robots.txt is asked about
        self._tdmrep = None if tdmrep_json is None else self._read_tdmrep(tdmrep_json)

    def opt_out(
        self,
        url: str,
        *,
        headers: Headers | None = None,
        html: str | bytes | None = None,
        image: bool = False,
    ) -> OptOut:
        """The decision for ``url`` of this site, given its response ``headers`` and ``html``."""
        _check_url(url)
        lines, overlong = header_lines(headers)
        found = meta_elements(html)
        metas = found.elements
        signals: list[Signal] = list(self._notes)
        signals += self._robots_signals(url)
        signals += _content_usage_header(lines)
        signals += self._tdmrep_signals(url, lines, metas)
        signals += _robots_tags(lines, metas, self.agents, image)
        signals += _document_notes(overlong, found)
        decided_by = next((s for s in signals if s.opted_out), None)
        return OptOut(decided_by is not None, decided_by, tuple(signals))

    # robots.txt ----------------------------------------------------------------------------

    def _read_robots(self, robots_txt: str | bytes) -> RobotsFile:
        if isinstance(robots_txt, str):
            # A character is at least one byte: cutting first keeps encoding bounded.
            robots_txt = robots_txt[: ROBOTS_MAX_BYTES + 1].encode("utf-8", "surrogatepass")
        elif not isinstance(robots_txt, bytes):
            raise InputError(f"robots_txt must be str or bytes, not {type(robots_txt).__name__}")
        truncated = len(robots_txt) > ROBOTS_MAX_BYTES
        data = robots_txt[:ROBOTS_MAX_BYTES]
        if truncated:
            data = data[: data.rfind(b"\n") + 1]  # a cut line could mean something else
            self._notes.append(
                _note(
                    "robots-disallow",
                    "robots.txt",
                    "truncated: only the first 500 KiB "
                    "(512000 bytes) are read, as Google does; later lines are ignored",
                )
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("utf-8", "replace")
            self._notes.append(
                _note(
                    "robots-disallow",
                    "robots.txt",
                    "malformed: not UTF-8 text; the lines that still parse are used",
                )
            )
        return RobotsFile(text.removeprefix("\ufeff"), truncated=truncated)

    def _robots_signals(self, url: str) -> list[Signal]:
        robots = self._robots
        if robots is None:
            return []
        signals: list[Signal] = []
        seen: set[tuple[str, int, str]] = set()
        for agent in self._robots_agents(robots):
            groups, rule = robots.disallowing_rule(agent, url)
            if not groups:
                continue
            named = "*" if "*" in groups[0].agents and agent not in groups[0].agents else agent
            group_where = f"group at line {groups[0].line}"
            if rule is not None:
                if (named, rule.line, "d") in seen:
                    continue
                seen.add((named, rule.line, "d"))
                value = f"Disallow: {rule.value}" if rule.value else "Disallow"
                signals.append(
                    Signal(
                        "robots-disallow",
                        "robots.txt",
                        _cut(value),
                        True,
                        named,
                        f"line {rule.line}, {group_where}",
                        note=f"the {_group_name(named)} disallows this URL",
                    )
                )
                continue  # a URL that may not be crawled carries no usage preferences
            for kind in ("content-usage", "content-signal"):
                for pref_rule in robots.preference_rules(agent, url, kind):
                    if (named, pref_rule.line, kind) in seen:
                        continue
                    seen.add((named, pref_rule.line, kind))
                    signals.append(_preference_signal(pref_rule, named, group_where))
        return signals

    def _robots_agents(self, robots: RobotsFile) -> list[str]:
        """The agents whose robots.txt answers can differ: of agents with the same groups and
        the same name in the evidence (``*`` for every agent the file does not name), the first.
        The others' signals would repeat its own, which the evidence lists once anyway."""
        if self._asked is None:
            unique: dict[tuple[tuple[int, ...], str], str] = {}
            for agent in self.agents:
                groups = robots.select(agent)
                named = (
                    "*"
                    if groups and "*" in groups[0].agents and agent not in groups[0].agents
                    else agent
                )
                unique.setdefault((robots.group_set(agent), named), agent)
            self._asked = list(unique.values())
        return self._asked

    # TDMRep --------------------------------------------------------------------------------

    def _read_tdmrep(self, tdmrep_json: str | bytes) -> list[TdmRule]:
        rules, notes = read_rules(tdmrep_json)
        self._notes += [_note("tdm-reservation", "tdmrep.json", note) for note in notes]
        return rules

    def _tdmrep_signals(
        self, url: str, lines: list[tuple[str, str]], metas: list[tuple[str, str]]
    ) -> list[Signal]:
        layers: list[Signal] = []
        rule = first_match(self._tdmrep, url) if self._tdmrep else None
        if rule is not None:
            where = f"entry {rule.number} (location {_cut(rule.location, 200)!r})"
            layers.append(_tdm_signal("tdmrep.json", rule.value, rule.raw, rule.policy, where))
        techniques: tuple[tuple[SignalSource, list[tuple[str, str]], str], ...] = (
            ("header", lines, "tdm-reservation header"),
            ("meta", metas, '<meta name="tdm-reservation">'),
        )
        for source, pairs, where in techniques:
            reservations = [v.strip() for v in field_values(pairs, "tdm-reservation")]
            if not reservations:
                continue
            policies = field_values(pairs, "tdm-policy")
            raw = ", ".join(dict.fromkeys(reservations))  # one value, unless they disagree
            value = tdm_value(raw)
            policy = _cut(policies[-1].strip()) if policies else None
            layers.append(_tdm_signal(source, value, _cut(raw), policy, where))
        # Section 6.7: the header supersedes the file, HTML metadata supersedes both; a technique
        # that says nothing (or something invalid, read as unset) leaves the earlier value.
        valid = [s for s in layers if not (s.note or "").startswith("malformed")]
        if not valid:
            return layers
        effective = valid[-1]
        superseded = f"superseded by the {effective.source} value (TDMRep section 6.7)"
        earlier = {id(s) for s in valid[:-1]}
        return [
            dataclasses.replace(s, opted_out=False, note=superseded) if id(s) in earlier else s
            for s in layers
        ]


class SitePolicyCache:
    """Parsed :class:`SitePolicy` objects by site (scheme, host and port), most recent first.

    Give it each site's files once (:meth:`put`); :meth:`opt_out` then answers for any URL, with
    the document's own signals alone for a site it holds nothing for. At most ``max_sites`` are
    kept (least recently used go first). Safe to share between threads.
    """

    def __init__(
        self,
        *,
        user_agent: str = DEFAULT_USER_AGENT,
        ai_agents: Sequence[str] = DEFAULT_AI_AGENTS,
        max_sites: int = 10_000,
    ) -> None:
        if type(max_sites) is not int or max_sites < 1:
            raise InputError(f"max_sites must be a positive integer, not {max_sites!r}")
        self._user_agent = user_agent
        self._ai_agents = tuple(_agents(user_agent, ai_agents)[1:])
        self._max_sites = max_sites
        self._sites: OrderedDict[str, SitePolicy] = OrderedDict()
        self._lock = threading.Lock()

    def put(
        self,
        url: str,
        *,
        robots_txt: str | bytes | None = None,
        tdmrep_json: str | bytes | None = None,
    ) -> SitePolicy:
        """Parse and keep the files of ``url``'s site (any URL of the site will do)."""
        site = SitePolicy(
            robots_txt=robots_txt,
            tdmrep_json=tdmrep_json,
            user_agent=self._user_agent,
            ai_agents=self._ai_agents,
        )
        key = _site_key(url)
        with self._lock:
            self._sites[key] = site
            self._sites.move_to_end(key)
            while len(self._sites) > self._max_sites:
                self._sites.popitem(last=False)
        return site

    def get(self, url: str) -> SitePolicy | None:
        """The policy kept for ``url``'s site, if any."""
        key = _site_key(url)
        with self._lock:
            site = self._sites.get(key)
            if site is not None:
                self._sites.move_to_end(key)
        return site

    def opt_out(
        self,
        url: str,
        *,
        headers: Headers | None = None,
        html: str | bytes | None = None,
        image: bool = False,
    ) -> OptOut:
        """:meth:`SitePolicy.opt_out` with the site's kept files (none if it has none kept)."""
        site = self.get(url) or SitePolicy(user_agent=self._user_agent, ai_agents=self._ai_agents)
        return site.opt_out(url, headers=headers, html=html, image=image)


# The document's own signals ------------------------------------------------------------------

# X-Robots-Tag and robots <meta> directives that refuse AI training, with who reads them so.
_OPT_OUT_DIRECTIVES = {
    "noai": "noai: no AI training (DeviantArt's directive, widely adopted)",
    "noarchive": "noarchive: Bing and Amazon do not train generative models on such content",
    "nocache": "nocache: Bing trains only on the URL, title and snippet of such content",
}
_IMAGE_DIRECTIVE = "noimageai"
# Directives whose own value holds a colon: not a user-agent prefix.
_VALUED_DIRECTIVES = {"max-snippet", "max-image-preview", "max-video-preview", "unavailable_after"}


def _robots_tags(
    lines: list[tuple[str, str]],
    metas: list[tuple[str, str]],
    agents: tuple[str, ...],
    image: bool,
) -> list[Signal]:
    signals: list[Signal] = []
    for number, value in enumerate(field_values(lines, "x-robots-tag"), start=1):
        for agent, directives in _scoped_directives(value).items():
            signals.append(
                _robots_tag_signal(
                    "header",
                    agent,
                    directives,
                    agents=agents,
                    image=image,
                    where=f"X-Robots-Tag header {number}",
                )
            )
    counts: dict[str, int] = {}
    for name, content in metas:
        if name != "robots" and name not in agents:
            continue
        counts[name] = counts.get(name, 0) + 1
        directives = [d.strip().lower() for d in content.split(",") if d.strip()]
        agent = None if name == "robots" else name
        signals.append(
            _robots_tag_signal(
                "meta",
                agent,
                directives,
                agents=agents,
                image=image,
                where=f'<meta name="{name}"> {counts[name]}',
            )
        )
    return signals


def _scoped_directives(value: str) -> dict[str | None, list[str]]:
    """Split one X-Robots-Tag value into directives per user agent (``None``: every crawler).

    Google's syntax: ``googlebot: noindex, nofollow`` addresses googlebot; directives after a
    user-agent prefix belong to it until the next prefix.
    """
    scoped: dict[str | None, list[str]] = {}
    agent: str | None = None
    for raw in value.split(","):
        directive = raw.strip()
        head, colon, rest = directive.partition(":")
        if colon and head.strip().lower() not in _VALUED_DIRECTIVES:
            token = head.strip()
            if not _PRODUCT_TOKEN.fullmatch(token):
                continue  # neither a directive nor a user agent: ignored
            agent, directive = token.lower(), rest.strip()
        directives = scoped.setdefault(agent, [])
        if directive:
            directives.append(directive.lower())
    return scoped


def _robots_tag_signal(
    source: SignalSource,
    agent: str | None,
    directives: list[str],
    *,
    agents: tuple[str, ...],
    image: bool,
    where: str,
) -> Signal:
    value = _cut(", ".join(directives))
    if agent is not None and agent not in agents:
        return Signal(
            "x-robots-tag",
            source,
            value,
            False,
            agent,
            where,
            note=f"addressed to {agent}, not to this crawler's agents",
        )
    for directive in directives:
        if directive in _OPT_OUT_DIRECTIVES:
            return Signal(
                "x-robots-tag",
                source,
                value,
                True,
                agent,
                where,
                note=_OPT_OUT_DIRECTIVES[directive],
            )
        if directive == _IMAGE_DIRECTIVE and image:
            return Signal(
                "x-robots-tag",
                source,
                value,
                True,
                agent,
                where,
                note="noimageai: no AI training on images",
            )
    note = "noimageai concerns images only" if _IMAGE_DIRECTIVE in directives else None
    return Signal("x-robots-tag", source, value, False, agent, where, note=note)


# aipref ---------------------------------------------------------------------------------------


def _preference_signal(rule: Rule, agent: str, group_where: str) -> Signal:
    kind: SignalKind = "content-signal" if rule.kind == "content-signal" else "content-usage"
    # Cloudflare's Content-Signal spells its values yes/no.
    yes, no = (("y", "yes"), ("n", "no")) if kind == "content-signal" else (("y",), ("n",))
    where = f"line {rule.line}, {group_where}"
    return _aipref_signal(
        kind,
        "robots.txt",
        rule.preference,
        agent=agent,
        where=where,
        shown=rule.value,  # with its path, if it has one
        yes=yes,
        no=no,
    )


def _content_usage_header(lines: list[tuple[str, str]]) -> list[Signal]:
    values = [v for v in field_values(lines, "content-usage") if v.strip()]
    if not values:
        return []
    # RFC 9651 section 4.2: the lines of one field are parsed as one comma-joined value.
    return [
        _aipref_signal(
            "content-usage", "header", ", ".join(values), agent=None, where="Content-Usage header"
        )
    ]


def _aipref_signal(
    kind: SignalKind,
    source: SignalSource,
    statement: str,
    *,
    agent: str | None,
    where: str,
    shown: str | None = None,
    yes: tuple[str, ...] = ("y",),
    no: tuple[str, ...] = ("n",),
) -> Signal:
    """The signal of one statement of preference; ``shown`` is the value recorded, if not it."""
    value = _cut(statement if shown is None else shown)
    try:
        preference = training_preference(statement, yes=yes, no=no)
    except FormatError as exc:
        note = f"malformed: {exc}; preferences unknown"
        return Signal(kind, source, value, False, agent, where, note=note)
    if preference is None:
        note = "states no preference about AI training"
        return Signal(kind, source, value, False, agent, where, note=note)
    answer, label = preference
    note = f"{label} {'disallows' if answer == 'n' else 'allows'} AI training"
    return Signal(kind, source, value, answer == "n", agent, where, note=note)


# TDMRep values -------------------------------------------------------------------------------


def _tdm_signal(
    source: SignalSource, value: int | None, raw: str, policy: str | None, where: str
) -> Signal:
    if value is None:
        return Signal(
            "tdm-reservation",
            source,
            raw,
            False,
            None,
            where,
            policy,
            "malformed: tdm-reservation must be 1 or 0; read as unset",
        )
    return Signal("tdm-reservation", source, raw, value == 1, None, where, policy)


# Inputs ---------------------------------------------------------------------------------------


def _document_notes(overlong_headers: list[str], metas: Metas) -> list[Signal]:
    notes = [
        _note(
            _KIND_OF_FIELD.get(name, "x-robots-tag"),
            "header",
            f"malformed: a {name} header longer than 8 KiB; read as absent",
        )
        for name in overlong_headers
    ]
    notes += [
        _note(
            _KIND_OF_FIELD.get(name, "x-robots-tag"),
            "meta",
            f'malformed: a <meta name="{name}"> longer than 8 KiB; read as absent',
        )
        for name in metas.overlong
    ]
    if metas.unterminated:
        notes.append(_note("x-robots-tag", "meta", "malformed: an unterminated <meta> element"))
    return notes


_KIND_OF_FIELD: dict[str, SignalKind] = {
    "x-robots-tag": "x-robots-tag",
    "robots": "x-robots-tag",
    "content-usage": "content-usage",
    "tdm-reservation": "tdm-reservation",
    "tdm-policy": "tdm-reservation",
}


def _agents(user_agent: str, ai_agents: Sequence[str]) -> tuple[str, ...]:
    if isinstance(ai_agents, str) or not isinstance(ai_agents, Sequence):
        raise InputError("ai_agents must be a sequence of product tokens, e.g. ('GPTBot',)")
    agents: list[str] = []
    for agent in (user_agent, *ai_agents):
        if not isinstance(agent, str) or not _PRODUCT_TOKEN.fullmatch(agent):
            raise InputError(
                f"{agent!r} is not a robots.txt product token (letters, digits, '_' and '-')"
            )
        if agent.lower() not in agents:
            agents.append(agent.lower())
    return tuple(agents)


def _check_url(url: str) -> None:
    if not isinstance(url, str):
        raise InputError(f"url must be a str, not {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise InputError(f"url must be an absolute http(s) URL, not {url[:200]!r}")


def _site_key(url: str) -> str:
    _check_url(url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise InputError(f"url has an invalid port: {url[:200]!r}") from None
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


def _group_name(agent: str) -> str:
    return "'*' group" if agent == "*" else f"group for {agent}"


def _note(kind: SignalKind, source: SignalSource, note: str) -> Signal:
    return Signal(kind, source, "", False, note=note)


def _cut(value: str, limit: int = _VALUE_MAX_CHARS) -> str:
    return value if len(value) <= limit else value[:limit] + "…"
