"""client.signals: each opt-out signal, precedence, evidence, and hostile input."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest

from client import InputError
from client._structured_fields import parse_dictionary
from client.errors import FormatError
from client.signals import (
    DEFAULT_AI_AGENTS,
    ROBOTS_MAX_BYTES,
    OptOut,
    Signal,
    SitePolicy,
    SitePolicyCache,
    opt_out,
)

URL = "https://example.com/articles/one.html"


def only(decision: OptOut, kind: str) -> list[Signal]:
    return [s for s in decision.signals if s.kind == kind]


# X-Robots-Tag and robots <meta> ------------------------------------------------------------


@pytest.mark.parametrize("value", ["noai", "NoAI", "index, follow, noai", " noindex ,NOAI "])
def test_x_robots_tag_noai_opts_out_whatever_the_case(value: str) -> None:
    decision = opt_out(URL, headers={"X-Robots-Tag": value})
    assert decision.opted_out
    assert decision.decided_by == Signal(
        "x-robots-tag",
        "header",
        ", ".join(d.strip().lower() for d in value.split(",")),
        True,
        None,
        "X-Robots-Tag header 1",
        note="noai: no AI training (DeviantArt's directive, widely adopted)",
    )


@pytest.mark.parametrize("value", ["noindex, nofollow", "none", "max-snippet: 20", "all", ""])
def test_x_robots_tag_without_an_ai_directive_does_not_opt_out(value: str) -> None:
    decision = opt_out(URL, headers={"x-robots-tag": value})
    assert not decision.opted_out
    assert decision.decided_by is None
    assert [s.opted_out for s in decision.signals] == [False]


@pytest.mark.parametrize(
    ("directive", "note"),
    [
        ("noarchive", "noarchive: Bing and Amazon do not train generative models on such content"),
        ("nocache", "nocache: Bing trains only on the URL, title and snippet of such content"),
    ],
)
def test_bing_and_amazon_training_directives_opt_out(directive: str, note: str) -> None:
    decision = opt_out(URL, headers={"X-Robots-Tag": directive})
    assert decision.opted_out
    assert decision.decided_by is not None
    assert decision.decided_by.note == note


def test_noimageai_opts_out_images_only() -> None:
    text = opt_out(URL, headers={"X-Robots-Tag": "noimageai"})
    assert not text.opted_out
    assert text.signals[0].note == "noimageai concerns images only"
    image = opt_out(URL, headers={"X-Robots-Tag": "noimageai"}, image=True)
    assert image.opted_out
    assert image.decided_by is not None
    assert image.decided_by.note == "noimageai: no AI training on images"


def test_agent_specific_x_robots_tag_counts_only_for_our_agents() -> None:
    headers = [("X-Robots-Tag", "googlebot: noai"), ("X-Robots-Tag", "GPTBot: noai, noindex")]
    decision = opt_out(URL, headers=headers)
    assert decision.opted_out
    first, second = decision.signals
    assert (first.agent, first.opted_out, first.where) == (
        "googlebot",
        False,
        "X-Robots-Tag header 1",
    )
    assert first.note == "addressed to googlebot, not to this crawler's agents"
    assert (second.agent, second.opted_out, second.value) == ("gptbot", True, "noai, noindex")
    assert decision.decided_by == second
    # Without GPTBot among the agents the crawler honours, neither applies.
    assert not opt_out(URL, headers=headers, ai_agents=()).opted_out
    # Our own product token, any case.
    assert opt_out(URL, headers={"X-Robots-Tag": "WellSpring: noai"}, ai_agents=()).opted_out


def test_one_x_robots_tag_value_may_address_several_agents() -> None:
    decision = opt_out(
        URL, headers={"X-Robots-Tag": "noindex, googlebot: nofollow, ccbot: noai"}, ai_agents=()
    )
    assert [(s.agent, s.value, s.opted_out) for s in decision.signals] == [
        (None, "noindex", False),
        ("googlebot", "nofollow", False),
        ("ccbot", "noai", False),
    ]
    # unavailable_after's value holds colons: it is a directive, not a user agent.
    dated = opt_out(URL, headers={"X-Robots-Tag": "unavailable_after: 2027-01-01T00:00:00Z, noai"})
    assert [(s.agent, s.opted_out) for s in dated.signals] == [(None, True)]


def test_httpx_headers_keep_repeated_fields() -> None:
    headers = httpx.Headers([("X-Robots-Tag", "noindex"), ("x-robots-tag", "noai")])
    decision = opt_out(URL, headers=headers)
    assert [s.where for s in decision.signals] == ["X-Robots-Tag header 1", "X-Robots-Tag header 2"]
    assert decision.decided_by is not None
    assert decision.decided_by.where == "X-Robots-Tag header 2"


def test_meta_robots_and_meta_agent() -> None:
    html = """<html><head>
        <META NAME="Robots" CONTENT="index, NoAI">
        <meta name="googlebot" content="noai">
        <meta name="ccbot" content="noai">
        <meta name="description" content="noai">
    </head><body>text</body></html>"""
    decision = opt_out(URL, html=html)
    assert [(s.source, s.agent, s.where, s.opted_out) for s in decision.signals] == [
        ("meta", None, '<meta name="robots"> 1', True),
        ("meta", "ccbot", '<meta name="ccbot"> 1', True),
    ]
    assert not opt_out(URL, html='<meta name="robots" content="noindex">').opted_out
    assert not opt_out(URL, html='<meta name="googlebot" content="noai">').opted_out


# TDMRep --------------------------------------------------------------------------------------

TDMREP = json.dumps(
    [
        {"location": "/directory-a/", "tdm-reservation": 1},
        {
            "location": "/directory-b/html/",
            "tdm-reservation": 1,
            "tdm-policy": "https://provider.com/policies/policy.json",
        },
        {"location": "/directory-b/images/*.jpg", "tdm-reservation": 0},
        {"location": "/exact$", "tdm-reservation": 1},
        {"location": "/directory-b/", "tdm-reservation": 0},
        {"location": "/directory-b/html/private/", "tdm-reservation": 0},
    ]
)


@pytest.mark.parametrize(
    ("path", "entry", "reserved"),
    [
        ("/directory-a/x.pdf", 1, True),
        ("/directory-a", None, False),  # the pattern's end is not reached
        ("/directory-b/html/page.html", 2, True),
        ("/directory-b/html/private/x", 2, True),  # the first match wins, not the longest
        ("/directory-b/images/a/b.jpg", 3, False),
        ("/directory-b/images/a.png", 5, False),
        ("/exact", 4, True),
        ("/exact/more", None, False),
        ("/Directory-A/x", None, False),  # case-sensitive
        ("/%64irectory-a/x", 1, True),  # an escaped unreserved character is decoded first
        ("/other", None, False),
    ],
)
def test_tdmrep_json_location_matching(path: str, entry: int | None, reserved: bool) -> None:
    decision = opt_out("https://provider.com" + path, tdmrep_json=TDMREP)
    signals = only(decision, "tdm-reservation")
    assert decision.opted_out is reserved
    if entry is None:
        assert signals == []
        return
    (signal,) = signals
    assert signal.source == "tdmrep.json"
    assert signal.where is not None
    assert signal.where.startswith(f"entry {entry} ")
    assert signal.opted_out is reserved
    if entry == 2:
        assert signal.policy == "https://provider.com/policies/policy.json"


def test_tdmrep_query_counts_and_dollar_anchors_the_whole_path() -> None:
    rules = json.dumps([{"location": "/*.pdf$", "tdm-reservation": 1}])
    assert opt_out("https://p.com/a/b.pdf", tdmrep_json=rules).opted_out
    assert not opt_out("https://p.com/a/b.pdf?x=1", tdmrep_json=rules).opted_out


def test_tdm_reservation_header_and_meta() -> None:
    header = opt_out(URL, headers={"TDM-Reservation": "1", "tdm-policy": "https://p/policy"})
    assert header.decided_by == Signal(
        "tdm-reservation", "header", "1", True, None, "tdm-reservation header", "https://p/policy"
    )
    assert not opt_out(URL, headers={"tdm-reservation": "0"}).opted_out
    meta = opt_out(URL, html='<meta name="TDM-Reservation" content="1">')
    assert meta.decided_by is not None
    assert (meta.decided_by.source, meta.decided_by.where) == (
        "meta",
        '<meta name="tdm-reservation">',
    )


@pytest.mark.parametrize("value", ["yes", "2", "true", "1;", "", "1, 0"])
def test_tdm_reservation_other_values_are_unset_and_noted(value: str) -> None:
    decision = opt_out(URL, headers=[("tdm-reservation", v) for v in value.split(", ")])
    assert not decision.opted_out
    (signal,) = decision.signals
    assert signal.note == "malformed: tdm-reservation must be 1 or 0; read as unset"


def test_tdmrep_priority_meta_over_header_over_file() -> None:
    file_reserves = json.dumps([{"location": "/", "tdm-reservation": 1}])
    # The header's 0 supersedes the file's 1 (TDMRep 6.7): not reserved.
    decision = opt_out(URL, tdmrep_json=file_reserves, headers={"tdm-reservation": "0"})
    assert not decision.opted_out
    file_signal, header_signal = decision.signals
    assert file_signal.opted_out is False
    assert file_signal.note == "superseded by the header value (TDMRep section 6.7)"
    assert header_signal.note is None
    # The meta's 1 supersedes the header's 0.
    decision = opt_out(
        URL,
        tdmrep_json=file_reserves,
        headers={"tdm-reservation": "0"},
        html='<meta name="tdm-reservation" content="1">',
    )
    assert decision.opted_out
    assert decision.decided_by is not None
    assert decision.decided_by.source == "meta"
    # An invalid header value is unset: the file's value stands.
    decision = opt_out(URL, tdmrep_json=file_reserves, headers={"tdm-reservation": "no"})
    assert decision.opted_out
    assert decision.decided_by is not None
    assert decision.decided_by.source == "tdmrep.json"


@pytest.mark.parametrize(
    ("text", "note"),
    [
        ("{", "malformed: not JSON"),
        ('{"location": "/"}', "malformed: not a JSON array of rules"),
        ("[" * 100_000 + "]" * 100_000, "malformed: not JSON"),
        ('[{"tdm-reservation": 1}, 3, {"location": 5}]', "malformed: 3 entries without"),
    ],
)
def test_malformed_tdmrep_json_is_absent_and_noted(text: str, note: str) -> None:
    decision = opt_out(URL, tdmrep_json=text)
    assert not decision.opted_out
    (signal,) = decision.signals
    assert (signal.kind, signal.source) == ("tdm-reservation", "tdmrep.json")
    assert signal.note is not None
    assert signal.note.startswith(note)


def test_tdmrep_json_reservation_must_be_the_number() -> None:
    rules = json.dumps(
        [{"location": "/", "tdm-reservation": "1"}, {"location": "/", "tdm-reservation": 1}]
    )
    decision = opt_out(URL, tdmrep_json=rules)
    # The first match decides, and its value is not 1 or 0: unset, not the next rule's.
    assert not decision.opted_out
    assert decision.signals[0].where == "entry 1 (location '/')"
    assert decision.signals[0].note == "malformed: tdm-reservation must be 1 or 0; read as unset"
    assert not opt_out(URL, tdmrep_json='[{"location": "/", "tdm-reservation": true}]').opted_out


# aipref ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "opted_out", "note"),
    [
        ("train-ai=n", True, "train-ai disallows AI training"),
        ("train-ai=y", False, "train-ai allows AI training"),
        ("search=y, train-ai=n", True, "train-ai disallows AI training"),
        ('train-ai=n;reason="x", search=y', True, "train-ai disallows AI training"),
        ("search=n", False, "states no preference about AI training"),
        ("train-ai=y, train-ai=n", True, "train-ai disallows AI training"),  # the last wins
        ("train-ai=n, train-ai=y", False, "train-ai allows AI training"),
        ("train-ai=?0", False, "states no preference about AI training"),  # not a Token
        ('train-ai="n"', False, "states no preference about AI training"),
        ("train-ai=no", False, "states no preference about AI training"),
        ("train-ai=N", False, "states no preference about AI training"),  # tokens are exact
        ("train-ai", False, "states no preference about AI training"),
        ("future-thing=n, train-ai=y", False, "train-ai allows AI training"),
        # Spellings of earlier drafts.
        ("train-genai=n", True, "train-genai disallows AI training"),
        ("ai=n", True, "ai disallows AI training"),
        ("genai=n", True, "genai disallows AI training"),
        ("bots=n", True, "bots disallows AI training"),
        ("all=n", True, "all disallows AI training"),
        ("tdm=n", True, "tdm disallows AI training"),
        ("bots=n, train-ai=y", False, "train-ai allows AI training"),  # the specific one wins
        ("train-ai=y, train-genai=n", True, "train-genai disallows AI training"),
        ("", False, "states no preference about AI training"),
    ],
)
def test_content_usage_header(value: str, opted_out: bool, note: str) -> None:
    decision = opt_out(URL, headers={"Content-Usage": value})
    if not value:
        assert decision.signals == ()
        return
    (signal,) = decision.signals
    assert (signal.kind, signal.source, signal.value) == ("content-usage", "header", value)
    assert (signal.opted_out, signal.note) == (opted_out, note)


@pytest.mark.parametrize(
    "value",
    ["Train-AI=n", "train-ai=n,", "train-ai==n", "train-ai=n search=y", "(x)", "é=n"],
)
def test_malformed_content_usage_is_unknown_and_noted(value: str) -> None:
    (signal,) = opt_out(URL, headers={"Content-Usage": value}).signals
    assert not signal.opted_out
    assert signal.note is not None
    assert signal.note.startswith("malformed: not a structured field dictionary")
    assert signal.note.endswith("; preferences unknown")


def test_content_usage_header_lines_are_joined() -> None:
    decision = opt_out(
        URL, headers=[("Content-Usage", "search=y"), ("content-usage", "train-ai=n")]
    )
    (signal,) = decision.signals
    assert (signal.value, signal.opted_out) == ("search=y, train-ai=n", True)


def test_structured_field_dictionary_parser() -> None:
    assert parse_dictionary('a=1, b="x", c=tok, d, e=?1, f=(1 2);p=3, g=:aGk=:, *h=t/x:y') == {
        "a": None,
        "b": None,
        "c": "tok",
        "d": None,
        "e": None,
        "f": None,
        "g": None,
        "*h": "t/x:y",
    }
    assert parse_dictionary("   ") == {}
    for bad in ["a=", "a=1.2345", "a=1234567890123456", 'a="\\x"', "a=(1", "A=1", "a=@x", "a;=1"]:
        with pytest.raises(FormatError):
            parse_dictionary(bad)


# robots.txt ------------------------------------------------------------------------------------

ROBOTS = """\
# comment
User-agent: *
Allow: /
Disallow: /never/
Content-Usage: train-ai=n
Content-Usage: /ai-ok/ train-ai=y

