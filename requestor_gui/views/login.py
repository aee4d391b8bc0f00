"""Log in or create an account; the server URL and username are remembered."""

from __future__ import annotations

from PyQt5.QtCore import Qt, pyqtSignal
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


class LoginView(QWidget):
    """Emits ``logged_in(Account)`` once the server accepted the credentials."""

    logged_in = pyqtSignal(object)

    def __init__(self, runner: Runner, settings: GuiSettings, parent: QWidget | None = None):
        super().__init__(parent)
        self._runner, self._settings = runner, settings
        self._busy = False
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
        self._set_busy(False)

    def _submit(self, *, create: bool) -> None:
        if self._busy:
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
        self.message.show_error(message)

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        for widget in (self.login_button, self.signup_button, self.server, self.username):
            widget.setEnabled(not busy)
