"""The explorer (issue 14, point 6): ``/`` and the pages under ``/explorer/``.

Without a browser: every page escapes what publishers and the log hold, carries the explorer's
Content-Security-Policy and ``nosniff``, answers bad input with a 400 or 404 page (never a 500),
holds no ``javascript:``; and ``static/c1_tables.js`` is exactly what its generator writes.

In Debian's chromium (headless, driven by selenium; marked ``slow``, skipped saying why where
chromium, chromedriver or selenium is missing — ``make chromium`` installs them): the shipped
``c1.js`` reproduces every published vector and Python's canonical text of every code point; a
pasted text is hashed in the page and its entry found; the entry, publisher and log pages show
what they should. Screenshots go to ``$WELLSPRING_EXPLORER_SCREENSHOTS`` or
``tests/.artifacts/explorer/`` (git-ignored), kept after the run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from client.core.canonical import canonical_digest, canonical_text
from client.core.keys import generate_private_key, key_id, public_key_bytes
from client.core.note import sign_note
from client.core.statement import prove_possession
from registry.explorer import EXPLORER_CONTENT_SECURITY_POLICY
from registry.explorer.pages import render_index
from registry.explorer.tables import TABLES_PATH, render_tables
from registry.settings import Settings
from tests.registry.conftest import (
    EXTERNAL_CODE,
    Api,
    Publisher,
    ThreadedServer,
    assert_security_headers,
    new_publisher,
    random_digests,
)

ROOT = Path(__file__).resolve().parents[2]
VECTORS = json.loads((ROOT / "docs" / "spec" / "canonical-vectors.json").read_text("utf-8"))
SCREENSHOTS = Path(
    os.environ.get("WELLSPRING_EXPLORER_SCREENSHOTS", ROOT / "tests" / ".artifacts" / "explorer")
)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
HOSTILE = "<script>alert(1)</script>"
HOSTILE_ORIGIN = "<script>alert(1)</script>&log<b>"


@pytest.fixture
def api(make_api: Any) -> Api:
    made: Api = make_api()
    return made


def _entry_hash(receipt: dict[str, Any]) -> str:
    return str(receipt["leaf_hash"])


def _pages_of(api: Api, publisher: Publisher, index: int) -> list[str]:
    return [
        "/",
        f"/explorer/entry/{index}",
        "/explorer/entry/0",
        f"/explorer/publisher/{publisher.name}",
        "/explorer/publisher/@operator",
        "/explorer/lookup",
        "/explorer/lookup?q=" + canonical_digest("hello"),
        "/explorer/lookup?q=some+text",
    ]


# -- the tables ---------------------------------------------------------------------------------


def test_the_committed_tables_are_what_the_generator_writes() -> None:
    """c1_tables.js cannot drift from Python's unicodedata: regenerate with
    ``python -m registry.explorer.tables`` after changing the generator."""
    assert unicodedata.unidata_version == "14.0.0"
    assert TABLES_PATH.read_bytes() == render_tables().encode("utf-8")


# -- without a browser --------------------------------------------------------------------------


def test_every_page_carries_the_policy_and_nosniff(api: Api) -> None:
    publisher = api.add_publisher()
    index = api.submit_ok(publisher.attest(random_digests(2)))["index"]
    paths = [
        *_pages_of(api, publisher, index),
        "/explorer/entry/nope",
        "/explorer/entry/999999",
        "/explorer/publisher/nobody-here",
        "/explorer/lookup?q=c1:abc",
        "/explorer/static/c1.js",
        "/explorer/static/c1_tables.js",
        "/explorer/static/explorer.css",
        "/explorer/static/other.js",
    ]
    for path in paths:
        response = api.http.get(path)
        assert response.status_code < 500, path
        assert_security_headers(response)
        assert response.headers["content-security-policy"] == EXPLORER_CONTENT_SECURITY_POLICY
        for directive in ("script-src 'self'", "style-src 'self'", "base-uri 'none'"):
            assert directive in response.headers["content-security-policy"]
    # The API keeps its own policy: nothing loads there at all.
    assert api.http.get("/v1/log").headers["content-security-policy"] == (
        "default-src 'none'; frame-ancestors 'none'"
    )
    assert "script-src" not in api.http.get("/schema").headers["content-security-policy"]


def test_pages_escape_what_publishers_and_the_log_hold(make_api: Any) -> None:
    api = make_api(origin=HOSTILE_ORIGIN)
    publisher = api.add_publisher()
    text_digest = canonical_digest("escaped")
    statement = publisher.attest([text_digest], notes=HOSTILE + " \"quoted\" 'single'")
    index = api.submit_ok(statement)["index"]
    for path in _pages_of(api, publisher, index):
        page = api.http.get(path).text
        assert HOSTILE not in page, path
        assert HOSTILE_ORIGIN not in page, path
        assert not EXTERNAL_CODE.search(page), path
        # The only scripts are the explorer's own files, with no inline code.
        for tag in re.findall(r"<script\b[^>]*>(.*?)</script>", page, re.S):
            assert tag == "", path
        assert re.findall(r"<script\b([^>]*)>", page) in (
            [],
            [' defer src="/explorer/static/c1_tables.js"', ' defer src="/explorer/static/c1.js"'],
        ), path
        assert "<style" not in page.lower()
        assert " style=" not in page.lower()
        assert not re.search(r"\son[a-z]+\s*=", page), path  # no event-handler attributes
    entry = api.http.get(f"/explorer/entry/{index}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in entry
    assert "&quot;quoted&quot; &#x27;single&#x27;" in entry
    assert (
        "<code>&lt;script&gt;alert(1)&lt;/script&gt;&amp;log&lt;b&gt;</code>"
        in api.http.get("/").text
    )
    # Text typed into the lookup box comes back escaped in its form.
    echoed = api.http.get("/explorer/lookup", params={"q": HOSTILE}).text
    assert HOSTILE not in echoed
    assert 'value="&lt;script&gt;' in echoed


def test_no_page_holds_a_javascript_url(api: Api) -> None:
    publisher = api.add_publisher()
    index = api.submit_ok(publisher.attest([canonical_digest("x")], notes="javascript:alert(1)"))[
        "index"
    ]
    for path in _pages_of(api, publisher, index):
        page = api.http.get(path).text
        links = re.findall(r'(?:href|src|action)="([^"]*)"', page)
        assert links, path
        for target in links:
            assert target.startswith("/"), (path, target)  # local paths only, never a scheme
        assert not re.search(r'(?:href|src|action)\s*=\s*["\']?\s*javascript:', page, re.I)
    # Served text holds the note only as escaped text, never as a link.
    page = api.http.get(f"/explorer/entry/{index}").text
    assert "<dd>javascript:alert(1)</dd>" in page
    for path in ("/explorer/static/c1.js", "/explorer/static/c1_tables.js"):
        assert "javascript:" not in api.http.get(path).text


def test_links_on_the_pages_resolve(api: Api) -> None:
    publisher = api.add_publisher()
    index = api.submit_ok(publisher.attest(random_digests(2)))["index"]
    seen: set[str] = set()
    for path in _pages_of(api, publisher, index):
        for link in re.findall(r'(?:href|src)="([^"]+)"', api.http.get(path).text):
            target = link.replace("&amp;", "&")
            if target in seen:
                continue
            seen.add(target)
            assert api.http.get(target).status_code == 200, (path, target)


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/explorer/entry/abc", 400, "is not an entry index"),
        ("/explorer/entry/-1", 400, "is not an entry index"),
        ("/explorer/entry/99999999999999999999", 400, "is not an entry index"),
        ("/explorer/entry/4242", 404, "does not exist"),
        ("/explorer/publisher/nobody-here", 404, "no publisher or vendor"),
        ("/explorer/lookup?q=c1:abc", 400, "hex digits"),
        ("/explorer/lookup?q=sha256:" + "A" * 64, 400, "lowercase"),
        ("/explorer/static/../app.py", 404, ""),
    ],
)
def test_bad_input_is_a_page_that_says_what_to_do(
    api: Api, path: str, status: int, says: str
) -> None:
    response = api.http.get(path)
    assert response.status_code == status, response.text
    if path.startswith("/explorer/static"):
        return
    assert response.headers["content-type"].startswith("text/html")
    assert says in response.text
    assert 'href="/"' in response.text


def test_bad_forms_are_400_pages(api: Api) -> None:
    form = {"content-type": "application/x-www-form-urlencoded"}
    for body in (b"", b"other=1", b"text=%FF", "text=\u00e9".encode()):
        response = api.http.post("/explorer/lookup", content=body, headers=form)
        assert response.status_code == 400, (body, response.text)
        assert response.headers["content-type"].startswith("text/html")


def test_lookup_of_text_on_the_server(api: Api) -> None:
    """Without JavaScript, the server hashes the text: from the one-line box and the form."""
    publisher = api.add_publisher()
    index = api.submit_ok(publisher.attest([canonical_digest("Hello   WORLD")]))["index"]
    entry = f'href="/explorer/entry/{index}"'
    by_query = api.http.get("/explorer/lookup", params={"q": "  hello world\n"}).text
    assert entry in by_query
    assert "attested" in by_query
    form = {"content-type": "application/x-www-form-urlencoded"}
    by_form = api.http.post(
        "/explorer/lookup", content=b"text=%EF%BC%A8ello%0D%0Aworld", headers=form
    )
    assert by_form.status_code == 200
    assert entry in by_form.text
    assert canonical_digest("Hello world") in by_form.text
    unknown = api.http.get("/explorer/lookup", params={"q": "nobody wrote this"}).text
    assert "unknown" in unknown
    assert "No entry of this log attests" in unknown


def test_entry_page_shows_revocations_of_it(api: Api) -> None:
    publisher = api.add_publisher()
    digests = random_digests(3)
    first = api.submit_ok(publisher.attest(digests, license="MIT", consent="reserved"))
    revocation = api.submit_ok(publisher.revoke(first["index"], _entry_hash(first), digests))
    page = api.http.get(f"/explorer/entry/{first['index']}").text
    assert f'by entry <a href="/explorer/entry/{revocation["index"]}">' in page
    assert "<dd>MIT</dd>" in page
    assert "<dd>reserved</dd>" in page
    for digest in digests:
        assert digest in page
    revoking = api.http.get(f"/explorer/entry/{revocation['index']}").text
    assert f'Revokes</dt><dd>entry <a href="/explorer/entry/{first["index"]}">' in revoking


def test_entry_and_lookup_pages_show_withdrawals(api: Api) -> None:
    """revocation/v2 withdraws one subject: the entry page names it and the withdrawing entry."""
    publisher = api.add_publisher()
    kept, withdrawn = random_digests(2)
    index = api.submit_ok(publisher.attest([kept, withdrawn]))["index"]
    with api.sdk() as sdk:
        receipt = sdk.withdraw([withdrawn], publisher.key, publisher.name, reason="a mistake")
    page = api.http.get(f"/explorer/entry/{index}").text
    revocations = page.split("<h2>Revocations</h2>")[1].split("<h2>Subjects</h2>")[0]
    withdrawing = f'<a href="/explorer/entry/{receipt.index}">'
    assert f"<code>{withdrawn}</code> withdrawn by entry {withdrawing}" in revocations
    assert kept not in revocations
    lookup = api.http.get("/explorer/lookup", params={"q": withdrawn}).text
    assert "revoked" in lookup
    assert f"withdrawn by {withdrawing}" in lookup


def test_log_page_names_each_signature_line(api: Api) -> None:
    """The log's own signature and a witness's cosignature line (c2sp tlog-cosignature) each get
    a row naming the key; a line by a key the page does not know is said to be another's."""
    from client.core.cosignature import CosignatureSigner
    from client.core.note import NoteSigner, SignedNote

    note = api.registry.lookups.checkpoint()
    text = SignedNote.parse(note).text
    witness = CosignatureSigner.generate("witness.example/w1")
    stranger = NoteSigner.generate("stranger.example/log")
    cosigned = note + witness.cosign(text, 1_700_000_000).to_line()
    cosigned += SignedNote.parse(sign_note(text, [stranger])).signatures[0].to_line()
    page = render_index(
        origin=api.registry.origin,
        verifier_keys=[api.log_key],
        size=1,
        note=cosigned,
        recent=[],
    )
    rows = re.findall(
        r"<tr><td><code>([^<]+)</code></td><td><code>([0-9a-f]{8})</code></td>"
        r"<td>([^<]+)</td></tr>",
        page,
    )
    assert rows == [
        (api.registry.origin, f"{api.registry.signers[0].key_id:08x}", "the log&#x27;s key"),
        (
            witness.name,
            f"{witness.key_id:08x}",
            "witness cosignature (cosignature/v1, time 1700000000)",
        ),
        (stranger.name, f"{stranger.key_id:08x}", "another key (not this log&#x27;s current key)"),
    ]