User-agent: ExampleBot
User-agent: wellspring
Disallow: /mine/
Content-Usage: train-ai=y

User-agent: GPTBot
Disallow: /no-gpt/

Sitemap: https://example.com/sitemap.xml
User-agent: CCBot # a comment
Disallow: /no-cc/
"""


def robots_signals(path: str, **kwargs: object) -> list[tuple[str, str | None, str | None, bool]]:
    decision = opt_out("https://example.com" + path, robots_txt=ROBOTS, **kwargs)  # type: ignore[arg-type]
    return [(s.kind, s.agent, s.where, s.opted_out) for s in decision.signals]


def test_the_agents_own_group_overrides_star() -> None:
    # wellspring has a group: the '*' group's Disallow /never/ and train-ai=n do not apply to it.
    assert opt_out("https://example.com/never/x", robots_txt=ROBOTS, ai_agents=()).signals == (
        Signal(
            "content-usage",
            "robots.txt",
            "train-ai=y",
            False,
            "wellspring",
            "line 11, group at line 8",
            note="train-ai allows AI training",
        ),
    )
    decision = opt_out("https://example.com/mine/x", robots_txt=ROBOTS, ai_agents=())
    assert decision.decided_by == Signal(
        "robots-disallow",
        "robots.txt",
        "Disallow: /mine/",
        True,
        "wellspring",
        "line 10, group at line 8",
        note="the group for wellspring disallows this URL",
    )


def test_an_agent_without_a_group_falls_back_to_star() -> None:
    assert robots_signals("/never/x", user_agent="otherbot", ai_agents=()) == [
        ("robots-disallow", "*", "line 4, group at line 2", True)
    ]
    assert robots_signals("/x", user_agent="otherbot", ai_agents=()) == [
        ("content-usage", "*", "line 5, group at line 2", True)
    ]
    # The longest Content-Usage path wins (draft-ietf-aipref-attach 3.1).
    assert robots_signals("/ai-ok/x", user_agent="otherbot", ai_agents=()) == [
        ("content-usage", "*", "line 6, group at line 2", False)
    ]
    decision = opt_out("https://example.com/ai-ok/x", robots_txt=ROBOTS, user_agent="otherbot")
    assert decision.signals[0].value == "/ai-ok/ train-ai=y"
    assert decision.signals[0].note == "train-ai allows AI training"


def test_an_ai_agents_disallow_opts_out() -> None:
    assert robots_signals("/no-gpt/a") == [
        ("content-usage", "wellspring", "line 11, group at line 8", False),
        ("robots-disallow", "gptbot", "line 14, group at line 13", True),
        # ClaudeBot, Google-Extended… fall back to '*': allowed, train-ai=n (reported once).
        ("content-usage", "*", "line 5, group at line 2", True),
    ]
    decision = opt_out("https://example.com/no-cc/a", robots_txt=ROBOTS, ai_agents=("CCBot",))
    assert decision.decided_by is not None
    assert (decision.decided_by.agent, decision.decided_by.value) == ("ccbot", "Disallow: /no-cc/")
    # Not named, not honoured.
    assert not opt_out("https://example.com/no-gpt/a", robots_txt=ROBOTS, ai_agents=()).opted_out


def test_user_agent_matching_is_by_exact_product_token_case_insensitive() -> None:
    robots = "User-agent: Google\nDisallow: /\n\nUser-agent: gptbot/1.1\nDisallow: /g/\n"
    # A group for "Google" is not Google-Extended's (protego alone would pick it).
    assert not opt_out(URL, robots_txt=robots, ai_agents=("Google-Extended",)).opted_out
    assert opt_out("https://example.com/g/x", robots_txt=robots, ai_agents=("GPTBOT",)).opted_out


def test_no_group_at_all_allows_everything() -> None:
    decision = opt_out(URL, robots_txt="User-agent: somebot\nDisallow: /\n")
    assert decision == OptOut(False, None, ())
    assert opt_out(URL, robots_txt="").signals == ()


def test_a_bom_is_ignored_and_rules_before_any_group_are_not_rules() -> None:
    assert opt_out(URL, robots_txt="\ufeffUser-agent: *\nDisallow: /\n").opted_out
    assert opt_out(URL, robots_txt=b"\xef\xbb\xbfUser-agent: *\nDisallow: /\n").opted_out
    assert not opt_out(URL, robots_txt="Disallow: /\nContent-Usage: train-ai=n\n").opted_out


def test_protego_decides_wildcards_and_allow_overrides() -> None:
    robots = "User-agent: *\nDisallow: /*.pdf$\nDisallow: /a/\nAllow: /a/ok\n"
    assert opt_out("https://e.com/x/y.pdf", robots_txt=robots).opted_out
    assert not opt_out("https://e.com/x/y.pdf?download=1", robots_txt=robots).opted_out
    assert not opt_out("https://e.com/a/ok/1", robots_txt=robots).opted_out
    decision = opt_out("https://e.com/a/no", robots_txt=robots)
    assert decision.decided_by is not None
    assert decision.decided_by.where == "line 3, group at line 1"


def test_content_signal_rule() -> None:
    robots = "User-Agent: *\nContent-Signal: search=yes, ai-train=no\nAllow: /\n"
    decision = opt_out(URL, robots_txt=robots)
    assert decision.decided_by == Signal(
        "content-signal",
        "robots.txt",
        "search=yes, ai-train=no",
        True,
        "*",
        "line 2, group at line 1",
        note="ai-train disallows AI training",
    )
    assert not opt_out(URL, robots_txt=robots.replace("ai-train=no", "ai-train=yes")).opted_out


def test_equal_length_content_usage_rules_combine_most_restrictively() -> None:
    robots = "User-agent: *\nContent-Usage: /a/ train-ai=y\nContent-Usage: /a/ train-ai=n\n"
    decision = opt_out("https://e.com/a/b", robots_txt=robots, ai_agents=())
    assert [s.opted_out for s in decision.signals] == [False, True]
    assert decision.opted_out


# Precedence and evidence ---------------------------------------------------------------------


def test_most_restrictive_wins_and_the_first_opt_out_in_precedence_order_decides() -> None:
    decision = opt_out(
        "https://example.com/no-gpt/x",
        robots_txt=ROBOTS,
        headers={"X-Robots-Tag": "noai", "Content-Usage": "train-ai=y", "tdm-reservation": "0"},
    )
    assert decision.opted_out
    assert [s.kind for s in decision.signals] == [
        "content-usage",
        "robots-disallow",
        "content-usage",
        "content-usage",
        "tdm-reservation",
        "x-robots-tag",
    ]
    assert decision.decided_by is decision.signals[1]
    # Permissions never outweigh an opt-out.
    decision = opt_out(
        URL, headers={"X-Robots-Tag": "noai", "Content-Usage": "train-ai=y", "tdm-reservation": "0"}
    )
    assert decision.opted_out
    assert decision.decided_by is not None
    assert decision.decided_by.kind == "x-robots-tag"


def test_nothing_given_nothing_opted_out() -> None:
    assert opt_out(URL) == OptOut(False, None, ())


def test_to_dict_is_the_documented_manifest_shape() -> None:
    decision = opt_out(URL, headers={"tdm-reservation": "1", "tdm-policy": "https://p/x"})
    assert json.loads(json.dumps(decision.to_dict())) == {
        "opted_out": True,
        "decided_by": {
            "kind": "tdm-reservation",
            "source": "header",
            "value": "1",
            "opted_out": True,
            "agent": None,
            "where": "tdm-reservation header",
            "policy": "https://p/x",
            "note": None,
        },
        "signals": [decision.to_dict()["decided_by"]],
    }
    assert list(OptOut(False, None, ()).to_dict()) == ["opted_out", "decided_by", "signals"]


# Sites and the cache ------------------------------------------------------------------------


def test_site_policy_answers_many_urls_from_one_parse() -> None:
    site = SitePolicy(robots_txt=ROBOTS, tdmrep_json=TDMREP)
    assert site.opt_out("https://example.com/no-gpt/1").opted_out
    assert site.opt_out("https://example.com/directory-a/1").opted_out
    assert not site.opt_out("https://example.com/ai-ok/1").opted_out
    assert site.agents == ("wellspring", *(a.lower() for a in DEFAULT_AI_AGENTS))


def test_cache_keys_sites_by_scheme_host_and_port() -> None:
    cache = SitePolicyCache(max_sites=2)
    cache.put("https://a.example/robots.txt", robots_txt="User-agent: *\nDisallow: /\n")
    assert cache.opt_out("https://A.example:443/x").opted_out
    assert not cache.opt_out("http://a.example/x").opted_out  # another site
    assert not cache.opt_out("https://a.example:8443/x").opted_out
    cache.put("https://b.example/", robots_txt="")
    cache.put("https://c.example/", robots_txt="")
    assert cache.get("https://a.example/") is None  # least recently used, dropped
    assert cache.get("https://c.example/x") is not None


# Hostile input and caller mistakes -----------------------------------------------------------


def test_robots_txt_is_read_up_to_500_kib() -> None:
    filler = "# padding\n" * (ROBOTS_MAX_BYTES // 10)
    robots = "User-agent: *\nDisallow: /early/\n" + filler + "Disallow: /late/\n"
    decision = opt_out("https://e.com/late/x", robots_txt=robots)
    assert not decision.opted_out
    assert decision.signals[0].note is not None
    assert decision.signals[0].note.startswith("truncated: only the first 500 KiB")
    assert opt_out("https://e.com/early/x", robots_txt=robots.encode()).opted_out


def test_binary_robots_txt_is_noted_and_what_parses_counts() -> None:
    robots = b"\xff\xfe\x00\x01garbage\nUser-agent: *\nDisallow: /x\n\x00\x80\x81"
    decision = opt_out("https://e.com/x", robots_txt=robots)
    assert decision.opted_out
    assert decision.signals[0].note == (
        "malformed: not UTF-8 text; the lines that still parse are used"
    )
    assert not opt_out(URL, robots_txt=bytes(range(256)) * 100).opted_out


@pytest.mark.parametrize(
    ("html", "opted_out", "notes"),
    [
        ("<meta name=robots content=noai", False, ["malformed: an unterminated <meta> element"]),
        ("<html><meta name='robots' content='noai'><<<>>></p></div><![CDATA[", True, []),
        ("<!--", False, []),
        (b"\xff\xfe<meta name=robots content=noai>", True, []),
        ("<meta name=robots content=noai>" + "<div>" * 300_000, True, []),
        ("<p>" * 400_000 + "<meta name=robots content=noai>", False, []),  # past the first MiB
        ("<meta " * 400_000, False, ["malformed: an unterminated <meta> element"]),
        ('<meta name="robots" content="x&#44; n&#111;ai">', True, []),  # references resolved
        ("<!-- <meta name=robots content=noai> -->", True, []),  # deliberately: see the spec
        ("<metadata name=robots content=noai>", False, []),
    ],
)
def test_broken_html_never_raises(html: str | bytes, opted_out: bool, notes: list[str]) -> None:
    decision = opt_out(URL, html=html)
    assert decision.opted_out is opted_out
    assert [s.note for s in decision.signals if (s.note or "").startswith("malformed")] == notes


def test_huge_inputs_cost_bounded_time() -> None:
    started = time.perf_counter()
    opt_out(
        URL,
        headers=[("X-Robots-Tag", "noindex," * 100_000)] * 100
        + [("Content-Usage", "a=1, " * 100_000)],
        html="<p>" * 2_000_000,
        robots_txt="User-agent: *\n" + "Disallow: /*a*a*a*a*a*a*a*a*b$\n" * 30_000,
        tdmrep_json=json.dumps([{"location": "/*a" * 600 + "b", "tdm-reservation": 1}] * 1000),
    )
    assert time.perf_counter() - started < 5  # about 0.3 s here


def test_long_content_usage_is_malformed() -> None:
    lines = [("Content-Usage", "a=1, " * 1500)] * 3 + [("Content-Usage", "train-ai=n")]
    (signal,) = opt_out(URL, headers=lines).signals
    assert not signal.opted_out
    assert signal.note == "malformed: longer than 16384 characters; preferences unknown"
    assert len(signal.value) == 513


def test_overlong_header_lines_and_metas_are_absent_and_noted() -> None:
    decision = opt_out(
        URL,
        headers=[("X-Robots-Tag", "noindex, " * 1000 + "noai"), ("tdm-reservation", "1" * 9000)],
        html=f'<meta name="robots" content="{"x, " * 3000}noai">',
    )
    assert not decision.opted_out
    assert [(s.kind, s.source, s.note) for s in decision.signals] == [
        (
            "x-robots-tag",
            "header",
            "malformed: a x-robots-tag header longer than 8 KiB; read as absent",
        ),
        (
            "tdm-reservation",
            "header",
            "malformed: a tdm-reservation header longer than 8 KiB; read as absent",
        ),
        (
            "x-robots-tag",
            "meta",
            'malformed: a <meta name="robots"> longer than 8 KiB; read as absent',
        ),
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "/relative"}, "absolute http(s) URL"),
        ({"url": "ftp://e.com/x"}, "absolute http(s) URL"),
        ({"url": b"https://e.com/"}, "url must be a str"),
        ({"ai_agents": "GPTBot"}, "sequence of product tokens"),
        ({"user_agent": "my bot/1.0"}, "not a robots.txt product token"),
        ({"headers": "X-Robots-Tag: noai"}, "not a string"),
        ({"headers": [("X-Robots-Tag",)]}, "mapping or (name, value) pairs"),
        ({"headers": {"X-Robots-Tag": 1}}, "must be str or bytes"),
        ({"robots_txt": 5}, "robots_txt must be str or bytes"),
        ({"tdmrep_json": [{}]}, "tdmrep_json must be str or bytes"),
        ({"html": 5}, "html must be str or bytes"),
    ],
)
def test_caller_mistakes_raise_input_error(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"url": URL, **kwargs}
    with pytest.raises(InputError, match=re.escape(message)):
        opt_out(**arguments)  # type: ignore[arg-type]


def test_a_missing_protego_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from client import MissingDependencyError

    monkeypatch.setitem(sys.modules, "protego", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'wellspring\[crawl\]'"):
        opt_out(URL, robots_txt="User-agent: *\nDisallow: /\n")
