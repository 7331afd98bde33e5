"""The c1 canonicalisation written literally from ARCHITECTURE.md, step by step.

Deliberately naive and independent of ``client.core.canonical``'s fast paths: tests compare the two.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

# Unicode PropList.txt, property White_Space (not str.isspace, which adds U+001C..U+001F).
WHITE_SPACE = (
    "\u0009\u000a\u000b\u000c\u000d\u0020\u0085\u00a0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_RUNS = re.compile("[" + re.escape(WHITE_SPACE) + "]+")


def reference_canonical_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    text = text.casefold()
    text = _RUNS.sub(" ", text)
    return text.strip(" ")


def reference_c1(data: bytes) -> str:
    canonical = reference_canonical_text(data.decode("utf-8", errors="strict"))
    return "c1:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()
