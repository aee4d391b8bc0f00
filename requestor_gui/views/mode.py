"""Choose a role: learning requestor (left) or resource provider (right)."""

from __future__ import annotations

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtWidgets import QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from requestor_gui.views.common import label

REQUESTOR, PROVIDER = "requestor", "provider"


class ModeView(QWidget):
    """Emits ``chosen("requestor" | "provider")``."""

    chosen = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(40, 30, 40, 30)
        outer.addStretch(1)
        self.greeting = label("What would you like to do?", "title")
        self.greeting.setAlignment(Qt.AlignmentFlag.AlignCenter)
        outer.addWidget(self.greeting)
        hint = label("You can switch at any time from the bar at the top.", "subtitle")
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        outer.addWidget(hint)
        outer.addSpacing(20)
        row = QHBoxLayout()
        row.setSpacing(24)
        self.requestor_button = self._card(
            "Learning requestor",
            "Train your Keras model on volunteers' computers: upload a compiled model "
            "(.h5 or .keras) with its data and labels (.npy), watch loss and accuracy per "
            "round, and download the model at any time.",
            REQUESTOR,
        )
        self.provider_button = self._card(
            "Resource provider",
            "Lend this computer's idle time: DAIG sends you training tasks on small data "
            "shards. You choose how many CPU threads and how much memory it may use, and "
            "Stop hands the current task back at once.",
            PROVIDER,
        )
        row.addWidget(self.requestor_button)
        row.addWidget(self.provider_button)
        outer.addLayout(row)
        outer.addStretch(2)

    def set_user(self, username: str) -> None:
        self.greeting.setText(f"Welcome, {username}. What would you like to do?")

    def _card(self, title: str, text: str, mode: str) -> QPushButton:
        card = QPushButton()
        card.setProperty("role", "card")
        card.setMinimumSize(320, 190)
        card.setCursor(Qt.CursorShape.PointingHandCursor)
        layout = QVBoxLayout(card)
        layout.setContentsMargins(24, 20, 24, 20)
        heading = label(title, "title")
        layout.addWidget(heading)
        layout.addWidget(label(text, "subtitle", wrap=True))
        layout.addStretch(1)
        card.clicked.connect(lambda: self.chosen.emit(mode))
        return card
