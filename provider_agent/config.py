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
    password: str
    cache_dir: Path = field(default_factory=_default_cache)
    threads: int | None = None  # CPU threads TensorFlow may use (None: all)
    memory_mb: int | None = None  # the training process is stopped above this (None: no cap)
    shard_cache_mb: int = 2048  # disk kept for shards already fetched (0: no cache)
    max_tasks: int | None = None  # stop after this many tasks (None: until stopped)
