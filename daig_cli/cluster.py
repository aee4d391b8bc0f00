"""Running DAIG's processes on one machine: used by ``daig demo`` and the end-to-end tests.

Each role runs as its own OS process (``python -m daig_cli <role>``) with the given environment
and a log file; ``stop_all`` terminates them politely, then kills what is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalCluster:
    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = os.environ.copy() | env
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """Start ``daig <args>`` as process ``name`` (logs in ``log_dir/name.log``)."""
        return self.start_argv(name, [sys.executable, "-m", "daig_cli", *args])

    def start_argv(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        """Start any command as process ``name`` with the cluster's environment."""
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        # Each role in its own session: signals reach exactly the processes meant (a provider
        # and its training child), and a terminal's Ctrl-C goes to the caller, which stops
        # everything in order.
        process = subprocess.Popen(
            argv,
            env=self.env,
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

    def wait_healthy(self, api_url: str, timeout: float = 60.0) -> None:
        """Block until the API answers ``/healthz`` with 200, or raise with its log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {process.returncode}:\n{self.log(name)[-3000:]}"
                    )
            try:
                if httpx.get(f"{api_url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the API at {api_url} did not become healthy in {timeout} s")
