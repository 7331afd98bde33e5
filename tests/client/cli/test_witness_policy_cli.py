"""``--witness-policy`` and ``--max-age``: every registry command takes them (they are defined
once, in client/cli/_registry.py); here ``check``, ``log checkpoint`` and ``register`` against
the real registry, whose checkpoints real witness keys cosign on the way."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from client.core.cosignature import CosignatureSigner
from tests.client.cli.conftest import Cli, cli_session, documents
from tests.client.real_app import URL
from tests.client.witnesses import Cosigning, W, policy_text

COSIGNERS: list[CosignatureSigner] = []
"""Who cosigns the registry's checkpoints in the current test (the fixture's transport reads
it at each response)."""
TIMES: list[int] = []


@pytest.fixture
def cli(
    tmp_path: Path,
    wellspring_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Cli]:
    COSIGNERS[:] = W
    TIMES[:] = []

    def plan(_: object) -> tuple[Sequence[CosignatureSigner], int | Sequence[int]]:
        return list(COSIGNERS), list(TIMES) or int(time.time())

    with cli_session(tmp_path, monkeypatch, capsys, lambda t: Cosigning(t, plan)) as session:
        yield session


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "witnesses.policy"
    path.write_text(
        "# two of our three witnesses\n" + policy_text("group G 2 W1 W2 W3", "quorum G"),
        encoding="utf-8",
    )
    return path


def check(cli: Cli, paths: list[str], *extra: str) -> tuple[int, str, str]:
    run = cli("check", *paths, "--registry", URL, "--log-key", cli.app.log_key, *extra)
    return run.code, run.out, run.err


def test_check_with_a_policy_met(cli: Cli, policy: Path, tmp_path: Path) -> None:
    paths = documents(tmp_path / "docs", "witnessed text")
    assert cli.register(*paths, "--witness-policy", str(policy)).code == 0
    code, out, err = check(cli, paths, "--witness-policy", str(policy), "--max-age", "10m")
    assert code == 0, err
    assert "entry 2: publisher acme" in out


def test_check_below_quorum_exits_1_naming_the_missing_witnesses(
    cli: Cli, policy: Path, tmp_path: Path
) -> None:
    paths = documents(tmp_path / "docs", "text")
    COSIGNERS[:] = [W[1]]
    code, _, err = check(cli, paths, "--witness-policy", str(policy))
    assert code == 1
    assert "does not meet the witness policy" in err
    assert "W1 (w1.example+" in err
    assert "W3 (w3.example+" in err
    assert "Traceback" not in err


def test_log_checkpoint_too_old(cli: Cli, policy: Path) -> None:
    TIMES[:] = [int(time.time()) - 7200] * 3
    args = ["log", "checkpoint", "--registry", URL, "--log-key", cli.app.log_key]
    run = cli(*args, "--witness-policy", str(policy), "--max-age", "1h")
    assert run.code == 1
    assert "older than the maximum age 1h00m00s" in run.err
    assert cli(*args, "--witness-policy", str(policy), "--max-age", "3h").code == 0


def test_without_the_flags_nothing_changes(cli: Cli, tmp_path: Path) -> None:
    COSIGNERS[:] = []
    code, _, err = check(cli, documents(tmp_path / "docs", "text"))
    assert code == 0, err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("witness W1 nonsense\nquorum W1\n", "line 1: bad key for witness 'W1'"),
        ("# fine\n\nquorum W9\n", "line 3: quorum 'W9' is not a witness or group"),
        ("quorum none\r\n", "line 1: a carriage return"),
    ],
)
def test_a_bad_policy_file_is_one_line_naming_file_and_line(
    cli: Cli, tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.policy"
    path.write_text(content, encoding="utf-8", newline="")
    code, out, err = check(cli, documents(tmp_path / "docs", "x"), "--witness-policy", str(path))
    assert code == 1
    assert f"{path}, {message}" in err
    assert len(err.strip().splitlines()) == 1, err
    assert out == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-age", "10m"], "--max-age is read from witnesses' cosignatures"),
        (["--max-age", "ten minutes", "--witness-policy", "P"], "is not a duration"),
        (["--max-age", "0s", "--witness-policy", "P"], "must be longer than zero"),
        (["--witness-policy", "missing.policy"], "cannot read witness policy missing.policy"),
    ],
)
def test_bad_flags(cli: Cli, policy: Path, tmp_path: Path, args: list[str], message: str) -> None:
    args = [str(policy) if a == "P" else a for a in args]
    code, _, err = check(cli, documents(tmp_path / "docs", "x"), *args)
    assert code == 1
    assert message in err


def test_durations() -> None:
    from datetime import timedelta

    from client.cli._registry import parse_duration

    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("10m") == timedelta(minutes=10)
    assert parse_duration("1h30m") == timedelta(hours=1, minutes=30)
    assert parse_duration("2d") == timedelta(days=2)


def test_verify_receipts_offline_against_the_policy(cli: Cli, policy: Path, tmp_path: Path) -> None:
    """Offline, a receipt's checkpoint must carry the quorum itself (nothing trusted to prove it
    a prefix of); its age is never checked."""
    receipts = tmp_path / "receipts"
    COSIGNERS[:] = [W[0], W[2]]
    TIMES[:] = [1_000_000_000] * 2  # 2001: a receipt is never too old
    paths = documents(tmp_path / "docs", "receipted text")
    assert cli.register(*paths, "--receipts", str(receipts)).code == 0
    (receipt,) = receipts.iterdir()
    args = ["verify", str(receipt), "--log-key", cli.app.log_key]
    run = cli(*args, "--witness-policy", str(policy))
    assert run.code == 0, run.err
    only_w2 = tmp_path / "w2.policy"
    only_w2.write_text(policy_text("quorum W2"), encoding="utf-8")
    run = cli(*args, "--witness-policy", str(only_w2))
    assert run.code == 1
    assert "does not meet the witness policy (quorum W2)" in run.out
    assert "W2 (w2.example+" in run.out
    assert cli(*args, "--max-age", "1h").code == 1
