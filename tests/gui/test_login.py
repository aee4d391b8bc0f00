"""Sign up, log in, switch modes and log out through the real widgets and a real API."""

from __future__ import annotations

import json

from requestor_gui.main_window import MainWindow
from requestor_gui.settings import settings_file
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
