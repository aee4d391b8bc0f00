"""A group of named OS processes on this machine, each with an environment and a log file.

``ProcessGroup`` starts commands (``python -m daig_cli <args>`` or any argv) in their own
sessions, signals, kills and stops them; ``stop_all`` terminates them politely, then kills
what is left. ``LocalCluster`` (``daig_cli.cluster``) builds DAIG's roles on top of it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ProcessGroup:
    """Named processes sharing one environment (this process's, updated by ``env``)."""

    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        self.env = os.environ.copy() | dict(env)
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(
        self, name: str, *args: str, env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``daig <args>`` as process ``name`` (logs in ``log_dir/name.log``)."""
        return self.start_argv(name, [sys.executable, "-m", "daig_cli", *args], env=env)

    def start_argv(
        self, name: str, argv: list[str], env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start any command as process ``name`` with the group's environment (and ``env``)."""
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        # Each role in its own session: signals reach exactly the processes meant (a provider
        # and its training child), and a terminal's Ctrl-C goes to the caller, which stops
        # everything in order.
        process = subprocess.Popen(
            argv,
            env=self.env | dict(env or {}),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self.processes[name] = process
        return process

    def signal(self, name: str, signum: int) -> None:
        process = self.processes[name]
        if process.poll() is None:
            process.send_signal(signum)

    def signal_group(self, name: str, signum: int) -> None:
        """Signal a role's process and everything it started (e.g. SIGSTOP a provider)."""
        process = self.processes[name]
        if process.poll() is None:
            os.killpg(process.pid, signum)

    def kill(self, name: str) -> None:
        """SIGKILL a role and its children, as a crash would."""
        process = self.processes.pop(name)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def stop(self, name: str, timeout: float = 15.0) -> int | None:
        """SIGTERM a role, wait for it, then kill whatever of its group is left."""
        process = self.processes.pop(name, None)
        if process is None:
            return None
        self._terminate([process], timeout)
        return process.returncode

    def stop_all(self, timeout: float = 15.0) -> None:
        self._terminate(list(self.processes.values()), timeout)
        self.processes.clear()

    @staticmethod
    def _terminate(processes: list[subprocess.Popen[bytes]], timeout: float) -> None:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # orphaned children, if any

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def dead(self) -> str | None:
        """The name of a process that has exited, if any."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                return name
        return None

    def wait_for_url(self, url: str, timeout: float = 60.0) -> None:
        """Block until ``url`` answers 200; raise with the log of any process that exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = self.dead()
            if dead is not None:
                code = self.processes[dead].returncode
                raise RuntimeError(f"{dead} exited with {code}:\n{self.log(dead)[-3000:]}")
            if answers(url):
                return
            time.sleep(0.3)
        raise RuntimeError(f"{url} did not answer in {timeout} s")


def answers(url: str) -> bool:
    """True if ``url`` answers HTTP 200 now."""
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False
