"""Sandboxed children (``daig.sandbox``): started with exactly the sandbox environment, never
by swapping this process's ``os.environ``, killed on request and gone when their parent is."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from daig.sandbox import sandbox_environment, start_sandboxed
from tests.helpers.sandbox_targets import report, sleep_forever
from tests.helpers.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def _gone(pid: int) -> bool:
    """The process no longer runs (a zombie waiting to be reaped by init counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def test_the_child_sees_only_the_sandbox_environment_from_its_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DAIG_DATABASE_URL", "postgresql://daig:db-secret@db/daig")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "cloud-secret")
    monkeypatch.setenv("DAIG_PASSWORD", "volunteer-secret")
    child = start_sandboxed(report, 2, None, name="test-report", extra_env={"OMP_NUM_THREADS": "2"})
    try:
        assert child.connection.poll(60), "the child answered"
        seen = child.connection.recv()
        at_exec = _environ(child.pid)  # it waits for the pipe to close: still running
    finally:
        child.close()
    expected = sandbox_environment(OMP_NUM_THREADS="2")
    assert at_exec == expected, "the environment it was started with"
    # Python itself may add LC_CTYPE (PEP 538, in a C locale); nothing else may appear.
    assert {k: v for k, v in seen["environ"].items() if k != "LC_CTYPE"} == expected
    assert not any("SECRET" in k or "PASSWORD" in k or k.startswith("DAIG_") for k in expected)
    assert expected["TF_CPP_MIN_LOG_LEVEL"] == "3" and expected["CUDA_VISIBLE_DEVICES"] == ""
    assert seen["args"] == [2, None]
    assert seen["imported"] == [], "nothing imported numpy or DAIG's settings before the target"
    assert os.environ["DAIG_PASSWORD"] == "volunteer-secret", "the parent keeps its own"


def test_starting_children_never_changes_this_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Other threads (pika's, the API's) must never see a swapped environment."""
    monkeypatch.setenv("DAIG_PROBE", "parent")
    done = threading.Event()
    misses: list[str | None] = []

    def watch() -> None:
        while not done.is_set():
            value = os.environ.get("DAIG_PROBE")
            if value != "parent":
                misses.append(value)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        children = [start_sandboxed(report, name="test-report") for _ in range(3)]
        for child in children:
            assert child.connection.poll(60)
            assert "DAIG_PROBE" not in child.connection.recv()["environ"]
            child.close()
    finally:
        done.set()
        watcher.join(10)
    assert misses == []


def test_close_kills_the_child_and_reaps_it() -> None:
    child = start_sandboxed(sleep_forever, name="test-sleeper")
    assert child.is_alive() and child.exitcode is None
    child.close()
    assert not child.is_alive()
    assert child.exitcode == -signal.SIGKILL
    assert _gone(child.pid)


def test_a_child_ends_when_its_parent_is_killed() -> None:
    """A killed agent leaves no training behind: the child notices it was orphaned."""
    code = (
        "from daig.sandbox import start_sandboxed\n"
        "from tests.helpers.sandbox_targets import sleep_forever\n"
        "child = start_sandboxed(sleep_forever, name='test-orphan')\n"
        "print(child.pid, flush=True)\n"
        "import time; time.sleep(120)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert not _gone(pid)
    finally:
        parent.kill()
        parent.wait(10)
        if parent.stdout is not None:
            parent.stdout.close()
    wait_until(lambda: _gone(pid), 15, what="the orphaned child to exit")


def test_a_target_must_be_importable_by_the_child() -> None:
    with pytest.raises(ValueError, match="cannot import"):
        start_sandboxed(lambda connection: None, name="test-lambda")
