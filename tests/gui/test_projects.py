"""The project list and a project's screen: live refresh, pause/resume/cancel, download."""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest

from daig.client import DaigClient
from daig.hyperparams import Hyperparameters
from requestor_gui import operations
from requestor_gui.errors import Cancelled
from requestor_gui.main_window import MainWindow
from tests.helpers.gui import WAIT_MS, log_in
from tests.helpers.services import ApiServer


def uploaded_project(client: DaigClient, digits_files, name: str = "listed") -> str:
    project = client.create_project(name, Hyperparameters(total_tasks=4, task_size=2))
    for kind in ("model", "data", "labels"):
        client.upload_file(project.id, kind, getattr(digits_files, kind))
    return str(project.id)


@pytest.fixture
def requestor_window(qtbot, window: MainWindow, requestor, gui_api) -> MainWindow:
    user, _ = requestor
    log_in(qtbot, window, gui_api.url, user, create=False)
    return window


def cell(window: MainWindow, row: int, column: int) -> str:
    return str(window.projects.model.index(row, column).data())


def test_the_list_refreshes_live(qtbot, requestor_window: MainWindow, requestor, digits_files):
    window = requestor_window
    _, client = requestor
    window.mode.requestor_button.click()
    qtbot.waitUntil(lambda: window.projects.empty.isVisible(), timeout=WAIT_MS)

    project_id = uploaded_project(client, digits_files)
    qtbot.waitUntil(lambda: window.projects.model.rowCount() == 1, timeout=WAIT_MS)
    assert [cell(window, 0, c) for c in range(5)] == ["listed", "Not started", "—", "0%", "0"]

    client.start(project_id)  # someone else changes it: the screen follows by itself
    qtbot.waitUntil(lambda: cell(window, 0, 1) == "Queued", timeout=WAIT_MS)
    assert cell(window, 0, 2) == "0 of 2"

    window.projects.table.selectRow(0)
    window.projects.open_button.click()
    assert window.stack.currentWidget() is window.detail
    qtbot.waitUntil(lambda: window.detail.title.text() == "listed", timeout=WAIT_MS)


def test_pause_resume_cancel_and_download(
    qtbot, requestor_window: MainWindow, requestor, digits_files, tmp_path: Path, monkeypatch
) -> None:
    window = requestor_window
    _, client = requestor
    project_id = uploaded_project(client, digits_files, "controlled")
    window.show_project(project_id)
    detail = window.detail
    qtbot.waitUntil(lambda: detail.state == "created", timeout=WAIT_MS)
    assert detail.chart.point_count("loss") == 0 and detail.round_model.rowCount() == 0
    buttons = detail.action_buttons
    assert [a for a, b in buttons.items() if b.isVisible()] == ["start", "cancel"]

    def press(action: str) -> None:
        # As a person would: the buttons are disabled while a change is on its way.
        qtbot.waitUntil(lambda: buttons[action].isEnabled(), timeout=WAIT_MS)
        buttons[action].click()

    for action, state in (("start", "queued"), ("pause", "paused"), ("resume", "running")):
        press(action)
        qtbot.waitUntil(lambda s=state: detail.state == s, timeout=WAIT_MS)
        assert client.project(project_id).state == state
    assert detail.pill.text() == "Training"

    monkeypatch.setattr(detail, "confirm", lambda question, text: False)
    press("cancel")  # asked, and the person said no
    assert client.project(project_id).state == "running"
    monkeypatch.setattr(detail, "confirm", lambda question, text: True)
    press("cancel")
    qtbot.waitUntil(lambda: detail.state == "cancelled", timeout=WAIT_MS)
    assert not any(b.isVisible() for b in buttons.values())

    target = tmp_path / "saved" / "model.h5"
    target.parent.mkdir()
    monkeypatch.setattr(detail, "ask_save_path", lambda: target)
    with qtbot.waitSignal(detail.downloaded, timeout=WAIT_MS):
        detail.download_button.click()
    with h5py.File(target) as saved:
        assert "model_config" in saved.attrs
    assert f"Saved {target}" in detail.message.text()
    assert "the model as uploaded" in detail.message.text()
    qtbot.waitUntil(lambda: not detail.download_bar.isVisible(), timeout=WAIT_MS)
    assert detail.download_button.text() == "Download model…"


def test_errors_on_the_project_screen_are_messages(
    qtbot, requestor_window: MainWindow, requestor, digits_files, monkeypatch, tmp_path: Path
) -> None:
    window = requestor_window
    _, client = requestor
    project = client.create_project("no files", Hyperparameters(total_tasks=4, task_size=2))
    window.show_project(str(project.id))
    detail = window.detail
    qtbot.waitUntil(lambda: detail.state == "created", timeout=WAIT_MS)
    detail.action_buttons["start"].click()  # no files uploaded: the server refuses
    qtbot.waitUntil(lambda: detail.message.property("role") == "error", timeout=WAIT_MS)
    assert "upload" in detail.message.text().lower()
    monkeypatch.setattr(detail, "ask_save_path", lambda: tmp_path / "m.h5")
    detail.download_button.click()
    qtbot.waitUntil(lambda: "Download failed" in detail.message.text(), timeout=WAIT_MS)
    assert "The project has no model yet" in detail.message.text()
    assert not (tmp_path / "m.h5").exists()


def test_a_cancelled_upload_leaves_no_project_behind(requestor, gui_api, digits_files) -> None:
    from requestor_gui.account import sign_in

    user, client = requestor
    account = sign_in(gui_api.url, user, "a long password")
    calls = []

    def progress(transfer: operations.Transfer) -> None:
        calls.append(transfer)
        if transfer.kind == "data" and transfer.done:
            raise Cancelled()

    files = {"model": digits_files.model, "data": digits_files.data, "labels": digits_files.labels}
    with pytest.raises(Cancelled):
        operations.create_project(
            account, "cancelled", Hyperparameters(), files, start=True, progress=progress
        )
    assert [p.name for p in client.projects()] == []
    assert calls[0] == operations.Transfer("model", 0, digits_files.model.stat().st_size)


def test_a_server_going_down_is_a_message_not_a_crash(
    qtbot, window: MainWindow, requestor, gui_api, digits_files
) -> None:
    user, client = requestor
    uploaded_project(client, digits_files, "kept")
    second = ApiServer(gui_api.settings)  # the same database, on a server we can stop
    with second:
        log_in(qtbot, window, second.url, user, create=False)
        window.mode.requestor_button.click()
        projects = window.projects
        qtbot.waitUntil(lambda: projects.model.rowCount() == 1, timeout=WAIT_MS)
    # Down: the last list stays on screen, with a sentence saying what is wrong.
    qtbot.waitUntil(lambda: projects.message.property("role") == "error", timeout=WAIT_MS)
    text = projects.message.text()
    expected = f"Could not refresh the projects: Cannot reach the DAIG server at {second.url}"
    assert text.startswith(expected), text
    assert "Traceback" not in text and projects.model.rowCount() == 1
    assert window.stack.currentWidget() is projects and window.account is not None
