"""`serve --workers N`: N gateway processes on one machine, sharing one listening socket.

The parent binds the port, then starts N ordinary `serve` processes that inherit the socket
(`--socket-fd`) and accept from it; the kernel hands each new connection to one of them.
Each child is a whole gateway (ingest, delivery workers, health), as on N machines: hence
PostgreSQL only, whose leases, dedup and counters the processes share. The parent accepts
nothing itself; it forwards SIGTERM/SIGINT (stop, after each child's graceful drain) and
SIGHUP (reload), restarts a child that dies once it was running, and stops everything when
a child fails at start (a bad config or an unreachable store fails every child alike).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

# A child that exits with an error within this long of its start failed to start (a bad
# config, an unreachable store): starting it again cannot help.
START_GRACE_SECONDS = 10.0
RESTART_PAUSE_SECONDS = 1.0  # at most one restart a second per child: no busy crash loop
STOP_TIMEOUT_SECONDS = 45.0  # above uvicorn's 30 s graceful shutdown and the outbox's close


def listening_socket(host: str, port: int) -> socket.socket:
    """The port every child accepts from; inheritable, so that the children can use it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=2048)
    sock.set_inheritable(True)
    return sock


@dataclass
class _Child:
    index: int
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)


class Supervisor:
    """Start, watch and stop the child processes; `run()` returns the exit code."""

    def __init__(self, command: Sequence[str], sock: socket.socket, workers: int) -> None:
        self.command = [*command, "--socket-fd", str(sock.fileno())]
        self.sock = sock
        self.workers = workers
        self.children: list[_Child] = []
        self._stopping = False
        self._reload = False

    def _start(self, index: int) -> _Child:
        # Its own session: Ctrl-C in a terminal reaches the parent only, which asks each child
        # once (a second signal would make uvicorn skip its graceful drain).
        extra = [] if index == 0 else ["--quiet"]  # one banner, from the first child
        process = subprocess.Popen([*self.command, *extra], pass_fds=(self.sock.fileno(),),
                                   start_new_session=True)
        return _Child(index, process)

    def _on_stop(self, signum: int, frame: object) -> None:
        self._stopping = True

    def _on_hup(self, signum: int, frame: object) -> None:
        self._reload = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)
        self.children = [self._start(i) for i in range(self.workers)]
        print(f"tiktok-gateway: {self.workers} processes on one port "
              f"(pids {', '.join(str(c.process.pid) for c in self.children)}; "
              f"this supervisor is {os.getpid()})", flush=True)
        code = 0
        while not self._stopping:
            if self._reload:
                self._reload = False
                self._signal_all(signal.SIGHUP)
            failed = self._check_children()
            if failed is not None:
                code = failed
                break
            time.sleep(0.2)
        self._stop_all()
        return code

    def _check_children(self) -> int | None:
        """Start again a child that died (killed, or crashed once it was running); the exit
        code to stop with when one failed at start (it exited with an error, at once)."""
        for i, child in enumerate(self.children):
            status = child.process.poll()
            if status is None:
                continue
            if status > 0 and time.monotonic() - child.started < START_GRACE_SECONDS:
                print(f"tiktok-gateway: process {child.index + 1} of {self.workers} failed at "
                      f"start (exit {status}); stopping the others", file=sys.stderr, flush=True)
                return status
            print(f"tiktok-gateway: process {child.index + 1} of {self.workers} (pid "
                  f"{child.process.pid}) exited ({status}); starting it again",
                  file=sys.stderr, flush=True)
            time.sleep(max(0.0, RESTART_PAUSE_SECONDS - (time.monotonic() - child.started)))
            self.children[i] = self._start(child.index)
        return None

    def _signal_all(self, signum: int) -> None:
        for child in self.children:
            if child.process.poll() is None:
                child.process.send_signal(signum)

    def _stop_all(self) -> None:
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for child in self.children:
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        self.sock.close()
