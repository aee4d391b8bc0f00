"""``run_daig``: the ``daig`` command run as its own process, as a user would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_daig(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``daig <args>`` with its configuration (and so its remembered login) under ``tmp_path``
    (and further environment variables ``env``)."""
    env = os.environ | {"XDG_CONFIG_HOME": str(tmp_path / "config")} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "daig_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
