"""The agent as its own process, for when the window goes and no tray icon can keep it.

``start()`` runs ``daig provider --use-saved-login`` (the autostart entry's command) in a new
session, so it outlives the GUI; it reports through the status file
(``provider_agent/status_file.py``) and ``stop(pid)`` sends it SIGTERM, on which it gives its
task back and exits. Its log goes to ``$XDG_STATE_HOME/daig/logs/provider-background.log``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

from requestor_gui.desktop_entry import provider_command


def log_file() -> Path:
    state_home = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state_home / "daig" / "logs" / "provider-background.log"


def start() -> subprocess.Popen[bytes]:
    path = log_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as log:
        return subprocess.Popen(
            provider_command(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not killed with the GUI or its terminal
        )


def stop(pid: int) -> None:
    """Ask the background agent to stop (it gives its task back)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
