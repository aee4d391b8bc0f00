"""Credits in the GUI against the real API: balance and history in both modes, and the
credit each task earned in provider mode.

The tasks are trained "by hand" (claimed over HTTP, synthetic deltas uploaded to the
presigned URLs) and accepted by a real ``Aggregator`` on the API's database, so the ledger
entries the GUI shows are the ones the system really posts.
"""

from __future__ import annotations

from daig import topology
from daig.blobstore import open_blob_store
from daig.broker import BrokerSession, connect
from daig.client import DaigClient
from daig.credits.pricing import task_cost
from daig.credits.units import to_units, units_text
from daig.db.session import make_engine, make_sessionmaker
from daig.hyperparams import Hyperparameters
from daig.weights.h5weights import read_weights
from daig.weights.schema import WeightSchema
from daig_scheduler.handlers import Scheduler
from requestor_gui.main_window import MainWindow
from tests.helpers.aggregation import DirectAggregator
from tests.helpers.gui import PASSWORD, WAIT_MS, log_in, unique
from tests.helpers.projects import create_started_project, write_small_data
from tests.helpers.queues import drain_tasks
from tests.helpers.results import ROWS, Provider, random_delta


def _train_by_hand(gui_api, digits_files, tmp_path, requestor: DaigClient, volunteer: Provider):
    """Start a 3-task project and have ``volunteer`` deliver all three; returns its id."""
    data = write_small_data(tmp_path / "data", rows=10)
    params = Hyperparameters(total_tasks=3, task_size=3, epochs=1)
    project_id = create_started_project(requestor, digits_files.model, data, params).id
    settings = gui_api.settings
    engine = make_engine(settings.database_url)
    connection = connect(settings.amqp_url)
    try:
        channel = connection.channel()
        topology.declare(channel)
        channel.confirm_delivery()
        sessions = make_sessionmaker(engine)
        Scheduler(sessions, settings).reconcile(project_id, BrokerSession(connection, channel))
        grants = [
            volunteer.claim(m.task_id)
            for m in drain_tasks(settings.amqp_url)
            if m.project_id == project_id
        ]
        assert len(grants) == 3
        schema = WeightSchema.of(read_weights(digits_files.model))
        aggregator = DirectAggregator(sessions, open_blob_store(settings), settings)
        for seed, grant in enumerate(grants):
            verdict = aggregator.handle(volunteer.result(grant, random_delta(schema, seed)))
            assert verdict is not None and verdict.status == "accepted"
    finally:
        connection.close()
        engine.dispose()
    return project_id, grants, schema.parameters


def test_balance_and_history_in_both_modes(
    qtbot, window: MainWindow, gui_api, digits_files, tmp_path
):
    requestor_name, volunteer_name = unique("req"), unique("vol")
    with DaigClient(gui_api.url) as requestor, DaigClient(gui_api.url) as volunteer_client:
        for client, name in ((requestor, requestor_name), (volunteer_client, volunteer_name)):
            client.signup(name, PASSWORD)
            client.login(name, PASSWORD)
        volunteer = Provider(volunteer_client)
        project_id, grants, parameters = _train_by_hand(
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
    assert model.columns == ("When (UTC)", "Project", "Task", "Credits earned")
    rows = {model.index(r, 2).data(): model.index(r, 3).data() for r in range(model.rowCount())}
    assert rows == {task: units_text(amount) for task, amount in per_task.items()}
    assert {model.index(r, 1).data() for r in range(3)} == {str(project_id)[:8]}

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
    assert all(t[2] == str(project_id)[:8] for t in texts[:3])
