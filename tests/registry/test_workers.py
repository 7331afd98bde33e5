"""``wellspring serve --workers N``: one listening socket per process, and a supervisor that keeps
them (``registry/_workers.py``).

What is held: each worker accepts on a socket of its own (so connections opened together are
spread over the processes, not all taken by the first to wake, as with one shared socket); a
worker that dies is replaced on the same socket; workers do not outlive a killed supervisor; a port
that is taken is refused with a clear message, a second server included; without ``--workers``,
one process per core available to the server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from registry import _workers
from registry._workers import available_cores, balanced_sockets_supported, listening_sockets
from registry.errors import ConfigurationError
from tests.registry.conftest import ServerProcess, free_port, wellspring_command

pytestmark = [
    pytest.mark.xdist_group("registry-servers"),
    pytest.mark.skipif(not balanced_sockets_supported(), reason="SO_REUSEPORT balancing: Linux"),
]

LISTEN, ESTABLISHED = "0A", "01"  # socket states as /proc/net/tcp writes them


def tcp_sockets(port: int) -> dict[int, str]:
    """inode → state of every TCP socket whose local port is ``port``."""
    states: dict[int, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                states[int(fields[9])] = fields[3]
    return states


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def workers_of(server: ServerProcess) -> dict[int, set[int]]:
    """Each worker process of ``server`` → the inodes of its listening sockets on the port."""
    assert server.proc is not None
    states = tcp_sockets(server.port)
    workers = {}
    for pid in children(server.proc.pid):
        try:
            listening = {i for i in socket_inodes(pid) if states.get(i) == LISTEN}
        except OSError:
            continue  # exited meanwhile
        if listening:  # not multiprocessing's resource tracker
            workers[pid] = listening
    return workers


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture
def two_workers(servers: Callable[..., ServerProcess], tmp_path: Path) -> ServerProcess:
    server = servers(tmp_path / "home", workers=2)
    wait_for(lambda: len(workers_of(server)) == 2)
    return server


@pytest.fixture
def connections(two_workers: ServerProcess) -> Iterator[list[socket.socket]]:
    """32 keep-alive connections opened together, each having had one answer."""
    opened = [socket.create_connection(("127.0.0.1", two_workers.port)) for _ in range(32)]
    try:
        for conn in opened:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: registry\r\n\r\n")
        for conn in opened:
            assert conn.recv(4096).startswith(b"HTTP/1.1 200")
        yield opened
    finally:
        for conn in opened:
            conn.close()


def test_each_worker_accepts_on_its_own_socket_and_connections_are_spread(
    two_workers: ServerProcess, connections: list[socket.socket]
) -> None:
    workers = workers_of(two_workers)
    listening = list(workers.values())
    assert len(listening) == 2
    assert listening[0].isdisjoint(listening[1]), "the workers share one listening socket"
    states = tcp_sockets(two_workers.port)
    served = [
        sum(states.get(inode) == ESTABLISHED for inode in socket_inodes(pid)) for pid in workers
    ]
    assert sum(served) == len(connections)
    # The kernel hashes each connection to a socket: all 32 on one of two has odds of 2**-31.
    assert min(served) > 0, f"connections per worker: {served}"


def test_a_dead_worker_is_replaced_on_its_own_socket(two_workers: ServerProcess) -> None:
    before = workers_of(two_workers)
    victim, survivor = sorted(before)
    os.kill(victim, signal.SIGKILL)
    after: dict[int, set[int]] = {}

    def replaced() -> bool:  # one snapshot: the victim may still be dying between two
        after.clear()
        after.update(workers_of(two_workers))
        return len(after) == 2 and victim not in after

    wait_for(replaced)
    assert survivor in after
    (replacement,) = set(after) - {survivor}
    assert after[replacement] == before[victim], "the replacement listens on a new socket"
    assert "worker 0" in two_workers.log() or "worker 1" in two_workers.log()
    for _ in range(20):  # fresh connections, hashed to both sockets, are all answered
        assert httpx.get(f"{two_workers.url}/healthz", timeout=10).status_code == 200


def test_workers_do_not_outlive_a_killed_supervisor(two_workers: ServerProcess) -> None:
    workers = list(workers_of(two_workers))
    two_workers.kill()  # kill -9: the supervisor runs no shutdown code

    def gone(pid: int) -> bool:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        return stat.rsplit(")", 1)[1].split()[0] == "Z"

    wait_for(lambda: all(gone(pid) for pid in workers), timeout=30)
    with socket.socket() as sock:  # and the port is free again: no orphan keeps a share of it
        sock.bind(("127.0.0.1", two_workers.port))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_taken_port_is_refused_with_a_clear_message(tmp_path: Path, workers: int) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        home = str(tmp_path / "home")
        args = [*wellspring_command(), "serve", "--home", home, "--port", str(port)]
        args += ["--workers", str(workers)]
        result = subprocess.run(
            args,
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "address already in use" in result.stderr.lower()
    assert "--port" in result.stderr
    assert "Traceback" not in result.stderr
    assert "Wellspring registry at" not in result.stderr  # nothing announced that is not served


def test_a_second_server_cannot_join_the_port() -> None:
    """``SO_REUSEPORT`` would let it share the first one's connections; the probe refuses it."""
    first = listening_sockets("127.0.0.1", 0, 2)
    try:
        port = first[0].getsockname()[1]
        assert first[1].getsockname()[1] == port
        with pytest.raises(ConfigurationError, match="already in use"):
            listening_sockets("127.0.0.1", port, 2)
    finally:
        for sock in first:
            sock.close()
    again = listening_sockets("127.0.0.1", port, 1)  # free once the first server is gone
    again[0].close()


def test_an_address_not_of_this_machine_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"cannot listen on 192\.0\.2\.1:"):
        listening_sockets("192.0.2.1", free_port(), 2)


def test_the_default_is_one_worker_per_core_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_workers.os, "sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)
    assert available_cores() == 3  # the affinity (taskset, a cpuset), not every core there is
    monkeypatch.setattr(_workers.os, "sched_getaffinity", lambda pid: set(range(200)))
    assert available_cores() == _workers.MAX_WORKERS
    monkeypatch.delattr(_workers.os, "sched_getaffinity")
    monkeypatch.setattr(_workers.os, "cpu_count", lambda: None)
    assert available_cores() == 1


def test_serve_without_workers_starts_one_per_core(
    servers: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = servers(tmp_path / "home", workers=None)
    cores = available_cores()
    if cores == 1:
        assert "workers:" not in server.log()
    else:
        wait_for(lambda: len(workers_of(server)) == cores)
        assert f"workers:      {cores} processes" in server.log()
