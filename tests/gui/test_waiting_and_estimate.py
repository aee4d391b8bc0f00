"""The project screen says why nothing happens ("waiting for volunteers: N online now") and,
before Start, what the project will cost and how long it would take (issue 15)."""

from __future__ import annotations

import pytest

from daig.client import DaigClient
from daig.credits.units import credits_text
from daig.hyperparams import Hyperparameters
from requestor_gui.main_window import MainWindow
from tests.helpers.gui import PASSWORD, WAIT_MS, log_in, unique
from tests.helpers.services import ApiServer


@pytest.fixture
def requestor_window(qtbot, window: MainWindow, requestor, gui_api) -> MainWindow:
    user, _ = requestor
    log_in(qtbot, window, gui_api.url, user, create=False)
    return window


def volunteer_waiting(gui_api: ApiServer) -> None:
    """A volunteer's agent says it waits for tasks (as an idle agent does every 30 s)."""
    with DaigClient(gui_api.url) as client:
        name = unique("vol")
        client.signup(name, PASSWORD)
        client.login(name, PASSWORD)
        client.presence(f"{name}-agent")


def test_estimate_beside_start_then_waiting_for_volunteers(
    qtbot, requestor_window: MainWindow, requestor, gui_api: ApiServer, digits_files
) -> None:
    _, client = requestor
    project = client.create_project("estimated", Hyperparameters(total_tasks=4, task_size=2))
    for kind in ("model", "data", "labels"):
        client.upload_file(project.id, kind, getattr(digits_files, kind))
    credits = client.project_cost(project.id).estimate
    assert credits is not None and credits > 0
    online = client.volunteers().online  # other GUI tests share this server

    window = requestor_window
    window.show_project(str(project.id))
    detail = window.detail
    qtbot.waitUntil(lambda: detail.estimate_label.isVisible(), timeout=WAIT_MS)
    text = detail.estimate_label.text()
    assert f"Estimated cost: {credits_text(credits)} credits." in text
    if online == 0:
        assert "no volunteers online: cannot estimate time" in text
    assert detail.action_buttons["start"].isVisible()

    volunteer_waiting(gui_api)
    detail.refresh()
    people = "volunteer" if online == 0 else "volunteers"
    qtbot.waitUntil(
        lambda: f"with the {online + 1} {people} online now" in detail.estimate_label.text(),
        timeout=WAIT_MS,
    )
    assert "Time: about " in detail.estimate_label.text()

    detail.action_buttons["start"].click()  # no scheduler runs here: it stays queued, idle
    qtbot.waitUntil(lambda: detail.state == "queued", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: detail.waiting.isVisible(), timeout=WAIT_MS)
    assert not detail.estimate_label.isVisible()
    assert detail.waiting.text() == f"Waiting for volunteers: {online + 1} online now"
