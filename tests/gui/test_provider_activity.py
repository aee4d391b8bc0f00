"""The volunteer's desktop tells the truth, against the real API (and its database, broker and
a real aggregator's verdicts): a real task trained by the GUI's own agent shows its project
by name and its phases in order; the task list and event log show accepted and rejected
results with their reasons and credits, with a notice for a rejection or a quarantine; while
the server is unreachable the provider status counts down to the next try and the top-bar
light says so, until it answers again."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from PyQt5.QtWidgets import QLabel
from sqlalchemy.dialects.postgresql import insert

from daig.client import DaigClient
from daig.db.models import ProviderTrust
from daig.db.session import make_engine, make_sessionmaker
from daig.hyperparams import Hyperparameters
from requestor_gui.main_window import MainWindow
from requestor_gui.views.provider import ProviderView
from tests.helpers.by_hand import publish_tasks, train_by_hand
from tests.helpers.gui import PASSWORD, WAIT_MS, log_in, unique
from tests.helpers.projects import create_started_project, write_small_data
from tests.helpers.proxy import Proxy
from tests.helpers.results import Provider

AGENT_MS = 60_000
TRAIN_MS = 240_000
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _signed_up(server: str) -> tuple[str, DaigClient]:
    name = unique("u")
    client = DaigClient(server)
    client.signup(name, PASSWORD)
    client.login(name, PASSWORD)
    return name, client


def _visible_text(view: ProviderView) -> str:
    labels = [w.text() for w in view.findChildren(QLabel) if w.isVisible()]
    model = view.activity.model
    cells = [
        str(model.index(r, c).data())
        for r in range(model.rowCount())
        for c in range(model.columnCount())
    ]
    return "\n".join(labels + cells + view.activity.event_log)


@pytest.mark.timeout(400)
def test_a_real_task_shows_its_project_by_name_and_its_phases_in_order(
    qtbot, window: MainWindow, gui_api, digits_files, tmp_path
) -> None:
    _, requestor = _signed_up(gui_api.url)
    volunteer, _ = _signed_up(gui_api.url)
    log_in(qtbot, window, gui_api.url, volunteer, create=False)
    window.mode.provider_button.click()
    provider = window.provider
    provider.threads_box.setValue(1)
    provider.participate_button.click()
    agent = provider.agent_thread.agent  # type: ignore[union-attr]
    qtbot.waitUntil(lambda: agent.status.state == "waiting for tasks", timeout=AGENT_MS * 2)

    data = write_small_data(tmp_path / "data", rows=10)
    params = Hyperparameters(total_tasks=1, task_size=1, epochs=3)
    project = create_started_project(requestor, digits_files.model, data, params)
    publish_tasks(gui_api, project.id)
    texts: list[str] = []

    def sent() -> bool:
        if provider.phase_label.text().startswith("training epoch"):
            texts.append(_visible_text(provider))
        recent = agent.status.recent
        return bool(recent) and recent[0].outcome == "sent"

    qtbot.waitUntil(sent, timeout=TRAIN_MS)
    requestor_name = requestor.me().username
    assert texts, "the task's training was never on screen"
    assert f"{project.name} (by {requestor_name})" in texts[0]
    assert not any(UUID.search(text) for text in texts), texts[0]
    phases = list(agent.status.phases)
    assert phases[0] == "downloading rows", phases
    epochs = [p for p in phases if p.startswith("training epoch")]
    assert epochs == ["training epoch 1/3", "training epoch 2/3", "training epoch 3/3"], phases
    assert phases[-1] == "uploading", phases
    assert phases.index("training epoch 1/3") > 0
    # The task list: the project's name, round 1, shard 0, sent and waiting for its verdict.
    model = provider.activity.model
    qtbot.waitUntil(
        lambda: (
            model.rowCount() == 1
            and model.task(0).outcome == "sent; waiting for the server's verdict"
        ),
        timeout=WAIT_MS,
    )
    row = model.task(0)
    assert (row.project, row.round, row.shard) == (project.name, 1, 0) and row.seconds
    with qtbot.waitSignal(provider.running_changed, timeout=AGENT_MS):
        provider.stop_button.click()
    requestor.cancel(project.id)
    requestor.close()


def test_task_list_event_log_and_notices_for_accepted_rejected_and_quarantine(
    qtbot, window: MainWindow, gui_api, digits_files, tmp_path
) -> None:
    _, requestor = _signed_up(gui_api.url)
    volunteer_name, volunteer_client = _signed_up(gui_api.url)
    volunteer = Provider(volunteer_client)
    project, grants, _ = train_by_hand(
        gui_api, digits_files, tmp_path, requestor, volunteer, corrupt_shards={1}
    )
    log_in(qtbot, window, gui_api.url, volunteer_name, create=False)
    activity = window.provider.activity
    with qtbot.waitSignal(activity.refreshed, timeout=WAIT_MS):
        window.mode.provider_button.click()
        activity.refresh()

    rows = [activity.model.task(r) for r in range(activity.model.rowCount())]
    assert sorted((r.project, r.round, r.shard) for r in rows) == [
        (project.name, 1, 0),
        (project.name, 1, 1),
        (project.name, 1, 2),
    ]
    by_shard = {r.shard: r for r in rows}
    assert by_shard[1].outcome.startswith("rejected: ") and by_shard[1].credits == 0
    assert by_shard[0].outcome == by_shard[2].outcome == "accepted"
    assert by_shard[0].credits and by_shard[0].credits > 0
    log = activity.event_log
    assert len(log) == 3
    rejected = [line for line in log if "rejected" in line]
    assert len(rejected) == 1 and f"{project.name}, round 1, shard 1" in rejected[0]
    assert "sha256 does not match" in rejected[0]  # the reason in words
    assert sum("accepted" in line and "credits)" in line for line in log) == 2
    # A notice for the rejection, until dismissed; not raised again for the same result.
    assert activity.notice.is_error and project.name in activity.notice.text()
    assert "not counted" in activity.notice.text()
    activity.dismiss_button.click()
    assert not activity.notice.isVisible()
    with qtbot.waitSignal(activity.refreshed, timeout=WAIT_MS):
        activity.refresh()
    assert not activity.notice.isVisible()

    # The account is quarantined (as the aggregator does when its result is outvoted).
    engine = make_engine(gui_api.settings.database_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            values = {
                "provider_id": volunteer.id,
                "quarantined_at": datetime.now(UTC),
                "quarantine_reason": "its result was outvoted by other volunteers' results",
                "quarantine_project": project.id,
            }
            session.execute(
                insert(ProviderTrust)
                .values(**values)
                .on_conflict_do_update(index_elements=["provider_id"], set_=values)
            )
    finally:
        engine.dispose()
    with qtbot.waitSignal(activity.refreshed, timeout=WAIT_MS):
        activity.refresh()
    assert activity.notice.is_error and "quarantined" in activity.notice.text()
    assert "outvoted" in activity.notice.text()
    requestor.close()
    volunteer_client.close()


def test_unreachable_server_counts_down_and_the_light_changes_until_it_answers(
    qtbot, window: MainWindow, requestor, gui_api
) -> None:
    user, _ = requestor
    proxy = Proxy(gui_api.url)
    try:
        log_in(qtbot, window, proxy.url, user, create=False)
        window.mode.provider_button.click()
        provider = window.provider
        assert not window.volunteering.isVisible()
        proxy.cut()
        provider.threads_box.setValue(1)
        provider.participate_button.click()
        seen: list[str] = []

        def counting_down() -> bool:
            seen.append(provider.state.text())
            return "Server unreachable: the DAIG server is unreachable" in seen[-1]

        qtbot.waitUntil(counting_down, timeout=AGENT_MS)
        countdown = re.search(r"retrying in (\d+) s", provider.state.text())
        assert countdown is not None, provider.state.text()
        assert "the DAIG server is unreachable" in provider.state.text()
        assert window.volunteering.isVisible()
        assert window.volunteering.text() == "● server unreachable"
        # The count goes down between tries (the tries are 1, 2, 4... s apart).
        qtbot.waitUntil(
            lambda: (
                (m := re.search(r"retrying in (\d+) s", provider.state.text())) is not None
                and int(m.group(1)) >= 2
            ),
            timeout=AGENT_MS,
        )
        start = int(re.findall(r"retrying in (\d+) s", provider.state.text())[0])
        qtbot.waitUntil(
            lambda: f"retrying in {start - 1} s" in provider.state.text(), timeout=5_000
        )

        proxy.restore()
        qtbot.waitUntil(lambda: provider.state.text().startswith("Participating"), timeout=AGENT_MS)
        qtbot.waitUntil(lambda: window.volunteering.text() == "● volunteering", timeout=WAIT_MS)
        assert window.volunteering.isVisible() and provider.server_reachable

        # Down again while the agent waits for tasks (it talks only to the broker then): the
        # task list's poll notices within its period, and the status says so too.
        proxy.cut()
        qtbot.waitUntil(
            lambda: "the DAIG server does not answer; retrying in" in provider.state.text(),
            timeout=WAIT_MS,
        )
        assert window.volunteering.text() == "● server unreachable"
        proxy.restore()
        qtbot.waitUntil(lambda: window.volunteering.text() == "● volunteering", timeout=WAIT_MS)
        qtbot.waitUntil(lambda: provider.state.text().startswith("Participating"), timeout=2_000)
        with qtbot.waitSignal(provider.running_changed, timeout=AGENT_MS):
            provider.stop_button.click()
    finally:
        proxy.close()
