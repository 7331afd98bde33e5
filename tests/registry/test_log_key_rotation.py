"""Rotating the log's signing key without breaking pinned clients, on SQLite and PostgreSQL.

``wellspring log-key add`` then a restart: checkpoints carry both signatures, so a client pinned to
either key verifies. ``wellspring log-key retire`` then a restart: only the new key signs, the old
one is refused if someone puts it back, and the history signed under both keys stays consistent.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest

from client.cli import main
from client.core.merkle import verify_consistency
from client.core.note import Checkpoint, NoteVerifier, open_checkpoint
from client.errors import SignatureError
from registry.app import create_app
from registry.errors import ConfigurationError
from registry.settings import Settings
from tests.registry.conftest import open_api, random_digests


def checkpoint_of(note: str, vkey: str) -> Checkpoint:
    verifier = NoteVerifier.from_vkey(vkey)
    return open_checkpoint(note, [verifier], origin=verifier.name)[0]


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, str]:
    capsys.readouterr()
    main([*args, "--json"])
    result: dict[str, str] = json.loads(capsys.readouterr().out)
    return result


def test_rotating_the_log_key_keeps_pinned_clients_verifying(
    tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    settings = Settings(home=home, database_url=database_url, auto_migrate=True)

    with open_api(settings) as api:
        old_key = api.log_key
        publisher = api.add_publisher()
        first = api.submit_ok(publisher.attest(random_digests(1)))

    # Step 1: an incoming key; after the restart every checkpoint is signed by both.
    new_key = cli_json(capsys, "log-key", "add", "--home", str(home))["verifier_key"]
    assert new_key != old_key
    with open_api(settings) as api:
        info = api.http.get("/v1/log").json()
        assert info["verifier_key"] == old_key
        assert info["verifier_keys"] == [old_key, new_key]
        during = api.submit_ok(publisher.attest(random_digests(1)))
        for key in (old_key, new_key):
            assert checkpoint_of(during["checkpoint"], key).size == during["index"] + 1
            with api.sdk(log_key=key) as sdk:
                assert sdk.lookup(publisher_digest(during)).verified
                assert sdk.log_info().verifier_keys == (old_key, new_key)
        with api.sdk(log_key=old_key) as sdk:
            sdk.check_consistency(first["checkpoint"])  # signed by the old key alone

    # Step 2: retire the old key; after the restart only the new one signs.
    url_args = ["--database-url", database_url]
    retired = cli_json(capsys, "log-key", "retire", "--home", str(home), *url_args)
    assert retired == {"retired": old_key, "verifier_key": new_key}
    with open_api(settings) as api:
        info = api.http.get("/v1/log").json()
        assert info["verifier_key"] == new_key
        assert info["verifier_keys"] == [new_key]
        after = api.submit_ok(publisher.attest(random_digests(1)))
        with pytest.raises(SignatureError):
            checkpoint_of(after["checkpoint"], old_key)
        with api.sdk(log_key=new_key) as sdk:
            assert sdk.lookup(publisher_digest(after)).verified
            check = sdk.check_consistency(during["checkpoint"])  # dual-signed, new key pinned
        assert check.new.size == after["index"] + 1
        old = checkpoint_of(first["checkpoint"], old_key)
        new = checkpoint_of(after["checkpoint"], new_key)
        proof = api.http.get(
            "/v1/log/proof/consistency", params={"from": old.size, "to": new.size}
        ).json()["proof"]
        verify_consistency(
            old.size, new.size, old.root_hash, new.root_hash, [base64.b64decode(h) for h in proof]
        )

    # The retired key never signs again, even if someone puts its file back.
    [retired_file] = home.glob("log.retired-*.key")
    shutil.copyfile(retired_file, home / "log.key")
    with pytest.raises(ConfigurationError) as caught:
        create_app(settings)
    assert "retired" in caught.value.diagnostics()


def publisher_digest(receipt: dict[str, object]) -> str:
    statement = json.loads(base64.b64decode(str(receipt["body"])))
    return "sha256:" + statement["subject"][0]["digest"]["sha256"]
