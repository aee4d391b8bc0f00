"""Desktop basics against a real API: the chart's legends and round axis, deleting a project,
notifications on a project's end and on volunteering pausing and resuming, shortcuts."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from PyQt5.QtCore import Qt, QTime

from daig.blobstore import open_blob_store
from daig.client import ClientError, DaigClient
from daig.hyperparams import Hyperparameters
from daig.keys import file_key
from requestor_gui.main_window import MainWindow
from requestor_gui.notifier import ProjectWatcher, VolunteerWatcher
from tests.helpers.gui import WAIT_MS, log_in, project_out, round_out

AGENT_MS = 60_000
CLOSED = "2025-01-01T00:10:00+00:00"


def uploaded(client: DaigClient, digits_files, name: str) -> str:
    project = client.create_project(name, Hyperparameters(total_tasks=4, task_size=2))
    for kind in ("model", "data", "labels"):
        client.upload_file(project.id, kind, getattr(digits_files, kind))
    return str(project.id)


def closed(index: int, **metrics: float) -> object:
    return round_out(index=index, closed_at=CLOSED, accepted=2, metrics=metrics)


def test_legends_list_only_the_curves_drawn_project_after_project(window: MainWindow) -> None:
    chart = window.detail.chart
    projects = [  # (total rounds, closed rounds): four projects with different metrics
        (
            5,
            [
                closed(i, loss=1.0 / (i + 1), accuracy=0.5, val_loss=1.2, val_accuracy=0.4)
                for i in range(3)
            ],
        ),
        (8, [closed(0, loss=0.9, accuracy=0.6)]),
        (3, []),
        (
            4,
            [
                round_out(
                    index=i, closed_at=CLOSED, metrics={"loss": 0.5}, evaluation={"accuracy": 0.8}
                )
                for i in range(2)
            ],
        ),
    ]
    expected_curves = [4, 2, 0, 2]
    for (total, rounds), curves in zip(projects, expected_curves, strict=True):
        project = project_out(state="running", total_rounds=total, round=len(rounds))
        window.detail.show_project(project, rounds)
        items = sum(len(p.getPlotItem().listDataItems()) for p in chart.plots.values())
        assert items == len(chart.curves) == curves
        assert chart.legend_count() == curves, "a legend entry without a curve"
        for plot in chart.plots.values():
            legend = plot.getPlotItem().legend
            assert legend.isVisible() == bool(legend.items), "an empty legend box is shown"
            ticks = plot.getAxis("bottom")._tickLevels[0]
            assert ticks[0] == (1, "1") and ticks[-1] == (total, str(total))
            assert all(float(x).is_integer() for x, _ in ticks), "rounds are whole numbers"
    assert set(chart.curves) == {"loss", "held_out_accuracy"}
    assert chart.point_count("loss") == 2
    xs = list(chart.curves["loss"].xData)
    assert xs == [1, 2], "rounds are numbered from 1"


def test_delete_a_project_from_its_screen(
    qtbot, window: MainWindow, requestor, gui_api, digits_files, monkeypatch
) -> None:
    user, client = requestor
    log_in(qtbot, window, gui_api.url, user, create=False)
    idle = uploaded(client, digits_files, "idle")
    busy = uploaded(client, digits_files, "busy")
    client.start(busy)
    blobs = open_blob_store(gui_api.settings)
    assert blobs.exists(file_key(busy, "model"))
    detail = window.detail
    questions = []

    window.show_project(idle)
    qtbot.waitUntil(lambda: detail.state == "created", timeout=WAIT_MS)
    monkeypatch.setattr(detail, "confirm", lambda q, d: questions.append(d) or False)
    detail.delete_button.click()
    assert len(questions) == 1 and client.project(idle).state == "created", "Cancel keeps it"

    monkeypatch.setattr(detail, "confirm", lambda q, d: questions.append(d) or True)
    with qtbot.waitSignal(detail.deleted, timeout=WAIT_MS) as deleted:
        detail.delete_button.click()
    assert deleted.args == ["idle"] and window.stack.currentWidget() is window.projects
    assert "Deleted the project idle" in window.projects.message.text()
    assert str(idle) not in {str(p.id) for p in client.projects()}

    # Still training: the question says so, and OK cancels it first, then deletes.
    window.show_project(busy)
    qtbot.waitUntil(lambda: detail.state == "queued", timeout=WAIT_MS)
    with qtbot.waitSignal(detail.deleted, timeout=WAIT_MS):
        qtbot.keyClick(window, Qt.Key.Key_Delete, Qt.KeyboardModifier.ControlModifier)
    assert "still training" in questions[-1]
    try:
        client.project(busy)
        raise AssertionError("the project is still there")
    except ClientError as exc:
        assert exc.status == 404
    assert not blobs.exists(file_key(busy, "model"))


def test_the_server_refuses_to_delete_a_training_project_and_says_what_to_do(
    requestor, digits_files
) -> None:
    _, client = requestor
    busy = uploaded(client, digits_files, "refused")
    client.start(busy)
    try:
        client.delete_project(busy)
        raise AssertionError("a training project was deleted")
    except ClientError as exc:
        assert exc.status == 409 and "cancel" in str(exc).lower()


def test_a_project_ending_is_notified(
    qtbot, window: MainWindow, requestor, gui_api, digits_files
) -> None:
    user, client = requestor
    log_in(qtbot, window, gui_api.url, user, create=False)
    done, failed = uploaded(client, digits_files, "ends"), uploaded(client, digits_files, "breaks")
    window.mode.requestor_button.click()
    qtbot.waitUntil(lambda: window.projects.model.rowCount() == 2, timeout=WAIT_MS)
    seen: list[tuple[str, str]] = []
    window.notifier.notified.connect(lambda title, text: seen.append((title, text)))

    # The server says so (as the aggregator and scheduler would have written it).
    engine = sa.create_engine(gui_api.settings.database_url)
    with engine.begin() as db:
        db.execute(sa.text("UPDATE projects SET state='done' WHERE id=:id"), {"id": done})
        db.execute(
            sa.text("UPDATE projects SET state='failed', error='out of memory' WHERE id=:id"),
            {"id": failed},
        )
    engine.dispose()
    qtbot.waitUntil(lambda: len(seen) == 2, timeout=WAIT_MS)
    assert sorted(seen) == [
        ("Project failed", "breaks: out of memory"),
        ("Project finished", "ends is done; its model can be downloaded."),
    ]
    assert not window.tray.icon.isVisible() and window.notice.isVisible()  # offscreen: no tray
    window.projects.refresh()
    qtbot.wait(500)
    assert len(seen) == 2, "each ending is notified once"


def test_watchers_notify_only_changes(window: MainWindow) -> None:
    seen: list[str] = []
    window.notifier.notified.connect(lambda title, text: seen.append(title))
    projects = ProjectWatcher(window.notifier)
    over = project_out(state="done")
    projects.see([over])
    assert seen == [], "a project already over when first seen is not news"
    volunteer = VolunteerWatcher(window.notifier)
    volunteer.see(None)
    volunteer.see("on battery")
    volunteer.see("outside the set hours")  # still paused: no second notification
    volunteer.see(None)
    assert seen == ["Volunteering paused", "Volunteering resumed"]


def test_shortcuts_trigger_their_actions(
    qtbot, window: MainWindow, requestor, gui_api, digits_files
) -> None:
    user, client = requestor
    log_in(qtbot, window, gui_api.url, user, create=False)
    window.activateWindow()
    project = uploaded(client, digits_files, "keys")
    actions = window.shortcuts
    for action, key in (
        (actions.new_project, "Ctrl+N"),
        (actions.refresh, "F5"),
        (actions.start_pause, "Ctrl+T"),
        (actions.delete_project, "Ctrl+Del"),
        (actions.participate_stop, "Ctrl+Shift+P"),
        (actions.quit, "Ctrl+Q"),
    ):
        assert action.shortcut().toString() == key and key in action.toolTip()
    assert "Ctrl+N" in window.projects.new_button.toolTip()
    assert "Ctrl+Shift+P" in window.provider.participate_button.toolTip()

    qtbot.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert window.stack.currentWidget() is window.new_project

    window.show_project(project)
    qtbot.waitUntil(lambda: window.detail.state == "created", timeout=WAIT_MS)
    with qtbot.waitSignal(window.detail.refreshed, timeout=WAIT_MS):
        qtbot.keyClick(window, Qt.Key.Key_F5)
    qtbot.keyClick(window, Qt.Key.Key_T, Qt.KeyboardModifier.ControlModifier)  # start
    qtbot.waitUntil(lambda: client.project(project).state == "queued", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.detail.action_buttons["pause"].isEnabled(), timeout=WAIT_MS)
    qtbot.keyClick(window, Qt.Key.Key_T, Qt.KeyboardModifier.ControlModifier)  # pause
    qtbot.waitUntil(lambda: client.project(project).state == "paused", timeout=WAIT_MS)

    # Participate (outside the set hours, so the agent pauses at once: a notification).
    politeness = window.provider.politeness
    later = datetime.now() + timedelta(hours=2)
    politeness.hours_check.setChecked(True)
    politeness.start_edit.setTime(QTime.fromString(later.strftime("%H:%M"), "HH:mm"))
    politeness.end_edit.setTime(
        QTime.fromString((later + timedelta(hours=1)).strftime("%H:%M"), "HH:mm")
    )
    seen: list[str] = []
    window.notifier.notified.connect(lambda title, text: seen.append(title))
    ctrl_shift = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    with qtbot.waitSignal(window.provider.running_changed, timeout=AGENT_MS):
        qtbot.keyClick(window, Qt.Key.Key_P, ctrl_shift)
    assert window.stack.currentWidget() is window.provider
    qtbot.waitUntil(lambda: "Volunteering paused" in seen, timeout=AGENT_MS)
    with qtbot.waitSignal(window.provider.running_changed, timeout=AGENT_MS):
        qtbot.keyClick(window, Qt.Key.Key_P, ctrl_shift)
    assert not window.provider.running

    qtbot.keyClick(window, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=WAIT_MS)


def test_the_in_window_notice_goes_by_itself(qtbot, window: MainWindow, monkeypatch) -> None:
    from requestor_gui import notifier

    monkeypatch.setattr(notifier, "NOTICE_MS", 200)
    window.notifier.notify("Volunteering paused", "on battery")
    assert window.notice.isVisible()
    assert window.notice.text() == "Volunteering paused: on battery"
    qtbot.waitUntil(lambda: not window.notice.isVisible(), timeout=WAIT_MS)
