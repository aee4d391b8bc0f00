"""Small widgets every screen uses: messages, hints, titles, stat tiles and file pickers."""

from __future__ import annotations

from pathlib import Path

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtGui import QResizeEvent
from PyQt5.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from requestor_gui.style import STATE_COLOURS, restyle


def read_only_table(
    table: QTableView, *, row_height: int = 28, stretch: int | None = None
) -> QTableView:
    """A table for reading: no row numbers, no editing, columns sharing the width; or, with
    ``stretch`` (a column of the table's model), that column takes what the others, fitted to
    their contents, leave."""
    vertical, horizontal = table.verticalHeader(), table.horizontalHeader()
    assert vertical is not None and horizontal is not None
    vertical.hide()
    vertical.setDefaultSectionSize(row_height)
    if stretch is None:
        horizontal.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
    else:
        horizontal.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        horizontal.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setShowGrid(False)
    return table


def confirm(parent: QWidget | None, question: str, detail: str, ok_text: str = "OK") -> bool:
    """Ask before something that cannot be undone: OK (named ``ok_text``) or Cancel."""
    box = QMessageBox(QMessageBox.Icon.Question, "DAIG", question, parent=parent)
    box.setInformativeText(detail)
    box.addButton(QMessageBox.StandardButton.Ok)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    ok = box.button(QMessageBox.StandardButton.Ok)
    if ok is not None:
        ok.setText(ok_text)
    return bool(box.exec_() == QMessageBox.StandardButton.Ok)


def label(text: str, role: str | None = None, *, wrap: bool = False) -> QLabel:
    widget = QLabel(text)
    if role:
        widget.setProperty("role", role)
    widget.setWordWrap(wrap)
    return widget


def button(text: str, role: str | None = None) -> QPushButton:
    widget = QPushButton(text)
    if role:
        widget.setProperty("role", role)
    return widget


class Message(QFrame):
    """An inline error or information box; hidden while empty.

    A long text never widens the window: it is elided to one line, and a Details button shows
    the whole of it (word-wrapped) until pressed again. ``text()`` is always the whole text.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._text = ""
        self._expanded = False
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 4, 4, 4)
        self.line = QLabel()
        self.line.setOpenExternalLinks(False)
        self.line.setTextFormat(Qt.TextFormat.PlainText)
        self.line.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # Ignored: the label takes the width it is given and never asks for more.
        self.line.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.line.setMinimumWidth(40)
        row.addWidget(self.line, 1)
        self.details = button("Details")
        self.details.setToolTip("Show the whole message")
        self.details.clicked.connect(self.toggle_details)
        row.addWidget(self.details, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_error(self, text: str) -> None:
        self._show(text, "error")

    def show_info(self, text: str) -> None:
        self._show(text, "info")

    def _show(self, text: str, role: str) -> None:
        self.setProperty("role", role)
        restyle(self)
        for child in (self.line, self.details):
            restyle(child)
        self._text, self._expanded = text, False
        self.setVisible(bool(text))
        self._layout_text()

    def text(self) -> str:
        return self._text

    def clear(self) -> None:
        self._text, self._expanded = "", False
        self.line.setText("")
        self.hide()

    @property
    def is_error(self) -> bool:
        return self.isVisibleTo(self.parentWidget()) and self.property("role") == "error"

    @property
    def elided(self) -> bool:
        """Whether the box shows less than the whole text (Details shows the rest)."""
        return not self._expanded and self.line.text() != self._text

    def toggle_details(self) -> None:
        self._expanded = not self._expanded
        self._layout_text()

    def _layout_text(self) -> None:
        self.line.setWordWrap(self._expanded)
        if self._expanded:
            self.line.setText(self._text)
            self.details.setText("Less")
            self.details.show()
            return
        first = self._text.splitlines()[0] if self._text else ""
        metrics = self.line.fontMetrics()
        layout = self.layout()
        margins = layout.contentsMargins() if layout is not None else None
        room = self.width() - (margins.left() + margins.right() if margins else 0) - 4
        if first == self._text and metrics.horizontalAdvance(first) <= room:
            shown = first
        else:  # keep room for the Details button beside the text
            room -= self.details.sizeHint().width() + 8
            shown = metrics.elidedText(first, Qt.TextElideMode.ElideRight, max(room, 20))
            if shown == first:
                shown = first + " …"  # more lines follow
        self.line.setText(shown)
        self.details.setText("Details")
        self.details.setVisible(shown != self._text)

    def resizeEvent(self, event: QResizeEvent | None) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        if not self._expanded:
            self._layout_text()


class StatePill(QLabel):
    """A project's state as a coloured pill."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setProperty("role", "pill")

    def set_state(self, state: str, text: str) -> None:
        colour = STATE_COLOURS.get(state, "#5f6b7a")
        self.setStyleSheet(f"background: {colour};")
        self.setText(text)


class Stat(QFrame):
    """A number with its name underneath, e.g. "3 of 8" / "round"."""

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setProperty("role", "card")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.setSpacing(2)
        self.value = label("—", "stat")
        layout.addWidget(self.value)
        layout.addWidget(label(name, "statname"))

    def set(self, text: str) -> None:
        self.value.setText(text)


class FilePicker(QWidget):
    """A path field with a Browse button (and a clear button when optional)."""

    changed = pyqtSignal()

    def __init__(
        self,
        caption: str,
        name_filter: str,
        *,
        optional: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._caption, self._filter = caption, name_filter
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.edit = QLineEdit()
        self.edit.setPlaceholderText("optional" if optional else "choose a file…")
        self.edit.editingFinished.connect(self.changed)
        layout.addWidget(self.edit, 1)
        self.browse = button("Browse…")
        self.browse.clicked.connect(self._choose)
        layout.addWidget(self.browse)
        if optional:
            self.clear_button = button("Clear")
            self.clear_button.clicked.connect(lambda: self.set_path(None))
            layout.addWidget(self.clear_button)

    def path(self) -> Path | None:
        text = self.edit.text().strip()
        return Path(text).expanduser() if text else None

    def set_path(self, path: Path | None) -> None:
        self.edit.setText(str(path) if path else "")
        self.changed.emit()

    def _choose(self) -> None:
        current = self.path()
        start = str(current.parent) if current else ""
        chosen, _ = QFileDialog.getOpenFileName(self, self._caption, start, self._filter)
        if chosen:
            self.set_path(Path(chosen))
