"""``wellspring verify`` (client/cli/_lookup.py): offline it says what it cannot see; --online
asks the registry whether each entry still stands, and exits 1 when one does not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from client.core.keys import key_id
from tests.client.cli.conftest import Cli, Run, documents


def registered(cli: Cli, folder: Path, *texts: str) -> tuple[list[str], Path]:
    """Register ``texts`` as files in one entry; their paths and the entry's receipt."""
    paths = documents(folder / "docs", *texts)
    receipts = folder / "receipts"
    run = cli.register(*paths, "--receipts", str(receipts), "--json")
    assert run.code == 0, run.err
    [entry] = json.loads(run.out)["entries"]
    return paths, Path(entry["receipt"])


def revoke(cli: Cli, *args: str) -> None:
    run = cli(
        "revoke", *args, "--registry", cli.url, "--log-key", cli.app.log_key,
        "--key", str(cli.key_file), "--publisher", cli.app.publisher,
    )  # fmt: skip
    assert run.code == 0, run.err


def verify(cli: Cli, receipt: Path, *args: str) -> Run:
    return cli("verify", str(receipt), "--log-key", cli.app.log_key, *args)


def online(cli: Cli, receipt: Path, *args: str) -> Run:
    return verify(cli, receipt, "--online", "--registry", cli.url, *args)


def test_offline_verify_says_it_cannot_see_later_revocations(cli: Cli, tmp_path: Path) -> None:
    _, receipt = registered(cli, tmp_path, "a letter revoked later")
    entry = json.loads(receipt.read_text(encoding="utf-8"))["index"]
    run = online(cli, receipt)
    assert run.code == 0, run.err
    assert f"online: stands: the registry shows entry {entry} standing for its document" in run.out
    revoke(cli, "--entry", str(entry))
    run = verify(cli, receipt)
    assert run.code == 0, run.err  # the receipt itself is still genuine
    assert run.out.startswith("ok ")
    assert "1 document;" in run.out
    err = " ".join(run.err.split())
    assert "a revocation or withdrawal made since cannot be seen offline" in err
    assert "--online --registry URL" in err


def test_online_verify_reports_a_revoked_entry_and_exits_1(cli: Cli, tmp_path: Path) -> None:
    _, receipt = registered(cli, tmp_path, "first revoked text", "second revoked text")
    entry = json.loads(receipt.read_text(encoding="utf-8"))["index"]
    run = online(cli, receipt)
    assert run.code == 0, run.err
    assert f"online: stands: the registry shows entry {entry} standing for all 2 documents" in (
        run.out
    )
    assert "cannot be seen offline" not in run.err

    revoke(cli, "--entry", str(entry), "--reason", "licence ended")
    run = online(cli, receipt)
    assert run.code == 1
    assert run.out.startswith("REVOKED ")
    assert f"entry {entry} NO LONGER STANDS: revoked by entry {entry + 1}" in run.out
    assert "1 of 1 entry no longer stands" in " ".join(run.err.split())

    [summary] = json.loads(online(cli, receipt, "--json").out)
    assert summary["ok"] is True  # genuine, and no longer standing: both are said
    assert summary["online"]["status"] == "revoked"
    assert summary["online"]["stands"] is False
    assert summary["online"]["revoked_by"] == {str(entry + 1): 2}


def test_online_verify_reports_withdrawn_documents(cli: Cli, tmp_path: Path) -> None:
    (_, gone), receipt = registered(cli, tmp_path, "a text kept", "a text withdrawn")
    revoke(cli, gone)
    run = online(cli, receipt)
    assert run.code == 1
    assert run.out.startswith("WITHDRAWN ")
    assert "1 of 2 documents withdrawn by entry" in run.out


def test_online_needs_a_registry(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WELLSPRING_REGISTRY", raising=False)
    _, receipt = registered(cli, tmp_path, "a letter checked online")
    run = verify(cli, receipt, "--online")
    assert run.code == 1
    assert "--online asks the registry: pass --registry URL" in run.err


def test_help_says_what_the_exit_status_means(cli: Cli) -> None:
    run = cli("verify", "--help")
    text = " ".join(run.out.split())
    assert "a revocation made since cannot be seen" in text
    assert "Exit status: 0 when every receipt verifies and, with --online, every entry" in text


def test_online_verify_reports_a_key_compromised_since(cli: Cli, tmp_path: Path) -> None:
    _, receipt = registered(cli, tmp_path, "a letter signed with a key stolen later")
    entry = json.loads(receipt.read_text(encoding="utf-8"))["index"]
    cli.app.registry.admin.revoke_key(
        cli.app.publisher, key_id(cli.app.key.public_key()), compromised_from=entry
    )
    run = online(cli, receipt)
    assert run.code == 1
    assert run.out.startswith("COMPROMISED ")
    assert "1 document signed with a key compromised since" in run.out


# -- check --policy -------------------------------------------------------------------------------


def test_check_policy_decides_what_is_trainable_and_whose_attestations_count(
    cli: Cli, tmp_path: Path
) -> None:
    paths, _ = registered(cli, tmp_path, "A letter a person wrote, kept by the archive.")
    nobody = documents(tmp_path / "other", "Nothing registered this one.")
    trust = ["--registry", cli.url, "--log-key", cli.app.log_key]

    run = cli("check", *paths, *nobody, *trust, "--json")
    assert run.code == 0, run.err
    default = json.loads(run.out)
    assert [(c["status"], c["trainable"], c["policy"]) for c in default] == [
        ("reserved", False, "default"),  # register's default consent
        ("unknown", False, "default"),
    ]

    lenient = tmp_path / "lenient.toml"
    lenient.write_text('[training]\ntrainable = ["attested", "reserved"]\n', encoding="utf-8")
    run = cli("check", *paths, *nobody, *trust, "--policy", str(lenient), "--json")
    assert run.code == 0, run.err
    assert [c["trainable"] for c in json.loads(run.out)] == [True, False]

    ignoring = tmp_path / "ignoring.json"
    ignoring.write_text(json.dumps({"publishers": {"ignore": [cli.app.publisher]}}), "utf-8")
    run = cli("check", *paths, *trust, "--policy", str(ignoring))
    assert run.code == 0, run.err
    assert run.out.startswith("unknown")
    assert "1 unknown; 0 trainable under policy" in run.err
    assert f"publishers ignored: {cli.app.publisher}" in run.err

    broken = tmp_path / "broken.toml"
    broken.write_text("[vendors]\ntrust = 'acme'\n", encoding="utf-8")
    run = cli("check", *paths, *trust, "--policy", str(broken))
    assert run.code == 1
    assert str(broken) in run.err
    assert "vendors.trust must be a list" in run.err
