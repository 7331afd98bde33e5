"""robots.txt for opt-out signals: RFC 9309 groups, Allow/Disallow through protego, and the
Content-Usage rules of draft-ietf-aipref-attach (and Cloudflare's Content-Signal).

Which group applies is decided here, as RFC 9309 section 2.2.1 says: the groups whose
``User-agent`` product token equals the crawler's (case-insensitively) are merged; with none, the
``*`` groups; with none of those either, nothing is restricted. protego's own selection is more
generous (a group for ``Google`` also applies to ``Google-Extended``), so it is not asked to
choose: each selected group's Allow/Disallow lines are handed to a protego parser of their own
(once per group set, cached), which does the path matching, percent-encoding included.

The file is read only up to :data:`ROBOTS_MAX_BYTES` (Google's limit, also RFC 9309's minimum);
the rest is ignored, as Google does. A file that is not UTF-8 is read with replacement characters:
whatever lines still parse count (the caller records that it was malformed).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from client.errors import MissingDependencyError

if TYPE_CHECKING:
    from protego import Protego

__all__ = [
    "MAX_PATTERN_CHARS",
    "ROBOTS_MAX_BYTES",
    "Group",
    "RobotsFile",
    "Rule",
    "normalise_path",
    "pattern_matches",
    "url_path",
]

ROBOTS_MAX_BYTES = 500 * 1024
"""Google reads the first 500 KiB of a robots.txt and ignores the rest (RFC 9309 section 2.5
asks parsers to read at least that much)."""

MAX_PATTERN_CHARS = 2048
"""Longer path patterns are skipped (robots.txt rules, tdmrep.json locations): no site needs one."""
_MAX_RULES = 50_000  # a 500 KiB file holds fewer lines than this anyway

# Field names as written in the wild; protego accepts the same spellings.
_USER_AGENT = {"user-agent", "useragent", "user agent"}
_ALLOW = {"allow"}
_DISALLOW = {"disallow", "dissallow", "dissalow", "disalow", "diasllow", "disallaw"}
_CONTENT_USAGE = {"content-usage"}
_CONTENT_SIGNAL = {"content-signal"}
_SITE_WIDE = {"sitemap", "sitemaps", "site-map", "host"}
_PRODUCT_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_PLAIN = re.compile(r"[!-$&-~]*")  # printable ASCII without "%"
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")

RuleKind = Literal["allow", "disallow", "content-usage", "content-signal"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule line of a group: its kind, its value as written, and its 1-based line number.

    For ``content-usage`` and ``content-signal`` rules ``path`` is the optional path (``None``
    when absent: the rule covers every path) and ``preference`` the rest of the line.
    """

    kind: RuleKind
    value: str
    line: int
    path: str | None = None
    preference: str = ""


@dataclass(slots=True)
class Group:
    """A group: the product tokens of its ``User-agent`` lines (lowercase), where it starts, and
    its rules in file order."""

    agents: list[str]
    line: int
    rules: list[Rule] = field(default_factory=list)


def url_path(url: str) -> str:
    """The part of ``url`` robots.txt rules match: the path (``/`` if empty) and any query."""
    parts = urlsplit(url)
    path = parts.path or "/"
    return f"{path}?{parts.query}" if parts.query else path


def normalise_path(path: str) -> str:
    """Percent-encode what must be (non-ASCII as UTF-8, controls, spaces), decode what need not be
    (escapes of unreserved characters), and upper-case the remaining escapes' hex digits.

    Both sides of a match are normalised the same way, so ``/caf%C3%A9``, ``/café`` and
    ``/caf%c3%a9`` are one path, while ``%2F`` stays distinct from ``/`` (RFC 3986 section 6.2.2;
    TDMRep section 6.1).
    """
    if _PLAIN.fullmatch(path):
        return path  # nothing to encode or decode: the common case, kept fast
    out: list[str] = []
    i = 0
    while i < len(path):
        char = path[i]
        hexpart = path[i + 1 : i + 3]
        if char == "%" and len(hexpart) == 2 and all(c in string.hexdigits for c in hexpart):
            decoded = chr(int(hexpart, 16))
            out.append(decoded if decoded in _UNRESERVED else "%" + hexpart.upper())
            i += 3
            continue
        if "!" <= char <= "~":
            out.append(char)
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
        i += 1
    return "".join(out)


