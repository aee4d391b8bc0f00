"""The Qt plumbing every table of the client shares: a list of rows under column titles.

Subclasses set ``columns`` (a class attribute, or an instance attribute when the columns
depend on the rows) and implement ``data``; ``row_at`` gives the row behind an index.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from PyQt5.QtCore import QAbstractTableModel, QModelIndex, QObject, Qt

_INDEX = QModelIndex()


class RowsTableModel(QAbstractTableModel):
    columns: Sequence[str] = ()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[Any] = []

    def replace_rows(self, rows: Iterable[Any]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def row_at(self, index: QModelIndex) -> Any | None:
        """The row an index points at, or None for an invalid or stale index."""
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        return self._rows[index.row()]

    def header(self, section: int) -> str:
        return self.columns[section]

    def rowCount(self, parent: QModelIndex = _INDEX) -> int:  # noqa: N802 - Qt API
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex = _INDEX) -> int:  # noqa: N802 - Qt API
        return 0 if parent.isValid() else len(self.columns)

    def headerData(  # noqa: N802 - Qt API
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.header(section)
        return None
