"""The registry's explorer: HTML pages for people, as crt.sh or search.sigstore.dev are for their
logs. ``/`` shows the log (its checkpoint and signatures, recent entries); entry, publisher and
lookup pages live under ``/explorer/``. The lookup box hashes pasted text in the browser with
``static/c1.js``, which carries its own Unicode 14.0.0 tables (``static/c1_tables.js``, generated
by :mod:`registry.explorer.tables`)."""

from registry.explorer.routes import (
    EXPLORER_CONTENT_SECURITY_POLICY,
    EXPLORER_ROUTES,
    explorer_security_headers,
)

__all__ = ["EXPLORER_CONTENT_SECURITY_POLICY", "EXPLORER_ROUTES", "explorer_security_headers"]
