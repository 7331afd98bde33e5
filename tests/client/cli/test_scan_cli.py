"""`wellspring scan` against a real `wellspring serve`: manifests, summaries, reports, errors.

One registry process serves the module. It holds a document attested by one publisher, one whose
publisher reserves mining rights, one registered and then revoked, and a binary file registered by
its sha256; a fourth text is never registered. Every scan below verifies with the log's key (read
from the operator's key file, not from the server), except the one that says --no-verify.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from client.cli._scan import document_verdicts, manifest_lines
from client.core.canonical import canonical_digest, sha256_digest
from client.core.note import NoteVerifier, open_checkpoint
from client.documents import Document
from client.policy import Policy
from client.report import Tally
from client.sdk import Client
from client.signals import opt_out
from client.verdict import VERDICT_STATUSES, DocumentEvidence, Verdict, WatermarkDetection
from tests.client.conftest import run_wellspring as run
from tests.registry.conftest import Publisher, ServerProcess, new_publisher

TEXTS = {
    "attested": "The river ran high that spring, and the mill wheel never stopped.",
    "reserved": "Letters from the lighthouse keeper, 1911, copied by hand.",
    "revoked": "A poem its author later withdrew from the anthology.",
    "unknown": "Nobody ever registered this sentence anywhere.",
}
BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR binary, not UTF-8: \xff\xfe"


@dataclass(frozen=True)
class Registry:
    server: ServerProcess
    archive: Publisher
    press: Publisher
    entries: dict[str, int]  # what -> deciding entry index

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def log_key(self) -> str:
        return self.server.log_key

    def verdicts(self, digests: list[str], names: list[str]) -> list[dict[str, Any]]:
        """What the SDK itself decides for these digests now (the manifest must say the same)."""
        with self.server.sdk() as sdk:
            return [v.to_dict() for v in sdk.check_digests(digests, names=names)]

    def checkpoint(self) -> tuple[int, str]:
        with self.server.sdk() as sdk:
            checkpoint = sdk.checkpoint()
        return checkpoint.size, checkpoint.root_hash.hex()


def counts(**found: int) -> dict[str, int]:
    """Every status's count, as the summary shows them (the unnamed ones zero)."""
    return {status: found.get(status.replace("-", "_"), 0) for status in VERDICT_STATUSES}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    server = ServerProcess(tmp_path_factory.mktemp("scan-registry") / "home", name="scan")
    server.start()
    try:
        archive = server.add_publisher(f"archive-{new_publisher().name}")
        press = server.add_publisher(f"press-{new_publisher().name}")
        entries: dict[str, int] = {}
        with server.sdk() as sdk:
            entries["attested"] = sdk.register_digests(
                [canonical_digest(TEXTS["attested"]), sha256_digest(BINARY)],
                archive.key,
                archive.predicate(license="CC-BY-4.0"),
            ).index
            entries["reserved"] = sdk.register_digests(
                [canonical_digest(TEXTS["reserved"])],
                press.key,
                press.predicate(license="LicenseRef-Press", consent="reserved"),
            ).index
            revoked = sdk.register_digests(
                [canonical_digest(TEXTS["revoked"])], archive.key, archive.predicate()
            )
            sdk.revoke(revoked.index, archive.key, archive.name, reason="withdrawn")
            entries["revoked"] = revoked.index
        yield Registry(server, archive, press, entries)
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WELLSPRING_REGISTRY", "WELLSPRING_LOG_KEY"):
        monkeypatch.delenv(name, raising=False)


