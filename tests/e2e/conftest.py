"""The end-to-end tests run with a temporary directory of their own, checked when they end.

Every process they start (services, providers, the CLI, the GUI) inherits ``TMPDIR`` from this
process, so after the last end-to-end test any ``daig-*`` entry left in that directory was
left by one of them: the check fails the run. Processes a test kills outright (SIGKILL, as a
crash would: ``ProcessGroup.kill``) cannot clean up, so their directories are excused; the
next DAIG process to start sweeps them (``daig.tempdirs.remove_stale``).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from daig_cli.processes import ProcessGroup

_OWNER = re.compile(r"^daig-[a-z]+-(\d+)-")
_crashed: set[int] = set()


@pytest.fixture(scope="package", autouse=True)
def _private_tmpdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    private = tmp_path_factory.mktemp("e2e-tmpdir")
    before = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(private)
    tempfile.tempdir = None  # read TMPDIR again
    try:
        yield private
    finally:
        if before is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = before
        tempfile.tempdir = None
    left = [path.name for path in sorted(private.iterdir()) if _left_behind(path.name)]
    assert not left, f"end-to-end tests left temporary directories in {private}: {left}"


def _left_behind(name: str) -> bool:
    """A ``daig-*`` entry of a process that should have removed it by now."""
    if not name.startswith("daig-"):
        return False
    owner = _OWNER.match(name)
    if owner is None:
        return True
    pid = int(owner[1])
    # This process removes its own at exit; crashed processes cannot.
    return pid != os.getpid() and pid not in _crashed


@pytest.fixture(autouse=True)
def _record_crashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remember the processes a test SIGKILLs (their directories are excused above)."""
    kill = ProcessGroup.kill

    def recording_kill(self: ProcessGroup, name: str) -> None:
        process = self.processes.get(name)
        if process is not None:
            _crashed.add(process.pid)
        kill(self, name)

    monkeypatch.setattr(ProcessGroup, "kill", recording_kill)
