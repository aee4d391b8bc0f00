"""Desktop notifications: a project finished or failed, volunteering paused or resumed.

``Notifier.notify`` shows a message from the system tray icon when the desktop has a tray,
and otherwise in the window's own notice bar. Every notification is also emitted as
``notified(title, text)``. ``ProjectWatcher`` turns the project lists the GUI fetches anyway
into "finished" and "failed" notifications (once per project, and only for a change it saw
happen, not for projects that were already over when first seen).
"""

from __future__ import annotations

from PyQt5.QtCore import QObject, QTimer, pyqtSignal
from PyQt5.QtWidgets import QSystemTrayIcon

from daig.contract.http import ProjectOut
from requestor_gui.views.common import Message

ACTIVE = frozenset({"created", "queued", "running", "paused"})
SHOW_MS = 8000  # a tray message
NOTICE_MS = 60_000  # the in-window notice


class Notifier(QObject):
    """Where notifications go: the tray icon if there is one, else ``notice`` in the window."""

    notified = pyqtSignal(str, str)  # title, text

    def __init__(
        self, notice: Message, tray: QSystemTrayIcon | None = None, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.notice = notice
        self.tray = tray
        # A child timer, so it dies with the window: a bare singleShot would fire into a
        # deleted notice bar after the window was closed.
        self._expiry = QTimer(self)
        self._expiry.setSingleShot(True)
        self._expiry.timeout.connect(self._expire)
        self._shown = ""

    def notify(self, title: str, text: str, *, error: bool = False) -> None:
        tray = self.tray
        if tray is not None and tray.isVisible() and QSystemTrayIcon.supportsMessages():
            icon = (
                QSystemTrayIcon.MessageIcon.Warning
                if error
                else QSystemTrayIcon.MessageIcon.Information
            )
            tray.showMessage(title, text, icon, SHOW_MS)
        else:
            self._shown = f"{title}: {text}"
            (self.notice.show_error if error else self.notice.show_info)(self._shown)
            self._expiry.start(NOTICE_MS)  # gone by itself after a while (a newer one restarts it)
        self.notified.emit(title, text)

    def _expire(self) -> None:
        if self.notice.text() == self._shown:  # unless something else replaced it meanwhile
            self.notice.clear()


class ProjectWatcher(QObject):
    """Notifies when a project it saw active is seen finished or failed."""

    def __init__(self, notifier: Notifier, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._notifier = notifier
        self._states: dict[str, str] = {}

    def forget(self) -> None:
        """A new account: nothing seen yet."""
        self._states.clear()

    def see(self, projects: list[ProjectOut]) -> None:
        for project in projects:
            key = str(project.id)
            before, now = self._states.get(key), project.state
            self._states[key] = now
            if before in ACTIVE and now == "done":
                text = f"{project.name} is done; its model can be downloaded."
                self._notifier.notify("Project finished", text)
            elif before in ACTIVE and now == "failed":
                text = f"{project.name}: {project.error or 'see its screen'}"
                self._notifier.notify("Project failed", text, error=True)


class VolunteerWatcher(QObject):
    """Notifies when the agent pauses (a politeness condition) or resumes taking work."""

    def __init__(self, notifier: Notifier, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._notifier = notifier
        self._paused: str | None = None

    def reset(self) -> None:
        self._paused = None

    def see(self, paused_because: str | None) -> None:
        if paused_because == self._paused:
            return
        before, self._paused = self._paused, paused_because
        if paused_because and not before:
            self._notifier.notify("Volunteering paused", paused_because)
        elif before and not paused_because:
            self._notifier.notify("Volunteering resumed", "this computer takes tasks again")
