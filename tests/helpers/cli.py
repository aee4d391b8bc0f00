"""``run_daig``: the ``daig`` command run as its own process, as a user would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def run_daig(
    tmp_path: Path, *args: str, env: Mapping[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``daig <args>`` with its configuration (and so its remembered login) under ``tmp_path``,
    ``env`` added to this process's environment (``DAIG_PASSWORD`` only if given there).

    Its own session, without a controlling terminal, so a password prompt reads ``stdin``."""
    base = {k: v for k, v in os.environ.items() if k != "DAIG_PASSWORD"}
    return subprocess.run(
        [sys.executable, "-m", "daig_cli", *args],
        env=base | {"XDG_CONFIG_HOME": str(tmp_path / "config")} | dict(env or {}),
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        start_new_session=True,
    )