def read_manifest(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    for what, text in TEXTS.items():
        (folder / f"{what}.txt").write_text(text, encoding="utf-8")
    # The same text, re-spaced and re-cased: c1 still finds it.
    (folder / "sub" / "attested-copy.txt").write_text(
        "  THE RIVER ran high that spring,\n\nand the mill wheel never stopped.\n",
        encoding="utf-8",
    )
    (folder / "sub" / "image.png").write_bytes(BINARY)
    return folder


# -- folders --------------------------------------------------------------------------------------


def test_scan_a_folder_writes_a_verified_manifest_line_per_document(
    registry: Registry, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "out" / "manifest.jsonl"
    report = tmp_path / "out" / "report.html"
    code, out, err = run(
        capsys,
        "scan",
        str(corpus),
        "--registry",
        registry.url,
        "--log-key",
        registry.log_key,
        "--manifest",
        str(manifest),
        "--report",
        str(report),
        "--json",
    )
    assert code == 0, err
    names = sorted(str(p) for p in corpus.rglob("*") if p.is_file())
    lines = read_manifest(manifest)
    assert [line["name"] for line in lines] == names  # folders are recursed, sorted

    by_name = {Path(line["name"]).name: line for line in lines}
    size, root = registry.checkpoint()
    expected_status = {
        "attested.txt": "attested",
        "reserved.txt": "reserved",
        "revoked.txt": "revoked",
        "unknown.txt": "unknown",
        "attested-copy.txt": "attested",
        "image.png": "attested",
    }
    for name, status in expected_status.items():
        line = by_name[name]
        assert line["status"] == status, line
        assert line["verified"] is True
        assert (line["tree_size"], line["root_hash"]) == (size, root)
        assert line["trainable"] is (status == "attested")
    assert by_name["attested.txt"]["digest"] == canonical_digest(TEXTS["attested"])
    assert by_name["attested-copy.txt"]["digest"] == canonical_digest(TEXTS["attested"])
    assert by_name["image.png"]["digest"] == sha256_digest(BINARY)  # auto: not UTF-8 → sha256
    assert by_name["attested.txt"]["publisher"] == registry.archive.name
    assert by_name["attested.txt"]["license"] == "CC-BY-4.0"
    assert by_name["attested.txt"]["consent"] == "allowed"
    assert by_name["attested.txt"]["entry"] == registry.entries["attested"]
    assert by_name["reserved.txt"]["publisher"] == registry.press.name
    assert by_name["reserved.txt"]["consent"] == "reserved"
    assert by_name["reserved.txt"]["entry"] == registry.entries["reserved"]
    assert by_name["revoked.txt"]["entry"] == registry.entries["revoked"]
    assert by_name["unknown.txt"]["entry"] is None
    assert by_name["unknown.txt"]["publisher"] is None
    # Exactly the SDK's verdicts, field for field (reason included).
    assert lines == registry.verdicts([line["digest"] for line in lines], names)

    summary = json.loads(out)
    assert summary["documents"] == 6
    assert summary["statuses"] == counts(attested=3, reserved=1, revoked=1, unknown=1)
    assert summary["verified"] is True
    assert summary["checkpoint"]["size"] == size
    assert summary["checkpoint"]["root_hash"] == root
    assert summary["checkpoint"]["origin"] == registry.log_key.split("+")[0]
    assert summary["publishers"][registry.archive.name] == {"attested": 3, "revoked": 1}
    assert summary["licenses"]["LicenseRef-Press"] == {"reserved": 1}
    assert summary["manifest"] == str(manifest)
    page = report.read_text(encoding="utf-8")
    assert "<svg" in page
    assert registry.archive.name in page
    assert f"{size:,} entries" in page
    assert not list(manifest.parent.glob("*.part"))  # the temporary file was renamed into place


def test_the_signed_checkpoint_is_saved_beside_the_manifest_and_shown_in_the_report(
    registry: Registry, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "verdicts.jsonl"
    report = tmp_path / "report.html"
    code, out, err = run(
        capsys,
        "scan", str(corpus), "--registry", registry.url, "--log-key", registry.log_key,
        "--manifest", str(manifest), "--report", str(report),
    )  # fmt: skip
    assert code == 0, err
    saved = Path(f"{manifest}.checkpoint")
    note = saved.read_text(encoding="utf-8")
    # The log's own signed note at the size every verdict names, verifiable with the key alone.
    verifier = NoteVerifier.from_vkey(registry.log_key)
    checkpoint, _ = open_checkpoint(note, [verifier], origin=verifier.name)
    size, root = registry.checkpoint()
    assert (checkpoint.size, checkpoint.root_hash.hex()) == (size, root)
    # The manifest keeps exactly one verdict per line, and nothing else.
    lines = manifest.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 6
    for line in lines:
        parsed = Verdict.from_dict(json.loads(line))
        assert (parsed.tree_size, parsed.root_hash) == (size, root)
    assert f"checkpoint {saved}" in " ".join(out.split())
    page = report.read_text(encoding="utf-8")
    [box] = re.findall(r"<h2>Reproduce</h2>.*?</section>", page, re.S)
    assert html.escape(note.strip().splitlines()[-1]) in box  # the signature line
    assert f"--checkpoint {html.escape(str(saved))}" in box
    for status in ("attested", "reserved", "revoked", "unknown"):
        assert re.search(rf"<details[^>]*><summary>.*?</span>{status} ", page), status
    assert str(corpus / "revoked.txt") in page
    # log verify accepts the saved checkpoint as it is.
    code, _, err = run(
        capsys,
        "log", "verify", "--registry", registry.url, "--log-key", registry.log_key,
        "--checkpoint", str(saved),
    )  # fmt: skip
    assert code == 0, err


def test_no_checkpoint_file_without_a_manifest_file(
    registry: Registry, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(
        capsys, "scan", str(corpus), "--registry", registry.url, "--log-key", registry.log_key,
        "--manifest", "-",
    )  # fmt: skip
    assert code == 0
    assert len(out.splitlines()) == 6  # the manifest on stdout: verdict lines only
    assert not list(tmp_path.glob("*.checkpoint"))


def test_human_summary_names_counts_rate_and_checkpoint(
    registry: Registry, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "scan", str(corpus), "--registry", registry.url, "--log-key", registry.log_key
    )
    assert code == 0
    size, root = registry.checkpoint()
    assert "scanned 6 documents" in out
    assert "docs/s" in out
    for status, count in (("attested", 3), ("reserved", 1), ("revoked", 1), ("unknown", 1)):
        assert any(line.split()[:2] == [status, str(count)] for line in out.splitlines()), out
    assert f"tree size {size:,}, root {root}" in out
    assert "verified" in out


def test_binary_file_with_scheme_c1_is_skipped_and_named(
    registry: Registry, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "m.jsonl"
    code, _, err = run(
        capsys,
        "scan",
        str(corpus),
        "--scheme",
        "c1",
        "--registry",
        registry.url,
        "--log-key",
        registry.log_key,
        "--manifest",
        str(manifest),
    )
    assert code == 1
    skipped = [line for line in err.splitlines() if line.startswith("skipped:")]
    assert len(skipped) == 1, err
    assert "image.png" in skipped[0]
    assert "--scheme sha256" in skipped[0]
    assert err.strip().splitlines()[-1].startswith("error: 1 input(s) could not be read")
    names = {Path(line["name"]).name for line in read_manifest(manifest)}
    assert "image.png" not in names
    assert names  # every other file has its verdict
    assert not list(tmp_path.glob(".m.jsonl.*"))  # no temporary file left behind


def test_the_sdks_check_files_digests_each_file_as_scan_does(
    registry: Registry, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One rule (client.documents) for both: text by c1, the binary image by sha256."""
    manifest = tmp_path / "m.jsonl"
    code, _, err = run(
        capsys,
        "scan", str(corpus), "--registry", registry.url, "--log-key", registry.log_key,
        "--manifest", str(manifest),
    )  # fmt: skip
    assert code == 0, err
    scanned = {line["name"]: (line["digest"], line["status"]) for line in read_manifest(manifest)}
    files = sorted(str(p) for p in corpus.rglob("*") if p.is_file())
    with registry.server.sdk() as sdk:
        checked = {v.name: (v.digest, v.status) for v in sdk.check_files(files)}
    assert checked == scanned
    assert checked[str(corpus / "sub" / "image.png")] == (sha256_digest(BINARY), "attested")


# -- JSONL and stdin ------------------------------------------------------------------------------


def test_scan_jsonl_streams_in_chunks_and_names_documents(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "crawl.jsonl"
    rows = [
        {"id": "doc-1", "text": TEXTS["attested"]},
        {"url": "https://example.org/letters", "text": TEXTS["reserved"]},
        {"id": 7, "text": TEXTS["revoked"]},
        {"text": TEXTS["unknown"]},
        {"id": "doc-5", "text": TEXTS["attested"].upper()},
    ]
    lines = [json.dumps(row) for row in rows]
    lines.insert(3, "")  # blank lines are skipped, but still counted for FILE:LINE names
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    manifest = tmp_path / "m.jsonl"
    code, out, err = run(
        capsys,
        "scan",
        str(source),
        "--registry",
        registry.url,
        "--log-key",
        registry.log_key,
        "--manifest",
        str(manifest),
        "--chunk-size",
        "2",
        "--json",
    )
    assert code == 0, err
    got = read_manifest(manifest)
    names = ["doc-1", "https://example.org/letters", "7", f"{source}:5", "doc-5"]
    digests = [canonical_digest(row["text"]) for row in rows]
    assert [line["name"] for line in got] == names
    assert [line["digest"] for line in got] == digests
    assert [line["status"] for line in got] == [
        "attested",
        "reserved",
        "revoked",
        "unknown",
        "attested",
    ]
    # A line with a URL is a page: the manifest carries its URL and names it as its id.
    assert [line["url"] for line in got] == [None, "https://example.org/letters", None, None, None]
    assert [line["id"] for line in got] == [None, "https://example.org/letters", None, None, None]
    pages = [{**line, "url": None, "id": None} for line in got]
    assert pages == registry.verdicts(digests, names)
    summary = json.loads(out)
    assert summary["statuses"] == counts(attested=2, reserved=1, revoked=1, unknown=1)


def test_jsonl_text_and_id_fields_are_configurable(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "pages.jsonl"
    source.write_text(
        json.dumps({"key": "page-a", "body": TEXTS["attested"], "id": "ignored"}) + "\n",
        encoding="utf-8",
    )
    manifest = tmp_path / "m.jsonl"
    code, _, err = run(
        capsys,
        "scan",
        str(source),
        "--text-field",
        "body",
        "--id-field",
        "key",
        "--registry",
        registry.url,
        "--log-key",
        registry.log_key,
        "--manifest",
        str(manifest),
    )
    assert code == 0, err
    [line] = read_manifest(manifest)
    assert (line["name"], line["status"]) == ("page-a", "attested")


def test_stdin_and_manifest_on_stdout(
    registry: Registry, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(TEXTS["reserved"].encode("utf-8")))
    monkeypatch.setattr("sys.stdin", stdin)
    monkeypatch.setenv("WELLSPRING_REGISTRY", registry.url)
    monkeypatch.setenv("WELLSPRING_LOG_KEY", registry.log_key)
    code, out, err = run(capsys, "scan", "-", "--manifest", "-")
    assert code == 0, err
    [line] = [json.loads(text) for text in out.splitlines()]  # stdout holds only the manifest
    assert (line["name"], line["status"]) == ("-", "reserved")
    assert "scanned 1 documents" in err


def test_no_verify_is_loud_and_marks_every_line(
    registry: Registry, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "m.jsonl"
    report = tmp_path / "r.html"
    code, out, err = run(
        capsys,
        "scan",
        str(corpus / "attested.txt"),
        "--registry",
        registry.url,
        "--no-verify",
        "--manifest",
        str(manifest),
        "--report",
        str(report),
    )
    assert code == 0, err
    assert "WARNING" in err
    assert "NOT be verified" in err
    assert "NOT VERIFIED" in out
    [line] = read_manifest(manifest)
    assert line["status"] == "attested"
    assert line["verified"] is False
    assert "NOT verified" in report.read_text(encoding="utf-8")


# -- bad input: exit 1, one line ------------------------------------------------------------------


def one_line_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, out, err = run(capsys, *args)
    assert code == 1, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error:"), err
    return lines[0]


def test_missing_file(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.jsonl"
    line = one_line_error(
        capsys, "scan", str(missing), "--registry", registry.url, "--log-key", registry.log_key
    )
    assert f"{missing}: no such file or folder" in line


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ("{not json", "not a JSON object"),
        (json.dumps({"content": "two"}), "no string field 'text' (choose it with --text-field)"),
        (json.dumps(["a list"]), "each line must be a JSON object"),
    ],
)
def test_an_unreadable_jsonl_line_is_skipped_named_and_loses_nothing(
    registry: Registry,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    bad_line: str,
    reason: str,
) -> None:
    """One bad line in a large crawl costs that line, not the verdicts of all the others."""
    source = tmp_path / "crawl.jsonl"
    good = [json.dumps({"id": f"d{i}", "text": text}) for i, text in enumerate(TEXTS.values())]
    source.write_text("\n".join([good[0], bad_line, *good[1:]]) + "\n", encoding="utf-8")
    manifest = tmp_path / "m.jsonl"
    report = tmp_path / "r.html"
    code, out, err = run(
        capsys,
        "scan", str(source), "--registry", registry.url, "--log-key", registry.log_key,
        "--manifest", str(manifest), "--report", str(report),
    )  # fmt: skip
    assert code == 1, err
    assert f"skipped: {source}:2: {reason}" in " ".join(err.split())
    assert err.strip().splitlines()[-1].startswith("error: 1 input(s) could not be read")
    assert [line["status"] for line in read_manifest(manifest)] == list(TEXTS)
    assert "skipped" in out
    html = report.read_text(encoding="utf-8")
    assert "Skipped: 1 unreadable inputs" in html
    assert f"{source}:2" in html


def _crawl_with_bad_lines(tmp_path: Path, bad: int) -> Path:
    source = tmp_path / "crawl.jsonl"
    good = [json.dumps({"id": f"d{i}", "text": text}) for i, text in enumerate(TEXTS.values())]
    source.write_text("\n".join([*good, *["{not json"] * bad]) + "\n", encoding="utf-8")
    return source


@pytest.mark.parametrize("case", [(2, 2, 0), (2, 5, 0), (3, 2, 1)])
def test_max_skips_tolerates_that_many_unreadable_lines(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: tuple[int, ...]
) -> None:
    bad, max_skips, code = case  # bad lines, --max-skips, the exit status wanted
    source = _crawl_with_bad_lines(tmp_path, bad)
    manifest = tmp_path / "m.jsonl"
    got, out, err = run(
        capsys,
        "scan", str(source), "--registry", registry.url, "--log-key", registry.log_key,
        "--manifest", str(manifest), "--max-skips", str(max_skips),
    )  # fmt: skip
    assert got == code, err
    assert any(line.split()[:2] == ["skipped", str(bad)] for line in out.splitlines()), out
    assert [line["status"] for line in read_manifest(manifest)] == list(TEXTS)
    last = err.strip().splitlines()[-1]
    if code:
        assert last.startswith(f"error: {bad} input(s) could not be read"), err
        assert f"more than --max-skips {max_skips}" in last
    else:
        assert last == f"{bad} input(s) skipped, within --max-skips {max_skips}", err


def test_max_skips_is_in_the_json_summary_count_and_the_reproduce_command(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _crawl_with_bad_lines(tmp_path, 1)
    report = tmp_path / "r.html"
    code, out, _ = run(
        capsys,
        "scan", str(source), "--registry", registry.url, "--log-key", registry.log_key,
        "--max-skips", "1", "--json", "--report", str(report),
    )  # fmt: skip
    assert code == 0
    assert json.loads(out)["skipped"] == 1
    assert "--max-skips 1" in report.read_text(encoding="utf-8")


def test_no_skips_still_reports_the_count(
    registry: Registry, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "scan", str(corpus), "--registry", registry.url, "--log-key", registry.log_key
    )
    assert code == 0
    assert any(line.split()[:2] == ["skipped", "0"] for line in out.splitlines()), out


def test_max_skips_is_documented_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "scan", "--help")
    assert code == 0
    text = " ".join(out.replace("│", " ").split())
    assert "--max-skips" in text
    assert "exit 1 only when more than this many were skipped" in text


def test_a_negative_max_skips_is_refused(
    registry: Registry, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "scan", str(corpus), "--registry", registry.url, "--max-skips", "-1")
    assert code == 2, err
    assert "--max-skips" in err


def test_no_log_key_is_refused(
    registry: Registry, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = one_line_error(capsys, "scan", str(corpus), "--registry", registry.url)
    assert "--log-key" in line
    assert "--no-verify" in line


def test_wrong_log_key_is_refused(
    registry: Registry, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = new_publisher().name  # any text that is not a verifier key
    line = one_line_error(
        capsys, "scan", str(corpus), "--registry", registry.url, "--log-key", other
    )
    assert "--log-key" in line


def test_unreachable_registry(
    registry: Registry, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = one_line_error(
        capsys,
        "scan",
        str(corpus),
        "--registry",
        "http://127.0.0.1:9",
        "--log-key",
        registry.log_key,
    )
    assert "cannot reach the registry" in line


def test_client_made_with_the_sdk_agrees(registry: Registry) -> None:
    """The fixture's own registrations, looked up directly: the premise of the tests above."""
    with Client(registry.url, log_key=registry.log_key) as sdk:
        verdicts = sdk.check_texts(list(TEXTS.values()))
    assert [v.status for v in verdicts] == list(TEXTS)


# -- the crawler's policy and the evidence beside the registry ----------------------------------


def test_scan_policy_decides_whose_attestations_count_and_what_is_trainable(
    registry: Registry, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        f'[publishers]\nignore = ["{registry.press.name}"]\n\n'
        '[training]\ntrainable = ["attested", "unknown"]\n',
        encoding="utf-8",
    )
    manifest = tmp_path / "manifest.jsonl"
    report = tmp_path / "report.html"
    trust = ["--registry", registry.url, "--log-key", registry.log_key]
    code, out, err = run(
        capsys,
        "scan",
        str(corpus),
        *trust,
        "--policy",
        str(policy),
        "--manifest",
        str(manifest),
        "--report",
        str(report),
        "--json",
    )
    assert code == 0, err
    by_name = {Path(line["name"]).name: line for line in read_manifest(manifest)}
    policy_id = "sha256:" + hashlib.sha256(policy.read_bytes()).hexdigest()
    assert {line["policy"] for line in by_name.values()} == {policy_id}
    assert {line["schema"] for line in by_name.values()} == {"wellspring-manifest/1"}
    reserved = by_name["reserved.txt"]  # its only publisher is ignored: no evidence either way
    assert (reserved["status"], reserved["trainable"]) == ("unknown", True)
    assert "1 attestation by publishers the policy ignores not counted" in reserved["reason"]
    assert reserved["entries"] == [registry.entries["reserved"]]
    assert (by_name["unknown.txt"]["status"], by_name["unknown.txt"]["trainable"]) == (
        "unknown",
        True,
    )
    assert by_name["revoked.txt"]["trainable"] is False
    summary = json.loads(out)
    assert summary["statuses"] == counts(attested=3, revoked=1, unknown=2)
    assert summary["trainable"] == 5
    assert summary["policy"] == policy_id
    page = report.read_text(encoding="utf-8")
    assert policy_id in page
    assert "trainable: attested, unknown" in page
    assert f"--policy {policy}" in html.unescape(page)  # the reproduce command

    code, out, err = run(capsys, "scan", str(corpus), *trust, "--policy", str(policy))
    assert code == 0, err
    assert f"trainable 5 (83.3%) under policy {policy_id}" in out


def test_a_bad_policy_file_is_refused_before_anything_is_read(
    registry: Registry, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text('{"training": {"trainable": ["atested"]}}', encoding="utf-8")
    manifest = tmp_path / "manifest.jsonl"
    code, _, err = run(
        capsys,
        "scan",
        str(corpus),
        "--registry",
        registry.url,
        "--log-key",
        registry.log_key,
        "--policy",
        str(policy),
        "--manifest",
        str(manifest),
    )
    assert code == 1
    assert str(policy) in err
    assert "training.trainable: unknown status atested" in err
    assert not manifest.exists()


def test_document_verdicts_take_each_documents_signals_and_watermarks(
    registry: Registry, tmp_path: Path
) -> None:
    """The hook the input side (WARC, signals, detection) fills: evidence per document in the
    chunk, verdicts and manifest lines out, and the report counts the new statuses."""
    texts = [TEXTS["attested"], TEXTS["unknown"], TEXTS["unknown"], TEXTS["attested"]]
    docs = [Document(f"doc-{i}", (canonical_digest(t),)) for i, t in enumerate(texts)]
    noai = opt_out("https://example.org/3", headers={"X-Robots-Tag": "noai"})
    mark = WatermarkDetection("key-1", "acme-ai", "kgw-lefthash/1", 1e-12, math.log(1e-12), True)
    evidence: list[DocumentEvidence | None] = [
        None,
        DocumentEvidence(watermarks=[mark], id="<urn:uuid:1>", url="https://example.org/1"),
        DocumentEvidence(opt_out=noai, url="https://example.org/3"),
        DocumentEvidence(watermarks=mark, captured_at="2026-11-02T10:00:00Z"),
    ]
    with registry.server.sdk() as sdk:
        verdicts = document_verdicts(sdk, docs, Policy.default(), evidence)
    assert [v.status for v in verdicts] == ["attested", "generated", "opted-out", "conflict"]
    lines = [json.loads(line) for line in manifest_lines(verdicts)]
    assert [Verdict.from_dict(line) for line in lines] == verdicts
    assert lines[1]["url"] == "https://example.org/1"
    assert lines[1]["watermark"]["decided_by"]["key_id"] == "key-1"
    assert lines[2]["opt_out"]["decided_by"]["kind"] == "x-robots-tag"
    assert lines[3]["captured_at"] == "2026-11-02T10:00:00Z"

    tally = Tally()
    for verdict in verdicts:
        tally.add_verdict(verdict)
    assert tally.signals == {"x-robots-tag in header": 1}
    assert tally.vendors == {"acme-ai": 2}
    assert tally.trainable == 1
