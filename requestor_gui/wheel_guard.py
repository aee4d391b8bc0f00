"""The mouse wheel scrolls the page, not the spin box or combo box it happens to pass over.

``WheelGuard`` is installed once on the application: a wheel event aimed at a spin box or a
combo box that does not have the keyboard focus is ignored (so it goes to the scroll area
around it), and those widgets take focus only by click or Tab (``StrongFocus``), never by the
wheel. Once focused (clicked), the wheel changes them as usual.
"""

from __future__ import annotations

from PyQt5.QtCore import QEvent, QObject, Qt
from PyQt5.QtWidgets import QAbstractSpinBox, QApplication, QComboBox, QWidget

GUARDED = (QAbstractSpinBox, QComboBox)


class WheelGuard(QObject):
    def eventFilter(self, watched: QObject | None, event: QEvent | None) -> bool:  # noqa: N802
        if event is None or not isinstance(watched, GUARDED):
            return False
        if event.type() == QEvent.Type.Polish:
            watched.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        elif event.type() == QEvent.Type.Wheel and not _focused(watched):
            event.ignore()  # propagates to the parent: the page scrolls instead
            return True
        return False


def _focused(widget: QWidget) -> bool:
    # A spin box's line edit or a combo box's popup holds the focus on its behalf.
    focus = QApplication.focusWidget()
    return widget.hasFocus() or (focus is not None and widget.isAncestorOf(focus))


def install(app: QApplication) -> WheelGuard:
    """Guard every spin box and combo box of ``app`` (now and later); idempotent."""
    guard = app.findChild(WheelGuard)
    if guard is None:
        guard = WheelGuard(app)
        app.installEventFilter(guard)
    return guard
