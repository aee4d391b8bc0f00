"""Table models of projects and rounds: plain ``QAbstractTableModel``s, testable headless."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from PyQt5.QtCore import QModelIndex, QObject, Qt

from daig.contract.http import ProjectOut, RoundOut
from requestor_gui.table_model import RowsTableModel
from requestor_gui.timing import aware, elapsed_seconds, eta_seconds, format_duration

ProgressRole = Qt.ItemDataRole.UserRole + 1  # float 0..1 for the progress bar delegate
IdRole = Qt.ItemDataRole.UserRole + 2  # the project's id

STATE_LABELS = {
    "created": "Not started",
    "queued": "Queued",
    "running": "Training",
    "paused": "Paused",
    "done": "Done",
    "failed": "Failed",
    "cancelled": "Cancelled",
}


def state_label(state: str) -> str:
    return STATE_LABELS.get(state, state.capitalize())


def rounds_text(project: ProjectOut) -> str:
    total = project.total_rounds
    return f"{project.round} of {total}" if total else "—"


class ProjectTableModel(RowsTableModel):
    """The requestor's projects: name, state, round r of R, progress, contributors, times."""

    COLUMNS = ("Name", "State", "Round", "Progress", "Contributors", "Elapsed", "ETA")
    columns = COLUMNS
    PROGRESS = 3

    def set_projects(self, projects: list[ProjectOut]) -> None:
        """Replace the rows; same projects in the same order only refresh their cells."""
        same = [p.id for p in projects] == [p.id for p in self._rows]
        if same and projects:
            self._rows = list(projects)
            self.dataChanged.emit(
                self.index(0, 0), self.index(len(projects) - 1, len(self.COLUMNS) - 1)
            )
            return
        self.replace_rows(projects)

    def project(self, row: int) -> ProjectOut:
        project: ProjectOut = self._rows[row]
        return project

    def row_of(self, project_id: str) -> int | None:
        for row, project in enumerate(self._rows):
            if str(project.id) == project_id:
                return row
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        project = self.row_at(index)
        if project is None:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(project, index.column())
        if role == ProgressRole:
            return project.progress
        if role == IdRole:
            return str(project.id)
        if role == Qt.ItemDataRole.ToolTipRole:
            return project.error or None
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() >= 2:
            return int(Qt.AlignmentFlag.AlignCenter)
        return None

    def _text(self, project: ProjectOut, column: int) -> str:
        if column == 0:
            return project.name
        if column == 1:
            return state_label(project.state)
        if column == 2:
            return rounds_text(project)
        if column == 3:
            return f"{project.progress:.0%}"
        if column == 4:
            return str(project.contributors)
        if column == 5:
            return format_duration(elapsed_seconds(project))
        return format_duration(eta_seconds(project))


# Metrics shown as columns, in this order when present; others ending in loss/accuracy follow.
KNOWN_METRICS = (
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "held_out_loss",
    "held_out_accuracy",
)


METRIC_PREFIXES = {"val_": "val", "held_out_": "held-out"}


def column_title(name: str) -> str:
    """``held_out_accuracy`` -> "held-out" over "accuracy": narrow columns, whole words."""
    for prefix, title in METRIC_PREFIXES.items():
        if name.startswith(prefix):
            return f"{title}\n{name.removeprefix(prefix).replace('_', ' ')}"
    return name.replace("_", " ")


def round_metrics(r: RoundOut) -> dict[str, Any]:
    """A round's training metrics plus the aggregator's score of its new model on the
    requestor's validation files (``evaluation``), as ``held_out_loss``/``held_out_accuracy``."""
    metrics = dict(r.metrics or {})
    evaluation = r.evaluation or {}
    if "error" not in evaluation:
        for name in ("loss", "accuracy"):
            value = evaluation.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                metrics[f"held_out_{name}"] = value
    return metrics


def metric_names(rounds: list[RoundOut]) -> list[str]:
    """The loss and accuracy metrics that any round reported, in a stable order."""
    seen: set[str] = set()
    for r in rounds:
        seen.update(round_metrics(r))
    chartable = {m for m in seen if m.endswith(("loss", "accuracy", "acc"))}
    known = [m for m in KNOWN_METRICS if m in chartable]
    return known + sorted(chartable - set(known))


class RoundTableModel(RowsTableModel):
    """One row per round: results accepted and rejected, metrics, when it closed, how long."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.columns = self._columns_for([])

    @staticmethod
    def _columns_for(rounds: list[RoundOut]) -> list[str]:
        return ["Round", "Accepted", "Rejected", *metric_names(rounds), "Closed", "Duration"]

    def set_rounds(self, rounds: list[RoundOut]) -> None:
        self.beginResetModel()
        self._rows = list(rounds)
        self.columns = self._columns_for(self._rows)
        self.endResetModel()

    def header(self, section: int) -> str:
        return column_title(self.columns[section])

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        r = self.row_at(index)
        if r is None:
            return None
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignCenter)
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        name = self.columns[index.column()]
        if name == "Round":  # 1-based, like "round r of R" (r rounds closed)
            return str(r.number)
        if name == "Accepted":
            return str(r.accepted)
        if name == "Rejected":
            return str(r.rejected)
        if name == "Closed":
            closed = aware(r.closed_at)
            return closed.astimezone().strftime("%H:%M:%S") if closed else "open"
        if name == "Duration":
            return _duration(aware(r.opened_at), aware(r.closed_at))
        value = round_metrics(r).get(name)
        return "—" if value is None else f"{float(value):.4f}"


def _duration(opened: datetime | None, closed: datetime | None) -> str:
    if opened is None or closed is None:
        return "—"
    return format_duration((closed - opened).total_seconds())


class LayerTableModel(RowsTableModel):
    """The picked model's layers: name, type, settings, parameters (like ``model.summary()``)."""

    COLUMNS = ("Layer", "Type", "Settings", "Parameters")
    columns = COLUMNS

    def set_layers(self, layers: list[Any]) -> None:
        """``layers``: objects with ``name``, ``type``, ``detail`` and ``parameters``."""
        self.replace_rows(layers)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        layer = self.row_at(index)
        if role != Qt.ItemDataRole.DisplayRole or layer is None:
            return None
        column = index.column()
        if column == 0:
            return layer.name
        if column == 1:
            return layer.type
        if column == 2:
            return layer.detail
        return "—" if layer.parameters is None else f"{layer.parameters:,}"
