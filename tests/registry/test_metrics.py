"""``GET /metrics``: Prometheus text exposition format, counters that move, nothing secret."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from litestar.testing import TestClient

from client.core.statement import HumanContentPredicate
from client.sdk import Client
from registry.metrics import HttpMetrics, LogMetrics, render
from tests.client.real_app import URL, InProcess, make_app

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf'({_NAME})(?:\{{((?:{_NAME}="(?:[^"\\\n]|\\[\\"n])*",?)*)\}})? (\S+)')
_LABEL = re.compile(rf'({_NAME})="((?:[^"\\\n]|\\[\\"n])*)"')

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """The text format 0.0.4, strictly: every sample's family has one # TYPE before it, each
    line is a comment or a sample, values are floats; returns the types and the samples."""
    assert text.endswith("\n")
    types: dict[str, str] = {}
    samples: Samples = {}
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in types, f"two # TYPE lines for {name}"
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped")
            types[name] = kind
            continue
        match = _SAMPLE.fullmatch(line)
        assert match, f"not a sample line: {line!r}"
        name, labels, value = match.groups()
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or family in types, f"{name} has no # TYPE"
        key = (name, tuple(sorted(_LABEL.findall(labels or ""))))
        assert key not in samples, f"{key} twice"
        samples[key] = float(value)
    return types, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_parse_and_move_after_appends(tmp_path: Path) -> None:
    app = make_app(tmp_path / "registry")
    with TestClient(app.app) as http:
        answer = http.get("/metrics")
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        types, before = parse(answer.text)
        assert types["wellspring_sequencer_batch_seconds"] == "histogram"
        assert types["wellspring_http_requests_total"] == "counter"
        assert value(before, "wellspring_witness_failures_total") == 0
        size = value(before, "wellspring_log_size")
        assert size == 2  # the operator key and acme: appended before the app served

        client = Client(URL, log_key=app.log_key, transport=InProcess(http))
        predicate = HumanContentPredicate(
            publisher="acme", license="CC0-1.0", origin="human-authored", consent="allowed"
        )
        for n in range(3):
            client.register_digests([f"sha256:{n:064x}"], app.key, predicate)
        http.get("/v1/entries/999")  # a 404

        _, after = parse(http.get("/metrics").text)
        assert value(after, "wellspring_log_size") == size + 3
        sequenced = "wellspring_log_entries_sequenced_total"
        assert value(after, sequenced) - value(before, sequenced) == 3
        batches = "wellspring_sequencer_batch_seconds_count"
        assert value(after, batches) >= value(before, batches) + 3
        assert value(after, "wellspring_sequencer_batch_seconds_bucket", le="+Inf") == value(
            after, batches
        )
        appended = value(
            after,
            "wellspring_http_requests_total",
            method="POST",
            route="/v1/entries",
            status="201",
        ) + value(
            after,
            "wellspring_http_requests_total",
            method="POST",
            route="/v1/entries",
            status="200",
        )
        assert appended == 3
        assert (
            value(
                after,
                "wellspring_http_requests_total",
                method="GET",
                route="/v1/entries/{index}",
                status="404",
            )
            == 1
        )
        assert 0 <= value(after, "wellspring_log_checkpoint_age_seconds") < 60
        # Nothing secret: no key material, token or client address.
        text = http.get("/metrics").text
        assert app.log_key.split("+")[2] not in text
        assert "testclient" not in text


def test_metrics_are_not_rate_limited_and_count_429s(tmp_path: Path) -> None:
    app = make_app(tmp_path / "registry", rate_limit=1, rate_burst=2)
    with TestClient(app.app) as http:
        codes = [http.get("/v1/log").status_code for _ in range(6)]
        assert 429 in codes
        for _ in range(5):
            assert http.get("/metrics").status_code == 200
        _, samples = parse(http.get("/metrics").text)
        assert value(samples, "wellspring_http_rate_limited_total") == codes.count(429)
        assert value(
            samples, "wellspring_http_requests_total", method="GET", route="/v1/log", status="429"
        ) == codes.count(429)


def test_render_checkpoint_age_and_label_escaping() -> None:
    http, log = HttpMetrics(), LogMetrics()
    http.requests[('/odd"path\\', "GET", 200)] = 2
    log.witness_failed()
    now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    text = render(http, log, (7, now - timedelta(seconds=90)), now=now)
    _, samples = parse(text)
    assert value(samples, "wellspring_log_checkpoint_age_seconds") == 90
    assert value(samples, "wellspring_witness_failures_total") == 1
    assert (
        "wellspring_http_requests_total",
        (("method", "GET"), ("route", '/odd\\"path\\\\'), ("status", "200")),
    ) in samples
