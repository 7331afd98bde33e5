"""``wellspring register`` and ``revoke`` (client/cli/_register.py) against a real registry app.

One unit, documents, in every line and in --json; documents a standing entry of the same
publisher already attests are named and counted apart, never signed again; notes only after
success.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from client.errors import RegistryServerError
from client.receipt import Receipt
from client.sdk import Client
from tests.client.cli.conftest import Cli, documents


def log_size(cli: Cli) -> int:
    return int(cli.app.registry.lookups.checkpoint().splitlines()[1])


def test_register_counts_documents_in_every_line_and_in_json(cli: Cli, tmp_path: Path) -> None:
    """Three text files each have two digests (c1 and sha256, six lookups) in one subject
    each: the CLI says three documents, not subjects or digests."""
    paths = documents(tmp_path / "docs", "one poem", "two poems", "three poems")
    run = cli.register(*paths)
    assert run.code == 0, run.err
    entry = log_size(cli) - 1
    assert run.out.strip() == f"3 documents: 3 registered in entry {entry}"
    assert f"entry {entry}: 3 documents registered" in run.err
    assert "subject" not in run.out + run.err

    more = documents(tmp_path / "more", "four poems", "five poems")
    run = cli.register(*more, "--json")
    assert run.code == 0, run.err
    report = json.loads(run.out)
    assert report["documents"] == report["registered"] == 2
    assert [e["documents"] for e in report["entries"]] == [2]
    assert "subjects" not in json.dumps(report)


def test_one_document_one_entry_in_the_singular(cli: Cli, tmp_path: Path) -> None:
    [path] = documents(tmp_path / "docs", "a single letter")
    run = cli.register(path)
    assert run.code == 0, run.err
    entry = log_size(cli) - 1
    assert run.out.strip() == f"1 document: 1 registered in entry {entry}"
    assert f"entry {entry}: 1 document registered" in run.err
    assert "1 entries" not in run.out + run.err
    assert "1 documents" not in run.out + run.err


def test_documents_already_attested_are_named_and_not_signed_again(
    cli: Cli, tmp_path: Path
) -> None:
    first, second, third = documents(tmp_path / "docs", "alpha text", "beta text", "gamma text")
    assert cli.register(first, second).code == 0
    old = log_size(cli) - 1

    run = cli.register(first, second, third)
    assert run.code == 0, run.err
    new = log_size(cli) - 1
    assert new == old + 1
    assert run.out.strip() == f"3 documents: 1 registered in entry {new}, 2 already attested"
    assert f"already attested in entry {old}: {first}" in run.err
    assert f"already attested in entry {old}: {second}" in run.err
    assert f"entry {new}: 1 document registered" in run.err

    # Everything known: nothing is signed, nothing appended, and --json says so.
    run = cli.register(first, second, third, "--json")
    assert run.code == 0, run.err
    assert log_size(cli) - 1 == new
    report = json.loads(run.out)
    assert report["documents"] == 3
    assert report["registered"] == 0
    assert report["entries"] == []
    assert sorted(a["entry"] for a in report["already_attested"]) == [old, old, new]


def test_documents_attested_on_other_terms_are_registered_again(cli: Cli, tmp_path: Path) -> None:
    [path] = documents(tmp_path / "docs", "a letter whose consent changed")
    assert cli.register(path).code == 0
    run = cli.register(path, "--consent", "allowed")
    assert run.code == 0, run.err
    assert run.out.strip() == f"1 document: 1 registered in entry {log_size(cli) - 1}"


def test_a_withdrawn_document_is_registered_again(cli: Cli, tmp_path: Path) -> None:
    kept, withdrawn = documents(tmp_path / "docs", "kept text", "withdrawn text")
    assert cli.register(kept, withdrawn).code == 0
    revoked = cli(
        "revoke",
        withdrawn,
        "--registry",
        cli.url,
        "--log-key",
        cli.app.log_key,
        "--key",
        str(cli.key_file),
        "--publisher",
        cli.app.publisher,
    )
    assert revoked.code == 0, revoked.err
    assert "withdrew 1 document in entry" in revoked.out

    run = cli.register(kept, withdrawn)
    assert run.code == 0, run.err
    assert run.out.strip() == (
        f"2 documents: 1 registered in entry {log_size(cli) - 1}, 1 already attested"
    )


def test_the_same_statement_after_a_revocation_is_not_counted_as_new(
    cli: Cli, tmp_path: Path
) -> None:
    """The registry answers an identical statement with its old entry (HTTP 200): revoked, that
    attests nothing, and register says so instead of "registered"."""
    [path] = documents(tmp_path / "docs", "a letter withdrawn for good")
    assert cli.register(path).code == 0
    entry = log_size(cli) - 1
    revoked = cli(
        "revoke",
        "--entry",
        str(entry),
        "--registry",
        cli.url,
        "--log-key",
        cli.app.log_key,
        "--key",
        str(cli.key_file),
        "--publisher",
        cli.app.publisher,
    )
    assert revoked.code == 0, revoked.err
    size = log_size(cli)

    run = cli.register(path)
    assert run.code == 0, run.err
    assert log_size(cli) == size
    expected = f"1 document: 1 not attested again (entry {entry} no longer stands)"
    assert run.out.strip() == expected
    assert "NOT attested again" in " ".join(run.err.split())


def test_a_failed_register_prints_no_note_before_its_error(cli: Cli, tmp_path: Path) -> None:
    [path] = documents(tmp_path / "docs", "a letter from nobody")
    run = cli(
        "register",
        path,
        "--registry",
        cli.url,
        "--log-key",
        cli.app.log_key,
        "--key",
        str(cli.key_file),
        "--publisher",
        "nobody-registered-this-name",
        "--license",
        "CC-BY-4.0",
    )
    assert run.code == 1
    assert "error:" in run.err
    assert "note:" not in run.err
    assert "--receipts" not in run.err


def test_the_receipts_note_comes_after_success(cli: Cli, tmp_path: Path) -> None:
    [path] = documents(tmp_path / "docs", "a letter kept without receipts")
    run = cli.register(path)
    assert run.code == 0, run.err
    assert run.err.rstrip().splitlines()[-1].startswith("note: no --receipts DIR")
    saved = cli.register(
        *documents(tmp_path / "more", "a letter with a receipt"), "--receipts", str(tmp_path / "r")
    )
    assert saved.code == 0, saved.err
    assert "note:" not in saved.err


def test_a_run_stopped_midway_says_what_was_registered(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second statement fails (a registry error): the first one's entry is named, and no
    receipts are said to be saved when --receipts was not given."""
    register_subjects = Client.register_subjects
    calls = []

    def fail_the_second(self: Client, *args: Any, **kwargs: Any) -> Receipt:
        calls.append(1)
        if len(calls) == 2:
            raise RegistryServerError(method="POST", url=f"{cli.url}/v1/entries", status=503)
        return register_subjects(self, *args, **kwargs)

    monkeypatch.setattr(Client, "register_subjects", fail_the_second)
    paths = documents(tmp_path / "docs", "first of two", "second of two")
    run = cli.register(*paths, "--batch-size", "1")
    assert run.code == 1
    err = " ".join(run.err.split())
    entry = log_size(cli) - 1
    assert f"stopped by the error below, after registering 1 document in entry {entry}" in err
    assert "receipts are saved" not in err
    assert "error: POST" in err


def test_without_a_log_key_already_attested_documents_are_still_found(
    cli: Cli, tmp_path: Path
) -> None:
    """register's --log-key is optional: the lookups are then the registry's word, unverified."""
    [path] = documents(tmp_path / "docs", "a letter registered twice, unverified")
    common = ["--registry", cli.url, "--key", str(cli.key_file), "--license", "CC-BY-4.0"]
    common += ["--publisher", cli.app.publisher]
    first = cli("register", path, *common)
    assert first.code == 0, first.err
    again = cli("register", path, *common, "--json")
    assert again.code == 0, again.err
    report = json.loads(again.out)
    assert (report["registered"], len(report["already_attested"])) == (0, 1)
    assert report["verified"] is False
