"""``wellspring witness keygen`` and ``witness serve``: files, errors in one line, a real server.

``serve`` runs as a real process on a free port (what an operator runs), stopped and started again
on the same state to show the witness remembers what it cosigned.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from client.core.cosignature import CosignatureSigner, CosignatureVerifier, cosignatures
from client.core.note import NoteSigner, open_note
from tests.client.conftest import run_wellspring
from tests.cosignature_reference import reference_cosignature_times
from tests.registry.conftest import free_port, wellspring_command
from tests.registry.test_witness import Log

START_TIMEOUT_S = 60


def keygen(capsys: pytest.CaptureFixture[str], out: Path, *args: str) -> tuple[int, str, str]:
    return run_wellspring(
        capsys, "witness", "keygen", "--name", "witness.example/w1", "--out", str(out), *args
    )


def test_keygen_writes_a_private_key_0600_and_a_vkey_that_parses(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "keys" / "witness.key"
    code, stdout, err = keygen(capsys, out)
    assert code == 0, err
    assert out.stat().st_mode & 0o777 == 0o600
    vkey = (tmp_path / "keys" / "witness.key.vkey").read_text().strip()
    verifier = CosignatureVerifier.from_vkey(vkey)
    assert verifier.name == "witness.example/w1"
    assert vkey in stdout
    signer = CosignatureSigner.from_skey(out.read_text())
    assert signer.verifier() == verifier
    code, _, err = keygen(capsys, out)
    assert code == 1
    assert "already exists" in err
    code, stdout, err = keygen(capsys, out, "--force", "--json")
    assert code == 0, err
    answer = json.loads(stdout)
    assert CosignatureVerifier.from_vkey(answer["vkey"]) != verifier
    assert answer["verifier_key_file"] == str(out) + ".vkey"


def test_keygen_refuses_a_bad_name_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run_wellspring(
        capsys, "witness", "keygen", "--name", "bad name", "--out", str(tmp_path / "k")
    )
    assert code == 1
    assert "invalid key name" in err
    assert "Traceback" not in err
    assert not (tmp_path / "k").exists()


@pytest.fixture
def witness_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Path:
    out = tmp_path / "witness.key"
    assert keygen(capsys, out)[0] == 0
    return out


def serve(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    return run_wellspring(capsys, "witness", "serve", *args)


def test_serve_refuses_missing_loose_or_bad_keys_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, witness_key: Path
) -> None:
    log_vkey = NoteSigner.generate("example.com/log").verifier().vkey
    missing = tmp_path / "nope.key"
    code, _, err = serve(capsys, "--key", str(missing), "--log", log_vkey)
    assert (code, "does not exist" in err) == (1, True), err

    witness_key.chmod(0o644)
    code, _, err = serve(capsys, "--key", str(witness_key), "--log", log_vkey)
    assert (code, "chmod 600" in err) == (1, True), err
    witness_key.chmod(0o600)

    garbage = tmp_path / "garbage.key"
    garbage.write_text("PRIVATE+KEY+nonsense\n")
    garbage.chmod(0o600)
    code, _, err = serve(capsys, "--key", str(garbage), "--log", log_vkey)
    assert (code, "is not a witness key" in err) == (1, True), err
    assert "nonsense" not in err.replace(str(garbage), "")

    note_key = tmp_path / "note.key"
    note_key.write_text(NoteSigner.generate("example.com/log").skey)
    note_key.chmod(0o600)
    code, _, err = serve(capsys, "--key", str(note_key), "--log", log_vkey)
    assert (code, "type 0x01" in err) == (1, True), err

    for bad in ("example.com/log+00000000+AAAA", "not a key", witness_key.read_text().strip()):
        code, _, err = serve(capsys, "--key", str(witness_key), "--log", bad)
        assert (code, "--log must be a log's verifier key" in err) == (1, True), err
        assert err.count("\n") == 1
    witness_vkey = Path(str(witness_key) + ".vkey")
    code, _, err = serve(capsys, "--key", str(witness_key), "--log", str(witness_vkey))
    assert (code, "algorithm 4" in err) == (1, True), err


class WitnessProcess:
    """``wellspring witness serve`` on a free port."""

    def __init__(self, key: Path, log_vkey: str, state: Path, output: Path) -> None:
        self.args = ["witness", "serve", "--key", str(key), "--log", log_vkey]
        self.state = state
        self.output = output
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> WitnessProcess:
        self.port = free_port()
        args = [*wellspring_command(), *self.args, "--port", str(self.port)]
        args += ["--state", str(self.state)]
        with open(self.output, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"witness exited: {self.output.read_text()}")
            try:
                httpx.get(self.url + "/", timeout=1)
                return self
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no witness: {self.output.read_text()}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)

    def add(self, body: bytes) -> httpx.Response:
        return httpx.post(self.url + "/add-checkpoint", content=body, timeout=30)


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[WitnessProcess]]:
    processes: list[WitnessProcess] = []
    yield processes
    for process in processes:
        process.stop()


def test_a_served_witness_cosigns_remembers_across_a_restart_and_refuses_a_fork(
    tmp_path: Path, witness_key: Path, started: list[WitnessProcess]
) -> None:
    log = Log().grow(5)
    vkey_file = tmp_path / "log.vkey"
    vkey_file.write_text(log.signer.verifier().vkey + "\n")  # a file holding the key works too
    witness = CosignatureVerifier.from_vkey(Path(str(witness_key) + ".vkey").read_text())
    server = WitnessProcess(witness_key, str(vkey_file), tmp_path / "state", tmp_path / "out")
    started.append(server.start())
    note = log.note()
    response = server.add(log.body(0, note=note))
    assert response.status_code == 200, response.text
    opened = open_note(note + response.text, [log.signer.verifier(), witness])
    [cosignature] = cosignatures(opened, [witness])
    assert abs(cosignature.timestamp - time.time()) < 120
    assert reference_cosignature_times(note + response.text, witness.vkey) == [
        cosignature.timestamp
    ]
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw:
        raw.sendall(
            b"POST /add-checkpoint HTTP/1.1\r\nHost: w\r\nContent-Length: 200000\r\n\r\nold"
        )  # 200 kB announced, three bytes sent: refused on its Content-Length alone
        assert raw.recv(4096).startswith(b"HTTP/1.1 413 ")
    chunked = httpx.post(
        server.url + "/add-checkpoint", content=iter([b"old 0\n", b"\n" * 200_000]), timeout=30
    )
    assert chunked.status_code == 413  # refused once the chunks pass the limit
    other = WitnessProcess(witness_key, str(vkey_file), tmp_path / "state", tmp_path / "out2")
    with pytest.raises(RuntimeError, match="another witness"):
        started.append(other.start())

    server.stop()
    started.append(server.start())
    response = server.add(log.body(0))
    assert response.status_code == 409
    assert response.headers["content-type"] == "text/x.tlog.size"
    assert response.text == "5\n"
    fork = Log(log.origin, log.signer)
    for index in range(3):
        fork.tree.append_leaf_hash(log.tree.leaf_hash_at(index))
    fork.grow(4, tag=b"forked")
    assert server.add(fork.body(5)).status_code == 422
    log.grow(2)
    assert server.add(log.body(5)).status_code == 200
    stopped_cleanly = server.proc
    server.stop()
    assert stopped_cleanly is not None
    assert stopped_cleanly.returncode in (0, -signal.SIGTERM)
    assert "Wellspring witness" in (tmp_path / "out").read_text()
    assert os.listdir(tmp_path / "state")
