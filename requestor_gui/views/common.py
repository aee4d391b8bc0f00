"""Small widgets every screen uses: messages, hints, titles, stat tiles and file pickers."""

from __future__ import annotations

from pathlib import Path

from PyQt5.QtCore import pyqtSignal
from PyQt5.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from requestor_gui.style import STATE_COLOURS, restyle


def read_only_table(table: QTableView, *, row_height: int = 28) -> QTableView:
    """A table for reading: no row numbers, no editing, columns sharing the width."""
    vertical, horizontal = table.verticalHeader(), table.horizontalHeader()
    assert vertical is not None and horizontal is not None
    vertical.hide()
    vertical.setDefaultSectionSize(row_height)
    horizontal.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setShowGrid(False)
    return table


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


class Message(QLabel):
    """An inline error or information box; hidden while empty."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setOpenExternalLinks(False)
        self.hide()

    def show_error(self, text: str) -> None:
        self._show(text, "error")

    def show_info(self, text: str) -> None:
        self._show(text, "info")

    def _show(self, text: str, role: str) -> None:
        self.setProperty("role", role)
        restyle(self)
        self.setText(text)
        self.setVisible(bool(text))

    def clear(self) -> None:
        self.setText("")
        self.hide()

    @property
    def is_error(self) -> bool:
        return self.isVisibleTo(self.parentWidget()) and self.property("role") == "error"


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
