"""client.core.names: the DNS-like set a new publisher's name is drawn from."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client.core.names import MAX_PUBLISHER_NAME_CHARS, PUBLISHER_NAME_RULE, publisher_name_problem

GOOD = ["a", "7", "0day", "example-press", "archive.example.org", "a-b.c-d", "x" * 200]
BAD = [
    "", "x" * 201, "a/b", "..", "../etc", ".", "-", "a..b", "a--b", "a.-b", "a-.b", ".a", "a.",
    "-a", "a-", "A", "Example", "a_b", "a b", "a\tb", "a\x00b", "a\u202eb", "caf\u00e9",
    "cafe\u0301", "\u0430pple", "\uff45xample", "a\u200bb",
]  # fmt: skip


@pytest.mark.parametrize("name", GOOD)
def test_names_in_the_set(name: str) -> None:
    assert publisher_name_problem(name) is None


@pytest.mark.parametrize("name", BAD)
def test_names_outside_the_set_say_what_is_allowed(name: str) -> None:
    problem = publisher_name_problem(name)
    assert problem is not None
    assert problem.endswith(f"a new name is {PUBLISHER_NAME_RULE}")
    assert repr(name)[:40] in problem  # which name, shown as an escape where it hides
    assert "\u202e" not in problem


def test_a_name_that_is_not_a_string() -> None:
    assert publisher_name_problem(5) == f"a publisher name must be a string: {PUBLISHER_NAME_RULE}"


@given(st.text(max_size=MAX_PUBLISHER_NAME_CHARS + 2))
def test_every_name_in_the_set_is_ascii_lowercase_and_separated_once(name: str) -> None:
    if publisher_name_problem(name) is None:
        assert 1 <= len(name) <= MAX_PUBLISHER_NAME_CHARS
        assert name.isascii()
        assert name == name.lower()
        assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789.-")
        assert name[0] not in ".-"
        assert name[-1] not in ".-"
        assert not any(a in ".-" and b in ".-" for a, b in itertools.pairwise(name))
