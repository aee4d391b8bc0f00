"""The requestor's project list, refreshed live, with a + button for a new project."""

from __future__ import annotations

from PyQt5.QtCore import QModelIndex, Qt, QTimer, pyqtSignal
from PyQt5.QtGui import QHideEvent, QPainter, QShowEvent
from PyQt5.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHBoxLayout,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from daig.contract.http import ProjectOut
from requestor_gui import operations
from requestor_gui.account import Account
from requestor_gui.models import IdRole, ProgressRole, ProjectTableModel
from requestor_gui.views.common import Message, button, label, read_only_table
from requestor_gui.workers import Runner

REFRESH_MS = 2000


class ProgressDelegate(QStyledItemDelegate):
    """Paints a cell's ``ProgressRole`` as a progress bar."""

    def paint(
        self, painter: QPainter | None, option: QStyleOptionViewItem, index: QModelIndex
    ) -> None:
        fraction = index.data(ProgressRole)
        style = QApplication.style()
        if fraction is None or painter is None or style is None:
            super().paint(painter, option, index)
            return
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(6, 6, -6, -6)
        bar.minimum, bar.maximum = 0, 1000
        bar.progress = int(round(float(fraction) * 1000))
        bar.text = f"{float(fraction):.0%}"
        bar.textVisible = True
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter)


class ProjectsView(QWidget):
    """Emits ``new_project`` for the + button and ``open_project(id)`` on double-click."""

    new_project = pyqtSignal()
    open_project = pyqtSignal(str)
    refreshed = pyqtSignal()  # after each successful refresh (tests and screenshots wait on it)

    def __init__(self, runner: Runner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._runner = runner
        self._account: Account | None = None
        self._loading = False
        self.model = ProjectTableModel(self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 18, 24, 18)
        top = QHBoxLayout()
        top.addWidget(label("Your projects", "title"))
        top.addStretch(1)
        self.open_button = button("Open")
        self.open_button.clicked.connect(self._open_selected)
        self.new_button = button("+  New project", "primary")
        self.new_button.setToolTip("Upload a model and data, set hyperparameters, start training")
        self.new_button.clicked.connect(self.new_project)
        top.addWidget(self.open_button)
        top.addWidget(self.new_button)
        layout.addLayout(top)
        self.message = Message()
        layout.addWidget(self.message)
        self.table = self._table()
        layout.addWidget(self.table, 1)
        self.empty = label(
            "No projects yet. Click  + New project  to train your first model.", "subtitle"
        )
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.empty)
        self.empty.hide()
        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self.refresh)

    def _table(self) -> QTableView:
        table = QTableView()
        table.setModel(self.model)
        table.setItemDelegateForColumn(ProjectTableModel.PROGRESS, ProgressDelegate(table))
        table.setSelectionBehavior(QAbstractItemView.SelectRows)
        table.setSelectionMode(QAbstractItemView.SingleSelection)
        read_only_table(table, row_height=34)
        table.doubleClicked.connect(self._open_index)
        return table

    def set_account(self, account: Account | None) -> None:
        self._account = account
        self.model.set_projects([])
        self.message.clear()

    def refresh(self) -> None:
        """Fetch the list in a worker; skipped while a fetch is still running."""
        if self._account is None or self._loading:
            return
        self._loading = True
        self._runner.start(
            operations.list_projects,
            self._account,
            on_returned=self._loaded,
            on_errored=self._failed,
            on_finished=self._done,
        )

    def _loaded(self, projects: list[ProjectOut]) -> None:
        selected = self._selected_id()
        self.model.set_projects(projects)
        if selected and (row := self.model.row_of(selected)) is not None:
            self.table.selectRow(row)
        self.empty.setVisible(not projects)
        self.table.setVisible(bool(projects))
        self.message.clear()
        self.refreshed.emit()

    def _failed(self, message: str) -> None:
        # Keep showing the last list: a blip in the connection should not blank the screen.
        self.message.show_error(f"Could not refresh the projects: {message}")

    def _done(self) -> None:
        self._loading = False

    def _selected_id(self) -> str | None:
        selection = self.table.selectionModel()
        rows = selection.selectedRows() if selection is not None else []
        return str(rows[0].data(IdRole)) if rows else None

    def _open_index(self, index: QModelIndex) -> None:
        self.open_project.emit(str(index.data(IdRole)))

    def _open_selected(self) -> None:
        selected = self._selected_id()
        if selected:
            self.open_project.emit(selected)
        else:
            self.message.show_info("Select a project in the list first (or double-click it).")

    def showEvent(self, event: QShowEvent | None) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        self.refresh()
        self.timer.start()

    def hideEvent(self, event: QHideEvent | None) -> None:  # noqa: N802 - Qt API
        super().hideEvent(event)
        self.timer.stop()
