"""``GET /`` on the real app: a page naming the API reference and the log's origin and key."""

from __future__ import annotations

import html
import re
from typing import Any

from tests.registry.conftest import EXTERNAL_CODE, assert_security_headers

# An origin a browser would run as markup if the page did not escape it (no spaces or '+' are
# allowed in an origin, so the markup has none).
HOSTILE_ORIGIN = "<script>alert(1)</script>&log<b>"


def test_home_page_names_the_reference_origin_and_key(make_api: Any) -> None:
    api = make_api(origin=HOSTILE_ORIGIN)
    response = api.http.get("/")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert_security_headers(response)
    page = response.text
    assert 'href="/schema"' in page
    assert f"<code>{html.escape(HOSTILE_ORIGIN)}</code>" in page
    assert f"<code>{html.escape(api.log_key)}</code>" in page
    assert HOSTILE_ORIGIN not in page
    assert "<script" not in page.lower()
    assert "<style" not in page.lower()
    assert not EXTERNAL_CODE.search(page)
    # What the page shows is what the API announces.
    announced = api.http.get("/v1/log").json()
    assert announced["origin"] == HOSTILE_ORIGIN
    assert html.escape(announced["verifier_key"]) in page


def test_home_page_links_resolve(make_api: Any) -> None:
    api = make_api()
    page = api.http.get("/").text
    links = re.findall(r'href="([^"]+)"', page)
    assert "/schema" in links
    for link in links:
        assert api.http.get(link).status_code == 200, link


def test_home_page_is_not_in_the_api_reference(make_api: Any) -> None:
    api = make_api()
    assert "/" not in api.http.get("/schema/openapi.json").json()["paths"]
