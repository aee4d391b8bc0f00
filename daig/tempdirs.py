"""Temporary directories every DAIG process removes again: at exit, on SIGTERM, after a crash.

Every directory is named ``daig-<kind>-<pid>-<random>`` in the temporary directory
(``TMPDIR``). ``scratch(kind)`` is one for a ``with`` block; ``process_dir(kind)`` lives as
long as the process and is removed at exit (``atexit``, which runs on SIGTERM too once the
process turns SIGTERM into a normal exit: ``daig.process.stop_on_signals`` or
``exit_on_sigterm``). A process killed outright (SIGKILL, out of memory) cannot clean up, so
long-running processes call ``remove_stale()`` at start: it deletes the ``daig-*`` directories
whose process is gone.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PREFIX = "daig-"
# daig-<kind>-<pid>-<mkdtemp's random suffix>
_NAME = re.compile(r"^daig-(?P<kind>[a-z]+)-(?P<pid>\d+)-[A-Za-z0-9_]+$")

_lock = threading.Lock()
_owned: set[Path] = set()


def _prefix(kind: str) -> str:
    if not re.fullmatch(r"[a-z]+", kind):
        raise ValueError(f"temporary directory kind {kind!r}: use lowercase letters only")
    return f"{PREFIX}{kind}-{os.getpid()}-"


@contextmanager
def scratch(kind: str) -> Iterator[Path]:
    """A new directory for the length of a ``with`` block (removed with its contents)."""
    path = process_dir(kind)
    try:
        yield path
    finally:
        remove(path)


def process_dir(kind: str) -> Path:
    """A new directory removed when this process exits (or earlier by ``remove``)."""
    path = Path(tempfile.mkdtemp(prefix=_prefix(kind)))
    with _lock:
        _owned.add(path)
    return path


def remove(path: Path) -> None:
    """Remove a directory made here, now, with whatever is in it."""
    with _lock:
        _owned.discard(path)
    shutil.rmtree(path, ignore_errors=True)


def remove_all() -> None:
    """Remove every directory this process made and still holds (run at exit)."""
    with _lock:
        paths = list(_owned)
        _owned.clear()
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


atexit.register(remove_all)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def remove_stale(directory: Path | None = None) -> list[Path]:
    """Delete the ``daig-*`` directories (in ``directory``, default the temporary directory)
    left by DAIG processes of this user that no longer run; return what was deleted."""
    root = Path(directory or tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _NAME.match(entry.name)
        if match is None or int(match["pid"]) == os.getpid() or _alive(int(match["pid"])):
            continue
        try:
            if not entry.is_dir() or entry.is_symlink() or entry.stat().st_uid != os.getuid():
                continue
        except OSError:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed
