"""Sandboxed children: a requestor's model runs in a fresh interpreter with an explicit environment.

The processes that run Keras on a requestor's model -- the provider's training child, the
aggregator's evaluator, the ``.keras`` converter -- must not see their parent's credentials
(database, broker and storage settings, the volunteer's password, cloud keys), and must have
their thread limits and TensorFlow settings in the environment before their interpreter imports
numpy or TensorFlow. Their parents run threads, so nothing here ever swaps ``os.environ`` around
a start (another thread would read the swapped environment, or start a process with it): each
child is a new interpreter (``subprocess.Popen``; no ``preexec_fn``, so safe beside threads)
whose environment is exactly ``sandbox_environment(**extra_env)``.

``start_sandboxed(target, *args)`` runs ``target(connection, *args)`` in such a child and
returns at once with the parent's end of a pipe (``multiprocessing.connection``: pickled
messages, as between ``multiprocessing`` processes). The child imports the same code as its
parent (it starts from the parent's ``sys.path``), ignores Ctrl-C (its parent decides when it
stops), and exits when ``target`` returns or when its parent dies.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection, Pipe
from typing import Any

# What a child may inherit: only what Python needs to start. Everything else (DAIG_*, AWS_*,
# tokens, passwords, proxies with credentials) stays in the parent.
SANDBOX_ENV_KEYS = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV")
PARENT_CHECK_SECONDS = 1.0

# The child's first statements, before it imports anything of DAIG: ignore Ctrl-C, take the
# parent's sys.path from the pipe, then hand over to ``_child_main``. argv: the pipe's file
# descriptor, and the child's name (shown by ``ps``).
_BOOTSTRAP = (
    "import signal, sys\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "from multiprocessing.connection import Connection\n"
    "connection = Connection(int(sys.argv[1]))\n"
    "sys.path[:] = connection.recv()\n"
    "from daig.sandbox import _child_main\n"
    "_child_main(connection)\n"
)


def sandbox_environment(**extra: str) -> dict[str, str]:
    """Environment for a child that handles untrusted input: no DAIG_*, AWS_* or other
    credentials, only what Python needs to start, plus ``extra``."""
    env = {key: os.environ[key] for key in SANDBOX_ENV_KEYS if key in os.environ}
    return env | {"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""} | extra


class SandboxedChild:
    """A running sandboxed child and the parent's end of its pipe (``connection``).

    ``pid``, ``is_alive()``, ``exitcode`` (negative: killed by that signal), ``kill()`` and
    ``join()`` behave as on a ``multiprocessing.Process``.
    """

    def __init__(self, process: subprocess.Popen[bytes], connection: Connection, name: str) -> None:
        self._process = process
        self.connection = connection
        self.name = name

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def exitcode(self) -> int | None:
        return self._process.poll()

    def is_alive(self) -> bool:
        return self._process.poll() is None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self._process.kill()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the child to end (and reap it), at most ``timeout`` seconds."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Kill the child at once if it still runs, reap it, and close the pipe."""
        if self.is_alive():
            self.kill()
        self.join(timeout)
        self.connection.close()
        _children.discard(self)


_children: weakref.WeakSet[SandboxedChild] = weakref.WeakSet()


def start_sandboxed(
    target: Callable[..., object],
    *args: Any,
    name: str,
    extra_env: Mapping[str, str] | None = None,
) -> SandboxedChild:
    """Start ``target(connection, *args)`` in a new Python process whose environment is exactly
    ``sandbox_environment(**extra_env)``; returns at once, while the child starts.

    ``target`` must be a module-level function of an importable module (not ``__main__``); the
    ``args`` are pickled. The caller owns the child: ``close()`` kills it. Children still
    running when the parent exits are killed then.
    """
    module, qualname = target.__module__, target.__qualname__
    if module == "__main__" or "<locals>" in qualname:
        raise ValueError(f"a sandboxed child cannot import {module}.{qualname}")
    env = sandbox_environment(**dict(extra_env or {}))
    ours, theirs = Pipe()
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", _BOOTSTRAP, str(theirs.fileno()), name],
            env=env,
            stdin=subprocess.DEVNULL,
            pass_fds=(theirs.fileno(),),
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    child = SandboxedChild(process, ours, name)
    _children.add(child)
    try:
        ours.send(list(sys.path))
        ours.send((module, qualname, args, os.getpid()))
    except BaseException:
        child.close()
        raise
    return child


@atexit.register
def _kill_children() -> None:
    """Like daemonic ``multiprocessing`` children: none outlives the parent's normal exit."""
    for child in list(_children):
        child.close(timeout=1.0)


# --- in the child ---------------------------------------------------------------------------
def _child_main(connection: Connection) -> None:
    """Run the target the parent named, after making sure the child ends with its parent."""
    module, qualname, args, parent = connection.recv()
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    target(connection, *args)


def _exit_with_parent(parent: int) -> None:
    """Exit as soon as the parent is gone (the child was handed to another process), so that a
    killed agent leaves no training behind."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(1)
