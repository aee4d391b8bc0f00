"""The background agent's local status channel: a JSON file the GUI reads.

A ``daig provider`` started by the GUI or at login runs as its own process; it rewrites
``$XDG_RUNTIME_DIR/daig/provider-status.json`` (mode 0600; ``~/.cache/daig/`` where there is
no runtime dir) every second with its ``AgentStatus``, its pid and the time, so the window shows
what it does after being reopened, and Stop sends it SIGTERM (it gives its task back). A file
whose pid is gone, or that was not rewritten for a while, describes no running agent.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from provider_agent.status import AgentStatus

STALE_SECONDS = 10.0  # an agent that has not written for this long is taken as gone


def default_path() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "daig" / "provider-status.json"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "daig" / "provider-status.json"


def write(path: Path, status: AgentStatus, pid: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    body = asdict(status) | {"pid": pid or os.getpid(), "updated_at": time.time()}
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    with open(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        json.dump(body, out)
    temp.replace(path)


@dataclass(frozen=True)
class BackgroundAgent:
    """What a running background agent last said about itself."""

    pid: int
    status: AgentStatus


def read(path: Path | None = None) -> BackgroundAgent | None:
    """The running background agent's status, or None if none runs (or the file is stale)."""
    path = path or default_path()
    try:
        raw = json.loads(path.read_text())
        pid, updated = int(raw.pop("pid")), float(raw.pop("updated_at"))
        status = AgentStatus(**{k: v for k, v in raw.items() if k in AgentStatus.__annotations__})
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if time.time() - updated > STALE_SECONDS or not _alive(pid) or status.state == "stopped":
        return None
    return BackgroundAgent(pid, status)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StatusWriter:
    """Rewrites the status file every second on a daemon thread until ``close()``."""

    def __init__(self, path: Path, status: AgentStatus, interval: float = 1.0) -> None:
        self._path, self._status, self._interval = path, status, interval
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="status-file", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._done.is_set():
            with contextlib.suppress(OSError):  # a full disk must not stop the agent
                write(self._path, self._status)
            self._done.wait(self._interval)

    def close(self) -> None:
        self._done.set()
        self._thread.join(5)
        with contextlib.suppress(OSError):
            write(self._path, self._status)  # the final state ("stopped")
