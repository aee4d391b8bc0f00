"""Provider mode against a real API and broker: Participate, Stop, limits, closing cleanly.

No scheduler runs here, so no task arrives: these tests cover starting and stopping the agent
off the UI thread. ``test_journey.py`` trains real tasks on a cluster of processes.
"""

from __future__ import annotations

import json

from requestor_gui.main_window import MainWindow
from requestor_gui.settings import settings_file
from tests.helpers.gui import log_in

AGENT_MS = 60_000


def test_participate_and_stop(qtbot, window: MainWindow, requestor, gui_api) -> None:
    user, _ = requestor
    log_in(qtbot, window, gui_api.url, user, create=False)
    window.mode.provider_button.click()
    provider = window.provider
    assert provider.participate_button.isEnabled() and not provider.stop_button.isEnabled()
    provider.threads_box.setValue(1)
    provider.memory_box.setValue(1024)
    saved = json.loads(settings_file().read_text())
    assert (saved["threads"], saved["memory_mb"]) == (1, 1024)

    with qtbot.waitSignal(provider.running_changed, timeout=AGENT_MS):
        provider.participate_button.click()
    thread = provider.agent_thread
    assert thread is not None and thread.isRunning()
    assert (thread.agent.config.threads, thread.agent.config.memory_mb) == (1, 1024)
    assert not provider.participate_button.isEnabled() and not provider.threads_box.isEnabled()
    # The training process imports TensorFlow when the agent starts, not at the first task.
    qtbot.waitUntil(lambda: "starting TensorFlow" in provider.state.text(), timeout=AGENT_MS)
    qtbot.waitUntil(
        lambda: provider.state.text() == "Participating: waiting for a task…", timeout=AGENT_MS
    )
    assert thread.agent._trainer.state == "ready"
    assert window.volunteering.isVisible()

    # Switching to requestor mode keeps volunteering in the background.
    window.mode_buttons["requestor"].click()
    assert provider.running and window.volunteering.isVisible()
    window.mode_buttons["provider"].click()

    agent = thread.agent
    with qtbot.waitSignal(provider.running_changed, timeout=AGENT_MS) as stopped:
        provider.stop_button.click()
    assert stopped.args == [False]
    assert agent.status.state == "stopped" and provider.agent_thread is None
    assert provider.state.text().startswith("Stopped.")
    assert provider.participate_button.isEnabled() and provider.threads_box.isEnabled()
    assert not window.volunteering.isVisible() and not provider.message.is_error


def test_closing_the_window_stops_the_agent_first(qtbot, window: MainWindow, requestor, gui_api):
    user, _ = requestor
    log_in(qtbot, window, gui_api.url, user, create=False)
    window.mode.provider_button.click()
    provider = window.provider
    provider.keep_check.setChecked(False)  # the volunteer chose: closing stops volunteering
    provider.participate_button.click()
    assert provider.agent_thread is not None
    agent = provider.agent_thread.agent
    qtbot.waitUntil(lambda: agent.status.state == "waiting for tasks", timeout=AGENT_MS)
    window.close()  # refused until the agent stopped, then done by itself
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=AGENT_MS)
    assert agent.stop.is_set() and agent.status.state == "stopped"
    assert provider.agent_thread is None


def test_logging_out_stops_the_agent(qtbot, window: MainWindow, requestor, gui_api) -> None:
    user, _ = requestor
    log_in(qtbot, window, gui_api.url, user, create=False)
    window.mode.provider_button.click()
    window.provider.participate_button.click()
    assert window.provider.agent_thread is not None
    agent = window.provider.agent_thread.agent
    window.logout_button.click()
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.login, timeout=AGENT_MS)
    assert agent.status.state == "stopped" and window.account is None
    assert window.provider.agent_thread is None
