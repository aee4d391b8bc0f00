"""What the GUI tests share: their users' password, the signal timeout, unique names, logging in.

Kept free of Qt imports at module level: ``tests/gui/conftest.py`` chooses the offscreen
platform before anything imports PyQt5.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from requestor_gui.main_window import MainWindow

PASSWORD = "a long password"
WAIT_MS = 20_000


def unique(prefix: str = "gui") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def log_in(
    qtbot, window: MainWindow, server: str, user: str, password: str = PASSWORD, *, create: bool
) -> None:
    """Fill the login form and press the button; waits for the mode screen."""
    login = window.login
    login.server.setText(server)
    login.username.setText(user)
    login.password.setText(password)
    with qtbot.waitSignal(login.logged_in, timeout=WAIT_MS):
        (login.signup_button if create else login.login_button).click()
    assert window.stack.currentWidget() is window.mode
