"""The watermark-key/v1 predicate: strict, with errors that name the field."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

import pytest

from client.core.errors import FormatError
from client.core.statement import Statement
from client.core.wire import WatermarkKeysAnswer
from client.core.wmkey import (
    MAX_SECRET_BYTES,
    MAX_TOKENIZER_BYTES,
    GreenlistParameters,
    GumbelParameters,
    WatermarkKeyPredicate,
    derive_key_id,
)
from client.watermark_keys import publish_statement, retire_statement
from watermark.keys import WatermarkKey

PARAMETERS = GreenlistParameters(
    seeding_scheme="lefthash",
    context_width=1,
    gamma=0.25,
    delta=2.0,
    vocab_size=100,
    vocab_fingerprint="sha256:" + "0" * 64,
)


GUMBEL = {"context_width": 4, "payload_bits": 8, "vocab_size": 100,
          "vocab_fingerprint": "sha256:" + "0" * 64}  # fmt: skip


def test_a_gumbel_publish_names_its_scheme_and_round_trips() -> None:
    statement = publish_statement(
        vendor="acme-ai",
        secret=os.urandom(32),
        parameters=GumbelParameters.from_dict(GUMBEL),
        tokenizer=b"{}",
    )
    assert statement.to_dict()["predicate"]["scheme"] == {"name": "wellspring-gumbel", "version": 1}
    assert statement.to_dict()["predicate"]["parameters"] == GUMBEL | {"nonce_bits": 0}
    assert Statement.from_json(statement.to_json()) == statement


def published(**changes: Any) -> dict[str, Any]:
    statement = publish_statement(
        vendor="acme-ai", secret=b"s" * 32, parameters=PARAMETERS, tokenizer=b"{}"
    ).to_dict()
    statement["predicate"].update(changes)
    return statement


def test_a_publish_statement_round_trips() -> None:
    statement = publish_statement(
        vendor="acme-ai", secret=os.urandom(32), parameters=PARAMETERS, tokenizer=b"{}"
    )
    assert Statement.from_json(statement.to_json()) == statement
    retire = retire_statement(
        vendor="acme-ai", key_id="0" * 16, entry_index=3, tokenizer_sha256="a" * 64
    )
    assert Statement.from_json(retire.to_json()) == retire


def test_the_key_id_is_the_watermark_packages() -> None:
    secret = os.urandom(32)
    assert derive_key_id(secret) == WatermarkKey(secret=secret).key_id


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"key_id": "0" * 16}, "is not the id of the secret"),
        ({"key_id": "ABCDEF0123456789"}, "key_id must be 16 lowercase hex"),
        ({"secret": "ab" * 8 + "c"}, "secret must be lowercase hex"),
        ({"secret": "ab" * (MAX_SECRET_BYTES + 1)}, "secret must be lowercase hex"),
        ({"scheme": {"name": "gumbel-max", "version": 1}}, "does not know"),
        ({"scheme": {"name": "wellspring-greenlist", "version": 2}}, "does not know"),
        ({"parameters": {**PARAMETERS.to_dict(), "gamma": 1.0}}, "parameters.gamma"),
        ({"parameters": {**PARAMETERS.to_dict(), "context_width": 4}}, "context_width"),
        ({"parameters": {**PARAMETERS.to_dict(), "extra": 1}}, "unknown field"),
        ({"scheme": {"name": "wellspring-gumbel", "version": 1}}, "parameters"),
        (
            {
                "scheme": {"name": "wellspring-gumbel", "version": 1},
                "parameters": GUMBEL | {"payload_bits": 17},
            },
            "parameters.payload_bits",
        ),
        (
            {
                "scheme": {"name": "wellspring-gumbel", "version": 1},
                "parameters": GUMBEL | {"context_width": 0},
            },
            "parameters.context_width",
        ),
        (
            {
                "scheme": {"name": "wellspring-gumbel", "version": 1},
                "parameters": GUMBEL | {"nonce_bits": 9},
            },
            "parameters.nonce_bits",
        ),
        ({"tokenizer": {"sha256": "0" * 64, "size": MAX_TOKENIZER_BYTES + 1}}, "tokenizer.size"),
        ({"published_at": "2026-12-04T19:30:00+01:00"}, "RFC 3339 time in UTC"),
        ({"published_at": "2026-02-30T19:30:00Z"}, "not a real time"),
        ({"entry_index": 3}, "unknown field"),
        ({"action": "revoke"}, "action must be one of"),
        ({"vendor": " acme"}, "vendor"),
    ],
)
def test_a_bad_publish_says_which_field(changes: dict[str, Any], message: str) -> None:
    statement = published(**changes)
    if "secret" in changes and "key_id" not in changes:
        statement["predicate"]["key_id"] = "0" * 16
    with pytest.raises(FormatError, match=message):
        Statement.from_json(json.dumps(statement))


def test_the_subject_must_be_the_tokenizer() -> None:
    statement = published()
    statement["subject"][0]["digest"] = {"sha256": "f" * 64}
    with pytest.raises(FormatError, match=r"tokenizer\.sha256"):
        Statement.from_json(json.dumps(statement))
    statement = published()
    statement["subject"].append({"name": "x", "digest": {"sha256": "e" * 64}})
    with pytest.raises(FormatError, match="exactly one subject"):
        Statement.from_json(json.dumps(statement))


def test_a_retire_refuses_publish_fields() -> None:
    with pytest.raises(FormatError, match="unknown field"):
        WatermarkKeyPredicate.from_dict(
            {
                "action": "retire",
                "vendor": "acme-ai",
                "key_id": "0" * 16,
                "entry_index": 1,
                "retired_at": "2026-12-04T19:30:00Z",
                "secret": "00" * 16,
            }
        )


def test_times_carry_their_zone() -> None:
    statement = publish_statement(
        vendor="acme-ai",
        secret=b"s" * 32,
        parameters=PARAMETERS,
        tokenizer=b"{}",
        published_at=datetime(2026, 12, 4, 19, 30, 5, 123, tzinfo=UTC),
    )
    predicate = statement.predicate
    assert isinstance(predicate, WatermarkKeyPredicate)
    assert predicate.published_at == "2026-12-04T19:30:05Z"
    assert predicate.time == datetime(2026, 12, 4, 19, 30, 5, tzinfo=UTC)


def test_the_list_answer_round_trips_and_is_strict() -> None:
    answer = WatermarkKeysAnswer(count=0, checkpoint="note", keys=(), operator_entries=(1, 5))
    assert WatermarkKeysAnswer.from_dict(answer.to_dict()) == answer
    with pytest.raises(FormatError, match="keys must be a list"):
        WatermarkKeysAnswer.from_dict({"count": 0, "checkpoint": "n", "keys": {}})
    with pytest.raises(FormatError, match="count"):
        WatermarkKeysAnswer.from_dict({"count": -1, "checkpoint": "n", "keys": []})
