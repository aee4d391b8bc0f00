"""The main window: a header bar (mode switch, who is logged in) over a stack of screens.

Closing it does not stop volunteering unless the volunteer chose so (``keep_volunteering``):
with a system tray the window hides and the in-process agent goes on behind the tray icon
(Participate, Stop, Open, Quit); without one, the agent gives its task back and the same work
goes on in a background process (``background.py``) that the window shows again on reopening.
Quit (tray or ``quit_app``) stops everything.
"""

from __future__ import annotations

import logging

from PyQt5.QtCore import QThread, QTimer, pyqtSignal
from PyQt5.QtGui import QCloseEvent, QGuiApplication
from PyQt5.QtWidgets import (
    QApplication,
    QButtonGroup,
    QFrame,
    QHBoxLayout,
    QMainWindow,
    QSystemTrayIcon,
    QVBoxLayout,
    QWidget,
)

from provider_agent import saved_login
from requestor_gui import actions, background, style, wheel_guard
from requestor_gui.account import Account
from requestor_gui.notifier import Notifier, ProjectWatcher, VolunteerWatcher
from requestor_gui.pages import PageStack, scrolled
from requestor_gui.settings import GuiSettings
from requestor_gui.tray import Tray, app_icon
from requestor_gui.views.common import Message, button, label
from requestor_gui.views.credits import CreditsPanel
from requestor_gui.views.login import LoginView
from requestor_gui.views.mode import PROVIDER, REQUESTOR, ModeView
from requestor_gui.views.new_project import NewProjectView
from requestor_gui.views.project_detail import ProjectDetailView
from requestor_gui.views.projects import ProjectsView
from requestor_gui.views.provider import ProviderView
from requestor_gui.workers import Runner

log = logging.getLogger(__name__)
STOP_GRACE_MS = 30_000  # how long closing waits for the agent to give its task back
_abandoned: list[QThread] = []  # agent threads that outlived the grace period, until exit
WATCH_MS = 15_000  # how often the project list is fetched while another screen is shown
MINIMUM_SIZE = (760, 520)  # fits 1280x720 with a taskbar and the title bar
VOLUNTEERING_COLOUR, UNREACHABLE_COLOUR = "#5fd17a", "#f0a030"  # the top bar's light


