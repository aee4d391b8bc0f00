"""What the project page shows of a provider's training failure (issue 15): the shard, the
round and the sanitized reason while the task is retried; the project's error once it failed."""

from __future__ import annotations

from datetime import UTC, datetime

from daig.contract.http import TaskFailureOut
from daig.failures import sanitize_reason
from requestor_gui.views.project_detail import ProjectDetailView
from requestor_gui.workers import Runner
from tests.helpers.gui import project_out

RAW = (
    "InvalidArgumentError: Graph execution error:\n"
    '  File "/home/volunteer/keras/trainer.py", line 9, in fit\n\n'
    "Received a label value of 63 which is outside the valid range of [0, 10). "
    "Cached at /home/volunteer/.cache/daig/m.h5"
)


def _failure() -> TaskFailureOut:
    # As the API answers: sanitized by the aggregator (tests/integration/test_failure_reasons).
    reason = sanitize_reason(RAW)
    return TaskFailureOut(round=1, shard=3, failures=2, reason=reason, at=datetime.now(UTC))


def test_a_retried_failure_names_the_shard_and_the_reason(qtbot) -> None:
    detail = ProjectDetailView(Runner())
    qtbot.addWidget(detail)
    detail.show_project(project_out(state="running", last_failure=_failure()), [])
    assert detail.failure.isVisibleTo(detail)
    shown = detail.failure.text()
    assert shown.startswith("A task failed: shard 3 of round 1 failed on a volunteer's machine")
    assert "(2 times so far; it is retried)" in shown
    assert "label value of 63 which is outside the valid range of [0, 10)" in shown
    assert "(path)" in shown and "/home" not in shown and "volunteer/" not in shown
    assert not detail.message.is_error


def test_a_failed_project_shows_its_error_instead(qtbot) -> None:
    detail = ProjectDetailView(Runner())
    qtbot.addWidget(detail)
    error = f"training shard 3 failed 3 times; last error: {sanitize_reason(RAW)}"
    detail.show_project(project_out(state="failed", error=error, last_failure=_failure()), [])
    assert detail.message.is_error
    assert "training shard 3 failed 3 times" in detail.message.text()
    assert not detail.failure.isVisibleTo(detail)
