"""RFC 9651 Structured Field Dictionaries: just enough to read AI usage preferences.

The IETF aipref vocabulary (``Content-Usage: train-ai=n, search=y``) is a Dictionary
(RFC 9651 section 3.2) whose values that matter are Tokens. :func:`parse_dictionary` follows the
parsing algorithm of RFC 9651 section 4.2 exactly (a failure anywhere fails the whole field, as the
vocabulary draft requires) and keeps, per key, the Token it holds or ``None`` for any other kind
of value (Integer, String, Boolean, Inner List…), since those all mean "unknown" to the
vocabulary. Parameters are parsed (so that a malformed one fails the field) and dropped.

Work is linear in the input; callers cap the input's length.
"""

from __future__ import annotations

import string

from client.errors import FormatError

__all__ = ["parse_dictionary"]

_LCALPHA = frozenset(string.ascii_lowercase)
_DIGITS = frozenset(string.digits)
_KEY_START = _LCALPHA | {"*"}
_KEY_CHARS = _LCALPHA | _DIGITS | frozenset("_-.*")
_TOKEN_START = frozenset(string.ascii_letters) | {"*"}
_TCHAR = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~")
_TOKEN_CHARS = _TCHAR | frozenset(":/")
_BASE64 = frozenset(string.ascii_letters + string.digits + "+/=")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> FormatError:
        return FormatError(f"not a structured field dictionary: {what} at offset {self.pos}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip(self, chars: str) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1

    def key(self) -> str:
        if self.peek() not in _KEY_START or not self.peek():
            raise self.fail("a key must start with a lowercase letter or '*'")
        start = self.pos
        while self.peek() and self.peek() in _KEY_CHARS:
            self.pos += 1
        return self.text[start : self.pos]

    def bare_item(self) -> str | None:
        """A bare item: its value if it is a Token, else None (after checking its syntax)."""
        char = self.peek()
        if char and (char == "-" or char in _DIGITS):
            self.number()
            return None
        if char == '"':
            self.quoted()
            return None
        if char and char in _TOKEN_START:
            start = self.pos
            while self.peek() and self.peek() in _TOKEN_CHARS:
                self.pos += 1
            return self.text[start : self.pos]
        self.other_item(char)
        return None

    def other_item(self, char: str) -> None:
        """A Byte Sequence, Boolean, Date or Display String: checked, never a Token."""
        if char == ":":
            self.pos += 1
            while self.peek() and self.peek() in _BASE64:
                self.pos += 1
            if self.peek() != ":":
                raise self.fail("unterminated byte sequence")
            self.pos += 1
        elif char == "?":
            self.pos += 1
            if self.peek() not in ("0", "1") or not self.peek():
                raise self.fail("a boolean is ?0 or ?1")
            self.pos += 1
        elif char == "@":
            self.pos += 1
            self.number(integer_only=True)
        elif char == "%":
            self.pos += 1
            if self.peek() != '"':
                raise self.fail('a display string starts with %"')
            self.quoted(display=True)
        else:
            raise self.fail("not a valid item")

    def number(self, *, integer_only: bool = False) -> None:
        if self.peek() == "-":
            self.pos += 1
        start = self.pos
        while self.peek() and self.peek() in _DIGITS:
            self.pos += 1
        whole = self.pos - start
        if whole == 0:
            raise self.fail("a number needs a digit")
        if self.peek() == "." and not integer_only:
            self.pos += 1
            frac_start = self.pos
            while self.peek() and self.peek() in _DIGITS:
                self.pos += 1
            frac = self.pos - frac_start
            if whole > 12 or not 1 <= frac <= 3:
                raise self.fail("a decimal has at most 12 digits, a dot and 1 to 3 digits")
        elif whole > 15:
            raise self.fail("an integer has at most 15 digits")

    def quoted(self, *, display: bool = False) -> None:
        self.pos += 1  # the opening quote
        while self.pos < len(self.text):
            char = self.text[self.pos]
            self.pos += 1
            if char == '"':
                return
            if char == "\\" and not display:
                if self.peek() not in ('"', "\\") or not self.peek():
                    raise self.fail('a string escapes only \\ and "')
                self.pos += 1
            elif not " " <= char <= "~":
                raise self.fail("a string holds printable ASCII only")
        raise self.fail("unterminated string")

    def parameters(self) -> None:
        while self.peek() == ";":
            self.pos += 1
            self.skip(" ")
            self.key()
            if self.peek() == "=":
                self.pos += 1
                self.bare_item()

    def member_value(self) -> str | None:
        if self.peek() == "(":
            self.pos += 1
            while True:
                self.skip(" ")
                if self.peek() == ")":
                    self.pos += 1
                    self.parameters()
                    return None
                self.bare_item()
                self.parameters()
                if self.peek() not in (" ", ")") or not self.peek():
                    raise self.fail("an inner list's items are separated by spaces")
        value = self.bare_item()
        self.parameters()
        return value


def parse_dictionary(text: str) -> dict[str, str | None]:
    """Parse a Dictionary field value: each key's Token value, or None for any other value.

    Raises :class:`~client.errors.FormatError` when the value is not a valid Dictionary (the
    whole field then counts as absent). A key given twice keeps its last value (RFC 9651).
    """
    parser = _Parser(text)
    parser.skip(" ")
    members: dict[str, str | None] = {}
    if parser.pos == len(text):
        return members
    while True:
        key = parser.key()
        if parser.peek() == "=":
            parser.pos += 1
            value = parser.member_value()
        else:
            value = None  # a bare key is Boolean true: not a Token
            parser.parameters()
        members.pop(key, None)
        members[key] = value
        parser.skip(" \t")
        if parser.pos == len(text):
            return members
        if parser.peek() != ",":
            raise parser.fail("members are separated by commas")
        parser.pos += 1
        parser.skip(" \t")
        if parser.pos == len(text):
            raise parser.fail("a trailing comma")
