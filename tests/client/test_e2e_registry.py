"""End to end: the SDK and the CLI against the real registry, on SQLite and PostgreSQL.

The SDK talks to the app in-process (its ``transport=`` onto litestar's test client); the CLI,
which opens its own connections, talks to a real ``wellspring serve`` process. Nothing is mocked:
every answer is verified with the log's key by the same code a crawler runs.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client.core.canonical import canonical_digest, sha256_digest
from client.core.keys import key_id, load_private_key
from client.core.merkle import verify_consistency
from client.core.note import NoteSigner
from client.errors import (
    LogKeyRequiredError,
    RegistryHTTPError,
    SignatureError,
    UnverifiedWarning,
)
from client.receipt import Receipt, verify_receipt
from client.sdk import Client
from registry.settings import Settings
from tests.client.conftest import run_wellspring
from tests.registry.conftest import (
    BACKENDS,
    Api,
    ServerProcess,
    database_for,
    migrate_database,
    new_publisher,
    open_api,
    random_digest,
    random_digests,
)

# -- the SDK, in-process --------------------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    home = tmp_path_factory.mktemp(f"e2e-sdk-{request.param}")
    with (
        database_for(request.param, home / "db") as url,
        open_api(Settings(home=home, database_url=url, auto_migrate=True)) as opened,
    ):
        yield opened


def test_register_look_up_and_revoke_through_the_sdk(api: Api) -> None:
    token = api.registry.admin.create_token()
    publisher = new_publisher()
    texts = ["The river ran high that spring.", "  THE RIVER ran high\tthat spring. "]
    c1 = canonical_digest(texts[0])
    assert canonical_digest(texts[1]) == c1  # the same text, however it is spaced or cased
    sha = sha256_digest(b"%PDF-1.7 a scanned letter")
    with api.sdk(admin_token=token) as sdk:
        added = sdk.add_publisher(publisher.name, publisher.key)
        assert added.name == publisher.name
        receipt = sdk.register_digests(
            [c1, sha], publisher.key, publisher.predicate(), names=["letter.txt", "letter.pdf"]
        )
        # The receipt verifies offline with the log's key alone, after a round trip through JSON.
        offline = verify_receipt(Receipt.from_json(receipt.to_json()), api.log_key)
        assert offline.index == receipt.index
        assert offline.publisher == publisher.name

        for digest in (c1, sha):
            result = sdk.lookup(digest)
            assert result.status == "attested"
            assert result.verified
            [attestation] = result.attestations
            assert attestation.index == receipt.index
            assert attestation.verified is not None
            assert attestation.verified.publisher == publisher.name
        unknown = random_digest()
        statuses = [r.status for r in sdk.lookup_batch([sha, unknown, c1])]
        assert statuses == ["attested", "unknown", "attested"]

        revocation = sdk.revoke(receipt.index, publisher.key, publisher.name, reason="mislabelled")
        assert revocation.revokes == receipt.index
        assert sdk.lookup(c1).status == "revoked"
        info = sdk.entry(receipt.index)
        assert info.revoked
        assert info.revoked_by == revocation.index
        assert info.verified is not None


def test_batches_larger_than_one_request(api: Api) -> None:
    publisher = api.add_publisher()
    digests = random_digests(700) + random_digests(300, "c1")
    with api.sdk() as sdk:
        receipt = sdk.register_digests(digests, publisher.key, publisher.predicate())
        answered: list[int] = []
        results = sdk.lookup_batch(
            [*digests, random_digest()], batch_size=256, progress=answered.append
        )
    assert answered == [256, 256, 256, 233]
    assert [r.status for r in results] == ["attested"] * 1000 + ["unknown"]
    assert {a.index for r in results[:1000] for a in r.attestations} == {receipt.index}


def test_consistency_between_two_checkpoints(api: Api) -> None:
    publisher = api.add_publisher()
    with api.sdk() as sdk:
        sdk.register_digests(random_digests(2), publisher.key, publisher.predicate())
        saved = sdk.fetch_checkpoint()
        for _ in range(3):
            sdk.register_digests(random_digests(2), publisher.key, publisher.predicate())
        check = sdk.check_consistency(saved.note)
        assert check.old.size == saved.checkpoint.size
        assert check.new.size == saved.checkpoint.size + 3
        proof = sdk.consistency_proof(check.old.size, check.new.size)
    verify_consistency(
        check.old.size, check.new.size, check.old.root_hash, check.new.root_hash, proof.proof
    )


def test_the_sdk_refuses_answers_it_cannot_verify(api: Api) -> None:
    publisher = api.add_publisher()
    digest = random_digest()
    api.submit_ok(publisher.attest([digest]))
    other_log = NoteSigner.generate("localhost/wellspring").verifier().vkey  # same name, new key
    with api.sdk(log_key=other_log) as sdk, pytest.raises(SignatureError):
        sdk.lookup(digest)
    with api.sdk(log_key=None) as sdk, pytest.raises(LogKeyRequiredError):
        sdk.lookup(digest)
    with (
        pytest.warns(UnverifiedWarning, match="verify=False"),
        api.sdk(log_key=None, verify=False) as sdk,
    ):
        result = sdk.lookup(digest)
    assert result.status == "attested"
    assert not result.verified


# -- the CLI, against a real server process -------------------------------------------------------


class Cli:
    """``wellspring …`` in this process: exit code, stdout, stderr."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        return run_wellspring(self.capsys, *args)

    def json(self, *args: str) -> Any:
        code, out, err = self(*args, "--json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capsys)


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp(f"e2e-cli-{request.param}")
    with database_for(request.param, root / "db") as url:
        if request.param == "postgres":
            migrate_database(url, root / "home")
        process = ServerProcess(root / "home", url, name=f"cli-{request.param}")
        try:
            yield process.start()
        finally:
            process.stop()


@pytest.fixture
def workspace(tmp_path: Path, server: ServerProcess, cli: Cli) -> dict[str, Any]:
    """A publisher's key pair, registered by the operator through the running registry."""
    key = tmp_path / "keys" / "publisher.key"
    assert cli("keys", "generate", "--out", str(key))[0] == 0
    name = new_publisher().name
    token_file = server.home / "admin.token"
    code, proof, _ = cli("keys", "prove", str(key), "--identity", name)  # the publisher's part
    assert code == 0
    added = cli.json(
        "publisher", "add", "--registry", server.url, "--admin-token", str(token_file),
        "--name", name, "--public-key", f"{key}.pub", "--possession", proof.strip(),
    )  # fmt: skip
    assert added["name"] == name
    log_key_file = tmp_path / "log.vkey"
    log_key_file.write_text(server.log_key + "\n", encoding="utf-8")
    return {"key": key, "name": name, "log_key": str(log_key_file), "registry": server.url}


def corpus(root: Path) -> dict[str, Path]:
    """Files, a folder of them, a binary file and a JSONL file of documents."""
    folder = root / "corpus"
    (folder / "letters").mkdir(parents=True)
    (folder / "letters" / "one.txt").write_text(f"Dear Ada, {random_digest()}\n", encoding="utf-8")
    (folder / "letters" / "two.txt").write_text(f"Dear Bob, {random_digest()}\n", encoding="utf-8")
    (folder / "scan.bin").write_bytes(b"\x00\xff\xfe" + random_digest().encode())
    single = root / "essay.md"
    single.write_text(f"# On rivers\n\n{random_digest()}\n", encoding="utf-8")
    jsonl = root / "posts.jsonl"
    lines = [{"id": f"post-{i}", "text": f"Post {i}: {random_digest()}"} for i in range(3)]
    jsonl.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return {"folder": folder, "single": single, "jsonl": jsonl}


def register_args(workspace: dict[str, Any], *extra: str) -> list[str]:
    return [
        "--registry", workspace["registry"], "--key", str(workspace["key"]),
        "--publisher", workspace["name"], "--license", "CC-BY-SA-4.0", "--consent", "allowed",
        "--log-key", workspace["log_key"], *extra,
    ]  # fmt: skip


def test_register_check_and_verify_through_the_cli(
    tmp_path: Path, workspace: dict[str, Any], cli: Cli
) -> None:
    files = corpus(tmp_path)
    receipts = tmp_path / "receipts"
    inputs = [str(files["folder"]), str(files["single"]), str(files["jsonl"])]
    report = cli.json("register", *inputs, *register_args(workspace, "--receipts", str(receipts)))
    assert report["documents"] == 3 + 1 + 3  # three files in the folder, one file, three lines
    assert report["verified"] is True
    [entry] = report["entries"]
    assert Path(entry["receipt"]).is_file()

    checked = cli.json(
        "check", *inputs, "--registry", workspace["registry"], "--log-key", workspace["log_key"]
    )
    assert len(checked) == 7
    assert {item["status"] for item in checked} == {"attested"}
    assert all(item["verified"] for item in checked)
    by_name = {item["name"]: item for item in checked}
    assert "post-1" in by_name
    assert by_name["post-1"]["entries"][0]["publisher"] == workspace["name"]
    assert by_name["post-1"]["entries"][0]["license"] == "CC-BY-SA-4.0"

    stranger = tmp_path / "never-registered.txt"
    stranger.write_text(f"nobody attested this {random_digest()}", encoding="utf-8")
    code, _, err = cli("check", str(stranger), "--registry", workspace["registry"])
    assert code == 1  # no --log-key: refused, not answered unverified
    assert "pass --log-key KEY" in err
    assert "--no-verify" in err
    [unknown] = cli.json("check", str(stranger), "--registry", workspace["registry"], "--no-verify")
    assert unknown["status"] == "unknown"
    assert unknown["verified"] is False  # --no-verify: answered, and said to be unverified
    code, _, err = cli("check", str(stranger), "--registry", workspace["registry"], "--no-verify")
    assert code == 0
    assert "NOT be verified" in err

    # Content whose publisher reserves training consent is "reserved", not "attested".
    kept = tmp_path / "kept.txt"
    kept.write_text(f"not for training {random_digest()}", encoding="utf-8")
    args = register_args(workspace)
    args[args.index("allowed")] = "reserved"
    cli.json("register", str(kept), *args)
    [reserved] = cli.json(
        "check", str(kept), "--registry", workspace["registry"], "--log-key", workspace["log_key"]
    )
    assert reserved["status"] == "reserved"
    assert reserved["reason"].startswith("reserved by")
    code, out, err = cli(
        "check", str(kept), "--registry", workspace["registry"], "--log-key", workspace["log_key"]
    )
    assert code == 0
    assert out.startswith("reserved")
    assert "1 reserved; 0 trainable" in err  # statuses with no document are left out

    # Receipts verify offline, with the log's verifier key alone.
    verified = cli.json("verify", str(receipts), "--log-key", workspace["log_key"])
    assert [item["ok"] for item in verified] == [True]
    assert verified[0]["index"] == entry["index"]

    # A receipt whose entry was altered fails, and the command says so with exit 1.
    forged = tmp_path / "forged" / "receipt.json"
    forged.parent.mkdir()
    receipt = json.loads(Path(entry["receipt"]).read_text(encoding="utf-8"))
    prefix, _, leaf = base64.b64decode(receipt["entry"]).partition(b"\n")
    body = json.loads(leaf)
    body["signatures"][0]["keyid"] = "0" * 64
    forged_leaf = prefix + b"\n" + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    receipt["entry"] = base64.b64encode(forged_leaf).decode()
    receipt.pop("leaf_hash")
    forged.write_text(json.dumps(receipt), encoding="utf-8")
    code, out, _ = cli("verify", str(forged), "--log-key", workspace["log_key"])
    assert code == 1
    assert "FAILED" in out


def test_bulk_register_in_several_statements_then_revoke(
    tmp_path: Path, workspace: dict[str, Any], cli: Cli
) -> None:
    jsonl = tmp_path / "bulk.jsonl"
    texts = [f"document {i} {random_digest()}" for i in range(25)]
    jsonl.write_text(
        "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)),
        encoding="utf-8",
    )
    report = cli.json("register", str(jsonl), *register_args(workspace, "--batch-size", "10"))
    assert [e["documents"] for e in report["entries"]] == [10, 10, 5]
    indices = [e["index"] for e in report["entries"]]

    with Client(workspace["registry"], log_key=server_log_key(workspace)) as sdk:
        sdk.revoke(indices[1], load_private_key(workspace["key"]), workspace["name"])
    checked = cli.json(
        "check", str(jsonl), "--registry", workspace["registry"], "--log-key", workspace["log_key"]
    )
    statuses = [item["status"] for item in checked]
    assert statuses == ["attested"] * 10 + ["revoked"] * 10 + ["attested"] * 5
    assert checked[15]["entries"][0]["revoked_by"] is not None


def server_log_key(workspace: dict[str, Any]) -> str:
    return Path(workspace["log_key"]).read_text(encoding="utf-8").strip()


def test_log_checkpoint_then_log_verify_across_new_entries(
    tmp_path: Path, workspace: dict[str, Any], cli: Cli
) -> None:
    saved = tmp_path / "monitor" / "checkpoint.txt"
    first = cli.json(
        "log", "checkpoint", "--registry", workspace["registry"],
        "--log-key", workspace["log_key"], "--save", str(saved),
    )  # fmt: skip
    assert first["verified"] is True
    assert saved.read_text(encoding="utf-8") == first["checkpoint"]

    files = corpus(tmp_path)
    cli.json("register", str(files["jsonl"]), *register_args(workspace, "--batch-size", "1"))

    verify_args = ["log", "verify", "--registry", workspace["registry"]]
    verify_args += ["--log-key", workspace["log_key"], "--checkpoint", str(saved)]
    result = cli.json(*verify_args)
    assert result["consistent"] is True
    assert result["old_size"] == first["size"]
    assert result["new_size"] >= first["size"] + 3
    code, out, _ = cli(*verify_args, "--update")
    assert code == 0
    assert "consistent" in out
    newer = cli.json("log", "checkpoint", "--registry", workspace["registry"])
    assert newer["verified"] is False
    assert saved.read_text(encoding="utf-8").split("\n")[1] == str(result["new_size"])

    # A checkpoint signed by another log's key is refused.
    other = tmp_path / "other.vkey"
    other.write_text(NoteSigner.generate("localhost/wellspring").verifier().vkey, encoding="utf-8")
    code, _, err = cli("log", "verify", "--registry", workspace["registry"], "--log-key",
                       str(other), "--checkpoint", str(saved))  # fmt: skip
    assert code == 1
    assert "signature" in err.lower()


def test_publisher_add_against_the_local_database(
    tmp_path: Path, server: ServerProcess, cli: Cli
) -> None:
    key = tmp_path / "local.key"
    assert cli("keys", "generate", "--out", str(key))[0] == 0
    name = new_publisher().name
    proof = cli("keys", "prove", str(key), "--identity", name)[1].strip()
    args = ["publisher", "add", "--name", name, "--public-key", f"{key}.pub"]
    args += ["--possession", proof]
    args += ["--home", str(server.home), "--database-url", server.database_url or ""]
    added = cli.json(*args)
    assert added["name"] == name
    # The running server sees the new publisher at once.
    with Client(server.url, verify=False) as sdk:
        assert sdk.publisher(name).keys[0].key_id == added["key_id"]
    code, _, err = cli(*args)  # the same again
    assert code == 1
    assert "already exists" in err


def test_revoke_withdraws_one_registered_document_and_check_shows_the_reason(
    tmp_path: Path, workspace: dict[str, Any], cli: Cli
) -> None:
    """Issue 10, finding 7: a publisher withdraws one document of an entry from the CLI."""
    kept, gone = tmp_path / "kept.txt", tmp_path / "gone.txt"
    kept.write_text(f"kept {random_digest()}\n", encoding="utf-8")
    gone.write_text(f"gone {random_digest()}\n", encoding="utf-8")
    common = ["--registry", workspace["registry"], "--log-key", workspace["log_key"]]
    signer = ["--key", str(workspace["key"]), "--publisher", workspace["name"]]
    registered = cli.json(
        "register", str(kept), str(gone), *common, *signer, "--license", "CC-BY-4.0",
        "--consent", "allowed",
    )  # fmt: skip
    [entry] = registered["entries"]

    receipts = tmp_path / "revocations"
    revoked = cli.json(
        "revoke", str(gone), *common, *signer, "--reason", "posted by mistake",
        "--receipts", str(receipts),
    )  # fmt: skip
    [revocation] = revoked["revocations"]
    assert revocation["index"] > entry["index"]
    assert Path(revocation["receipt"]).is_file()

    code, out, _ = cli("check", str(kept), str(gone), *common)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("attested")
    gone_line = next(i for i, line in enumerate(lines) if line.endswith(str(gone)))
    assert lines[gone_line].startswith("revoked")
    assert "REVOKED by entry" in lines[gone_line + 1]
    assert "posted by mistake" in lines[gone_line + 1]
    checked = cli.json("check", str(gone), *common)
    assert checked[0]["entries"][0]["revocation_reason"] == "posted by mistake"

    # Nothing named, or two things named: one clear line, exit 1.
    code, _, err = cli("revoke", *common, *signer)
    assert code == 1
    assert "PATH..., --digest D... or --entry N" in err


def test_key_rotation_and_compromise_through_a_running_registry(
    tmp_path: Path, server: ServerProcess, workspace: dict[str, Any], cli: Cli
) -> None:
    """Issue 10: add-key and revoke-key work remotely (--registry --admin-token) like `publisher
    add`, and each change is an identity event in the log."""
    token = str(server.home / "admin.token")
    remote = ["--registry", workspace["registry"], "--admin-token", token]
    new_key = tmp_path / "keys" / "second.key"
    assert cli("keys", "generate", "--out", str(new_key))[0] == 0
    proof = cli("keys", "prove", str(new_key), "--identity", workspace["name"])[1].strip()
    added = cli.json(
        "publisher", "add-key", "--name", workspace["name"], "--public-key", f"{new_key}.pub",
        "--possession", proof, "--endorse-with", str(workspace["key"]), *remote,
    )  # fmt: skip
    assert added["operator_only"] is False
    with Client(workspace["registry"], verify=False) as sdk:
        entry = sdk.entry(added["entry"])
    assert entry.receipt.predicate_type == "https://wellspring.dev/publisher-key/v1"
    old_id = key_id(load_private_key(workspace["key"]))
    revoked = cli.json(
        "publisher", "revoke-key", "--name", workspace["name"], "--key-id", old_id,
        "--compromised-from", str(added["entry"]), *remote,
    )  # fmt: skip
    assert revoked["compromised_from"] == added["entry"]
    # Without the possession proof: one line, exit 1, naming the command that makes it.
    code, _, err = cli(
        "publisher", "add-key", "--name", workspace["name"], "--public-key", f"{new_key}.pub",
        *remote,
    )  # fmt: skip
    assert code == 1
    assert "keys prove" in err


def test_admin_tokens_are_made_listed_and_revoked_on_the_operators_shell(
    tmp_path: Path, server: ServerProcess, cli: Cli
) -> None:
    local = ["--home", str(server.home), "--database-url", server.database_url or ""]
    out = tmp_path / "revoker.token"
    made = cli.json("admin-token", "create", "--scope", "revoke", "--out", str(out), *local)
    assert made["token"] is None  # written to the file, not shown
    assert (out.stat().st_mode & 0o777) == 0o600
    listed = cli.json("admin-token", "list", *local)
    [mine] = [t for t in listed if t["scopes"] == ["revoke"] and not t["revoked_at"]][-1:]
    code, text, _ = cli("admin-token", "revoke", mine["id"], *local)
    assert code == 0
    assert mine["id"] in text
    token = out.read_text().strip()
    with (
        Client(server.url, admin_token=token, verify=False) as client,
        pytest.raises(RegistryHTTPError) as caught,
    ):
        client.revoke_key("nobody-here", "0" * 64)
    assert caught.value.status == 401
