"""Log in or create an account; the server URL and username are remembered.

A refused login that says when to try again ("...; try again in 42 s") counts down on screen,
with Log in disabled until then (or until another username is typed: the wait is per account
and address).
"""

from __future__ import annotations

import math
import re
import time

from PyQt5.QtCore import Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import (
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from requestor_gui.account import Account, sign_in
from requestor_gui.settings import GuiSettings
from requestor_gui.views.common import Message, button, label
from requestor_gui.workers import Runner

COUNTDOWN = re.compile(r"try again in (\d+) s")


def count_down(message: str, seconds: int) -> str:
    """``message`` with its countdown at ``seconds``."""
    return COUNTDOWN.sub(f"try again in {seconds} s", message, count=1)


class LoginView(QWidget):
    """Emits ``logged_in(Account)`` once the server accepted the credentials."""

    logged_in = pyqtSignal(object)

    def __init__(self, runner: Runner, settings: GuiSettings, parent: QWidget | None = None):
        super().__init__(parent)
        self._runner, self._settings = runner, settings
        self._busy = False
        self._refusal, self._until = "", 0.0  # a countdown's message and monotonic deadline
        self._countdown = QTimer(self)
        self._countdown.setInterval(250)  # a second's change shows within a quarter second
        self._countdown.timeout.connect(self._tick)
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self._card())
        row.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(2)

    def _card(self) -> QFrame:
        card = QFrame()
        card.setProperty("role", "card")
        card.setFixedWidth(460)
        layout = QVBoxLayout(card)
        layout.setContentsMargins(28, 24, 28, 24)
        layout.setSpacing(10)
        layout.addWidget(label("DAIG", "title"))
        layout.addWidget(
            label(
                "The Distributed A.I. Grid: train your Keras models on volunteers' "
                "computers, or lend yours.",
                "subtitle",
                wrap=True,
            )
        )
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self.server = QLineEdit(self._settings.server)
        self.server.setPlaceholderText("http://127.0.0.1:8000")
        self.username = QLineEdit(self._settings.username)
        self.username.setPlaceholderText("your username")
        self.username.textEdited.connect(self._username_edited)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.Password)
        self.password.setPlaceholderText("at least 8 characters")
        self.password.returnPressed.connect(self.log_in)
        form.addRow("Server", self.server)
        form.addRow("Username", self.username)
        form.addRow("Password", self.password)
        layout.addLayout(form)
        self.message = Message()
        layout.addWidget(self.message)
        buttons = QHBoxLayout()
        self.signup_button = button("Create account")
        self.signup_button.clicked.connect(self.sign_up)
        self.login_button = button("Log in", "primary")
        self.login_button.setDefault(True)
        self.login_button.clicked.connect(self.log_in)
        buttons.addWidget(self.signup_button)
        buttons.addStretch(1)
        buttons.addWidget(self.login_button)
        layout.addLayout(buttons)
        layout.addWidget(
            label(
                "Your password is never stored; the server address is remembered.",
                "hint",
                wrap=True,
            )
        )
        return card

    def log_in(self) -> None:
        self._submit(create=False)

    def sign_up(self) -> None:
        self._submit(create=True)

    def reset(self) -> None:
        """Back to a clean form (after logging out)."""
        self.password.clear()
        self.message.clear()
        self._stop_countdown()
        self._set_busy(False)

    def _submit(self, *, create: bool) -> None:
        if self._busy or self.counting_down:
            return
        server, user = self.server.text().strip(), self.username.text().strip()
        password = self.password.text()
        missing = [
            n for n, v in (("server", server), ("username", user), ("password", password)) if not v
        ]
        if missing:
            self.message.show_error(f"Please enter your {' and '.join(missing)}.")
            return
        if create and len(password) < 8:
            self.message.show_error("Choose a password of at least 8 characters.")
            return
        self._set_busy(True)
        self.message.show_info("Creating your account…" if create else "Logging in…")
        self._runner.start(
            sign_in,
            server,
            user,
            password,
            create=create,
            on_returned=self._accepted,
            on_errored=self._refused,
        )

    def _accepted(self, account: Account) -> None:
        self._set_busy(False)
        self.message.clear()
        self.password.clear()
        self._settings.server, self._settings.username = account.server, account.username
        self._settings.save()
        self.server.setText(account.server)
        self.logged_in.emit(account)

    def _refused(self, message: str) -> None:
        self._set_busy(False)
        match = COUNTDOWN.search(message)
        if match is None:
            self.message.show_error(message)
            return
        self._refusal, self._until = message, time.monotonic() + int(match.group(1))
        self._countdown.start()
        self._tick()

    def _tick(self) -> None:
        left = math.ceil(self._until - time.monotonic())
        if left <= 0:
            self._stop_countdown()
            self.message.show_info("You can try again now.")
            return
        self.login_button.setEnabled(False)
        self.message.show_error(count_down(self._refusal, left))

    def _username_edited(self, _text: str) -> None:
        self._stop_countdown()  # the wait is per account (and address): another may log in

    def _stop_countdown(self) -> None:
        if self._countdown.isActive():
            self._countdown.stop()
            self.login_button.setEnabled(not self._busy)

    @property
    def counting_down(self) -> bool:
        return self._countdown.isActive()

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        for widget in (self.login_button, self.signup_button, self.server, self.username):
            widget.setEnabled(not busy)
        if self._countdown.isActive():
            self.login_button.setEnabled(False)