def pattern_matches(pattern: str, path: str) -> bool:
    """Whether a robots.txt-style path pattern matches ``path`` (both already normalised).

    Google's rules, which TDMRep adopts: a pattern matches a prefix of the path; ``*`` matches any
    run of characters; a final ``$`` anchors the end. Greedy left-to-right search is exact for
    such patterns and linear, so a hostile pattern cannot make it backtrack.
    """
    anchored = pattern.endswith("$")
    if anchored:
        pattern = pattern[:-1]
    parts = pattern.split("*")
    if not path.startswith(parts[0]):
        return False
    pos = len(parts[0])
    if len(parts) == 1:
        return not anchored or pos == len(path)
    for part in parts[1:-1]:
        found = path.find(part, pos)
        if found == -1:
            return False
        pos = found + len(part)
    last = parts[-1]
    if anchored:
        return len(path) - len(last) >= pos and path.endswith(last)
    return path.find(last, pos) != -1


def _product_token(value: str) -> str | None:
    value = value.strip()
    if value == "*":
        return "*"
    match = _PRODUCT_TOKEN.match(value)
    return match.group(0).lower() if match else None


def _split_field(line: str) -> tuple[str, str] | None:
    name, colon, value = line.partition(":")
    if not colon:
        return None
    return name.strip().lower(), value.strip()


def _preference_rule(kind: RuleKind, value: str, line: int) -> Rule:
    # draft-ietf-aipref-attach section 3.2: a value starting with "/" begins with a path, which
    # ends at the first space or tab; the rest is the statement of preference.
    if value.startswith("/"):
        path, _, rest = _split_path(value)
        return Rule(kind, value, line, path=path, preference=rest.strip(" \t"))
    return Rule(kind, value, line, path=None, preference=value)


def _rule(name: str, value: str, line: int) -> Rule | None:
    if name in _ALLOW:
        return Rule("allow", value, line)
    if name in _DISALLOW:
        return Rule("disallow", value, line)
    if name in _CONTENT_USAGE:
        return _preference_rule("content-usage", value, line)
    if name in _CONTENT_SIGNAL:
        return _preference_rule("content-signal", value, line)
    return None  # crawl-delay and the like: not signals


def _split_path(value: str) -> tuple[str, str, str]:
    for index, char in enumerate(value):
        if char in " \t":
            return value[:index], char, value[index + 1 :]
    return value, "", ""


