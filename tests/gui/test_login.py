"""Sign up, log in, switch modes and log out through the real widgets and a real API."""

from __future__ import annotations

import json
import time

import httpx

from requestor_gui.main_window import MainWindow
from requestor_gui.settings import settings_file
from requestor_gui.views.login import COUNTDOWN, count_down
from tests.helpers.gui import PASSWORD, WAIT_MS, log_in, unique
from tests.helpers.services import free_port


def _error_after_click(qtbot, window: MainWindow, button) -> str:
    message = window.login.message
    button.click()
    qtbot.waitUntil(lambda: message.property("role") == "error", timeout=WAIT_MS)
    assert message.isVisible()
    return message.text()


def test_sign_up_choose_modes_and_log_out(qtbot, window: MainWindow, gui_api) -> None:
    user = unique()
    log_in(qtbot, window, gui_api.url + "/", user, create=True)
    assert window.account is not None and window.account.server == gui_api.url
    assert user in window.user_label.text() and window.header.isVisible()

    # The server and username are remembered; the password never is.
    saved = json.loads(settings_file().read_text())
    assert saved["server"] == gui_api.url and saved["username"] == user
    assert PASSWORD not in settings_file().read_text()

    window.mode.requestor_button.click()
    assert window.stack.currentWidget() is window.projects
    window.mode_buttons["provider"].click()
    assert window.stack.currentWidget() is window.provider
    window.mode_buttons["requestor"].click()
    assert window.stack.currentWidget() is window.projects

    window.logout_button.click()
    assert window.stack.currentWidget() is window.login and not window.header.isVisible()
    assert window.login.password.text() == "" and window.login.username.text() == user

    # Logging in again (an existing account) works with the remembered server.
    window.login.password.setText(PASSWORD)
    with qtbot.waitSignal(window.login.logged_in, timeout=WAIT_MS):
        window.login.login_button.click()


def test_wrong_password_is_a_clear_message(qtbot, window: MainWindow, requestor, gui_api) -> None:
    user, _ = requestor
    login = window.login
    login.server.setText(gui_api.url)
    login.username.setText(user)
    login.password.setText("not the password")
    assert _error_after_click(qtbot, window, login.login_button) == "Wrong username or password."
    assert window.stack.currentWidget() is login and login.login_button.isEnabled()


def test_unreachable_server_is_a_clear_message(qtbot, window: MainWindow) -> None:
    login = window.login
    server = f"127.0.0.1:{free_port()}"  # nothing listens there; no scheme typed
    login.server.setText(server)
    login.username.setText("someone")
    login.password.setText(PASSWORD)
    text = _error_after_click(qtbot, window, login.login_button)
    assert text.startswith(f"Cannot reach the DAIG server at http://{server}")
    assert "Check the address and that the server is running." in text
    assert "Traceback" not in text


def test_missing_fields_and_taken_names(qtbot, window: MainWindow, requestor, gui_api) -> None:
    login = window.login
    login.server.setText(gui_api.url)
    login.username.setText("")
    login.password.setText("")
    login.login_button.click()  # checked before any network call
    assert login.message.text() == "Please enter your username and password."
    user, _ = requestor
    login.username.setText(user)
    login.password.setText("short")
    login.signup_button.click()
    assert login.message.text() == "Choose a password of at least 8 characters."
    login.password.setText(PASSWORD)
    text = _error_after_click(qtbot, window, login.signup_button)
    assert text == f"The username '{user}' is taken; choose another."


def test_countdown_text() -> None:
    message = "Too many failed logins from this address for this account; try again in 42 s."
    assert count_down(message, 41) == (
        "Too many failed logins from this address for this account; try again in 41 s."
    )


def test_a_refused_login_counts_down_with_log_in_held(
    qtbot, window: MainWindow, requestor, gui_api
) -> None:
    user, _ = requestor

    def fail() -> None:
        response = httpx.post(
            f"{gui_api.url}/v1/auth/token", data={"username": user, "password": "wrong"}
        )
        assert response.status_code == 401, response.text

    # Failed logins from this machine's address (the window's too): the free ones, then two
    # more after their waits of 1 and 2 s, so the next attempt must wait 4 s.
    for _ in range(gui_api.settings.login_failures_per_user):
        fail()
    for wait in (1, 2):
        time.sleep(wait * gui_api.settings.login_backoff_seconds + 0.1)
        fail()
    login = window.login
    login.server.setText(gui_api.url)
    login.username.setText(user)
    login.password.setText(PASSWORD)
    login.login_button.click()
    qtbot.waitUntil(lambda: login.counting_down, timeout=WAIT_MS)

    def seconds() -> int:
        match = COUNTDOWN.search(login.message.text())
        assert match is not None, login.message.text()
        return int(match.group(1))

    first = seconds()
    assert 2 <= first <= 4
    assert login.message.text().startswith(
        "Too many failed logins from this address for this account; try again in"
    )
    assert not login.login_button.isEnabled()
    qtbot.waitUntil(lambda: seconds() == first - 1, timeout=2_000)  # it counts down
    login.log_in()  # Enter in the password field meanwhile does nothing
    assert login.counting_down and not login.login_button.isEnabled()
    qtbot.waitUntil(lambda: not login.counting_down, timeout=(first + 2) * 1000)
    assert login.message.text() == "You can try again now." and login.login_button.isEnabled()
    with qtbot.waitSignal(login.logged_in, timeout=WAIT_MS):
        login.login_button.click()