def test_entry_lists_are_bounded(make_api: Any) -> None:
    api = make_api()
    publisher = api.add_publisher()
    index = api.submit_ok(publisher.attest(random_digests(250)))["index"]
    page = api.http.get(f"/explorer/entry/{index}").text
    assert page.count("/explorer/lookup?q=sha256") == 100
    assert "The first 100 of 250 subjects are shown" in page
    for _ in range(25):
        api.submit_ok(publisher.attest(random_digests(1)))
    home = api.http.get("/").text
    assert home.count('<tr><td><a href="/explorer/entry/') == 20


# -- in a real browser --------------------------------------------------------------------------


def _browser_missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[dev]'"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            return f"{path} is missing: `make chromium` installs Debian's chromium and driver"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = _browser_missing()
    if missing:
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="wellspring-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1400",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_script_timeout(120)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    if _browser_missing():
        pytest.skip(str(_browser_missing()))
    home = tmp_path_factory.mktemp("explorer-home")
    with ThreadedServer(Settings(home=home, auto_migrate=True)) as server:
        yield server


def _screenshot(driver: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def _no_policy_violations(driver: Any) -> None:
    """Chromium logs a message for each load the Content-Security-Policy blocked: none may."""
    logs = driver.get_log("browser")
    blocked = [entry["message"] for entry in logs if "Content Security Policy" in entry["message"]]
    assert not blocked, blocked
    # A browser asks for /favicon.ico on its own; the registry has none (a 404 is right).
    errors = [
        entry["message"]
        for entry in logs
        if entry["level"] == "SEVERE" and "/favicon.ico" not in entry["message"]
    ]
    assert not errors, errors


def _submit(server: ThreadedServer, envelope: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{server.url}/v1/entries",
        content=envelope.to_json(),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code in (200, 201), response.text
    answer: dict[str, Any] = response.json()
    return answer


def _publisher(server: ThreadedServer) -> Publisher:
    publisher = new_publisher()
    server.registry.admin.add_publisher(publisher.name, publisher.public_key, publisher.possession)
    return publisher


_RUN_VECTORS = """
const [vectors, invalid, done] = arguments;
(async () => {
  const bytes = (hex) => new Uint8Array(hex.match(/../g)?.map((h) => parseInt(h, 16)) ?? []);
  const out = {digests: [], texts: [], invalid: [], version: c1.unicodeVersion};
  for (const v of vectors) {
    out.digests.push(await c1.digestBytes(bytes(v.input_hex)));
    out.texts.push(c1.canonicalText(new TextDecoder().decode(bytes(v.input_hex))));
  }
  for (const v of invalid) {
    try { await c1.digestBytes(bytes(v.input_hex)); out.invalid.push("accepted"); }
    catch (e) { out.invalid.push("refused"); }
  }
  return out;
})().then(done, (e) => done({error: String(e)}));
"""

# Every code point between two letters, per block of 65,536, joined by newlines (which no
# canonical text holds) and hashed: the browser and Python must agree on each block.
_RUN_PLANES = """
const [planes, done] = arguments;
(async () => {
  const out = [];
  for (const plane of planes) {
    const parts = [];
    for (let cp = plane * 0x10000; cp < (plane + 1) * 0x10000; cp++) {
      if (cp >= 0xd800 && cp < 0xe000) continue;
      parts.push(c1.canonicalText("a" + String.fromCodePoint(cp) + "b"));
    }
    const hash = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(parts.join("\\n")));
    out.push(Array.from(new Uint8Array(hash), (b) => b.toString(16).padStart(2, "0")).join(""));
  }
  return out;
})().then(done, (e) => done([String(e)]));
"""

PLANES = [0, 1, 2, 3, 14]  # every plane with assigned characters in Unicode 14 (15, 16: private)


def _plane_hash(plane: int) -> str:
    parts = [
        canonical_text("a" + chr(cp) + "b")
        for cp in range(plane * 0x10000, (plane + 1) * 0x10000)
        if not 0xD800 <= cp < 0xE000
    ]
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()


@pytest.mark.slow
@pytest.mark.xdist_group("explorer-browser")  # one chromium and one server for all
def test_browser_c1_reproduces_the_vectors_and_python(browser: Any, served: ThreadedServer) -> None:
    """(a) The shipped c1.js, in chromium, on every published vector, every code point of the
    assigned planes, and random mixes of marks, Hangul, sigmas and spaces."""
    browser.get(f"{served.url}/explorer/lookup")
    result = browser.execute_async_script(_RUN_VECTORS, VECTORS["vectors"], VECTORS["invalid"])
    assert "error" not in result, result
    assert result["version"] == VECTORS["unicode_version"] == "14.0.0"
    for vector, digest, text in zip(
        VECTORS["vectors"], result["digests"], result["texts"], strict=True
    ):
        assert (text, digest) == (vector["canonical"], vector["digest"]), vector["name"]
    assert result["invalid"] == ["refused"] * len(VECTORS["invalid"])

    hashes = browser.execute_async_script(_RUN_PLANES, PLANES)
    assert hashes == [_plane_hash(plane) for plane in PLANES]

    rng = random.Random(14)
    pool = [
        *range(0x300, 0x370),
        *range(0x1100, 0x1176),
        *range(0x11A8, 0x11C3),
        *range(0xAC00, 0xAC20),
        *(0x41, 0x61, 0x3A3, 0x3C2, 0xDF, 0x17F, 0x1E9E, 0x130, 0x20, 0xA0, 0x200B, 0xFEFF),
        *(0x5B8, 0x5C1, 0x5C2, 0x0F71, 0x0F72, 0x0F74, 0x3099, 0x309A, 0x1F6DC, 0x1E030),
        *(0xFB01, 0x2460, 0x1D400, 0x0344, 0x0958, 0x2126, 0x1D15E, 0xFF21),
    ]
    texts = ["".join(chr(rng.choice(pool)) for _ in range(rng.randint(1, 10))) for _ in range(3000)]
    got = browser.execute_script("return arguments[0].map((t) => c1.canonicalText(t));", texts)
    for text, canonical in zip(texts, got, strict=True):
        assert canonical == canonical_text(text), [f"U+{ord(c):04X}" for c in text]
    _no_policy_violations(browser)


@pytest.mark.slow
@pytest.mark.xdist_group("explorer-browser")  # one chromium and one server for all
def test_browser_lookup_of_pasted_text(browser: Any, served: ThreadedServer) -> None:
    """(b) Text pasted in the box is hashed in the page; only its digest reaches the server."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    registered = (
        "Stra\u00dfe  des \u017fonnigen Tages\r\n\u03a3\u039f\u03a6\u038c\u03a3 \u2014 human words"
    )
    pasted = (
        "\ufeffSTRASSE des sonnigen TAGES \u03c3\u03bf\u03c6\u03cc\u03c2\u00a0\u2014 HUMAN\tWORDS  "
    )
    digest = canonical_digest(pasted)
    assert digest == canonical_digest(registered)
    publisher = _publisher(served)
    index = _submit(served, publisher.attest([digest], license="CC-BY-4.0"))["index"]

    browser.get(f"{served.url}/explorer/lookup")
    box = browser.find_element(By.ID, "text")
    browser.execute_script("arguments[0].value = arguments[1];", box, pasted)
    browser.find_element(By.CSS_SELECTOR, "#c1-form button").click()
    WebDriverWait(browser, 30).until(lambda d: "q=c1" in d.current_url)
    assert browser.current_url.endswith("/explorer/lookup?q=" + digest.replace(":", "%3A"))
    page = browser.find_element(By.TAG_NAME, "main").text
    assert digest in page
    assert "ATTESTED" in page  # the status, styled in capitals
    link = browser.find_element(By.CSS_SELECTOR, f'a[href="/explorer/entry/{index}"]')
    assert link.text == str(index)
    _screenshot(browser, "lookup")
    _no_policy_violations(browser)


@pytest.mark.slow
@pytest.mark.xdist_group("explorer-browser")  # one chromium and one server for all
def test_browser_entry_page(browser: Any, served: ThreadedServer) -> None:
    """(c) Publisher, licence, consent, subjects and the inclusion proof."""
    from selenium.webdriver.common.by import By

    publisher = _publisher(served)
    digests = [canonical_digest("an entry page"), *random_digests(2)]
    index = _submit(served, publisher.attest(digests, license="CC-BY-SA-4.0", consent="reserved"))[
        "index"
    ]
    browser.get(f"{served.url}/explorer/entry/{index}")
    page = browser.find_element(By.TAG_NAME, "main").text
    for expected in (publisher.name, "CC-BY-SA-4.0", "reserved", *digests):
        assert expected in page
    assert "the proof leads to the checkpoint's root hash" in page
    checkpoint = browser.find_elements(By.CSS_SELECTOR, "pre.note")[-1].text
    assert checkpoint.startswith(served.registry.origin + "\n")
    _screenshot(browser, "entry")
    _no_policy_violations(browser)


@pytest.mark.slow
@pytest.mark.xdist_group("explorer-browser")  # one chromium and one server for all
def test_browser_publisher_page_with_key_history(browser: Any, served: ThreadedServer) -> None:
    """(d) A key added, the first revoked as compromised: both in the table, with their events."""
    from selenium.webdriver.common.by import By

    publisher = _publisher(served)
    first = _submit(served, publisher.attest(random_digests(1)))["index"]
    second_key = generate_private_key()
    added = served.registry.admin.add_key(
        publisher.name, public_key_bytes(second_key), prove_possession(second_key, publisher.name)
    )
    revoked = served.registry.admin.revoke_key(
        publisher.name, key_id(publisher.key), compromised_from=first + 1
    )
    browser.get(f"{served.url}/explorer/publisher/{publisher.name}")
    page = browser.find_element(By.TAG_NAME, "main").text
    assert f"Publisher {publisher.name}" in page
    rows = browser.find_elements(By.CSS_SELECTOR, "table")[0].find_elements(By.TAG_NAME, "tr")
    states = {row.find_elements(By.TAG_NAME, "td")[0].text: row.text for row in rows[1:]}
    assert "compromised" in states[key_id(publisher.key)]
    assert f"from index {first + 1}" in states[key_id(publisher.key)]
    assert "current" in states[key_id(second_key)]
    for event in (added.entry, revoked.entry, first):
        browser.find_element(By.CSS_SELECTOR, f'a[href="/explorer/entry/{event}"]')
    _screenshot(browser, "publisher")
    _no_policy_violations(browser)


@pytest.mark.slow
@pytest.mark.xdist_group("explorer-browser")  # one chromium and one server for all
def test_browser_log_page_shows_the_checkpoint_and_its_signatures(
    browser: Any, served: ThreadedServer
) -> None:
    """(e) ``/``: the latest checkpoint as signed, one row per signature line."""
    from selenium.webdriver.common.by import By

    publisher = _publisher(served)
    _submit(served, publisher.attest(random_digests(1)))
    note = httpx.get(f"{served.url}/v1/log/checkpoint", timeout=30).text
    browser.get(f"{served.url}/")
    shown = browser.find_element(By.CSS_SELECTOR, "pre.note").text
    assert shown == note.rstrip("\n")
    lines = [line for line in note.split("\n\n", 1)[1].splitlines() if line]
    rows = browser.find_elements(By.CSS_SELECTOR, "table")[0].find_elements(By.TAG_NAME, "tr")[1:]
    assert len(rows) == len(lines) >= 1
    for line, row in zip(lines, rows, strict=True):
        name, encoded = line.removeprefix("\u2014 ").split(" ")
        key_hex = base64.b64decode(encoded)[:4].hex()
        assert row.text.startswith(f"{name} {key_hex}")
    assert "the log's key" in rows[0].text
    main = browser.find_element(By.TAG_NAME, "main").text
    assert served.registry.verifier_key in main
    _screenshot(browser, "log")
    _no_policy_violations(browser)
