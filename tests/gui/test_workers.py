"""Workers run off the UI thread and report back with signals, errors as sentences."""

from __future__ import annotations

import threading

import pytest

from daig.client import ClientError
from requestor_gui.workers import Runner


@pytest.fixture
def runner(qtbot):
    runner = Runner()
    yield runner
    runner.cancel_all()
    runner.wait(5000)


def test_the_result_comes_back_on_the_ui_thread(qtbot, runner: Runner) -> None:
    seen: dict[str, object] = {}

    def work(x: int) -> int:
        seen["thread"] = threading.current_thread()
        return x * 2

    runner.start(work, 21, on_returned=lambda v: seen.update(value=v))
    qtbot.waitUntil(lambda: "value" in seen, timeout=5000)
    assert seen["value"] == 42
    assert seen["thread"] is not threading.main_thread()
    qtbot.waitUntil(lambda: runner.busy == 0)


def test_errors_are_readable_messages(qtbot, runner: Runner) -> None:
    def fail() -> None:
        raise ClientError("wrong username or password", status=401, reason="bad_credentials")

    errors: list[str] = []
    runner.start(fail, on_errored=errors.append)
    qtbot.waitUntil(lambda: errors == ["Wrong username or password."], timeout=5000)


def test_progress_and_cancel(qtbot, runner: Runner) -> None:
    release = threading.Event()
    reported: list[object] = []

    def transfer(progress) -> str:
        progress(1)
        release.wait(5)
        progress(2)  # raises Cancelled: the work stops here
        return "never"

    returned: list[object] = []
    finished: list[bool] = []
    worker = runner.start(
        transfer,
        on_progress=reported.append,
        on_returned=returned.append,
        on_finished=lambda: finished.append(True),
    )
    qtbot.waitUntil(lambda: reported == [1], timeout=5000)
    worker.cancel()
    release.set()
    qtbot.waitUntil(lambda: finished == [True], timeout=5000)
    assert reported == [1] and returned == [] and worker.cancelled
