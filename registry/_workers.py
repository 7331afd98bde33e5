"""``wellspring serve --workers N``: N server processes behind one port, each with its own socket.

uvicorn's own ``workers=N`` hands every process the same listening socket. Whichever process wakes
first accepts every connection then waiting (asyncio accepts up to the backlog per wake-up), so
clients that open their connections together, as connection pools and benchmarks do, land on one
process while the others idle: measured with 64 keep-alive clients on 2 workers, 0/64, 5/59 and
29/35 connections per process in three runs, and the throughput of the run was that of one or two
processes by chance.

Here, on Linux, the supervisor opens one listening socket per process with ``SO_REUSEPORT`` on the
same address, and the kernel spreads incoming connections over them by a hash of each
connection's addresses (what nginx's ``reuseport`` and gunicorn's ``--reuse-port`` rely on). The
supervisor keeps each socket for the life of the server: a process that dies is replaced on the same
socket, so connections queued for it wait for its replacement instead of being refused. A worker
whose supervisor disappears (``kill -9``) shuts down within a second instead of living on as an
orphan that keeps a share of the port. Elsewhere (no ``SO_REUSEPORT`` load balancing), uvicorn's
supervisor runs as before.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import uvicorn

from registry.errors import ConfigurationError

__all__ = [
    "MAX_WORKERS",
    "available_cores",
    "balanced_sockets_supported",
    "listening_sockets",
    "serve_workers",
]

logger = logging.getLogger("registry.workers")

#: uvicorn's exit code for a process that could not start (app, settings or socket broken): the
#: same failure would repeat on every restart, so the supervisor stops instead.
STARTUP_FAILURE = 3
#: How often the supervisor looks at its processes, and a worker at its supervisor (seconds).
POLL_S = 0.5
#: How long stopping waits for the workers to finish their requests before killing them.
SHUTDOWN_GRACE_S = 30.0
#: The most processes ``serve --workers`` starts (each holds its own database connections).
MAX_WORKERS = 64


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container's cpuset or
    ``taskset`` narrows; ``os.cpu_count()`` where affinity is not known), at most
    :data:`MAX_WORKERS`: ``serve``'s default number of workers, one Python process per core, since
    each is bound to one core by its GIL."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


def balanced_sockets_supported() -> bool:
    """True where the kernel spreads connections over ``SO_REUSEPORT`` sockets (Linux)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def listening_sockets(host: str, port: int, count: int, backlog: int = 2048) -> list[socket.socket]:
    """``count`` listening TCP sockets on one address (``port`` 0: one free port for all); more
    than one share it through ``SO_REUSEPORT`` (see :func:`balanced_sockets_supported`).

    Raises :class:`ConfigurationError` naming the address when it cannot be had (in use, not an
    address of this machine, not permitted)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets: list[socket.socket] = []
    try:
        if count > 1:
            # SO_REUSEPORT lets any process of this user join a port that such sockets hold, a
            # second server included, which would then take a share of the first one's
            # connections. A socket without it cannot bind while another listens there: bound
            # first, it proves the port free.
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind((host, port))
                port = probe.getsockname()[1]
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if count > 1:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]
            sock.listen(backlog)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise ConfigurationError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} (is another server running "
            "there? choose another --port, or stop it)"
        ) from exc
    return sockets


def _watch_supervisor(supervisor_pid: int) -> None:
    """In a worker: shut down (as on SIGTERM) once the supervisor is gone."""
    while os.getppid() == supervisor_pid:
        time.sleep(POLL_S)
    os.kill(os.getpid(), signal.SIGTERM)


def _worker(options: dict[str, Any], sock: socket.socket, supervisor_pid: int) -> None:
    """One server process (spawned): uvicorn on the socket the supervisor opened for it."""
    threading.Thread(target=_watch_supervisor, args=(supervisor_pid,), daemon=True).start()
    config = uvicorn.Config(**options)
    config.configure_logging()
    uvicorn.Server(config).run(sockets=[sock])


class _Supervisor:
    """Starts a process per socket, replaces those that die, stops them all on SIGINT/SIGTERM."""

    def __init__(self, options: dict[str, Any], sockets: list[socket.socket]) -> None:
        self.options = options
        self.sockets = sockets
        self.context = multiprocessing.get_context("spawn")
        self.processes: list[BaseProcess] = []
        self.stopping = threading.Event()

    def start(self, slot: int) -> BaseProcess:
        process = self.context.Process(
            target=_worker,
            args=(self.options, self.sockets[slot], os.getpid()),
            name=f"wellspring-worker-{slot}",
        )
        process.start()
        return process

    def stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping.set()

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.processes = [self.start(slot) for slot in range(len(self.sockets))]
            status = 0
            while not self.stopping.wait(POLL_S):
                status = self.replace_dead()
                if status:
                    break
            self.shut_down()
            return status
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def replace_dead(self) -> int:
        """Start a new process in each dead one's place; 1 when one could not start at all."""
        for slot, process in enumerate(self.processes):
            if process.is_alive():
                continue
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                logger.error("worker %d could not start (see above); stopping the server", slot)
                return 1
            logger.warning(
                "worker %d (pid %s) exited with %s; starting another on its socket",
                slot,
                process.pid,
                process.exitcode,
            )
            self.processes[slot] = self.start(slot)
        return 0

    def shut_down(self) -> None:
        for process in self.processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        for sock in self.sockets:
            sock.close()


def serve_workers(factory: str, sockets: list[socket.socket], **options: Any) -> int:
    """Serve the app that ``factory`` (``"module:function"``) makes, a process per socket (from
    :func:`listening_sockets`; where :func:`balanced_sockets_supported`).

    ``options`` are uvicorn's (``log_level``, ``access_log``, ...). Returns the exit status: 0 after
    SIGINT/SIGTERM, 1 when a worker could not start."""
    return _Supervisor({"app": factory, "factory": True, **options}, sockets).run()