class MainWindow(QMainWindow):
    closed_for_good = pyqtSignal()  # the window closed and nothing runs behind a tray icon

    def __init__(self, settings: GuiSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or GuiSettings.load()
        self.account: Account | None = None
        self.runner = Runner(self)
        self._closing = False
        self._quitting = False  # Quit: stop volunteering too, whatever keep_volunteering says
        self._hand_over = False  # start the background agent once the in-process one stopped
        self._after_stop: str | None = None  # "close" or "logout", once the agent stopped
        self.setWindowTitle("DAIG — Distributed A.I. Grid")
        app = QApplication.instance()
        if isinstance(app, QApplication):
            wheel_guard.install(app)
        self.setWindowIcon(app_icon())
        self.setMinimumSize(*MINIMUM_SIZE)
        self._fit_screen(1180, 780)
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self._header())
        self.notice = Message()  # notifications, when the desktop has no tray
        column.addWidget(self.notice)
        self.stack = PageStack()
        self.page_area = scrolled(self.stack)
        column.addWidget(self.page_area, 1)
        self.setCentralWidget(central)
        self._build_views()
        self.tray = self._tray()
        self._build_notifications()
        self.shortcuts = actions.install(self)
        self.show_login()

    def _fit_screen(self, width: int, height: int) -> None:
        """Start at ``width`` x ``height``, or smaller on a smaller screen."""
        screen = QGuiApplication.primaryScreen()
        if screen is not None:
            room = screen.availableGeometry()
            width, height = min(width, room.width()), min(height, room.height() - 40)
        self.resize(max(width, MINIMUM_SIZE[0]), max(height, MINIMUM_SIZE[1]))

    def _build_notifications(self) -> None:
        # Through the tray icon where the desktop shows one, else the notice in the window.
        self.notifier = Notifier(self.notice, self.tray.icon, self)
        self.project_watcher = ProjectWatcher(self.notifier, self)
        self.volunteer_watcher = VolunteerWatcher(self.notifier, self)
        self.projects.refreshed.connect(
            lambda: self.project_watcher.see(
                [self.projects.model.project(r) for r in range(self.projects.model.rowCount())]
            )
        )
        self.detail.refreshed.connect(
            lambda: self.project_watcher.see([self.detail.project] if self.detail.project else [])
        )
        self.provider.timer.timeout.connect(self._watch_volunteering)
        self.watch_timer = QTimer(self)
        self.watch_timer.setInterval(WATCH_MS)
        self.watch_timer.timeout.connect(self._watch_projects)

    # --- building ---------------------------------------------------------------------------
    def _header(self) -> QFrame:
        self.header = QFrame()
        self.header.setProperty("role", "header")
        row = QHBoxLayout(self.header)
        row.setContentsMargins(16, 8, 16, 8)
        brand = label("DAIG")
        brand.setStyleSheet("font-weight: 700; font-size: 13pt;")
        row.addWidget(brand)
        row.addSpacing(18)
        self.mode_group = QButtonGroup(self)
        self.mode_buttons = {}
        for mode, text in ((REQUESTOR, "Learning requestor"), (PROVIDER, "Resource provider")):
            widget = button(text, "mode")
            widget.setCheckable(True)
            widget.clicked.connect(lambda _=False, m=mode: self.choose_mode(m))
            self.mode_group.addButton(widget)
            self.mode_buttons[mode] = widget
            row.addWidget(widget)
        row.addStretch(1)
        self.volunteering = label("● volunteering")  # the light: see _show_light
        self.volunteering.setStyleSheet(f"color: {VOLUNTEERING_COLOUR}; font-weight: 600;")
        self.volunteering.setToolTip("This computer is training tasks (Resource provider)")
        self.volunteering.hide()
        row.addWidget(self.volunteering)
        row.addSpacing(12)
        self.user_label = label("")
        row.addWidget(self.user_label)
        self.logout_button = button("Log out")
        self.logout_button.clicked.connect(self.log_out)
        row.addWidget(self.logout_button)
        return self.header

    def _tray(self) -> Tray:
        tray = Tray(self)
        tray.participate.connect(self.provider.participate)
        tray.stop.connect(self.provider.stop)
        tray.open_window.connect(self.open_from_tray)
        tray.quit_app.connect(self.quit_app)
        self.provider.state_changed.connect(tray.show_state)
        if QSystemTrayIcon.isSystemTrayAvailable():
            tray.icon.show()
        return tray

    def _build_views(self) -> None:
        self.login = LoginView(self.runner, self.settings)
        self.login.logged_in.connect(self.logged_in)
        self.mode = ModeView()
        self.mode.chosen.connect(self.choose_mode)
        self.projects = ProjectsView(self.runner)
        self.projects.new_project.connect(self.show_new_project)
        self.projects.open_project.connect(self.show_project)
        self.new_project = NewProjectView(self.runner)
        self.new_project.closed.connect(self.show_projects)
        self.new_project.created.connect(self._created)
        self.detail = ProjectDetailView(self.runner)
        self.detail.back.connect(self.show_projects)
        self.detail.deleted.connect(self._deleted)
        self.provider = ProviderView(self.settings, self.runner)
        self.provider.running_changed.connect(self._provider_running)
        self.provider.reachable.connect(lambda _: self._show_light())
        self._add_credit_panels()
        for view in (
            self.login,
            self.mode,
            self.projects,
            self.new_project,
            self.detail,
            self.provider,
        ):
            self.stack.addWidget(view)

    def _add_credit_panels(self) -> None:
        """Balance and history in both modes: under the projects, and under the limits."""
        self.requestor_credits = CreditsPanel(self.runner, provider=False)
        projects_layout = self.projects.layout()
        assert isinstance(projects_layout, QVBoxLayout)
        projects_layout.addWidget(self.requestor_credits)
        self.provider_credits = CreditsPanel(self.runner, provider=True)
        provider_layout = self.provider.layout()
        assert isinstance(provider_layout, QVBoxLayout)
        provider_layout.insertWidget(provider_layout.count() - 1, self.provider_credits, 1)

    # --- navigation -------------------------------------------------------------------------
    def show_login(self) -> None:
        self.header.hide()
        self.stack.setCurrentWidget(self.login)
        self.login.password.setFocus()

    def logged_in(self, account: Account) -> None:
        self.account = account
        self._save_login(account)
        for view in (self.projects, self.new_project, self.detail, self.provider):
            view.set_account(account)
        self.requestor_credits.set_account(account)
        self.provider_credits.set_account(account)
        self.user_label.setText(f"{account.username} @ {account.server}")
        self.mode.set_user(account.username)
        self.header.show()
        self.project_watcher.forget()
        self.watch_timer.start()
        for widget in self.mode_buttons.values():
            widget.setChecked(False)
        self.stack.setCurrentWidget(self.mode)

    def choose_mode(self, mode: str) -> None:
        self.mode_buttons[mode].setChecked(True)
        self.settings.mode = mode
        self.settings.save()
        if mode == PROVIDER:
            self.stack.setCurrentWidget(self.provider)
        else:
            self.show_projects()

    def show_projects(self) -> None:
        self.mode_buttons[REQUESTOR].setChecked(True)
        self.stack.setCurrentWidget(self.projects)

    def show_new_project(self) -> None:
        if not self.new_project.uploading:
            self.new_project.message.clear()
        self.stack.setCurrentWidget(self.new_project)

    def show_project(self, project_id: str, note: str = "") -> None:
        self.mode_buttons[REQUESTOR].setChecked(True)
        self.detail.open(project_id, note)
        self.stack.setCurrentWidget(self.detail)

    def _created(self, project_id: str, warnings: list[str]) -> None:
        self.show_project(project_id, " ".join(warnings))

    def _deleted(self, name: str) -> None:
        self.show_projects()
        self.projects.message.show_info(f"Deleted the project {name}.")
        self.projects.refresh()

    # --- notifications ----------------------------------------------------------------------
    def _watch_projects(self) -> None:
        """Off the projects screen, still fetch the list now and then to notice endings."""
        if self.account is not None and self.stack.currentWidget() is not self.projects:
            self.projects.refresh()

    def _watch_volunteering(self) -> None:
        thread = self.provider.agent_thread
        if thread is not None:
            self.volunteer_watcher.see(thread.status.paused_because)

    # --- shortcuts (see actions.py) ---------------------------------------------------------
    def _needs(self, page: QWidget, what: str) -> bool:
        if self.account is not None and self.stack.currentWidget() is page:
            return True
        self.notice.show_info(what)
        return False

    def show_new_project_action(self) -> None:
        if self.account is None:
            self.notice.show_info("Log in first to create a project.")
            return
        self.mode_buttons[REQUESTOR].setChecked(True)
        self.show_new_project()

    def refresh_current(self) -> None:
        page = self.stack.currentWidget()
        if page is self.projects:
            self.projects.refresh()
            self.requestor_credits.refresh()
        elif page is self.detail:
            self.detail.refresh()
        elif page is self.provider:
            self.provider_credits.refresh()

    def toggle_training(self) -> None:
        if self._needs(self.detail, "Open a project to start, pause or resume its training."):
            self.detail.toggle_training()

    def delete_project(self) -> None:
        if self._needs(self.detail, "Open the project to delete first."):
            self.detail.delete_project()

    def toggle_volunteering(self) -> None:
        if self.account is None:
            self.notice.show_info("Log in first to volunteer.")
            return
        if self.provider.running:
            self.provider.stop()
            return
        self.choose_mode(PROVIDER)
        self.provider.participate()

    def set_theme(self, name: str) -> None:
        """Switch to the system, light or dark theme now and remember it."""
        app = QApplication.instance()
        if isinstance(app, QApplication):
            style.apply(app, name)
        self.settings.theme = name
        self.settings.save()
        self.detail.chart.apply_theme()

    def _show_light(self) -> None:
        """The top bar's light: green while volunteering, amber while the server is unreachable
        (volunteering or not), hidden otherwise."""
        if not self.provider.server_reachable:
            self.volunteering.setText("● server unreachable")
            self.volunteering.setStyleSheet(f"color: {UNREACHABLE_COLOUR}; font-weight: 600;")
            self.volunteering.setToolTip(
                "The DAIG server does not answer; the provider agent keeps retrying "
                "(see Resource provider)"
            )
            self.volunteering.show()
            return
        self.volunteering.setText("● volunteering")
        self.volunteering.setStyleSheet(f"color: {VOLUNTEERING_COLOUR}; font-weight: 600;")
        self.volunteering.setToolTip("This computer is training tasks (Resource provider)")
        self.volunteering.setVisible(self.provider.running)

    def _provider_running(self, running: bool) -> None:
        self._show_light()
        if running:
            self.volunteer_watcher.reset()
        if not running and not self.isVisible() and self.tray.icon.isVisible():
            # Behind the tray nobody sees the window: say that volunteering ended, and why.
            why = self.provider.message.text()
            self.tray.icon.showMessage("DAIG", f"Volunteering stopped. {why}".strip())
        if not running and self._after_stop == "close":
            self.close()
        elif not running and self._after_stop == "logout":
            self._after_stop = None
            self._finish_logout()

    # --- leaving ----------------------------------------------------------------------------
    def quit(self) -> None:
        """Close the window (the agent gives its task back first)."""
        self.close()

    def log_out(self) -> None:
        if self.provider.running:
            self._after_stop = "logout"
            self.provider.stop()
            return
        self._finish_logout()

    def _save_login(self, account: Account) -> None:
        """The tokens (never the password) for an agent that runs without the window."""
        if not account.token:
            return
        try:
            saved_login.save(
                saved_login.SavedLogin(
                    account.server, account.username, account.token, account.refresh_token
                )
            )
        except OSError as exc:
            log.warning("could not save the login for the background agent (%s)", exc)

    def _finish_logout(self) -> None:
        saved_login.forget()  # logged out: no agent may start as this user without a login
        if self.account is not None and self.account.refresh_token:
            # Revoked on the server too, in the background (best effort: logged if it fails).
            self.runner.start(saved_login.revoke, self.account.refresh_token, self.account.server)
        self.account = None
        self.watch_timer.stop()
        for view in (self.projects, self.new_project, self.detail, self.provider):
            view.set_account(None)
        self.requestor_credits.set_account(None)
        self.provider_credits.set_account(None)
        self.login.reset()
        self.show_login()

    def closeEvent(self, event: QCloseEvent | None) -> None:  # noqa: N802 - Qt API
        """Keep volunteering if so chosen (behind the tray, or handed to a background process);
        otherwise stop the agent first (it gives its task back); then cancel the workers."""
        assert event is not None
        keep = self.settings.keep_volunteering and not self._quitting
        if self.provider.running and keep and self.tray.icon.isVisible():
            event.ignore()
            self.hide()  # the agent goes on; the tray icon brings the window back
            self.tray.icon.showMessage(
                "DAIG", "Still volunteering in the background. Quit from this icon to stop."
            )
            return
        if self.provider.running:
            event.ignore()
            self._hand_over = keep
            if self._after_stop != "close":
                self._after_stop = "close"
                self.provider.stop()
                # If the agent cannot stop in time, close anyway (its thread is abandoned).
                QTimer.singleShot(STOP_GRACE_MS, self._force_close)
            return
        self._closing = True
        self.runner.cancel_all()
        if not self.runner.wait(10_000):
            log.warning("some network calls were still running at exit")
        if self._hand_over:
            self._hand_over = False
            process = background.start()
            log.info("volunteering goes on in the background (process %s)", process.pid)
        self.tray.icon.hide()
        event.accept()
        self.closed_for_good.emit()

    def open_from_tray(self) -> None:
        self.show()
        self.raise_()
        self.activateWindow()

    def quit_app(self) -> None:
        """Stop volunteering and close (the tray's Quit)."""
        self._quitting = True
        self.close()

    def _force_close(self) -> None:
        thread = self.provider.agent_thread
        if thread is not None and not thread.wait(0):
            log.warning("the provider agent did not stop in time; closing anyway")
            thread.setParent(None)  # not destroyed with the window while it still runs
            _abandoned.append(thread)
            self.provider.agent_thread = None
            self.close()
