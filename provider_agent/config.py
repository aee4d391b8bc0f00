"""The provider agent's settings: where to work, as whom, and how much of the machine to use."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _default_cache() -> Path:
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache_home / "daig" / "provider"


@dataclass
class AgentConfig:
    server: str
    username: str
    password: str = field(repr=False)
    cache_dir: Path = field(default_factory=_default_cache)
    threads: int | None = None  # CPU threads TensorFlow may use (None: all)
    memory_mb: int | None = None  # the training process is stopped above this (None: no cap)
    shard_cache_mb: int = 2048  # disk kept for shards already fetched (0: no cache)
    max_tasks: int | None = None  # stop after this many tasks (None: until stopped)
    # Polite volunteering (provider_agent/politeness.py): each is shown in the agent's status.
    idle_minutes: float | None = None  # work only after this long without user input
    hours: str | None = None  # work only in this daily window, e.g. "22:00-07:00"
    pause_on_battery: bool = True  # no work while the machine runs on battery
    # A task whose conditions stop holding is suspended (SIGSTOP), its lease renewed, for at
    # most this long; then it is given back (provider_agent/suspend.py).
    suspend_minutes: float = 30.0
    # A saved login (provider_agent/saved_login.py) used instead of the password: the access
    # token, renewed with the refresh token; when that is refused (revoked, expired) or there
    # is none, the agent says to log in again.
    token: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    status_file: Path | None = None  # where a background agent reports (status_file.py)
