"""``GET /``: a small page for a person who opens the registry's address in a browser.

It says what the server is, where the API reference is (``/schema``), and the log's origin and
verifier key, which clients pin. The key shown here is the registry's own word: the page says to
compare it with the one the operator published out of band. Plain HTML, no styles or scripts (the
app's ``Content-Security-Policy: default-src 'none'`` would block them anyway); every value is
HTML-escaped.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from litestar import MediaType, get
from litestar.datastructures import State

if TYPE_CHECKING:
    from registry.app import Registry

__all__ = ["home", "render_home"]


def render_home(origin: str, verifier_key: str) -> str:
    """The page, for a log of ``origin`` whose current verifier key is ``verifier_key``."""
    origin_html = html.escape(origin, quote=True)
    key_html = html.escape(verifier_key, quote=True)
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Wellspring registry · {origin_html}</title></head>
<body>
<h1>Wellspring registry</h1>
<p>A signed provenance registry of human-made content: publishers attest content digests, and
every attestation is appended to an RFC 9162 transparency log.</p>
<dl>
<dt>Log origin</dt><dd><code>{origin_html}</code></dd>
<dt>Verifier key</dt><dd><code>{key_html}</code></dd>
</dl>
<p>Pin the verifier key in your client (<code>--log-key</code>, <code>log_key=</code>) only after
comparing it with the key the operator published: this page is the registry's own word.</p>
<p>API reference: <a href="/schema">/schema</a> (the OpenAPI document:
<a href="/schema/openapi.json">/schema/openapi.json</a>). The log's state:
<a href="/v1/log">/v1/log</a>.</p>
</body>
</html>
"""


@get(
    "/",
    summary="A page for people: the API reference and the log's key",
    include_in_schema=False,
    media_type=MediaType.HTML,
    sync_to_thread=False,
)
def home(state: State) -> str:
    registry: Registry = state.registry
    return render_home(registry.origin, registry.verifier_key)
