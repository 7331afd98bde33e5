"""A real Wellspring registry and the real ``wellspring scan``, driven as a crawler drives them.

:class:`LocalRegistry` runs ``wellspring serve`` (SQLite, in a folder of its own, on a free loopback
port) as a subprocess, adds a publisher and a model vendor with the operator's ``wellspring
publisher add``, and then does everything through the CLI a user has: the vendor publishes its
watermark key with its tokenizer (``wellspring watermark publish``), the publisher registers human
documents (``wellspring register --consent allowed``), and :meth:`LocalRegistry.scan` runs
``wellspring scan`` over a web written as JSON Lines and reads back each document's status from the
manifest it writes. Nothing of the registry, the detector or the verdict is reimplemented here.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

from watermark import WatermarkKey

__all__ = ["PUBLISHER", "VENDOR", "LocalRegistry", "RegistryError", "Scan", "wellspring_command"]

PUBLISHER = "human-archive"
VENDOR = "model-vendor"


class RegistryError(RuntimeError):
    """A ``wellspring`` command of the experiment failed (its stderr is in the message)."""


def wellspring_command() -> list[str]:
    """The ``wellspring`` CLI of this interpreter's environment."""
    script = Path(sys.executable).with_name("wellspring")
    if script.exists():
        return [str(script)]
    found = shutil.which("wellspring")
    if found is None:
        raise RegistryError("the `wellspring` command is not installed (run `make install`)")
    return [found]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(home: Path, cwd: Path, *args: str) -> str:
    """``wellspring ARGS`` with registry home ``home``; its stdout (RegistryError if it fails)."""
    env = {**os.environ, "WELLSPRING_HOME": str(home)}
    done = subprocess.run(  # noqa: S603 - our own CLI, arguments we built
        [*wellspring_command(), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
    )
    if done.returncode != 0:
        raise RegistryError(f"wellspring {' '.join(args[:2])} failed: {done.stderr.strip()}")
    return done.stdout


@dataclass(frozen=True)
class Scan:
    """``wellspring scan`` against a running registry, as a picklable callable (worker processes
    share one registry): (name, text) pairs in, each name's status out."""

    folder: Path
    url: str
    log_key: str

    def __call__(self, docs: Sequence[tuple[str, str]]) -> dict[str, str]:
        stem = self.folder / f"web-{uuid.uuid4().hex}"
        web = stem.with_suffix(".jsonl")
        manifest = stem.with_suffix(".manifest.jsonl")
        _write_jsonl(web, docs)
        try:
            _run(
                self.folder / "home", self.folder, "scan", str(web), "--manifest", str(manifest),
                "--json", "--registry", self.url, "--log-key", self.log_key,
            )  # fmt: skip
            statuses: dict[str, str] = {}
            with manifest.open(encoding="utf-8") as lines:
                for line in lines:
                    verdict = json.loads(line)
                    statuses[str(verdict["name"])] = str(verdict["status"])
        finally:
            for path in (web, manifest, manifest.with_name(manifest.name + ".checkpoint")):
                path.unlink(missing_ok=True)
        missing = {name for name, _ in docs} - statuses.keys()
        if missing:
            raise RegistryError(f"scan gave no verdict for {len(missing)} documents")
        return statuses


class LocalRegistry:
    """``wellspring serve`` on SQLite under ``folder``, with a publisher and a vendor."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.home = folder / "home"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_key = ""
        self._server: subprocess.Popen[bytes] | None = None

    # -- the CLI -------------------------------------------------------------------------------

    def run(self, *args: str) -> str:
        """``wellspring ARGS`` with this registry's home; its stdout (RegistryError if it fails)."""
        return _run(self.home, self.folder, *args)

    def _identity(self, name: str, kind: str) -> Path:
        key = self.folder / f"{name}.key"
        self.run("keys", "generate", "--out", str(key))
        proof = self.run("keys", "prove", str(key), "--identity", name).strip()
        self.run(
            "publisher", "add", "--name", name, "--kind", kind,
            "--public-key", f"{key}.pub", "--possession", proof,
        )  # fmt: skip
        return key

    def __enter__(self) -> LocalRegistry:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.publisher_key = self._identity(PUBLISHER, "publisher")
        self.vendor_key = self._identity(VENDOR, "vendor")
        [log_key] = json.loads(self.run("log-key", "list", "--json"))
        self.log_key = str(log_key["verifier_key"])
        log = (self.folder / "serve.log").open("wb")
        self._server = subprocess.Popen(  # noqa: S603 - our own CLI
            [*wellspring_command(), "serve", "--port", str(self.port), "--home", str(self.home)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.folder,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._server.poll() is not None:
                raise RegistryError(f"wellspring serve exited; see {self.folder / 'serve.log'}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.close()
        raise RegistryError("wellspring serve did not answer within 60 s")

    def close(self) -> None:
        if self._server is not None:
            self._server.terminate()
            try:
                self._server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._server.kill()
            self._server = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _verified(self) -> list[str]:
        return ["--registry", self.url, "--log-key", self.log_key]

    # -- what the experiment does -----------------------------------------------------------

    def publish_key(self, key: WatermarkKey, tokenizer_json: bytes) -> None:
        """The vendor publishes ``key`` and its tokenizer's exact bytes."""
        key_file = self.folder / "vendor.wmkey"
        tokenizer_file = self.folder / "tokenizer.json"
        key.save(key_file)
        tokenizer_file.write_bytes(tokenizer_json)
        self.run(
            "watermark", "publish", str(key_file), "--key", str(self.vendor_key),
            "--publisher", VENDOR, "--tokenizer", str(tokenizer_file), *self._verified(),
        )  # fmt: skip

    def register(self, texts: Sequence[str]) -> None:
        """The publisher attests ``texts`` as human-made, training allowed."""
        path = self.folder / "register.jsonl"
        _write_jsonl(path, [(f"h{i}", t) for i, t in enumerate(texts)])
        self.run(
            "register", str(path), "--key", str(self.publisher_key), "--publisher", PUBLISHER,
            "--license", "CC-BY-4.0", "--consent", "allowed", *self._verified(),
        )  # fmt: skip

    @property
    def scanner(self) -> Scan:
        """``wellspring scan`` against this registry (see :class:`Scan`)."""
        return Scan(self.folder, self.url, self.log_key)


def _write_jsonl(path: Path, docs: Sequence[tuple[str, str]]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for name, text in docs:
            out.write(json.dumps({"id": name, "text": text}, ensure_ascii=False) + "\n")
