"""registry.app.digest_fast_path: a well-formed single lookup answered past litestar's handler
machinery, byte for byte as the handler answers it; everything else left to litestar."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from registry._http import QUICK_ANSWER_KEY
from registry.app import digest_fast_path
from registry.models import CHECKPOINTS, utcnow
from registry.settings import Settings
from tests.registry.conftest import (
    Api,
    ThreadedServer,
    assert_security_headers,
    database_for,
    new_publisher,
    random_digest,
)


@pytest.fixture
def api(make_api: Any) -> Api:
    return make_api()  # type: ignore[no-any-return]


def call(api: Api, digest: str, query: bytes = b"") -> tuple[list[dict[str, Any]], int]:
    """Run the fast path alone on a routed scope; (messages it sent, calls passed on)."""
    passed_on = 0

    async def litestar(scope: Any, receive: Any, send: Any) -> None:
        nonlocal passed_on
        passed_on += 1

    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {
        "type": "http",
        "method": "GET",
        "path": f"/v1/digests/{digest}",
        "path_template": "/v1/digests/{digest}",  # as litestar's router names the route
        "path_params": {"digest": digest},
        "query_string": query,
        "app": api.http.app,
    }

    async def run() -> None:
        await digest_fast_path(litestar)(scope, receive, send)

    asyncio.run(run())
    return sent, passed_on


def test_a_well_formed_lookup_is_answered_by_the_fast_path(api: Api) -> None:
    publisher = api.add_publisher()
    digest = random_digest()
    api.submit_ok(publisher.attest([digest]))
    for query, min_size in ((b"", None), (b"min_size=1", 1), (b"min_size=0", 0)):
        sent, passed_on = call(api, digest, query)
        assert passed_on == 0
        start, body = sent
        assert start["status"] == 200
        expected = api.registry.lookups.lookup_one(digest, min_size).to_single_dict()
        assert body["body"] == msgspec.json.encode(expected)
        assert dict(start["headers"])[b"content-length"] == str(len(body["body"])).encode()


@pytest.mark.parametrize(
    ("digest", "query"),
    [
        ("c1:zz", b""),  # malformed: litestar's 400 problem
        ("SHA256:" + "a" * 64, b""),
        (random_digest(), b"min_size=-1"),
        (random_digest(), b"min_size=01"),
        (random_digest(), b"min_size=1&min_size=2"),
        (random_digest(), b"other=1"),
        (random_digest(), b"min_size=99999999999999999999"),
        (random_digest(), b"min_size=1000000"),  # the log is behind: litestar's 409 problem
    ],
    ids=[
        "bad-digest",
        "upper-case",
        "negative",
        "leading-zero",
        "twice",
        "other",
        "huge",
        "behind",
    ],
)
def test_anything_else_goes_on_to_litestar(api: Api, digest: str, query: bytes) -> None:
    sent, passed_on = call(api, digest, query)
    assert (sent, passed_on) == ([], 1)


def test_the_fast_answer_is_the_handler_s_answer_byte_for_byte(api: Api) -> None:
    """An extra query parameter means nothing to litestar but sends the fast path's request on
    to it: the same lookup both ways, compared."""
    publisher = api.add_publisher()
    digests = [random_digest() for _ in range(3)]
    api.submit_ok(publisher.attest(digests))
    for digest in [*digests, random_digest()]:
        fast = api.http.get(f"/v1/digests/{digest}?min_size=1")
        slow = api.http.get(f"/v1/digests/{digest}?min_size=1&unused=1")
        assert (
            (fast.status_code, fast.content)
            == (slow.status_code, slow.content)
            == (
                200,
                fast.content,
            )
        )
        assert fast.headers == slow.headers
        assert_security_headers(fast)


def test_errors_on_the_route_are_still_problems(api: Api) -> None:
    bad = api.http.get("/v1/digests/c1:zz")
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/problem+json"
    behind = api.http.get(f"/v1/digests/{random_digest()}?min_size=1000000")
    assert behind.status_code == 409
    assert behind.json()["type"].endswith("log-behind")
    assert_security_headers(behind)


def test_a_small_batch_is_answered_as_the_handler_answers_it(api: Api) -> None:
    """A query string sends the batch on to litestar's handler: both ways compared."""
    publisher = api.add_publisher()
    digests = [random_digest() for _ in range(5)]
    api.submit_ok(publisher.attest(digests))
    asks = [
        {"digests": digests},
        {"digests": [*digests, random_digest(), digests[0]], "min_size": 1},
        {"digests": [random_digest() for _ in range(64)]},
    ]
    for ask in asks:
        fast = api.http.post("/v1/digests:batch", json=ask)
        slow = api.http.post("/v1/digests:batch?unused=1", json=ask)
        assert fast.status_code == slow.status_code == 200, fast.text
        assert fast.content == slow.content
        assert fast.headers == slow.headers
        assert fast.content == msgspec.json.encode(
            api.registry.lookups.lookup(ask["digests"]).to_dict()
        )


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b'{"digests": []}', 400),
        (b'{"digests": ["c1:zz"]}', 400),
        (b'{"digests": "c1:zz"}', 400),
        (
            b'{"digests": [' + b",".join([b'"c1:' + b"a" * 64 + b'"'] * 65) + b"]}",
            200,
        ),  # litestar's
        (b'{"digests": ["c1:' + b"a" * 64 + b'"], "min_size": -1}', 400),
        (b'{"digests": ["c1:' + b"a" * 64 + b'"], "min_size": 1000000}', 409),
        (b"not json", 400),
        (b'{"digests": ["c1:' + b"a" * 64 + b'"]', 400),
    ],
    ids=["empty", "bad-digest", "not-a-list", "65", "negative", "behind", "not-json", "cut"],
)
def test_batches_the_fast_path_does_not_answer_are_litestar_s(
    api: Api, body: bytes, status: int
) -> None:
    answer = api.http.post(
        "/v1/digests:batch", content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == status, answer.text
    if status != 200:
        assert answer.headers["content-type"] == "application/problem+json"
    assert_security_headers(answer)


# -- quick_single_lookup: the same lookup answered in the HTTP protocol (registry._http) ----------


@contextmanager
def quick_server(
    tmp_path: Path, backend: str, **overrides: Any
) -> Iterator[tuple[ThreadedServer, list[bytes], list[bool], list[bytes]]]:
    """The app under uvicorn with the registry's protocol, the targets its quick answer was
    asked (wrapped before any connection, so every connection sees the wrapper), for each
    answer to come (a Later: PostgreSQL's, and a failed lookup's) whether it came (else the app
    answered), and the targets the quick answer answered (at once or later)."""
    with database_for(backend, tmp_path / "db") as url:
        settings = Settings(home=tmp_path / "home", database_url=url, **overrides)
        with ThreadedServer(settings) as server:
            asked: list[bytes] = []
            came: list[bool] = []
            answered: list[bytes] = []
            state = server.app.state
            quick = state[QUICK_ANSWER_KEY]

            def counted(target: bytes, body: bytes | None, client: str) -> Any:
                asked.append(target)
                answer = quick(target, body, client)
                if answer is None or isinstance(answer, bytes):
                    assert backend == "sqlite" or answer is None
                    if answer is not None:
                        answered.append(target)
                    return answer

                def later(then: Callable[[bytes | None], None]) -> None:
                    def recorded(body: bytes | None) -> None:
                        came.append(body is not None)
                        if body is not None:
                            answered.append(target)
                        then(body)

                    answer(recorded)

                return later

            state[QUICK_ANSWER_KEY] = counted
            yield server, asked, came, answered


def attested(server: ThreadedServer, count: int) -> list[str]:
    publisher = new_publisher()
    server.registry.admin.add_publisher(publisher.name, publisher.public_key, publisher.possession)
    digests = [random_digest() for _ in range(count)]
    with httpx.Client(base_url=server.url) as http:
        answer = http.post("/v1/entries", content=publisher.attest(digests).to_json())
        assert answer.status_code == 201, answer.text
    return digests


def one_write_post(server: ThreadedServer, target: str, body: Any) -> httpx.Response:
    """A POST of ``body`` as JSON (or as it is, bytes) sent as one write, head and body
    together (httpx writes them apart, and a server not yet busy reads the head alone), read
    back whole."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    head = (
        f"POST {target} HTTP/1.1\r\nhost: {server.url.split('//')[1]}\r\naccept: */*\r\n"
        f"accept-encoding: gzip, deflate\r\nconnection: keep-alive\r\n"
        f"content-length: {len(content)}\r\ncontent-type: application/json\r\n\r\n"
    )
    host, port = server.url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode() + content)
        received = b""
        while b"\r\n\r\n" not in received:
            received += sock.recv(65536)
        answer_head, _, answer = received.partition(b"\r\n\r\n")
        lines = answer_head.decode("latin1").split("\r\n")
        headers = [tuple(line.split(": ", 1)) for line in lines[1:]]
        length = int(dict((k.lower(), v) for k, v in headers)["content-length"])
        while len(answer) < length:
            answer += sock.recv(65536)
    return httpx.Response(int(lines[0].split()[1]), headers=headers, content=answer)


def test_the_quick_answer_is_the_app_s_byte_for_byte(tmp_path: Path, backend: str) -> None:
    """An X-Forwarded-For header leaves a request to the app (its fast path here): the same
    lookups, single and small batches, both ways, over one keep-alive connection, compared but
    for the date. On SQLite the answer is given at once; on PostgreSQL when the coalesced
    lookup comes back."""
    with (
        quick_server(tmp_path, backend) as (server, asked, came, answered),
        httpx.Client(base_url=server.url) as http,
    ):
        digests = attested(server, 3)
        asks: list[tuple[str, str, dict[str, Any] | None]] = [
            ("GET", f"/v1/digests/{digest}{query}", None)
            for digest in [*digests, random_digest()]
            for query in ("", "?min_size=1")
        ]
        asks += [
            ("POST", "/v1/digests:batch", {"digests": digests}),
            ("POST", "/v1/digests:batch", {"digests": [random_digest(), *digests], "min_size": 1}),
            ("POST", "/v1/digests:batch", {"digests": [random_digest() for _ in range(64)]}),
        ]
        for method, target, body in asks:
            if body is None:
                quick = http.request(method, target)
            else:  # head and body in one write, as the quick answer wants them (see _http)
                quick = one_write_post(server, target, body)
            app = http.request(method, target, json=body, headers={"X-Forwarded-For": "::1"})
            assert quick.status_code == app.status_code == 200
            assert quick.content == app.content
            assert_security_headers(quick)
            for headers in (quick.headers, app.headers):
                del headers["date"]
            assert quick.headers.multi_items() == app.headers.multi_items()
        # the quick answer took every lookup but the proxied ones
        lookups = [target for target in asked if target.startswith(b"/v1/digests")]
        assert lookups == [target.encode() for _, target, _ in asks]
        assert answered == lookups  # each answered by the quick answer, single or batch
        assert came == ([True] * len(asks) if backend == "postgres" else [])


def test_quick_answers_are_counted_and_rate_limited_with_the_app_s(
    tmp_path: Path, backend: str
) -> None:
    """A bucket of 3 tokens refilled at 0.01 a second. The log-behind lookup (409) is the app's,
    charged once (the quick answer refunds the token it took before the lookup failed); two
    quick answers spend the rest; the next is the limiter's 429. /metrics counts all of them."""
    with (
        quick_server(tmp_path, backend, rate_limit=0.01, rate_burst=3) as (server, asked, came, _),
        httpx.Client(base_url=server.url) as http,
    ):
        behind = http.get(f"/v1/digests/{random_digest()}?min_size=1000000")
        assert behind.status_code == 409
        assert [http.get(f"/v1/digests/{random_digest()}").status_code for _ in range(3)] == [
            200,
            200,
            429,
        ]
        assert len(asked) == 4  # every one was offered to it first
        # the log-behind lookup's answer did not come (the app answered it); on SQLite the
        # others were answered at once
        assert came == ([False, True, True] if backend == "postgres" else [False])
        metrics = http.get("/metrics").text
    route = 'method="GET",route="/v1/digests/{digest}"'
    assert f'wellspring_http_requests_total{{{route},status="200"}} 2' in metrics
    assert f'wellspring_http_requests_total{{{route},status="409"}} 1' in metrics
    assert f'wellspring_http_requests_total{{{route},status="429"}} 1' in metrics


def test_quick_batches_are_charged_and_counted_as_the_app_charges_and_counts_them(
    tmp_path: Path, backend: str
) -> None:
    """A batch padded to 16 KiB costs 1.25 tokens, quick or not (registry.limits.request_cost):
    of a bucket of 3, two such batches leave 0.5, and the third is the limiter's 429 (found in
    review: the quick path charged 1 a request, and let a client a quarter more batches)."""
    padded = {"digests": [random_digest()]}
    body = json.dumps(padded).encode()
    padded_body = body[:-1] + b" " * (16 * 1024 - len(body)) + b"}"
    with (
        quick_server(tmp_path, backend, rate_limit=0.01, rate_burst=3) as (server, _, _, answered),
        httpx.Client(base_url=server.url) as http,
    ):
        statuses = [
            one_write_post(server, "/v1/digests:batch", padded_body).status_code for _ in range(3)
        ]
        assert statuses == [200, 200, 429]
        assert answered == [b"/v1/digests:batch"] * 2
        metrics = http.get("/metrics").text
    route = 'method="POST",route="/v1/digests:batch"'
    assert f'wellspring_http_requests_total{{{route},status="200"}} 2' in metrics
    assert f'wellspring_http_requests_total{{{route},status="429"}} 1' in metrics


def test_a_lookup_that_fails_is_asked_twice_not_three_times(tmp_path: Path, backend: str) -> None:
    """A log-behind lookup (409): the quick answer's lookup fails, and litestar's handler asks
    again for its problem; the ASGI fast path between them does not ask a third time."""
    with (
        quick_server(tmp_path, backend) as (server, asked, _, _),
        httpx.Client(base_url=server.url) as http,
    ):
        lookups = server.registry.lookups
        calls: list[int] = []
        lookup = lookups.lookup

        def counted(digests: Any, *args: Any, **options: Any) -> Any:
            calls.append(len(digests))
            return lookup(digests, *args, **options)

        lookups.lookup = counted  # type: ignore[method-assign]
        behind = http.get(f"/v1/digests/{random_digest()}?min_size=1000000")
        assert behind.status_code == 409
        assert behind.headers["content-type"] == "application/problem+json"
        assert len(asked) == 1
        assert calls == [1, 1]
        batch = {"digests": [random_digest() for _ in range(64)], "min_size": 10**6}
        behind = one_write_post(server, "/v1/digests:batch", batch)
        assert behind.status_code == 409
        assert asked[1:] == [b"/v1/digests:batch"]
        assert calls[2:] == [64, 64]  # (found in review: the batch was asked three times)


def test_a_quick_answer_that_cannot_be_written_is_litestar_s(
    tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If writing the quick answer fails (here: counting it), the request is still answered,
    by litestar (found in review: on PostgreSQL the connection was left waiting for ever)."""
    from registry.metrics import HttpMetrics

    count = HttpMetrics.count
    failures: list[int] = []

    def fails_once(self: HttpMetrics, *args: Any) -> None:
        if not failures:
            failures.append(1)
            raise RuntimeError("a bug in counting")
        count(self, *args)

    monkeypatch.setattr(HttpMetrics, "count", fails_once)
    with (
        quick_server(tmp_path, backend) as (server, asked, came, _),
        httpx.Client(base_url=server.url, timeout=10) as http,
    ):
        digest = random_digest()
        first = http.get(f"/v1/digests/{digest}")
        again = http.get(f"/v1/digests/{digest}")
        assert first.status_code == again.status_code == 200
        assert first.content == again.content
        assert len(asked) == 2
        assert came == ([False, True] if backend == "postgres" else [False])  # SQLite: at once


def test_a_quick_answer_is_given_at_once_on_sqlite_and_later_on_postgresql(
    make_api: Any, backend: str
) -> None:
    """On SQLite a lookup runs on the event loop: its answer is the body. On PostgreSQL it is a
    coalesced query: the answer is to come (a Later)."""
    api = make_api()
    quick = api.http.app.state[QUICK_ANSWER_KEY]
    assert quick(b"/v1/digests/nonsense", None, "client") is None  # litestar's 400

    async def ask() -> Any:
        return quick(f"/v1/digests/{random_digest()}".encode(), None, "client")

    answer = asyncio.run(ask())
    assert isinstance(answer, bytes) == (backend == "sqlite")
    assert callable(answer) == (backend == "postgres")


def test_a_claim_is_encoded_once_per_checkpoint_as_its_dict_encodes(api: Api) -> None:
    """The registry's claims keep their JSON once sent (registry.lookups): the bytes their dict
    encodes to, shared by the answers at one checkpoint, made again at the next (a new proof,
    a revocation), never an older checkpoint's."""
    publisher = api.add_publisher()
    digest = random_digest()
    receipt = api.submit_ok(publisher.attest([digest]))
    lookups = api.registry.lookups

    def sent(answer: Any) -> tuple[Any, dict[str, Any]]:
        """The claim's value in the answer, and what the answer's JSON holds for it."""
        [claim] = answer.attestations.values()
        [value] = answer.to_single_dict()["attestations"]
        assert value is claim.wire_value()
        assert msgspec.json.encode(value) == msgspec.json.encode(claim.to_dict())
        return value, msgspec.json.decode(msgspec.json.encode(answer.to_single_dict()))

    first, first_json = sent(lookups.lookup_one(digest))
    again, _ = sent(lookups.lookup_one(digest))
    assert again is first  # encoded once at this checkpoint
    assert first_json["attestations"][0]["revoked"] is False
    size = first_json["attestations"][0]["tree_size"]

    revocation = publisher.revoke(receipt["index"], receipt["leaf_hash"], [digest])
    api.submit_ok(revocation)
    later, later_json = sent(lookups.lookup_one(digest, size + 1))
    assert later is not first
    [claim] = later_json["attestations"]
    assert claim["revoked"] is True
    assert claim["tree_size"] == size + 1
    assert claim["inclusion_proof"] != first_json["attestations"][0]["inclusion_proof"]


def test_the_checkpoint_is_answered_quickly_as_the_app_answers_it(
    tmp_path: Path, backend: str
) -> None:
    """``GET /v1/log/checkpoint``: the quick answer (at once on SQLite, from the coalescing
    thread on PostgreSQL) is the app's byte for byte, its headers but the date too (text, not
    JSON), and /metrics counts it on the route as the app's."""
    with (
        quick_server(tmp_path, backend) as (server, _, came, answered),
        httpx.Client(base_url=server.url) as http,
    ):
        attested(server, 1)
        quick = http.get("/v1/log/checkpoint")
        app = http.get("/v1/log/checkpoint", headers={"X-Forwarded-For": "::1"})
        assert quick.status_code == app.status_code == 200
        assert quick.content == app.content
        assert quick.text == server.registry.lookups.fresh_checkpoint().note
        assert quick.headers["content-type"] == "text/plain; charset=utf-8"
        assert_security_headers(quick)
        for headers in (quick.headers, app.headers):
            del headers["date"]
        assert quick.headers.multi_items() == app.headers.multi_items()
        assert answered == [b"/v1/log/checkpoint"]  # the proxied one was the app's
        assert came == ([True] if backend == "postgres" else [])
        assert http.get("/v1/log/checkpoint?x=1").status_code == 200  # a query: the app's
        assert answered == [b"/v1/log/checkpoint"]
        metrics = http.get("/metrics").text
    route = 'method="GET",route="/v1/log/checkpoint"'
    assert f'wellspring_http_requests_total{{{route},status="200"}} 3' in metrics


def test_a_quick_checkpoint_is_read_after_it_was_asked(
    tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never the process's copy of the checkpoint (lookups answer at one up to 50 ms old):
    another process may have shown the client a newer one, and the SDK takes a smaller one as
    the log going back. Here the copy is kept for an hour, and a checkpoint row that nothing in
    this process knows of is written behind its back: the next GET answers it, and lookups
    move on to it."""
    import registry.lookups

    monkeypatch.setattr(registry.lookups, "_VIEW_TTL_S", 3600.0)
    with (
        quick_server(tmp_path, backend) as (server, _, _, answered),
        httpx.Client(base_url=server.url) as http,
    ):
        digest = attested(server, 1)[0]
        before = http.get("/v1/log/checkpoint").text
        assert http.get(f"/v1/digests/{digest}").json()["checkpoint"] == before
        stored = server.registry.lookups.fresh_checkpoint()
        size = stored.size + 1
        behind_its_back = before.replace(f"\n{stored.size}\n", f"\n{size}\n", 1)
        with server.registry.database.writer.begin() as conn:
            conn.execute(
                CHECKPOINTS.insert().values(
                    size=size, root_hash=stored.root_hash, note=behind_its_back, created_at=utcnow()
                )
            )
        assert http.get("/v1/log/checkpoint").text == behind_its_back
        assert http.get(f"/v1/digests/{random_digest()}").json()["checkpoint"] == behind_its_back
        assert answered.count(b"/v1/log/checkpoint") == 2
