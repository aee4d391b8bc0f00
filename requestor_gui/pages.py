"""The screens' container: a stack that is as big as the screen shown, inside a scroll area.

A plain ``QStackedWidget`` asks for the largest of all its pages, and a ``QMainWindow`` grows
to what its central widget asks for. Here the stack asks only for the current page (sizes and
height for width), and the scroll area around it asks for nothing: on a small screen
(1366x768, 1280x720) a page that needs more room scrolls, and the window never grows by itself.
"""

from __future__ import annotations

from PyQt5.QtCore import QSize, Qt
from PyQt5.QtWidgets import QFrame, QScrollArea, QStackedWidget, QWidget


class PageStack(QStackedWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.currentChanged.connect(lambda _: self.updateGeometry())

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        page = self.currentWidget()
        return page.sizeHint() if page is not None else super().sizeHint()

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt API
        page = self.currentWidget()
        if page is None:
            return super().minimumSizeHint()
        layout = page.layout()
        hint = layout.minimumSize() if layout is not None else page.minimumSizeHint()
        return hint.expandedTo(page.minimumSize())

    def heightForWidth(self, width: int) -> int:  # noqa: N802 - Qt API
        # QStackedLayout answers for the tallest page; the scroll area asks at every resize.
        page = self.currentWidget()
        if page is None or not page.hasHeightForWidth():
            return -1
        return max(page.heightForWidth(width), self.minimumSizeHint().height())


def scrolled(stack: PageStack) -> QScrollArea:
    """``stack`` in a frameless scroll area that resizes it to the viewport when it fits."""
    area = QScrollArea()
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setWidgetResizable(True)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
    area.setWidget(stack)
    # Resize the stack to the new page's needs now: shrink back after a bigger page, too.
    stack.currentChanged.connect(lambda _: area.setWidgetResizable(True))
    return area