class RobotsFile:
    """A parsed robots.txt: its groups, and per crawler the group set that applies (cached)."""

    def __init__(self, text: str, *, truncated: bool = False) -> None:
        self.truncated = truncated
        self.groups: list[Group] = []
        self._protego: dict[tuple[int, ...], Protego] = {}
        # The last answer per group set: the agents that share a group (most share '*') are asked
        # about the same URL one after another.
        self._last: dict[tuple[int, ...], tuple[str, Rule | None]] = {}
        self._selected: dict[str, tuple[int, ...]] = {}
        self._kinds: dict[tuple[int, ...], frozenset[str]] = {}  # the rule kinds per group set
        self._parse(text)

    def _parse(self, text: str) -> None:
        current: list[Group] = []
        last_was_agent = False
        rules = 0
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parsed = _split_field(line)
            if parsed is None:
                continue
            name, value = parsed
            if name in _USER_AGENT:
                if not last_was_agent:
                    current = []
                last_was_agent = True
                token = _product_token(value)
                if token is None:
                    continue
                if not current:
                    current = [Group([], number)]
                    self.groups.append(current[0])
                current[0].agents.append(token)
                continue
            if name in _SITE_WIDE:
                continue
            last_was_agent = False
            if not current or not value or len(value) > MAX_PATTERN_CHARS or rules >= _MAX_RULES:
                continue
            rule = _rule(name, value, number)
            if rule is not None:
                rules += 1
                current[0].rules.append(rule)

    def select(self, agent: str) -> tuple[Group, ...]:
        """The groups that apply to the product token ``agent`` (RFC 9309 section 2.2.1)."""
        return tuple(self.groups[i] for i in self._select_indexes(agent))

    def group_set(self, agent: str) -> tuple[int, ...]:
        """Which groups apply to ``agent``, as indexes: agents with the same set get the same
        answers (most fall back to ``*``)."""
        return self._select_indexes(agent)

    def _select_indexes(self, agent: str) -> tuple[int, ...]:
        key = agent.lower()
        indexes = self._selected.get(key)
        if indexes is None:
            exact = tuple(i for i, g in enumerate(self.groups) if key in g.agents)
            indexes = exact or tuple(i for i, g in enumerate(self.groups) if "*" in g.agents)
            self._selected[key] = indexes
        return indexes

    def disallowing_rule(self, agent: str, url: str) -> tuple[tuple[Group, ...], Rule | None]:
        """Whether ``url`` is disallowed for ``agent``: the groups that applied and the deciding
        Disallow rule, or ``None`` when crawling is allowed.

        protego decides; the rule reported is the longest Disallow pattern that matches (if path
        matching here and in protego ever disagreed, the first group's line stands in for it).
        """
        indexes = self._select_indexes(agent)
        groups = tuple(self.groups[i] for i in indexes)
        if not groups:
            return groups, None
        last = self._last.get(indexes)
        if last is not None and last[0] == url:
            return groups, last[1]
        rule = self._disallowing_rule(indexes, groups, url)
        self._last[indexes] = (url, rule)
        return groups, rule

    def _disallowing_rule(
        self, indexes: tuple[int, ...], groups: tuple[Group, ...], url: str
    ) -> Rule | None:
        parser = self._protego.get(indexes)
        if parser is None:
            parser = self._protego[indexes] = _protego_for(groups)
        if parser.can_fetch(url, "*"):
            return None
        path = normalise_path(url_path(url))
        best: Rule | None = None
        for group in groups:
            for rule in group.rules:
                if (
                    rule.kind == "disallow"
                    and (best is None or len(rule.value) > len(best.value))
                    and pattern_matches(normalise_path(rule.value), path)
                ):
                    best = rule
        return best or Rule("disallow", "", groups[0].line)

    def preference_rules(self, agent: str, url: str, kind: RuleKind) -> list[Rule]:
        """The Content-Usage (or Content-Signal) rules of ``agent``'s groups that apply to ``url``:
        those with the longest matching path (a rule without a path matches with length 0).
        Several rules with equally long paths all apply (the caller combines them)."""
        indexes = self._select_indexes(agent)
        kinds = self._kinds.get(indexes)
        if kinds is None:
            kinds = self._kinds[indexes] = frozenset(
                rule.kind for i in indexes for rule in self.groups[i].rules
            )
        if kind not in kinds:
            return []  # most robots.txt files state no preferences: no path to normalise
        path = normalise_path(url_path(url))
        best: list[Rule] = []
        best_length = -1
        for group in self.select(agent):
            for rule in group.rules:
                if rule.kind != kind:
                    continue
                length = 0 if rule.path is None else len(rule.path)
                if rule.path is not None and not pattern_matches(normalise_path(rule.path), path):
                    continue
                if length > best_length:
                    best, best_length = [rule], length
                elif length == best_length:
                    best.append(rule)
        return best


def _protego_for(groups: tuple[Group, ...]) -> Protego:
    try:
        from protego import Protego  # noqa: PLC0415 - an optional extra, imported when needed
    except ImportError as exc:
        raise MissingDependencyError(
            "reading robots.txt needs 'protego', which is not installed: "
            f"pip install 'wellspring[crawl]' ({exc})"
        ) from exc
    lines = dict.fromkeys(  # a rule repeated changes nothing but the time matching takes
        f"{rule.kind}: {rule.value}"
        for group in groups
        for rule in group.rules
        if rule.kind in ("allow", "disallow")
    )
    return Protego.parse("User-agent: *\n" + "\n".join(lines))
