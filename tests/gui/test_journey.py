"""The whole journey from the GUI alone, on a cluster of real processes.

API, scheduler and aggregator run as OS processes (``tests/e2e`` cluster); the GUI's own
provider agent (on its QThread, training in its child process) is the only volunteer. A new
user signs up, volunteers, creates and starts a digits project, watches it progress to the
end, downloads the model, and stops volunteering in the middle of someone else's long task,
which goes back at once (one cluster for both: starting one takes a while).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from daig.examples import held_out_accuracy
from daig.hyperparams import Hyperparameters
from requestor_gui.main_window import MainWindow
from tests.helpers.gui import PASSWORD, WAIT_MS, log_in, unique

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]
TRAIN_MS = 240_000
EVALUATION_MS = 120_000


def participate(qtbot, window: MainWindow) -> None:
    window.mode_buttons["provider"].click()
    provider = window.provider
    provider.threads_box.setValue(1)
    provider.participate_button.click()
    qtbot.waitUntil(
        lambda: (
            provider.state.text()
            in ("Participating: waiting for a task…", "Training a task for a requestor…")
        ),
        timeout=WAIT_MS * 3,
    )


def test_a_new_user_does_everything_from_the_gui_and_stop_gives_the_task_back(
    qtbot, cluster, window: MainWindow, digits_files, tmp_path: Path, monkeypatch
) -> None:
    # ``cluster`` before ``window``: torn down in reverse, so the window (and its agent) closes
    # while the API is still there to take a task back.
    log_in(qtbot, window, cluster.api_url, unique("new"), create=True)
    participate(qtbot, window)

    window.mode_buttons["requestor"].click()
    window.projects.new_button.click()
    form = window.new_project
    with qtbot.waitSignal(form.inspected, timeout=WAIT_MS):
        form.set_files(
            {
                "model": digits_files.model,
                "data": digits_files.data,
                "labels": digits_files.labels,
                "validation_data": digits_files.test_data,
                "validation_labels": digits_files.test_labels,
            }
        )
    form.form.set_values({"epochs": 2, "total_tasks": 4, "task_size": 2, "passes": 1})
    form.start_box.setChecked(True)
    with qtbot.waitSignal(form.created, timeout=WAIT_MS):
        form.create_button.click()

    detail = window.detail
    seen: list[tuple[str, str]] = []
    detail.refreshed.connect(
        lambda: seen.append((detail.state, detail.stats["round"].value.text()))
    )
    qtbot.waitUntil(lambda: detail.state == "done", timeout=TRAIN_MS)
    # The screen followed the training by itself, from the start to the end.
    assert seen[0][0] != "done" and seen[0][1] in ("0 of 2", "1 of 2"), seen
    assert len({rounds for _, rounds in seen}) >= 2, seen  # it moved on screen
    assert seen[-1] == ("done", "2 of 2"), seen
    assert detail.chart.point_count("loss") == 2 and detail.chart.point_count("accuracy") == 2
    assert detail.round_model.rowCount() == 2
    # The aggregator scores each new model on the validation files after its round, in a child
    # process of its own (a TensorFlow start-up: slow on a busy machine).
    qtbot.waitUntil(
        lambda: detail.chart.point_count("held_out_accuracy") == 2, timeout=EVALUATION_MS
    )
    assert detail.stats["held-out accuracy"].isVisible()
    assert float(detail.stats["held-out accuracy"].value.text()) > 0.5
    assert detail.progress.value() == 1000 and detail.stats["ETA"].value.text() == "—"

    target = tmp_path / "trained.h5"
    monkeypatch.setattr(detail, "ask_save_path", lambda: target)
    with qtbot.waitSignal(detail.downloaded, timeout=WAIT_MS):
        detail.download_button.click()
    assert "weights after 2 rounds" in detail.message.text()
    assert held_out_accuracy(target, digits_files.test_data, digits_files.test_labels) > 0.5

    window.mode_buttons["provider"].click()
    provider = window.provider
    assert provider.tasks_done.value.text() == "4"

    # Someone else's long task (the whole data set, many epochs): Stop lands mid-training.
    other = cluster.account("requestor", PASSWORD)
    project = other.create_project(
        "long", Hyperparameters(epochs=300, total_tasks=1, task_size=1, passes=1)
    )
    for kind in ("model", "data", "labels"):
        other.upload_file(project.id, kind, getattr(digits_files, kind))
    other.start(project.id)
    qtbot.waitUntil(
        lambda: (
            provider.project_label.text().startswith("long (by ") and provider.progress.value() > 0
        ),
        timeout=TRAIN_MS,
    )
    assert provider.round_label.text() == "1"
    assert other.project(project.id).active_contributors == 1

    with qtbot.waitSignal(provider.running_changed, timeout=15_000) as stopped:
        provider.stop_button.click()
    assert stopped.args == [False]
    # Given back, not left to expire: nobody holds the task any more.
    assert other.project(project.id).active_contributors == 0
    assert provider.state.text().startswith("Stopped.")
    assert provider.tasks_done.value.text() == "4"  # kept for the session; the long one undone
    assert provider.progress.value() == 0 and provider.project_label.text() == "—"
    other.cancel(project.id)
