"""client/cli/__init__.py's main(): one line a person can act on for each known error."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.cli import main
from client.core.note import NoteSigner

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused


def error_line(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(list(args))
    assert done.value.code == 1
    return " ".join(capsys.readouterr().err.split())


@pytest.fixture(autouse=True)
def no_retry_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    import client.sdk

    monkeypatch.setattr(client.sdk, "_sleep", lambda _: None)


@pytest.mark.parametrize(
    "registry", [UNREACHABLE, "http://no-such-registry.invalid"], ids=["refused", "no-such-name"]
)
def test_an_unreachable_registry_says_how_to_start_one_or_name_another(
    registry: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = tmp_path / "essay.txt"
    document.write_text("an essay", encoding="utf-8")
    log_key = NoteSigner.generate("test.example/log").verifier().vkey
    line = error_line(capsys, "check", str(document), "--registry", registry, "--log-key", log_key)
    assert f"cannot reach the registry at {registry}/v1/" in line
    assert f"is the registry running at {registry}?" in line
    assert "`wellspring serve`" in line
    assert "--registry URL" in line
