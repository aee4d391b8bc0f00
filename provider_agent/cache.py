"""The provider's shard cache: rows already fetched are not fetched again.

A project's data never changes once it started, and every pass revisits the same shards, so
a shard's rows are kept on disk under the project id and byte range, least recently used
first out once the cache exceeds its size.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path


class ShardCache:
    def __init__(self, root: Path, limit_mb: int) -> None:
        self.root = root
        self.limit_bytes = limit_mb * 1024 * 1024
        self._lock = threading.Lock()

    def _path(self, key: str) -> Path:
        return self.root / key

    def get(self, key: str, target: Path) -> bool:
        """Copy the cached shard to ``target``; False if it is not cached."""
        path = self._path(key)
        with self._lock:
            if not path.exists():
                return False
            os.utime(path)  # most recently used
        shutil.copyfile(path, target)
        return True

    def put(self, key: str, source: Path) -> None:
        if self.limit_bytes <= 0 or source.stat().st_size > self.limit_bytes:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{threading.get_ident()}")
        shutil.copyfile(source, temp)
        with self._lock:
            temp.replace(path)
            self._evict()

    def _evict(self) -> None:
        files = sorted(
            (p for p in self.root.rglob("*.npy") if p.is_file()), key=lambda p: p.stat().st_mtime
        )
        total = sum(p.stat().st_size for p in files)
        for path in files:
            if total <= self.limit_bytes:
                return
            total -= path.stat().st_size
            path.unlink(missing_ok=True)
