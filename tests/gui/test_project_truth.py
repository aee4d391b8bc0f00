"""The project page tells the truth against the real API: opening another project clears
every figure at once and ignores the late answer for the one shown before, and a refresh
error goes away as soon as the server answers again."""

from __future__ import annotations

import threading

from daig.hyperparams import Hyperparameters
from requestor_gui import operations
from requestor_gui.main_window import MainWindow
from tests.helpers.gui import WAIT_MS, log_in
from tests.helpers.proxy import Proxy


def test_switching_projects_clears_the_figures_and_drops_the_late_answer(
    qtbot, window: MainWindow, requestor, gui_api, monkeypatch
) -> None:
    user, client = requestor
    first = client.create_project("first", Hyperparameters(total_tasks=4, task_size=2))
    second = client.create_project("second", Hyperparameters(total_tasks=6, task_size=3))
    log_in(qtbot, window, gui_api.url, user, create=False)
    detail = window.detail
    with qtbot.waitSignal(detail.refreshed, timeout=WAIT_MS):
        window.show_project(str(first.id))
    assert detail.title.text() == "first" and detail.stats["contributors"].value.text() == "0"
    assert detail.action_buttons["start"].isVisible()

    # From now on answers wait until the test lets them go: the first project's refresh is
    # still in flight when the second is opened, and the second's answer is delayed too.
    release = {str(first.id): threading.Event(), str(second.id): threading.Event()}
    fetch = operations.project_detail

    def delayed(account, project_id: str) -> operations.Detail:
        answer = fetch(account, project_id)
        release[project_id].wait(WAIT_MS / 1000)
        return answer

    monkeypatch.setattr(operations, "project_detail", delayed)
    shown: list[str] = []
    detail.refreshed.connect(lambda: shown.append(detail.title.text()))
    detail.refresh()
    window.show_project(str(second.id))
    # Cleared at once, before the second project's data arrives.
    assert detail.title.text() == "Loading…" and detail.project is None
    assert {stat.value.text() for stat in detail.stats.values()} == {"—"}
    assert detail.round_model.rowCount() == 0 and detail.progress.value() == 0
    assert not any(b.isVisible() for b in detail.action_buttons.values())

    release[str(first.id)].set()  # the first project's late answer
    qtbot.wait(500)
    assert detail.title.text() == "Loading…" and shown == []
    with qtbot.waitSignal(detail.refreshed, timeout=WAIT_MS):
        release[str(second.id)].set()
    assert shown == ["second"] and detail.project is not None
    assert detail.project.id == second.id


def test_a_refresh_error_clears_when_the_server_answers_again(
    qtbot, window: MainWindow, requestor
) -> None:
    user, client = requestor
    project = client.create_project("flaky", Hyperparameters(total_tasks=4, task_size=2))
    proxy = Proxy(client.server)
    try:
        log_in(qtbot, window, proxy.url, user, create=False)
        detail = window.detail
        with qtbot.waitSignal(detail.refreshed, timeout=WAIT_MS):
            window.show_project(str(project.id))
        proxy.cut()
        qtbot.waitUntil(lambda: detail.message.is_error, timeout=WAIT_MS)
        assert detail.message.text().startswith("Could not refresh: Cannot reach")
        assert detail.title.text() == "flaky"  # the last figures stay while it is down
        proxy.restore()
        qtbot.waitUntil(lambda: not detail.message.isVisible(), timeout=WAIT_MS)
        assert detail.message.text() == "" and detail.title.text() == "flaky"
    finally:
        proxy.close()
