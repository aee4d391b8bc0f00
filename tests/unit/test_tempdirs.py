"""``daig.tempdirs``: scratch directories go with their block, process directories at exit,
and the directories of DAIG processes that died are swept; the retention setting's values."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from daig import tempdirs
from daig.settings import Settings


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary directory of this test's own, so every ``daig-*`` entry in it is ours."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    return tmp_path


def _ours(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith("daig-"))


def test_scratch_is_named_after_its_kind_and_process_and_removed_with_its_contents(
    private_tmp: Path,
) -> None:
    with tempdirs.scratch("task") as directory:
        assert directory.parent == private_tmp
        assert directory.name.startswith(f"daig-task-{os.getpid()}-")
        (directory / "nested").mkdir()
        (directory / "nested" / "file").write_bytes(b"x")
    assert _ours(private_tmp) == []


def test_scratch_is_removed_when_the_block_raises(private_tmp: Path) -> None:
    with pytest.raises(RuntimeError), tempdirs.scratch("upload") as directory:
        (directory / "file").write_bytes(b"x")
        raise RuntimeError("boom")
    assert _ours(private_tmp) == []


def test_process_dirs_stay_until_removed_or_remove_all(private_tmp: Path) -> None:
    first, second = tempdirs.process_dir("eval"), tempdirs.process_dir("uploads")
    assert _ours(private_tmp) == sorted([first.name, second.name])
    tempdirs.remove(first)
    assert _ours(private_tmp) == [second.name]
    tempdirs.remove_all()
    assert _ours(private_tmp) == []


def test_a_kind_must_be_lowercase_letters(private_tmp: Path) -> None:
    with pytest.raises(ValueError, match="lowercase letters"):
        tempdirs.process_dir("../escape")


def test_a_process_that_exits_removes_its_process_dirs(private_tmp: Path) -> None:
    code = "from daig import tempdirs; print(tempdirs.process_dir('gui'))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=os.environ | {"TMPDIR": str(private_tmp)},
        capture_output=True,
        text=True,
        check=True,
    )
    made = Path(done.stdout.strip())
    assert made.parent == private_tmp and not made.exists()


def test_remove_stale_sweeps_dead_processes_dirs_only(private_tmp: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead_pid = int(dead.stdout)
    stale = private_tmp / f"daig-task-{dead_pid}-abc_123"
    (stale / "inner").mkdir(parents=True)
    alive = private_tmp / f"daig-eval-{os.getppid()}-xyz"  # our parent runs
    alive.mkdir()
    mine = tempdirs.process_dir("model")
    unrelated = private_tmp / "daig-demo-k2j3"  # no pid: not a process's directory
    unrelated.mkdir()
    a_file = private_tmp / f"daig-task-{dead_pid}-file"
    a_file.write_bytes(b"x")

    assert tempdirs.remove_stale() == [stale]
    assert not stale.exists()
    assert alive.exists() and mine.exists() and unrelated.exists() and a_file.exists()
    tempdirs.remove(mine)


@pytest.mark.parametrize(
    ("value", "hours"), [("0", 0.0), ("36.5", 36.5), ("forever", None), ("Never", None)]
)
def test_retention_hours_setting(
    value: str, hours: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAIG_DELTA_RETENTION_HOURS", value)
    assert Settings().delta_retention_hours == hours


def test_retention_defaults_to_a_week_and_refuses_nonsense(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DAIG_DELTA_RETENTION_HOURS", raising=False)
    assert Settings().delta_retention_hours == 7 * 24
    for bad in ("-1", "", "soon"):
        monkeypatch.setenv("DAIG_DELTA_RETENTION_HOURS", bad)
        with pytest.raises(ValueError, match="delta_retention_hours|DAIG_DELTA_RETENTION_HOURS"):
            Settings()


_SLEEPER = """
import sys, time
from daig import tempdirs
from daig.signals import exit_on_sigterm, stop_on_signals
if sys.argv[1] == "exit":
    exit_on_sigterm()
elif sys.argv[1] == "stop":
    stop = stop_on_signals()
kept = tempdirs.process_dir("keep")
with tempdirs.scratch("work") as work:
    print(kept, work, flush=True)
    if sys.argv[1] == "stop":
        stop.wait(60)
    else:
        time.sleep(60)
"""


def _terminated(private_tmp: Path, how: str) -> tuple[int, list[Path]]:
    """Run the sleeper (SIGTERM handled as ``how``), SIGTERM it once it holds its dirs."""
    process = subprocess.Popen(
        [sys.executable, "-c", _SLEEPER, how],
        env=os.environ | {"TMPDIR": str(private_tmp)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    made = [Path(word) for word in process.stdout.readline().split()]
    assert len(made) == 2 and all(path.is_dir() for path in made)
    process.send_signal(signal.SIGTERM)
    return process.wait(30), made


@pytest.mark.parametrize(("how", "code"), [("exit", 128 + signal.SIGTERM), ("stop", 0)])
def test_sigterm_removes_the_directories_of_a_process_that_handles_it(
    private_tmp: Path, how: str, code: int
) -> None:
    returncode, made = _terminated(private_tmp, how)
    assert returncode == code
    assert not any(path.exists() for path in made)
    assert _ours(private_tmp) == []


def test_without_a_handler_sigterm_leaves_them_and_the_next_start_sweeps_them(
    private_tmp: Path,
) -> None:
    returncode, made = _terminated(private_tmp, "none")
    assert returncode == -signal.SIGTERM
    assert all(path.exists() for path in made)  # why every process must handle SIGTERM
    assert sorted(tempdirs.remove_stale()) == sorted(made)
    assert _ours(private_tmp) == []
