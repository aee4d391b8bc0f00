"""Credits in the GUI against the real API: balance and history in both modes, and the
credit each task earned in provider mode.

The tasks are trained "by hand" (claimed over HTTP, synthetic deltas uploaded to the
presigned URLs) and accepted by a real ``Aggregator`` on the API's database, so the ledger
entries the GUI shows are the ones the system really posts.
"""

from __future__ import annotations

from PyQt5.QtCore import Qt

from daig.client import DaigClient
from daig.credits.pricing import task_cost
from daig.credits.units import to_units, units_text
from requestor_gui.main_window import MainWindow
from tests.helpers.by_hand import train_by_hand
from tests.helpers.gui import PASSWORD, WAIT_MS, log_in, unique
from tests.helpers.results import ROWS, Provider


def test_balance_and_history_in_both_modes(
    qtbot, window: MainWindow, gui_api, digits_files, tmp_path
):
    requestor_name, volunteer_name = unique("req"), unique("vol")
    with DaigClient(gui_api.url) as requestor, DaigClient(gui_api.url) as volunteer_client:
        for client, name in ((requestor, requestor_name), (volunteer_client, volunteer_name)):
            client.signup(name, PASSWORD)
            client.login(name, PASSWORD)
        volunteer = Provider(volunteer_client)
        project, grants, parameters = train_by_hand(
            gui_api, digits_files, tmp_path, requestor, volunteer
        )
    grant = to_units(gui_api.settings.credit_signup_grant)  # amounts here in work units
    per_task = {
        str(g.task_id)[:8]: task_cost(samples=ROWS[g.shard], epochs=1, parameters=parameters)
        for g in grants
    }
    earned = sum(per_task.values())

    # Provider mode: the balance, and one row per accepted task with what it earned.
    log_in(qtbot, window, gui_api.url, volunteer_name, create=False)
    panel = window.provider_credits
    with qtbot.waitSignal(panel.refreshed, timeout=WAIT_MS):
        window.mode.provider_button.click()
        panel.refresh()
    assert panel.isVisible() and not window.requestor_credits.isVisible()
    assert panel.balance.value.text() == units_text(grant + earned)
    assert panel.earned.value.text() == units_text(earned) and panel.spent.value.text() == "0.00"
    model = panel.model
    assert model.columns == ("Project", "When (UTC)", "Task", "Credits earned")
    # Grouped by project: the project's name with its tasks and total, then each task.
    texts = [[model.index(r, c).data() for c in range(4)] for r in range(model.rowCount())]
    assert texts[0] == [project.name, "", "3 tasks", units_text(earned)]
    assert model.index(0, 0).data(Qt.ItemDataRole.FontRole).bold()
    rows = {t[2]: t[3] for t in texts[1:]}
    assert rows == {task: units_text(amount) for task, amount in per_task.items()}
    assert [t[0] for t in texts[1:]] == ["", "", ""]

    # Requestor mode, as the requestor: the same amount spent, the grant, the balance after.
    window.log_out()
    log_in(qtbot, window, gui_api.url, requestor_name, create=False)
    panel = window.requestor_credits
    with qtbot.waitSignal(panel.refreshed, timeout=WAIT_MS):
        window.mode.requestor_button.click()
        panel.refresh()
    assert panel.isVisible()
    assert panel.spent.value.text() == units_text(earned)
    assert panel.balance.value.text() == units_text(grant - earned)
    model = panel.model
    texts = [[model.index(r, c).data() for c in range(5)] for r in range(model.rowCount())]
    assert [t[1] for t in texts] == ["paid for a task"] * 3 + ["sign-up grant"]
    assert texts[-1][3:] == ["+500.00", "500.00"]
    assert texts[0][4] == units_text(grant - earned)
    assert sorted(t[3] for t in texts[:3]) == sorted(
        units_text(-amount, signed=True) for amount in per_task.values()
    )
    assert all(t[2] == project.name for t in texts[:3])
