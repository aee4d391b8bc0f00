"""Table models of projects and rounds: plain ``QAbstractTableModel``s, testable headless."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from PyQt5.QtCore import QAbstractTableModel, QModelIndex, QObject, Qt

from requestor_gui.timing import elapsed_seconds, eta_seconds, format_duration, parse_time

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

_INDEX = QModelIndex()


def state_label(state: str) -> str:
    return STATE_LABELS.get(state, state.capitalize())


def rounds_text(project: dict[str, Any]) -> str:
    total = project.get("total_rounds")
    return f"{project.get('round', 0)} of {total}" if total else "—"


class ProjectTableModel(QAbstractTableModel):
    """The requestor's projects: name, state, round r of R, progress, contributors, times."""

    COLUMNS = ("Name", "State", "Round", "Progress", "Contributors", "Elapsed", "ETA")
    PROGRESS = 3

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._projects: list[dict[str, Any]] = []

    def set_projects(self, projects: list[dict[str, Any]]) -> None:
        """Replace the rows; same projects in the same order only refresh their cells."""
        same = [p["id"] for p in projects] == [p["id"] for p in self._projects]
        if same and projects:
            self._projects = list(projects)
            self.dataChanged.emit(
                self.index(0, 0), self.index(len(projects) - 1, len(self.COLUMNS) - 1)
            )
            return
        self.beginResetModel()
        self._projects = list(projects)
        self.endResetModel()

    def project(self, row: int) -> dict[str, Any]:
        return self._projects[row]

    def row_of(self, project_id: str) -> int | None:
        for row, project in enumerate(self._projects):
            if project["id"] == project_id:
                return row
        return None

    def rowCount(self, parent: QModelIndex = _INDEX) -> int:  # noqa: N802 - Qt API
        return 0 if parent.isValid() else len(self._projects)

    def columnCount(self, parent: QModelIndex = _INDEX) -> int:  # noqa: N802 - Qt API
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(  # noqa: N802 - Qt API
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.COLUMNS[section]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._projects):
            return None
        project = self._projects[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(project, index.column())
        if role == ProgressRole:
            return float(project.get("progress") or 0.0)
        if role == IdRole:
            return project["id"]
        if role == Qt.ItemDataRole.ToolTipRole:
            return project.get("error") or None
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() >= 2:
            return int(Qt.AlignmentFlag.AlignCenter)
        return None

    def _text(self, project: dict[str, Any], column: int) -> str:
        if column == 0:
            return str(project.get("name", ""))
        if column == 1:
            return state_label(str(project.get("state", "")))
        if column == 2:
            return rounds_text(project)
        if column == 3:
            return f"{float(project.get('progress') or 0.0):.0%}"
        if column == 4:
            return str(project.get("active_contributors", 0))
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


def round_metrics(r: dict[str, Any]) -> dict[str, Any]:
    """A round's training metrics plus the aggregator's score of its new model on the
    requestor's validation files (``evaluation``), as ``held_out_loss``/``held_out_accuracy``."""
    metrics = dict(r.get("metrics") or {})
    evaluation = r.get("evaluation") or {}
    if "error" not in evaluation:
        for name in ("loss", "accuracy"):
            value = evaluation.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                metrics[f"held_out_{name}"] = value
    return metrics


def metric_names(rounds: list[dict[str, Any]]) -> list[str]:
    """The loss and accuracy metrics that any round reported, in a stable order."""
    seen: set[str] = set()
    for r in rounds:
        seen.update(round_metrics(r))
    chartable = {m for m in seen if m.endswith(("loss", "accuracy", "acc"))}
    known = [m for m in KNOWN_METRICS if m in chartable]
    return known + sorted(chartable - set(known))


class RoundTableModel(QAbstractTableModel):
    """One row per round: results accepted and rejected, metrics, when it closed, how long."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rounds: list[dict[str, Any]] = []
        self._metrics: list[str] = []

    @property
    def columns(self) -> list[str]:
        return ["Round", "Accepted", "Rejected", *self._metrics, "Closed", "Duration"]

    def set_rounds(self, rounds: list[dict[str, Any]]) -> None:
        self.beginResetModel()
        self._rounds = list(rounds)
        self._metrics = metric_names(self._rounds)
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = _INDEX) -> int:  # noqa: N802 - Qt API
        return 0 if parent.isValid() else len(self._rounds)

    def columnCount(self, parent: QModelIndex = _INDEX) -> int:  # noqa: N802 - Qt API
        return 0 if parent.isValid() else len(self.columns)

    def headerData(  # noqa: N802 - Qt API
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return column_title(self.columns[section])
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rounds):
            return None
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignCenter)
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        r = self._rounds[index.row()]
        name = self.columns[index.column()]
        if name == "Round":  # 1-based, like "round r of R" (r rounds closed)
            return str(int(r.get("index", 0)) + 1)
        if name in ("Accepted", "Rejected"):
            return str(r.get(name.lower(), 0))
        if name == "Closed":
            closed = parse_time(r.get("closed_at"))
            return closed.astimezone().strftime("%H:%M:%S") if closed else "open"
        if name == "Duration":
            return _duration(parse_time(r.get("opened_at")), parse_time(r.get("closed_at")))
        value = round_metrics(r).get(name)
        return "—" if value is None else f"{float(value):.4f}"


def _duration(opened: datetime | None, closed: datetime | None) -> str:
    if opened is None or closed is None:
        return "—"
    return format_duration((closed - opened).total_seconds())


class LayerTableModel(QAbstractTableModel):
    """The picked model's layers: name, type, settings, parameters (like ``model.summary()``)."""

    COLUMNS = ("Layer", "Type", "Settings", "Parameters")

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._layers: list[Any] = []

    def set_layers(self, layers: list[Any]) -> None:
        """``layers``: objects with ``name``, ``type``, ``detail`` and ``parameters``."""
        self.beginResetModel()
        self._layers = list(layers)
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = _INDEX) -> int:  # noqa: N802 - Qt API
        return 0 if parent.isValid() else len(self._layers)

    def columnCount(self, parent: QModelIndex = _INDEX) -> int:  # noqa: N802 - Qt API
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(  # noqa: N802 - Qt API
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.COLUMNS[section]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role != Qt.ItemDataRole.DisplayRole or not index.isValid():
            return None
        if not 0 <= index.row() < len(self._layers):
            return None
        layer = self._layers[index.row()]
        column = index.column()
        if column == 0:
            return layer.name
        if column == 1:
            return layer.type
        if column == 2:
            return layer.detail
        return "—" if layer.parameters is None else f"{layer.parameters:,}"
