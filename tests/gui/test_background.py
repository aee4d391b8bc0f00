"""Volunteering in the background (issue 16): closing the window keeps the agent working
(behind the tray icon, or handed to a background process), the tray's menu works, the login is
kept as a token (never the password) in a private file, and the autostart tick adds and removes
the XDG autostart entry. Real API, real broker, real agent and processes.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import httpx
import pytest

from provider_agent import saved_login, status_file
from requestor_gui import desktop_entry
from requestor_gui.main_window import MainWindow
from requestor_gui.settings import GuiSettings
from tests.helpers.gui import PASSWORD, log_in

AGENT_MS = 60_000


@pytest.fixture(autouse=True)
def _own_runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The background agent's status file in this test's own directory."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def _participating(qtbot, window: MainWindow, url: str, user: str) -> None:
    log_in(qtbot, window, url, user, create=False)
    window.mode.provider_button.click()
    window.provider.participate_button.click()
    thread = window.provider.agent_thread
    assert thread is not None
    qtbot.waitUntil(lambda: thread.status.state == "waiting for tasks", timeout=AGENT_MS)


def test_closing_keeps_the_agent_working_behind_the_tray(qtbot, window, requestor, gui_api):
    user, _ = requestor
    _participating(qtbot, window, gui_api.url, user)
    window.tray.icon.show()  # as where a system tray exists
    agent = window.provider.agent_thread.agent
    window.close()
    assert not window.isVisible(), "the window goes to the tray"
    qtbot.wait(2000)
    assert window.provider.agent_thread is not None and window.provider.agent_thread.isRunning()
    assert not agent.stop.is_set() and agent.status.state == "waiting for tasks"
    assert agent._trainer.state == "ready", "the training process is still there"
    actions = window.tray.actions
    assert not actions["participate"].isEnabled() and actions["stop"].isEnabled()

    with qtbot.waitSignal(window.provider.running_changed, timeout=AGENT_MS) as stopped:
        actions["stop"].trigger()
    assert stopped.args == [False] and agent.status.state == "stopped"
    assert actions["participate"].isEnabled() and not actions["stop"].isEnabled()
    with qtbot.waitSignal(window.provider.running_changed, timeout=AGENT_MS) as started:
        actions["participate"].trigger()
    assert started.args == [True] and window.provider.agent_thread is not None
    actions["open"].trigger()
    assert window.isVisible()

    second = window.provider.agent_thread.agent
    actions["quit"].trigger()  # stops volunteering, then closes for good
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=AGENT_MS)
    assert second.stop.is_set() and second.status.state == "stopped"
    assert not window.tray.icon.isVisible()


def test_the_login_is_kept_as_a_private_token_never_the_password(
    qtbot, window, requestor, gui_api, tmp_path: Path
) -> None:
    user, _ = requestor
    log_in(qtbot, window, gui_api.url, user, create=False)
    path = saved_login.saved_login_file()
    assert path.is_relative_to(tmp_path / "config"), "XDG_CONFIG_HOME is honoured"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = saved_login.load()
    assert (saved.server, saved.username) == (gui_api.url, user)
    assert window.account is not None and saved.token == window.account.token
    assert saved.refresh_token and saved.refresh_token == window.account.refresh_token
    for root in (tmp_path / "config", tmp_path / "runtime", tmp_path / "cache"):
        for file in (p for p in root.rglob("*") if p.is_file()):
            assert PASSWORD.encode() not in file.read_bytes(), f"the password is in {file}"
    window.logout_button.click()
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.login, timeout=AGENT_MS)
    assert not path.exists(), "logging out forgets the saved login"

    def revoked() -> bool:
        body = {"grant_type": "refresh_token", "refresh_token": saved.refresh_token}
        return httpx.post(f"{gui_api.url}/v1/auth/refresh", data=body).status_code == 401

    qtbot.waitUntil(revoked, timeout=AGENT_MS)  # and revokes it on the server


def test_the_autostart_tick_creates_and_removes_the_entry(qtbot, window, requestor, gui_api):
    user, _ = requestor
    log_in(qtbot, window, gui_api.url, user, create=False)
    window.mode.provider_button.click()
    entry = Path(os.environ["XDG_CONFIG_HOME"]) / "autostart" / "daig-provider.desktop"
    assert not window.provider.autostart_check.isChecked() and not entry.exists()
    window.provider.autostart_check.setChecked(True)
    text = entry.read_text()
    assert text.startswith("[Desktop Entry]\n") and "Type=Application" in text
    exec_line = next(line for line in text.splitlines() if line.startswith("Exec="))
    argv = desktop_entry.parse_exec(exec_line.removeprefix("Exec="))
    assert argv[-3:] == ["daig_cli", "provider", "--use-saved-login"]
    assert "--password" not in argv and PASSWORD not in text
    assert desktop_entry.app_file().exists() and desktop_entry.ICON.exists()
    window.provider.autostart_check.setChecked(False)
    assert not entry.exists()
    assert window.windowIcon().isNull() is False


def test_without_a_tray_closing_hands_over_to_a_background_agent(
    qtbot, window, requestor, gui_api
) -> None:
    user, _ = requestor
    _participating(qtbot, window, gui_api.url, user)
    assert not window.tray.icon.isVisible()  # offscreen: no system tray
    inner = window.provider.agent_thread.agent
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=AGENT_MS)
    assert inner.status.state == "stopped"
    found = None

    def background_working() -> bool:
        nonlocal found
        found = status_file.read()
        return found is not None and found.status.state == "waiting for tasks"

    try:
        qtbot.waitUntil(background_working, timeout=120_000)
        assert found is not None and found.status.limits, "it reports its limits too"
        # Reopened, the window shows the background agent, and Stop stops it.
        reopened = MainWindow(GuiSettings.load())
        provider = reopened.provider
        assert provider.background is not None and provider.background.pid == found.pid
        assert provider.state.text().startswith(f"In the background (process {found.pid})")
        assert provider.stop_button.isEnabled() and not provider.participate_button.isEnabled()
        provider.stop_button.click()
        qtbot.waitUntil(lambda: not _alive(found.pid), timeout=AGENT_MS)
        qtbot.waitUntil(lambda: provider.background is None, timeout=10_000)
        assert provider.state.text().startswith("Stopped.")
        reopened.deleteLater()
    finally:
        if found is not None and _alive(found.pid):
            os.kill(found.pid, 9)


def _alive(pid: int) -> bool:
    done = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True)
    return done.returncode == 0 and not done.stdout.strip().startswith("Z")
