"""The main window's menus and keyboard shortcuts, one ``QAction`` per main action.

Each action carries its shortcut, which its menu shows, and the buttons doing the same thing
name it in their tooltips. Shortcuts work from anywhere in the window; an action that does
not apply to the screen shown says so in the window's notice bar instead of doing nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PyQt5.QtGui import QKeySequence
from PyQt5.QtWidgets import QAbstractButton, QAction, QActionGroup, QWidget

from requestor_gui.style import THEMES

if TYPE_CHECKING:
    from requestor_gui.main_window import MainWindow

NEW_PROJECT = "Ctrl+N"
REFRESH = "F5"
START_PAUSE = "Ctrl+T"
DELETE_PROJECT = "Ctrl+Del"
PARTICIPATE_STOP = "Ctrl+Shift+P"
QUIT = "Ctrl+Q"


@dataclass
class Actions:
    new_project: QAction
    refresh: QAction
    start_pause: QAction
    delete_project: QAction
    participate_stop: QAction
    quit: QAction
    themes: dict[str, QAction]


def _action(
    window: QWidget, text: str, shortcut: str, slot: Callable[[], None], tip: str
) -> QAction:
    action = QAction(text, window)
    action.setShortcut(QKeySequence(shortcut))
    action.setToolTip(f"{tip} ({shortcut})")
    action.setStatusTip(tip)
    action.triggered.connect(lambda _=False: slot())
    window.addAction(action)  # the shortcut works even while the menu bar is hidden
    return action


def with_shortcut(widget: QAbstractButton, shortcut: str) -> None:
    """Name ``shortcut`` in the button's tooltip (the action does the work)."""
    tip = widget.toolTip() or widget.text().replace("&", "").strip(" .…")
    if shortcut not in tip:
        widget.setToolTip(f"{tip} ({shortcut})")


def install(window: MainWindow) -> Actions:
    """Build the menu bar and shortcuts of ``window``."""
    actions = Actions(
        new_project=_action(
            window,
            "&New project…",
            NEW_PROJECT,
            window.show_new_project_action,
            "Upload a model and data, set hyperparameters, start training",
        ),
        refresh=_action(
            window, "&Refresh", REFRESH, window.refresh_current, "Fetch the screen's data again"
        ),
        start_pause=_action(
            window,
            "&Start / pause / resume training",
            START_PAUSE,
            window.toggle_training,
            "Start, pause or resume the project shown",
        ),
        delete_project=_action(
            window,
            "&Delete project…",
            DELETE_PROJECT,
            window.delete_project,
            "Delete the project shown, with its files and models",
        ),
        participate_stop=_action(
            window,
            "&Participate / Stop",
            PARTICIPATE_STOP,
            window.toggle_volunteering,
            "Lend this computer to DAIG, or stop at once",
        ),
        quit=_action(window, "&Quit", QUIT, window.quit, "Stop volunteering and close DAIG"),
        themes={},
    )
    bar = window.menuBar()
    assert bar is not None
    menu = bar.addMenu("&DAIG")
    assert menu is not None
    menu.addAction(actions.refresh)
    themes = menu.addMenu("&Theme")
    assert themes is not None
    group = QActionGroup(window)
    for name in THEMES:
        theme = QAction(name.capitalize(), window)
        theme.setCheckable(True)
        theme.setChecked(window.settings.theme == name)
        theme.triggered.connect(lambda _=False, n=name: window.set_theme(n))
        group.addAction(theme)
        themes.addAction(theme)
        actions.themes[name] = theme
    menu.addSeparator()
    menu.addAction(actions.quit)
    projects = bar.addMenu("&Projects")
    assert projects is not None
    for action in (actions.new_project, actions.start_pause, actions.delete_project):
        projects.addAction(action)
    volunteer = bar.addMenu("&Volunteer")
    assert volunteer is not None
    volunteer.addAction(actions.participate_stop)

    with_shortcut(window.projects.new_button, NEW_PROJECT)
    with_shortcut(window.detail.delete_button, DELETE_PROJECT)
    for name in ("start", "pause", "resume"):
        with_shortcut(window.detail.action_buttons[name], START_PAUSE)
    with_shortcut(window.provider.participate_button, PARTICIPATE_STOP)
    with_shortcut(window.provider.stop_button, PARTICIPATE_STOP)
    return actions
