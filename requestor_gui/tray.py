"""The tray icon: volunteering goes on with the window closed; Participate, Stop, Open, Quit."""

from __future__ import annotations

from PyQt5.QtCore import QObject, pyqtSignal
from PyQt5.QtGui import QIcon
from PyQt5.QtWidgets import QAction, QMenu, QSystemTrayIcon

from requestor_gui.desktop_entry import ICON


def app_icon() -> QIcon:
    return QIcon(str(ICON))


class Tray(QObject):
    """A tray icon with its menu; the window connects the signals."""

    participate = pyqtSignal()
    stop = pyqtSignal()
    open_window = pyqtSignal()
    quit_app = pyqtSignal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.icon = QSystemTrayIcon(app_icon(), self)
        self.icon.setToolTip("DAIG")
        self.menu = QMenu()
        self.actions: dict[str, QAction] = {}
        for key, text, signal in (
            ("participate", "Participate", self.participate),
            ("stop", "Stop", self.stop),
            ("open", "Open DAIG", self.open_window),
            ("quit", "Quit (stops volunteering)", self.quit_app),
        ):
            action = self.menu.addAction(text)
            assert action is not None
            action.triggered.connect(signal.emit)
            self.actions[key] = action
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._activated)

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            self.open_window.emit()

    def show_state(self, running: bool, state: str) -> None:
        self.actions["participate"].setEnabled(not running)
        self.actions["stop"].setEnabled(running)
        self.icon.setToolTip(f"DAIG: {state}")
